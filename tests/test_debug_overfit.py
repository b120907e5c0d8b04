"""debug=overfit (conf/debug/overfit.yaml): a few batches, many epochs, and a model that can
learn fits them (train accuracy approaches 100%)."""

import pandas as pd
import pytest
from conftest import compose_cfg


def test_overfit_preset_is_a_few_batches_for_many_epochs(tmp_path):
    cfg = compose_cfg("debug=overfit", f"paths.output_dir={tmp_path}", "fusion=cross_attn")
    assert cfg.fusion._target_.endswith("CrossAttnFusion")  # the model is the user's
    train_images = cfg.dataset.num_images * (1 - cfg.dataset.val_fraction)
    assert train_images / cfg.trainer.batch_size <= 5  # a few batches
    assert cfg.trainer.max_epochs >= 50 and cfg.trainer.early_stopping_patience is None
    assert cfg.scheduler._target_ != "torch.optim.lr_scheduler.ReduceLROnPlateau"
    assert cfg.dataset.sampler == "none" and cfg.dataset.test_fraction == 0
    assert cfg.dataset.augment == "none"  # fixed images: with augmentation 60 epochs give ~0.8


def test_overfit_preset_composes_with_a_real_data_set(tmp_path):
    """Its synthetic-only keys live in conf/debug_dataset/overfit_synthetic.yaml."""
    cfg = compose_cfg("debug=overfit", "dataset=ham10000", f"dataset.root={tmp_path}")
    assert cfg.dataset.name == "ham10000" and "num_images" not in cfg.dataset
    assert cfg.trainer.max_epochs >= 50 and cfg.dataset.image_size == 32


@pytest.mark.slow
def test_overfit_train_accuracy_approaches_100_percent(tmp_path, one_thread):
    from glattn.job import main

    cfg = compose_cfg(
        "debug=overfit",
        f"paths.output_dir={tmp_path}",
        "tracking=none",
        "trainer.device=cpu",
        "trainer.max_epochs=20",  # measured: 0.98 after 10 epochs, 1.0 after 20 (resnet18)
    )
    main(cfg)
    (log,) = tmp_path.rglob("training_log.csv")
    acc = pd.read_csv(log)["train/acc"]
    assert len(acc) == 20
    assert acc.iloc[0] < 0.6  # it starts near chance ...
    assert acc.iloc[-5:].max() >= 0.95  # ... and fits its few batches
