"""A run's best weights as an MLflow model, and its data set as an MLflow dataset input.

The model is MLflow's pytorch flavour in its ``pt2`` format (``torch.export``; MLflow 3.x
loads it without unpickling and refuses pickled models by default), with a tensor signature
``image (-1, 3, S, S) float32 -> logits (-1, C)`` and an input example of two normalised
(zero) images; a batch of 2, because torch.export makes a size-1 dimension static
(https://mlflow.org/docs/latest/ml/deep-learning/pytorch/). ``tracking.register_model=NAME``
registers it in the Model Registry as a new version of NAME.

One copy of the weights (docs/training.md, "Disk use"): the MLflow model holds them, and the run's
``checkpoints/best.pt`` becomes the record without its ``model`` tensors, plus ``weights``
naming the model (`slim_record`). glattn's loading path (`load_weights`, called by
glattn.checkpoint.load_checkpoint for such a record) checks the archive with MLflow's own
pickle-free validator, then reads its state dict through ``torch.export.load`` and gives it to
the model glattn rebuilds from the record's config: no unsafe pickle, whatever
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` says.

The data set (`log_dataset`) is an ``mlflow.data`` dataset input of the run (the UI's
Dataset column): its name, the source folder, the split file's digest (sha256 of
``split.csv``: which images were train/val/test) and the per-split image counts (profile).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Name of the logged model of a run (``models:/<model id>``; MLflow 3 LoggedModel).
MODEL_NAME = "model"
#: The model's tag holding `weights_digest`: a retried job finds the model it logged.
WEIGHTS_TAG = "glattn.weights_sha256"
#: The run's metrics a logged model carries (linked to it with ``model_id``).
MODEL_METRIC_PREFIXES = ("best/", "test/")
#: Key of a slim best.pt record naming the MLflow model that holds its weights.
WEIGHTS_KEY = "weights"
PT2_FILE = "data/model.pt2"


@dataclass(frozen=True)
class LoggedWeights:
    """Where a logged model lives: ``models:/<id>``, its artifact folder, its registry
    version (None when not registered)."""

    model_id: str
    model_uri: str
    artifact_uri: str
    registered_name: str | None = None
    version: int | None = None
    #: the store that resolves a remote artifact_uri (``mlflow-artifacts:/``); password masked
    tracking_uri: str | None = None


def model_signature(num_classes: int, image_size: int):
    """``image`` (-1, 3, S, S) float32, normalised as glattn.data.transforms does -> ``logits``
    (-1, C)."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    image = TensorSpec(np.dtype(np.float32), (-1, 3, image_size, image_size), "image")
    logits = TensorSpec(np.dtype(np.float32), (-1, num_classes), "logits")
    return ModelSignature(inputs=Schema([image]), outputs=Schema([logits]))


def input_example(image_size: int) -> np.ndarray:
    """Two normalised mean images (zeros): cheap in JSON, and a dynamic batch dimension."""
    return np.zeros((2, 3, image_size, image_size), dtype=np.float32)


@contextlib.contextmanager
def use_tracking_uri(uri: str):
    """MLflow's fluent model API reads the global tracking URI: set it for the call only.
    ``mlflow.set_tracking_uri`` also writes (or, given None, deletes) the environment's
    MLFLOW_TRACKING_URI, so both are put back as they were."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    before, env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env


def log_model(
    tracker, model, image_size: int, register_as: str | None = None
) -> LoggedWeights | None:
    """Log ``model`` (eval mode, CPU) as the run's MLflow model; register it as
    ``register_as`` when given. ``tracker``: a glattn.tracking.Tracker with a started run
    (None for ``tracking=none``: nothing is logged).

    The model is named after the run (`model_name`) and carries the run's params, its
    validation and test metrics (linked to the model and to the run's data set) and the
    run's factor tags (`describe_model`), so the experiment's Models tab compares models.
    Idempotent: a retried or resumed run finds the model it logged already (same weights,
    `weights_digest`) and logs no second copy; a partial or stale one is deleted first."""
    if not tracker.enabled:
        return None
    import mlflow.pytorch
    import torch

    from glattn.secrets import mask_uri
    from glattn.tracking.uris import resolve_uri

    model = model.eval()
    digest = weights_digest(model)
    run = tracker.client.get_run(tracker.run_id)
    name = model_name(run.info.run_name)
    found = _logged_before(tracker, digest)
    if found is not None:
        with use_tracking_uri(resolve_uri(tracker.cfg.uri)):  # the registry reads it
            version = _registered_version(tracker.client, found, register_as)
        info_id = found.model_id
        log.info(
            "MLflow model %s of run %s: logged already", f"models:/{info_id}", run.info.run_id
        )
    else:
        num_classes = int(model(torch.zeros(1, 3, image_size, image_size)).shape[1])
        requirements = [
            f"torch=={torch.__version__.split('+')[0]}",
            f"mlflow=={mlflow.__version__}",
        ]
        # created here, in the run's experiment (MLflow's fluent API would use its active one)
        created = tracker.client.create_logged_model(
            tracker.ensure_experiment(),
            name=name,
            source_run_id=tracker.run_id,
            tags={WEIGHTS_TAG: digest},
        )
        with use_tracking_uri(resolve_uri(tracker.cfg.uri)), torch.no_grad():
            info = mlflow.pytorch.log_model(
                model,
                name=name,
                signature=model_signature(num_classes, image_size),
                input_example=input_example(image_size),
                serialization_format="pt2",
                run_id=tracker.run_id,
                model_id=created.model_id,
                registered_model_name=register_as or None,
                pip_requirements=requirements,  # not inferred: that would load the model again
                validate_serving_input=False,  # pyfunc serving of a tensor input is not glattn's
            )
        info_id = info.model_id
        version = getattr(info, "registered_model_version", None)
    describe_model(tracker.client, run, info_id)
    logged = tracker.client.get_logged_model(info_id)
    out = LoggedWeights(
        model_id=info_id,
        model_uri=f"models:/{info_id}",
        artifact_uri=logged.artifact_location,
        registered_name=register_as or None,
        version=int(version) if version is not None else None,
        tracking_uri=mask_uri(resolve_uri(tracker.cfg.uri)),
    )
    log.info(
        "MLflow model %s (%s) of run %s%s",
        out.model_uri,
        name,
        tracker.run_id,
        f", registered as {register_as} version {out.version}" if register_as else "",
    )
    return out


def model_name(run_name: str | None) -> str:
    """The logged model's name: its run's name, with the characters MLflow refuses in a
    model name (``/ : . % " '``) as ``-``."""
    name = "".join("-" if c in "/:.%\"'" else c for c in str(run_name or "")).strip()
    return name or MODEL_NAME


def weights_digest(model) -> str:
    """sha256 of the model's state dict (names, shapes, dtypes, bytes): the same weights,
    the same digest, so a retried job recognises the model it logged."""
    import torch

    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{key}{tuple(data.shape)}{data.dtype}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _logged_before(tracker, digest: str):
    """The READY model of this run with these weights, or None; the run's other models (a
    partial one from a kill while logging, a stale one) are deleted, so one remains."""
    models = tracker.client.search_logged_models(
        [tracker.ensure_experiment()], filter_string=f"source_run_id = '{tracker.run_id}'"
    )
    keep = None
    for found in models:
        ready = str(found.status).upper().endswith("READY")
        if keep is None and ready and found.tags.get(WEIGHTS_TAG) == digest:
            keep = found
            continue
        log.info(
            "MLflow model %s of run %s: not this run's weights, deleted",
            found.model_id,
            tracker.run_id,
        )
        tracker.client.delete_logged_model(found.model_id)
    return keep


def _registered_version(client, found, register_as: str | None) -> int | None:
    """The registry version of a model logged before (registered now if it was not)."""
    if not register_as:
        return None
    for version in client.search_model_versions(f"name = '{register_as}'"):
        if found.model_id in str(version.source):  # models:/<model id>
            return int(version.version)
    if not client.search_registered_models(f"name = '{register_as}'"):
        client.create_registered_model(register_as)  # a kill before the registry's first write
    made = client.create_model_version(
        register_as,
        f"models:/{found.model_id}",
        run_id=found.source_run_id,
        model_id=found.model_id,
    )
    return int(made.version)


def describe_model(client, run, model_id: str) -> None:
    """Give the model its run's params, factor tags and metrics: the best checkpoint's
    validation (``best/val/*``) and test (``test/*``) metrics, logged again with ``model_id``
    and the run's data set (at their own step and time: the run's history does not change)."""
    from mlflow.entities import Metric

    from glattn.tracking.names import FACTORS

    model = client.get_logged_model(model_id)
    params = {k: v for k, v in run.data.params.items() if k not in model.params}
    if params:
        client.log_model_params(model_id, params)
    tags = {k: run.data.tags[k] for k in (*FACTORS, "seed", "fingerprint") if k in run.data.tags}
    client.set_logged_model_tags(model_id, tags)
    dataset = next(iter(run.inputs.dataset_inputs), None) if run.inputs else None
    name, digest = (dataset.dataset.name, dataset.dataset.digest) if dataset else (None, None)
    metrics, have = [], {m.key for m in model.metrics or ()}
    for key in sorted(run.data.metrics):
        if not key.startswith(MODEL_METRIC_PREFIXES) or key in have:
            continue
        last = max(
            client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp)
        )
        metrics.append(Metric(key, last.value, last.timestamp, last.step, model_id, name, digest))
    for i in range(0, len(metrics), 1000):
        client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])


def slim_record(ckpt: Mapping, logged: LoggedWeights) -> dict:
    """The best.pt record without its weights, naming the MLflow model that holds them."""
    record = {k: v for k, v in ckpt.items() if k != "model"}
    record[WEIGHTS_KEY] = asdict(logged)
    return record


def _local_model_dir(artifact_uri: str, tracking_uri: str | None) -> tuple[Path, bool]:
    """The model's folder: itself in a local artifact store, else downloaded into a
    temporary folder; True when it was downloaded (the caller removes it)."""
    if artifact_uri.startswith("file:") or artifact_uri.startswith("/"):
        from mlflow.utils.file_utils import local_file_uri_to_path

        return Path(local_file_uri_to_path(artifact_uri)), False
    import tempfile

    import mlflow.artifacts

    dst = tempfile.mkdtemp(prefix="glattn-model-")
    try:  # models:/ and runs:/ URIs are resolved through the global tracking URI
        with use_tracking_uri(tracking_uri) if tracking_uri else contextlib.nullcontext():
            folder = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=dst, tracking_uri=tracking_uri
            )
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    return Path(folder), True


def load_weights(weights: Mapping, tracking_uri: str | None = None) -> dict:
    """The state dict held by the MLflow model ``weights`` names (a `slim_record` entry):
    its pt2 archive, checked pickle-free by MLflow's validator, read by torch.export.load."""
    import mlflow.pytorch
    import torch

    # MLflow's own check (private, but the one that decides what mlflow.pytorch.load_model
    # unpickles); without it glattn refuses rather than trusting the archive
    validate = getattr(mlflow.pytorch, "_validate_pt2_archive_is_pickle_free", None)
    if validate is None:
        raise RuntimeError(
            f"mlflow {mlflow.__version__} cannot check a pt2 model for pickled records; "
            "glattn reads MLflow models with mlflow >= 3.17 (setup.cfg)"
        )
    uri = tracking_uri or weights.get("tracking_uri")
    folder, downloaded = _local_model_dir(str(weights["artifact_uri"]), uri)
    try:
        path = folder / PT2_FILE
        if not path.is_file():
            raise FileNotFoundError(f"MLflow model {weights.get('model_uri')}: no {path}")
        validate(str(path))  # raises on any pickled record
        program = torch.export.load(str(path))
        return {k: v.detach().clone() for k, v in program.state_dict.items()}
    finally:
        if downloaded:
            shutil.rmtree(folder, ignore_errors=True)


def split_digest(split_csv: str | Path) -> str:
    """sha256 of the split file (which image is in which split), hex."""
    return hashlib.sha256(Path(split_csv).read_bytes()).hexdigest()


def log_dataset(
    tracker,
    name: str,
    source: str,
    split_csv: str | Path,
    counts: Mapping[str, int],
    context: str = "training",
) -> None:
    """Record the run's data set as an MLflow dataset input (``context``: ``training``, or
    ``evaluation`` for an eval run): name, source folder, the split file's digest, per-split
    counts (the dataset's profile)."""
    if not tracker.enabled:
        return
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import DatasetInput, InputTag

    class _SplitDataset(MetaDataset):
        def to_dict(self) -> dict[str, str]:  # MetaDataset records no profile of its own
            profile = {f"{split}_images": int(n) for split, n in counts.items()}
            return super().to_dict() | {"profile": json.dumps(profile | {"split_sha256": digest})}

    digest = split_digest(split_csv)
    dataset = _SplitDataset(LocalArtifactDatasetSource(str(source)), name=name, digest=digest[:16])
    entity = dataset._to_mlflow_entity()  # the entity mlflow.log_input builds, for the client
    tags = [InputTag("mlflow.data.context", context)]
    tracker.client.log_inputs(tracker.run_id, datasets=[DatasetInput(entity, tags=tags)])
