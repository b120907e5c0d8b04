"""Disk names and one copy of the weights on one smoke run (debug=smoke, compose API,
temporary dirs):

- disk: a FINISHED run keeps one copy of its best weights (the MLflow artifact), no last.pt,
  no local best.pt; bytes on disk <= 1.2 x fp32 weights + 5 MB; ``glattn.load_model`` loads
  it from a run id, a ``runs:/`` URI or a file;
- names: what differs within the grid, then ``s{seed}``, then the other run-name groups
  (``{backbone}_{attention}_{fusion}_{residual}_{dataset}_s{seed}`` when nothing differs;
  ``name`` a prefix), unique within every grid of the experiments; ``choice.<group>``
  params; ``tags=[...]`` as MLflow tags, outside the fingerprint;
- ``ckpt_path=...`` with ``task=train``: fine-tunes from another run's weights, resumes from
  the config's own checkpoint;
- console: the ``mlflow ui`` command, INFO progress lines when stderr is not a terminal;
- Grad-CAM on the last stage whose map is >= 7x7; ``debug=profile``.
"""

import logging
from pathlib import Path

import conftest
import pytest
import torch
from omegaconf import OmegaConf, open_dict

import glattn
from glattn.checkpoint import TRAINING_STATE, checkpoint_dir, load_checkpoint
from glattn.config import ConfigError, config_fingerprint, group_choices
from glattn.groups import RECORDED_GROUPS as GROUPS
from glattn.job import main
from glattn.job.spec import run_name
from glattn.tracking.names import debug_experiment

MB = 2**20

pytestmark = pytest.mark.usefixtures("one_thread")


def smoke_cfg(out: Path, *overrides: str):
    return conftest.smoke_cfg(out, *overrides, hydra=True)


store = conftest.store_client


def only_run(out: Path, experiment: str = "glattn"):
    c = store(out)  # every run here is debug=smoke: in <experiment>-debug
    (run,) = c.search_runs([c.get_experiment_by_name(debug_experiment(experiment)).experiment_id])
    return run


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("disk")
    cfg = smoke_cfg(out, "tags=[baseline,v2]")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("glattn").addHandler(handler)
    try:
        metrics = main(cfg)
    finally:
        logging.getLogger("glattn").removeHandler(handler)
    return out, cfg, metrics, only_run(out), [r.getMessage() for r in records]


# ----------------------------------------------------------------------------- disk
def test_finished_run_keeps_one_copy_of_its_weights(trained):
    out, cfg, metrics, run, _ = trained
    ckpt_dir = checkpoint_dir(cfg)
    assert {p.name for p in ckpt_dir.iterdir()} == {".lock"}  # no last.pt, no local best.pt
    artifact_dir = Path(run.info.artifact_uri.removeprefix("file://"))
    (best,) = artifact_dir.rglob("*.pt")
    assert best.relative_to(artifact_dir).as_posix() == "checkpoints/best.pt"
    ckpt = load_checkpoint(best)
    assert not set(TRAINING_STATE) & set(ckpt)  # no optimizer, scheduler, RNG state
    assert ckpt["metrics"]["best/val/balanced_acc"] == metrics["best/val/balanced_acc"]
    assert ckpt["config"]["dataset"]["name"] == "synthetic" and ckpt["state"]["finished"]
    fp32 = 4 * metrics["model/params_total"]
    run_dir = out / "runs" / run.data.tags["fingerprint"]
    on_disk = folder_bytes(run_dir) + folder_bytes(ckpt_dir) + folder_bytes(artifact_dir.parent)
    assert on_disk <= 1.2 * fp32 + 5 * MB, (on_disk / MB, fp32 / MB)
    assert best.stat().st_size <= 1.05 * fp32 + 1 * MB


def test_load_model_from_run_id_uri_and_file(trained, tmp_path):
    out, cfg, metrics, run, _ = trained
    uri = f"sqlite:///{out}/mlflow.db"
    x = torch.rand(2, 3, 32, 32)
    outputs = []
    file = store(out).download_artifacts(run.info.run_id, "checkpoints/best.pt", str(tmp_path))
    for ref in (run.info.run_id, f"runs:/{run.info.run_id}", file):
        model = glattn.load_model(ref, tracking_uri=uri)
        assert not model.training and model.config.backbone.name == "resnet18"
        with torch.no_grad():
            outputs.append(model(x))
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])
    with pytest.raises(Exception, match="no MLflow run"):
        glattn.load_model("0" * 32, tracking_uri=uri)


def test_finished_config_in_another_experiment_reuses_the_artifact(trained):
    out, cfg, metrics, run, _ = trained
    again = main(smoke_cfg(out, "tracking.experiment=again"))
    new = only_run(out, "again")
    assert new.info.status == "FINISHED" and new.info.run_id != run.info.run_id
    assert again["best/val/balanced_acc"] == metrics["best/val/balanced_acc"]
    assert "time/train_total_s" not in again  # reused: the source run measured the training
    assert not (checkpoint_dir(cfg) / "last.pt").exists()


# ----------------------------------------------------------------------------- names
def test_run_name_choice_params_and_tags(trained):
    out, cfg, metrics, run, _ = trained
    assert run.info.run_name == "resnet18_cbam_original_original_synthetic_s0_smoke"
    params, tags = run.data.params, run.data.tags
    choices = group_choices(cfg)
    assert {g: params[f"choice.{g}"] for g in GROUPS} == choices
    assert params["choice.fusion"] == "original" and params["choice.loss"] == "focal"
    assert tags["tags"] == "baseline,v2"
    assert tags["tag.baseline"] == "true" and tags["tag.v2"] == "true"


def test_name_is_a_prefix_and_labels_do_not_change_the_fingerprint(tmp_path):
    plain = smoke_cfg(tmp_path)
    labelled = smoke_cfg(tmp_path, "name=pilot", "tags=[a,b]")
    assert config_fingerprint(plain) == config_fingerprint(labelled)
    assert run_name(labelled, group_choices(labelled)) == (
        "pilot_resnet18_cbam_original_original_synthetic_s0_smoke"
    )
    with pytest.raises(ConfigError, match="tags"):
        main(smoke_cfg(tmp_path, "tags=['has space!']"))


def _grid_names(experiment: str) -> list[str]:
    """Every job's run name as a multirun job names itself: the experiment composed once,
    its swept keys leading, each job's group choices and seed applied to its choices (two
    jobs are composed in full and must agree)."""
    from glattn.sweep import expand
    from glattn.tracking import names

    # the grids' own configs (no debug preset: a preset adds its name to the run name)
    base = conftest.compose_cfg(
        "paths.output_dir=/tmp", f"experiment={experiment}", return_hydra_config=True
    )
    params = expand.arguments(base.hydra.sweeper.params)
    jobs = expand.jobs(params)
    lead = names.lead_order(names.swept_keys(params))
    out = []
    for job in jobs:
        overrides = dict(o.split("=", 1) for o in job)
        choices = {**group_choices(base), **{k: v for k, v in overrides.items() if k in GROUPS}}
        out.append(names.run_name(choices, int(overrides.get("seed", base.seed)), lead))
    for job, name in [(jobs[0], out[0]), (jobs[-1], out[-1])]:
        cfg = conftest.compose_cfg(
            "paths.output_dir=/tmp", f"experiment={experiment}", *job, return_hydra_config=True
        )
        assert run_name(cfg, group_choices(cfg)) == name
    return out


@pytest.mark.parametrize(
    "experiment",
    [
        "table1_backbones",
        "table2_cbam",
        "table3_fusion",
        "table4_residual",
        "table5_transfer",
        "table6_efficiency",
    ],
)
def test_run_names_are_unique_within_every_grid(experiment):
    names = _grid_names(experiment)
    assert len(names) == len(set(names)) > 1, sorted(n for n in names if names.count(n) > 1)
    # what differs first, then the seed, then the rest of the seed's name content
    assert all(any(f"_s{s}_" in n for s in (0, 1, 2)) for n in names), names[:3]


def test_run_names_lead_with_what_differs_then_the_seed(tmp_path):
    """A sweep's run name shows its choice and seed within the runs table's default name
    width (~22 characters); the seed README's name content follows."""
    from hydra.core.hydra_config import HydraConfig

    from glattn.tracking import names

    choices = dict(backbone="resnet18", attention="cbam", fusion="learnable_gate")
    choices.update(residual="original", dataset="synthetic", loss="focal")
    name = names.run_name(choices, 1, ["fusion"])
    assert name == "learnable_gate_s1_resnet18_cbam_original_synthetic" and "_s1" in name[:22]
    classic = "resnet18_cbam_learnable_gate_original_synthetic_s1"
    assert names.run_name(choices, 1, ["seed"]) == names.run_name(choices, 1) == classic
    lr = names.run_name({**choices, "optimizer.lr": 0.01}, 0, ["optimizer.lr"])
    assert lr.startswith("lr0.01_s0_resnet18_cbam_learnable_gate")
    assert names.lead_order(["seed", "optimizer.lr", "loss", "fusion"]) == [
        "fusion",
        "loss",
        "optimizer.lr",
        "seed",
    ]
    swept = names.swept_keys(["fusion=a,b", "seed=0", "+trainer.x=1,2", "dataset=isic2018"])
    assert swept == ["fusion", "trainer.x"]
    # a multirun job reads what its launch sweeps from the sweep folder's multirun.yaml
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    job = ["fusion=learnable_gate", "seed=1", "+trainer.hf_token=abc"]
    cfg = conftest.compose_cfg(
        "debug=smoke", f"paths.output_dir={tmp_path}", *job, return_hydra_config=True
    )
    task = ["fusion=original,learnable_gate", "seed=0,1", "+trainer.hf_token=a,b", "debug=smoke"]
    launch = {"hydra": {"overrides": {"task": task}, "sweeper": {"params": None}}}
    OmegaConf.save(OmegaConf.create(launch), sweep / "multirun.yaml")
    with open_dict(cfg.hydra):
        cfg.hydra.mode = "MULTIRUN"
        cfg.hydra.sweep.dir = str(sweep)
    HydraConfig.instance().set_config(cfg)
    # a swept secret never leads a name
    expected = "learnable_gate_s1_resnet18_cbam_original_synthetic_smoke"
    assert run_name(cfg, group_choices(cfg)) == expected


def test_ckpt_path_with_task_train_fine_tunes_from_another_run(trained):
    out, cfg, metrics, run, _ = trained
    ref = f"runs:/{run.info.run_id}/checkpoints/best.pt"
    tuned_cfg = smoke_cfg(out, f"ckpt_path='{ref}'", "tracking.experiment=tuned")
    assert config_fingerprint(tuned_cfg) != config_fingerprint(cfg)  # a new training
    main(tuned_cfg)
    tuned = only_run(out, "tuned")
    assert tuned.info.status == "FINISHED" and tuned.data.tags["init_from"] == ref
    history = store(out).get_metric_history(tuned.info.run_id, "val/balanced_acc")
    assert [h.step for h in history] == [1]  # trained anew: its own epoch 1


@pytest.mark.slow
def test_ckpt_path_with_task_train_resumes_the_configs_own_checkpoint(tmp_path):
    """A killed 2-epoch run left its own last.pt after epoch 1: ckpt_path=that file resumes
    it (even with trainer.resume=false): one epoch more, the same fingerprint."""
    cfg = smoke_cfg(tmp_path, "trainer.max_epochs=2", "trainer.keep_last=true")
    main(cfg)
    last = checkpoint_dir(cfg) / "last.pt"
    ckpt = torch.load(last, weights_only=True)  # as a kill after epoch 1 would leave it
    ckpt["state"].update(finished=False, epoch=1, history=ckpt["state"]["history"][:1])
    ckpt["state"].update(stopped_early=False)
    ckpt["epoch"] = 1
    torch.save(ckpt, last)
    again = smoke_cfg(
        tmp_path,
        "trainer.max_epochs=2",
        "trainer.resume=false",
        f"ckpt_path={last}",
        "tracking.experiment=own",
    )
    assert config_fingerprint(again) == config_fingerprint(cfg)  # its own checkpoint
    main(again)
    run = only_run(tmp_path, "own")
    history = store(tmp_path).get_metric_history(run.info.run_id, "train/loss")
    assert sorted(h.step for h in history) == [1, 2]  # epoch 1 from the checkpoint, 2 trained
    assert "init_from" not in run.data.tags


# ----------------------------------------------------------------------------- console
def test_run_end_prints_the_mlflow_ui_command_and_progress_lines(trained):
    out, cfg, metrics, run, messages = trained
    command = f"mlflow ui --backend-store-uri sqlite:///{out}/mlflow.db"
    assert any(command in m for m in messages), messages[-5:]
    steps = [m for m in messages if m.startswith("epoch 1 step ")]  # stderr is no terminal
    assert steps and all("train/loss" in m and "img/s" in m and "ETA" in m for m in steps)


def test_ui_command_for_each_store(tmp_path, monkeypatch):
    from glattn.tracking import ui_command

    monkeypatch.chdir(tmp_path)
    assert ui_command("sqlite:///outputs/mlflow.db") == (
        f"mlflow ui --backend-store-uri sqlite:///{tmp_path.resolve()}/outputs/mlflow.db"
    )
    assert "http://127.0.0.1:5000" in ui_command("http://127.0.0.1:5000")
    assert "secret" not in ui_command("postgresql://me:secret@db/mlflow")
    assert "tracking is off" in ui_command(None)


# ----------------------------------------------------------------------------- Grad-CAM
@pytest.mark.parametrize(
    "size, layer, side", [(32, "layer1", 8), (64, "layer2", 8), (224, "layer4", 7)]
)
def test_gradcam_uses_the_last_stage_of_at_least_7x7(tmp_path, size, layer, side):
    from glattn.gradcam import cam_layer

    cfg = smoke_cfg(tmp_path, f"dataset.image_size={size}")
    model = glattn.build_model(cfg)
    name, module, shape = cam_layer(model, size)
    assert (name, shape) == (layer, (side, side))
    if name in model.glsa:  # the GLSA block's output when the stage has one
        assert module is model.glsa[name]


def test_default_run_gradcam_title_names_the_layer(trained):
    messages = trained[4]
    assert any("Grad-CAM grid on layer1, 8x8 map" in m for m in messages)


# ----------------------------------------------------------------------------- profile
@pytest.mark.slow  # ~20 s on 2 shared cores: the profiler's own overhead
def test_debug_profile_logs_trace_and_top_operators(tmp_path):
    cfg = smoke_cfg(tmp_path, "debug=profile", "dataset.image_size=32", "trainer.device=cpu")
    assert cfg.trainer.profile and cfg.trainer.max_epochs == 1
    main(cfg)
    run = only_run(tmp_path)
    names = {a.path for a in store(tmp_path).list_artifacts(run.info.run_id, "profile")}
    assert names == {"profile/trace.json.gz", "profile/top_operators.txt"}
    table = next(tmp_path.glob("runs/*/profile/top_operators.txt")).read_text()
    assert "Self CPU" in table and "aten::" in table
    assert OmegaConf.select(cfg, "trainer.profile") is True


def test_one_epoch_training_curves_show_markers(tmp_path, monkeypatch):
    """The run's own training_curves.png: one epoch is a visible point on every curve,
    accuracies in percent, a legend where a panel has more than one curve."""
    import matplotlib.pyplot as plt

    from glattn.job.outputs import plot_curves

    figs = []
    monkeypatch.setattr(plt, "close", figs.append)
    row = {
        "epoch": 1,
        "train/loss": 0.5,
        "val/loss": 0.6,
        "train/acc": 0.4,
        "val/acc": 0.3,
        "val/balanced_acc": 0.3,
        "val/macro_f1": 0.2,
        "lr": 1e-3,
    }
    plot_curves(tmp_path / "curves.png", [row])
    (fig,) = figs
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert len(lines) == 7 and all(line.get_marker() not in (None, "", "None") for line in lines)
    assert all(line.get_marker() == "o" for line in lines)  # a point, not a dot
    loss, accuracy, lr = fig.axes
    assert [line.get_ydata()[0] for line in accuracy.get_lines()] == [40.0, 30.0, 30.0, 20.0]
    assert "%" in accuracy.get_title() and lr.get_legend() is None
    assert loss.get_legend() is not None and accuracy.get_legend() is not None
    for ax in fig.axes:  # whole epochs only, though the view spans less than one
        lo, hi = ax.get_xlim()
        assert [t for t in ax.get_xticks() if lo <= t <= hi] == [1.0]


@pytest.mark.parametrize("total, level", [(2000, logging.INFO), (50, logging.DEBUG)])
def test_progress_lines_without_a_terminal(total, level, caplog):
    """Synthetic generation and cache building: a line every tenth of the work (stderr is
    not a terminal under pytest), INFO for long work, DEBUG for a few seconds' worth."""
    from glattn.logging_utils import Progress

    caplog.set_level(logging.DEBUG, logger="glattn")
    with Progress(total, "image cache", logger=logging.getLogger("glattn.test")) as bar:
        for _ in range(total):
            bar.update()
    lines = [r for r in caplog.records if r.name == "glattn.test"]
    assert len(lines) == 10 and {r.levelno for r in lines} == {level}
    assert lines[0].getMessage().startswith(f"image cache: {total // 10}/{total} img (10%")
    assert "ETA" in lines[-1].getMessage() and "(100%" in lines[-1].getMessage()
