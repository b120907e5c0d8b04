"""What the experiment files declare about their report: each file's ``report:`` block
(glattn.schema.ReportSchema: table number and title, the compared group, its baseline, the
metric columns, the claims with their thresholds), and a multi-stage file's ``paper.stages``.

The report holds no table of its own: ``glattn report <experiment>`` builds the table its
file declares (the block's ``_target_``, default glattn.report.tables.subject_table), a
stages file (experiments/paper.yaml) every table of its stages, and a run set without a
declaration every declared table its runs have data for. Files are read from the folders
given (``--experiments-dir``, e.g. a ``hydra.searchpath`` folder's ``experiment/``) and then
the shipped experiments/ (glattn.report.grid.EXPERIMENTS_DIR); the first file of a name wins.
Every block is checked when the catalog is loaded, before any run is read: a bad block is one
error naming the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

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

    def builder(self):
        return self.builder_of(self.spec)

    def build(self, runs, ctx):
        """The table of these runs (None where they lack the data it needs)."""
        return self.builder()(runs, ctx, self)

    @staticmethod
    def builder_of(spec: ReportSchema | ClaimSchema):
        """The function a declaration's ``_target_`` names: a table's builder or the one that
        computes a claim's rows."""
        from hydra.utils import get_object

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
        for folder in self.dirs:
            if (folder / f"{experiment}.yaml").is_file():
                return expected_levels(experiment, folder)
        return {}

    def by_number(self) -> dict[int, Declared]:
        return {d.number: d for d in self.tables.values()}

    def tables_for(self, experiment: str) -> list[int] | None:
        """The tables an experiment name asks for: its own declared table, every table of a
        stages file's stages, else None (every declared table whose data exist)."""
        if experiment in self.stages:
            mine = [self.tables[s].number for s in self.stages[experiment] if s in self.tables]
            return sorted(set(mine))
        if experiment in self.tables:
            return [self.tables[experiment].number]
        return None

    def claims(self, experiment: str) -> list[tuple[Declared, ClaimSchema]]:
        """The claims a claims check of `experiment` decides: those its own file declares,
        else those of every stages file's stages (the paper's)."""
        if experiment in self.tables and self.tables[experiment].spec.claims:
            owners = [self.tables[experiment]]
        elif experiment in self.stages:
            owners = [self.tables[s] for s in self.stages[experiment] if s in self.tables]
        else:
            names = dict.fromkeys(s for stages in self.stages.values() for s in stages)
            owners = [self.tables[s] for s in names if s in self.tables]
        out = [(d, c) for d in owners for c in d.spec.claims]
        return sorted(out, key=lambda dc: dc[1].number)


def _node_errors(schema: type, node: DictConfig, prefix: str) -> list[str]:
    """`key: why` of each declared key of `node` that is not set or not accepted."""
    errors = []
    for f in fields(schema):
        if OmegaConf.is_missing(node, f.name):
            errors.append(f"{prefix}{f.name}: not set; expected {expected(schema, f.name)}")
        else:
            errors.append(value_error(schema, node, prefix, f.name))
    return [e for e in errors if e]


def _errors(path: Path, block) -> list[str]:
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
    for key, target in [("_target_", merged._target_)] + [
        (f"claims[{i}]._target_", c._target_) for i, c in enumerate(merged.claims)
    ]:
        try:
            from hydra.utils import get_object

            get_object(target)
        except Exception as exc:  # noqa: BLE001 - named in the message
            errors.append(f"report.{key}={target!r}: not importable ({exc})")
    return errors


def _stage_names(stages) -> list[str]:
    """The experiment each stage of ``paper.stages`` runs (its ``experiment=NAME``)."""
    out = []
    for stage in OmegaConf.to_container(stages, resolve=False) or []:
        for item in stage if isinstance(stage, list) else [stage]:
            m = re.fullmatch(r"\+?experiment=(\w+)", str(item).strip())
            if m:
                out.append(m.group(1))
                break
    return list(dict.fromkeys(out))


def load(dirs: Iterable[Path | str] = ()) -> Catalog:
    """The catalog of `dirs` then the shipped experiments/; DeclarationError on a bad block."""
    catalog, seen, problems = Catalog(dirs=[*map(Path, dirs), EXPERIMENTS_DIR]), set(), []
    found: list[Declared] = []
    for folder in catalog.dirs:
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            if path.stem in seen:
                continue
            seen.add(path.stem)
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
                catalog.stages[path.stem] = _stage_names(stages)
            if "report" not in node:
                continue
            errors = _errors(path, node.report)
            if errors:
                problems.append(f"{path}:\n  " + "\n  ".join(errors))
                continue
            spec = OmegaConf.to_object(OmegaConf.merge(ReportSchema, node.report))
            found.append(Declared(path.stem, path, spec))
    numbers: dict[int, Declared] = {}
    for d in found:
        if d.number in numbers:
            other = numbers[d.number]
            problems.append(f"{d.path}: report.table={d.number} is also {other.path}'s")
        numbers[d.number] = d
    if problems:
        raise DeclarationError("invalid report declaration:\n" + "\n".join(problems))
    catalog.tables = {d.experiment: d for d in sorted(found, key=lambda d: d.number)}
    return catalog
