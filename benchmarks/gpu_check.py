"""GPU check: training images/s of the grid's models on one GPU, side by side in one run.

Prepared so that one call on a GPU machine (at most ~5 minutes, --budget-s) gives the
figures docs/benchmarks.md reports:

  1. one job, resnet18 / resnet50 / vgg16 at 224 px, bf16 autocast + channels_last: a plain
     PyTorch loop of the same torchvision model on device tensors (the reference row; every
     glattn row is also shown as a ratio to it), glattn without and with the default GLSA
     block on device tensors (eager) and on the real loader (a cache of synthetic images,
     dataset.augment=device, trainer.compile's default: the GLSA block compiled on CUDA);
     the loader alone (workers + device augmentation, no model);
  2. resnet50 + GLSA at batch 32, 64 and 128 on the real loader;
  3. jobs sharing the GPU (jobs_per_gpu): 1, 2, 4 processes released together, and the
     ``jobs_per_gpu=auto`` choice (glattn.sweep.packing) for the measured peak memory with
     its aggregate;
  4. fused seeds vs jobs sharing , per model + GLSA: 3 members (seeds 0, 1,
     2) trained as one glattn.fused.stack.FusedModel (benchmarks/fused_seeds.py's functions),
     3 jobs sharing the GPU and one job alone (the worker processes of 3.), their aggregate
     img/s and peak memory, and the line "fused / best of jobs sharing";
  5. the phase times (time/*) of one real ``python run.py`` (--phases; on by default on a GPU);
  6. torch.compile rows in steady state, the compile time in its own column;
  7. last line: the paper's hours on one GPU from these figures (glattn.sweep.estimate
     with the auto packing).

Every figure goes through the real code (glattn.build_model, glattn.data.build_data and its
loaders, glattn.engine.train_one_epoch); benchmarks/gpu_measure.py holds the measurements.
Rows that would exceed the time budget are printed as skipped. Without a GPU it runs tiny
settings on the CPU in seconds (what tests/test_gpu_check.py runs) and says that it
measured no GPU.

    python benchmarks/gpu_check.py [--budget-s 270] [--batch-size 32] [--workers 8]
    python benchmarks/gpu_check.py --tiny            # forced CPU-sized settings
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fused_seeds as FS  # noqa: E402 - the benchmarks folder is not a package
import gpu_measure as M  # noqa: E402

ROOT = M.ROOT
MODELS = ("resnet18", "resnet50", "vgg16")
HEADER = (
    "| model | GLSA | mode | input | batch | train img/s | vs plain loop | compile s | peak MiB |"
    "\n|---|---|---|---|---|---|---|---|---|"
)
FUSED_HEADER = (
    "| model | GLSA | way | members at once | aggregate img/s | img/s per member "
    "| peak MiB, all members |\n|---|---|---|---|---|---|---|"
)


def _n(value, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


class Check:
    """One run: its settings, start time and the figures measured so far."""

    def __init__(self, args, gpu: bool):
        self.args, self.gpu = args, gpu
        self.device = torch.device("cuda" if gpu else "cpu")
        self.start = time.monotonic()
        self.plain: dict[str, float] = {}  # backbone -> plain loop img/s
        self.loader_rows: dict[tuple[str, bool], dict] = {}  # (backbone, glsa) -> result
        self.shared: dict[int, float] = {}  # jobs -> aggregate img/s
        self.share_results: dict[int, list[dict]] = {}  # jobs -> each job's figures
        self.data = None

    def over(self, fraction: float) -> bool:
        return time.monotonic() - self.start > self.args.budget_s * fraction

    def row(self, backbone, glsa, mode, source, batch=None, until=0.45) -> dict | None:
        b = batch or self.args.batch_size
        label = f"| {backbone} | {'yes' if glsa else 'no'} | {mode} | {source} | {b} |"
        if mode != "eager" and mode != "none" and not self.gpu:
            print(f"{label} skipped (no GPU) | - | - | - |")
            return None
        if self.over(until):
            print(f"{label} skipped (time budget) | - | - | - |")
            return None
        compile_mode = "none" if mode == "eager" else mode
        try:
            r = M.measure(
                self.args, backbone, glsa, compile_mode, source, self.device, self.data, b
            )
        except Exception as e:  # noqa: BLE001 - one failing row (e.g. out of memory) is reported
            print(f"{label} error: {type(e).__name__}: {str(e)[:120]} | - | - | - |", flush=True)
            return None
        finally:
            if self.gpu:
                torch.cuda.empty_cache()  # the next row starts from an empty cache
        ref = self.plain.get(backbone)
        ratio = f"{r['img_s'] / ref:.2f}x" if ref else "-"
        warm = _n(r["warm_s"], "{:.1f}") if compile_mode != "none" else "-"
        print(f"{label} {r['img_s']:,.0f} | {ratio} | {warm} | {_n(r['peak'])} |", flush=True)
        return r


def single_rows(c: Check) -> None:
    args = c.args
    default = "block" if c.gpu else "eager"  # trainer.compile=auto
    print(
        f"one job (steady state: the fastest of {args.passes} timed pass(es) after a warm-up; "
        f"{args.steps} steps a pass on device tensors, an epoch on the loader)\n"
    )
    print(HEADER)
    for backbone in args.models:
        if c.over(0.3):
            print(f"| {backbone} | no | plain PyTorch | synthetic | {args.batch_size} | skipped |")
        else:
            c.plain[backbone] = M.plain_loop(args, backbone, c.device)
            print(
                f"| {backbone} | no | plain PyTorch | synthetic | {args.batch_size} | "
                f"{c.plain[backbone]:,.0f} | 1.00x | - | - |",
                flush=True,
            )
        for glsa in (False, True):
            c.row(backbone, glsa, "eager", "synthetic")
        for glsa in (False, True):
            r = c.row(backbone, glsa, default, "loader")
            if r is not None:
                c.loader_rows[(backbone, glsa)] = r
    alone = M.loader_alone(args, c.device, c.data)
    print(f"| - | - | loader alone | loader | {args.batch_size} | {alone:,.0f} | - | - | - |")
    batch_model = "resnet50" if not args.tiny else args.models[0]
    batches = (32, 64, 128) if not args.tiny else (8, 16, 32)
    print(f"\n{batch_model} + GLSA, real loader, batch sizes\n\n{HEADER}")
    for b in batches:
        c.row(batch_model, True, default, "loader", batch=b, until=0.5)


def share_rows(c: Check) -> None:
    from glattn.sweep import packing

    args = c.args
    print(
        f"\njobs sharing one {'GPU' if c.gpu else 'CPU'} (jobs_per_gpu): {args.share_model} + "
        "GLSA, eager, real loader + device augmentation, loader workers split between the "
        "jobs, all released together\n"
    )
    print("| jobs | img/s per job | aggregate img/s | vs 1 job | peak MiB per job |")
    print("|---|---|---|---|---|")
    todo = list(args.jobs)
    one = c.loader_rows.get((args.share_model, True))
    if c.gpu and one is not None:
        free, total = torch.cuda.mem_get_info(c.device)
        reserved = one["reserved"] * 2**20
        decision = packing.decide(
            packing.GpuMemory(total, free), reserved, os.cpu_count() or 1, 1, "this run's peak"
        )
    else:
        decision = packing.decide(None, None, os.cpu_count() or 1, 1 if c.gpu else 0)
    if todo and decision.jobs_per_gpu not in todo:
        todo.append(decision.jobs_per_gpu)
    if not todo:
        print("| - | not run (--jobs) | - | - | - |")
    for jobs in todo:
        if c.over(0.65):
            print(f"| {jobs} | skipped (time budget) | - | - | - |")
            continue
        try:
            results = M.share(args, jobs, __file__)
        except Exception as e:  # noqa: BLE001 - reported in the table, the run goes on
            print(f"| {jobs} | error: {e} | - | - | - |", flush=True)
            continue
        total = sum(r["img_s"] for r in results)
        c.shared[jobs] = total
        c.share_results[jobs] = results
        base = c.shared.get(1, total)
        peaks = [r["peak"] for r in results if r["peak"] is not None]
        print(
            f"| {jobs} | {total / jobs:,.0f} | {total:,.0f} | {total / base:.2f}x | "
            f"{_n(max(peaks) if peaks else None)} |",
            flush=True,
        )
    k = decision.jobs_per_gpu
    c.auto = decision
    got = c.shared.get(k)
    agg = f"aggregate {got:,.0f} img/s" if got else "aggregate not measured"
    print(f"\n{decision.line()}; {agg}")


def fused_measure(c: Check, backbone: str) -> tuple[float, float | None]:
    """(aggregate img/s, peak MiB) of the members of fused_seeds.SEEDS of `backbone` + GLSA
    trained as one FusedModel, eager, each member its own loader (the workers split as the
    jobs split them) and device augmentation, as glattn.fused.trainer draws them; steady
    state as every row. The (M, B, C, H, W) stack stays contiguous (no channels_last)."""
    from glattn.losses import build_loss

    args, device, data = c.args, c.device, c.data
    cfg = M.job_config(args, backbone, True)
    model, opts = FS.fuse(FS.members(cfg, device))
    loss_fn = build_loss(cfg.loss, list(data.train_counts)).to(device)
    rt = dataclasses.replace(M.runtime(device), channels_last=False)
    workers = max(1, args.workers // len(FS.SEEDS)) if args.workers else 0
    loaders = [
        data.loaders(args.batch_size, workers, seed=s, augment="device")["train"] for s in FS.SEEDS
    ]
    augments = [data.augmenter(seed=s) for s in FS.SEEDS]

    def batches():
        for draws in zip(*loaders):
            pairs = [rt.to_device(x, y, a) for (x, y), a in zip(draws, augments)]
            yield torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

    def run_pass() -> int:
        return FS.fused_steps(model, opts, batches(), device, loss_fn, rt.autocast)

    if c.gpu:
        torch.cuda.reset_peak_memory_stats(device)
    threads = torch.get_num_threads()
    if args.tiny:  # the jobs it is compared with run one thread each (gpu_measure.share)
        torch.set_num_threads(1)
    try:
        return M._steady(run_pass, device, args.passes)[1], M.peak(device)[0]
    finally:
        torch.set_num_threads(threads)


def jobs_measure(c: Check, backbone: str, jobs: int) -> tuple[float, float | None]:
    """(aggregate img/s, summed peak MiB) of `jobs` worker processes of `backbone` + GLSA
    released together (share_rows' mechanism; its figures reused where it ran them)."""
    if backbone == c.args.share_model and jobs in c.share_results:
        results = c.share_results[jobs]
    else:
        results = M.share(
            argparse.Namespace(**{**vars(c.args), "share_model": backbone}), jobs, __file__
        )
    peaks = [r["peak"] for r in results]
    return sum(r["img_s"] for r in results), None if None in peaks else sum(peaks)


def _fused_row(c: Check, backbone: str, way: str, members: int, measure) -> float | None:
    label = f"| {backbone} | yes | {way} | {members} |"
    if c.over(0.75):
        print(f"{label} skipped (time budget) | - | - |", flush=True)
        return None
    try:
        img_s, peak_mib = measure()
    except Exception as e:  # noqa: BLE001 - one failing row (e.g. out of memory) is reported
        print(f"{label} error: {type(e).__name__}: {str(e)[:120]} | - | - |", flush=True)
        return None
    finally:
        if c.gpu:
            torch.cuda.empty_cache()
    print(f"{label} {img_s:,.0f} | {img_s / members:,.0f} | {_n(peak_mib)} |", flush=True)
    return img_s


def fused_rows(c: Check) -> None:
    """Per model + GLSA: the seeds fused, as jobs sharing the device, one job alone."""
    args, n = c.args, len(FS.SEEDS)
    if not args.fused:
        print("\nfused seeds: not run (--no-fused)")
        return
    seeds = ", ".join(map(str, FS.SEEDS))
    print(
        f"\nfused seeds vs jobs sharing one {'GPU' if c.gpu else 'CPU'}: {n} members (seeds "
        f"{seeds}) of each model + GLSA, eager, batch {args.batch_size} a member, real loader + "
        "device augmentation, each member its own loader, loader workers split between them; "
        f"fused: one glattn.fused.stack.FusedModel in this process "
        f"({'bf16 autocast, contiguous' if c.gpu else 'fp32'}); {n} jobs sharing / one job "
        "alone: worker processes as above; best of jobs sharing: the better aggregate of "
        f"{n} jobs sharing and one job alone (the seeds one after another); peak MiB: "
        "torch.cuda.max_memory_allocated, summed over the jobs ('-' on a CPU: no per-row "
        "figure)\n"
    )
    print(FUSED_HEADER)
    ratios = []
    for backbone in args.models:
        fused = _fused_row(c, backbone, "fused", n, lambda b=backbone: fused_measure(c, b))
        jobs = {
            way: _fused_row(c, backbone, way, k, lambda b=backbone, k=k: jobs_measure(c, b, k))
            for way, k in ((f"{n} jobs sharing", n), ("one job alone", 1))
        }
        ratios.append((backbone, fused, {w: v for w, v in jobs.items() if v is not None}))
    print()
    for backbone, fused, jobs in ratios:
        head = f"fused / best of jobs sharing, {backbone} + GLSA:"
        if fused is None or not jobs:
            print(f"{head} ? (not measured)")
            continue
        way = max(jobs, key=jobs.get)
        print(
            f"{head} {fused / jobs[way]:.2f}x "
            f"(fused {fused:,.0f} img/s; best: {way}, {jobs[way]:,.0f} img/s)"
        )


PHASE_LINE = re.compile(r"time/\w+_s")


def phase_rows(c: Check) -> None:
    """The time/* phases of one real `python run.py` (3 epochs, resnet50, synthetic)."""
    args = c.args
    print("\none real `python run.py` (phase times, time/* metrics)\n")
    if not args.phases:
        print("phases: not run (--phases; off with --tiny)")
        return
    if c.over(0.75):
        print("phases: skipped (time budget)")
        return
    backbone = "resnet18" if args.tiny else "resnet50"
    cmd = [sys.executable, str(ROOT / "run.py"), f"backbone={backbone}", "dataset=synthetic"]
    cmd += [f"dataset.image_size={args.image_size}", f"dataset.num_images={args.num_images}"]
    # the same output folder as this check's data: the synthetic set and its cache are reused
    cmd += [f"paths.output_dir={args.work}", "trainer.max_epochs=3", "tracking=none"]
    cmd += ["trainer.early_stopping_patience=null", f"trainer.batch_size={args.batch_size}"]
    if args.tiny:
        cmd += ["debug=smoke", "trainer.max_epochs=1"]
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=args.budget_s)
    wall = time.monotonic() - t0
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if "phases:" in ln]
    print(f"`{' '.join(cmd[1:3])} ...`: exit {res.returncode}, {wall:.1f} s wall")
    print(lines[-1].split("phases:", 1)[1].strip() if lines else "(no phases line logged)")


def compiled_rows(c: Check) -> None:
    print(f"\ntorch.compile (steady state; compile s: the warm-up pass, compiling)\n\n{HEADER}")
    for backbone in c.args.models:
        for glsa, mode in ((False, "model"), (True, "block"), (True, "model")):
            c.row(backbone, glsa, mode, "synthetic", until=0.85)


def paper_hours(loader_rows: dict, jobs_per_gpu: int, gain: float) -> tuple[float, float, int]:
    """(hours one job at a time, hours with `jobs_per_gpu` sharing the GPU at aggregate
    `gain`, jobs without a measured backbone) for every paper table, from the real-loader
    rows {(backbone, glsa): {"img_s": ...}} (glattn.sweep.estimate's arithmetic; the
    attention levels other than none are costed at the GLSA row)."""
    import pandas as pd

    from glattn.report import declared
    from glattn.sweep.estimate import EXPERIMENTS_DIR, estimate

    rows = []
    for (backbone, glsa), r in loader_rows.items():
        for attention in ("cbam", "global_only") if glsa else ("none",):
            rows.append({"backbone": backbone, "attention": attention, "img_s": r["img_s"]})
    measured = pd.DataFrame(rows, columns=["backbone", "attention", "img_s"])
    files = sorted(
        f for f in EXPERIMENTS_DIR.glob("table*.yaml") if declared.load().tables_for(f.stem)
    )
    table = estimate(measured, files, 1, jobs_per_gpu, gain)
    return (
        float(table["hours_upper_bound"].sum()),
        float(table["wall_hours"].sum()),
        int(table["jobs_without_measurement"].sum()),
    )


def estimate_lines(c: Check) -> None:
    from glattn.sweep import packing

    k = getattr(c, "auto", None).jobs_per_gpu if getattr(c, "auto", None) else 1
    base = c.shared.get(1)
    gain = c.shared[k] / base if base and k in c.shared else packing.speedup(k)
    if not c.gpu or not c.loader_rows:
        why = "this run measured no GPU" if not c.gpu else "no real-loader row measured"
        print(f"\npaper on one GPU: ? hours ({why}; early stopping not counted)")
        return
    alone, packed, missing = paper_hours(c.loader_rows, k, gain)
    note = f"; {missing} jobs of unmeasured backbones not counted" if missing else ""
    print(
        f"\none job at a time: {alone:.1f} h; jobs_per_gpu={k} at {gain:.2f}x one job "
        f"(costliest first): {packed:.1f} h{note}"
    )
    print(
        f"paper on one GPU: {packed:.1f} hours "
        "(estimate from these figures, early stopping not counted)"
    )


# ----------------------------------------------------------------------------- main
def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU-sized settings (default off-GPU)")
    ap.add_argument("--budget-s", type=float, default=270.0, help="seconds, whole run")
    ap.add_argument("--batch-size", type=int, default=None, help="default: trainer.batch_size")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default 8)")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--num-images", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="measured steps (synthetic)")
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--passes", type=int, default=None, help="timed passes (best of)")
    ap.add_argument(
        "--jobs", type=int, nargs="*", default=None, help="jobs sharing the GPU (none: skip)"
    )
    ap.add_argument("--phases", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument(
        "--fused", action=argparse.BooleanOptionalAction, default=True, help="fused-seed rows"
    )
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--work-dir", default=None, help="default: a temporary folder")
    # worker mode (jobs sharing the GPU)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="resnet18", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ready", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--go", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    gpu = torch.cuda.is_available()
    tiny = args.tiny = args.tiny or not gpu
    defaults = dict(
        batch_size=16 if tiny else int(M.compose().trainer.batch_size),
        workers=0 if tiny else min(8, max(1, (os.cpu_count() or 2) - 1)),
        image_size=32 if tiny else 224,
        num_images=100 if tiny else 2000,
        steps=2 if tiny else 50,
        models=["resnet18"] if tiny else list(MODELS),
        jobs=[1, 2] if tiny else [1, 2, 4],
        phases=not tiny,
        passes=1 if tiny else 2,
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.work = Path(args.work_dir or tempfile.mkdtemp(prefix="glattn-gpu-check-"))
    args.passthrough = ["--work-dir", str(args.work), "--batch-size", str(args.batch_size)]
    args.passthrough += ["--image-size", str(args.image_size), "--num-images"]
    args.passthrough += [str(args.num_images), "--steps", str(args.steps)]
    args.passthrough += ["--tiny"] if tiny else []
    args.passthrough += ["--passes", str(args.passes)]
    if args.worker:
        return M.worker(args)
    args.share_model = "resnet18"
    args.share_seconds = 1.0 if tiny else 15.0
    run(args, gpu)


def run(args, gpu: bool) -> None:
    from glattn.data import build_data

    c = Check(args, gpu)
    name = torch.cuda.get_device_name(0) if gpu else "CPU (no GPU)"
    print(
        f"glattn GPU check on {name}; torch {torch.__version__}; {args.image_size} px, "
        f"batch {args.batch_size}, {args.workers} loader workers, "
        f"{'bf16 + channels_last' if gpu else 'fp32 (CPU)'}; budget {args.budget_s:.0f} s"
    )
    if not gpu:
        print("NO GPU: this run measured no GPU (tiny CPU settings, not GPU figures)")
    c.data = build_data(M.job_config(args, "resnet18", True))  # the synthetic set and cache
    print(
        f"data: {len(c.data.train)} training images from the cache "
        f"({time.monotonic() - c.start:.0f} s to prepare)\n"
    )
    single_rows(c)
    share_rows(c)
    fused_rows(c)
    phase_rows(c)
    if args.no_compile:
        print("\ntorch.compile rows: not run (--no-compile)")
    else:
        compiled_rows(c)
    print(f"\ndone in {time.monotonic() - c.start:.0f} s" + ("" if gpu else "; measured no GPU"))
    estimate_lines(c)


if __name__ == "__main__":
    main()
