"""The experiment files' ``report:`` blocks and ``paper.stages``, all checked before any run
is read: a bad block is one error naming the file and the key."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from glattn.groups import FACTORS
from glattn.paths import EXPERIMENTS_DIR
from glattn.report.runs import ReportError
from glattn.schema import ClaimSchema, ReportSchema, expected, value_error
from glattn.sweep import expand

STAGE = re.compile(r"\+?experiment=(\w+)")


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
        return get_object(self.spec._target_)(runs, ctx, self)


@dataclass
class Catalog:
    """Every declaration found, in table order, and the stages of multi-stage files."""

    tables: dict[str, Declared] = field(default_factory=dict)
    stages: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # {experiment: its file}

    def expected(self, experiment: str) -> dict[str, list]:
        """The grid the experiment's file asks for (`expected_levels`)."""
        path = self.files.get(experiment)
        return expected_levels(path) if path else {}

    def by_number(self) -> dict[int, Declared]:
        return {d.number: d for d in self.tables.values()}

    def _declared(self, experiments: Iterable[str]) -> list[Declared]:
        return [self.tables[s] for s in experiments if s in self.tables]

    def tables_for(self, experiment: str) -> list[int] | None:
        """The tables an experiment name asks for: a stages file's, its own, else None (all)."""
        if experiment in self.stages:
            return sorted({d.number for d in self._declared(self.stages[experiment])})
        return [self.tables[experiment].number] if experiment in self.tables else None

    def claims(self, experiment: str) -> list[tuple[Declared, ClaimSchema]]:
        """The claims of `experiment`'s own file, else those of its (or every) stages file."""
        if experiment in self.tables and self.tables[experiment].spec.claims:
            owners = [self.tables[experiment]]
        elif experiment in self.stages:
            owners = self._declared(self.stages[experiment])
        else:
            owners = self._declared(dict.fromkeys(s for v in self.stages.values() for s in v))
        return sorted([(d, c) for d in owners for c in d.spec.claims], key=lambda dc: dc[1].number)


def expected_levels(path: Path) -> dict[str, list]:
    """{factor or 'seed': [levels]} of the experiment file's hydra.sweeper.params ({} if none):
    levels absent from the runs become dashes with a footnote in the tables."""
    try:
        params = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params", default=None)
    except Exception:  # no file or an unreadable one: the report works from the runs alone
        return {}
    specs = OmegaConf.to_container(params, resolve=False) if params is not None else {}
    named = {str(key).lstrip("+~"): spec for key, spec in specs.items()}
    levels = {k: expand.values(s) for k, s in named.items() if k in FACTORS or k == "seed"}
    return {k: v for k, v in levels.items() if v}


def _errors(block) -> list[str]:
    """`report.<key>: why` lines of one block (empty when it is valid)."""
    if not isinstance(block, DictConfig):
        return [f"report: expected a mapping of {[f.name for f in fields(ReportSchema)]}"]
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ReportSchema), block)
    except Exception as exc:  # an unknown key or a value of the wrong type
        key = f".{exc.full_key}" if getattr(exc, "full_key", "") else ""
        return [f"report{key}: {str(exc).splitlines()[0]}"]
    nodes = [(ReportSchema, merged, "report.")]
    nodes += [(ClaimSchema, c, f"report.claims[{i}].") for i, c in enumerate(merged.claims)]
    checked = [
        f"{prefix}{f.name}: not set; expected {expected(schema, f.name)}"
        if OmegaConf.is_missing(node, f.name)
        else value_error(schema, node, prefix, f.name)
        for schema, node, prefix in nodes
        for f in fields(schema)
    ]
    errors = [e for e in checked if e]
    if errors:
        return errors
    for _, node, prefix in nodes:
        try:
            get_object(node._target_)
        except Exception as exc:  # noqa: BLE001 - named in the message
            errors.append(f"{prefix}_target_={node._target_!r}: not importable ({exc})")
    return errors


def _stage_names(stages) -> list[str]:
    """The experiment each stage of ``paper.stages`` runs (its first ``experiment=NAME``)."""
    out = []
    for stage in OmegaConf.to_container(stages, resolve=False) or []:
        items = [str(item).strip() for item in (stage if isinstance(stage, list) else [stage])]
        out += [m.group(1) for m in map(STAGE.fullmatch, items) if m][:1]
    return list(dict.fromkeys(out))


def load(dirs: Iterable[Path | str] = ()) -> Catalog:
    """The catalog of `dirs` then the shipped experiments/ (first of a name wins)."""
    catalog, problems, found = Catalog(), [], {}
    for folder in [d for d in [*map(Path, dirs), EXPERIMENTS_DIR] if d.is_dir()]:
        for path in sorted(folder.glob("*.yaml")):
            catalog.files.setdefault(path.stem, path)
    for stem, path in catalog.files.items():
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
        if "report" in node and (errors := _errors(node.report)):
            problems.append(f"{path}:\n  " + "\n  ".join(errors))
        elif "report" in node:
            spec = OmegaConf.to_object(OmegaConf.merge(ReportSchema, node.report))
            found[stem] = Declared(stem, path, spec)
    numbers: dict[int, Declared] = {}
    for d in found.values():
        if other := numbers.get(d.number):
            problems.append(f"{d.path}: report.table={d.number} is also {other.path}'s")
        numbers[d.number] = d
    if problems:
        raise ReportError("invalid report declaration:\n" + "\n".join(problems))
    catalog.tables = {d.experiment: d for d in sorted(found.values(), key=lambda d: d.number)}
    return catalog
