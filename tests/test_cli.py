"""The ``glattn`` console script (glattn.cli): run from a temporary directory, as a user of
an install would, its help page, its tools, and where it finds conf/."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from glattn import cli, paths
from glattn.groups import INTERNAL_GROUPS, USER_GROUPS

SUBCOMMANDS_IN_HELP = re.compile(r"^    (\w+) ", re.MULTILINE)

ROOT = Path(__file__).resolve().parents[1]
GLATTN = Path(sys.executable).with_name("glattn")  # the installed console script


def glattn(*args: str, cwd: Path, timeout: int = 120, **env) -> subprocess.CompletedProcess:
    assert GLATTN.is_file(), f"{GLATTN} missing: pip install -e . installs the console script"
    return subprocess.run(
        [str(GLATTN), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )


def test_help_page_from_any_directory(tmp_path):
    res = glattn("--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "is powered by Hydra" not in out  # not Hydra's generic page
    assert "Global-Local Self-Attention" in out
    groups = out.split("== Config groups")[1].split("== Examples")[0]
    listed = {line.split()[0] for line in groups.splitlines()[1:] if line[2:3].strip()}
    assert listed == set(USER_GROUPS)
    for internal in INTERNAL_GROUPS:
        assert f"  {internal} " not in groups
    assert "learnable_gate, weighted_add" in groups  # options come with their group
    assert "local_gpus_schema" not in groups  # a structured-config schema, not an option
    block = out.split("== Examples ==")[1].splitlines()
    examples = [line.split()[1:] for line in block if line.strip().startswith("glattn")]
    assert len(examples) >= 5
    assert any("dataset=ham10000" in e for e in examples)
    assert any("-m" in e for e in examples) and any("hydra/launcher=slurm" in e for e in examples)
    assert any(e[:1] == ["report"] for e in examples)
    assert "README.md" in out
    assert "train/loss" not in out  # no dump of the whole config


def test_compose_from_a_temporary_directory(tmp_path):
    res = glattn("--cfg", "job", "fusion=learnable_gate", "trainer.max_epochs=2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "glattn.models.fusion" in res.stdout and "max_epochs: 2" in res.stdout
    assert not (tmp_path / "outputs").exists()  # --cfg runs nothing


def test_a_bad_override_is_one_error(tmp_path):
    res = glattn("fusion=nope", cwd=tmp_path)
    assert res.returncode != 0
    assert "nope" in res.stderr and "learnable_gate" in res.stderr


@pytest.mark.parametrize(
    "tool, words",
    [
        ("report", ["usage: glattn report", "experiment", "--tables", "--include-debug"]),
        ("claims", ["usage: glattn claims", "--resamples"]),
        ("estimate", ["usage: glattn estimate", "--jobs-per-gpu"]),
        ("gradcam", ["usage: glattn gradcam", "ckpt", "images", "--out"]),
        ("plan", ["usage: glattn plan", "sweep.plan=true"]),
    ],
)
def test_every_subcommand_has_its_help(tool, words, capsys):
    """One grammar: `glattn <subcommand> --help` is argparse's, for every subcommand."""
    with pytest.raises(SystemExit) as done:
        cli.main([tool, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for word in words:
        assert word in out


def test_a_subcommand_with_bad_options_is_argparses_usage(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["gradcam"])
    assert done.value.code == 2
    assert "usage: glattn gradcam" in capsys.readouterr().err


def test_a_subcommand_imports_only_its_own_module():
    """`glattn report ...` builds only report's arguments: no torch import (glattn gradcam's)
    before the report needs it; `glattn --help` still lists every subcommand."""
    code = (
        "import sys; from glattn import cli; p = cli.parser('report'); "
        "p.parse_args(['report', 'x']); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    assert set(SUBCOMMANDS_IN_HELP.findall(cli.parser("report").format_help())) >= set(
        cli.SUBCOMMANDS
    )


def test_the_report_and_the_class_list_load_without_torch():
    """The report's tables, claims and figures (glattn.data's class list included) import no
    torch: only the Grad-CAM grid does, when it draws."""
    code = (
        "import sys; import glattn.report.report, glattn.report.claims_report; "
        "from glattn.data import CLASS_NAMES; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_cli_startup_benchmark_prints_its_ratio():
    """benchmarks/cli_startup.py runs once per variant and ends with its ratio line."""
    script = ROOT / "benchmarks" / "cli_startup.py"
    out = subprocess.run(
        [sys.executable, str(script), "--repeats", "1"], capture_output=True, text=True, check=True
    )
    last = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"glattn report start-up: [\d.]+ s vs [\d.]+ s \([\d.]+x\)", last), last


def test_an_experiment_named_like_a_subcommand_is_reported(monkeypatch):
    """`glattn report claims` reports the experiment `claims`, not the claims subcommand."""
    from glattn.report import cli as report_cli

    p = cli.parser()
    args = p.parse_args(["report", "claims", "--tables", "3"])
    assert args.run is report_cli.run_report and args.experiment == "claims"
    args = p.parse_args(["claims", "table3_fusion"])
    assert args.run is report_cli.run_claims and args.experiment == "table3_fusion"
    monkeypatch.setattr(report_cli, "run_report", lambda args: 3 * (args.experiment == "claims"))
    assert cli.main(["report", "claims"]) == 3  # the parser binds run_report late


def test_plan_subcommand_is_plan_mode(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "hydra_main", lambda argv: seen.append(argv))
    assert cli.main(["plan", "experiment=table3_fusion", "seed=0,1"]) == 0
    assert seen == [["-m", "experiment=table3_fusion", "seed=0,1", "sweep.plan=true"]]


def test_config_dir_order(tmp_path, monkeypatch):
    assert paths.config_dir() == (ROOT / "conf").resolve()  # a clone / editable install
    (tmp_path / "config.yaml").write_text("a: 1\n")
    monkeypatch.setenv("GLATTN_CONFIG_DIR", str(tmp_path))
    assert paths.config_dir() == tmp_path.resolve()


def test_estimate_reads_the_config_folder_the_cli_uses(tmp_path, monkeypatch):
    from glattn.sweep import estimate

    (tmp_path / "config.yaml").write_text("a: 1\n")
    (tmp_path / "dataset").mkdir()
    mine = "num_images: 1000\nval_fraction: 0.1\ntest_fraction: 0.2\n"
    (tmp_path / "dataset" / "mine.yaml").write_text(mine)
    assert estimate.train_images("mine") == 0.0  # not an option of the shipped conf/
    monkeypatch.setenv("GLATTN_CONFIG_DIR", str(tmp_path))
    assert estimate.train_images("mine") == pytest.approx(700.0)


def test_config_dir_missing_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("GLATTN_CONFIG_DIR", str(tmp_path))
    monkeypatch.setattr(paths, "PACKAGE", tmp_path / "site" / "glattn")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    with pytest.raises(SystemExit) as err:
        paths.config_dir()
    text = str(err.value)
    assert str(tmp_path) in text and "share/glattn/conf" in text and "GLATTN_CONFIG_DIR" in text


def test_shipped_folders_are_found_in_a_clone_a_target_install_and_a_prefix(tmp_path, monkeypatch):
    """experiments/ (and conf/) of a clone; of ``pip install --target DIR`` (share/glattn/
    beside the package); of a virtual environment (<prefix>/share/glattn)."""
    site, prefix = tmp_path / "site", tmp_path / "prefix"
    monkeypatch.setattr(paths, "PACKAGE", site / "glattn")
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.delenv("GLATTN_CONFIG_DIR", raising=False)
    for base in (prefix, site):  # the prefix's copy, then one beside the package, wins
        copy = base / "share" / "glattn" / "conf"
        (copy / "experiment").mkdir(parents=True)
        (copy / "config.yaml").write_text("a: 1\n")
        assert paths.shipped_dir("experiments", "conf/experiment") == copy / "experiment"
        assert paths.config_dir() == copy.resolve()
    (site / "experiments").mkdir()  # a clone's own folder comes first
    assert paths.shipped_dir("experiments", "conf/experiment") == site / "experiments"


def test_wheel_data_files_cover_every_conf_folder():
    """A wheel carries conf/ as data_files, one setup.cfg line per folder: a new group folder
    without its line would be missing from a non-editable install."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    listed = {
        dest.removeprefix("share/glattn/conf").strip("/"): src.strip()
        for dest, src in parser["options.data_files"].items()
    }
    folders = {
        os.path.relpath(top, ROOT / "conf").replace(".", "")
        for top, _, files in os.walk(ROOT / "conf", followlinks=True)  # experiment/ is a link
        if any(f.endswith(".yaml") for f in files)
    }
    assert set(listed) == folders
    assert listed["experiment"] == "experiments/*.yaml"  # conf/experiment is a link to it


@pytest.mark.slow
def test_non_editable_install_finds_conf(tmp_path):
    """A wheel carries conf/ (<prefix>/share/glattn/conf); installed into a fresh venv (its
    dependencies from this one's site-packages) it composes from an unrelated folder."""
    src = _mkdir(tmp_path / "src")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("glattn", "hydra_plugins", "experiments", "conf"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    pip = [sys.executable, "-m", "pip"]
    wheel = _ok(
        pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", "dist", str(src)], tmp_path
    )
    (whl,) = (tmp_path / "dist").glob("glattn-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    data = "glattn-0.1.0.data/data/share/glattn/conf/"
    for rel in ("config.yaml", "fusion/cross_attn.yaml", "experiment/table3_fusion.yaml"):
        assert data + rel in names, wheel
    venv = tmp_path / "venv"
    _ok([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    (site,) = venv.glob("lib/python3*/site-packages")
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "deps.pth").write_text("\n".join(deps) + "\n")  # plain paths: no editable finder
    _ok(
        pip + ["--python", str(venv / "bin" / "python"), "install", "--no-deps", str(whl)],
        tmp_path,
    )
    elsewhere = _mkdir(tmp_path / "elsewhere")
    code = "import glattn.paths as p; print(p.__file__); print(p.config_dir())"
    where = _ok([str(venv / "bin" / "python"), "-c", code], elsewhere).splitlines()
    assert where == [str(site / "glattn" / "paths.py"), str(venv / "share" / "glattn" / "conf")]
    out = _ok([str(venv / "bin" / "glattn"), "--cfg", "job", "fusion=cross_attn"], elsewhere)
    assert "glattn.models.fusion.CrossAttnFusion" in out


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ok(cmd: list[str], cwd: Path) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{cmd}: {res.stderr[-2000:]}"
    return res.stdout


@pytest.mark.slow
def test_one_tiny_run_from_a_temporary_directory(tmp_path):
    out = tmp_path / "out"
    res = glattn(
        "debug=smoke", f"paths.output_dir={out}", "tracking=none", cwd=tmp_path, timeout=900
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (status,) = out.glob("runs/*/*/status.json")
    assert json.loads(status.read_text())["status"] == "finished"
    assert (status.parent / "glattn.log").is_file()  # hydra.job.name: glattn
