"""Every run or sweep command of README.md, experiments/README.md and docs/ composes as
written (compose only: nothing runs). Commands are written `glattn ...` (or `python run.py
...`, the same command); a `-m` command composes its jobs as the glattn sweeper expands them
(experiment=paper: each stage's): the fast tier the first and the last job of each sweep, the
slow tier every configuration (one job for all seeds of one). Every composed config also
passes glattn.schema.check_keys. Subcommands (`glattn report ...`) are not compositions:
each must parse with the command line's own argparse parser (glattn.cli.parser).
The few commands that cannot be composed here are skipped with their reason (SKIP)."""

import functools
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from glattn.schema import check_keys
from glattn.sweep import expand

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    ROOT / "experiments" / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
]
#: Substrings that make a command unrunnable as written, and why (keep this list minimal).
SKIP = {
    "<": "a placeholder to fill in (<fingerprint>, <name>, <stage>, ...)",
    "[overrides...]": "a placeholder for the user's overrides",
    "...": "an elided command",
    "file://my_conf": "the reader's own files (docs/extending.md); its examples/ copy is run",
}
#: The commands the docs are expected to skip (a test keeps the list from growing).
MAX_SKIPPED = 8


#: A command line: `glattn ...` or `python run.py ...`, after an optional VAR=value prefix.
_COMMAND = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(?:glattn|python run\.py)(?=\s|$)")


def _as_run_py(line: str) -> str | None:
    """`line` as `python run.py <overrides>` when it is a run or sweep command, else None
    (a subcommand, a flag such as --help, or not a command)."""
    line = line.strip()
    match = _COMMAND.match(line)
    if not match:
        return None
    rest = line[match.end() :].strip()
    first = rest.split(maxsplit=1)[0] if rest else ""
    if first.startswith("--") or (first.isidentifier() and "=" not in first):
        return None  # glattn --help, glattn report ...: not a composition
    return f"python run.py {rest}".strip()


def _code_lines(text: str) -> list[str]:
    """Run commands (`python run.py ...` form): whole lines of fenced blocks (continuation
    lines joined) and inline code spans outside them (which may wrap across lines)."""
    out = []
    # fences may be indented (lists); a ```text fence is a synopsis, not commands
    pieces = re.split(r"^[ \t]*```(.*)$", text, flags=re.M)
    parts, infos = pieces[::2], [""] + pieces[1::2]
    for i, part in enumerate(parts):
        if i % 2 and infos[i].strip() == "text":
            continue
        if i % 2:  # inside a fence
            joined = re.sub(r"\s*\\\n\s*", " ", part)
            candidates = joined.splitlines()
        else:
            spans = re.findall(r"`([^`]*(?:glattn|python run\.py)[^`]*)`", part)
            candidates = [" ".join(s.split()) for s in spans]
        out += [cmd for cmd in map(_as_run_py, candidates) if cmd]
    return out


def commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for cmd in _code_lines(doc.read_text()):
            found.append((doc.relative_to(ROOT).as_posix(), cmd))
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
    return [expand.jobs(expand.arguments(cfg.hydra.sweeper.params, overrides))]


def ends(jobs: list[list[str]]) -> list[list[str]]:
    """The first and the last job (the fast tier; the slow tier composes every configuration)."""
    return jobs[:1] + jobs[-1:] if len(jobs) > 1 else jobs


def every_seedless(jobs: list[list[str]]) -> list[list[str]]:
    """One job of each configuration: jobs that differ only in their ``seed=`` value (an
    int of one sweep list, typed by the schema) compose alike, so one of them stands for all."""
    kept: dict[tuple[str, ...], list[str]] = {}
    for job in jobs:
        kept.setdefault(tuple(o for o in job if not o.startswith("seed=")), job)
    return list(kept.values())


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
        for job in every_seedless(jobs) if every_job else ends(jobs):
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
    glattn = "```\nglattn -m a=1,2\nglattn report x\nglattn --help\nglattn\n```\n`glattn b=2`"
    glattn += "\n```text\nglattn [group=option ...]\n```\n"
    assert _code_lines(glattn) == [
        "python run.py -m a=1,2",
        "python run.py",
        "python run.py b=2",
    ]
    assert parse("python run.py task=eval c=3   # a comment") == (False, ["task=eval", "c=3"])
    assert ends([["a=1"], ["a=2"], ["a=3"]]) == [["a=1"], ["a=3"]]
    paper = jobs_of(["experiment=paper", "seed=0"])
    assert [len(s) for s in paper] == [18, 18, 12, 8, 3, 3, 9]  # seed=0 of each stage


def _fenced_lines(text: str) -> list[str]:
    """The lines of fenced blocks (continuations joined), ```text synopses left out."""
    pieces = re.split(r"^[ \t]*```(.*)$", text, flags=re.M)
    out = []
    for i in range(2, len(pieces), 4):  # block contents: pieces[2], pieces[6], ...
        if pieces[i - 1].strip() != "text":
            out += re.sub(r"\s*\\\n\s*", " ", pieces[i]).splitlines()
    return out


def subcommands() -> list[tuple[str, list[str]]]:
    """Every `glattn <subcommand> ...` line of the docs' code blocks, as (doc, argv after
    `glattn`)."""
    from glattn.cli import SUBCOMMANDS

    found = []
    for doc in DOCS:
        for line in _fenced_lines(doc.read_text()):
            if not re.match(r"^(?:\S+=\S+\s+)*glattn\s", line.strip()):
                continue  # not a glattn command (python code, other tools)
            words = shlex.split(line, comments=True)
            while words and "=" in words[0] and not words[0].startswith("-"):
                words = words[1:]  # an environment prefix (PYTHONPATH=...)
            if words[:1] == ["glattn"] and words[1:2] and words[1] in SUBCOMMANDS:
                found.append((doc.relative_to(ROOT).as_posix(), words[1:]))
    return found


SUBS = subcommands()


def test_the_docs_show_every_subcommand():
    from glattn.cli import SUBCOMMANDS

    assert {argv[0] for _, argv in SUBS} == set(SUBCOMMANDS)


@pytest.mark.parametrize("doc, argv", SUBS, ids=[f"{d}:{' '.join(a)[:50]}" for d, a in SUBS])
def test_docs_subcommand_parses(doc, argv):
    from glattn.cli import parser

    if "--help" in argv or "-h" in argv:
        with pytest.raises(SystemExit) as done:
            parser().parse_args(argv)
        assert done.value.code == 0
        return
    args = parser().parse_args(argv)  # argparse exits (SystemExit 2) on what it cannot parse
    assert args.subcommand == argv[0]
