"""The run record survives faults (in-process, compose API, debug=smoke): a job finds and
continues the run an earlier attempt left RUNNING before its first checkpoint; stale
temporary files are removed; a resume past the last epoch leaves a complete run folder and
logs nothing twice; a second process with the same fingerprint is refused, naming the
holder; corrupt and unsafe checkpoints name their file and what to do; config errors
(the model on the meta device, an unwritable output folder) fail before any data work."""

import json
import os
import pickle

import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from test_train import runs, smoke_cfg

from glattn.checkpoint import CheckpointError, CheckpointLock, RunLockedError, checkpoint_dir
from glattn.config import ConfigError, config_fingerprint
from glattn.job import main, record
from glattn.job.spec import route_debug
from glattn.tracking import Tracker

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ("trainer.gradcam_per_class=0", "tracking.log_checkpoint=false", "trainer.keep_last=true")


def client(out) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")


def all_histories(c: MlflowClient, run) -> dict[str, list[int]]:
    rid = run.info.run_id
    return {k: [m.step for m in c.get_metric_history(rid, k)] for k in run.data.metrics}


@pytest.fixture(scope="module")
def continued(tmp_path_factory):
    """A job killed before its first checkpoint left a RUNNING run with its tags and one
    param, and a torn temporary file; the same job started again."""
    out = tmp_path_factory.mktemp("record")
    cfg = smoke_cfg(out, *FAST, hydra=True)
    fingerprint = config_fingerprint(cfg)
    route_debug(cfg)  # debug=smoke: the job's runs are in glattn-debug, as the job routes them
    earlier = Tracker(cfg.tracking)
    earlier.start(
        "glattn_original_original_cbam",
        {"fingerprint": fingerprint, "task": "train", "glattn.role": "job"},
    )
    earlier.log_params({"seed": "0"})
    ckpt_dir = checkpoint_dir(cfg, fingerprint)
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / ".last.pt.99999.tmp").write_bytes(b"")  # SIGKILL inside torch.save
    metrics = main(cfg)
    return out, cfg, earlier.run_id, metrics


def test_killed_before_first_checkpoint_continues_the_same_run(continued):
    out, cfg, earlier_id, metrics = continued
    (run,) = runs(out)
    assert run.info.run_id == earlier_id and run.info.status == "FINISHED"
    assert run.data.params["seed"] == "0" and run.data.params["optimizer.lr"] == "0.001"
    assert run.data.metrics["best/val/balanced_acc"] == metrics["best/val/balanced_acc"]
    assert all(steps == [1] for steps in all_histories(client(out), run).values())


def test_stale_temporary_files_are_removed(continued):
    out, cfg, _, _ = continued
    names = {p.name for p in checkpoint_dir(cfg).iterdir()}
    assert names == {"best.pt", "last.pt", ".lock"}


def test_resume_past_the_last_epoch_leaves_a_complete_record(continued, tmp_path):
    """Killed after the last epoch, before the run ended: the next start runs no epoch,
    logs nothing twice and still leaves training_log.csv in the run folder."""
    out, cfg, run_id, metrics = continued
    c = client(out)
    c.set_terminated(run_id, "KILLED")
    last = checkpoint_dir(cfg) / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["state"]["finished"] = False
    torch.save(ckpt, last)
    before = all_histories(c, c.get_run(run_id))
    again = main(smoke_cfg(out, *FAST, hydra=True))
    (run,) = runs(out)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert all_histories(c, run) == before  # nothing logged twice
    assert again["time/train_total_s"] == metrics["time/train_total_s"]  # no epoch re-ran
    run_dir = out / "runs" / run.data.tags["fingerprint"]
    assert (run_dir / "training_log.csv").read_text().count("\n") == 2  # header + epoch 1
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["run_id"] == run_id


def test_finished_job_started_again_adds_no_run(continued):
    out, _, run_id, metrics = continued
    again = main(smoke_cfg(out, *FAST, hydra=True))
    (run,) = runs(out)
    assert run.info.run_id == run_id
    assert again["best/val/balanced_acc"] == metrics["best/val/balanced_acc"]


def test_second_process_with_the_same_fingerprint_is_refused(continued, monkeypatch):
    out, cfg, _, _ = continued
    monkeypatch.setattr(record, "LOCK_WAIT_S", 0.3)
    cfg = smoke_cfg(out, *FAST, "seed=5", "tracking.experiment=locked", hydra=True)
    with CheckpointLock(checkpoint_dir(cfg)):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}@"):
            main(cfg)
    assert runs(out, "locked-debug") == []  # the refused process created no run


def test_truncated_checkpoint_names_the_file_and_what_to_do(tmp_path):
    cfg = smoke_cfg(tmp_path, *FAST, hydra=True)
    ckpt_dir = checkpoint_dir(cfg)
    ckpt_dir.mkdir(parents=True)
    torch.save({"model": torch.zeros(1000)}, ckpt_dir / "last.pt")
    blob = (ckpt_dir / "last.pt").read_bytes()
    (ckpt_dir / "last.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError) as err:
        main(cfg)
    message = str(err.value)
    assert str(ckpt_dir / "last.pt") in message and "trainer.resume=false" in message
    assert "corrupt or truncated" in message
    (run,) = runs(tmp_path)  # the run records the failure and its message
    assert run.info.status == "FAILED"
    assert str(ckpt_dir / "last.pt") in run.data.tags["glattn.error"]
    assert not (tmp_path / "data").exists()  # before any data work


class Unsafe:  # a pickled class: weights_only=True refuses it
    pass


def test_unsafe_checkpoint_is_refused_with_its_file_name(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"model": Unsafe()}, path, pickle_module=pickle)
    cfg = smoke_cfg(tmp_path, *FAST, "task=eval", f"ckpt_path={path}", hydra=True)
    with pytest.raises(CheckpointError, match="safe load") as err:
        main(cfg)
    assert str(path) in str(err.value) and "ckpt_path=" in str(err.value)
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run or data


def test_model_errors_fail_before_any_data_work(tmp_path):
    with pytest.raises(ConfigError, match="the model cannot be built") as err:
        main(smoke_cfg(tmp_path, "glsa.num_heads=7", hydra=True))
    assert "num_heads" in str(err.value) or "divisible" in str(err.value)
    assert not any(tmp_path.iterdir())  # nothing generated, cached, split or tracked


def test_unwritable_output_folder_fails_before_any_data_work(tmp_path):
    blocker = tmp_path / "a_file"  # (root may write anywhere; nobody writes under a file)
    blocker.write_text("")
    with pytest.raises(ConfigError, match="not a writable folder") as err:
        main(smoke_cfg(blocker / "out"))
    assert "paths.output_dir" in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


def test_missing_value_is_named(tmp_path):
    cfg = smoke_cfg(tmp_path)
    OmegaConf.update(cfg, "dataset.root", "???", force_add=True)
    with pytest.raises(ConfigError, match="dataset.root: missing value"):
        main(cfg)
    assert not any(tmp_path.iterdir())
