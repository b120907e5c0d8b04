"""Loop pieces on a tiny local model: one epoch, evaluate, finite-loss guard, AMP, resume."""

import random

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from glattn.checkpoint import atomic_save, load_checkpoint
from glattn.data import CLASS_NAMES
from glattn.engine import NonFiniteLossError, Runtime, evaluate, train_one_epoch
from glattn.job.callbacks import Checkpointer, HistoryCSV
from glattn.job.trainer import Trainer
from glattn.losses import CrossEntropyLoss
from glattn.runtime import make_runtime, rng_state, set_rng_state

CLASSES = CLASS_NAMES


pytestmark = pytest.mark.usefixtures("one_thread")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 7)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        return self.head(self.drop(self.conv(x).relu().mean((2, 3))))


def _loader(n=56, seed=0, shuffle=True):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 7
    images = torch.randn(n, 3, 8, 8, generator=g) + labels[:, None, None, None] * 0.5
    return DataLoader(TensorDataset(images, labels), batch_size=8, shuffle=shuffle)


def _trainer(**kw):
    base = dict(
        device="cpu",
        amp="none",
        channels_last=False,
        grad_clip=None,
        log_every_n_steps=1,
        monitor="val/balanced_acc",
        monitor_mode="auto",
    )
    return OmegaConf.create({**base, **kw})


def test_train_one_epoch_learns_and_evaluate_reports_metrics():
    torch.manual_seed(0)
    model, loss_fn = Tiny(), CrossEntropyLoss([8] * 7)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    rt = Runtime(torch.device("cpu"), progress=False)
    first = train_one_epoch(model, _loader(), loss_fn, opt, rt, 1)
    for epoch in range(2, 9):
        last = train_one_epoch(model, _loader(), loss_fn, opt, rt, epoch)
    assert last["loss"] < first["loss"] and 0 <= last["acc"] <= 1 and last["img_s"] > 0
    out = evaluate(model, _loader(shuffle=False), loss_fn, rt, CLASSES)
    assert out["probs"].shape == (56, 7) and out["labels"].shape == (56,)
    np.testing.assert_allclose(out["probs"].sum(1), 1, atol=1e-5)
    assert out["balanced_acc"] > 1 / 7 and {"auc", "macro_f1", "confusion", "loss"} <= set(out)
    assert not model.training


def test_non_finite_loss_raises_clear_error():
    model = Tiny()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rt = Runtime(torch.device("cpu"), progress=False)
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss .* epoch 3, step 1"):
        train_one_epoch(model, _loader(), CrossEntropyLoss([1] * 7), opt, rt, 3)


class NanAt(nn.Module):
    """Tiny, but its output turns NaN from the `bad`-th call on (a blow-up mid-epoch)."""

    def __init__(self, bad: int):
        super().__init__()
        self.net, self.bad, self.calls = Tiny(), bad, 0

    def forward(self, x):
        self.calls += 1
        out = self.net(x)
        return out * float("nan") if self.calls >= self.bad else out


@pytest.mark.parametrize("every", [1, 3, 100])
def test_non_finite_guard_names_the_first_bad_step_whatever_the_cadence(every):
    model = NanAt(bad=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rt = Runtime(torch.device("cpu"), progress=False, log_every_n_steps=every)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 5\b"):
        train_one_epoch(model, _loader(), CrossEntropyLoss([1] * 7), opt, rt, 2)
    # it stops at the first check after step 5 (the cadence, or the end of the epoch)
    assert model.calls == min(-(-5 // every) * every, len(_loader()))


def _host_reads(monkeypatch, n):
    """Tensor -> host reads (.item(), bool(), .tolist()) during one epoch of n batches."""
    calls, batches = [], list(_loader(n))  # the loader's own sampling is not counted
    for name in ("item", "__bool__", "tolist"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, **kw):
            calls.append(1)
            return _real(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    model = Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rt = Runtime(torch.device("cpu"), progress=False, log_every_n_steps=1000)
    out = train_one_epoch(model, batches, CrossEntropyLoss([1] * 7), opt, rt, 1)
    monkeypatch.undo()
    assert np.isfinite(out["loss"]) and 0 <= out["acc"] <= 1
    return len(calls)


def test_no_host_synchronisation_per_step(monkeypatch):
    """Loss, accuracy and the finite check are read once per epoch, not once per step."""
    assert _host_reads(monkeypatch, 8 * 4) == _host_reads(monkeypatch, 8 * 16) <= 3


def test_device_augment_hook_feeds_the_model_augmented_batches():
    from glattn.data.augment import DeviceAugment

    side, size = 18, 16  # resize_side(16) = 18
    images = torch.randint(0, 256, (16, 3, side, side), dtype=torch.uint8)
    loader = DataLoader(TensorDataset(images, torch.arange(16) % 7), batch_size=8)
    seen = []
    model = Tiny()
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rt = Runtime(torch.device("cpu"), progress=False, augment=DeviceAugment(size, seed=0))
    train_one_epoch(model, loader, CrossEntropyLoss([1] * 7), opt, rt, 1)
    assert seen == [torch.Size([8, 3, size, size])] * 2


def test_bf16_autocast_channels_last_and_grad_clip_on_cpu():
    torch.manual_seed(0)
    rt = make_runtime(_trainer(amp="bf16", channels_last=True, grad_clip=0.5))
    assert rt.amp_dtype == torch.bfloat16 and rt.scaler is None and rt.channels_last
    model = Tiny().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = train_one_epoch(model, _loader(), CrossEntropyLoss([1] * 7), opt, rt, 1)
    assert np.isfinite(out["loss"])


def test_runtime_choices_and_errors():
    rt = make_runtime(_trainer(amp="auto", channels_last="auto"))
    assert rt.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        assert rt.amp_dtype is None and rt.channels_last is False
        with pytest.raises(ValueError, match="fp16"):
            make_runtime(_trainer(amp="fp16"))
        with pytest.raises(ValueError, match="CUDA"):
            make_runtime(_trainer(device="cuda"))


def test_rng_state_roundtrip_through_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = rng_state()
    atomic_save({"rng": state}, tmp_path / "c.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed


def _uint8_loader(side, seed=0, shuffle=True):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(56) % 7
    images = torch.randint(0, 200, (56, 3, side, side), generator=g, dtype=torch.uint8)
    images[:, 0] += (labels * 8).to(torch.uint8)[:, None, None]  # learnable: red per class
    return DataLoader(TensorDataset(images, labels), batch_size=8, shuffle=shuffle)


def _loop(tmp_path, cfg, augment=False):
    from glattn.data.augment import DeviceAugment

    torch.manual_seed(0)
    model = Tiny()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=0)
    rt = make_runtime(cfg.trainer)
    if augment:  # raw uint8 (B, 3, 18, 18) batches, augmented to 16 px in the loop
        rt.augment = DeviceAugment(16, seed=0)
        loaders = {"train": _uint8_loader(18), "val": _uint8_loader(16, 1, shuffle=False)}
    else:
        loaders = {"train": _loader(), "val": _loader(seed=1, shuffle=False)}
    return Trainer(
        model,
        CrossEntropyLoss([8] * 7),
        opt,
        sched,
        rt,
        loaders,
        CLASSES,
        cfg.trainer,
        [Checkpointer(tmp_path / "ckpt", {}), HistoryCSV(tmp_path)],
        stateful={"augment": rt.augment} if augment else {},
    )


def _cfg(max_epochs, patience=None):
    return OmegaConf.create(
        {"trainer": {**_trainer(), "max_epochs": max_epochs, "early_stopping_patience": patience}}
    )


@pytest.mark.parametrize("augment", [False, True], ids=["plain", "device-augment"])
def test_loop_resume_from_last_checkpoint_is_exact(tmp_path, augment):
    full = _loop(tmp_path / "a", _cfg(4), augment)
    full.fit()
    half = _loop(tmp_path / "b", _cfg(2), augment)
    half.fit()
    ckpt = load_checkpoint(tmp_path / "b" / "ckpt" / "last.pt")
    assert ckpt["epoch"] == 2 and (tmp_path / "b" / "training_log.csv").is_file()
    fresh = _loop(tmp_path / "c", _cfg(4), augment)
    resumed = _loop(tmp_path / "b", _cfg(4), augment)
    torch.manual_seed(123)  # whatever happened since, the checkpoint's RNG state wins
    resumed.restore(ckpt)
    if augment:  # the augmentation's own generator comes from the checkpoint too
        assert set(ckpt["stateful"]) == {"augment"}
        assert not torch.equal(
            fresh.rt.augment.generator.get_state(), resumed.rt.augment.generator.get_state()
        )
    resumed.fit()

    def timeless(history):
        skip = ("time", "perf")
        return [{k: v for k, v in r.items() if not k.startswith(skip)} for r in history]

    assert timeless(resumed.state.history) == timeless(full.state.history)
    for a, b in zip(resumed.model.state_dict().values(), full.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_early_stopping_stops_and_best_checkpoint_follows_monitor(tmp_path):
    loop = _loop(tmp_path, _cfg(30, patience=2))
    loop.optimizer.param_groups[0]["lr"] = 0.0  # nothing improves after epoch 1
    state = loop.fit()
    assert state.stopped_early and state.epoch == 3 and state.best_epoch == 1
    assert load_checkpoint(tmp_path / "ckpt" / "best.pt")["epoch"] == 1
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["epoch"] == 3
