"""``hydra/sweeper=glattn``: Hydra's grid sweep on Hydra's public Sweeper interface, plus
plan mode, plus tolerance.

The grid is Hydra's basic sweep (glattn.sweep.expand: the same parsing, batching and job
numbering as ``hydra/sweeper=basic``). Hydra's basic sweeper reads every job's return
value after each batch, so the first failed job raises, the sweep stops, and the
callbacks' ``on_multirun_end`` never runs; this sweeper records each job's outcome in
``<sweep dir>/jobs.json`` instead of raising: every job runs, and
glattn.sweep.callbacks.SweepCallback prints the summary, ends the parent run and sets the
exit status.

Before anything is written it checks the whole grid as single runs check their configs
(glattn_sweeper.grid: a refused grid leaves no folder and no run) and refuses
``hydra.job.chdir=true``; a sweep folder takes one launch at a time (guard.hold_sweep_dir).
It also opens the grid's ONE MLflow parent run before any job starts (glattn.sweep.store:
the same grid launched again continues it), writes its id to ``<sweep dir>/parent_run_id``,
turns SIGTERM into an interrupt so the parent ends KILLED, and masks secrets in
``multirun.yaml`` and in this process's log lines.

With ``sweep.fuse_seeds=true`` the jobs that differ only in ``seed`` run as one fused job
each (glattn.sweep.fuse). With ``sweep.plan=true`` it prints the grid (glattn.sweep.plan)
and launches nothing. A config with ``paper.stages`` (experiments/paper.yaml) runs its
stages one after another (glattn.sweep.paper).
"""

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from glattn.sweep import expand
from hydra_plugins.glattn_sweeper import grid, guard

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

    def job_lists(self, arguments: list[str]) -> list[list[list[str]]]:
        """The sweep's jobs (``params`` then the command line), in Hydra's batches."""
        args = expand.arguments(self.params, arguments)
        jobs = expand.jobs(args, config_loader=self.hydra_context.config_loader)
        return expand.batches(jobs, self.max_batch_size)

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        from glattn.resolvers import register
        from glattn.sweep import fuse

        register()  # plan mode and the parent run resolve the jobs' configs here
        if OmegaConf.select(self.config, "paper.stages", default=None):
            from glattn.sweep.paper import run_from_sweeper

            hydra_overrides = OmegaConf.to_container(self.config.hydra.overrides.hydra)
            return run_from_sweeper(self.config, [*hydra_overrides, *arguments])
        if OmegaConf.select(self.config, "sweep.plan", default=False):
            from glattn.sweep.plan import print_plan

            jobs = [job for batch in self.job_lists(arguments) for job in batch]
            returns = print_plan(self, jobs)
            if fuse.enabled(self.config):
                fused = len(fuse.launched_jobs(self.config, jobs))
                print(f"  sweep.fuse_seeds: the {len(jobs)} jobs run as {fused} (seeds fused)")
            return returns

        from glattn.sweep.lpt import lpt_batches

        self.overrides = self.job_lists(arguments)
        self.grid_jobs = [job for batch in self.overrides for job in batch]  # unfused
        secrets = self._mask_logs()
        in_glattn = grid.glattn_app(self.config)
        if grid.glattn_task(self):
            guard.check_chdir(self.config)
        grid.check_grid(self, self.grid_jobs, secrets)  # every job, before any trace
        if fuse.enabled(self.config):
            fused = fuse.launched_jobs(self.config, self.grid_jobs)  # one job a configuration
            log.info(f"[glattn sweep] fuse_seeds: {len(self.grid_jobs)} jobs as {len(fused)}")
            self.overrides = expand.batches(fused, self.max_batch_size)
        # costliest jobs first on a pool of slots (glattn.sweep.lpt)
        self.overrides = lpt_batches(self, self.overrides, self.max_batch_size)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        all_jobs = [job for batch in self.overrides for job in batch]
        guard.check_sweep(self.config)  # one line, before any folder or parent run exists
        guard.check_device(self, all_jobs)
        guard.check_scheduler(self, all_jobs)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        lock = guard.hold_sweep_dir(sweep_dir)  # one launch at a time in a sweep folder
        try:
            return self._launch(sweep_dir, all_jobs, secrets, in_glattn)
        finally:
            lock.release()

    def _launch(self, sweep_dir: Path, all_jobs: list, secrets: set, in_glattn: bool) -> list:
        """Write multirun.yaml, open the parent run, launch every batch, record each job."""
        from glattn.job.lifecycle import interrupt_on_signals
        from glattn.sweep.outcomes import JobLedger, abort_parent

        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        _mask_file(sweep_dir / "multirun.yaml", secrets)
        ledger = JobLedger(self, sweep_dir)
        returns = []
        initial_job_idx = 0
        try:
            with interrupt_on_signals():  # SIGTERM: the parent ends KILLED, jobs stopped
                self._open_parent(sweep_dir)
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
        if not in_glattn:  # no sweep callback: the failed jobs' errors and exit status here
            guard.report_failures(ledger)
        return returns

    def _mask_logs(self) -> set:
        """Mask the grid's secret values in this process's log lines; returns them."""
        from glattn.config import resolved_config
        from glattn.secrets import install_log_filter, secret_values

        jobs = [o for batch in self.overrides for job in batch for o in job]
        cfg = OmegaConf.masked_copy(self.config, [k for k in self.config if k != "hydra"])
        try:
            found = secret_values(resolved_config(cfg))
        except Exception:  # noqa: BLE001 - a value that resolves only inside a job
            found = set()
        found |= secret_values(jobs) | secret_values(list(self.config.hydra.overrides.task))
        install_log_filter(found)
        return found

    def _open_parent(self, sweep_dir: Path) -> None:
        """Find or create the grid's one parent run; its id goes to <sweep dir>/parent_run_id."""
        from glattn.job import protocol
        from glattn.job.spec import route_debug
        from glattn.sweep import store
        from glattn.sweep.outcomes import all_finished

        if not store.tracking_enabled(self.config):
            return
        jobs = self.grid_jobs  # the unfused grid: fused or not, the same parent run
        config = copy.deepcopy(self.config)  # the callback re-reads self.config's sweep dir
        route_debug(config)  # debug=smoke: the parent goes where its jobs go (<exp>-debug)
        experiment = str(config.tracking.experiment)
        grid = store.grid_id(experiment, jobs)
        try:
            parent = store.open_parent(
                config,
                grid,
                sweep_dir,
                list(self.config.hydra.overrides.task),
                all_done=lambda: all_finished(self, jobs),
            )
        except Exception as e:  # noqa: BLE001 - any store failure must stop the sweep here
            raise SystemExit(
                guard.say(
                    f"cannot open the MLflow parent run in tracking.uri="
                    f"{self.config.tracking.uri!r}, tracking.experiment={experiment!r}: "
                    f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e) else ''}"
                )
            ) from None
        if parent is not None:
            protocol.write_parent_run_id(sweep_dir, parent)


def _mask_file(path: Path, secrets: set) -> None:
    from glattn.secrets import mask_text

    text = path.read_text()
    if mask_text(text, secrets) != text:
        path.write_text(mask_text(text, secrets))
