"""The ``glattn`` console script: one grammar, Hydra's overrides or a subcommand.

::

    glattn [overrides]                 # one run (python run.py is an alias)
    glattn -m [sweep overrides]        # a multirun (a grid, a paper table)
    glattn <subcommand> [options]      # report, claims, estimate, gradcam, plan; each --help

A first word that is a subcommand (`SUBCOMMANDS`) is parsed by argparse's subparsers; any
other command line is Hydra's. Experiment names are arguments of a subcommand (``glattn
report claims`` reports an experiment named ``claims``), so they never collide with one.
`glattn plan <overrides>` is plan mode: ``glattn -m <overrides> sweep.plan=true``.

The config folder is found from the package, never from the working directory
(`glattn.paths.config_dir`, which `glattn estimate` reads too): ``GLATTN_CONFIG_DIR`` when
set, else ``conf/`` next to the package (a clone or an editable install), else
``<sys.prefix>/share/glattn/conf`` (the ``data_files`` of a wheel, setup.cfg). Hydra is given
that folder as an absolute ``config_path``, so the same command works from any directory. The
``--help`` page is ``conf/hydra/help/glattn.yaml``; its list of config groups comes from
`help_groups` (glattn.groups.USER_GROUPS with the options Hydra's config loader finds), so
internal groups stay hidden.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from glattn import paths
from glattn.resolvers import register
from glattn.secrets import hide_argv_secrets

#: ``glattn <name> ...`` -> ("module:function" that adds the subcommand's arguments to its
#: parser and sets its ``run(args) -> exit status``, one line of what it does).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "report": (
        "glattn.report.cli:configure_report",
        "the paper's tables and figures from one MLflow experiment's runs",
    ),
    "claims": (
        "glattn.report.cli:configure_claims",
        "the claims the experiment files declare, checked from the runs",
    ),
    "estimate": (
        "glattn.sweep.estimate:configure",
        "GPU-hours of the paper's grids from measured throughput",
    ),
    "gradcam": ("glattn.gradcam:configure", "Grad-CAM overlays of a trained model on images"),
    "plan": ("glattn.cli:configure_plan", "plan mode: a sweep's jobs, what is done, its cost"),
}


def help_groups(width: int = 92) -> str:
    """The user-facing config groups, each with what it selects and its options, for
    ``--help`` (resolver ``${glattn.help_groups:}``; needs Hydra's running config loader).
    Structured-config schemas (``*_schema``) are not options a user picks."""
    import textwrap

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    from glattn.groups import USER_GROUPS, display_order, group

    loader = GlobalHydra.instance().config_loader()
    pad = max(len(name) for name in USER_GROUPS) + 4
    lines = []
    for name in USER_GROUPS:
        found = loader.get_group_options(name, ObjectType.CONFIG)
        options = display_order(name, [o for o in found if not o.endswith("_schema")])
        lines.append(f"  {name:<{pad - 2}}{group(name).doc}".rstrip())
        lines += textwrap.wrap(
            ", ".join(options),
            width,
            initial_indent=" " * (pad + 2),
            subsequent_indent=" " * (pad + 2),
        )
    return "\n".join(lines)


def _task(cfg) -> object:
    """One Hydra job: the training/eval task, with one message for a user error."""
    register()  # a worker process (local_gpus, SLURM) runs this without hydra_main
    from glattn.job import run_task

    return run_task(cfg)  # one message for a user error: glattn.job.lifecycle.cli_exit


#: whether glattn's own entry (`hydra_main`) started Hydra in this process
_LAUNCHED = False


def launched_task():
    """glattn's task function when this process runs it through `hydra_main`, else None:
    the sweep callback checks a grid only for glattn's task (another app has its own keys)."""
    return _task if _LAUNCHED else None


def hydra_main(argv: Sequence[str] | None = None) -> None:
    """Hydra's command line over `config_dir` (``argv`` replaces ``sys.argv[1:]``)."""
    import hydra

    register()  # glattn's resolvers, before Hydra composes (glattn.resolvers)
    entry = hydra.main(
        version_base="1.3", config_path=str(paths.config_dir()), config_name=paths.CONFIG_NAME
    )
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    # credentials leave the overrides for env vars before Hydra reads them, so no secret is
    # in Hydra's "Error executing job with overrides" line or .hydra/
    hide_argv_secrets()
    global _LAUNCHED
    _LAUNCHED = True
    try:
        entry(_task)()  # Hydra returns nothing (a user error already exited through cli_exit)
    except KeyboardInterrupt as exc:  # a stop signal inside Hydra itself, between the sweep's
        from glattn.job.lifecycle import interrupt_exit_status  # callbacks and its sweeper

        print(f"glattn: {exc or 'interrupted'}", file=sys.stderr, flush=True)
        raise SystemExit(interrupt_exit_status(exc)) from None


def configure_plan(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Print a sweep's jobs without running them: each job's overrides, whether it is done "
        "(a FINISHED run with its fingerprint), its compute, disk and time estimate "
        "(glattn.sweep.plan). Same as: glattn -m OVERRIDES sweep.plan=true"
    )
    p.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="Hydra overrides of the sweep, e.g. experiment=table3_fusion or fusion=a,b seed=0,1",
    )
    p.set_defaults(run=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    hydra_main(["-m", *args.overrides, "sweep.plan=true"])
    return 0


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The subcommands' parser (``glattn <subcommand> --help``); with `only`, just that
    subcommand's arguments are added, so its command imports no other's module (torch for
    ``gradcam``)."""
    p = argparse.ArgumentParser(
        prog="glattn",
        description="glattn's tools; `glattn [overrides]` (no subcommand) runs and sweeps, "
        "`glattn --help` lists the config groups",
    )
    sub = p.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    for name, (where, summary) in SUBCOMMANDS.items():
        module, _, func = where.partition(":")
        tool = sub.add_parser(
            name,
            help=summary,
            description=summary,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        tool.prog = f"glattn {name}"
        if only in (None, name):
            getattr(importlib.import_module(module), func)(tool)
    return p


def run_subcommand(args: Sequence[str]) -> int:
    """``glattn <subcommand> [options]``: its exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # as python -m does
    parsed = parser(args[0] if args else None).parse_args(list(args))
    return int(parsed.run(parsed) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """``glattn <subcommand> ...`` (`SUBCOMMANDS`), else Hydra's command line. Returns the
    exit status (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        return run_subcommand(args)
    hydra_main(args if argv is not None else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
