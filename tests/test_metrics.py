"""Metrics: balanced accuracy (ISIC 2018), macro-F1, robust OvR AUC, confusion matrix."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from glattn.data import CLASS_NAMES
from glattn.metrics import compute_metrics, per_class_report, predict

CLASSES = CLASS_NAMES


def _random(n=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    logits = rng.normal(size=(n, 7))
    logits[np.arange(n), labels] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs


def test_scalars_agree_with_sklearn():
    labels, probs = _random()
    m = compute_metrics(labels, probs, CLASSES)
    pred = probs.argmax(1)
    assert m["acc"] == pytest.approx((pred == labels).mean())
    assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(labels, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, pred, average="macro"))
    assert m["auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    assert m["confusion"].sum() == len(labels)
    np.testing.assert_array_equal(
        np.diag(m["confusion"]), [((pred == c) & (labels == c)).sum() for c in range(7)]
    )


def test_majority_class_model_is_chance_in_balanced_accuracy():
    labels = np.array([1] * 67 + [0] * 11 + [2] * 5 + [3] * 3 + [4] * 11 + [5] + [6] * 2)
    probs = np.full((len(labels), 7), 0.05)
    probs[:, 1] = 0.7  # always "nv"
    m = compute_metrics(labels, probs, CLASSES)
    assert m["acc"] == pytest.approx(0.67)
    assert m["balanced_acc"] == pytest.approx(1 / 7)
    assert m["recall_nv"] == 1.0 and m["recall_mel"] == 0.0


def test_absent_class_is_skipped_in_auc_and_balanced_accuracy():
    labels, probs = _random(seed=1)
    keep = labels != 5  # no "df" in this split
    m = compute_metrics(labels[keep], probs[keep], CLASSES)
    assert np.isfinite(m["auc"]) and np.isnan(m["recall_df"])
    pred = probs[keep].argmax(1)
    present = sorted(set(labels[keep]))
    kept = labels[keep]
    recalls = [((pred == c) & (kept == c)).sum() / (kept == c).sum() for c in present]
    assert m["balanced_acc"] == pytest.approx(np.mean(recalls))
    single = compute_metrics(np.zeros(4, int), probs[:4], CLASSES)
    assert np.isnan(single["auc"])  # one class only: AUC undefined, no exception


def test_tied_maxima_count_as_wrong():
    probs = np.array([[0.5, 0.5, 0, 0, 0, 0, 0], [0.9, 0.1, 0, 0, 0, 0, 0]])
    assert predict(probs).tolist() == [-1, 0]
    m = compute_metrics([0, 0], probs, CLASSES)
    assert m["acc"] == 0.5 and m["recall_mel"] == 0.5


def test_per_class_report_and_shape_check():
    labels, probs = _random(50, seed=2)
    m = compute_metrics(labels, probs, CLASSES)
    report = per_class_report(m, CLASSES)
    assert list(report["class"]) == list(CLASSES)
    assert report["support"].sum() == 50
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(labels, probs[:, :6], CLASSES)


def test_sample_weights_of_zero_are_the_same_as_leaving_rows_out():
    labels, probs = _random(120, seed=3)
    weight = np.ones(len(labels))
    weight[::7] = 0
    keep = weight > 0
    weighted = compute_metrics(labels, probs, CLASSES, weight)
    dropped = compute_metrics(labels[keep], probs[keep], CLASSES)
    for key in ("acc", "balanced_acc", "macro_f1", "auc", "recall_mel", "precision_nv"):
        assert weighted[key] == pytest.approx(dropped[key], abs=1e-12), key
    assert np.array_equal(weighted["confusion"], dropped["confusion"])
    assert weighted["confusion"].dtype.kind == "i"
    with pytest.raises(ValueError, match="sample_weight"):
        compute_metrics(labels, probs, CLASSES, np.zeros(len(labels)))


# --------------------------------------------------- ISIC 2018 official test set, scorer's rule
def _scorer_rule(truth_csv, prediction_csv) -> dict:
    """isic-challenge-scoring 5.6.0's classification score, re-implemented from its source
    (load_csv.parse_truth_csv / parse_csv / validate_rows / sort_rows and
    metrics.balanced_multiclass_accuracy / auc): the reference our metrics must equal."""
    from sklearn.metrics import confusion_matrix, roc_auc_score

    truth = pd.read_csv(truth_csv, header=0).set_index("image")
    truth["score_weight"] = 1.0
    if "ISIC_0035068" in truth.index:  # load_csv.py: "TODO: Move this to ground truth"
        truth.loc["ISIC_0035068", "score_weight"] = 0.0
    weights = truth.pop("score_weight")
    pred = pd.read_csv(prediction_csv, header=0, index_col=False).set_index("image")
    pred = pred.reindex(truth.columns, axis="columns")
    missing = truth.index.difference(pred.index)
    extra = pred.index.difference(truth.index)
    if len(missing) or len(extra) or pred.isnull().any().any():
        raise ValueError(f"scorer rejects the file: missing {list(missing)}, extra {list(extra)}")
    for frame in (truth, pred, weights):
        frame.sort_index(axis="rows", inplace=True)

    def labels(p):
        out = p.idxmax(axis="columns")
        out[p.eq(p.max(axis="columns"), axis="rows").sum(axis="columns").gt(1)] = "undecided"
        return out

    cats = truth.columns
    cm = confusion_matrix(labels(truth), labels(pred), labels=cats, sample_weight=weights)
    freq = weights.groupby(labels(truth), sort=False).sum().reindex(cats, fill_value=0)
    balanced = pd.Series(cm.diagonal(), index=cats).divide(freq).mean()
    nz = weights.ne(0.0)
    aucs = [
        roc_auc_score(
            truth[c][nz],
            pred[c][nz],
            sample_weight=None if weights[nz].eq(1).all() else weights[nz],
        )
        for c in cats
    ]
    return {"balanced_acc": float(balanced), "auc": float(np.mean(aucs))}


def _official_run(tmp_path, drop_test_image):
    """build_data on the official test set, predictions for its images, official_result."""
    from fake_datasets import data_cfg, make_isic2018
    from omegaconf import OmegaConf

    from glattn.data import build_data
    from glattn.data.isic2018 import official_result

    make_isic2018(tmp_path / "data", drop_test_image=drop_test_image, lesions_per_class=4)
    # The real Test ground truth is sorted by image id (ISIC_0034524 ... ISIC_0036064, with
    # ISIC_0035068 among them); the fixture appends ISIC_0035068. Sort it like the real file:
    # the scorer sorts the predictions but takes the weights in file order.
    gt = tmp_path / "data" / "ISIC2018_Task3_Test_GroundTruth.csv"
    pd.read_csv(gt).sort_values("image").to_csv(gt, index=False)
    cfg = data_cfg(tmp_path, name="isic2018", eval_split="official_test")
    bundle = build_data(cfg, tmp_path / "run")
    ids = list(bundle.test.image_ids)
    labels = np.asarray(bundle.test.labels)
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(7), len(ids))
    probs[np.arange(len(ids)), labels] += 0.3 * (rng.random(len(ids)) < 0.6)
    probs /= probs.sum(1, keepdims=True)
    nv = CLASSES.index("nv")
    for i, image in enumerate(ids):  # nv right everywhere except ISIC_0035068 (an nv image)
        probs[i] = np.full(7, 0.1 / 6)
        probs[i, nv if image != "ISIC_0035068" else 0] = 0.9
        if labels[i] != nv and image != "ISIC_0035068":
            probs[i] = rng.dirichlet(np.ones(7))
    result = compute_metrics(labels, probs, CLASSES)
    result.update(probs=probs, labels=labels, loss=1.0)
    official, frame = official_result(OmegaConf.to_container(cfg.dataset), result, ids, CLASSES)
    return bundle, result, official, frame


@pytest.mark.parametrize("drop_test_image", [True, False], ids=["image_missing", "present"])
def test_official_test_metrics_equal_the_scorers_rule(tmp_path, drop_test_image):
    bundle, plain, official, frame = _official_run(tmp_path, drop_test_image)
    truth_csv = tmp_path / "data" / "ISIC2018_Task3_Test_GroundTruth.csv"
    truth = pd.read_csv(truth_csv)
    # one row per ground-truth row, in ground-truth order, in the submission format
    assert frame["image"].tolist() == truth["image"].tolist()
    assert list(frame.columns) == ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    missing = frame[frame["image"] == "ISIC_0035068"].iloc[0, 1:].to_numpy(float)
    if drop_test_image:
        assert np.allclose(missing, 1 / 7)  # uniform row for the image absent on disk
        skipped = pd.read_csv(tmp_path / "run" / "skipped_images.csv")
        assert skipped["image_id"].tolist() == ["ISIC_0035068"]
    csv = tmp_path / "test_probabilities.csv"
    frame.to_csv(csv, index=False, float_format="%.6f")
    reference = _scorer_rule(truth_csv, csv)
    for key, want in reference.items():
        assert official[key] == pytest.approx(want, abs=1e-6), key
    # ISIC_0035068 has weight 0: with the image present, counting it changes the score
    if not drop_test_image:
        assert plain["recall_nv"] == pytest.approx(2 / 3) and official["recall_nv"] == 1.0
        assert plain["balanced_acc"] != pytest.approx(official["balanced_acc"])
    assert official["confusion"].sum() == len(truth) - 1
    assert official["loss"] == plain["loss"] and official["probs"] is plain["probs"]


def test_official_result_leaves_other_splits_alone(tmp_path):
    from glattn.data.isic2018 import official_result

    labels, probs = _random(30)
    result = {**compute_metrics(labels, probs, CLASSES), "probs": probs}
    ids = [f"ISIC_{i:07d}" for i in range(30)]
    for ds in ({"name": "isic2018", "eval_split": "holdout"}, {"name": "ham10000"}):
        same, frame = official_result(ds, result, ids, CLASSES)
        assert same is result and frame is None


def test_official_test_metrics_equal_the_official_scorer(tmp_path, monkeypatch):
    """The real isic-challenge-scoring, where it is installed (not a dependency: 5.6.0 calls
    DataFrame.applymap, which pandas 3 removed; the shim below maps it to DataFrame.map)."""
    scoring = pytest.importorskip("isic_challenge_scoring.classification")
    if not hasattr(pd.DataFrame, "applymap"):
        monkeypatch.setattr(pd.DataFrame, "applymap", pd.DataFrame.map, raising=False)
    truth_csv = tmp_path / "data" / "ISIC2018_Task3_Test_GroundTruth.csv"
    for drop in (True, False):
        sub = tmp_path / str(drop)
        _, _, official, frame = _official_run(sub, drop)
        csv = sub / "test_probabilities.csv"
        frame.to_csv(csv, index=False, float_format="%.6f")
        truth_csv = sub / "data" / "ISIC2018_Task3_Test_GroundTruth.csv"
        for metric, key in (("balanced_accuracy", "balanced_acc"), ("auc", "auc")):
            score = scoring.ClassificationScore.from_file(
                truth_csv, csv, scoring.ClassificationMetric(metric)
            )
            assert official[key] == pytest.approx(score.overall, abs=1e-6), (drop, key)


@pytest.mark.slow
@pytest.mark.parametrize("drop_test_image", [True, False], ids=["image_missing", "present"])
def test_a_run_on_the_official_test_set_scores_as_the_official_scorer(tmp_path, drop_test_image):
    """End to end: a training run whose test split is ISIC 2018's official test set writes
    every ground-truth row and logs the scorer's balanced accuracy and AUC."""
    from conftest import compose_cfg
    from fake_datasets import make_isic2018

    from glattn.job import main

    make_isic2018(tmp_path / "data", drop_test_image=drop_test_image, lesions_per_class=4)
    truth_csv = tmp_path / "data" / "ISIC2018_Task3_Test_GroundTruth.csv"
    pd.read_csv(truth_csv).sort_values("image").to_csv(truth_csv, index=False)  # as the real
    overrides = [
        "debug=smoke",
        "dataset=isic2018",
        f"dataset.root={tmp_path / 'data'}",
        "dataset.eval_split=official_test",
        "dataset.val_fraction=0.25",
        f"paths.output_dir={tmp_path / 'out'}",
        "tracking=none",
        "trainer.gradcam_per_class=0",
    ]
    metrics = main(compose_cfg(*overrides))
    (csv,) = (tmp_path / "out").rglob("test_probabilities.csv")
    frame = pd.read_csv(csv)
    assert frame["image"].tolist() == pd.read_csv(truth_csv)["image"].tolist()
    reference = _scorer_rule(truth_csv, csv)
    assert metrics["test/balanced_acc"] == pytest.approx(reference["balanced_acc"], abs=1e-6)
    assert metrics["test/auc"] == pytest.approx(reference["auc"], abs=1e-5)
    # task=eval of the trained checkpoint on the same set: the same rules
    (ckpt,) = (tmp_path / "out" / "checkpoints").rglob("best.pt")
    evaluated = main(compose_cfg(*overrides, "task=eval", f"ckpt_path={ckpt}"))
    (csv,) = (tmp_path / "out").rglob("eval_probabilities.csv")
    assert pd.read_csv(csv)["image"].tolist() == pd.read_csv(truth_csv)["image"].tolist()
    reference = _scorer_rule(truth_csv, csv)
    assert evaluated["eval/balanced_acc"] == pytest.approx(reference["balanced_acc"], abs=1e-6)
    assert evaluated["eval/auc"] == pytest.approx(reference["auc"], abs=1e-5)
