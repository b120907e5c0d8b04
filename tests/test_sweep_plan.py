"""Plan mode: `python run.py -m ... sweep.plan=true` prints the grid, what is done and the
estimated cost, and runs and creates nothing."""

import re

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from test_sweep_helpers import ROOT, run_cli

GRID = ["debug=smoke", "fusion=original,learnable_gate", "seed=0,1"]


def _fingerprint(*overrides):
    from glattn.config import config_fingerprint

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        return config_fingerprint(task), task


def test_plan_without_store_creates_nothing(tmp_path):
    out = tmp_path / "out"
    res = run_cli(ROOT / "run.py", *GRID, f"paths.output_dir={out}", "sweep.plan=true", cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[glattn plan] glattn: 4 jobs: 0 done, 4 to run" in res.stdout
    assert "tracking store does not exist yet" in res.stdout
    assert not (out / "mlflow.db").exists()
    assert not list((out / "sweeps").glob("*/*/0"))  # no job ran


def test_plan_marks_done_jobs_and_estimates_cost(tmp_path):
    from mlflow.tracking import MlflowClient

    from glattn.job.spec import route_debug
    from glattn.tracking import get_experiment_id, resolve_uri

    out = tmp_path / "out"
    common = ["debug=smoke", f"paths.output_dir={out}"]
    done_fp, task = _fingerprint(*common, "fusion=learnable_gate", "seed=1")
    route_debug(task)  # debug=smoke: the job's run is in glattn-debug
    client = MlflowClient(resolve_uri(task.tracking.uri))
    run = client.create_run(
        get_experiment_id(task.tracking),
        tags={
            "glattn.role": "job",
            "task": "train",
            "fingerprint": done_fp,
            "backbone": "resnet18",
            "dataset": "synthetic",
        },
    )
    client.log_metric(run.info.run_id, "time/epoch_s", 40.0, step=1)
    client.set_terminated(run.info.run_id, "FINISHED")

    res = run_cli(ROOT / "run.py", *GRID, f"paths.output_dir={out}", "sweep.plan=true", cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "4 jobs: 1 done, 3 to run" in res.stdout
    rows = [line for line in res.stdout.splitlines() if re.match(r"\s+\d+\s+(done|todo)", line)]
    assert len(rows) == 4
    (done,) = [r for r in rows if " done " in r]
    assert done_fp in done and run.info.run_id in done and "fusion=learnable_gate seed=1" in done
    # the command line's overrides are listed once, not on every row
    assert f"every job: debug=smoke paths.output_dir={out} sweep.plan=True" in res.stdout
    assert not any("sweep.plan" in r for r in rows)
    # 3 jobs x median time/epoch_s (40 s) x trainer.max_epochs (1 in debug=smoke)
    assert all(" 40s " in r for r in rows if " todo " in r)
    assert "estimated cost: 2.0m of job time for 3 of 3 jobs" in res.stdout
    # compute per job: 3 x forward FLOPs x training images x max_epochs, from the real model
    import torch

    from glattn import build_model
    from glattn.models import count_flops
    from glattn.sweep.plan import _fmt_pflop

    d = task.dataset
    train_images = d.num_images * (1 - d.val_fraction - d.test_fraction)
    with torch.device("meta"):
        flops = count_flops(build_model(task), d.image_size)
    pflop = 3 * flops * train_images * task.trainer.max_epochs / 1e15
    assert all(f" {_fmt_pflop(pflop)} " in r for r in rows if "learnable_gate" in r)
    assert f"compute: {_fmt_pflop(3 * pflop)} PFLOP for 3 of 3 jobs" in res.stdout
    # disk per finished run: ~1.2 x fp32 weights + 5 MB, from the same model
    from glattn.sweep.plan import _fmt_bytes

    with torch.device("meta"):
        params = sum(p.numel() for p in build_model(task).parameters())
    disk = 1.2 * 4 * params + 5e6
    assert all(f" {_fmt_bytes(disk)} " in r for r in rows if "learnable_gate" in r)
    assert f"disk: {_fmt_bytes(3 * disk)} for the 3 jobs to run, {_fmt_bytes(4 * disk)}" in (
        res.stdout
    )
    runs = client.search_runs([get_experiment_id(task.tracking)])
    assert [r.info.run_id for r in runs] == [run.info.run_id]  # no parent run, no job run


def test_plan_jobs_with_errors_are_errors(tmp_path):
    out = tmp_path / "out"
    res = run_cli(
        ROOT / "run.py",
        "debug=smoke",
        "seed=0,1",
        "task=eval",
        "ckpt_path=${glattn.source_ckpt:}",  # no transfer.source: cannot resolve
        f"paths.output_dir={out}",
        "sweep.plan=true",
        cwd=ROOT,
    )
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert "2 jobs: 0 done, 0 to run, 2 with errors" in res.stdout
    assert "2 job(s) with errors (listed above)" in res.stdout
    assert res.stdout.count("error: InterpolationResolutionError") == 2
    assert not (out / "mlflow.db").exists()
