"""Statistics and paper details: the crossed interval's known answers (independent image
noise per seed; tests/test_bootstrap_known_answer.py shares the test set across seeds),
p = 1 for zero spread, bold best values, captions, integer n, Table 6's latency."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_report_helpers import Store

from glattn import latency
from glattn.report import claims, declared, runs, stats, tables
from glattn.report.table_format import Cell, Table

N_IMAGES, CLASSES = 300, 3
LABELS = np.arange(N_IMAGES) % CLASSES


def outcomes(correct: np.ndarray, key: str = "test") -> stats.Outcomes:
    return stats.Outcomes(LABELS, correct, np.ones(N_IMAGES), key, CLASSES)


def pair(rng, acc_a: float, acc_b: float):
    """Two arms on the same images: b right where a is, plus (or minus) a share of images."""
    u = rng.random(N_IMAGES)
    return outcomes(u < acc_a), outcomes(u < acc_b)


def test_no_effect_with_seed_noise_gets_a_wide_interval():
    # the case: per-seed differences from -25 to +20 points, mean about zero
    rng = np.random.default_rng(0)
    shifts = [-0.25, 0.20, -0.10, 0.15, 0.0]
    pairs = [pair(rng, 0.5, 0.5 + d) for d in shifts]
    iv = stats.crossed_bootstrap(pairs, "acc", 1000, seed=1)
    assert iv.low < 0 < iv.high
    assert iv.high - iv.low > 0.15  # seed-to-seed spread counted
    # one pair: the image-level paired bootstrap, the same draws for both arms
    (a, b), one = pairs[1], stats.crossed_bootstrap(pairs[1:2], "acc", 1000, seed=1)
    assert one.estimate == pytest.approx(stats.score(b, "acc") - stats.score(a, "acc"))
    assert one.low > 0.1  # b is never wrong where a is right: a tight positive interval


def test_identical_arms_still_give_zero_width():
    rng = np.random.default_rng(0)
    same = [(o, o) for o in (outcomes(rng.random(N_IMAGES) < 0.6) for _ in range(4))]
    iv = stats.crossed_bootstrap(same, "balanced_acc", 200, seed=0)
    assert iv.low == iv.high == iv.estimate == 0.0


def test_effect_at_the_threshold_is_supported_in_at_most_5_percent():
    """True effect exactly 2 pp (the threshold), seed noise sd 3 pp: 'supported' <= 5%."""
    crit = claims.Criterion("", 0, "better by 2 points", 2, ">", "pp")
    rng = np.random.default_rng(7)
    supported = 0
    reps = 200
    for rep in range(reps):
        got = []
        for seed in range(5):
            delta = 0.02 + rng.normal(0, 0.03)
            a, b = pair(rng, 0.6, 0.6 + delta)
            got.append((seed, a, b))
        row = claims.Row(0, "all", "b − a", threshold=2, direction=">", unit="pp")
        # Predictions-free path: fill_accuracy needs objects with .images/.outcomes
        claims.rows.fill_accuracy(
            row, crit, [(s, _P(a), _P(b)) for s, a, b in got], "acc", 200, rep
        )
        claims.adjust_and_judge([row])
        supported += row.verdict == claims.SUPPORTED
    assert supported / reps <= 0.05


class _P:
    """The part of predictions.Predictions fill_accuracy uses."""

    def __init__(self, o: stats.Outcomes):
        self.o, self.images = o, np.arange(N_IMAGES).astype(str)

    def outcomes(self, keep=None):
        return self.o


def test_zero_spread_gets_p_one_and_stays_in_holm():
    t = stats.paired_t([0.5, 0.6, 0.7], [0.55, 0.65, 0.75], 0.0, "greater")
    assert t.p_value == 1.0 and "zero spread" in t.reason
    cmp = stats.compare({0: 0.5, 1: 0.6}, {0: 0.6, 1: 0.7})
    assert cmp.p_value == 1.0
    # equal up to float rounding (0.45 - 0.40 != 0.55 - 0.50 in binary): still no spread,
    # not a t statistic divided by a rounding error (p ~ 1e-15)
    assert stats.compare({0: 0.40, 1: 0.50}, {0: 0.45, 1: 0.55}).p_value == 1.0
    adjusted = stats.holm([0.01, 1.0, 0.02])
    assert np.allclose(adjusted, [0.03, 1.0, 0.04])  # three tests in the family, not two


def test_bold_best_and_captions_numbered_once():
    t = Table("t", "Table 3: Fusion", "cap", ["Fusion", "Acc (%)"], best={"Acc (%)": "max"})
    t.add_row([Cell("original"), Cell("70.00 (n=2)", 0.70, n=2)])
    t.add_row([Cell("gate"), Cell("75.00 (n=2)", 0.75, n=2)])
    t.add_row([Cell("cross"), Cell.missing("no runs")])
    assert "| gate | **75.00 (n=2)** |" in t.to_markdown()
    assert "| original | 70.00 (n=2) |" in t.to_markdown()
    tex = t.to_latex()
    assert "\\textbf{75.00 (n=2)}" in tex and "\\caption{Fusion. cap}" in tex
    assert "Table 3" not in tex
    frame = t.to_frame()
    assert str(frame["n"].dtype) == "Int64" and frame["n"].tolist()[:2] == [2, 2]


def test_measure_latency_names_its_setting():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1))
    model.train()
    m = latency.measure_latency(model, 16, "cpu", batch=2, warmup=2, min_run_time_s=0.05)
    assert model.training  # mode restored
    assert m.batch == 2 and m.warmup == 2 and m.repeats >= latency.MIN_BLOCKS
    # ms per forward pass of a tiny model: well above a nanosecond, well below a second
    assert 1e-6 < m.median_ms < 1000 and 0 <= m.iqr_ms < 1000
    assert m.memory_kind == "rss" and m.memory_mb > 10 and m.device.startswith("cpu")
    assert m.device == f"cpu ({torch.get_num_threads()} threads)"
    keys = m.metrics()
    assert {latency.LATENCY_KEY, latency.LATENCY_IQR_KEY, latency.MEM_RSS_KEY} <= set(keys)
    assert keys[latency.INFER_LATENCY_KEY] == keys[latency.LATENCY_KEY] == m.median_ms
    assert keys[latency.LATENCY_IQR_KEY] == m.iqr_ms
    assert latency.MEM_GPU_KEY not in keys
    with pytest.raises(ValueError, match="min_run_time_s=0"):
        latency.measure_latency(model, 16, min_run_time_s=0)


def test_latency_is_the_timers_median_and_iqr_in_ms(monkeypatch):
    """The numbers are torch.utils.benchmark's blocked_autorange, converted to ms, however
    many blocks it took to reach MIN_BLOCKS."""
    from torch.utils.benchmark import Measurement, Timer

    blocks = iter([[0.002, 0.004], [0.003], [0.001, 0.005]])  # seconds per block, 1 pass each
    calls = []

    def fake(self, min_run_time):
        calls.append(min_run_time)
        return Measurement(1, next(blocks), self._task_spec)

    monkeypatch.setattr(Timer, "blocked_autorange", fake)
    model = torch.nn.Conv2d(3, 4, 3)
    m = latency.measure_latency(model, 8, "cpu", min_run_time_s=0.3)
    want = Measurement(1, [0.002, 0.004, 0.003, 0.001, 0.005], None)
    assert calls == [0.3, 0.3, 0.3] and m.repeats == 5  # until MIN_BLOCKS (4) blocks
    assert m.median_ms == pytest.approx(3.0) and m.iqr_ms == pytest.approx(want.iqr * 1000)


def test_table6_flags_a_noisy_latency_and_labels_memory(tmp_path):
    s = Store(tmp_path)
    for seed, (lat_none, lat_cbam) in enumerate([(3.0, 21.0), (3.1, 818.0)]):
        for att, lat in (("none", lat_none), ("cbam", lat_cbam)):
            rid = s.job(
                "t6",
                seed,
                {
                    "model/params_total": 11e6,
                    "model/gflops": 1.8,
                    latency.LATENCY_KEY: lat,
                    latency.LATENCY_IQR_KEY: 0.01 * lat,
                    latency.LATENCY_BATCH_KEY: 1,
                    latency.MEM_RSS_KEY: 900,
                },
                attention=att,
            )
            s.client.set_tag(rid, latency.DEVICE_TAG, "cpu (2 threads)")
    frame = runs.load_runs(s.uri, "t6")
    t6 = declared.load().by_number()[6].build(frame, tables.Context())
    md = t6.to_markdown()
    assert "CPU max RSS (MB)" in t6.columns and "Peak mem (MB)" not in t6.columns
    assert "419.50 ± 563.56 (n=2) (!)" in md  # cbam: flagged, the none row is not
    assert "3.05 ± 0.07 (n=2) |" in md or "**3.05 ± 0.07 (n=2)**" in md
    assert "measure on an idle machine or a GPU" in md
    assert "batch 1, device cpu (2 threads)" in t6.caption
    assert pd.notna(t6.to_frame()["n"]).any()


def test_table3_p_vs_original_is_the_paired_t_test(tmp_path):
    from scipy import stats as sps

    s = Store(tmp_path)
    orig, gate = [0.70, 0.74, 0.71], [0.75, 0.76, 0.78]
    for seed, (a, b) in enumerate(zip(orig, gate)):
        s.job("t3", seed, {"test/balanced_acc": a})
        s.job("t3", seed, {"test/balanced_acc": b}, fusion="learnable_gate")
    t3 = declared.load().by_number()[3].build(runs.load_runs(s.uri, "t3"), tables.Context())
    col = t3.columns.index("HAM10000 p vs original")
    cells = {row[0].text: row[col] for row in t3.rows}
    assert cells["original"].text == "ref"
    want = sps.ttest_rel(gate, orig).pvalue
    assert cells["learnable_gate"].p_value == pytest.approx(want)
    assert "**75.00 ± 1.53 (n=3)**" not in t3.to_markdown()  # mean 76.33: the bold one
    assert "**76.33 ± 1.53 (n=3)**" in t3.to_markdown()
