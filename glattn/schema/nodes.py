"""The declarations: one structured config per config node (glattn.schema.declare.field
gives each key its default, range or choices and meaning). Option files in conf/ state
only what differs from these defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from glattn.schema.declare import choices_of, expected, field

MONITOR_METRICS = ("val/loss", "val/acc", "val/balanced_acc", "val/macro_f1", "val/auc")


@dataclass
class RunSchema:
    """Top-level keys of conf/config.yaml."""

    task: str = field(
        "train", "train: fit a model; eval: evaluate ckpt_path", choices=("train", "eval")
    )
    name: str | None = field(None, "optional prefix of the run name")
    tags: list[str] = field(
        [],
        "free-form MLflow tags, e.g. tags=[baseline,v2]; never change the fingerprint",
        pattern=r"[\w\-./]{1,200}",
        expect="a list of names (letters, digits, _ - . /), e.g. tags=[baseline,v2]",
    )
    seed: int = field(0, "seed of weights, sampling and augmentation (not of the data split)")
    ckpt_path: str | None = field(
        None,
        "task=eval: the checkpoint to evaluate (file, MLflow run id or runs:/ URI); task=train: "
        "resume from it (this config's own) or fine-tune (any other)",
    )


@dataclass
class PathsSchema:
    """The ``paths`` node: where glattn writes."""

    output_dir: str = field(
        "outputs",
        "runs, sweeps, checkpoints, mlflow.db, caches; relative to the working directory",
        nonempty=True,
        expect="a directory path",
    )


@dataclass
class SweepSchema:
    """The ``sweep`` node (the glattn sweeper)."""

    plan: bool = field(False, "-m ... sweep.plan=true prints the grid and runs nothing")
    rerun: bool = field(
        False, "run jobs again even when a FINISHED run with their fingerprint exists"
    )
    fuse_seeds: bool = field(False, "jobs that differ only in seed train as one fused job")
    fused_seeds: list[int] | None = field(
        None, "set by the sweeper on a fused job: its members' seeds (not for the command line)"
    )


@dataclass
class TrainerSchema:
    """conf/trainer/*.yaml (glattn/job/trainer.py reads it). The learning rate lives in
    optimizer.lr."""

    max_epochs: int = field(50, "epochs to train", ge=1)
    batch_size: int = field(32, "images per training step", ge=1)
    early_stopping_patience: int | None = field(
        10, "epochs without improvement of `monitor` before stopping; null: never stop", ge=1
    )
    monitor: str = field(
        "val/balanced_acc", "the metric the best checkpoint follows", choices=MONITOR_METRICS
    )
    monitor_mode: str = field(
        "auto",
        "how `monitor` improves; auto: min for a loss, else max",
        choices=("auto", "max", "min"),
    )
    device: str = field(
        "auto",
        "auto: cuda when available",
        pattern=r"auto|cpu|mps|cuda(:\d+)?",
        expect="one of auto, cpu, cuda, cuda:<N>, mps",
    )
    amp: str = field(
        "auto",
        "mixed precision; auto: bf16 on CUDA when supported, else fp16",
        choices=("auto", "bf16", "fp16", "none"),
        ignore_case=True,
    )
    channels_last: Any = field(
        "auto", "channels-last memory format; auto: on for CUDA", choices=("auto", True, False)
    )
    compile: Any = field(
        "auto",
        "torch.compile; auto: the GLSA blocks alone on CUDA, eager on CPU (true/false: "
        "model/none)",
        choices=("auto", "block", "model", "none", True, False),
        ignore_case=True,
    )
    grad_clip: float | None = field(None, "max gradient L2 norm; null: no clipping", gt=0)
    deterministic: bool = field(
        False, "torch.use_deterministic_algorithms; bit-exact resume on CPU"
    )
    num_workers: int = field(
        "${oc.select:dataset.num_workers,4}", "DataLoader workers (the data set's)", ge=0
    )
    resume: bool = field(True, "continue from checkpoints/<fingerprint>/last.pt if present")
    keep_last: bool = field(False, "keep last.pt (optimizer state) after the run FINISHED")
    gradcam_per_class: int = field(
        2, "validation images per class in the end-of-run Grad-CAM grid", ge=0
    )
    log_every_n_steps: int = field(
        20, "plain-text progress lines when stderr is not a terminal", ge=1
    )
    profile: bool = field(False, "torch.profiler over the first epoch (debug=profile)")


def monitor_direction(monitor: str, mode: str) -> str:
    """max | min: how trainer.monitor improves under trainer.monitor_mode `mode` (its
    declaration above: auto is min for a loss, else max)."""
    if mode not in choices_of(TrainerSchema, "monitor_mode"):
        raise ValueError(
            f"trainer.monitor_mode={mode!r}: expected {expected(TrainerSchema, 'monitor_mode')}"
        )
    if mode == "auto":
        return "min" if str(monitor).endswith("loss") else "max"
    return mode


@dataclass
class GLSASchema:
    """conf/glsa/*.yaml: GLSABlock's settings plus `position` (read by build_model)."""

    _target_: str = field("glattn.models.glsa.GLSABlock", "the block's class")
    _partial_: bool = field(True, "build_model supplies channels and the attention parts")
    num_heads: int = field(8, "attention heads of the global attention", ge=1)
    qkv_reduction: int = field(
        4, "q/k/v width = channels / qkv_reduction (1: the reference code's full width)", ge=1
    )
    qkv_bias: bool = field(True, "bias of the q/k/v 1x1 convolution")
    position: Any = field(
        ["stride16"],
        "where blocks go: stride16 (14x14 of a 224 input) and/or stride32; ResNet also "
        "layer1..layer4, VGG block1..block5",
    )


@dataclass
class TrackingSchema:
    """conf/tracking/*.yaml (glattn.tracking)."""

    enabled: bool = field(True, "record runs in MLflow")
    uri: str | None = field(
        "sqlite:///${paths.output_dir}/mlflow.db",
        "MLflow tracking URI: a sqlite file (made absolute), a server or a database URL",
    )
    experiment: str = field("glattn", "MLflow experiment name", nonempty=True)
    artifact_location: str | None = field(
        "${paths.output_dir}/mlartifacts", "artifact root of a new experiment (never ./mlruns)"
    )
    log_checkpoint: bool = field(True, "upload best.pt as an artifact")
    log_model: bool = field(
        True, "with log_checkpoint: the best weights as the run's MLflow model (pt2)"
    )
    register_model: str | None = field(
        None, "NAME: register each run's model in the Model Registry as NAME"
    )


@dataclass
class DatasetSchema:
    """Keys every conf/dataset/*.yaml has (glattn/data/options.py reads them)."""

    _target_: str | None = field(
        None, "the reader, a function read(options) -> DataFrame (glattn.data.readers)"
    )
    name: str = field(
        MISSING, "the data set's name: synthetic, ham10000, isic2018, csv, ... (each option)"
    )
    root: str | None = field(None, "the data set's folder")
    image_size: int = field(224, "model input side (px); decoded at round(S*256/224)", ge=8)
    num_classes: int = field(7, "classes of the data set (must match its class list)", ge=2)
    val_fraction: float = field(0.15, "validation share of the lesions", ge=0, lt=1)
    test_fraction: float = field(0.15, "lesion-grouped holdout test share; 0: none", ge=0, lt=1)
    folds: int = field(1, "k > 1: k-fold cross-validation over the non-test lesions", ge=1)
    fold: int = field(0, "which fold is validation (0 <= fold < folds)", ge=0)
    split_seed: int = field(0, "seed of the split (independent of `seed`)", ge=0)
    sampler: str = field(
        "weighted",
        "weighted: classes drawn equally (WeightedRandomSampler); none: each image once",
        choices=("weighted", "none"),
    )
    eval_split: str = field(
        "holdout",
        "the test split: holdout, or official_val / official_test (isic2018 only)",
        choices=("holdout", "official_val", "official_test"),
    )
    skip_bad_images: bool = field(
        False, "skip unreadable images, listed in run_dir/skipped_images.csv"
    )
    cache: bool = field(True, "decode + resize each image once into a memory-mapped store")
    cache_dir: str = field("${paths.output_dir}/cache", "where the image cache lives")
    num_workers: int = field(4, "DataLoader workers", ge=0)
    augment: str = field(
        "device",
        "training augmentation: device (batched on the training device) | cpu (per image "
        "in the loader) | none (the eval transform)",
        choices=("device", "cpu", "none"),
    )


@dataclass
class SyntheticDatasetSchema(DatasetSchema):
    """dataset=synthetic: the generator's settings."""

    num_images: int = field(2000, "HAM10000 class proportions, >= 10 images of every class", ge=28)
    source_width: int = field(200, "width of the generated JPEGs (px)", ge=16)
    source_height: int = field(150, "height of the generated JPEGs (px)", ge=16)
    generator_seed: int = field(
        0, "seed of the images; independent of `seed` so seeds share one data set", ge=0
    )


@dataclass
class CsvDatasetSchema(DatasetSchema):
    """dataset=csv: an image folder plus a CSV."""

    csv: str = field(
        "labels.csv",
        "the CSV (comma- or tab-separated), absolute or relative to root",
        nonempty=True,
    )
    image_column: str = field("image", "CSV column of image paths below root", nonempty=True)
    label_column: str = field("label", "CSV column of class labels", nonempty=True)
    group_column: str | None = field(
        None,
        "lesion/patient id column: grouped splits keep a group together; null: per image "
        "(refused if a patient-like column exists); none: per image on purpose",
        nonempty=True,
    )
    classes: Any = field(None, "null: the sorted labels of the CSV; a list fixes the order")


@dataclass
class OptimizerSchema:
    """Keys every conf/optimizer/*.yaml has (its other keys are its class's arguments)."""

    lr: float = field(0.001, "learning rate", gt=0)
    weight_decay: float | None = field(0.01, "weight decay", ge=0)


@dataclass
class ClaimSchema:
    """One entry of an experiment file's ``report.claims``: a claim its runs decide."""

    _target_: str = field(
        MISSING,
        "the function that computes the claim's rows, (ctx, criterion, runs, experiment) -> "
        "rows, e.g. glattn.report.claims.criteria.criterion2",
        nonempty=True,
    )
    number: int = field(MISSING, "the claim's number (claims.md lists them in order)", ge=1)
    claim: str = field(
        MISSING, "the claim in words; {m} stands for the metric's name", nonempty=True
    )
    threshold: float = field(MISSING, "the threshold the effect is tested against, in `unit`")
    direction: str = field(
        ">", ">: the effect must exceed the threshold; <: stay below it", choices=(">", "<")
    )
    unit: str = field(
        "pp",
        "the threshold's unit: pp (percentage points of the metric), % (relative), epochs, ...",
        nonempty=True,
    )


@dataclass
class ReportSchema:
    """An experiment file's ``report`` block: the table (and claims) made from its runs by
    ``glattn report <experiment>``. Not part of a run's identity (no fingerprint, no param)."""

    _target_: str = field(
        "glattn.report.tables.subject_table",
        "the function that builds the table, (runs, ctx, decl) -> Table; the default: one row "
        "per option of `group`, each tested against `baseline`",
        nonempty=True,
    )
    table: int = field(MISSING, "the table's number: Table <table>", ge=1)
    title: str = field(MISSING, "the table's title, after 'Table <table>: '", nonempty=True)
    group: str | None = field(None, "the config group the table compares (its rows)")
    baseline: str | None = field(
        None, "the option of `group` every other row is tested against (p vs <baseline>)"
    )
    pinned: dict[str, str] = field(
        {},
        "other groups held at one option ({attention: cbam}): when such a group varies, only "
        "its runs with that option enter the table",
    )
    metrics: list[str] = field(
        ["balanced_acc"],
        "the metric columns, one per data set each (balanced_acc, acc, macro_f1, auc); "
        "--metric, when not among them, replaces them",
        pattern=r"balanced_acc|acc|macro_f1|auc",
        expect="a list of metrics (balanced_acc, acc, macro_f1, auc)",
    )
    claims: list[ClaimSchema] = field(
        [], "the claims this experiment's runs decide (report.claims[] keys below)"
    )
