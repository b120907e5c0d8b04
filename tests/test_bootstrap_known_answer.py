"""Known answers of the claims' verdict path when the seeds share the test set.

The simulator is a crossed seeds x images model (probit): image i has a difficulty z_i shared
by both arms and every seed, and an arm preference w_i (arm b only) shared by every seed;
seed s adds a small shift g_s to arm b and a little per-image noise e_si to each arm, so the
seeds agree on about 98% of the images:

    a correct  <=>  m_a + z_i + e_asi > 0
    b correct  <=>  m_b + z_i + w_i + g_s + e_bsi > 0

With z, w, g, e normal, P(a correct) = Phi(m_a / s_a) and P(b correct) = Phi(m_b / s_b) over
images and seeds (s the root of the summed variances), so the true effect is known exactly;
labels are balanced and the model is class-blind, so it is also the balanced accuracy's
effect. Every repetition draws a fresh test set and fresh seeds and runs the rows through
`claims.rows.fill_accuracy` and `claims.adjust_and_judge`, as a report does (criterion 1: b beats
a by more than 2 points). The rates carry Monte-Carlo error: a rate passes unless a one-sided
binomial test at 5% says it is beyond its bound (the message gives the count, the rate and
its 95% Clopper-Pearson interval; run with ``-rP`` to see the rates of the passing tests).
"""

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from glattn.report import claims, declared, stats

# the power of an inconclusive row: statsmodels' root finder warns where it finds none
pytestmark = pytest.mark.filterwarnings(
    "ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning"
)

CRIT = claims.criteria_of(declared.load(), "paper")[1]  # b - a > 2 points
THRESHOLD = CRIT.threshold / 100
SD_DIFFICULTY, SD_PREFERENCE, SD_SEED, SD_NOISE = 1.5, 1.5, 0.05, 0.1
P_A = 0.70
CLASSES = 3
S_A = np.sqrt(SD_DIFFICULTY**2 + SD_NOISE**2)
S_B = np.sqrt(SD_DIFFICULTY**2 + SD_PREFERENCE**2 + SD_SEED**2 + SD_NOISE**2)


class _P:
    """The part of predictions.Predictions that fill_accuracy uses."""

    def __init__(self, o: stats.Outcomes):
        self.o, self.images = o, np.arange(o.labels.size).astype(str)

    def outcomes(self, keep=None):
        return self.o


def simulate(rng, seeds: int, images: int, effect: float) -> list[tuple]:
    """[(seed, arm a, arm b)] of one experiment: `seeds` seed pairs on one test set of
    `images` images, true effect P(b correct) - P(a correct) = `effect`."""
    labels = np.arange(images) % CLASSES
    z = rng.normal(0, SD_DIFFICULTY, images)  # (n,) image difficulty, both arms
    w = rng.normal(0, SD_PREFERENCE, images)  # (n,) image-level preference for arm b
    g = rng.normal(0, SD_SEED, (seeds, 1))  # (k, 1) seed shift of arm b
    m_a, m_b = S_A * special.ndtri(P_A), S_B * special.ndtri(P_A + effect)
    a = m_a + z + rng.normal(0, SD_NOISE, (seeds, images)) > 0  # (k, n)
    b = m_b + z + w + g + rng.normal(0, SD_NOISE, (seeds, images)) > 0

    def run(correct):
        return _P(stats.Outcomes(labels, correct, np.ones(images), "test", CLASSES))

    return [(s, run(a[s]), run(b[s])) for s in range(seeds)]


def tally(seeds, images, effect, reps, resamples, seed=0) -> dict:
    """Verdicts, interval coverage of the true effect and widths over `reps` experiments."""
    rng = np.random.default_rng(seed)
    supported = covered = 0
    widths = []
    for rep in range(reps):
        row = claims.Row(1, "all", "b − a", threshold=CRIT.threshold, direction=">", unit="pp")
        claims.rows.fill_accuracy(row, CRIT, simulate(rng, seeds, images, effect), "balanced_acc",
                             resamples, rep)  # fmt: skip
        claims.adjust_and_judge([row])
        supported += row.verdict == claims.SUPPORTED
        covered += row.low <= 100 * effect <= row.high
        widths.append(row.high - row.low)
    return {"supported": supported, "covered": covered, "widths": np.array(widths)}


def _rate(hits: int, reps: int, what: str) -> str:
    ci = sps.binomtest(hits, reps).proportion_ci(0.95, method="exact")
    text = f"{what}: {hits}/{reps} = {hits / reps:.1%}"
    text += f" (95% Clopper-Pearson {ci.low:.1%}-{ci.high:.1%})"
    print(text)
    return text


def assert_at_most(hits: int, reps: int, bound: float, what: str) -> None:
    text = _rate(hits, reps, what)
    p = sps.binomtest(hits, reps, bound, alternative="greater").pvalue
    assert p >= 0.05, f"{text}: above {bound:.0%} (one-sided binomial p = {p:.2g})"


def assert_at_least(hits: int, reps: int, bound: float, what: str) -> None:
    text = _rate(hits, reps, what)
    p = sps.binomtest(hits, reps, bound, alternative="less").pvalue
    assert p >= 0.05, f"{text}: below {bound:.0%} (one-sided binomial p = {p:.2g})"


def check_at_threshold(seeds, images, reps, resamples) -> None:
    """True effect exactly at the threshold: supported <= 5%, coverage >= 93%."""
    got = tally(seeds, images, THRESHOLD, reps, resamples)
    where = f"{seeds} seeds, {images} images, {resamples} resamples"
    assert_at_most(got["supported"], reps, 0.05, f"supported at the threshold ({where})")
    assert_at_least(got["covered"], reps, 0.93, f"interval covers the true effect ({where})")


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_effect_at_the_threshold_is_rarely_supported_and_covered(seeds):
    check_at_threshold(seeds, images=400, reps=100, resamples=400)


@pytest.mark.slow  # ~11 min at load 13 on 2 cores (600 repetitions x 3)
@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_effect_at_the_threshold_many_repetitions(seeds):
    check_at_threshold(seeds, images=600, reps=600, resamples=1000)


def test_no_effect_is_never_a_zero_width_interval():
    got = tally(3, 400, 0.0, reps=40, resamples=400)
    assert got["widths"].min() > 1.0, got["widths"].min()  # points: the test set's share
    assert got["supported"] == 0


def test_a_large_effect_is_supported_with_three_seeds():
    got = tally(3, 400, THRESHOLD + 0.07, reps=60, resamples=400)
    assert_at_least(got["supported"], 60, 0.75, "supported, true effect 9 points (3 seeds)")


def _copies(k: int, n: int = 600) -> list[tuple]:
    """k seed pairs that agree on every image: one fixed pair of arms, k times."""
    rng = np.random.default_rng(3)
    labels = np.arange(n) % CLASSES
    u = rng.random(n)
    a, b = (stats.Outcomes(labels, u < p, np.ones(n), "test", CLASSES) for p in (0.6, 0.65))
    return [(a, b)] * k


def test_identical_seeds_do_not_narrow_the_interval():
    """The test set's share does not shrink with the number of seeds that share it (a
    resample of images per seed slot would narrow it by about sqrt(k))."""
    widths = {}
    for k in (1, 3, 10):
        iv = stats.crossed_bootstrap(_copies(k), "acc", 2000, seed=1)
        widths[k] = iv.high - iv.low
    assert widths[1] > 0.02
    for k in (3, 10):
        assert widths[k] == pytest.approx(widths[1], rel=0.1), widths


def test_arms_on_different_image_sets_are_resampled_each_on_its_own():
    """The same outcomes as image set "x" for both arms: no difference in any resample.
    Arm b on another set "y" (another data set's images): independent draws, a wide
    interval around the same zero effect."""
    (a, _), *_ = _copies(1)
    other = stats.Outcomes(a.labels, a.correct, a.weights, "y", a.num_classes)
    same = stats.crossed_bootstrap([(a, a)] * 3, "acc", 1000, seed=0)
    apart = stats.crossed_bootstrap([(a, other)] * 3, "acc", 1000, seed=0)
    assert same.low == same.high == 0.0
    assert apart.estimate == 0.0 and apart.low < -0.03 and apart.high > 0.03
