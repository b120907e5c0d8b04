"""A user's own table: an experiment file with a ``report:`` block in a folder of one's own
(``--experiments-dir``, e.g. the ``experiment/`` folder of a ``hydra.searchpath``) is
tabulated with no code change; a malformed block is one error naming the file and the key,
before any run is read."""

import textwrap

import numpy as np
import pandas as pd
import pytest
from test_report_helpers import Store, glattn, report

from glattn.report import declared, runs

MY_LOSS = """\
    # @package _global_
    defaults:
      - /schema/report@report
    tracking:
      experiment: my_loss
    hydra:
      sweeper:
        params:
          loss: focal,ce
          seed: 0,1,2
    report:
      table: 7
      title: Loss functions
      group: loss
      baseline: focal
      pinned: {attention: cbam}
      metrics: [balanced_acc, acc]
"""
FOCAL, CE = [0.70, 0.72, 0.74], [0.75, 0.78, 0.76]


@pytest.fixture
def my_conf(tmp_path):
    folder = tmp_path / "my_conf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "my_loss.yaml").write_text(textwrap.dedent(MY_LOSS))
    return folder


def test_a_users_experiment_file_declares_its_own_table(tmp_path, my_conf, capsys):
    s = Store(tmp_path / "store")
    for seed, (a, b) in enumerate(zip(FOCAL, CE)):
        s.job("my_loss", seed, {"test/balanced_acc": a, "test/acc": a + 0.1}, loss="focal")
        s.job("my_loss", seed, {"test/balanced_acc": b, "test/acc": b + 0.1}, loss="ce")
    s.job("my_loss", 0, {"test/balanced_acc": 0.01}, loss="ce", attention="none")  # not pinned
    out = tmp_path / "rep"
    argv = ["my_loss", "--tracking-uri", s.uri, "--out", str(out), "--no-figures", "--no-log"]
    assert report([*argv, "--experiments-dir", str(my_conf)]) == 0
    assert "Table 7: Loss functions" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.md")) == ["NOTES.md", "my_loss.md", "report.md"]
    md = (out / "my_loss.md").read_text()
    assert md.startswith("### Table 7: Loss functions")
    assert "attention=cbam. " in md and "p vs focal: two-sided paired t-test" in md
    csv = pd.read_csv(out / "my_loss.csv")
    assert list(dict.fromkeys(csv["column"])) == [
        "HAM10000 Balanced acc. (%)",
        "HAM10000 Accuracy (%)",
        "HAM10000 p vs focal",
        "Reference",
    ]
    cell = csv[(csv["row"].str.contains("ce")) & (csv["column"] == "HAM10000 Balanced acc. (%)")]
    assert cell["mean"].iloc[0] == pytest.approx(np.mean(CE)) and cell["n"].iloc[0] == 3
    base = csv[(csv["row"].str.contains("focal")) & (csv["column"] == "HAM10000 p vs focal")]
    assert base["text"].iloc[0] == "ref"
    # without the folder the experiment declares nothing: every declared table of the paper
    # is tried on its runs, and the loss table is not among them
    assert "my_loss" not in declared.load().tables


def test_the_report_block_is_composed_into_the_run_config_and_is_no_setting(my_conf):
    from glattn.config import config_fingerprint, resolved_config
    from glattn.config_reference import compose_default

    searchpath = f"hydra.searchpath=[file://{my_conf.parent}]"
    cfg = compose_default(searchpath, "experiment=my_loss")
    assert cfg.report.title == "Loss functions" and cfg.report.claims == []
    assert "report" not in resolved_config(cfg)
    bare = compose_default(searchpath, "loss=focal", "tracking.experiment=my_loss")
    assert config_fingerprint(cfg) == config_fingerprint(bare)


@pytest.mark.parametrize(
    "block, key",
    [
        ("  table: seven\n  title: Mine\n", "report.table"),
        ("  table: 7\n  title: Mine\n  basline: ce\n", "report.basline"),
        ("  table: 7\n", "report.title"),
        ("  table: 7\n  title: Mine\n  metrics: [f2]\n", "report.metrics"),
        ("  table: 7\n  title: Mine\n  claims: [{number: 1, claim: x}]\n", "report.claims[0]"),
        ("  table: 3\n  title: Mine\n", "report.table=3 is also"),
    ],
)
def test_a_malformed_report_block_is_one_error_naming_file_and_key(
    tmp_path, my_conf, capsys, block, key
):
    bad = my_conf / "bad.yaml"
    bad.write_text(f"# @package _global_\nreport:\n{block}")
    missing = tmp_path / "nowhere" / "mlflow.db"  # no store: the check comes first
    argv = ["bad", "--tracking-uri", f"sqlite:///{missing}", "--experiments-dir", str(my_conf)]
    assert report(argv) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and str(bad) in err and key in err, err
    assert not missing.parent.exists()
    with pytest.raises(runs.ReportError, match="invalid report declaration"):
        declared.load([my_conf])
    assert glattn("claims", argv) == 2
    assert str(bad) in capsys.readouterr().err
