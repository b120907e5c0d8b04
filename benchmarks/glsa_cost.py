"""What the GLSA block costs: parameters, FLOPs, train-step time; SDPA vs explicit attention.

    python benchmarks/glsa_cost.py [--batch 4] [--steps 5] [--attn-batch 2]

1. resnet18 / resnet50 at 224x224 with the default block (conf/glsa/default.yaml, CBAM,
   original fusion and residual) vs the plain backbone (attention=none): parameters, forward
   FLOPs (torch.utils.flop_counter, batch 1, via glattn.models.count_flops) and their ratios.
2. Train-step time (forward, cross-entropy, backward, AdamW step) of both models in one
   process, interleaved step by step (the order alternating), median over --steps steps
   after one warm-up step; ratio GLSA / plain.
3. The block's attention on 14x14, 28x28 and 56x56 maps (resnet50's default block: width
   1024/4 = 256, 8 heads of 32): F.scaled_dot_product_attention vs the explicit
   softmax(QK^T/sqrt(d))V (glattn.models.glsa.explicit_attention, written as usual: at its
   peak it holds two (B, h, N, N) tensors). Time: median of interleaved repeats.
   Peak memory: on CPU torch keeps no allocator peak counter (and the profiler's memory
   events missed SDPA's allocations here), so each variant runs once in a fresh subprocess:
   warm-up call on a 4x4 map, inputs created, the kernel's resident-set high-water mark
   reset to the current RSS (`echo 5 > /proc/self/clear_refs`, Linux >= 4.0), one call, then
   peak = VmHWM - VmRSS before the call: the extra memory the call touched at its peak,
   output included. MALLOC_MMAP_THRESHOLD_=65536 makes glibc serve every large tensor from
   fresh pages, so reused heap memory cannot hide an allocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glattn.models import build_model, count_flops  # noqa: E402
from glattn.models.glsa import explicit_attention  # noqa: E402

WIDTH, HEADS = 256, 8


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return hydra_compose("config", overrides=list(overrides))


def train_step_times(models: dict, batch: int, steps: int) -> dict[str, list[float]]:
    x = torch.randn(batch, 3, 224, 224)
    y = torch.arange(batch) % 7
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    times = {k: [] for k in models}
    names = list(models)
    for i in range(steps + 1):
        for name in names if i % 2 == 0 else names[::-1]:
            model, opt = models[name], opts[name]
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            if i > 0:  # step 0 warms up
                times[name].append(time.perf_counter() - start)
    return times


def model_rows(batch: int, steps: int) -> list[str]:
    rows = []
    for backbone in ("resnet18", "resnet50"):
        torch.manual_seed(0)
        models = {
            "plain": build_model(compose(f"backbone={backbone}", "attention=none")).train(),
            "glsa": build_model(compose(f"backbone={backbone}")).train(),
        }
        params = {k: m.count_parameters()["total"] for k, m in models.items()}
        flops = {k: count_flops(m, 224) for k, m in models.items()}
        times = train_step_times(models, batch, steps)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(
            f"| {backbone} | {params['plain'] / 1e6:.2f} M | {params['glsa'] / 1e6:.2f} M | "
            f"{params['glsa'] / params['plain']:.3f} | {flops['plain'] / 1e9:.2f} | "
            f"{flops['glsa'] / 1e9:.2f} | {flops['glsa'] / flops['plain']:.3f} | "
            f"{med['plain'] * 1e3:.0f} | {med['glsa'] * 1e3:.0f} | "
            f"{med['glsa'] / med['plain']:.2f} |"
        )
        print(rows[-1], flush=True)
    return rows


def qkv(side: int, batch: int):
    gen = torch.Generator().manual_seed(0)
    shape = (batch, HEADS, side * side, WIDTH // HEADS)
    return [torch.randn(shape, generator=gen) for _ in range(3)]


def attend(impl: str, q, k, v):
    with torch.no_grad():
        if impl == "sdpa":
            return F.scaled_dot_product_attention(q, k, v)
        return explicit_attention(q, k, v)


def _proc_status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {key}")


def peak_memory_child(impl: str, side: int, batch: int) -> None:
    """Runs in a fresh process: print the peak-RSS growth (bytes) of one attention call."""
    attend(impl, *qkv(4, batch))  # load kernels, start thread pools
    q, k, v = qkv(side, batch)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _proc_status("VmRSS")
    out = attend(impl, q, k, v)
    peak = _proc_status("VmHWM") - before
    print(json.dumps({"bytes": peak, "finite": bool(out.isfinite().all())}))


def peak_memory(impl: str, side: int, batch: int, threads: int) -> int:
    cmd = [sys.executable, __file__, "--child", impl, str(side), str(batch), "--threads"]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(cmd + [str(threads)], check=True, capture_output=True, text=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["finite"]
    return result["bytes"]


def attention_rows(batch: int, repeats: int, threads: int) -> list[str]:
    rows = []
    for side in (14, 28, 56):
        q, k, v = qkv(side, batch)
        diff = (attend("sdpa", q, k, v) - attend("explicit", q, k, v)).abs().max().item()
        times = {"sdpa": [], "explicit": []}
        for i in range(repeats + 1):
            for impl in ("sdpa", "explicit") if i % 2 == 0 else ("explicit", "sdpa"):
                start = time.perf_counter()
                attend(impl, q, k, v)
                if i > 0:
                    times[impl].append(time.perf_counter() - start)
        t = {k: statistics.median(x) * 1e3 for k, x in times.items()}
        mem = {
            impl: peak_memory(impl, side, batch, threads) / 2**20 for impl in ("sdpa", "explicit")
        }
        scores = batch * HEADS * (side * side) ** 2 * 4 / 2**20  # one (B, h, N, N) fp32 tensor
        rows.append(
            f"| {side}x{side} | {side * side} | {t['sdpa']:.1f} | {t['explicit']:.1f} | "
            f"{t['sdpa'] / t['explicit']:.2f} | {mem['sdpa']:.1f} | {mem['explicit']:.1f} | "
            f"{mem['sdpa'] / max(mem['explicit'], 1e-9):.3f} | {scores:.1f} | {diff:.1e} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2, help="train-step batch at 224x224")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable on a shared CPU)"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed train steps per model")
    parser.add_argument("--attn-batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed attention calls")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        impl, side, batch = args.child
        return peak_memory_child(impl, int(side), int(batch))
    started = time.perf_counter()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU (load average "
        f"{os.getloadavg()[0]:.1f} at start); train step: batch {args.batch} at 224x224, "
        f"median of {args.steps} interleaved steps"
    )
    print()
    print(
        "| backbone | params plain | params GLSA | ratio | GFLOPs plain | GFLOPs GLSA | ratio "
        "| step ms plain | step ms GLSA | time ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    model_rows(args.batch, args.steps)
    print()
    print(
        f"Attention of the default resnet50 block (width {WIDTH}, {HEADS} heads of "
        f"{WIDTH // HEADS}), batch {args.attn_batch}, fp32, forward; median of {args.repeats} "
        f"calls; peak = growth of peak RSS in a fresh process"
    )
    print()
    print(
        "| map | N | SDPA ms | explicit ms | time ratio | SDPA peak MiB | explicit peak MiB "
        "| memory ratio | one N^2 score tensor MiB | max abs diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    attention_rows(args.attn_batch, args.repeats, args.threads)
    print()
    print(
        f"total benchmark time {time.perf_counter() - started:.0f} s; load average "
        f"{os.getloadavg()[0]:.1f} at the end"
    )


if __name__ == "__main__":
    main()
