"""glattn: Hydra-configured ablation sweeps for Global-Local Self-Attention classifiers."""

__version__ = "0.1.0"

import glattn.registry  # noqa: E402,F401  (the ${glattn.num_classes:} resolver, any process)
import glattn.schema  # noqa: E402,F401  (registers the config schemas before any compose)


def build_model(cfg):
    """Build the whole classifier from a composed config (see glattn.models.build_model)."""
    from glattn.models import build_model as _build

    return _build(cfg)


__all__ = ["build_model", "__version__"]
