"""jobs_per_gpu=auto's measured probe: the peak GPU memory of one job's training steps.

``python -m glattn.sweep.probe <config.yaml>`` builds the config's model (on the meta
device, then allocated: no weights are loaded), its optimizer, and trains `PROBE_STEPS`
steps at the config's batch size on random tensors in the device's precision and memory
format, then prints one JSON line: the caching allocator's peak reserved and allocated
bytes (None on a CPU). glattn.sweep.packing runs it in a child process pinned to the GPU
(CUDA_VISIBLE_DEVICES), so the launcher never holds a CUDA context of its own.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_STEPS = 3
PROBE_TIMEOUT_S = 300

#: the parts of a job's config the probe needs (model, optimizer, batch, precision)
PROBE_KEYS = (
    "backbone",
    "glsa",
    "attention",
    "fusion",
    "residual",
    "dataset",
    "paths",
    "trainer",
    "optimizer",
)


def probe_peak(cfg_yaml: Path, gpu: str | None) -> float | None:
    """Bytes reserved on the GPU by `PROBE_STEPS` training steps of the config in
    `cfg_yaml`, measured in a child process pinned to `gpu`; None on failure."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="" if gpu is None else str(gpu))
    cmd = [sys.executable, "-m", "glattn.sweep.probe", str(cfg_yaml)]
    try:
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env, check=True
        )
        found = json.loads(res.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        log.warning("jobs_per_gpu=auto: the memory probe failed (%s)", e)
        return None
    return found.get("reserved")


def probe(cfg) -> dict:
    """`PROBE_STEPS` training steps of `cfg`'s model at its batch size on random tensors
    (the device's precision and memory format): {"reserved", "allocated"} bytes (None on a
    CPU), "device". Weights are not loaded (built on the meta device, then allocated)."""
    import torch

    from glattn.models import build_model
    from glattn.optim import build_optimizer

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    with torch.device("meta"):
        model = build_model(cfg)
    model = model.to_empty(device=device)
    with torch.no_grad():  # finite values: memory does not depend on them, BatchNorm does
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            t.fill_(1.0 if name.endswith("running_var") else 0.01)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(cfg, model)
    size, batch = int(cfg.dataset.image_size), int(cfg.trainer.batch_size)
    x = torch.randn(batch, 3, size, size, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, int(cfg.dataset.num_classes), (batch,), device=device)
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    for _ in range(PROBE_STEPS):
        with torch.autocast(device.type, dtype=dtype, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if not cuda:
        return {"reserved": None, "allocated": None, "device": "cpu"}
    torch.cuda.synchronize()
    return {
        "reserved": float(torch.cuda.max_memory_reserved()),
        "allocated": float(torch.cuda.max_memory_allocated()),
        "device": torch.cuda.get_device_name(0),
    }


def write_config(owner, overrides: list[str], folder: Path) -> Path:
    """The job's config (PROBE_KEYS, resolved as in the job) as YAML under `folder`."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    cfg = owner.hydra_context.config_loader.load_sweep_config(owner.config, overrides)
    previous = HydraConfig.instance().cfg
    try:
        HydraConfig.instance().set_config(cfg)
        node = OmegaConf.masked_copy(cfg, [k for k in PROBE_KEYS if k in cfg])
        text = OmegaConf.to_yaml(node, resolve=True)
    finally:
        HydraConfig.instance().cfg = previous
    path = folder / "probe_config.yaml"
    path.write_text(text)
    return path


def _main(argv: Sequence[str]) -> int:
    """``python -m glattn.sweep.probe <config.yaml>``: one JSON line (see probe)."""
    from omegaconf import OmegaConf

    if len(argv) != 1:
        print("usage: python -m glattn.sweep.probe <config.yaml>", file=sys.stderr)
        return 2
    print(json.dumps(probe(OmegaConf.load(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
