"""Issue 17 items 2-4 at the trainer level: a fused fit of three seeds is each seed's own
unfused fit (glattn.job.trainer.Trainer on glattn.job.build's objects): the same per-epoch
metrics, the same weights, BatchNorm statistics and optimizer state, with each member's own
sampler order, augmentation stream and ReduceLROnPlateau; a member whose loss turns
non-finite fails alone while the others finish exactly as alone."""

import pytest
import torch
from conftest import smoke_cfg

from glattn.engine import NonFiniteLossError
from glattn.fused.stack import FusedModel, member_generator
from glattn.fused.trainer import FusedTrainer, MemberTrainer
from glattn.job.build import build_components
from glattn.job.trainer import Trainer
from glattn.runtime import rng_state

pytestmark = pytest.mark.usefixtures("one_thread")
SEEDS = (0, 1, 2)
METRICS = ("train/loss", "train/acc", "val/loss", "val/balanced_acc", "val/auc", "lr")


@pytest.fixture(autouse=True)
def _deterministic():
    yield
    torch.use_deterministic_algorithms(False)


def _cfg(out, seed):
    return smoke_cfg(
        out, f"seed={seed}", "trainer.max_epochs=2", "trainer.deterministic=true",
        "trainer.batch_size=8", "dataset.image_size=32", "scheduler.patience=0",
    )  # fmt: skip


def _trainer(cls, parts, cfg):
    return cls(
        parts.model, parts.loss, parts.optimizer, parts.scheduler, parts.runtime,
        parts.loaders, tuple(parts.data.class_names), cfg.trainer,
        stateful={"augment": parts.runtime.augment},
    )  # fmt: skip


def _alone(out, seed):
    cfg = _cfg(out, seed)
    parts = build_components(cfg, out / f"alone{seed}")
    trainer = _trainer(Trainer, parts, cfg)
    trainer.fit()
    return trainer


def _fused(out, break_member=None):
    members = []
    for seed in SEEDS:
        cfg = _cfg(out, seed)
        parts = build_components(cfg, out / f"fused{seed}")
        members.append(_trainer(MemberTrainer, parts, cfg))
        members[-1].rng = rng_state()  # the global streams as its own build left them
    if break_member is not None:  # its loss turns NaN: the unfused job would fail
        real = members[break_member].loss_fn
        members[break_member].loss_fn = lambda logits, y: real(logits, y) * float("nan")
    fused = FusedModel([m.model for m in members], [member_generator(s) for s in SEEDS])
    trainer = FusedTrainer(fused, members)
    trainer.fit()
    return trainer


def _close(a, b, rel=1e-5):
    return abs(a - b) <= rel * max(abs(b), 1e-8)


def _assert_same(member, alone):
    assert member.state.epoch == alone.state.epoch == 2
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
def test_non_finite_member_fails_alone(tmp_path):
    fused = _fused(tmp_path, break_member=1)
    assert list(fused.failed) == [1]
    assert isinstance(fused.failed[1], NonFiniteLossError)
    assert fused.members[1].state.epoch == 0  # its first epoch never ended
    for i in (0, 2):
        _assert_same(fused.members[i], _alone(tmp_path, SEEDS[i]))
