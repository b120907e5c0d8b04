"""At the trainer level: a fused fit of three seeds is each seed's own
unfused fit (glattn.job.trainer.Trainer on glattn.job.build's objects): the same per-epoch
metrics, the same weights, BatchNorm statistics and optimizer state, with each member's own
sampler order, augmentation stream and ReduceLROnPlateau; a member whose loss turns
non-finite fails alone while the others finish exactly as alone."""

import pytest
import torch
from conftest import smoke_cfg

from glattn.checkpoint import load_checkpoint
from glattn.data.options import SAMPLERS
from glattn.engine import NonFiniteLossError
from glattn.fused.stack import FusedModel, member_generator
from glattn.fused.trainer import FusedTrainer, MemberTrainer
from glattn.job.build import build_components
from glattn.job.callbacks import Checkpointer
from glattn.job.trainer import Trainer
from glattn.runtime import rng_state

pytestmark = pytest.mark.usefixtures("one_thread")
SEEDS = (0, 1, 2)
METRICS = ("train/loss", "train/acc", "val/loss", "val/balanced_acc", "val/auc", "lr")


@pytest.fixture(autouse=True)
def _deterministic():
    yield
    torch.use_deterministic_algorithms(False)


def _cfg(out, seed, *extra):
    return smoke_cfg(
        out, f"seed={seed}", "trainer.max_epochs=2", "trainer.deterministic=true",
        "trainer.batch_size=8", "dataset.image_size=32", "scheduler.patience=0", *extra,
    )  # fmt: skip


def _trainer(cls, parts, cfg, callbacks=()):
    return cls(
        parts.model, parts.loss, parts.optimizer, parts.scheduler, parts.runtime,
        parts.loaders, tuple(parts.data.class_names), cfg.trainer, list(callbacks),
        stateful={"augment": parts.runtime.augment},
    )  # fmt: skip


def _alone(out, seed, *extra):
    cfg = _cfg(out, seed, *extra)
    parts = build_components(cfg, out / f"alone{seed}")
    trainer = _trainer(Trainer, parts, cfg)
    trainer.fit()
    return trainer


def _fused(out, break_member=None, extra=None, ckpt=None, resume=False, seeds=SEEDS):
    """A fused fit of `seeds`; ``extra``: overrides per member; ``ckpt``: a folder where each
    member keeps its last.pt (``resume``: continue from it first)."""
    members = []
    for i, seed in enumerate(seeds):
        cfg = _cfg(out, seed, *(extra or {}).get(i, ()))
        parts = build_components(cfg, out / f"fused{seed}")
        callbacks = [Checkpointer(ckpt / str(seed), {})] if ckpt else []
        members.append(_trainer(MemberTrainer, parts, cfg, callbacks))
        members[-1].rng = rng_state()  # the global streams as its own build left them
    if break_member is not None:  # its loss turns NaN: the unfused job would fail
        real = members[break_member].loss_fn
        members[break_member].loss_fn = lambda logits, y: real(logits, y) * float("nan")
    fused = FusedModel([m.model for m in members], [member_generator(s) for s in seeds])
    trainer = FusedTrainer(fused, members)
    for seed, member in zip(seeds, members if resume else ()):
        member.restore(load_checkpoint(ckpt / str(seed) / "last.pt"))
    trainer.fit()
    return trainer


def _close(a, b, rel=1e-5):
    return abs(a - b) <= rel * max(abs(b), 1e-8)


def _assert_same(member, alone, epochs=2):
    assert member.state.epoch == alone.state.epoch == epochs
    assert len(member.state.history) == epochs
    for mine, ref in zip(member.state.history, alone.state.history):
        for key in METRICS:
            assert _close(mine[key], ref[key]), (key, mine[key], ref[key])
    mine, ref = member.state_dict(), alone.state_dict()
    for name, tensor in ref["model"].items():
        a, b = mine["model"][name].double(), tensor.double()
        assert float((a - b).norm()) <= 1e-5 * max(float(b.norm()), 1e-12), name
    for k, state in ref["optimizer"]["state"].items():
        a, b = mine["optimizer"]["state"][k]["exp_avg"], state["exp_avg"]
        assert float((a - b).norm()) <= 1e-5 * max(float(b.norm()), 1e-12)
    assert mine["optimizer"]["param_groups"][0]["lr"] == ref["optimizer"]["param_groups"][0]["lr"]
    augment, ref_augment = mine["stateful"]["augment"], ref["stateful"]["augment"]
    assert torch.equal(augment["generator"], ref_augment["generator"])  # its own stream


@pytest.mark.slow  # ~2 min on 2 loaded cores: 3 fused + 3 separate 2-epoch fits
def test_fused_fit_equals_each_seeds_own_fit(tmp_path):
    fused = _fused(tmp_path)
    assert not fused.failed
    alone = [_alone(tmp_path, seed) for seed in SEEDS]
    for member, ref in zip(fused.members, alone):
        _assert_same(member, ref)
    losses = [a.state.history[0]["train/loss"] for a in alone]
    assert len(set(losses)) == 3  # three different trainings, not one thrice


@pytest.mark.slow
def test_non_finite_member_fails_alone_and_a_stopped_member_is_masked(tmp_path):
    """Member 1's loss is NaN; member 2 stops early after epoch 1 (patience 0): masked out
    of epoch 2, it ends exactly as its unfused job stopped; member 0 trains both epochs."""
    stop = ("trainer.early_stopping_patience=0",)
    fused = _fused(tmp_path, break_member=1, extra={2: stop})
    assert list(fused.failed) == [1]
    assert isinstance(fused.failed[1], NonFiniteLossError)
    assert fused.members[1].state.epoch == 0  # its first epoch never ended
    assert fused.members[2].state.stopped_early
    _assert_same(fused.members[0], _alone(tmp_path, SEEDS[0]))
    _assert_same(fused.members[2], _alone(tmp_path, SEEDS[2], *stop), epochs=1)


@pytest.mark.slow
def test_resume_of_a_fused_fit_is_exact(tmp_path):
    """Stopped after epoch 1 (as a kill -9 after that epoch's last.pt), each member resumes
    from its own last.pt (with its drop_path stream) and ends exactly as an uninterrupted
    fused fit."""
    drop = ("residual=drop_path", "residual.p=0.3")  # its draws resume too
    whole = _fused(tmp_path / "whole", extra={i: drop for i in range(len(SEEDS))})
    one = {i: ("trainer.max_epochs=1", *drop) for i in range(len(SEEDS))}
    _fused(tmp_path / "cut", extra=one, ckpt=tmp_path / "ckpt")
    again = {i: drop for i in range(len(SEEDS))}
    resumed = _fused(tmp_path / "cut", extra=again, ckpt=tmp_path / "ckpt", resume=True)
    for member, ref in zip(resumed.members, whole.members):
        _assert_same(member, ref)
        for mine, theirs in zip(member.state.history, ref.state.history):
            assert {k: mine[k] for k in METRICS} == {k: theirs[k] for k in METRICS}  # exact


#: the epoch's numbers that do not depend on the wall clock
EXACT = ("epoch", "train/loss", "train/acc", "val/loss", "val/acc", "val/balanced_acc",
         "val/macro_f1", "val/auc", "lr")  # fmt: skip


# ~50 s each at load 10 on 2 cores: the shuffled loader (the one that draws again at
# StopIteration) in the fast tier, the others in the slow tier
@pytest.mark.parametrize(
    "sampler", [pytest.param(s, marks=() if s == "none" else pytest.mark.slow) for s in SAMPLERS]
)
def test_fused_members_are_bit_identical_with_every_sampler(tmp_path, sampler):
    """Two epochs, two seeds, a tiny set and model (70 images, no test split, no GLSA block,
    batch 16: 3 steps an epoch, drop_last): each member's history equals its unfused fit's
    bit for bit. With the shuffled loader
    (sampler=none) the unfused ``for`` loop runs to StopIteration, which draws the next
    ``randperm`` from the loader's generator; a fused loop that stopped at len(loader)
    batches would train epoch 2 on another order."""
    small = (f"dataset.sampler={sampler}", "dataset.num_images=70", "dataset.test_fraction=0",
             "trainer.batch_size=16", "attention=none")  # fmt: skip
    seeds = (0, 1)
    fused = _fused(tmp_path, extra={i: small for i in range(len(seeds))}, seeds=seeds)
    assert not fused.failed
    for member, seed in zip(fused.members, seeds):
        alone = _alone(tmp_path, seed, *small)
        assert len(member.state.history) == len(alone.state.history) == 2
        assert len(alone.loaders["train"]) == 3
        for mine, ref in zip(member.state.history, alone.state.history):
            assert {k: mine[k] for k in EXACT} == {k: ref[k] for k in EXACT}, (sampler, seed)
        gen = alone.loaders["train"].generator or alone.loaders["train"].sampler.generator
        mine = member.loaders["train"].generator or member.loaders["train"].sampler.generator
        assert torch.equal(mine.get_state(), gen.get_state())  # the same draws, and no more
