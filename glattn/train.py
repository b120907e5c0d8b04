"""Entry points: ``main(cfg)`` dispatches ``task=train`` (``train``) and ``task=eval``
(``evaluate_checkpoint``: a trained checkpoint on another data set or split, the paper's
cross-data-set Table 5).

One training job = validate the config, build data, model, loss and optimizer, resume from
the fingerprint's last checkpoint when there is one, fit, evaluate the best checkpoint on
val (and the holdout test split), log everything to MLflow and write ``status.json``.
In a Hydra multirun (issue 5) a job nests under the sweep's parent run
(``<sweep dir>/parent_run_id``), and a job whose fingerprint already has a FINISHED run is
skipped unless ``sweep.rerun=true``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import resource
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from glattn import fit as F
from glattn.engine import evaluate
from glattn.logging_utils import setup_logging
from glattn.losses import LOSSES, build_loss
from glattn.metrics import SCALAR_METRICS, per_class_report
from glattn.tracking import (
    NullTracker,
    find_finished_run,
    flatten_config,
    git_commit,
    group_choices,
    make_tracker,
)

log = logging.getLogger(__name__)

EPOCH_METRICS = ("val/loss", "val/acc", "val/balanced_acc", "val/macro_f1", "val/auc")


class ConfigError(ValueError):
    """A config value is invalid; the message names the key, the value and what is allowed."""


# ----------------------------------------------------------------------------- validation
def validate_config(cfg: DictConfig) -> None:
    """Fail before any work with every bad value named (key, value, allowed values)."""
    errors: list[str] = []

    def get(key):
        return OmegaConf.select(cfg, key, throw_on_missing=False)

    def check(key, ok, expected):
        value = get(key)
        try:
            good = ok(value)
        except Exception:
            good = False
        if not good:
            errors.append(f"{key}={value!r}: expected {expected}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    check("task", lambda v: v in ("train", "eval"), "one of ['train', 'eval']")
    check("seed", is_int, "an integer")
    check(
        "optimizer._target_",
        lambda v: v in F.OPTIMIZERS.values(),
        f"one of {sorted(F.OPTIMIZERS.values())} (optimizer={sorted(F.OPTIMIZERS)})",
    )
    check("optimizer.lr", lambda v: is_num(v) and v > 0, "a number > 0")
    if get("optimizer.weight_decay") is not None:
        check("optimizer.weight_decay", lambda v: is_num(v) and v >= 0, "a number >= 0")
    check(
        "scheduler._target_",
        lambda v: v in F.SCHEDULERS.values(),
        f"one of {sorted(F.SCHEDULERS.values())} (scheduler={sorted(F.SCHEDULERS)})",
    )
    loss_targets = sorted(f"glattn.losses.{f.__name__}" for f in LOSSES.values())
    check(
        "loss._target_",
        lambda v: v in loss_targets,
        f"one of {loss_targets} (loss={sorted(LOSSES)})",
    )
    check("trainer.max_epochs", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    check("trainer.batch_size", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    check(
        "trainer.early_stopping_patience",
        lambda v: v is None or (is_int(v) and v >= 1),
        "null or an integer >= 1",
    )
    check("trainer.monitor", lambda v: v in EPOCH_METRICS, f"one of {list(EPOCH_METRICS)}")
    check(
        "trainer.monitor_mode",
        lambda v: v in ("auto", "max", "min"),
        "one of ['auto', 'max', 'min']",
    )
    check(
        "trainer.device",
        lambda v: re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(v)),
        "one of auto, cpu, cuda, cuda:<N>, mps",
    )
    check(
        "trainer.amp",
        lambda v: str(v).lower() in ("auto", "bf16", "fp16", "none"),
        "one of ['auto', 'bf16', 'fp16', 'none']",
    )
    check("trainer.channels_last", lambda v: v in ("auto", True, False), "auto, true or false")
    check("trainer.compile", lambda v: isinstance(v, bool), "true or false")
    check("trainer.deterministic", lambda v: isinstance(v, bool), "true or false")
    check("trainer.resume", lambda v: isinstance(v, bool), "true or false")
    check(
        "trainer.grad_clip", lambda v: v is None or (is_num(v) and v > 0), "null or a number > 0"
    )
    check("trainer.num_workers", lambda v: is_int(v) and v >= 0, "an integer >= 0")
    check("trainer.gradcam_per_class", lambda v: is_int(v) and v >= 0, "an integer >= 0")
    check("trainer.log_every_n_steps", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    check("tracking.experiment", lambda v: isinstance(v, str) and v.strip(), "a non-empty string")
    check("dataset.num_classes", lambda v: is_int(v) and v >= 2, "an integer >= 2")
    if get("task") == "eval":
        check(
            "ckpt_path",
            lambda v: v is not None and Path(str(v)).is_file(),
            "the path of an existing checkpoint file (task=eval)",
        )
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


# ----------------------------------------------------------------------------- helpers
def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def is_multirun() -> bool:
    from hydra.types import RunMode

    hc = _hydra()
    return hc is not None and hc.mode == RunMode.MULTIRUN


def job_output_dir(cfg: DictConfig, fingerprint: str) -> Path:
    """Hydra's job output dir; without Hydra (compose API): <output_dir>/runs/<fingerprint>."""
    hc = _hydra()
    hydra_dir = OmegaConf.select(hc, "runtime.output_dir", default=None) if hc else None
    if hydra_dir:
        path = Path(hydra_dir)
    else:
        path = Path(cfg.paths.output_dir).absolute() / "runs" / fingerprint
    path.mkdir(parents=True, exist_ok=True)
    return path


def sweep_parent_run_id() -> str | None:
    """The sweep's parent run id: ``<sweep dir>/parent_run_id`` (written by the sweep
    callback, issue 5), else the ``GLATTN_PARENT_RUN_ID`` environment variable (a
    launcher's env_set). Never ``MLFLOW_RUN_ID``, which would make jobs share one run."""
    hc = _hydra()
    if hc is None or not is_multirun():
        return None
    path = Path(hc.sweep.dir) / "parent_run_id"
    if path.is_file():
        return path.read_text().strip() or None
    return os.environ.get("GLATTN_PARENT_RUN_ID") or None


def job_overrides(cfg: DictConfig) -> str:
    hc = _hydra()
    overrides = list(hc.overrides.task) if hc is not None else []
    if not overrides and OmegaConf.select(cfg, "hydra.overrides.task") is not None:
        overrides = list(cfg.hydra.overrides.task)
    return " ".join(overrides)


def run_name(cfg: DictConfig, choices: dict) -> str:
    return f"{cfg.name}_{choices['fusion']}_{choices['residual']}_{choices['attention']}"


def write_status(run_dir: Path, **status) -> None:
    tmp = run_dir / ".status.json.tmp"
    tmp.write_text(json.dumps(status, indent=2, default=str))
    os.replace(tmp, run_dir / "status.json")


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@torch.no_grad()
def _latency_ms(model, image_size: int, device: torch.device, repeats: int = 5) -> float:
    model.eval()
    x = torch.zeros(1, 3, image_size, image_size, device=device)
    model(x)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def model_info(model, cfg: DictConfig, device: torch.device) -> dict:
    from glattn.models import count_flops

    info = {f"model/params_{k}": v for k, v in model.count_parameters().items()}
    size = int(cfg.dataset.image_size)
    info["model/gflops"] = count_flops(model, size) / 1e9
    info["perf/infer_latency_ms"] = _latency_ms(model, size, device)
    info["perf/peak_mem_mb"] = _peak_mem_mb(device)
    return info


def log_class_balance(data) -> None:
    for split in ("train", "val", "test"):
        ds = getattr(data, split, None)
        if ds is None:
            continue
        counts = np.bincount(np.asarray(ds.labels), minlength=len(data.class_names))
        text = ", ".join(f"{c} {n}" for c, n in zip(data.class_names, counts))
        log.info("class balance %s (%d images): %s", split, int(counts.sum()), text)


# ----------------------------------------------------------------------------- artifacts
def save_probabilities(path: Path, image_ids, probs: np.ndarray, class_names) -> Path:
    """ISIC 2018 Task 3 submission format: image,MEL,NV,BCC,AKIEC,BKL,DF,VASC."""
    frame = pd.DataFrame(probs, columns=[c.upper() for c in class_names])
    frame.insert(0, "image", list(image_ids))
    frame.to_csv(path, index=False, float_format="%.6f")
    return path


def plot_confusion(path: Path, confusion: np.ndarray, class_names, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(6, 5.5))
    ConfusionMatrixDisplay(confusion, display_labels=list(class_names)).plot(
        ax=ax, colorbar=False, cmap="Blues", values_format="d"
    )
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(path: Path, history: list[dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(history)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    frame.plot(x="epoch", y=["train/loss", "val/loss"], ax=axes[0], marker=".", title="loss")
    frame.plot(
        x="epoch",
        y=["train/acc", "val/acc", "val/balanced_acc", "val/macro_f1"],
        ax=axes[1],
        marker=".",
        title="accuracy",
    )
    frame.plot(x="epoch", y="lr", ax=axes[2], marker=".", logy=True, title="learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def split_report(run_dir: Path, prefix: str, result: dict, image_ids, class_names) -> list:
    """Probabilities CSV, per-class report CSV and confusion PNG for one evaluated split."""
    name = prefix.replace("/", "_")
    report = per_class_report(result, class_names)
    report.to_csv(run_dir / f"{name}_per_class_report.csv", index=False)
    return [
        save_probabilities(
            run_dir / f"{name}_probabilities.csv", image_ids, result["probs"], class_names
        ),
        run_dir / f"{name}_per_class_report.csv",
        plot_confusion(
            run_dir / f"{name}_confusion_matrix.png",
            result["confusion"],
            class_names,
            f"{prefix} confusion matrix",
        ),
    ]


def split_metrics(prefix: str, result: dict, class_names) -> dict:
    out = {f"{prefix}/{m}": result[m] for m in SCALAR_METRICS}
    out[f"{prefix}/loss"] = result["loss"]
    out.update({f"{prefix}/recall_{c}": result[f"recall_{c}"] for c in class_names})
    return out


# ----------------------------------------------------------------------------- train
def main(cfg: DictConfig) -> dict:
    """run.py's task: ``task=train`` trains, ``task=eval`` evaluates ``ckpt_path``."""
    validate_config(cfg)
    if cfg.task == "eval":
        return evaluate_checkpoint(cfg)
    if cfg.task == "train":
        return train(cfg)
    raise ConfigError(f"task={cfg.task!r}: expected one of ['train', 'eval']")


def train(cfg: DictConfig) -> dict:
    """Train one configuration; returns its final metrics (see CONTRACT.md)."""
    return _job(cfg, _train)


def _job(cfg: DictConfig, body) -> dict:
    """Run ``body(cfg, fingerprint, run_dir, tracker)`` as one job: skip it in a sweep when a
    FINISHED run of this fingerprint exists, mark its MLflow run FAILED on any error, and
    always leave ``status.json`` in the run dir for the sweep's summary."""
    validate_config(cfg)
    fingerprint = F.config_fingerprint(cfg)
    run_dir = job_output_dir(cfg, fingerprint)
    setup_logging(run_dir)
    log.info("run dir %s, fingerprint %s", run_dir, fingerprint)
    status = {"status": "failed", "error": None, "run_id": None, "fingerprint": fingerprint}
    if is_multirun() and not cfg.sweep.rerun:
        done = find_finished_run(cfg.tracking, fingerprint, str(cfg.task))
        if done is not None:
            log.info(
                "skipping: run %s (%s) with fingerprint %s already FINISHED "
                "(sweep.rerun=true runs it again)",
                done.info.run_id,
                done.info.run_name,
                fingerprint,
            )
            write_status(run_dir, **{**status, "status": "skipped", "run_id": done.info.run_id})
            return dict(done.data.metrics)
    tracker = make_tracker(cfg.tracking)
    try:
        metrics = body(cfg, fingerprint, run_dir, tracker)
        status["status"] = "finished"
        return metrics
    except BaseException as exc:
        status["error"] = f"{type(exc).__name__}: {exc}"
        log.error("%s failed:\n%s", cfg.task, traceback.format_exc())
        try:
            tracker.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        except Exception as end_exc:  # never hide the original error
            log.error("could not mark the MLflow run failed: %s", end_exc)
        raise
    finally:
        status["run_id"] = tracker.run_id
        write_status(run_dir, **status)


def _train(cfg: DictConfig, fingerprint: str, run_dir: Path, tracker) -> dict:
    from glattn import build_model
    from glattn.data import build_data

    F.seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    rt = F.make_runtime(cfg.trainer)
    data = build_data(cfg, run_dir)
    if data.val is None:
        raise ConfigError(
            f"dataset {cfg.dataset.name!r} has no validation split (dataset.val_fraction="
            f"{OmegaConf.select(cfg, 'dataset.val_fraction')}): training monitors "
            f"{cfg.trainer.monitor} on it; expected val_fraction > 0 or folds > 1"
        )
    log_class_balance(data)
    model = build_model(cfg)
    _log_summary(model, cfg)
    model.to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(cfg.loss, data.train_counts).to(rt.device)
    optimizer = F.build_optimizer(cfg, model)
    scheduler = F.build_scheduler(cfg, optimizer)
    net = torch.compile(model) if cfg.trainer.compile else model
    loaders = data.loaders(
        int(cfg.trainer.batch_size), int(cfg.trainer.num_workers), cfg.dataset.sampler
    )
    ckpt_dir = F.checkpoint_dir(cfg, fingerprint)
    choices = group_choices(cfg)
    loop = F.Loop(
        cfg,
        net,
        loss_fn,
        optimizer,
        scheduler,
        rt,
        loaders,
        tuple(data.class_names),
        ckpt_dir,
        run_dir,
        tracker,
        choices=choices,
        train_counts=list(data.train_counts),
    )
    ckpt = _resume_checkpoint(cfg, ckpt_dir)
    if ckpt is not None:
        loop.restore(ckpt)
        loop.state.finished = False  # until this run's final evaluation is logged
        log.info("resuming from %s after epoch %d", ckpt_dir / "last.pt", loop.state.epoch)
    tags = {
        **{
            k: choices[k]
            for k in ("backbone", "attention", "fusion", "residual", "loss", "dataset")
        },
        "seed": cfg.seed,
        "fingerprint": fingerprint,
        "git_commit": git_commit(),
        "overrides": job_overrides(cfg),
        "task": "train",
        "glattn.role": "job",
    }
    new = tracker.start(
        run_name(cfg, choices),
        tags,
        run_id=ckpt.get("mlflow_run_id") if ckpt else None,
        parent_run_id=sweep_parent_run_id(),
    )
    loop.run_id = tracker.run_id
    if new:
        tracker.log_params(flatten_config(cfg))
    _relog_history(tracker, loop.state.history)
    loop.fit()
    metrics = _finish(cfg, loop, data, model, tracker)
    _mark_finished(ckpt_dir / "last.pt")
    tracker.end("FINISHED")
    log.info("done: %s", {k: round(v, 4) for k, v in metrics.items() if k.startswith("best/")})
    return metrics


def _log_summary(model, cfg: DictConfig) -> None:
    from glattn.models import describe_model

    try:
        log.info("model:\n%s", describe_model(model, int(cfg.dataset.image_size)))
    except Exception as exc:  # the summary is informative only
        log.warning("could not summarise the model: %s", exc)


def _resume_checkpoint(cfg: DictConfig, ckpt_dir: Path) -> dict | None:
    last = ckpt_dir / "last.pt"
    fresh = not cfg.trainer.resume or (is_multirun() and cfg.sweep.rerun)
    if last.is_file() and not fresh:
        ckpt = F.load_checkpoint(last)
        if ckpt["state"]["finished"]:  # e.g. the same config in another experiment
            log.info(
                "%s is a finished training: reusing it, no epochs to run "
                "(trainer.resume=false trains again)",
                last,
            )
        return ckpt
    for name in ("last.pt", "best.pt"):  # a fresh start must not inherit a stale best.pt
        (ckpt_dir / name).unlink(missing_ok=True)
    return None


def _relog_history(tracker, history: list[dict]) -> None:
    """After a resume: log epochs that were checkpointed but not yet logged to MLflow."""
    if not history:
        return
    logged = tracker.logged_steps("val/balanced_acc")
    for row in history:
        if row["epoch"] not in logged:
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, row["epoch"])


def _mark_finished(last: Path) -> None:
    ckpt = F.load_checkpoint(last)
    ckpt["state"]["finished"] = True
    F.atomic_torch_save(ckpt, last)


def _finish(cfg: DictConfig, loop: F.Loop, data, model, tracker) -> dict:
    """Best checkpoint -> val (+ holdout test) metrics, model info, artifacts."""
    state, names, run_dir = loop.state, loop.class_names, loop.run_dir
    best_path = loop.ckpt_dir / ("best.pt" if (loop.ckpt_dir / "best.pt").is_file() else "last.pt")
    model.load_state_dict(F.load_checkpoint(best_path)["model"])
    best_epoch = state.best_epoch or state.epoch
    row = state.history[best_epoch - 1]
    metrics = {f"best/val/{m}": row[f"val/{m}"] for m in SCALAR_METRICS}
    metrics["best_epoch"] = best_epoch
    metrics["time/train_total_s"] = float(sum(r["time/epoch_s"] for r in state.history))
    val = evaluate(loop.model, loop.loaders["val"], loop.loss_fn, loop.rt, names)
    metrics.update({f"val/recall_{c}": val[f"recall_{c}"] for c in names})
    artifacts = split_report(run_dir, "val", val, data.val.image_ids, names)
    if data.test is not None and loop.loaders.get("test") is not None:
        test = evaluate(loop.model, loop.loaders["test"], loop.loss_fn, loop.rt, names)
        metrics.update(split_metrics("test", test, names))
        artifacts += split_report(run_dir, "test", test, data.test.image_ids, names)
        log.info("test (holdout): balanced_acc %.4f, auc %.4f", test["balanced_acc"], test["auc"])
    metrics.update(model_info(model, cfg, loop.rt.device))
    artifacts.append(plot_curves(run_dir / "training_curves.png", state.history))
    artifacts.append(run_dir / "training_log.csv")
    artifacts.append(run_dir / "split.csv")
    (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(F.resolved_config(cfg)))
    artifacts.append(run_dir / "config_resolved.yaml")
    if cfg.trainer.gradcam_per_class > 0:
        artifacts.append(_gradcam(loop, data, run_dir))
    tracker.log_metrics(metrics, step=state.epoch)
    tracker.log_artifacts([a for a in artifacts if a is not None])
    for path in sorted((run_dir / ".hydra").glob("*.yaml")):
        tracker.log_artifact(path, "hydra")
    if cfg.tracking.get("log_checkpoint") and not isinstance(tracker, NullTracker):
        tracker.log_artifact(best_path, "checkpoints")
    log.info("artifacts in %s", run_dir)
    return metrics


def _gradcam(loop: F.Loop, data, run_dir: Path) -> Path | None:
    from glattn.gradcam import gradcam_grid, pick_per_class

    try:
        index = pick_per_class(data.val.labels, int(loop.cfg.trainer.gradcam_per_class))
        model = getattr(loop.model, "_orig_mod", loop.model)
        images = torch.stack([data.val[i][0] for i in index])
        labels = [int(data.val.labels[i]) for i in index]
        return gradcam_grid(
            model, images, labels, loop.class_names, run_dir / "gradcam.png", device=loop.rt.device
        )
    except Exception as exc:  # a picture must not fail a finished training run
        log.warning("Grad-CAM grid failed: %s", exc, exc_info=True)
        return None


# ----------------------------------------------------------------------------- eval
def evaluate_checkpoint(cfg: DictConfig) -> dict:
    """Evaluate ``ckpt_path`` on ``cfg.dataset`` (its ``eval_split``); logs an eval run."""
    return _job(cfg, _evaluate_checkpoint)


def load_trained_model(ckpt: dict, num_classes: int | None = None):
    """Rebuild the model of a checkpoint from its own resolved config and load weights."""
    from glattn import build_model

    train_cfg = OmegaConf.create(ckpt["config"])
    if num_classes is not None and int(train_cfg.dataset.num_classes) != num_classes:
        raise ConfigError(
            f"dataset.num_classes={num_classes} but the checkpoint was trained with "
            f"{train_cfg.dataset.num_classes} classes"
        )
    model = build_model(train_cfg)
    model.load_state_dict(ckpt["model"])
    return model, train_cfg


def _evaluate_checkpoint(cfg: DictConfig, fingerprint: str, run_dir: Path, tracker) -> dict:
    from glattn.data import build_data

    F.seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    ckpt = F.load_checkpoint(cfg.ckpt_path)
    model, train_cfg = load_trained_model(ckpt, int(cfg.dataset.num_classes))
    if int(train_cfg.dataset.image_size) != int(cfg.dataset.image_size):
        log.warning(
            "the checkpoint was trained at dataset.image_size=%s, evaluating at %s",
            train_cfg.dataset.image_size,
            cfg.dataset.image_size,
        )
    rt = F.make_runtime(cfg.trainer)
    model.to(rt.device)
    split = str(cfg.dataset.eval_split)
    data = build_data(cfg, run_dir)
    dataset = data.test if data.test is not None else data.val
    split_name = "test" if data.test is not None else "val"
    loaders = data.loaders(int(cfg.trainer.batch_size), int(cfg.trainer.num_workers), "none")
    log.info(
        "evaluating %s on %s (%s, %d images)", cfg.ckpt_path, cfg.dataset.name, split, len(dataset)
    )
    # the training loss, for eval/loss (class-balanced weights from the training counts)
    train_counts = ckpt.get("train_counts") or [1] * len(data.class_names)
    loss_fn = build_loss(train_cfg.loss, train_counts).to(rt.device)
    result = evaluate(model, loaders[split_name], loss_fn, rt, data.class_names)
    names = tuple(data.class_names)
    choices = ckpt.get("choices") or {}
    eval_choices = group_choices(cfg)
    tags = {
        k: choices.get(k, "?")
        for k in ("backbone", "attention", "fusion", "residual", "loss", "dataset")
    }
    tags.update(
        seed=train_cfg.seed,
        fingerprint=fingerprint,
        source_fingerprint=ckpt.get("fingerprint", "?"),
        git_commit=git_commit(),
        overrides=job_overrides(cfg),
        task="eval",
        eval_dataset=eval_choices["dataset"],
        eval_split=split,
        source_run_id=ckpt.get("mlflow_run_id") or "",
        **{"glattn.role": "job"},
    )
    name = run_name(
        train_cfg, {k: choices.get(k, "?") for k in ("fusion", "residual", "attention")}
    )
    tracker.start(
        f"{name}_eval_{eval_choices['dataset']}_{split}", tags, parent_run_id=sweep_parent_run_id()
    )
    tracker.log_params(flatten_config(cfg))
    metrics = split_metrics("eval", result, names)
    artifacts = split_report(run_dir, "eval", result, dataset.image_ids, names)
    (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(F.resolved_config(cfg)))
    tracker.log_metrics(metrics)
    tracker.log_artifacts(artifacts + [run_dir / "config_resolved.yaml", run_dir / "split.csv"])
    tracker.end("FINISHED")
    log.info(
        "eval on %s/%s: balanced_acc %.4f, acc %.4f, auc %.4f",
        cfg.dataset.name,
        split,
        result["balanced_acc"],
        result["acc"],
        result["auc"],
    )
    return metrics
