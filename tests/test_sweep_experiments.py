"""experiments/*.yaml: each composes, expands to its documented number of jobs, sweeps only
real config options; Table 5's eval stage finds its training job's checkpoint."""

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from glattn.sweep import expand as sweep_grid

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
EXPERIMENTS = ROOT / "experiments"
JOBS = {  # also written in each file's header ("= N jobs")
    "table1_backbones": 54,
    "table2_cbam": 54,
    "table3_fusion": 36,
    "table4_residual": 24,
    "table5_transfer": 9,
    "table6_efficiency": 27,
}


def _compose(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def expand(cfg, extra=()) -> list[list[str]]:
    return sweep_grid.jobs(sweep_grid.arguments(cfg.hydra.sweeper.params, extra))


def documented_jobs(name: str) -> int:
    text = (EXPERIMENTS / f"{name}.yaml").read_text()
    return int(re.findall(r"= (\d+) jobs", text)[-1])


def test_every_experiment_file_is_tested():
    assert {p.stem for p in EXPERIMENTS.glob("*.yaml")} == set(JOBS) | {"paper"}


@pytest.mark.parametrize("name", sorted(JOBS))
def test_experiment_composes_and_expands(name, tmp_path):
    cfg = _compose(f"experiment={name}", f"paths.output_dir={tmp_path}")
    assert cfg.tracking.experiment == name
    assert OmegaConf.select(cfg, "hydra.sweeper.params.seed") == "0,1,2"
    jobs = expand(cfg)
    assert len(jobs) == JOBS[name] == documented_jobs(name)
    assert len({tuple(sorted(j)) for j in jobs}) == len(jobs)
    for key, values in cfg.hydra.sweeper.params.items():  # swept groups are real options
        if (CONF / key).is_dir():
            for value in str(values).split(","):
                assert (CONF / key / f"{value}.yaml").is_file(), (name, key, value)
    for job in (jobs[0], jobs[-1]):  # a job composes with the experiment's overrides
        job_cfg = _compose(f"experiment={name}", f"paths.output_dir={tmp_path}", *job)
        choices = job_cfg.hydra.runtime.choices
        for override in job:
            key, value = override.split("=", 1)
            got = choices[key] if key in choices else str(OmegaConf.select(job_cfg, key))
            assert got == value, (name, override)


def test_paper_runs_every_table_in_order():
    from glattn.sweep.paper import load_stages

    stages = load_stages()
    names = [s[0].split("=", 1)[1] for s in stages]
    assert sorted(set(names)) == sorted(JOBS)
    t5 = [i for i, n in enumerate(names) if n == "table5_transfer"]
    assert len(t5) == 2 and "task=eval" not in stages[t5[0]] and "task=eval" in stages[t5[1]]
    total = sum(len(expand(_compose(*s))) for s in stages)
    assert total == documented_jobs("paper") == sum(JOBS.values()) + JOBS["table5_transfer"]


def test_table5_eval_job_resolves_its_training_checkpoint(tmp_path):
    from glattn.config import config_fingerprint
    from glattn.sweep.transfer import training_overrides

    out = f"paths.output_dir={tmp_path}"
    # the training job, as the first sweep composes it
    train_cfg = _compose("experiment=table5_transfer", out, "attention=cbam", "seed=1")
    assert train_cfg.dataset.name == "ham10000"
    HydraConfig.instance().set_config(train_cfg)
    assert train_cfg.ckpt_path is None  # task=train: nothing to resolve
    train_task = OmegaConf.masked_copy(train_cfg, [k for k in train_cfg if k != "hydra"])
    expected = Path(tmp_path) / "checkpoints" / config_fingerprint(train_task) / "best.pt"
    # the eval job of the second sweep
    eval_overrides = [
        "experiment=table5_transfer",
        out,
        "task=eval",
        "dataset=isic2018",
        "dataset.eval_split=official_test",
        "ckpt_path=${glattn.source_ckpt:}",
        "attention=cbam",
        "seed=1",
    ]
    assert training_overrides(eval_overrides, ["dataset=ham10000"]) == [
        "experiment=table5_transfer",
        out,
        "attention=cbam",
        "seed=1",
        "dataset=ham10000",
    ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        eval_cfg = compose("config", overrides=eval_overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(eval_cfg)
        assert eval_cfg.dataset.name == "isic2018"
        with pytest.raises(Exception, match="run the training sweep first"):
            _ = eval_cfg.ckpt_path
        expected.parent.mkdir(parents=True)
        expected.write_bytes(b"")
        assert Path(eval_cfg.ckpt_path) == expected


def test_table5_transfer_source_on_the_command_line_finds_the_same_training(tmp_path):
    """`transfer.source=[...]` given to the eval sweep (e.g. with dataset.root) is routing, not
    training: it is dropped from the training overrides and never enters a fingerprint."""
    from glattn.config import config_fingerprint
    from glattn.sweep.transfer import training_overrides

    source = "transfer.source=['dataset=ham10000','dataset.root=/data/HAM10000']"
    eval_overrides = ["experiment=table5_transfer", "task=eval", source, "seed=1"]
    assert training_overrides(eval_overrides, ["dataset=ham10000"]) == [
        "experiment=table5_transfer",
        "seed=1",
        "dataset=ham10000",
    ]
    out = f"paths.output_dir={tmp_path}"
    plain = _compose("experiment=table5_transfer", out, "seed=1")
    routed = _compose("experiment=table5_transfer", out, "seed=1", source)
    assert plain.transfer.source != routed.transfer.source
    assert config_fingerprint(plain) == config_fingerprint(routed)


#: The seed's paper protocol (its COMMON_ARGS, quoted in experiments/README.md).
PROTOCOL = {
    "trainer.batch_size": 32,
    "optimizer._target_": "torch.optim.AdamW",
    "optimizer.lr": 1e-3,
    "scheduler._target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
    "loss._target_": "glattn.losses.FocalLoss",
    "loss.alpha": 0.25,
    "loss.gamma": 2.0,
    "trainer.max_epochs": 100,
    "trainer.early_stopping_patience": 15,
}
#: Deliberate per-table differences, each named with its reason in experiments/README.md.
PROTOCOL_DEVIATIONS = {
    "table6_efficiency": {"trainer.max_epochs": 10, "trainer.early_stopping_patience": None},
}


@pytest.mark.parametrize("name", sorted(JOBS))
def test_every_job_of_every_table_follows_the_seed_protocol(name, tmp_path):
    from glattn.sweep.estimate import job_grid

    cfg = _compose(f"experiment={name}", f"paths.output_dir={tmp_path}")
    want = {**PROTOCOL, **PROTOCOL_DEVIATIONS.get(name, {})}
    jobs = expand(cfg)
    # first and last job, and the synthetic set whose dataset_trainer defaults must not win
    for job in (jobs[0], jobs[-1], [*jobs[0], "dataset=synthetic"]):
        job_cfg = _compose(f"experiment={name}", f"paths.output_dir={tmp_path}", *job)
        got = {key: OmegaConf.select(job_cfg, key) for key in want}
        assert got == want, (name, job)
    # the compute estimate reads the same number of epochs
    assert job_grid(EXPERIMENTS / f"{name}.yaml")[1] == want["trainer.max_epochs"]
