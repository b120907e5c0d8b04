"""A store with runs logged before and after the class moved from the ``<group>._target_`` /
``_partial_`` params to the ``class.<group>`` tag: the report reads one configuration as
one cell, and the class column is there for both."""

from test_report_helpers import Store

from glattn.report import runs

TARGET = "glattn.models.fusion.GatedFusion"


def test_runs_before_and_after_the_class_tag_share_their_cell(tmp_path):
    s = Store(tmp_path)
    old = {"fusion._target_": TARGET, "fusion._partial_": "True"}
    s.job("exp", 0, {"test/balanced_acc": 0.5}, extra_params=old, fusion="learnable_gate")
    s.job(
        "exp", 1, {"test/balanced_acc": 0.6}, fusion="learnable_gate", **{"class.fusion": TARGET}
    )
    frame = runs.load_runs(s.uri, "exp")
    assert len(frame) == 2 and frame["cell"].nunique() == 1, frame[["cell", "seed"]]
    assert frame["params.fusion._target_"].tolist() == [TARGET, TARGET]
