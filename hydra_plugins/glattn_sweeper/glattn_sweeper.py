"""``hydra/sweeper=glattn``: Hydra's basic grid sweeper, plus plan mode, plus tolerance.

Hydra's BasicSweeper reads every job's return value after each batch, so the first failed
job raises, the sweep stops, and the callbacks' ``on_multirun_end`` never runs. This
sweeper launches the same grid (same parsing, batching and job numbering) but records each
job's outcome in ``<sweep dir>/jobs.json`` instead of raising: every job runs, and
glattn.sweep.callbacks.SweepCallback prints the summary and sets the exit status.

With ``sweep.plan=true`` it prints the grid (glattn.sweep.plan) and launches nothing. A
config with ``paper.stages`` (experiments/paper.yaml) runs its stages one after another
(glattn.sweep.paper).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


@dataclass
class GlattnSweeperConf:
    _target_: str = "hydra_plugins.glattn_sweeper.glattn_sweeper.GlattnSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = field(default=None)


ConfigStore.instance().store(
    group="hydra/sweeper", name="glattn", node=GlattnSweeperConf, provider="glattn"
)


class GlattnSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None):
        super().__init__(max_batch_size=max_batch_size, params=params)

    def job_lists(self, arguments: list[str]) -> list[list[list[str]]]:
        """The sweep's jobs, batched exactly as BasicSweeper batches them."""
        params_conf = self._parse_config()
        params_conf.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(params_conf)
        return self.split_arguments(overrides, self.max_batch_size)

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        if OmegaConf.select(self.config, "paper.stages", default=None):
            from glattn.sweep.paper import run_from_sweeper

            hydra_overrides = OmegaConf.to_container(self.config.hydra.overrides.hydra)
            return run_from_sweeper(self.config, [*hydra_overrides, *arguments])
        if OmegaConf.select(self.config, "sweep.plan", default=False):
            from glattn.sweep.plan import print_plan

            jobs = [job for batch in self.job_lists(arguments) for job in batch]
            return print_plan(self, jobs)

        from glattn.sweep.outcomes import JobLedger

        self.overrides = self.job_lists(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        ledger = JobLedger(self, sweep_dir)
        returns = []
        initial_job_idx = 0
        try:
            while not self.is_done():
                batch = self.get_job_batch()
                self.validate_batch_is_legal(batch)
                results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
                ledger.record(batch, results, initial_job_idx)  # no raise: every job runs
                initial_job_idx += len(batch)
                returns.append(results)
        except BaseException as e:  # Ctrl-C, a crashed launcher: the parent run must not
            from glattn.sweep.outcomes import abort_parent  # stay RUNNING forever

            abort_parent(self.config, sweep_dir, e)
            raise
        return returns
