"""Start-up of `glattn <subcommand>`, side by side in one run: the parser with every
subcommand's arguments (each subcommand's module imported, glattn.gradcam's torch included)
against the parser with only the asked subcommand's (what `glattn report ...` builds).

Each variant runs in a fresh interpreter `--repeats` times, alternating; the last line reads
`glattn report start-up: ONLY s vs ALL s (Rx)` (medians).

    python benchmarks/cli_startup.py [--repeats 5] [--subcommand report]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--subcommand", default="report")
    args = p.parse_args(argv)
    variants = {
        "all": "from glattn import cli; cli.parser()",
        "only": f"from glattn import cli; cli.parser({args.subcommand!r})",
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, code in variants.items():
            times[name].append(timed(code))
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:>4}: " + " ".join(f"{x:.2f}" for x in t) + f" s (median {median[name]:.2f})")
    ratio = median["all"] / median["only"]
    print(
        f"glattn {args.subcommand} start-up: {median['only']:.2f} s vs {median['all']:.2f} s "
        f"({ratio:.1f}x)"
    )


if __name__ == "__main__":
    main()
