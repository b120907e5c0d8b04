"""Report: tables from a real temporary MLflow store (sqlite, no mocks) with known values.

Every number is checked against numpy/scipy computed here from the same inputs.
"""

import math
import re

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats as sps
from test_report_helpers import CLASSES, Store, glattn, report

from glattn.report import cells, declared, runs, stats, tables
from glattn.report.claims.criteria import pairs_by_seed
from glattn.report.declared import expected_levels
from glattn.report.table_format import DASH
from glattn.tracking import queries, uris

NONE18 = [0.70, 0.72, 0.71]
CBAM18 = [0.75, 0.74, 0.78]
NONE50 = [0.80, 0.83, 0.79]
CBAM50 = {3: 0.84, 4: 0.86}  # other seeds than NONE50: Welch
VGG_NONE = [0.60, 0.64]
HIST = {
    "original": [[0.30, 0.60, 0.74, 0.80], [0.40, 0.70, 0.76, 0.79], [0.2, 0.5, 0.9, 0.91]],
    "drop_path": [[0.50, 0.78, 0.80, 0.79], [0.77, 0.78, 0.80, 0.81], [0.1, 0.2, 0.3, 0.9]],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("mlflow"))
    parent = s.sweep("table2_cbam")
    for seed, (a, b) in enumerate(zip(NONE18, CBAM18)):
        s.job("table2_cbam", seed, {"test/balanced_acc": a}, parent=parent, attention="none")
        s.job("table2_cbam", seed, {"test/balanced_acc": b}, parent=parent)
    # a FAILED run and a cbam run with another fusion must not enter any cell
    s.job("table2_cbam", 9, {"test/balanced_acc": 0.01}, status="FAILED")
    s.job("table2_cbam", 0, {"test/balanced_acc": 0.02}, fusion="cross_attn")
    for seed, v in enumerate(NONE50):
        s.job("table2_cbam", seed, {"test/balanced_acc": v}, backbone="resnet50", attention="none")
    for seed, v in CBAM50.items():
        s.job("table2_cbam", seed, {"test/balanced_acc": v}, backbone="resnet50")
    for seed, v in enumerate(VGG_NONE):
        s.job("table2_cbam", seed, {"test/balanced_acc": v}, backbone="vgg16", attention="none")

    # Table 1: resnet18 on both data sets, resnet50 on HAM10000 only
    for seed in range(3):
        for bb, ds, v in (
            ("resnet18", "ham10000", 0.7 + 0.01 * seed),
            ("resnet18", "isic2018", 0.6 + 0.02 * seed),
            ("resnet50", "ham10000", 0.8 + 0.03 * seed),
        ):
            s.job(
                "table1_backbones",
                seed,
                {
                    "test/balanced_acc": v,
                    "test/acc": v + 0.1,
                    "model/params_total": 11e6 if bb == "resnet18" else 23e6,
                    "time/train_total_s": 600 + 60 * seed,
                },
                backbone=bb,
                dataset=ds,
                attention="none",
            )

    # Table 3 (fusion) and Table 4 (residual), with per-epoch history
    for seed in range(3):
        s.job(
            "table3_fusion",
            seed,
            {"test/balanced_acc": 0.75 + 0.01 * seed, "model/params_total": 11_500_000},
            fusion="original",
        )
        s.job(
            "table3_fusion",
            seed,
            {"test/balanced_acc": 0.77 + 0.02 * seed, "model/params_total": 11_565_536},
            fusion="learnable_gate",
        )
        for res, hist in HIST.items():
            s.job(
                "table4_residual",
                seed,
                {"best/val/balanced_acc": max(hist[seed])},
                history={"val/balanced_acc": hist[seed]},
                residual=res,
            )

    # Table 5: trained on HAM10000, evaluated on ISIC 2018's official test set (2 of 3)
    s.t5 = {"hold": [0.80, 0.82, 0.78], "isic": {0: 0.60, 1: 0.65}}
    for seed, v in enumerate(s.t5["hold"]):
        src = s.job("table5_transfer", seed, {"test/balanced_acc": v})
        if seed in s.t5["isic"]:
            s.job(
                "table5_transfer",
                seed,
                {"eval/balanced_acc": s.t5["isic"][seed]},
                task="eval",
                eval_dataset="isic2018",
                eval_split="official_test",
                source_run_id=src,
            )

    # Table 6 + figures: efficiency metrics, curves, recalls, test predictions (confusion)
    parent6 = s.sweep("table6_efficiency")
    ids = [f"ISIC_{i:07d}" for i in range(2 * len(CLASSES))]
    probs = pd.DataFrame(np.eye(len(CLASSES))[np.arange(len(ids)) % 3], columns=CLASSES)
    probs.insert(0, "image", ids)
    labels = [CLASSES[i % len(CLASSES)] for i in range(len(ids))]
    split = pd.DataFrame({"image_id": ids, "label": labels, "split": "test"})
    predicted = [s.artifacts.parent / "test_probabilities.csv", s.artifacts.parent / "split.csv"]
    probs.to_csv(predicted[0], index=False)
    split.to_csv(predicted[1], index=False)
    for seed in range(2):
        for att, params, flops, lat in (("none", 11e6, 1.8, 3.0), ("cbam", 11.5e6, 2.0, 4.0)):
            rid = s.job(
                "table6_efficiency",
                seed,
                {
                    "model/params_total": params,
                    "model/gflops": flops,
                    "perf/infer_latency_ms": lat + 0.1 * seed,
                    "perf/train_img_s": 100 - seed,
                    "perf/peak_mem_mb": 500,
                    "test/balanced_acc": 0.7 + 0.1 * (att == "cbam"),
                    **{f"test/recall_{c}": 0.5 + 0.05 * i for i, c in enumerate(CLASSES)},
                },
                history={"train/loss": [2.0, 1.0 + seed], "val/balanced_acc": [0.5, 0.6]},
                parent=parent6,
                attention=att,
            )
            if att == "cbam":
                for path in predicted:
                    s.client.log_artifact(rid, str(path), "eval")
    return s


def table(store, experiment, number, metric="balanced_acc", expected=None):
    frame = runs.load_runs(store.uri, experiment)
    ctx = tables.Context(
        metric,
        expected or {},
        lambda ids, k: queries.metric_history(runs.client_for(store.uri), ids, k),
    )
    return declared.load().by_number()[number].build(frame, ctx)


def row_of(t, *labels):
    n = len(labels)
    for row in t.rows:
        if tuple(c.text for c in row[:n]) == labels:
            return dict(zip(t.columns, row))
    raise AssertionError(f"no row {labels} in {[[c.text for c in r] for r in t.rows]}")


def assert_summary(cell, values):
    values = np.asarray(values, float)
    assert cell.n == len(values)
    assert cell.mean == pytest.approx(values.mean(), abs=1e-12)
    if len(values) > 1:
        assert cell.std == pytest.approx(values.std(ddof=1), abs=1e-12)
        assert (
            f"{100 * values.mean():.2f} ± {100 * values.std(ddof=1):.2f} (n={len(values)})"
            == cell.text
        )
    else:
        assert math.isnan(cell.std)


# ---------------------------------------------------------------------------- stats
def test_summarize_and_compare_match_scipy():
    s = stats.summarize({0: 1.0, 1: 2.0, 2: 4.0, 3: float("nan")})
    want = (3, pytest.approx(7 / 3), pytest.approx(np.std([1, 2, 4], ddof=1)))
    assert (s.n, s.mean, s.std) == want
    a, b = {0: 0.1, 1: 0.2, 2: 0.4}, {0: 0.3, 1: 0.3, 2: 0.6}
    c = stats.compare(a, b)
    assert c.test == stats.PAIRED
    assert c.p_value == pytest.approx(sps.ttest_rel([0.3, 0.3, 0.6], [0.1, 0.2, 0.4]).pvalue)
    c = stats.compare(a, {5: 0.3, 6: 0.35, 7: 0.9})
    assert c.test == stats.WELCH
    want = sps.ttest_ind([0.3, 0.35, 0.9], [0.1, 0.2, 0.4], equal_var=False).pvalue
    assert c.p_value == pytest.approx(want)
    assert math.isnan(stats.compare({0: 1.0}, {1: 2.0}).p_value)
    assert stats.convergence_epoch({1: 0.3, 2: 0.6, 3: 0.74, 4: 0.8}) == 4
    assert stats.convergence_epoch([(1, 0.5), (2, 0.78), (3, 0.8)]) == 2
    assert math.isnan(stats.convergence_epoch({}))


def test_a_repeated_seed_keeps_its_latest_run_as_the_claims_pair_it():
    runs = pd.DataFrame(
        {
            "run_id": ["r1", "r2", "r3", "r4"],
            "seed": [1, 1, 2, None],
            "start_time": [30, 40, 10, 20],
        }
    )
    values = pd.Series([0.5, 0.7, np.nan, 0.9])
    seeds, note = cells.by_seed(runs, values)
    assert seeds == {1: 0.7, "r4": 0.9}  # seed 2 logged no value; r4 has no seed: its id
    assert note.startswith("1 run(s) repeat a seed")
    later = runs.assign(start_time=[50, 40, 10, 20])  # r1 is now the later run of seed 1
    assert cells.by_seed(later, values)[0][1] == 0.5
    assert cells.by_seed(runs.iloc[2:], values.iloc[2:])[1] is None
    other = runs.assign(run_id=["s1", "s2", "s3", "s4"])
    assert [(s, b) for s, _, b in pairs_by_seed(runs, other)] == [(1, "s2"), (2, "s3")]


# ---------------------------------------------------------------------------- tables
def test_table2_paired_welch_and_missing(store):
    t = table(store, "table2_cbam", 2)
    r18 = row_of(t, "HAM10000", "resnet18")
    assert_summary(r18["none"], NONE18)
    assert_summary(r18["CBAM"], CBAM18)  # the FAILED and cross_attn runs are left out
    assert r18["Test"].text == "paired t"
    assert r18["p"].p_value == pytest.approx(sps.ttest_rel(CBAM18, NONE18).pvalue, abs=1e-12)
    assert r18["Δ (CBAM − none)"].mean == pytest.approx(np.mean(CBAM18) - np.mean(NONE18))

    r50 = row_of(t, "HAM10000", "resnet50")
    assert r50["Test"].text == "Welch t"
    want = sps.ttest_ind(list(CBAM50.values()), NONE50, equal_var=False).pvalue
    assert r50["p"].p_value == pytest.approx(want, abs=1e-12)
    assert_summary(r50["CBAM"], list(CBAM50.values()))

    t3 = table(store, "table2_cbam", 2, expected={"seed": ["0", "1", "2"]})
    r50_3 = row_of(t3, "HAM10000", "resnet50")
    assert "fewer seeds than the 3" in r50_3["CBAM"].note  # 2 of 3 seeds ran
    assert r50_3["none"].note is None

    vgg = row_of(t, "HAM10000", "vgg16")
    assert_summary(vgg["none"], VGG_NONE)
    assert vgg["CBAM"].text == DASH and vgg["CBAM"].note
    md = t.to_markdown()
    mark = t.footnotes()[vgg["CBAM"].note]
    assert f"{DASH}<sup>{mark}</sup>" in md and f"<sup>{mark}</sup> {vgg['CBAM'].note}" in md
    assert "paired t-test" in t.caption and "Welch" in t.caption


def test_table1_params_time_and_missing_dataset(store):
    t = table(store, "table1_backbones", 1)
    assert t.columns[:2] == ["Backbone", "Params (M)"]
    r18, r50 = row_of(t, "resnet18"), row_of(t, "resnet50")
    assert r18["Params (M)"].text == "11.00" and r50["Params (M)"].text == "23.00"
    assert_summary(r18["HAM10000 Balanced acc. (%)"], [0.70, 0.71, 0.72])
    assert_summary(r18["ISIC 2018 Balanced acc. (%)"], [0.60, 0.62, 0.64])
    assert r50["ISIC 2018 Balanced acc. (%)"].text == DASH
    assert r50["ISIC 2018 Balanced acc. (%)"].note == tables.NO_RUNS
    minutes = np.array([600, 660, 720]) / 60
    cell = r18["HAM10000 train time (min)"]
    assert cell.mean == pytest.approx(600 + 60)
    assert cell.text == f"{minutes.mean():.1f} ± {minutes.std(ddof=1):.1f} (n=3)"
    # another metric is selectable
    t = table(store, "table1_backbones", 1, metric="acc")
    assert_summary(row_of(t, "resnet18")["HAM10000 Accuracy (%)"], [0.80, 0.81, 0.82])
    # a metric the runs did not log: dashes with a footnote, never a number
    t = table(store, "table1_backbones", 1, metric="auc")
    cell = row_of(t, "resnet18")["HAM10000 AUC (%)"]
    assert cell.text == DASH and "test/auc" in cell.note


def test_table3_params_reference_and_expected_levels(store):
    t = table(
        store,
        "table3_fusion",
        3,
        expected={"fusion": ["original", "learnable_gate", "cross_attn"]},
    )
    gate = row_of(t, "learnable_gate")
    assert_summary(gate["HAM10000 Balanced acc. (%)"], [0.77, 0.79, 0.81])
    assert gate["Params vs original"].text == "+65,536"
    assert "Highway" in gate["Reference"].text  # the runs' reference.fusion tag
    # asked for by the sweep but never run: a dash and a footnote, not a dropped row; the
    # report knows only what runs logged, so no reference either
    cross = row_of(t, "cross_attn")
    assert cross["HAM10000 Balanced acc. (%)"].text == DASH
    assert cross["Params vs original"].text == DASH
    assert cross["Reference"].text == DASH


def test_table4_convergence_epoch_from_history(store):
    t = table(store, "table4_residual", 4)
    for res, hist in HIST.items():
        row = row_of(t, res)
        epochs = [next(e for e, v in enumerate(h, 1) if v >= 0.95 * max(h)) for h in hist]
        assert_summary(row["HAM10000 Balanced acc. (%)"], [max(h) for h in hist])
        assert row["HAM10000 Balanced acc. (%)"].note == cells.VAL_NOTE.format(m="balanced_acc")
        cell = row["HAM10000 conv. epoch"]
        assert cell.n == 3 and cell.mean == pytest.approx(np.mean(epochs))
        assert cell.std == pytest.approx(np.std(epochs, ddof=1))
    assert "ReZero" not in t.to_markdown()  # only the strategies that ran (and were asked)


def test_table5_drop_paired_by_source_run(store):
    t = table(store, "table5_transfer", 5)
    row = dict(zip(t.columns, t.rows[0]))
    hold, isic = store.t5["hold"], store.t5["isic"]
    assert_summary(row["Holdout test"], hold)
    assert_summary(row["ISIC 2018 official test"], list(isic.values()))
    drops = [hold[s] - v for s, v in isic.items()]
    drop = row["Drop to ISIC 2018 official test"]
    assert drop.n == 2 and drop.mean == pytest.approx(np.mean(drops))
    sd = np.std(drops, ddof=1)
    assert drop.std == pytest.approx(sd)
    assert drop.text == f"{100 * np.mean(drops):+.2f} ± {100 * sd:.2f} (n=2)"
    want = sps.ttest_rel([hold[s] for s in isic], list(isic.values())).pvalue
    assert row["p (ISIC 2018 official test)"].p_value == pytest.approx(want, abs=1e-12)


def test_table6_overhead_vs_no_attention(store):
    t = table(store, "table6_efficiency", 6)
    cbam = row_of(t, "resnet18", "cbam")
    assert cbam["Params overhead"].mean == pytest.approx(11.5 / 11 - 1)
    assert cbam["Params overhead"].text == f"{100 * (11.5 / 11 - 1):+.1f}%"
    assert cbam["FLOPs overhead"].mean == pytest.approx(2.0 / 1.8 - 1)
    assert cbam["Latency overhead"].mean == pytest.approx(4.05 / 3.05 - 1)
    img_s = cbam["Train img/s"]
    assert (img_s.n, img_s.mean, img_s.std) == (2, 99.5, pytest.approx(np.std([100, 99], ddof=1)))
    assert img_s.text == f"99.5 ± {np.std([100, 99], ddof=1):.1f} (n=2)"


def test_latex_is_well_formed(store):
    for exp, n in (
        ("table2_cbam", 2),
        ("table1_backbones", 1),
        ("table4_residual", 4),
        ("table5_transfer", 5),
        ("table6_efficiency", 6),
    ):
        tex = table(store, exp, n).to_latex()
        unescaped = re.sub(r"\\[{}&%$#_]", "", tex)
        depth = 0
        for ch in unescaped:
            depth += {"{": 1, "}": -1}.get(ch, 0)
            assert depth >= 0
        assert depth == 0
        body = tex.split("\\toprule")[1].split("\\bottomrule")[0]
        rows = [r for r in body.split("\n") if r.strip().endswith("\\\\")]
        counts = {len(re.findall(r"(?<!\\)&", r)) for r in rows}
        assert counts == {len(table(store, exp, n).columns) - 1}
        assert tex.count("\\begin{") == tex.count("\\end{")
        assert "±" not in tex and "–" not in tex and "Δ" not in tex


# ---------------------------------------------------------------------------- CLI
def test_cli_writes_tables_figures_and_logs_to_parent(store, tmp_path, capsys):
    out = tmp_path / "rep"
    rc = report(
        ["table6_efficiency", "--tracking-uri", store.uri, "--out", str(out), "--no-gradcam"]
    )
    assert rc == 0
    for stem in ("table6_efficiency",):
        for ext in ("md", "tex", "csv"):
            assert (out / f"{stem}.{ext}").stat().st_size > 0
    assert not (out / "table2_cbam.md").exists()  # table6_* asks for Table 6 only
    csv = pd.read_csv(out / "table6_efficiency.csv")
    assert {"row", "column", "mean", "std", "n", "footnote"} <= set(csv.columns)
    for stem in ("curves_ham10000", "recall_ham10000", "confusion_ham10000"):
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"{stem}.{ext}").stat().st_size > 1000
    client = MlflowClient(store.uri)
    parent = runs.home_sweep(store.uri, "table6_efficiency", {}, "report")[0]
    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert "report/table6_efficiency.tex" in logged and "report/figures" in logged
    assert "Table 6" in capsys.readouterr().out


def test_cli_prints_its_own_lines_not_the_data_loading_ones(monkeypatch, caplog):
    """The Grad-CAM grid loads a data set, whose INFO lines are for a job's log: the report's
    console keeps its own lines and everyone's warnings, and leaves the levels as it found
    them."""
    import logging

    from glattn.report import report as report_module

    def fake_report(*args, **kwargs):
        logging.getLogger("glattn.data.splits").info("images per class and split")
        logging.getLogger("glattn.data.splits").warning("a data warning")
        logging.getLogger("glattn.report.figures").info("the report's own line")
        raise runs.ReportError("stop here")

    monkeypatch.setattr(report_module, "make_report", fake_report)
    caplog.set_level(logging.INFO)
    before = logging.getLogger("glattn").level
    assert report(["anything"]) == 2
    said = [r.getMessage() for r in caplog.records]
    assert said == ["a data warning", "the report's own line"], said
    assert logging.getLogger("glattn").level == before


def test_cli_table_choice_by_name_and_all(store, tmp_path):
    assert declared.load().tables_for("table3_fusion") == [3]
    assert declared.load().tables_for("paper") == [1, 2, 3, 4, 5, 6]
    assert declared.load().tables_for("my_grid") is None
    out = tmp_path / "all"
    assert (
        report(
            [
                "table2_cbam",
                "--tracking-uri",
                store.uri,
                "--out",
                str(out),
                "--tables",
                "1,2",
                "--no-figures",
                "--no-log",
            ]
        )
        == 0
    )
    assert (out / "table2_cbam.md").exists() and (out / "report.tex").exists()
    assert (out / "table1_backbones.md").exists()  # its attention=none runs make Table 1
    tex = (out / "report.tex").read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")


def test_cli_errors_name_the_bad_value(store, tmp_path, capsys):
    assert report(["no_such_exp", "--tracking-uri", store.uri, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'no_such_exp' not found" in err and "table2_cbam" in err
    assert report(["table2_cbam", "--tracking-uri", store.uri, "--tables", "7"]) == 2
    assert "--tables '7'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report(["table2_cbam", "--metric", "f2"])
    missing = tmp_path / "nowhere" / "mlflow.db"
    assert report(["x", "--tracking-uri", f"sqlite:///{missing}"]) == 2
    assert f"no MLflow database at {missing}" in capsys.readouterr().err
    assert not missing.parent.exists()  # nothing created


def test_expected_levels_from_experiment_file(tmp_path):
    (tmp_path / "table3_fusion.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n"
        "      fusion: original,learnable_gate,cross_attn\n      seed: range(0,3)\n"
        "      trainer.lr: 0.1,0.01\n"
    )
    assert expected_levels(tmp_path / "table3_fusion.yaml") == {
        "fusion": ["original", "learnable_gate", "cross_attn"],
        "seed": ["0", "1", "2"],
    }
    assert expected_levels(tmp_path / "missing.yaml") == {}


# ---------------------------------------------------------------------------- estimate
def test_estimate_hours_from_measured_throughput_times_grid(store, tmp_path, capsys):
    from glattn.sweep import estimate

    for seed in range(2):
        store.job(
            "measure", seed, {}, history={"perf/train_img_s": [50, 100, 100]}, attention="none"
        )
        store.job("measure", seed, {}, history={"perf/train_img_s": [20, 80, 80]})
    (tmp_path / "table2_x.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /dataset: ham10000\n"
        "trainer:\n  max_epochs: 2\nhydra:\n  sweeper:\n    params:\n"
        "      backbone: resnet18,vgg16\n      attention: none,cbam\n      seed: 0,1,2\n"
    )
    frame = runs.load_runs(store.uri, "measure")
    measured = estimate.throughput(
        frame, lambda ids, k: queries.metric_history(runs.client_for(store.uri), ids, k)
    )
    assert sorted(measured["img_s"]) == [80, 80, 100, 100]  # epoch 1 (warm-up) left out
    out = estimate.estimate(measured, [tmp_path / "table2_x.yaml"]).iloc[0]
    n_train = 10015 * (1 - 0.15 - 0.15)
    assert out["jobs"] == 12 and out["max_epochs"] == 2
    assert out["jobs_without_measurement"] == 6  # vgg16 was not measured
    want = 3 * 2 * n_train * (1 / 100 + 1 / 80) / 3600
    assert out["hours_upper_bound"] == pytest.approx(want)
    argv = ["measure", "--tracking-uri", store.uri, "--experiments-dir", str(tmp_path)]
    assert glattn("estimate", argv) == 0  # glattn estimate ...
    assert "table2_x" in capsys.readouterr().out


def test_default_tracking_uri_follows_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert uris.default_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/outputs/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert uris.default_tracking_uri() == "http://127.0.0.1:5000"
    assert uris.mask_uri("postgresql://me:secret@db/x") == "postgresql://me:****@db/x"


def test_paper_reads_each_table_from_its_stage_experiment(store, tmp_path):
    out = tmp_path / "paper"
    assert (
        report(
            ["paper", "--tracking-uri", store.uri, "--out", str(out), "--no-figures", "--no-log"]
        )
        == 0
    )
    for key in declared.load().tables:  # each declared table's files
        assert (out / f"{key}.md").is_file(), key
    # Table 1 from table1_backbones (not the attention=none runs of table2_cbam)
    t1 = (out / "table1_backbones.md").read_text()
    # the best value of a metric column is bold
    assert "| resnet50 | 23.00 | **83.00 ± 3.00 (n=3)** |" in t1 and "62.00 ± 2.83" not in t1
    assert "| HAM10000 | vgg16 | 62.00 ± 2.83 (n=2)<sup>" in (out / "table2_cbam.md").read_text()
    report_md = (out / "report.md").read_text()
    assert all(f"Table {n}:" in report_md for n in range(1, 7))


@pytest.mark.parametrize(
    "number, experiment, subject, levels",
    [
        (3, "table3_fusion", "fusion", ["original", "learnable_gate", "cross_attn"]),
        (4, "table4_residual", "residual", ["original", "progressive", "drop_path"]),
    ],
)
def test_one_strategy_tables_3_and_4_show_dashes_for_the_rest(
    tmp_path, number, experiment, subject, levels
):
    from test_report_helpers import Store

    s = Store(tmp_path)
    for seed in range(2):  # only the first strategy has finished runs
        s.job(experiment, seed, {"test/balanced_acc": 0.7 + 0.1 * seed}, **{subject: levels[0]})
    frame = runs.load_runs(s.uri, experiment)
    # without a sweep asking for more levels, one level is not an ablation table
    assert declared.load().by_number()[number].build(frame, tables.Context()) is None
    ctx = tables.Context("balanced_acc", {subject: levels}, None)
    t = declared.load().by_number()[number].build(frame, ctx)
    assert [row[0].text for row in t.rows] == levels
    assert_summary(row_of(t, levels[0])["HAM10000 Balanced acc. (%)"], [0.7, 0.8])
    for level in levels[1:]:
        assert row_of(t, level)["HAM10000 Balanced acc. (%)"].text == DASH


# ---------------------------------------------------------------------------- figures
def _frame(rows):
    from glattn.report.runs import FACTORS

    base = {f: "x" for f in FACTORS}
    base.update(task="train", dataset="ham10000")
    return pd.DataFrame([{**base, **r} for r in rows])


def test_one_epoch_curves_show_markers(tmp_path, monkeypatch):
    from glattn.report import figures

    figs = []
    monkeypatch.setattr(figures, "save", lambda fig, out, stem: figs.append(fig) or [])
    frame = _frame([{"run_id": "a", "attention": "cbam"}, {"run_id": "b", "attention": "none"}])
    history = {"a": {1: 0.5}, "b": {1: 0.4}}
    figures.training_curves(frame, lambda ids, k: history, "balanced_acc", tmp_path, [])
    (fig,) = figs
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert len(lines) == 4 and all(line.get_marker() == "o" for line in lines)
    for ax in fig.axes:  # whole epochs only, though the view spans less than one
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks == [1.0], ticks
    # one legend for the figure, none inside a panel, in a readable size
    assert [ax.get_legend() for ax in fig.axes] == [None, None]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["none (n=1)", "cbam (n=1)"]
    assert min(t.get_fontsize() for t in legend.get_texts()) >= 9


def test_a_validation_band_past_100_is_clipped_and_noted(tmp_path, monkeypatch):
    from glattn.report import figures

    figs = []
    monkeypatch.setattr(figures, "save", lambda fig, out, stem: figs.append(fig) or [])
    frame = _frame([{"run_id": r, "attention": "cbam"} for r in "abc"])
    history = {"a": {1: 0.9, 2: 1.0}, "b": {1: 0.8, 2: 1.0}, "c": {1: 0.7, 2: 0.8}}
    figures.training_curves(frame, lambda ids, k: history, "balanced_acc", tmp_path, [])
    (fig,) = figs
    band = fig.axes[1].collections[0].get_paths()[0].vertices
    assert band[:, 1].max() == pytest.approx(100.0)  # 93.3 + 11.5 would pass 100
    assert "± std bands clipped to 0-100 %: cbam" in [t.get_text() for t in fig.texts]


def _recall_figure(monkeypatch, tmp_path, rows):
    from glattn.report import figures

    figs = []
    monkeypatch.setattr(figures, "save", lambda fig, out, stem: figs.append(fig) or [])
    figures.per_class_recall(_frame(rows), tmp_path, [])
    (fig,) = figs
    return fig


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.texts + fig.axes[0].texts]


def test_a_zero_recall_is_marked_and_a_missing_one_says_n_a(tmp_path, monkeypatch):
    from matplotlib.collections import LineCollection

    rows = [
        {"run_id": "a", "attention": "cbam", "metrics.test/recall_mel": 0.0},
        {"run_id": "b", "attention": "none", "metrics.test/recall_mel": float("nan")},
        {"run_id": "c", "attention": "none", "metrics.test/recall_nv": 0.5},
    ]
    fig = _recall_figure(monkeypatch, tmp_path, rows)
    (ax,) = fig.axes
    zero_bar = next(p for p in ax.patches if p.get_height() == 0 and p.get_x() < 0)
    marks = [
        c
        for c in ax.collections
        if isinstance(c, LineCollection)
        and any(len(seg) and np.allclose(seg[:, 1], 0) for seg in c.get_segments())
        and max(c.get_linewidths()) >= 2
    ]
    assert marks, "a recall of 0 draws no visible mark"
    (seg,) = marks[0].get_segments()
    assert seg[0, 0] == pytest.approx(zero_bar.get_x())  # under the zero bar, as wide
    texts = _texts(fig)
    assert texts.count("0") == 1 and texts.count("n/a") == 2  # none/mel, cbam/nv
    assert any("recall of zero" in t for t in texts) and any("n/a:" in t for t in texts)


def test_recall_figure_without_zeros_or_gaps_has_no_such_notes(tmp_path, monkeypatch):
    rows = [{"run_id": str(i), "seed": i, "metrics.test/recall_mel": 0.5} for i in range(2)]
    texts = _texts(_recall_figure(monkeypatch, tmp_path, rows))
    assert not any(t in ("0", "n/a") or "clipped" in t or "zero" in t for t in texts), texts


def test_recall_error_bars_stay_within_0_and_100(tmp_path, monkeypatch):
    from glattn.report import figures

    want = np.array([[8, 2, 0], [5, 5, 0]], dtype=float)
    assert np.array_equal(figures.clipped_yerr([95, 2, 50], [8, 5, float("nan")]), want)
    figs = []
    monkeypatch.setattr(figures, "save", lambda fig, out, stem: figs.append(fig) or [])
    recall = [0.90, 1.00, 1.00]  # mean 96.7 %, std 5.8 %: unclipped the bar would pass 100
    frame = _frame(
        [{"run_id": str(i), "seed": i, "metrics.test/recall_mel": v} for i, v in enumerate(recall)]
    )
    figures.per_class_recall(frame, tmp_path, [])
    (fig,) = figs
    (ax,) = fig.axes
    tops = [seg[:, 1].max() for c in ax.collections for seg in c.get_segments()]
    assert tops and max(tops) == pytest.approx(100.0)
    notes = [t.get_text() for t in fig.texts]  # and the figure says so
    assert any("clipped" in t and "mel (x)" in t for t in notes), notes


def test_confusion_matrix_is_in_percent():
    from glattn.metrics import confusion_figure

    fig = confusion_figure(np.array([[3, 1], [0, 2]]), ["mel", "nv"], "t", percent=True)
    ax, bar = fig.axes
    assert ax.images[0].get_clim() == (0, 100)
    assert bar.get_ylim() == (0, 100) and "%" in bar.get_ylabel()
    cells = ["75.0%\n(3)", "25.0%\n(1)", "0.0%\n(0)", "100.0%\n(2)"]
    assert [t.get_text() for t in ax.texts] == cells
