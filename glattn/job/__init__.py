"""One job: ``python run.py [overrides]`` trains (``task=train``) or evaluates
(``task=eval``) one configuration and records it as one MLflow run (layer L3).

- `spec` (`JobSpec`): what the validated config says the job is, computed once:
  fingerprint, group choices, run name, tags, params, folders, whether it starts over;
- `build` (`build_components`): the only place a config becomes objects (data, model,
  loss, optimizer, scheduler, runtime); the pre-flight builds the model, its one build;
- `lifecycle` (`run_job`): checks and masking once, signals, errors and exit codes;
  `record` (`JobRecord`): the lock, the MLflow run found or continued, ``status.json``;
- `trainer` (`Trainer`): the epoch loop and early stopping; checkpoints, the history CSV,
  MLflow metrics and the profiler are callbacks (`callbacks`, `trainer.Callback`);
- `start` (where training starts), `finish` (final evaluation, the one copy of the
  weights), `outputs` (the files of a run folder), `protocol` (the files a sweep and its
  jobs share);
- `tasks.train`, `tasks.eval`: each task top to bottom; `tasks.fused`: the seeds of one
  configuration trained as one fused job (``sweep.fuse_seeds``, glattn.fused).

Importing this package is cheap (the sweep imports `protocol`); `main` imports the tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig


def main(cfg: DictConfig) -> dict:
    """run.py's task: ``task=train`` trains (``sweep.fused_seeds``: its seeds as one fused
    job), ``task=eval`` evaluates ``ckpt_path``."""
    from omegaconf import OmegaConf

    if cfg.task == "eval":
        from glattn.job.tasks.eval import evaluate_checkpoint

        return evaluate_checkpoint(cfg)
    if OmegaConf.select(cfg, "sweep.fused_seeds", default=None):
        from glattn.job.tasks.fused import train_fused

        return train_fused(cfg)  # the seeds of one config as one fused job
    from glattn.job.tasks.train import train

    return train(cfg)


def run_task(cfg: DictConfig) -> dict:
    """`main` as the command line runs it: a user error is one message and exit status 1
    (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP); see glattn.job.lifecycle.cli_exit."""
    from glattn.job.lifecycle import cli_exit

    try:
        return main(cfg)
    except BaseException as exc:  # noqa: BLE001  (cli_exit re-raises what is not a user error)
        cli_exit(exc)


__all__ = ["main", "run_task"]
