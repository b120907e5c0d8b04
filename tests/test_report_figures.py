"""Report figures from real artifacts: confusion matrix rebuilt from logged probabilities,
and the Grad-CAM fusion grid from real (untrained, tiny) model checkpoints."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from sklearn.metrics import confusion_matrix
from test_report_helpers import CLASSES, Store

from glattn.metrics import confusion_figure
from glattn.report import figures, gradcam_grid, predictions, report, runs


def cfg_for(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("config", overrides=list(overrides))


@pytest.fixture(scope="module")
def s(tmp_path_factory):
    """One tracking store for the module (creating a sqlite store costs seconds)."""
    return Store(tmp_path_factory.mktemp("mlflow"))


def test_confusion_rebuilt_from_probabilities_and_split(s, tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 7, 40)
    probs = rng.random((40, 7))
    ids = [f"ISIC_{i:07d}" for i in range(40)]
    split = pd.DataFrame(
        {
            "image_id": ids + ["ISIC_9999999"],
            "lesion_id": "l",
            "label": [CLASSES[t] for t in truth] + ["nv"],
            "split": ["test"] * 40 + ["train"],
        }
    )
    pfile = tmp_path / "test_probabilities.csv"
    frame = pd.DataFrame(probs, columns=[c.upper() for c in CLASSES])
    frame.insert(0, "image", ids)
    frame.to_csv(pfile, index=False)
    split.to_csv(tmp_path / "split.csv", index=False)
    rids = []
    for seed in range(2):
        rid = s.job("cm", seed, {"test/balanced_acc": 0.5})
        s.client.log_artifact(rid, str(pfile))
        s.client.log_artifact(rid, str(tmp_path / "split.csv"))
        rids.append(rid)
    files = predictions.RunFiles(s.uri, tmp_path / "dl")
    m, names, n = predictions.confusion_sum(files, rids)
    want = confusion_matrix(truth, probs.argmax(1), labels=range(7))
    assert names == list(CLASSES) and n == 2
    np.testing.assert_array_equal(m, 2 * want)
    paths = figures.save(confusion_figure(m, names, "t", percent=True), tmp_path / "fig", "cm")
    assert all(p.stat().st_size > 1000 for p in paths)
    notes = []  # the report's figure of the best configuration: the same sum
    made = report.confusion_figures(
        files, runs.load_runs(s.uri, "cm"), "balanced_acc", tmp_path, notes
    )
    assert [p.name for p in made] == ["confusion_ham10000.png", "confusion_ham10000.pdf"]
    assert notes == []
    s.job("cm_bare", 0, {"test/balanced_acc": 0.5})  # no per-image CSVs: a note, no figure
    bare = runs.load_runs(s.uri, "cm_bare")
    assert report.confusion_figures(files, bare, "balanced_acc", tmp_path, notes) == []
    assert "logged no test predictions (test_probabilities.csv and split.csv)" in notes[0]


def test_gradcam_grid_compares_fusions_on_the_same_images(s, tmp_path):
    from glattn import build_model
    from glattn.config import config_fingerprint

    out = tmp_path / "outputs"
    for fusion in ("original", "cross_attn", "channel_attn", "weighted_add"):
        size = 64 if fusion == "weighted_add" else 32  # another size: its row is left out
        cfg = cfg_for(
            "debug=smoke",
            f"paths.output_dir={out}",
            f"fusion={fusion}",
            f"dataset.image_size={size}",
        )
        fp = config_fingerprint(cfg)
        if fusion != "channel_attn":  # this one has no checkpoint: its row is left out
            torch.manual_seed(0)
            ckpt = {
                "model": build_model(cfg).state_dict(),
                "config": OmegaConf.to_container(cfg, resolve=True),
            }
            (out / "checkpoints" / fp).mkdir(parents=True)
            torch.save(ckpt, out / "checkpoints" / fp / "best.pt")
        s.job(
            "g",
            0,
            {"test/balanced_acc": 0.5},
            fusion=fusion,
            dataset="synthetic",
            fingerprint=fp,
            extra_params={"paths.output_dir": str(out)},
        )
    notes = []
    frame = runs.load_runs(s.uri, "g")
    paths = gradcam_grid.fusion_grid(s.uri, frame, "balanced_acc", tmp_path / "fig", notes)
    names = [p.name for p in paths]
    assert names == ["gradcam_fusion.png", "gradcam_fusion.pdf"], "\n".join(notes)
    assert all(p.stat().st_size > 1000 for p in paths)
    assert any("channel_attn" in n and "no best.pt" in n for n in notes), "\n".join(notes)
    assert "fusion ['weighted_add'] trained at another image size than 32" in "\n".join(notes)


def test_gradcam_grid_skips_with_a_note_without_checkpoints(s, tmp_path):
    for fusion in ("original", "cross_attn"):
        s.job("g0", 0, {"test/balanced_acc": 0.5}, fusion=fusion)
    notes = []
    assert (
        gradcam_grid.fusion_grid(
            s.uri, runs.load_runs(s.uri, "g0"), "balanced_acc", tmp_path, notes
        )
        == []
    )
    assert any("no checkpoint of any fusion" in n for n in notes)


@pytest.mark.parametrize("hist,want", [([0.1, 0.2], 2.0), ([], None)])
def test_mean_std_curve(hist, want):
    curve = figures.mean_std_curve([dict(enumerate(hist, 1)), dict(enumerate(hist[::-1], 1))])
    if want is None:
        assert curve.empty
    else:
        assert curve.loc[1, "mean"] == pytest.approx(0.15)
        assert curve.loc[2, "std"] == pytest.approx(np.std([0.2, 0.1], ddof=1))
        assert curve["n"].tolist() == [2, 2]
