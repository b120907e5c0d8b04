"""``task=train`` with ``sweep.fused_seeds=[s0,s1,...]`` (the sweeper's ``sweep.fuse_seeds``):
the seeds of one configuration trained as one fused job (glattn.fused), each member
recorded exactly as its unfused job.

Read top to bottom: each member is the unfused job of its seed (`member_job`: the config
with ``seed=<s>``, the same checks, fingerprint, run name, params and tags, plus the tag
``fused_with``; its run folder ``<job dir>/seed_<s>``). Each opens its own record
(glattn.job.record): a FINISHED member is skipped, the others are locked and continued; a
member whose training FINISHED in another experiment is reused (glattn.job.reuse), not
fitted, and a job whose members are all reused or skipped trains nothing and says so.
The members to train are prepared exactly as glattn.job.tasks.train prepares a job, in seed
order, each keeping its own global RNG stream. `glattn.fused.check.fusion_problem` decides
whether they fuse; if not, one line says which component and why and each member trains
alone, one after another. `FusedTrainer` fits them (``trainer.deterministic=true``: the
exact, member-by-member kernels), then each member ends as an unfused job ends; a member
that fails ends FAILED while the others finish, and the job then exits with an error.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
from pathlib import Path
from types import MappingProxyType

from omegaconf import DictConfig, OmegaConf, open_dict

from glattn.config import job_overrides
from glattn.errors import UserError
from glattn.fused.check import fusion_problem
from glattn.fused.stack import FusedModel, member_generator
from glattn.fused.trainer import FusedTrainer, MemberTrainer
from glattn.job import protocol
from glattn.job.build import check_model
from glattn.job.lifecycle import check_job, interrupt_on_signals, mask_hydra_output, start_clock
from glattn.job.record import Job, JobRecord
from glattn.job.tasks.train import Training, conclude, prepare, restore
from glattn.logging_utils import setup_logging
from glattn.runtime import rng_state, set_rng_state
from glattn.secrets import install_log_filter, mask_text
from glattn.tracking.names import FUSED_TAG

log = logging.getLogger(__name__)


class FusedMemberFailed(UserError):
    """Some members of a fused job failed (each run ended FAILED; the others finished)."""


def train_fused(cfg: DictConfig) -> dict:
    """Train the members of ``sweep.fused_seeds``; returns {seed: final metrics}."""
    seeds = [int(s) for s in cfg.sweep.fused_seeds]
    start_clock()
    secrets = mask_hydra_output()
    jobs = [check_job(member_config(cfg, s), "train", check_model, secrets) for s in seeds]
    base = jobs[0].spec.run_dir  # Hydra's job folder (runs/<fingerprint> without Hydra)
    for job, seed in zip(jobs, seeds):
        member_job(job, seed, seeds, base)
    setup_logging(base, protocol.current_sweep_dir())
    install_log_filter(set().union(*(job.secrets for job in jobs)))
    log.info(
        "fused job %s: seeds %s, fingerprints %s",
        base,
        seeds,
        ", ".join(job.spec.fingerprint for job in jobs),
    )
    records = [JobRecord(job) for job in jobs]
    results: dict[int, dict] = {}
    todo: list[JobRecord] = []
    try:
        with interrupt_on_signals():
            for seed, record in zip(seeds, records):
                done = record.open()
                if done is None:
                    todo.append(record)
                else:
                    results[seed] = dict(done.data.metrics)
            if todo:
                results.update(fit_members(todo))
    except BaseException as exc:
        for record in todo:
            if record.status["status"] == "failed" and record.status["error"] is None:
                record.fail(exc)  # not ended yet: interrupted or crashed with the others
        raise
    finally:
        for record in records:
            record.close(log_dir=base)
        write_job_status(base, seeds, records)
    failed = [(s, r) for s, r in zip(seeds, records) if r.status["status"] == "failed"]
    if failed:
        raise FusedMemberFailed(
            "fused job: "
            + "; ".join(f"seed {s} FAILED ({r.status['error']})" for s, r in failed)
            + f"; the other members of seeds {seeds} are recorded as they ended"
        )
    return results


# ----------------------------------------------------------------------------- members
def member_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The unfused job's config of member ``seed``: ``seed=<seed>``, and the sweep's
    ``fuse_seeds``/``fused_seeds`` at their defaults (the params are the unfused job's:
    the tag ``fused_with`` is the one mark of fusion)."""
    member = copy.deepcopy(cfg)
    with open_dict(member):
        member.seed = seed
        member.sweep.fused_seeds = None
        member.sweep.fuse_seeds = False
    return member


def member_job(job: Job, seed: int, seeds: list[int], base: Path) -> None:
    """Member ``seed``'s record as its unfused job's (tag overrides: the unfused job's
    command line), plus ``fused_with``; its run folder ``<base>/seed_<seed>`` with the
    ``.hydra/`` files its unfused job would have."""
    overrides = protocol.member_overrides(job_overrides(job.cfg), seed)
    tags = {**job.spec.tags, "overrides": " ".join(overrides), FUSED_TAG: _seeds(seeds)}
    run_dir = base / f"seed_{seed}"
    job.spec = dataclasses.replace(job.spec, run_dir=run_dir, tags=MappingProxyType(tags))
    if not (base / ".hydra").is_dir():  # no Hydra (the compose API): no .hydra/ either
        return
    hydra = run_dir / ".hydra"
    hydra.mkdir(parents=True, exist_ok=True)
    task_cfg = OmegaConf.masked_copy(job.cfg, [k for k in job.cfg if k != "hydra"])
    (hydra / "config.yaml").write_text(mask_text(OmegaConf.to_yaml(task_cfg), job.secrets))
    (hydra / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
    if (base / ".hydra" / "hydra.yaml").is_file():
        shutil.copyfile(base / ".hydra" / "hydra.yaml", hydra / "hydra.yaml")


def _seeds(seeds: list[int]) -> str:
    return ",".join(str(s) for s in seeds)


# ----------------------------------------------------------------------------- training
def fit_members(records: list[JobRecord]) -> dict[int, dict]:
    """Prepare, fit (fused when they can be) and conclude the members of ``records``; a
    member that fails is recorded FAILED and the others go on. {seed: metrics}."""
    trainings: dict[int, Training] = {}
    for i, record in enumerate(records):
        try:
            trainings[i] = prepare(record.job, MemberTrainer)
        except Exception as exc:  # noqa: BLE001 - this member fails alone
            record.fail(exc)
            continue
        trainings[i].trainer.rng = rng_state()  # the global streams its own build left
    if not trainings:
        return {}
    failed: dict[int, BaseException] = {}
    for i, training in trainings.items():
        if training.job.reused_from is not None:
            try:
                restore(training)
                training.trainer.fit()  # no epoch to run: the callbacks log the source's epochs
            except Exception as exc:  # noqa: BLE001 - this member fails alone
                failed[i] = exc
    fit = [i for i, t in trainings.items() if t.job.reused_from is None]
    if fit:
        errors = _fit([trainings[i] for i in fit])
        failed.update({fit[k]: exc for k, exc in errors.items()})
    else:
        log.info(
            "fused job: its %d members left to do are all reused (trained and FINISHED in "
            "other experiments): nothing to train",
            len(trainings),
        )
    results = {}
    for i, training in trainings.items():
        record = records[i]
        try:
            if i in failed:
                raise failed[i]
            results[int(record.job.cfg.seed)] = conclude(training)
            record.succeed()
        except Exception as exc:  # noqa: BLE001 - this member fails alone
            record.fail(exc)
    return results


def _fit(trainings: list[Training]) -> dict[int, BaseException]:
    """Fit the members, fused when `fusion_problem` finds nothing; the members' errors by
    their index in ``trainings``."""
    first = trainings[0].trainer
    size, device = int(trainings[0].job.cfg.dataset.image_size), first.rt.device
    problem = fusion_problem([t.trainer.module for t in trainings], size, device)
    if problem is not None:
        log.warning("fused job: %s; its %d members train unfused", problem, len(trainings))
        return _fit_alone(trainings)
    seeds = [int(t.job.cfg.seed) for t in trainings]
    fused = FusedModel(
        [t.trainer.module for t in trainings],
        [member_generator(s, device) for s in seeds],
        exact=bool(first.settings.deterministic),
    )
    fitter = FusedTrainer(fused, [t.trainer for t in trainings])
    for training in trainings:  # after FusedTrainer: it adds the drop_path stream to restore
        restore(training)
    log.info("fused job: %d members (seeds %s) train as one stacked model", len(seeds), seeds)
    fitter.fit()
    return dict(fitter.failed)


def _fit_alone(trainings: list[Training]) -> dict[int, BaseException]:
    """Each member's own `Trainer.fit`, with its own global RNG streams."""
    failed = {}
    for i, training in enumerate(trainings):
        trainer = training.trainer
        try:
            restore(training)
            set_rng_state(trainer.rng)
            trainer.rng = None  # its checkpoints save the global streams, as unfused
            trainer.fit()
        except Exception as exc:  # noqa: BLE001 - this member fails alone
            failed[i] = exc
    return failed


def write_job_status(base: Path, seeds: list[int], records: list[JobRecord]) -> None:
    """The fused job's status.json: failed / killed if a member was, skipped if all were,
    reused if none trained and one was reused, else finished; ``members``: each seed's
    status, run id and fingerprint (and a reused member's source)."""
    statuses = [r.status["status"] for r in records]
    status = next((s for s in ("killed", "failed") if s in statuses), None)
    if status is None and "finished" not in statuses:
        status = "reused" if "reused" in statuses else "skipped"
    status = status or "finished"
    pairs = list(zip(seeds, records))
    errors = [f"seed {s}: {r.status['error']}" for s, r in pairs if r.status["error"]]
    members = [
        {"seed": s, **r.status, "fingerprint": r.job.spec.fingerprint}
        for s, r in zip(seeds, records)
    ]
    protocol.write_status(base, status, "; ".join(errors) or None, members=members)
