"""glattn: Hydra-configured ablation sweeps for Global-Local Self-Attention classifiers."""

__version__ = "0.1.0"

import glattn.registry  # noqa: E402,F401  (the ${glattn.num_classes:} resolver, any process)
import glattn.schema  # noqa: E402,F401  (registers the config schemas before any compose)


def build_model(cfg):
    """Build the whole classifier from a composed config (see glattn.models.build_model)."""
    from glattn.models import build_model as _build

    return _build(cfg)


def load_model(ref, tracking_uri=None, num_classes=None):
    """A trained model from an MLflow run id, a ``runs:/`` URI or a checkpoint file
    (weights_only=True); see glattn.checkpoint.load_model."""
    from glattn.checkpoint import load_model as _load

    return _load(ref, tracking_uri, num_classes)


__all__ = ["build_model", "load_model", "__version__"]
