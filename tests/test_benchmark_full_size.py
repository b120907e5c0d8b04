"""benchmarks/full_size.py: the full-size plan is HAM10000's shape, and the tiny mode runs
every phase end to end on a few images (the full run is a manual, once-a-release job)."""

import json
from collections import Counter

import pandas as pd

from glattn.data.classes import HAM10000_DX_COUNTS


def _bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "full_size.py"
    spec = importlib.util.spec_from_file_location("full_size", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_size_plan_is_ham10000_shaped():
    bench = _bench()
    plan = bench.lesion_plan(bench.FULL["num_images"], bench.FULL["num_lesions"])
    assert len(plan) == 7470
    images = Counter()
    for dx, n in plan:
        images[dx] += n
    assert dict(images) == HAM10000_DX_COUNTS and sum(images.values()) == 10015


def test_tiny_mode_runs_every_phase(tmp_path, one_thread, capsys):
    bench = _bench()
    out = tmp_path / "res.json"
    args = ["--tiny", "--jobs", "1", "--pool-lesions", "1", "--root", str(tmp_path / "b")]
    args += ["--json", str(out), "--keep"]
    assert bench.main(args) == 0  # --jobs 1: this module, loaded from a path, cannot pickle
    res = json.loads(out.read_text())
    tiny = bench.TINY
    assert res["generate"]["images"] == tiny["num_images"]
    assert res["generate"]["lesions"] == tiny["num_lesions"]
    meta = pd.read_csv(tmp_path / "b" / "HAM10000" / "HAM10000_metadata.csv")
    assert len(meta) == tiny["num_images"] and meta["lesion_id"].nunique() == tiny["num_lesions"]
    assert res["cache"]["cache_bytes"] >= tiny["num_images"] * res["side"] ** 2 * 3
    labels = [label for label, _, _ in bench.PIPELINES]
    assert set(res["first_batch"]) == set(res["epoch"]) == set(labels)
    assert all(e["images"] > 0 and e["img_s"] > 0 for e in res["epoch"].values())
    assert all(r["peak_rss_mb"] > 0 for r in [res["generate"], res["cache"]])
    text = capsys.readouterr().out
    assert "load average" in text and "| one training epoch, data only" in text
