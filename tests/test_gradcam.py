"""Grad-CAM on a hand-made model: the map lights up where the class evidence is."""

import torch
from torch import nn

from glattn.gradcam import grad_cam, gradcam_grid, pick_per_class


class Spot(nn.Module):
    """conv (identity on channel sums) -> GAP -> linear: class 0 grows with brightness."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0] = 1.0  # channel 0: brightness
        self.head = nn.Linear(2, 3)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]))
            self.head.bias.zero_()

    @property
    def gradcam_layer(self):
        return self.conv

    def forward(self, x):
        return self.head(self.conv(x).relu().mean((2, 3)))


def test_cam_peaks_on_the_evidence_and_is_normalised():
    x = torch.zeros(2, 3, 16, 16)
    x[0, :, 2:6, 2:6] = 1.0  # bright spot top-left
    x[1, :, 10:14, 9:13] = 1.0  # bottom-right
    cams, pred = grad_cam(Spot(), x)
    assert cams.shape == (2, 16, 16) and pred.tolist() == [0, 0]
    assert cams.min() >= 0 and torch.allclose(cams.flatten(1).max(1).values, torch.ones(2))
    assert cams[0, 2:6, 2:6].mean() > 0.9 and cams[0, 10:, 10:].max() < 0.1
    assert cams[1, 10:14, 9:13].mean() > 0.9 and cams[1, :6, :6].max() < 0.1
    # explaining class 1 (evidence against): the ReLU leaves nothing
    cams_neg, _ = grad_cam(Spot(), x, targets=[1, 1])
    assert cams_neg.max() == 0


def test_pick_per_class_and_grid(tmp_path):
    assert pick_per_class([2, 0, 2, 1, 0, 2], 2) == [1, 4, 3, 0, 2]
    path = gradcam_grid(
        Spot(), torch.rand(3, 3, 16, 16), [0, 1, None], ("a", "b", "c"), tmp_path / "g.png"
    )
    assert path.stat().st_size > 1000


def test_grid_passes_do_not_autotune_and_restore_the_setting(tmp_path, monkeypatch):
    """cudnn.benchmark autotunes every conv for each new shape: the grid's one-off passes run
    without it (a 17 s grid on an H200), and the training setting comes back."""
    import glattn.gradcam as G

    seen = []
    real = G.grad_cam

    def spy(*args, **kw):
        seen.append(torch.backends.cudnn.benchmark)
        return real(*args, **kw)

    monkeypatch.setattr(G, "grad_cam", spy)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    gradcam_grid(Spot(), torch.rand(2, 3, 16, 16), [0, 1], ("a", "b", "c"), tmp_path / "g.png")
    assert seen == [False] and torch.backends.cudnn.benchmark is True


def test_several_models_share_one_header_row_and_get_a_labelled_row_each(tmp_path, monkeypatch):
    """model_cams + overlay_grid: the images once, then one row of overlays per model,
    labelled by its name; past ``cols`` images the whole block wraps; every path is written."""
    from matplotlib.figure import Figure

    import glattn.gradcam as G

    seen, real = {}, Figure.savefig

    def spy(fig, path, **kw):
        seen["grid"] = fig.axes[0].get_gridspec().get_geometry()
        seen["labels"] = [ax.get_ylabel() for ax in fig.axes if ax.axison]
        seen["titles"] = [ax.get_title() for ax in fig.axes if ax.axison]
        return real(fig, path, **kw)

    monkeypatch.setattr(Figure, "savefig", spy)
    images = torch.rand(3, 3, 16, 16)
    rows, where = G.model_cams([("m1", Spot()), ("m2", Spot())], images)
    assert [r[0] for r in rows] == ["m1", "m2"] and where == "gradcam_layer"
    paths = [tmp_path / "g.png", tmp_path / "g.pdf"]
    assert G.overlay_grid(images, ["x", "y", "z"], rows, "abc", paths, "t", cols=2) == paths
    assert all(p.stat().st_size > 1000 for p in paths)
    assert seen["grid"] == (6, 2)  # two blocks of (header + 2 models) rows, 2 columns
    assert seen["labels"] == ["image", "", "m1", "", "m2", "", "image", "m1", "m2"]
    assert seen["titles"][:2] + seen["titles"][6:7] == ["x", "y", "z"]
    assert seen["titles"][2:6] + seen["titles"][7:] == ["pred a"] * 6  # brightness: class 0
