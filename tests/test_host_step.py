"""benchmarks/host_step.py: DeviceAugment's one-draw parameters are the numbers the old
per-parameter draws gave (same generator stream, same crops, same matrices), and the
benchmark prints its old-vs-new row and the load average."""

import pytest
import torch
from conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")


def _load():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "host_step", ROOT / "benchmarks" / "host_step.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n, side", [(1, 256), (7, 40), (32, 256), (64, 12)])
def test_one_draw_parameters_equal_the_old_draws(n, side):
    from glattn.data.augment import DeviceAugment

    host_step = _load()
    old, new = DeviceAugment(224, 3), DeviceAugment(224, 3)
    for _ in range(20):  # consecutive batches: the streams stay in step
        p, q = host_step.old_sample(old, n, side), new.sample(n, side)
        for key in ("angle", "crop", "flips", "colour", "order"):
            torch.testing.assert_close(q[key], p[key], rtol=0, atol=0, msg=key)
        m_old, m_new = host_step.old_matrices(p, side), new.matrices(q, side)
        torch.testing.assert_close(m_new, m_old, rtol=0, atol=1e-12)
    assert torch.equal(old.generator.get_state(), new.generator.get_state())


def test_benchmark_prints_old_vs_new_and_the_load(capsys):
    _load().main(["--repeats", "5", "--workers", "0", "--no-profile"])
    out = capsys.readouterr().out
    assert "| augmentation parameters, batch 32 (us) |" in out
    assert "load average" in out.splitlines()[0] and "load average" in out.splitlines()[-1]
