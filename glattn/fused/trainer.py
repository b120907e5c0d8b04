"""The fused epoch loop: `FusedTrainer.fit` trains M members (one `MemberTrainer` each, the
unfused job's own `glattn.job.trainer.Trainer` with its loaders, loss, optimizer, scheduler,
runtime, callbacks and state) through one `FusedModel` (Wang et al., "Horizontally Fused
Training Array", MLSys 2021, arXiv:2102.02344).

Each step takes one batch from every active member's own train loader (its sampler order,
its augmentation generator, its global RNG stream swapped in around the draw; after the last
step each loader runs on to StopIteration, as the unfused loop's ``for``, so the sampler's
generator makes the same draws), runs the members as one vmapped forward, sums their losses
(the members share no parameter, so each gets exactly its own gradient), and steps each
member's own optimizer (its clipping, its GradScaler). Each epoch ends per member through
`Trainer.end_epoch` (its scheduler, its ReduceLROnPlateau decision, its early stopping) and
its callbacks (its last.pt/best.pt, history CSV, MLflow metrics). A stopped member is masked
out of the step (no draws, no update, BatchNorm statistics put back); a member whose loss
turns non-finite ends with its `NonFiniteLossError` in ``failed`` while the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from glattn.engine import NonFiniteLossError, _Guard
from glattn.fused.stack import FusedModel
from glattn.job.trainer import Trainer
from glattn.metrics import compute_metrics
from glattn.runtime import rng_state, set_rng_state

log = logging.getLogger(__name__)
#: the name of a member's in-model generator (glattn.fused.stack) in its checkpoint
NOISE_STATE = "fused_noise"


class MemberTrainer(Trainer):
    """One member's unfused `Trainer`; ``rng`` is its own global RNG stream (the fused
    process has one global stream, the member's job had its own)."""

    rng: dict | None = None

    def state_dict(self) -> dict:
        out = super().state_dict()
        # the member's tensors are slices of the stack: saving a slice saves the whole stack
        out["model"] = {k: v.clone() for k, v in out["model"].items()}
        out["rng"] = self.rng if self.rng is not None else out["rng"]
        return out

    def restore(self, ckpt: dict) -> None:
        with member_rng(self):
            super().restore(ckpt)  # sets the global streams to the member's saved ones
            self.rng = rng_state()

    def active(self) -> bool:
        return self.state.epoch < int(self.settings.max_epochs) and not self.state.stopped_early


@contextmanager
def member_rng(member: MemberTrainer):
    """The member's global RNG streams in place while it draws (CPU augmentation)."""
    if member.rng is None:
        member.rng = rng_state()
    set_rng_state(member.rng)
    try:
        yield
    finally:
        member.rng = rng_state()


class FusedTrainer:
    """``members[i]`` trains member ``fused.members[i]``; `fit` returns their states."""

    def __init__(self, fused: FusedModel, members: Sequence[MemberTrainer]):
        self.fused, self.members = fused, list(members)
        self.failed: dict[int, BaseException] = {}
        for i, member in enumerate(self.members):
            if member.module is not fused.members[i]:
                raise ValueError(f"member trainer {i} does not train fused member {i}")
            member.rng = member.rng or rng_state()
            # its drop_path / dropout stream goes into its checkpoints (exact resume); restore
            # a member's checkpoint after this
            member.stateful.setdefault(NOISE_STATE, fused.generators[i])

    def running(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if i not in self.failed and m.active()]

    def fit(self) -> list:
        for member in self.members:
            for callback in member.callbacks:
                callback.on_fit_start(member)
        while idx := self.running():
            for i in idx:
                for callback in self.members[i].callbacks:
                    callback.on_epoch_start(self.members[i])
            start = time.perf_counter()
            trains = self.train_epoch(idx)
            idx = [i for i in idx if i not in self.failed]
            vals = self.evaluate(idx)
            for i in idx:
                member = self.members[i]
                row = member.end_epoch(member.state.epoch + 1, trains[i], vals[i], start)
                for callback in member.callbacks:
                    callback.on_epoch_end(member, row)
                member._log_epoch(row, int(member.settings.max_epochs))
        return [m.state for m in self.members]

    def _batch(self, i: int, it) -> tuple[torch.Tensor, torch.Tensor]:
        member = self.members[i]
        with member_rng(member):
            images, labels = next(it)
            return member.rt.to_device(images, labels, member.rt.augment)

    def train_epoch(self, idx: list[int]) -> dict[int, dict]:
        """One epoch of every member in ``idx``; {i: {"loss", "acc", "img_s"}}; a member
        whose loss turned non-finite goes to ``failed`` instead."""
        fused, members = self.fused, self.members
        fused.active = [i in idx for i in range(len(members))]
        fused.train()
        rt = members[idx[0]].rt
        steps = {len(members[i].loaders["train"]) for i in idx}
        if len(steps) != 1:
            raise ValueError(f"fused members have train loaders of different lengths {steps}")
        iters = {i: iter(members[i].loaders["train"]) for i in idx}
        zero = torch.zeros((), dtype=torch.float64, device=rt.device)
        sums = {i: [zero.clone(), zero.long(), 0] for i in idx}  # loss sum, correct, seen
        guards = {i: _Guard(rt.device, members[i].state.epoch + 1) for i in idx}
        every, start = max(rt.log_every_n_steps, 1), time.perf_counter()
        for step in range(1, steps.pop() + 1):
            batches = {i: self._batch(i, iters[i]) for i in idx}
            filler = torch.zeros_like(batches[idx[0]][0])
            x = torch.stack(
                [batches[i][0] if i in batches else filler for i in range(len(members))]
            )
            fused.zero_grad()
            with rt.autocast():
                logits = fused(x)  # (M, B, num_classes)
                losses = {i: members[i].loss_fn(logits[i], batches[i][1]) for i in idx}
            total = 0
            for i in idx:
                guards[i].add(losses[i].detach())
                scaler = members[i].rt.scaler
                total = total + (scaler.scale(losses[i]) if scaler is not None else losses[i])
            total.backward()
            fused.share_grads()
            for i in idx:
                self._step(members[i])
                labels = batches[i][1]
                sums[i][0] += losses[i].detach().double() * labels.shape[0]
                sums[i][1] += (logits[i].detach().argmax(1) == labels).sum()
                sums[i][2] += labels.shape[0]
            if step % every == 0:
                idx = self._check(idx, guards)
                if not idx:
                    return {}
        for i in idx:
            self._drain(i, iters[i])
        idx = self._check(idx, guards)
        elapsed = time.perf_counter() - start
        return {
            i: {"loss": s.item() / n, "acc": c.item() / n, "img_s": n / elapsed}
            for i, (s, c, n) in sums.items()
            if i in idx
        }

    def _drain(self, i: int, it) -> None:
        """Run member i's train loader on to StopIteration, as the unfused ``for`` loop
        does. Without it a shuffled loader (``dataset.sampler=none``) with ``drop_last``
        never asks its sampler for the partial last batch, the draw that makes
        `torch.utils.data.RandomSampler` take its next ``randperm`` from the loader's
        generator, and the member's data order would lag its unfused job's from epoch 2."""
        with member_rng(self.members[i]):
            extra = next(it, None)
        if extra is not None:
            n = len(self.members[i].loaders["train"])
            raise RuntimeError(f"fused member {i}: its train loader gave more than {n} batches")

    def _step(self, member: MemberTrainer) -> None:
        """The member's optimizer step exactly as glattn.engine.train_one_epoch takes it."""
        params, clip, scaler = member.module.parameters(), member.rt.grad_clip, member.rt.scaler
        if scaler is not None:
            if clip:
                scaler.unscale_(member.optimizer)
                nn.utils.clip_grad_norm_(params, clip)
            scaler.step(member.optimizer)
            scaler.update()
            return
        if clip:
            nn.utils.clip_grad_norm_(params, clip)
        member.optimizer.step()

    def _check(self, idx: list[int], guards: dict) -> list[int]:
        """The non-finite-loss guards: a bad member fails alone and is masked out."""
        alive = []
        for i in idx:
            try:
                guards[i].check(self.members[i].optimizer)
                alive.append(i)
            except NonFiniteLossError as exc:
                log.error("fused member %d failed, the others go on: %s", i, exc)
                self.failed[i] = exc
                self.fused.active[i] = False
        return alive

    @torch.no_grad()
    def evaluate(self, idx: list[int], split: str = "val") -> dict[int, dict]:
        """glattn.engine.evaluate for every member in ``idx`` (its own loader and loss)."""
        if not idx:
            return {}
        self.fused.eval()
        members, rt = self.members, self.members[idx[0]].rt
        total = {i: torch.zeros((), dtype=torch.float64, device=rt.device) for i in idx}
        probs, labels = {i: [] for i in idx}, {i: [] for i in idx}
        lengths = {len(members[i].loaders[split]) for i in idx}
        if len(lengths) != 1:  # zip would cut the longer ones short
            raise ValueError(f"fused members have {split} loaders of different lengths {lengths}")
        for batches in zip(*(members[i].loaders[split] for i in idx)):
            moved = [members[i].rt.to_device(*b) for i, b in zip(idx, batches)]
            x = [m[0] for m in moved]
            rows = dict(zip(idx, x))
            filler = torch.zeros_like(x[0])
            stacked = torch.stack([rows.get(i, filler) for i in range(len(members))])
            with rt.autocast():
                logits = self.fused(stacked)
            for i, (_, y) in zip(idx, moved):
                out = logits[i].float()
                total[i] += members[i].loss_fn(out, y).double() * y.shape[0]
                probs[i].append(out.softmax(1))
                labels[i].append(y)
        results = {}
        for i in idx:
            probs_np = torch.cat(probs[i]).cpu().numpy().astype(np.float64)
            labels_np = torch.cat(labels[i]).cpu().numpy()
            out = compute_metrics(labels_np, probs_np, members[i].class_names)
            loss = total[i].item() / len(labels_np)
            out.update(loss=loss if np.isfinite(loss) else float("nan"))
            out.update(probs=probs_np, labels=labels_np)
            results[i] = out
        return results
