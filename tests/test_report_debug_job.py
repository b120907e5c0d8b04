"""The job side of debug presets: a debug preset's run (its experiment, tag, param and name), the
dedicated latency measurement, and the run folder's logs as masked artifacts."""

from pathlib import Path

import pytest
from conftest import smoke_cfg, store_client
from omegaconf import OmegaConf

from glattn import latency
from glattn.job import main
from glattn.report import runs
from glattn.tracking import Tracker


def _files(client, run_id, path=None) -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= _files(client, run_id, item.path) if item.is_dir else {item.path}
    return out


@pytest.mark.slow  # a real smoke run (the routing and names are also checked in test_train)
def test_a_smoke_run_is_a_debug_run_with_its_latency_and_logs(tmp_path):
    out = tmp_path / "out"
    main(smoke_cfg(out, hydra=True))
    client = store_client(out)
    assert client.get_experiment_by_name("glattn") is None  # nothing in the paper's one
    (run,) = client.search_runs([client.get_experiment_by_name("glattn-debug").experiment_id])
    assert run.info.run_name.endswith("_s0_smoke")
    assert run.data.tags["debug"] == "smoke" and run.data.params["debug"] == "smoke"
    m = run.data.metrics
    assert m[latency.LATENCY_KEY] > 0 and m[latency.LATENCY_BATCH_KEY] == 1
    assert m[latency.LATENCY_REPEATS_KEY] >= latency.MIN_BLOCKS and m[latency.MEM_RSS_KEY] > 0
    assert m[latency.INFER_LATENCY_KEY] == m[latency.LATENCY_KEY]  # one measurement, two keys
    assert run.data.tags[latency.DEVICE_TAG].startswith("cpu")
    files = _files(client, run.info.run_id)
    assert {"logs/debug.log", "logs/status.json"} <= files
    # the report leaves it out, unless asked
    uri = f"sqlite:///{out}/mlflow.db"
    notes = []
    frame = runs.load_runs(uri, "glattn-debug", include_debug=True, notes=notes)
    assert frame["run_id"].tolist() == [run.info.run_id]


def test_logged_files_are_masked(tmp_path):
    cfg = OmegaConf.create(
        {
            "uri": f"sqlite:///{tmp_path}/m.db",
            "experiment": "e",
            "artifact_location": str(tmp_path),
        }
    )
    tracker = Tracker(cfg)
    tracker.start("r", {})
    log = tmp_path / "debug.log"
    log.write_text("connecting to postgresql://me:hunter2@db/x with token s3cr3t-value\n")
    tracker.log_masked_files([log, tmp_path / "missing.log"], "logs", {"s3cr3t-value"})
    dst = tmp_path / "downloaded"
    dst.mkdir()
    local = Path(tracker.client.download_artifacts(tracker.run_id, "logs/debug.log", str(dst)))
    text = local.read_text()
    assert "hunter2" not in text and "s3cr3t-value" not in text and "****" in text
    assert "hunter2" in log.read_text()  # the original stays
