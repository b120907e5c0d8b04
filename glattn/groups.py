"""The one table of config groups: for each `conf/<group>/` folder, whether its options are
`_target_`s (an extension point), its schema, whether it is part of the run name, a report
factor, the display order of its options in reports, and whether it is internal (hidden from
``--help``).

Every other list of groups is a view of `GROUPS` (config.group_choices, the run name, the
MLflow factor tags, the report's row order, the tests). Adding a group touches this table
plus its YAML folder; adding an option touches only its YAML (``_target_`` + settings, under
any file name on Hydra's search path): nothing is registered (glattn.contract).

This module is layer L0 and imports nothing of glattn, so any module can read the table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Group:
    """One config group (``conf/<name>/``); see the module docstring for the fields."""

    name: str
    #: options are `_target_` + settings (a class or function, glattn's or one's own), built
    #: and checked against the family's contract (glattn.contract); False: plain YAML
    target: bool = False
    #: the ConfigStore name (below ``schema/``, glattn.schema.SCHEMAS) its options extend
    schema: str | None = None
    #: part of the run name ``[name_]{backbone}_{attention}_{fusion}_{residual}_{dataset}_s{seed}``
    in_run_name: bool = False
    #: a report factor and an MLflow tag of every job run (``fusion=cross_attn``)
    factor: bool = False
    #: the choice is recorded (``choice.<group>`` param, config.group_choices)
    recorded: bool = False
    #: options in the order tables and figures show them (others follow, sorted)
    order: tuple[str, ...] = ()
    #: hidden from ``--help``: selected by glattn itself, not by the user
    internal: bool = False
    #: what the group selects, in words (``--help``, the docs)
    doc: str = ""
    #: the object its options configure: model, data, loss, optimizer, scheduler (the parts
    #: glattn.job.build makes; "" for groups that configure no object)
    builds: str = ""


# Display order of the table: the row order of the paper's tables (Tables 1-4).
GROUPS: tuple[Group, ...] = (
    Group(
        "backbone",
        builds="model",
        target=True,
        in_run_name=True,
        factor=True,
        recorded=True,
        order=(
            "resnet18",
            "resnet34",
            "resnet50",
            "resnet101",
            "resnet152",
            "vgg11",
            "vgg13",
            "vgg16",
            "vgg19",
        ),
        doc="torchvision trunk and head",
    ),
    Group(
        "glsa", builds="model", schema="glsa", recorded=True, doc="the GLSA block: heads, position"
    ),
    Group(
        "attention",
        builds="model",
        target=True,
        in_run_name=True,
        factor=True,
        recorded=True,
        order=("none", "global_only", "cbam"),
        doc="local attention of the block (none: the plain backbone)",
    ),
    Group(
        "fusion",
        builds="model",
        target=True,
        in_run_name=True,
        factor=True,
        recorded=True,
        order=(
            "original",
            "learnable_gate",
            "weighted_add",
            "channel_attn",
            "spatial_attn",
            "cross_attn",
        ),
        doc="how global and local attention are fused",
    ),
    Group(
        "residual",
        builds="model",
        target=True,
        in_run_name=True,
        factor=True,
        recorded=True,
        order=("original", "learnable_gate", "progressive", "drop_path"),
        doc="the block's residual connection",
    ),
    Group(
        "loss",
        builds="loss",
        target=True,
        factor=True,
        recorded=True,
        order=("focal", "ce", "class_balanced"),
        doc="training loss",
    ),
    Group(
        "dataset",
        builds="data",
        target=True,
        schema="dataset/base",
        in_run_name=True,
        factor=True,
        recorded=True,
        order=("ham10000", "isic2018", "synthetic"),
        doc="data set and its splits",
    ),
    Group(
        "optimizer",
        builds="optimizer",
        target=True,
        recorded=True,
        doc="optimizer",
    ),
    Group(
        "scheduler",
        builds="scheduler",
        target=True,
        recorded=True,
        doc="LR schedule",
    ),
    Group("trainer", schema="trainer", doc="epochs, batch size, device, AMP, early stopping"),
    Group("tracking", schema="tracking", doc="MLflow tracking (none: no record)"),
    Group("experiment", doc="a paper table's ablation grid (python run.py -m experiment=...)"),
    Group("debug", doc="presets: smoke (seconds), overfit, profile"),
    Group("hydra/launcher", doc="where a sweep's jobs run: local_gpus, slurm"),
    Group("hydra/help", internal=True, doc="the --help page (conf/hydra/help/glattn.yaml)"),
    Group("dataset_trainer", internal=True, doc="per-data-set trainer defaults"),
    Group("debug_dataset", internal=True, doc="a debug preset's keys for one data set"),
    Group("schema", internal=True, doc="structured-config schemas (glattn.schema)"),
)

BY_NAME: dict[str, Group] = {g.name: g for g in GROUPS}
#: The run name's groups, in order (tracking: the MLflow run name; disk: folder names).
RUN_NAME_GROUPS: tuple[str, ...] = tuple(g.name for g in GROUPS if g.in_run_name)
#: Report factors and MLflow tags, in display order.
FACTORS: tuple[str, ...] = tuple(g.name for g in GROUPS if g.factor)
#: Groups whose choice identifies a run (``choice.<group>`` params, config.group_choices).
RECORDED_GROUPS: tuple[str, ...] = tuple(g.name for g in GROUPS if g.recorded)
#: Groups whose options are `_target_`s (the extension points).
TARGET_GROUPS: tuple[str, ...] = tuple(g.name for g in GROUPS if g.target)
#: Shown in ``--help`` / hidden from it.
USER_GROUPS: tuple[str, ...] = tuple(g.name for g in GROUPS if not g.internal)
INTERNAL_GROUPS: tuple[str, ...] = tuple(g.name for g in GROUPS if g.internal)
#: The groups that configure the classifier (glattn.models.build_model reads them).
MODEL_GROUPS: tuple[str, ...] = tuple(g.name for g in GROUPS if g.builds == "model")
#: {factor: its options in display order}, e.g. ORDER["attention"] == ("none", ...).
ORDER: dict[str, tuple[str, ...]] = {g.name: g.order for g in GROUPS if g.order}


def group(name: str) -> Group:
    """The table row of group `name`; one error naming the known groups otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"unknown config group {name!r}; glattn.groups.GROUPS has: {', '.join(BY_NAME)}"
        ) from None


def display_order(name: str, options) -> list[str]:
    """`options` (None dropped) of group `name` in its display order, e.g. the rows of a
    report table; options not in the table (an extension's) follow, sorted."""
    present = {o for o in options if o is not None}
    known = [o for o in ORDER.get(name, ()) if o in present]
    return known + sorted(present - set(known))
