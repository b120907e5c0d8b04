"""Sweeps: the paper's ablation grid as Hydra multiruns, tracked as one MLflow sweep.

Hydra runs one sweep per command (https://hydra.cc/docs/tutorials/basic/running_your_app/
multi-run/). glattn adds, around Hydra's basic sweep:

- the ``glattn`` sweeper (hydra_plugins/glattn_sweeper, on Hydra's public ``Sweeper``
  interface; its grid is `expand`'s), in the launching process: plan mode
  (``sweep.plan=true``); fused seeds (`fuse`); the paper's stages (`paper`); a sweep that
  does not stop at the first failed job.
- `callbacks.SweepCallback` (``hydra.callbacks``, registered as its subclass
  hydra_plugins.glattn_sweeper.callback.GlattnSweepCallback): in the launching process,
  ``on_multirun_start`` checks the whole grid before anything is written, then creates the
  SQLite database, the MLflow experiment and ONE parent run (`store`) and writes the
  parent's id to ``<sweep dir>/parent_run_id``; in each job's process, ``on_job_end``
  records a failure its job did not report and prints the grid's progress; in the
  launching process after the last job, ``on_multirun_end`` reads every job's
  ``status.json``, prints the summary, ends the parent run and exits non-zero on failures.
- the ``local_gpus`` launcher (hydra_plugins/glattn_local_gpus) and the ``slurm`` launcher
  (submitit) in conf/hydra/launcher/.

The file protocol between a sweep and its jobs lives in `glattn.job.protocol` (jobs write it).
"""

from glattn.job.protocol import (
    PARENT_RUN_FILE,
    STATUS_FILE,
    read_parent_run_id,
    read_status,
    write_status,
)

__all__ = ["PARENT_RUN_FILE", "STATUS_FILE", "read_parent_run_id", "read_status", "write_status"]
