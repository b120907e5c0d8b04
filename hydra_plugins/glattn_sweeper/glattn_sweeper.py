"""``hydra/sweeper=glattn``: Hydra's grid sweep on Hydra's public Sweeper interface, plus
plan mode, plus tolerance.

The grid is Hydra's basic sweep (glattn.sweep.expand: the same parsing, batching and job
numbering as ``hydra/sweeper=basic``). Hydra's basic sweeper reads every job's return
value after each batch, so the first failed job raises, the sweep stops, and the
callbacks' ``on_multirun_end`` never runs; this sweeper records each job's outcome in
``<sweep dir>/jobs.json`` instead of raising: every job runs, and
glattn's sweep callback prints the summary, ends the parent run and sets the
exit status.

Before anything is written the grid is admitted (glattn_sweeper.admission: every job's
config checked as a single run checks its own, ``hydra.job.chdir=true`` refused, the store,
the device and the scheduler answering, one launch at a time in a sweep folder): by glattn's
sweep callback in ``on_multirun_start``, which then opens the grid's ONE MLflow parent run
(glattn_sweeper.callback), or here when no callback did. From the parent's opening a stop
signal raises instead of ending the process (glattn.sweep.outcomes.guard_parent); here it
stops the jobs, ends the parent KILLED and prints the summary. The sweeper masks secrets in
``multirun.yaml`` and in this process's log lines.

With ``sweep.fuse_seeds=true`` the jobs that differ only in ``seed`` run as one fused job
each (glattn.sweep.fuse). With ``sweep.plan=true`` it prints the grid (glattn.sweep.plan)
and launches nothing. A config with ``paper.stages`` (experiments/paper.yaml) runs its
stages one after another (glattn.sweep.paper).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from glattn.sweep import expand
from hydra_plugins.glattn_sweeper import admission, grid, guard

log = logging.getLogger(__name__)


@dataclass
class GlattnSweeperConf:
    _target_: str = "hydra_plugins.glattn_sweeper.glattn_sweeper.GlattnSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = field(default=None)


ConfigStore.instance().store(
    group="hydra/sweeper", name="glattn", node=GlattnSweeperConf, provider="glattn"
)


class GlattnSweeper(Sweeper):
    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None):
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = params or {}
        self.overrides: list[list[list[str]]] = []  # the batches to launch
        self.hydra_context = self.config = self.launcher = self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.task_function = task_function  # glattn's own task gets its grid checked
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        from glattn.resolvers import register
        from glattn.sweep import fuse

        register()  # plan mode and the parent run resolve the jobs' configs here
        if OmegaConf.select(self.config, "paper.stages", default=None):
            from glattn.sweep.paper import run_from_sweeper

            hydra_overrides = OmegaConf.to_container(self.config.hydra.overrides.hydra)
            return run_from_sweeper(self.config, [*hydra_overrides, *arguments])
        loader = self.hydra_context.config_loader
        grid_jobs = admission.grid_jobs(self.params, arguments, loader)  # unfused
        if OmegaConf.select(self.config, "sweep.plan", default=False):
            from glattn.sweep.plan import print_plan

            returns = print_plan(self, grid_jobs)
            if fuse.enabled(self.config):
                n, fused = len(grid_jobs), len(fuse.launched_jobs(self.config, grid_jobs))
                print(f"  sweep.fuse_seeds: the {n} jobs run as {fused} (seeds fused)")
            return returns

        from glattn.sweep.lpt import lpt_batches

        self.overrides = expand.batches(grid_jobs, self.max_batch_size)
        # checked and held once per sweep folder: by glattn's sweep callback, else here
        secrets = admission.admit(self, grid_jobs)
        try:
            if fuse.enabled(self.config):
                fused = fuse.launched_jobs(self.config, grid_jobs)  # one job a configuration
                log.info(f"[glattn sweep] fuse_seeds: {len(grid_jobs)} jobs as {len(fused)}")
                self.overrides = expand.batches(fused, self.max_batch_size)
            # costliest jobs first on a pool of slots (glattn.sweep.lpt)
            self.overrides = lpt_batches(self, self.overrides, self.max_batch_size)
            return self._launch(Path(str(self.config.hydra.sweep.dir)), secrets)
        finally:
            admission.release(self.config)  # the jobs have ended: another launch may come

    def _launch(self, sweep_dir: Path, secrets: set) -> list:
        """Write multirun.yaml, launch every batch, record each job."""
        from glattn.job.lifecycle import interrupt_on_signals
        from glattn.sweep.outcomes import JobLedger, abort_parent

        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        _mask_file(sweep_dir / "multirun.yaml", secrets)
        ledger = JobLedger(self, sweep_dir)
        all_jobs = [job for batch in self.overrides for job in batch]
        returns = []
        initial_job_idx = 0
        try:
            with interrupt_on_signals():  # SIGTERM: the parent ends KILLED, jobs stopped
                for batch in self.overrides:
                    self.validate_batch_is_legal(batch)
                    # a scheduler gets no job that is FINISHED already (guard.launch_unfinished)
                    results = guard.launch_unfinished(self, batch, initial_job_idx)
                    ledger.record(batch, results, initial_job_idx)  # no raise: every job runs
                    initial_job_idx += len(batch)
                    returns.append(results)
        except BaseException as e:  # Ctrl-C, SIGTERM, a crashed launcher: the parent run
            abort_parent(self.config, sweep_dir, e)  # must not stay RUNNING forever
            if isinstance(e, KeyboardInterrupt):  # the summary and 143/129/130, no traceback
                raise SystemExit(guard.interrupted(self, all_jobs, ledger, e)) from None
            raise
        if not grid.glattn_app(
            self.config
        ):  # no sweep callback: the failed jobs' errors and exit status here
            guard.report_failures(ledger)
        return returns


def _mask_file(path: Path, secrets: set) -> None:
    from glattn.secrets import mask_text

    text = path.read_text()
    if mask_text(text, secrets) != text:
        path.write_text(mask_text(text, secrets))
