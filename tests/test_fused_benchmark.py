"""benchmarks/fused_seeds.py runs at a tiny size and ends with its ratio line (
item 6); the ratio itself is a measurement, never asserted."""

import importlib.util
import re

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


def test_fused_seeds_prints_its_ratio(capsys):
    path = ROOT / "benchmarks" / "fused_seeds.py"
    spec = importlib.util.spec_from_file_location("fused_seeds", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--size", "32", "--batch", "2", "--steps", "1", "--warmup", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"fused 3 seeds vs 3 separate jobs: \d+\.\d\d x", lines[-1])
    assert [line.split()[0] for line in lines[1:4]] == ["separate", "fused", "fused"]
