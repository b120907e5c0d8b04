"""Sweeps: the paper's ablation grid as Hydra multiruns, tracked as one MLflow sweep.

Hydra runs one sweep per command (https://hydra.cc/docs/tutorials/basic/running_your_app/
multi-run/). glattn adds, around Hydra's basic sweep:

- `callbacks.SweepCallback` (``hydra.callbacks``): in the launching process, before any job,
  it creates the SQLite database, the MLflow experiment and ONE parent run and writes the
  parent's id to ``<sweep dir>/parent_run_id``; at the end it reads every job's
  ``status.json``, prints the summary, ends the parent run and exits non-zero on failures.
- the ``glattn`` sweeper (hydra_plugins/glattn_sweeper): plan mode (``sweep.plan=true``) and a
  sweep that does not stop at the first failed job.
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
