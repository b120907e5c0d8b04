"""Claims (the paper's six success criteria) with known answers, from synthetic per-image
predictions written the way runs write them (test_probabilities.csv + split.csv, logged to
a real temporary MLflow store). Every p-value and effect is checked against scipy/sklearn
computed here from the same CSVs."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import balanced_accuracy_score
from test_report_helpers import CLASSES, Store, glattn

from glattn.report import claims, declared, runs, stats
from glattn.report.predictions import Predictions, read_predictions

N_PER_CLASS = 100  # 700 test images, 100 a class: +k images right a class = +k points
IDS = [f"ISIC_{i:07d}" for i in range(N_PER_CLASS * len(CLASSES))]
LABELS = np.repeat(np.arange(len(CLASSES)), N_PER_CLASS)


def probabilities(labels, correct, n_classes=len(CLASSES)):
    """Rows whose argmax is the label where `correct`, the next class otherwise."""
    pred = np.where(correct, labels, (labels + 1) % n_classes)
    probs = np.full((len(labels), n_classes), 0.05)
    probs[np.arange(len(labels)), pred] = 0.7
    return probs


def write_csvs(folder, ids, labels, correct, split="test", weights=None):
    """`<split>_probabilities.csv` (ISIC format, as glattn.job writes it) + split.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(probabilities(labels, correct), columns=[c.upper() for c in CLASSES])
    frame.insert(0, "image", ids)
    if weights is not None:
        frame["weight"] = weights
    probs = folder / f"{split}_probabilities.csv"
    frame.to_csv(probs, index=False, float_format="%.6f")
    truth_split = "test" if split == "eval" else split
    pd.DataFrame(
        {
            "image_id": ids,
            "lesion_id": ids,
            "label": [CLASSES[i] for i in labels],
            "split": truth_split,
        }
    ).to_csv(folder / "split.csv", index=False)
    return probs, folder / "split.csv"


def correct_mask(rng, right_per_class):
    """Exactly `right_per_class` of each class's 100 images right, at random places."""
    out = np.zeros(LABELS.size, bool)
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(LABELS == c)
        out[rng.choice(idx, right_per_class, replace=False)] = True
    return out


def improve(rng, correct, k):
    """`correct` plus k more images right in every class (wrong ones turned right)."""
    out = correct.copy()
    for c in range(len(CLASSES)):
        wrong = np.flatnonzero((LABELS == c) & ~out)
        out[rng.choice(wrong, k, replace=False)] = True
    return out


def log_run(store, tmp, exp, seed, correct, metrics=None, split="test", **kw):
    rid = store.job(exp, seed, metrics or {}, **kw)
    folder = tmp / rid
    for path in write_csvs(folder, IDS, LABELS, correct, split):
        store.client.log_artifact(rid, str(path))
    return rid


def bacc(correct):
    pred = np.where(correct, LABELS, (LABELS + 1) % len(CLASSES))
    return balanced_accuracy_score(LABELS, pred)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store: criterion 1 (+6 points), 2 (best on validation != best on test),
    3 (convergence from history), 4 (a cross-data-set drop), 5 (FLOPs and latency)."""
    tmp = tmp_path_factory.mktemp("claims")
    s = Store(tmp / "store")
    rng = np.random.default_rng(0)
    s.c1 = {"none": [], "cbam": []}
    parent = s.sweep("c1")
    for seed, k in enumerate((5, 6, 7)):  # +5, +6, +7 points: mean +6
        base = correct_mask(rng, 60)
        better = improve(rng, base, k)
        s.c1["none"].append(base)
        s.c1["cbam"].append(better)
        log_run(s, tmp, "c1", seed, base, attention="none", parent=parent)
        log_run(s, tmp, "c1", seed, better, attention="cbam", parent=parent)

    # criterion 2: weighted_add best on validation, learnable_gate best on test
    for seed in range(3):
        base = correct_mask(rng, 60)
        for fusion, val, k in (
            ("original", 0.60, 0),
            ("learnable_gate", 0.61, 8 + seed),  # +9 points on average
            ("weighted_add", 0.70, 2 + seed),  # +3
        ):
            log_run(
                s,
                tmp,
                "c2",
                seed,
                improve(rng, base, k),
                {"best/val/balanced_acc": val + 0.01 * seed},
                fusion=fusion,
            )

    # criterion 3: progressive reaches 95% of its best at epoch 2, original at epoch 4-5
    s.c3 = {
        "original": [[0.2, 0.5, 0.7, 0.8, 0.8], [0.1, 0.4, 0.6, 0.8, 0.8], [0.3, 0.5, 0.6, 0.8]],
        "progressive": [[0.5, 0.8, 0.8, 0.8], [0.6, 0.79, 0.8, 0.81], [0.2, 0.81, 0.82, 0.8]],
    }
    for residual, hists in s.c3.items():
        for seed, h in enumerate(hists):
            s.job("c3", seed, {}, history={"val/balanced_acc": h}, residual=residual)

    # criterion 4: holdout test vs eval on another data set, drop 2-4 points
    for seed, k in enumerate((2, 3, 4)):
        target = correct_mask(rng, 55)
        hold = improve(rng, target, k)
        src = log_run(s, tmp, "c4", seed, hold)
        log_run(
            s,
            tmp,
            "c4",
            seed,
            target,
            split="eval",
            task="eval",
            eval_dataset="isic2018",
            eval_split="official_test",
            source_run_id=src,
        )

    # criterion 5: +11.1% FLOPs, ~+10% latency
    s.c5 = {"none": [3.0, 3.1, 2.9], "cbam": [3.3, 3.4, 3.2]}
    for exp in ("c5", "table6_efficiency"):  # the second: the paper's stage of criterion 5
        for att, flops in (("none", 1.8), ("cbam", 2.0)):
            for seed, lat in enumerate(s.c5[att]):
                metrics = {"model/gflops": flops, "perf/infer_latency_ms": lat}
                s.job(exp, seed, metrics, attention=att)
    return s


def rows_of(c, number):
    return [r for r in c.rows if r.claim == number]


def test_six_points_better_on_the_same_images_is_supported(store):
    c = claims.check_claims(store.uri, "c1")
    (row,) = rows_of(c, 1)
    assert row.verdict == claims.SUPPORTED, row.reason
    assert c.verdict(1) == claims.SUPPORTED
    # numbers a reader reproduces from the CSVs with sklearn + scipy
    a = [bacc(m) for m in store.c1["none"]]
    b = [bacc(m) for m in store.c1["cbam"]]
    np.testing.assert_allclose(np.subtract(b, a), [0.05, 0.06, 0.07], atol=1e-12)
    assert row.effect == pytest.approx(6.0)
    assert row.p == pytest.approx(sps.ttest_rel(b, np.add(a, 0.02), alternative="greater").pvalue)
    assert row.p_holm == pytest.approx(row.p)  # a family of one
    assert 2 < row.low < 6 < row.high
    b_only = sum(int((y & ~x).sum()) for x, y in zip(store.c1["none"], store.c1["cbam"]))
    assert row.mcnemar_p == pytest.approx(sps.binomtest(b_only, b_only, 0.5).pvalue)
    assert row.n_pairs == 3 and row.seeds == "0 1 2"
    # criteria without runs in this experiment are inconclusive, so 6 is not supported
    assert c.verdict(2) == claims.INCONCLUSIVE and c.verdict(6) == claims.INCONCLUSIVE


def predictions(labels, correct):
    """What read_predictions returns for CSVs written by write_csvs (checked below)."""
    ids, predicted = np.array(IDS[: labels.size]), probabilities(labels, correct).argmax(axis=1)
    return Predictions(ids, labels, predicted, np.ones(labels.size), tuple(CLASSES))


def test_read_predictions_of_written_csvs(tmp_path):
    rng = np.random.default_rng(1)
    labels, right = np.arange(140) % 7, rng.random(140) < 0.7
    got = read_predictions(*write_csvs(tmp_path, IDS[:140], labels, right))
    want = predictions(labels, right)
    for name in ("images", "labels", "predicted", "correct", "weights"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert got.classes == want.classes


def test_same_model_false_positive_rate_below_5_percent():
    """Two arms drawn from one model (each image right with the same probability): over 200
    seeded repetitions, criterion 1 (> 2 points) and a zero-threshold variant are
    'not supported' or 'inconclusive' at least 95% of the time. The predictions are built
    in memory (test_read_predictions_of_written_csvs: the same as reading the CSVs)."""
    zero = claims.Criterion("", 0, "better at all", 0, ">", "pp")
    n, rng = 105, np.random.default_rng(12)
    labels = np.arange(n) % len(CLASSES)
    false_pos = {1: 0, 0: 0}
    for rep in range(200):
        got = [
            (
                seed,
                predictions(labels, rng.random(n) < 0.7),
                predictions(labels, rng.random(n) < 0.7),
            )
            for seed in range(3)
        ]
        for crit in (claims.criteria_of(declared.load(), "paper")[1], zero):
            row = claims.Row(crit.number, "s", "b − a", threshold=crit.threshold, unit="pp")
            claims.rows.fill_accuracy(row, crit, got, "balanced_acc", 2000, rep)
            claims.adjust_and_judge([row])
            false_pos[crit.number] += row.verdict == claims.SUPPORTED
    assert false_pos[1] <= 10 and false_pos[0] <= 10, false_pos


def test_best_fusion_is_chosen_on_validation_and_judged_on_test(store):
    c = claims.check_claims(store.uri, "c2")
    rows = rows_of(c, 2)
    assert {r.comparison for r in rows} == {"learnable_gate − original", "weighted_add − original"}
    (best,) = [r for r in rows if r.primary]
    assert best.comparison == "weighted_add − original"
    assert "chosen on validation (weighted_add)" in best.note
    assert "on test learnable_gate scores highest" in best.note
    assert best.effect == pytest.approx(3.0) and best.pooled
    # Holm over the family of two
    ps = [r.p for r in rows]
    want = sorted(ps)
    holm = {want[0]: min(1, 2 * want[0]), want[1]: max(min(1, 2 * want[0]), want[1])}
    for r in rows:
        assert r.p_holm == pytest.approx(holm[r.p])


def test_holm_equals_a_hand_computation():
    # sorted 0.01 < 0.03 < 0.04 < 0.2 (m = 4): 4*0.01, 3*0.03, max(0.09, 2*0.04), 0.2
    got = stats.holm([0.04, 0.01, 0.2, math.nan, 0.03])
    np.testing.assert_allclose(got, [0.09, 0.04, 0.2, math.nan, 0.09])


def test_resampled_score_equals_sklearn_on_the_resample():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, 90)
    correct = rng.random(90) < 0.6
    o = stats.Outcomes(labels, correct, np.ones(90), "k", 7)
    counts = stats.resample_counts(rng, 90, 4)
    pred = np.where(correct, labels, (labels + 1) % 7)
    for r in range(4):
        idx = np.repeat(np.arange(90), counts[r].astype(int))
        want = balanced_accuracy_score(labels[idx], pred[idx])
        assert stats.score(o, "balanced_acc", counts[None, r])[0] == pytest.approx(want)
    assert stats.score(o, "acc") == pytest.approx(correct.mean())


def test_bootstrap_interval_covers_a_known_difference():
    """b gets exactly 8 more images right per class of 100 (+8 points) on every seed."""
    rng = np.random.default_rng(5)
    pairs = []
    for _ in range(3):
        a = correct_mask(rng, 50)
        b = improve(rng, a, 8)
        pairs.append(
            tuple(stats.Outcomes(LABELS, m, np.ones(LABELS.size), "k", 7) for m in (a, b))
        )
    iv = stats.crossed_bootstrap(pairs, "balanced_acc", 2000, seed=1)
    assert iv.estimate == pytest.approx(0.08)
    assert iv.low < 0.08 < iv.high and iv.high - iv.low < 0.05
    assert iv == stats.crossed_bootstrap(pairs, "balanced_acc", 2000, seed=1)  # seeded


def test_weights_and_skipped_images_do_not_count(tmp_path):
    ids, labels = IDS[:70], np.arange(70) % 7
    right = np.arange(70) % 3 > 0
    weights = np.ones(70)
    weights[0] = 0  # e.g. ISIC_0035068, score weight 0 in the official scorer
    probs, split = write_csvs(tmp_path / "w", ids, labels, right, weights=weights)
    pd.DataFrame({"image_id": [ids[1]], "reason": ["unreadable"]}).to_csv(
        tmp_path / "skipped.csv", index=False
    )
    p = read_predictions(probs, split, "test", tmp_path / "skipped.csv")
    keep = np.arange(2, 70)
    pred = np.where(right, labels, (labels + 1) % 7)
    want = balanced_accuracy_score(labels[keep], pred[keep])
    assert stats.score(p.outcomes(), "balanced_acc") == pytest.approx(want)


def test_bad_csv_names_the_file(tmp_path):
    probs, split = write_csvs(tmp_path / "b", IDS[:7], np.arange(7), np.ones(7, bool))
    pd.DataFrame({"image_id": IDS[:3], "label": "nv", "split": "test"}).to_csv(split, index=False)
    with pytest.raises(runs.ReportError, match="test_probabilities.csv: 4 image"):
        read_predictions(probs, split)


def test_convergence_and_residual_comparison(store):
    c = claims.check_claims(store.uri, "c3")
    (row,) = rows_of(c, 3)
    conv = {
        res: [stats.convergence_epoch(dict(enumerate(h, 1))) for h in hs]
        for res, hs in store.c3.items()
    }
    assert conv == {"original": [4, 4, 4], "progressive": [2, 2, 2]}
    assert row.effect == pytest.approx(2.0)  # progressive 2 epochs sooner on every seed
    assert row.verdict == claims.INCONCLUSIVE and "all equal" in row.reason


def test_drop_between_data_sets_on_different_images(store):
    c = claims.check_claims(store.uri, "c4")
    (row,) = rows_of(c, 4)
    assert row.stratum.endswith("ISIC 2018 official test")
    assert row.effect == pytest.approx(3.0)
    assert row.p == pytest.approx(
        sps.ttest_rel([0.02, 0.03, 0.04], [0.05] * 3, alternative="less").pvalue
    )
    assert row.verdict == claims.SUPPORTED, row.reason
    assert "different images" in row.mcnemar and math.isnan(row.mcnemar_p)


def test_overhead_from_flops_and_latency(store):
    c = claims.check_claims(store.uri, "c5")
    flops, lat = rows_of(c, 5)
    assert flops.effect == pytest.approx(100 * (2.0 / 1.8 - 1))
    assert flops.verdict == claims.SUPPORTED and math.isnan(flops.p)
    la, lb = np.log(store.c5["none"]), np.log(store.c5["cbam"])
    assert lat.effect == pytest.approx(100 * (math.exp(np.mean(lb - la)) - 1))
    assert lat.p == pytest.approx(sps.ttest_rel(lb, la + math.log(1.2), alternative="less").pvalue)
    assert lat.verdict == claims.SUPPORTED, lat.reason
    assert c.verdict(5) == claims.SUPPORTED


def test_too_few_seeds_is_inconclusive_with_power(store, tmp_path):
    frame = runs.load_runs(store.uri, "c1")
    two = frame[frame["seed"] != 2]
    c = claims.check_claims(store.uri, "c1", frames={"c1": two})
    (row,) = rows_of(c, 1)
    assert row.n_pairs == 2 and row.verdict == claims.INCONCLUSIVE
    assert "too few runs" in row.reason and "80% power" in row.reason
    assert row.mde > 2 and row.seeds_needed >= 3


def test_cli_writes_claims_and_forest_plot_and_logs_them(store, tmp_path, capsys):
    out = tmp_path / "rep"
    rc = glattn("claims", ["c1", "--tracking-uri", store.uri, "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "criterion 1: supported" in text
    for name in ("claims.md", "claims.tex", "claims.csv"):
        assert (out / name).stat().st_size > 500
    for ext in ("png", "pdf"):
        assert (out / "figures" / f"claims_forest.{ext}").stat().st_size > 1000
    table = pd.read_csv(out / "claims.csv")
    assert list(table["claim"].unique()) == [1, 2, 3, 4, 5, 6]
    first = table[table["claim"] == 1].iloc[0]
    assert first["verdict"] == "supported" and first["bootstrap_resamples"] == 2000
    assert len(first["runs_a"].split()) == 3
    md = (out / "claims.md").read_text()
    assert "| 1 | CBAM improves balanced acc." in md and "**supported**" in md
    # every output names the metric and says what "pp" means
    assert "percentage points of Balanced acc." in md
    assert "percentage points of Balanced acc." in (out / "claims.tex").read_text()
    assert set(table["metric"]) == {"balanced_acc"}
    tex = (out / "claims.tex").read_text()
    assert "\\begin{document}" in tex and tex.isascii()  # pdflatex-safe: symbols mapped
    parent = runs.home_sweep(store.uri, "c1", {}, "claims")[0]
    logged = {f.path for f in store.client.list_artifacts(parent, "report")}
    assert {"report/claims.md", "report/runs_used.csv"} <= logged  # with the run set read
    assert set(first["runs_a"].split()) <= set(pd.read_csv(out / "runs_used.csv")["run_id"])


def test_cli_errors_name_the_bad_value(store, tmp_path, capsys):
    assert glattn("claims", ["nope", "--tracking-uri", store.uri, "--no-log"]) == 2
    assert "'nope' not found" in capsys.readouterr().err
    assert glattn("claims", ["c1", "--tracking-uri", store.uri, "--resamples", "0"]) == 2
    assert "--resamples 0" in capsys.readouterr().err
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert glattn("claims", ["--tracking-uri", missing]) == 2  # paper, the default
    assert "no MLflow database" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(SystemExit):
        glattn("claims", ["c1", "--metric", "auc"])


@pytest.mark.slow
def test_smoke_sweep_claims_reproduce_with_scipy(tmp_path):
    """A real smoke sweep (run.py, 2 attentions x 3 seeds): claims.csv's criterion 1 and 5
    numbers are reproduced here from the runs' CSVs and metrics with sklearn + scipy."""
    from mlflow.tracking import MlflowClient
    from test_sweep_helpers import ROOT, run_cli

    out = tmp_path / "out"
    grid = ["debug=smoke", "attention=none,cbam", "seed=0,1,2", "trainer.gradcam_per_class=0"]
    exp = "tracking.experiment=claims_smoke"
    res = run_cli(ROOT / "run.py", *grid, f"paths.output_dir={out}", exp, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    uri = f"sqlite:///{out / 'mlflow.db'}"
    assert (
        glattn(
            "claims",
            ["claims_smoke-debug", "--include-debug"]  # debug=smoke: <exp>-debug
            + ["--tracking-uri", uri, "--out", str(tmp_path / "r")],
        )
        == 0
    )
    table = pd.read_csv(tmp_path / "r" / "claims.csv")
    client = MlflowClient(uri)

    def bacc(run_id):
        def get(name):
            return pd.read_csv(client.download_artifacts(run_id, name, str(tmp_path)))

        probs, split = get("test_probabilities.csv"), get("split.csv")
        truth = split[split["split"] == "test"].set_index("image_id").loc[probs["image"], "label"]
        pred = probs.columns[1:][probs.iloc[:, 1:].to_numpy().argmax(axis=1)]
        return balanced_accuracy_score(truth.str.upper(), pred)

    row = table[table["claim"] == 1].iloc[0]
    a = np.array([bacc(r) for r in row["runs_a"].split()])
    b = np.array([bacc(r) for r in row["runs_b"].split()])
    assert row["n_pairs"] == 3
    assert row["effect"] == pytest.approx(100 * np.mean(b - a))
    if np.ptp(b - a) == 0:  # one epoch can leave both arms predicting alike on every seed
        assert row["p"] == 1.0 and row["verdict"] == "inconclusive"  # zero spread: p = 1
    else:
        want = sps.ttest_rel(b, a + 0.02, alternative="greater").pvalue
        assert row["p"] == pytest.approx(want)
    assert row["low"] <= row["effect"] <= row["high"]

    lat = table[(table["claim"] == 5) & table["comparison"].str.startswith("latency")].iloc[0]

    def ms(ids):
        return np.log([client.get_run(r).data.metrics["perf/latency_ms"] for r in ids.split()])

    la, lb = ms(lat["runs_a"]), ms(lat["runs_b"])
    assert lat["effect"] == pytest.approx(100 * (math.exp(np.mean(lb - la)) - 1))
    assert lat["p"] == pytest.approx(
        sps.ttest_rel(lb, la + math.log(1.2), alternative="less").pvalue
    )


def test_paper_reads_each_criterion_from_its_stage(store):
    c = claims.check_claims(store.uri, "paper")
    assert c.sources == {5: "table6_efficiency"}
    assert c.verdict(5) == claims.SUPPORTED
    assert any("no experiment 'table2_cbam'" in n for n in c.notes)
    assert c.verdict(1) == claims.INCONCLUSIVE and c.verdict(6) == claims.INCONCLUSIVE


def test_report_gets_a_claims_section(store, tmp_path):
    from glattn.report.report import make_report

    rep = make_report(
        "c1",
        store.uri,
        out_dir=tmp_path,
        claims=True,
        make_figures=False,
        gradcam=False,
        log_artifacts=False,
    )
    assert rep.claims.verdict(1) == claims.SUPPORTED
    assert "## Claims: c1" in (tmp_path / "report.md").read_text()
    assert "Claims: c1" in (tmp_path / "report.tex").read_text()
    assert (tmp_path / "claims.csv").is_file()
    assert len(rep.files) == len(set(rep.files))  # runs_used.csv once: the report's own
    assert (tmp_path / "runs_used.csv") in rep.files


def test_a_users_two_claims_mark_their_deciding_rows_and_never_the_conjunctions():
    """Whatever the conjunction's number (here 3: a user's file declares claims 1 and 2), its
    row decides nothing; each declared claim's pooled row is marked deciding."""
    from glattn.report.claims import Claims, conjunction_row
    from glattn.report.claims.rows import Criterion, conjunction, new_row
    from glattn.report.claims_report import claim_tables

    mine = {n: Criterion("", n, f"claim {n}", 1.0, ">", "pp", 7, build=print) for n in (1, 2)}
    criteria = {**mine, 3: conjunction([1, 2])}
    rows = [new_row(mine[n], "all", "b vs a", primary=True, pooled=True) for n in (1, 2)]
    rows.append(new_row(mine[1], "ham10000", "b vs a", primary=True))  # not pooled
    rows.append(conjunction_row(rows, criteria[3], [1, 2]))
    claims = Claims(rows, {1: "mine", 2: "mine"}, criteria, "balanced_acc", 100, 0)
    strata = {t.key: [r[0].text for r in t.rows] for t in claim_tables(claims)[1:]}
    assert strata == {
        "claims_criterion1": ["all (deciding)", "ham10000"],
        "claims_criterion2": ["all (deciding)"],
        "claims_criterion3": ["all"],
    }
