"""Device augmentation (glattn.data.augment): the same distribution as the per-image
torchvision pipeline (glattn.data.transforms.train_transform), output shape and dtype,
determinism for a seed, exact resume through a checkpoint, a PNG preview grid."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import stats
from torchvision.transforms import v2

from glattn.data import augment as A
from glattn.data.transforms import IMAGENET_MEAN, IMAGENET_STD, resize_side, train_transform

pytestmark = pytest.mark.usefixtures("one_thread")

TV_COLOUR = (
    v2.functional.adjust_brightness,
    v2.functional.adjust_contrast,
    v2.functional.adjust_saturation,
    v2.functional.adjust_hue,
)


@pytest.mark.parametrize("k", range(4), ids=[op.__name__ for op in A.COLOUR_OPS])
def test_colour_ops_match_torchvision_per_sample(k):
    g = torch.Generator().manual_seed(k)
    x = torch.rand(5, 3, 12, 12, generator=g)
    x[0] = 0.5  # grey: no hue, zero chroma
    x[1, 1] = x[1, 0]  # ties between channels take torchvision's branch order
    factors = (
        torch.tensor([0.0, 0.02, -0.02, 0.3, -0.5])
        if k == 3
        else torch.tensor([0.8, 1.2, 1.0, 0.9, 1.1])
    )
    out = A.COLOUR_OPS[k](x.clone(), factors)
    expected = torch.stack([TV_COLOUR[k](x[b], float(factors[b])) for b in range(5)])
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=0)


def test_affine_grid_equals_torch():
    theta = torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(0))
    ref = F.affine_grid(theta, (3, 1, 9, 9), align_corners=False)
    torch.testing.assert_close(A.affine_grid(theta, 9), ref, atol=1e-6, rtol=0)


def _params(n, side, angle=0.0, crop=None, flips=(1.0, 1.0)):
    crop = crop or (0, 0, side, side)
    f64 = dict(dtype=torch.float64)
    return dict(
        angle=torch.full((n,), angle, **f64),
        crop=torch.tensor([crop] * n, **f64),
        flips=torch.tensor([flips] * n, **f64),
        colour=torch.tensor([[1.0, 1.0, 1.0, 0.0]] * n),
        order=torch.arange(4),
    )


@pytest.mark.parametrize(
    "angle, crop, flips, expected",
    [
        (0.0, None, (1.0, 1.0), lambda x: x),
        (0.0, None, (-1.0, 1.0), lambda x: x.flip(-1)),
        (0.0, None, (1.0, -1.0), lambda x: x.flip(-2)),
        (90.0, None, (1.0, 1.0), lambda x: torch.rot90(x, 1, (-2, -1))),  # counter-clockwise
        (-90.0, None, (1.0, 1.0), lambda x: torch.rot90(x, -1, (-2, -1))),
        (0.0, (2, 3, 8, 8), (1.0, 1.0), lambda x: x[..., 2:10, 3:11]),
    ],
    ids=["identity", "hflip", "vflip", "rot+90", "rot-90", "crop"],
)
def test_warp_on_marked_input_matches_the_exact_operation(angle, crop, flips, expected):
    side = 16
    img = torch.randint(0, 256, (2, 3, side, side), dtype=torch.uint8)
    size = 8 if crop else side
    aug = A.DeviceAugment(size)
    out = aug.apply(img, _params(2, side, angle, crop, flips)) * 255
    torch.testing.assert_close(out, expected(img).float(), atol=1e-3, rtol=0)
    if angle == 90.0:  # and as torchvision rotates
        torch.testing.assert_close(
            out[0], v2.functional.rotate(img[0], 90).float(), atol=1e-3, rtol=0
        )


def test_warp_moves_a_marked_point_where_the_parameters_say():
    """One bright dot; random rotation + crop + flips; it lands where the forward map of
    the composed matrix sends it."""
    side, size = 64, 48
    aug = A.DeviceAugment(size, seed=3)
    img = torch.zeros(1, 3, side, side, dtype=torch.uint8)
    py, px = 30, 36  # near the centre, so it survives every crop
    img[0, :, py - 1 : py + 2, px - 1 : px + 2] = 255
    hits = 0
    for _ in range(20):
        p = aug.sample(1, side)
        theta = aug.matrices(p, side)[0]  # output -> input, normalised
        out = aug.apply(img, p)[0, 0]
        if out.max() < 0.5:
            continue  # cropped away
        hits += 1
        ys, xs = torch.nonzero(out > 0.5, as_tuple=True)
        found = torch.tensor([xs.double().mean(), ys.double().mean()])
        target = torch.tensor(
            [(2 * px + 1) / side - 1, (2 * py + 1) / side - 1], dtype=torch.float64
        )
        uv = torch.linalg.solve(theta[:, :2], target - theta[:, 2])  # output, normalised
        predicted = (uv + 1) * size / 2 - 0.5
        assert torch.allclose(found, predicted, atol=1.0), (found, predicted)
    assert hits >= 5


N = 4000


@pytest.fixture(scope="module")
def drawn():
    aug = A.DeviceAugment(224, seed=0)
    return aug.sample(N, 256)


def test_rotation_angles_uniform_over_the_circle(drawn):
    angle = drawn["angle"].numpy()
    assert angle.min() >= -180 and angle.max() <= 180
    assert stats.kstest(angle, stats.uniform(-180, 360).cdf).pvalue > 1e-3


def test_crops_have_torchvision_random_resized_crop_distribution(drawn):
    side = 256
    i, j, h, w = drawn["crop"].numpy().T
    area, aspect = h * w / side**2, w / h
    assert (i >= 0).all() and (j >= 0).all() and (i + h <= side).all() and (j + w <= side).all()
    assert area.min() > 0.35 - 0.01 and area.max() <= 1.0  # scale (0.35, 1), pixel rounding
    assert aspect.min() > 0.75 - 0.01 and aspect.max() < 4 / 3 + 0.01
    torch.manual_seed(0)
    tv = v2.RandomResizedCrop(224, scale=(0.35, 1.0), antialias=True)
    ref = [tv.make_params([torch.zeros(3, side, side)]) for _ in range(N)]
    ref_area = np.array([r["height"] * r["width"] for r in ref]) / side**2
    ref_aspect = np.array([r["width"] / r["height"] for r in ref])
    ref_top = np.array([r["top"] / (side - r["height"] + 1) for r in ref])
    assert stats.ks_2samp(area, ref_area).pvalue > 1e-3
    assert stats.ks_2samp(aspect, ref_aspect).pvalue > 1e-3
    assert stats.ks_2samp(i / (side - h + 1), ref_top).pvalue > 1e-3


def test_flip_rates_are_one_half_and_independent(drawn):
    flipped = (drawn["flips"].numpy() < 0).astype(int)
    for axis in range(2):
        assert stats.binomtest(flipped[:, axis].sum(), N, 0.5).pvalue > 1e-3
    both = (flipped[:, 0] & flipped[:, 1]).sum()
    assert stats.binomtest(both, N, 0.25).pvalue > 1e-3


def test_colour_factors_uniform_within_their_ranges(drawn):
    ranges = [(0.8, 1.2), (0.8, 1.2), (0.8, 1.2), (-0.02, 0.02)]
    for k, (low, high) in enumerate(ranges):
        f = drawn["colour"][:, k].numpy()
        assert f.min() >= low and f.max() <= high
        assert stats.kstest(f, stats.uniform(low, high - low).cdf).pvalue > 1e-3


def test_colour_order_is_a_uniform_random_permutation():
    aug = A.DeviceAugment(32, seed=1)
    orders = [tuple(aug.sample(1, 37)["order"].tolist()) for _ in range(2400)]
    perms = list(itertools.permutations(range(4)))
    assert set(orders) == set(perms)
    counts = [orders.count(p) for p in perms]
    assert stats.chisquare(counts).pvalue > 1e-3


def test_geometry_matches_the_per_image_pipeline_end_to_end():
    """On a white image without colour jitter, the fraction of black pixels (outside the
    rotated image, RandomRotation's fill) has the same distribution, old vs new."""
    size = 32
    side = resize_side(size)
    white = torch.full((1, 3, side, side), 255, dtype=torch.uint8)
    aug = A.DeviceAugment(size, seed=0, brightness=0, contrast=0, saturation=0, hue=0)
    new = [
        (aug.apply(white, aug.sample(1, side))[0, 0] < 0.5).float().mean().item()
        for _ in range(400)
    ]
    old_tf = v2.Compose(train_transform(size).transforms[:-1])  # no ColorJitter
    torch.manual_seed(0)
    old = [(old_tf(white[0])[0] < 128).float().mean().item() for _ in range(400)]
    assert 0.02 < np.mean(new) < 0.5  # corners do show
    assert stats.ks_2samp(new, old).pvalue > 1e-3


def test_output_shape_dtype_normalisation_and_seeded_determinism():
    size = 24
    side = resize_side(size)
    images = torch.randint(0, 256, (6, side, side, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
    out = A.DeviceAugment(size, seed=5)(images)  # channels-last view, as the loader yields
    assert out.shape == (6, 3, size, size) and out.dtype == torch.float32
    lo = [(0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    hi = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    for c in range(3):
        assert lo[c] - 1e-5 <= out[:, c].min() and out[:, c].max() <= hi[c] + 1e-5
    assert torch.equal(out, A.DeviceAugment(size, seed=5)(images.contiguous()))
    assert not torch.equal(out, A.DeviceAugment(size, seed=6)(images))
    with pytest.raises(ValueError, match="uint8"):
        A.DeviceAugment(size)(images.float())


def test_state_dict_resumes_the_stream_exactly_through_a_weights_only_file(tmp_path):
    side = resize_side(16)
    images = torch.randint(0, 256, (4, 3, side, side), dtype=torch.uint8)
    run = A.DeviceAugment(16, seed=2)
    run(images)
    torch.save({"augment": run.state_dict()}, tmp_path / "c.pt")
    expected = [run(images) for _ in range(2)]
    resumed = A.DeviceAugment(16, seed=99)
    resumed.load_state_dict(torch.load(tmp_path / "c.pt", weights_only=True)["augment"])
    assert all(torch.equal(a, resumed(images)) for a in expected)
    with pytest.raises(ValueError, match="image_size"):
        A.DeviceAugment(32).load_state_dict(run.state_dict())


def test_own_stream_differs_from_the_run_seed_stream():
    assert A.stream_seed(0) != 0 and A.stream_seed(0) != A.stream_seed(1)
    a = A.DeviceAugment(16, seed=0)
    plain = torch.Generator().manual_seed(0)
    assert not torch.equal(torch.rand(8, generator=a.generator), torch.rand(8, generator=plain))


@pytest.mark.parametrize("mode", ["device", "cpu"])
def test_loaders_and_preview_grid(tmp_path, mode):
    from fake_datasets import data_cfg, make_ham10000

    from glattn.data import build_data

    make_ham10000(tmp_path / "data")
    cfg = data_cfg(tmp_path, image_size=16, augment=mode)
    data = build_data(cfg)
    side = resize_side(16)
    untaken, _ = next(iter(data.loaders(8, 0)["train"]))  # no augmenter taken: per image
    assert untaken.shape == (8, 3, 16, 16)
    augmenter = data.augmenter()  # the training job takes it before its loaders
    batch, labels = next(iter(data.loaders(8, 0)["train"]))
    assert batch.dtype == torch.uint8 and labels.dtype == torch.int64 and len(labels) == 8
    if mode == "device":  # raw cache rows, one slice per batch; augmented on the device
        assert batch.shape == (8, 3, side, side)
        assert augmenter(batch).shape == (8, 3, 16, 16)
    else:
        assert batch.shape == (8, 3, 16, 16) and augmenter is None
    val, _ = next(iter(data.loaders(8, 0)["val"]))
    assert val.shape[1:] == (3, 16, 16)
    state = torch.random.get_rng_state()
    path = data.save_preview(tmp_path / "augment_preview.png")
    assert torch.equal(state, torch.random.get_rng_state())  # the run's RNG is untouched
    with Image.open(path) as im:
        tile = 96  # 16 px enlarged 6x for a person to look at
        assert im.format == "PNG" and im.size == (6 * tile + 7 * 2, 4 * tile + 5 * 2)
        grid = np.asarray(im)
    first, second = grid[2:98, 2:98], grid[2:98, 100:196]  # evaluation view, one draw
    assert not np.array_equal(first, second)
    assert math.isfinite(grid.mean())


def test_augment_none_trains_on_the_evaluation_view(tmp_path):
    """dataset.augment=none (debug=overfit): every epoch sees the same fixed images."""
    from fake_datasets import data_cfg, make_ham10000

    from glattn.data import build_data

    make_ham10000(tmp_path / "data")
    data = build_data(data_cfg(tmp_path, image_size=16, augment="none", sampler="none"))
    assert data.augmenter() is None
    first = data.train[0][0]
    assert torch.equal(first, data.train[0][0])  # no random transform
    raw = data.train.slices()[0][0]  # the cache row, (3, R, R) uint8
    assert torch.equal(first, data.val.transform(raw))  # the evaluation view
