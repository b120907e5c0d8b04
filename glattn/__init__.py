"""glattn: Hydra-configured ablation sweeps for Global-Local Self-Attention classifiers.

Architecture: layers, lowest first. A module imports only from its own layer or below,
never upward, not even inside a function; imports within a layer form no cycle
(tests/test_architecture.py builds the import graph with `ast` and checks both against
`LAYERS`, the same list as data).

- L0 foundations: ``errors`` (the UserError base), ``paths`` (where the shipped conf/ and
  experiments/ are), ``secrets`` (masking), ``logging_utils``,
  ``locks`` (file locks between processes), ``groups`` (the one table of config groups),
  ``contract`` (components' contracts and references: `_target_` is the extension point)
  and ``resolvers`` (OmegaConf resolvers, registered explicitly). A resolver or a component
  is named by an import path string and imported on first use, as Hydra's ``_target_`` is:
  that is how L0 names code of higher layers without importing it.
- L1 the config: ``config`` (validation before any work, the fingerprint, group choices)
  and ``schema`` (structured-config schemas).
- L2 the domain: ``models``, ``data``, ``losses``, ``optim``, ``metrics``, ``runtime``,
  ``engine``, ``checkpoint``, ``gradcam`` and ``tracking`` (MLflow, the one place), plus
  the machine: ``preflight`` (checks before any run), ``phases`` (where a job's wall time
  goes) and ``latency`` (Table 6's inference measurement).
- L3 one job: ``job`` (JobSpec, build_components, lifecycle, trainer, the tasks).
- L4 many jobs and their results: ``sweep`` and ``report``.
- L5 entry points: ``cli`` (the ``glattn`` console script), ``config_reference`` (the
  generated configuration reference) and the Hydra plugins
  (``hydra_plugins/``: the glattn sweeper, the local_gpus and slurm launchers).

This package's ``__init__`` is the public facade (`build_model`, `load_model`): it may
import any layer, lazily, and no glattn module imports it.
"""

import glattn.phases  # noqa: F401  (first: a job's time/* may count from glattn's import)

__version__ = "0.1.0"

#: The layers of the docstring as data: (layer, top-level names of modules and packages
#: below glattn/ or hydra_plugins/), lowest first.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "L0",
        (
            "errors",
            "paths",
            "secrets",
            "logging_utils",
            "locks",
            "groups",
            "contract",
            "resolvers",
        ),
    ),
    ("L1", ("config", "schema")),
    (
        "L2",
        (
            "models",
            "data",
            "losses",
            "optim",
            "metrics",
            "runtime",
            "engine",
            "checkpoint",
            "gradcam",
            "tracking",
            "preflight",
            "phases",
            "latency",
        ),
    ),
    ("L3", ("job", "fused")),  # fused: trains the members of a fused job
    ("L4", ("sweep", "report")),
    ("L5", ("cli", "config_reference", "hydra_plugins")),
)

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
