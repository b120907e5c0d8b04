"""Helpers (no tests): a real MLflow store (sqlite in a temp dir) with runs of known values."""

from __future__ import annotations

import time
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from glattn import cli
from glattn.contract import reference_of
from glattn.data import CLASS_NAMES

CLASSES = CLASS_NAMES


def glattn(name: str, argv) -> int:
    """`glattn NAME ARGV...` (a subcommand: report, claims, estimate): its exit status."""
    return cli.main([name, *argv])


def report(argv) -> int:
    """`glattn report ARGV...`: its exit status."""
    return glattn("report", argv)


DEFAULTS = dict(
    backbone="resnet18",
    attention="cbam",
    fusion="original",
    residual="original",
    loss="focal",
    dataset="ham10000",
)


def reference_tags(tags: dict) -> list[RunTag]:
    """``reference.<group>`` of the built-in fusion and residual options, as a job logs them
    (glattn.contract.references)."""
    from hydra.utils import get_object
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf"
    out = []
    for group in ("fusion", "residual"):
        path = conf / group / f"{tags[group]}.yaml"
        if path.is_file():
            ref = reference_of(get_object(OmegaConf.load(path)._target_))
            out += [RunTag(f"reference.{group}", ref)] if ref else []
    return out


class Store:
    """A tracking store with helpers to add sweep parents and job runs."""

    def __init__(self, tmp_path):
        self.uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        self.artifacts = tmp_path / "mlartifacts"
        self.client = MlflowClient(self.uri)
        self._t = int(time.time() * 1000)

    def experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp:
            return exp.experiment_id
        return self.client.create_experiment(name, artifact_location=str(self.artifacts / name))

    def sweep(self, exp: str) -> str:
        run = self.client.create_run(self.experiment(exp), tags={"glattn.role": "sweep"})
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def job(
        self,
        exp: str,
        seed: int,
        metrics: dict,
        history: dict | None = None,
        parent: str | None = None,
        status: str = "FINISHED",
        task: str = "train",
        extra_params: dict | None = None,
        **factors,
    ) -> str:
        """A job run; `metrics` {key: value} logged once, `history` {key: [v_epoch1, ...]}."""
        tags = {**DEFAULTS, **factors, "seed": str(seed), "task": task, "glattn.role": "job"}
        tags["fingerprint"] = "fp-" + "-".join(
            str(tags[k])
            for k in (
                "backbone",
                "attention",
                "fusion",
                "residual",
                "loss",
                "dataset",
                "task",
                "eval_dataset",
            )
            if k in tags
        )
        tags["fingerprint"] = factors.get("fingerprint", tags["fingerprint"])
        if parent:
            tags["mlflow.parentRunId"] = parent
        self._t += 1000
        run = self.client.create_run(
            self.experiment(exp),
            start_time=self._t,
            tags=tags,
            run_name=f"{tags['fusion']}_{tags['residual']}_{tags['attention']}",
        )
        rid = run.info.run_id
        batch = [Metric(k, float(v), self._t, 0) for k, v in metrics.items()]
        for key, values in (history or {}).items():
            batch += [Metric(key, float(v), self._t + e, e) for e, v in enumerate(values, 1)]
        params = [Param(f"{k}.name", str(tags[k])) for k in DEFAULTS]
        params += [Param("seed", str(seed)), Param("trainer.lr", "0.001")]
        params += [Param(k, str(v)) for k, v in (extra_params or {}).items()]
        for i in range(0, len(batch), 500):
            self.client.log_batch(rid, metrics=batch[i : i + 500])
        run_tags = [RunTag("mlflow.note.content", ""), *reference_tags(tags)]
        self.client.log_batch(rid, params=params, tags=run_tags)
        self.client.set_terminated(rid, status)
        return rid
