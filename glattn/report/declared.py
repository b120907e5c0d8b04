"""What the experiment files declare about their report: each file's ``report:`` block
(glattn.schema.ReportSchema: table, title, compared group, baseline, metrics, claims) and a
multi-stage file's ``paper.stages``.

``glattn report <experiment>`` builds the table its file declares (the block's ``_target_``),
a stages file every table of its stages, and a run set without a declaration every declared
table its runs have data for. Files are read from the folders given (``--experiments-dir``)
then the shipped experiments/; the first file of a name wins. Every block is checked when the
catalog is loaded, before any run is read: a bad block is one error naming file and key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from glattn.report.grid import EXPERIMENTS_DIR, expected_levels
from glattn.report.runs import ReportError
from glattn.schema import ClaimSchema, ReportSchema, expected, value_error


class DeclarationError(ReportError):
    """An experiment file's ``report:`` block does not match glattn.schema.ReportSchema."""


@dataclass(frozen=True)
class Declared:
    """One experiment file's report block, checked."""

    experiment: str  # the file's stem: the MLflow experiment and the table's file names
    path: Path
    spec: ReportSchema

    @property
    def number(self) -> int:
        return self.spec.table

    @property
    def title(self) -> str:
        return f"Table {self.spec.table}: {self.spec.title}"

    def build(self, runs, ctx):
        """The table of these runs (None where they lack the data it needs)."""
        return self.builder_of(self.spec)(runs, ctx, self)

    @staticmethod
    def builder_of(spec: ReportSchema | ClaimSchema):
        """The function a declaration's ``_target_`` names: a table's builder or a claim's."""
        return get_object(spec._target_)


@dataclass
class Catalog:
    """Every declaration found: {experiment: Declared} in table order, and the stages of
    multi-stage files ({experiment: [stage experiments]})."""

    tables: dict[str, Declared] = field(default_factory=dict)
    stages: dict[str, list[str]] = field(default_factory=dict)
    dirs: list[Path] = field(default_factory=list)  # searched in this order

    def expected(self, experiment: str) -> dict[str, list]:
        """The grid the experiment's file asks for (glattn.report.grid.expected_levels)."""
        folder = next((d for d in self.dirs if (d / f"{experiment}.yaml").is_file()), None)
        return expected_levels(experiment, folder) if folder else {}

    def by_number(self) -> dict[int, Declared]:
        return {d.number: d for d in self.tables.values()}

    def _declared(self, experiments: Iterable[str]) -> list[Declared]:
        return [self.tables[s] for s in experiments if s in self.tables]

    def tables_for(self, experiment: str) -> list[int] | None:
        """The tables an experiment name asks for: its own declared table, every table of a
        stages file's stages, else None (every declared table whose data exist)."""
        if experiment in self.stages:
            return sorted({d.number for d in self._declared(self.stages[experiment])})
        if experiment in self.tables:
            return [self.tables[experiment].number]
        return None

    def claims(self, experiment: str) -> list[tuple[Declared, ClaimSchema]]:
        """The claims a claims check of `experiment` decides: those its own file declares,
        else those of every stages file's stages (the paper's)."""
        if experiment in self.tables and self.tables[experiment].spec.claims:
            owners = [self.tables[experiment]]
        elif experiment in self.stages:
            owners = self._declared(self.stages[experiment])
        else:
            owners = self._declared(dict.fromkeys(s for v in self.stages.values() for s in v))
        out = [(d, c) for d in owners for c in d.spec.claims]
        return sorted(out, key=lambda dc: dc[1].number)


def _node_errors(schema: type, node: DictConfig, prefix: str) -> list[str]:
    """`key: why` of each declared key of `node` that is not set or not accepted."""
    errors = [
        f"{prefix}{f.name}: not set; expected {expected(schema, f.name)}"
        if OmegaConf.is_missing(node, f.name)
        else value_error(schema, node, prefix, f.name)
        for f in fields(schema)
    ]
    return [e for e in errors if e]


def _errors(block) -> list[str]:
    """`report.<key>: why` lines of one block (empty when it is valid)."""
    if not isinstance(block, DictConfig):
        return [f"report: expected a mapping of {[f.name for f in fields(ReportSchema)]}"]
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ReportSchema), block)
    except Exception as exc:  # an unknown key or a value of the wrong type
        key = getattr(exc, "full_key", "") or ""
        why = str(exc).splitlines()[0]
        return [f"report.{key}: {why}" if key else f"report: {why}"]
    errors = _node_errors(ReportSchema, merged, "report.")
    for i, claim in enumerate(merged.claims):
        errors += _node_errors(ClaimSchema, claim, f"report.claims[{i}].")
    if errors:
        return errors
    targets = {"_target_": merged._target_}
    targets |= {f"claims[{i}]._target_": c._target_ for i, c in enumerate(merged.claims)}
    for key, target in targets.items():
        try:
            get_object(target)
        except Exception as exc:  # noqa: BLE001 - named in the message
            errors.append(f"report.{key}={target!r}: not importable ({exc})")
    return errors


def _stage_names(stages) -> list[str]:
    """The experiment each stage of ``paper.stages`` runs (its first ``experiment=NAME``)."""
    out = []
    for stage in OmegaConf.to_container(stages, resolve=False) or []:
        items = [str(item).strip() for item in (stage if isinstance(stage, list) else [stage])]
        found = [m.group(1) for m in map(re.compile(r"\+?experiment=(\w+)").fullmatch, items) if m]
        out += found[:1]
    return list(dict.fromkeys(out))


def load(dirs: Iterable[Path | str] = ()) -> Catalog:
    """The catalog of `dirs` then the shipped experiments/; DeclarationError on a bad block."""
    catalog, problems, found = Catalog(dirs=[*map(Path, dirs), EXPERIMENTS_DIR]), [], {}
    files = {}  # the first file of each name
    for folder in catalog.dirs:
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            files.setdefault(path.stem, path)
    for stem, path in files.items():
        try:
            node = OmegaConf.load(path)
        except Exception as exc:  # noqa: BLE001 - named in the message
            if "report:" in path.read_text(errors="replace"):
                problems.append(f"{path}: not readable YAML ({exc})")
            continue
        if not isinstance(node, DictConfig):
            continue
        stages = OmegaConf.select(node, "paper.stages", default=None)
        if stages is not None:
            catalog.stages[stem] = _stage_names(stages)
        if "report" not in node:
            continue
        errors = _errors(node.report)
        if errors:
            problems.append(f"{path}:\n  " + "\n  ".join(errors))
        else:
            spec = OmegaConf.to_object(OmegaConf.merge(ReportSchema, node.report))
            found[stem] = Declared(stem, path, spec)
    numbers: dict[int, Declared] = {}
    for d in found.values():
        if d.number in numbers:
            problems.append(
                f"{d.path}: report.table={d.number} is also {numbers[d.number].path}'s"
            )
        numbers[d.number] = d
    if problems:
        raise DeclarationError("invalid report declaration:\n" + "\n".join(problems))
    catalog.tables = {d.experiment: d for d in sorted(found.values(), key=lambda d: d.number)}
    return catalog
