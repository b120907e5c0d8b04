"""Tracking and fingerprint: flattened/masked params, MLflow limits, URIs, experiment
artifact location, continuing a run, find_finished_run; config_fingerprint invariances."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from glattn.checkpoint import checkpoint_dir
from glattn.config import config_fingerprint
from glattn.tracking import (
    MASK,
    NullTracker,
    Tracker,
    find_finished_run,
    flatten_config,
    get_experiment_id,
    make_tracker,
    resolve_uri,
)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def cfg_with(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("config", overrides=list(overrides))


def tracking(tmp_path, experiment="exp"):
    return OmegaConf.create(
        {
            "enabled": True,
            "uri": f"sqlite:///{tmp_path}/mlflow.db",
            "experiment": experiment,
            "artifact_location": str(tmp_path / "mlartifacts"),
            "log_checkpoint": False,
        }
    )


def test_flatten_masks_secrets_and_respects_limits():
    flat = flatten_config(
        {
            "a": {"b": 1, "c": [1, 2], "api_token": "abc", "password": "pw", "none": None},
            "db": {"uri": "postgresql://user:hunter2@host/db", "secret_key": None},
            "long": "x" * 7000,
            "hydra": {"job": 1},
            "empty": {},
        }
    )
    assert flat["a.b"] == "1" and flat["a.c"] == "[1, 2]" and flat["a.none"] == "None"
    assert flat["a.api_token"] == MASK and flat["a.password"] == MASK
    assert "hunter2" not in flat["db.uri"] and flat["db.uri"].startswith("postgresql://user:")
    assert flat["db.secret_key"] == "None"  # nothing to hide
    assert len(flat["long"]) == 6000 and "hydra.job" not in flat and flat["empty"] == "{}"


def test_flatten_real_config_has_dotted_keys():
    cfg = cfg_with("trainer.max_epochs=7")
    flat = flatten_config(cfg)
    assert flat["optimizer.lr"] == "0.001" and flat["trainer.max_epochs"] == "7"
    assert flat["paths.output_dir"]


def test_params_are_settings_once_grouped_and_the_class_is_a_tag():
    """Params a researcher reads: no Hydra instantiate keys, ``seed`` once (a tag), no launch
    controls; sorted, so a group's settings sit together; the class each option builds is
    the ``class.<group>`` tag. The fingerprint is the config's (tests/test_fingerprints.py)."""
    from glattn.tracking import class_tags

    cfg = cfg_with("fusion=learnable_gate")
    flat = flatten_config(cfg)
    assert not [k for k in flat if k.rsplit(".", 1)[-1] in ("_target_", "_partial_")]
    assert "seed" not in flat and not [k for k in flat if k.startswith(("sweep.", "hydra"))]
    assert list(flat) == sorted(flat) and flat["fusion.init_logit"] == "0.0"
    tags = class_tags(cfg)
    assert tags["class.fusion"] == cfg.fusion._target_ and tags["class.loss"] == cfg.loss._target_
    owners = {k for k in cfg if isinstance(cfg[k], DictConfig) and "_target_" in cfg[k]}
    assert set(tags) == {f"class.{k}" for k in owners} and "class.glsa" in tags


def test_sqlite_uri_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_uri("sqlite:///outputs/mlflow.db") == f"sqlite:///{tmp_path}/outputs/mlflow.db"
    assert resolve_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert (tmp_path / "outputs").is_dir()


def test_default_tracking_config_is_sqlite_under_output_dir():
    cfg = cfg_with("paths.output_dir=/some/where")
    assert cfg.tracking.uri == "sqlite:////some/where/mlflow.db"
    assert cfg.tracking.artifact_location == "/some/where/mlartifacts"
    assert isinstance(make_tracker(cfg_with("tracking=none").tracking), NullTracker)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """One MLflow database for the module (creating one runs ~30 schema migrations)."""
    return tmp_path_factory.mktemp("mlflow")


def test_tracker_creates_continues_and_finds_runs(db):
    tmp_path = db
    t_cfg = tracking(tmp_path)
    tracker = Tracker(t_cfg)
    assert tracker.start("r", {"fingerprint": "abc", "task": "train"}) is True
    params = {f"p{i}": str(i) for i in range(250)}  # > 100 per batch
    tracker.log_params(params)
    tracker.log_metrics({"val/acc": 0.5, "nan": float("nan")}, step=1)
    run_id = tracker.run_id
    exp = tracker.client.get_experiment(tracker.experiment_id)
    assert exp.artifact_location == (tmp_path / "mlartifacts" / "exp").as_uri()
    assert find_finished_run(t_cfg, "abc") is None  # still RUNNING

    again = Tracker(t_cfg)  # a restarted process continues the same run
    assert again.start("r", {}, run_id=run_id) is False and again.run_id == run_id
    assert again.logged_steps("val/acc") == {1}
    again.end("FINISHED")
    found = find_finished_run(t_cfg, "abc")
    assert found.info.run_id == run_id and len(found.data.params) == 250
    assert find_finished_run(t_cfg, "other") is None
    assert find_finished_run(t_cfg, "abc", task="eval") is None  # a train run is no eval run
    evaluation = Tracker(t_cfg)
    evaluation.start("e", {"fingerprint": "abc", "task": "eval"})
    evaluation.end("FINISHED")
    assert find_finished_run(t_cfg, "abc", task="eval").info.run_id == evaluation.run_id
    assert find_finished_run(t_cfg, "abc").info.run_id == run_id
    assert find_finished_run(tracking(tmp_path, "missing"), "abc") is None

    other = Tracker(tracking(tmp_path, "exp2"))  # unknown id in this experiment: new run
    assert other.start("r", {}, run_id=run_id) is True and other.run_id != run_id
    assert get_experiment_id(tracking(tmp_path, "exp2")) == other.experiment_id


def test_parent_run_tag(db):
    tmp_path = db
    t = Tracker(tracking(tmp_path, "parents"))
    t.start("sweep", {"glattn.role": "sweep"})
    child = Tracker(tracking(tmp_path, "parents"))
    child.start("job", {"glattn.role": "job"}, parent_run_id=t.run_id)
    run = child.client.get_run(child.run_id)
    assert run.data.tags["mlflow.parentRunId"] == t.run_id


def test_fingerprint_ignores_paths_tracking_device_and_sees_the_model():
    base = config_fingerprint(cfg_with())
    assert len(base) == 12 and base == config_fingerprint(cfg_with())
    for same in (
        "paths.output_dir=/elsewhere",
        "tracking.experiment=x",
        "trainer.device=cpu",
        "tracking=none",
        "sweep.rerun=true",
        "trainer.num_workers=3",
    ):
        assert config_fingerprint(cfg_with(same)) == base, same
    for different in (
        "optimizer.lr=0.01",
        "fusion=cross_attn",
        "seed=1",
        "loss=ce",
        "dataset.image_size=32",
    ):
        assert config_fingerprint(cfg_with(different)) != base, different
    cfg = cfg_with("paths.output_dir=/out")
    assert checkpoint_dir(cfg) == Path("/out/checkpoints") / base


def test_secrets_are_masked_in_containers_overrides_and_text():
    from glattn.secrets import mask_container, mask_override, mask_text, secret_values

    node = {"tracking": {"api_key": "k-123", "uri": "http://u:pw-9@h/"}, "seed": 3}
    assert mask_container(node) == {
        "tracking": {"api_key": MASK, "uri": f"http://u:{MASK}@h/"},
        "seed": 3,
    }
    overrides = ["+dataset.access_token=t-456", "seed=1", "tracking.uri=postgresql://a:b-7@h"]
    assert secret_values(node) == {"k-123", "pw-9"}
    assert secret_values(overrides) == {"t-456", "b-7"}
    assert [mask_override(o) for o in overrides] == [
        f"+dataset.access_token={MASK}",
        "seed=1",
        f"tracking.uri=postgresql://a:{MASK}@h",
    ]
    assert mask_text("key k-123 and t-456 in a line", {"k-123", "t-456"}) == (
        f"key {MASK} and {MASK} in a line"
    )


def test_locked_database_is_retried_then_succeeds():
    from glattn.tracking.client import retry_locked

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert retry_locked(flaky) == "ok" and len(calls) == 3
    with pytest.raises(ValueError, match="other"):  # anything else is not retried
        retry_locked(lambda: (_ for _ in ()).throw(ValueError("other")))


def test_a_concurrent_insert_of_the_same_data_set_is_retried_and_nothing_else_is():
    """Two jobs logging one data set at once: MLflow checks for the row, then inserts it,
    so one of them hits the unique key (SQLite and PostgreSQL wordings). log_inputs inserts
    only what is missing, so it is retried; another call with that error is not."""
    from glattn.tracking.client import RetryingClient

    class Store:
        def __init__(self, error):
            self.error, self.calls = error, []

        def log_inputs(self, run_id, datasets=None):
            self.calls.append(run_id)
            if len(self.calls) == 1:
                raise RuntimeError(self.error)
            return "logged"

        def create_registered_model(self, name):
            self.calls.append(name)
            raise RuntimeError(self.error)

    for error in (
        "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, "
        "datasets.name, datasets.digest",
        "BAD_REQUEST: (psycopg2.errors.UniqueViolation) duplicate key value violates unique "
        'constraint "dataset_pk"',
    ):
        store = Store(error)
        assert RetryingClient(store).log_inputs("run1", datasets=[]) == "logged"
        assert store.calls == ["run1", "run1"]
        store = Store(error)
        with pytest.raises(RuntimeError, match="(?i)unique"):
            RetryingClient(store).create_registered_model("m")
        assert store.calls == ["m"]  # not an idempotent insert: raised at once
    store = Store("some other error")
    with pytest.raises(RuntimeError, match="other"):
        RetryingClient(store).log_inputs("run1")
    assert store.calls == ["run1"]


def test_grid_id_ignores_order_and_neutral_overrides():
    from glattn.sweep.store import grid_id

    a = grid_id("exp", [["fusion=a", "seed=0"], ["fusion=b", "seed=0"]])
    assert a == grid_id("exp", [["seed=0", "fusion=b"], ["seed=0", "fusion=a", "sweep.rerun=1"]])
    assert a == grid_id(
        "exp",
        [
            ["fusion=a", "seed=0", "hydra/launcher=local_gpus"],
            ["fusion=b", "seed=0", "trainer.device=cpu"],
        ],
    )
    assert a != grid_id("exp", [["fusion=a", "seed=0"]])  # another set of jobs
    assert a != grid_id("other", [["fusion=a", "seed=0"], ["fusion=b", "seed=0"]])


def test_checkpoint_lock_names_its_holder(tmp_path):
    import os

    from glattn.checkpoint import CheckpointLock, RunLockedError

    with CheckpointLock(tmp_path):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}@"):
            CheckpointLock(tmp_path, wait_s=0.2, poll_s=0.05).acquire()
    with CheckpointLock(tmp_path, wait_s=0):  # released: free again
        pass
