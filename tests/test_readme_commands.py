"""Every `python run.py ...` command of README.md and experiments/README.md composes as
written (compose only: nothing runs). A `-m` command composes its jobs as the glattn
sweeper expands them (experiment=paper: each stage's): the fast tier the first and the
last job of each sweep, the slow tier every job. Every composed config also passes
glattn.schema.check_keys.
The few commands that cannot be composed here are skipped with their reason (SKIP)."""

import functools
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from glattn.schema import check_keys

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "experiments" / "README.md"]
#: Substrings that make a command unrunnable as written, and why (keep this list minimal).
SKIP = {
    "<": "a placeholder to fill in (<fingerprint>, <name>, <stage>, ...)",
    "[overrides...]": "a placeholder for the user's overrides",
    "...": "an elided command",
}
#: The commands the docs are expected to skip (a test keeps the list from growing).
MAX_SKIPPED = 5


def _code_lines(text: str) -> list[str]:
    """`python run.py` commands: whole lines of fenced blocks (continuation lines joined)
    and inline code spans outside them (which may wrap across lines)."""
    out = []
    parts = re.split(r"^[ \t]*```.*$", text, flags=re.M)  # fences may be indented (lists)
    for i, part in enumerate(parts):
        if i % 2:  # inside a fence
            joined = re.sub(r"\s*\\\n\s*", " ", part)
            out += [line for line in joined.splitlines() if "python run.py" in line]
        else:
            spans = re.findall(r"`([^`]*python run\.py[^`]*)`", part)
            out += [" ".join(s.split()) for s in spans]
    return out


def commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for line in _code_lines(doc.read_text()):
            cmd = line[line.index("python run.py") :]
            found.append((doc.relative_to(ROOT).as_posix(), cmd.strip()))
    return list(dict.fromkeys(found))


def _skip_reason(cmd: str) -> str | None:
    for marker, reason in SKIP.items():
        if marker in cmd:
            return reason
    if "examples/extending" in cmd and not (ROOT / "examples" / "extending").is_dir():
        return "needs examples/extending, not in this checkout"
    return None


def parse(cmd: str) -> tuple[bool, list[str]]:
    """(multirun, overrides) of `python run.py [-m] overrides  # comment`. An environment
    prefix (PYTHONPATH=...) is not part of it: composing imports no target."""
    words = shlex.split(cmd, comments=True)
    assert words[:2] == ["python", "run.py"], cmd
    words = words[2:]
    multirun = "-m" in words or "--multirun" in words
    return multirun, [w for w in words if w not in ("-m", "--multirun")]


@functools.cache
def _compose_cached(overrides: tuple[str, ...]):
    return _compose(list(overrides))


def _compose(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    check_keys(cfg)  # no key a schema lacks (e.g. a '+' typo in the docs)
    return cfg


def jobs_of(overrides: list[str]) -> list[list[list[str]]]:
    """A multirun's jobs as the glattn sweeper makes them (the composed config's
    hydra.sweeper.params, then the command line), one list per sweep: experiment=paper has
    one per stage."""
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    cfg = _compose_cached(tuple(fixed))
    stages = OmegaConf.select(cfg, "paper.stages")
    if stages:
        user = [o for o in overrides if o.split("=", 1)[0] != "experiment"]
        return [sweep for stage in stages for sweep in jobs_of([*map(str, stage), *user])]
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.params or {}).items()]
    return [BasicSweeper.split_arguments(parser.parse_overrides(params + overrides), None)[0]]


def ends(jobs: list[list[str]]) -> list[list[str]]:
    """The first and the last job (the fast tier; the slow tier composes every job)."""
    return jobs[:1] + jobs[-1:] if len(jobs) > 1 else jobs


CMDS = commands()


def test_the_docs_have_commands_and_the_skip_list_stays_small():
    assert len(CMDS) >= 25
    skipped = [c for _, c in CMDS if _skip_reason(c)]
    assert len(skipped) <= MAX_SKIPPED, skipped


def _check(cmd, monkeypatch, every_job: bool):
    reason = _skip_reason(cmd)
    if reason:
        pytest.skip(f"{cmd!r}: {reason}")
    monkeypatch.chdir(ROOT)  # file:// search paths in the docs are relative to the repo
    multirun, overrides = parse(cmd)
    if not multirun:
        _compose_cached(tuple(overrides))
        return
    for jobs in jobs_of(overrides):
        assert jobs, cmd
        for job in jobs if every_job else ends(jobs):
            _compose_cached(tuple(job))


@pytest.mark.parametrize("doc, cmd", CMDS, ids=[f"{d}:{c[:60]}" for d, c in CMDS])
def test_readme_command_composes(doc, cmd, monkeypatch):
    _check(cmd, monkeypatch, every_job=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "doc, cmd",
    [(d, c) for d, c in CMDS if " -m " in f" {c} "],
    ids=[f"{d}:{c[:60]}" for d, c in CMDS if " -m " in f" {c} "],
)
def test_readme_multirun_command_composes_every_job(doc, cmd, monkeypatch):
    _check(cmd, monkeypatch, every_job=True)


def test_extraction_joins_continuations_and_wrapped_spans():
    text = (
        "Run `python run.py -m a=1\n  b=2` or\n```\n"
        "python run.py task=eval \\\n    c=3   # a comment\nls\n```\n"
    )
    assert _code_lines(text) == [
        "python run.py -m a=1 b=2",
        "python run.py task=eval c=3   # a comment",
    ]
    assert parse("python run.py task=eval c=3   # a comment") == (False, ["task=eval", "c=3"])
    assert ends([["a=1"], ["a=2"], ["a=3"]]) == [["a=1"], ["a=3"]]
    paper = jobs_of(["experiment=paper", "seed=0"])
    assert [len(s) for s in paper] == [18, 18, 12, 8, 3, 3, 9]  # seed=0 of each stage
