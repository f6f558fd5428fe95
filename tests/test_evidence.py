"""A comparison's interval (t on the seed level, normal on the dev sample's) against scipy on hand-made arms, Holm's
adjustment on a hand example, the verdict words on hand-made intervals (table-driven), and the power arithmetic."""
import math

import numpy as np
import pytest
from scipy import stats

from rules import expected_verdict, half_width_by_hand, holm_by_hand
from tmkd.stats.evidence import (OWN_ANSWERS, PAPER_VERDICTS, adjust_family, claim_verdict, claim_words, own_verdict,
                           paper_resolution, verdict_kind)
from tmkd.stats.intervals import (detectable, holm, holm_levels, interval_at, interval_from_seeds, needed_size,
                            paired_interval, variance_parts)

rng = np.random.default_rng(1)
BASE = rng.random((3, 500)) < 0.7              # 3 seeds x 500 examples, about 70 % correct


# ---- the interval ------------------------------------------------------------------------------------------------

def test_variance_parts_of_a_two_by_three_table_by_hand():
    # f = A - B per seed and example (points / 100): seed 0: 1, 0, 0; seed 1: 1, 1, -1.
    # per seed: 1/3, 1/3 -> var(d_s) = 0; per example: 1, 0.5, -0.5 -> var = 0.5833 (x 1e4 in points^2)
    # residuals f - d_s - m_i + mean (mean 1/3): seed 0: 1-1/3-1+1/3 = 0, 0-1/3-.5+1/3 = -.5, 0-1/3+.5+1/3 = .5;
    # seed 1: 0, .5, -.5 -> sum of squares 1, over (n-1)(S-1) = 2: 0.5
    a = np.array([[1, 0, 0], [1, 1, 0]], bool)
    b = np.array([[0, 0, 0], [0, 0, 1]], bool)
    parts = variance_parts(a.astype(float) - b)
    assert parts["seeds"] == pytest.approx(0.0, abs=1e-9)
    assert parts["examples"] == pytest.approx(0.583333 * 1e4, rel=1e-5)
    assert parts["interaction"] == pytest.approx(0.5 * 1e4)


def test_the_seed_level_alone_is_scipys_t_interval_on_the_per_seed_differences():
    """The issue's two hand examples: TMKD minus the compute-matched control per seed (+0.85, +2.80, +1.05) and the
    regime probe's TMKD minus m-o-1 (+4.98, +2.70, +5.24): with no dev-sample part the interval is exactly
    scipy.stats.t.interval on the three values, 2 degrees of freedom."""
    for per_seed, published in (([0.85, 2.80, 1.05], (-1.10, 4.23)), ([4.98, 2.70, 5.24], (0.83, 7.78))):
        interval = interval_from_seeds(per_seed, 0.0, 2000)
        lo, hi = stats.t.interval(0.95, 2, loc=np.mean(per_seed), scale=stats.sem(per_seed))
        assert (interval["low"], interval["high"]) == pytest.approx((lo, hi), abs=1e-9)
        assert (lo, hi) == pytest.approx(published, abs=0.015)          # as the issue printed them


def test_identical_seeds_leave_the_dev_sample_alone_a_normal_interval():
    """Every seed row the same: no seed level (var(d_s) = 0, no interaction); the interval is scipy's normal interval
    of the mean per-example difference."""
    a, b = np.tile(BASE[0], (3, 1)), np.tile(rng.random(500) < 0.6, (3, 1))
    f = (a.astype(float) - b)[0] * 100
    interval = paired_interval(a, b)
    lo, hi = stats.norm.interval(0.95, loc=f.mean(), scale=f.std(ddof=1) / math.sqrt(len(f)))
    assert interval["se_seeds"] == pytest.approx(0.0, abs=1e-12)
    assert (interval["low"], interval["high"]) == pytest.approx((lo, hi), abs=1e-9)


def test_both_levels_combine_in_quadrature_with_scipy_quantiles():
    """B fixes some of A's errors on the same examples at every seed (the dev sample's part) and some at one seed
    only (the seed level's): both levels are there, each once."""
    better = BASE | (rng.random(500) < 0.1)[None, :] | (rng.random((3, 500)) < 0.05)
    interval = paired_interval(better, BASE)
    parts = variance_parts(better.astype(float) - BASE)
    se_seeds = math.sqrt(parts["seeds"] / 3)
    se_examples = math.sqrt((parts["examples"] - parts["interaction"] / 3) / 500)
    assert se_seeds > 0 and se_examples > 0
    assert interval["se_seeds"] == pytest.approx(se_seeds) and interval["se_examples"] == pytest.approx(se_examples)
    h = half_width_by_hand(se_seeds, se_examples, 3)
    assert (interval["low"], interval["high"]) == pytest.approx((interval["difference"] - h, interval["difference"] + h))
    assert interval["difference"] == pytest.approx((better.mean() - BASE.mean()) * 100)


def test_seed_specific_changes_are_counted_once():
    """B fixes A's errors at random, seed by seed: no example is fixed more at every seed than chance says, so the
    dev sample adds nothing beyond the per-seed differences (which hold that chance already): the example level
    is floored at 0 rather than counted twice."""
    better = BASE | (np.random.default_rng(11).random((3, 500)) < 0.1)
    parts = variance_parts(better.astype(float) - BASE)
    assert parts["examples"] - parts["interaction"] / 3 < 0
    assert paired_interval(better, BASE)["se_examples"] == 0


def test_p_value_is_where_the_interval_reaches_zero():
    better = BASE | (rng.random((3, 500)) < 0.02)
    interval = paired_interval(better, BASE)
    p = interval["p_value"]
    assert 0 < p < 1
    low, high = interval_at(interval, 1 - p)
    assert min(abs(low), abs(high)) == pytest.approx(0.0, abs=1e-6)
    assert (interval["low"] > 0) == (p < 0.05)
    # three seeds cannot pass a large family: t = 9 on 2 degrees of freedom is p = 0.012, above Holm's first step
    # over 7 (0.0071), below its first step over 3 (0.0167)
    t9 = interval_from_seeds([9 - math.sqrt(3), 9, 9 + math.sqrt(3)], 0.0, 2000)     # mean 9, se 1: t = 9
    assert t9["p_value"] == pytest.approx(2 * stats.t.sf(9, 2), rel=1e-6) and round(t9["p_value"], 3) == 0.012
    assert 0.05 / 7 < t9["p_value"] < 0.05 / 3


def test_one_seed_has_no_seed_level_and_says_so():
    one = paired_interval(BASE[0], (rng.random(500) < 0.6))
    assert one["seeds"] == (1, 1) and not one["seed_level"] and one["se_seeds"] == 0
    assert one["high"] - one["low"] == pytest.approx(2 * stats.norm.ppf(0.975) * one["se_examples"])


def test_seeds_that_disagree_widen_the_interval():
    """A's seeds at 50/70/90 % vs B at 70 %: the seed level must show in the interval; with the same per-example
    noise but A's seeds all at the 70 % level, it must not."""
    noise, other = np.random.default_rng(5).random((2, 3, 2000))
    b = other < 0.7
    spread = paired_interval(noise < np.array([[0.5], [0.7], [0.9]]), b)
    flat = paired_interval(noise < 0.7, b)
    assert spread["difference"] == pytest.approx(flat["difference"], abs=1.0)
    assert spread["high"] - spread["low"] > 3 * (flat["high"] - flat["low"])
    assert spread["se_seeds"] > 5 * flat["se_seeds"]


def test_arms_on_different_examples_or_seeds_are_refused():
    ids = np.arange(500)
    other = ids.copy()
    other[7] = 9999
    paired_interval(BASE, BASE, ids_a=ids, ids_b=ids.copy())                   # equal ids: accepted
    with pytest.raises(ValueError, match="same dev examples.*position 7"):
        paired_interval(BASE, BASE, ids_a=ids, ids_b=other)
    with pytest.raises(ValueError, match="same dev examples"):
        paired_interval(BASE[:, :10], BASE[:, :11])
    with pytest.raises(ValueError, match="seeds"):
        paired_interval(BASE, BASE[:2])


# ---- what a run can detect, and what a larger one would need -------------------------------------------------

def test_detectable_follows_the_intervals_own_multipliers():
    # many seeds and examples: (1.96 + 0.84) x se, the large-sample rule
    assert detectable(0.0, 1.0, 3) == pytest.approx(stats.norm.ppf(0.975) + stats.norm.ppf(0.8))
    # the seed level alone: t with 2 degrees of freedom at 97.5 % and 80 %
    assert detectable(1.0, 0.0, 3) == pytest.approx(stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2))
    assert detectable(1.0, 0.0, 3, level=1 - 0.05 / 3) > detectable(1.0, 0.0, 3)


def test_needed_size_reaches_the_target_and_says_when_it_cannot():
    interval = interval_from_seeds([1.0, 2.0, 3.0], 0.5, 2000)            # seed se 0.577, dev-sample se 0.5
    own = interval["detectable"]
    assert needed_size(interval, own)["examples"] <= 2000 and needed_size(interval, own)["seeds"] <= 3
    seed_floor = detectable(interval["se_seeds"], 0.0, 3)                 # what no number of examples removes
    assert needed_size(interval, seed_floor * 0.99)["examples"] is None
    need = needed_size(interval, own / 2)
    assert need["examples"] is None and need["seeds"] > 3
    s = need["seeds"]                                                     # the answer is the smallest that fits
    at = lambda k: detectable(interval["se_seeds"] * math.sqrt(3 / k), 0.5, k)   # noqa: E731
    assert at(s) <= own / 2 < at(s - 1)
    sizes = [needed_size(interval, t)["seeds"] for t in (own, own * 0.8, own * 0.6, own * 0.5)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


# ---- a family ------------------------------------------------------------------------------------------------

def test_holm_on_a_hand_example():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> kept at 0.06
    assert list(holm(p)) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # two more members not measured (never rejected): x 6, 5, 4, 3
    assert list(holm(p, size=6)) == pytest.approx([0.05, 0.12, 0.12, 0.03])
    assert list(holm(p, size=6)) == pytest.approx(holm_by_hand(p, 6))
    # steps 0.05/4, 0.05/3 reject; 0.03 > 0.05/2 stops: it and the rest get 97.5 %
    assert list(holm_levels(p)) == pytest.approx([1 - 0.05 / 3, 0.975, 0.975, 1 - 0.05 / 4])
    with pytest.raises(ValueError, match="family of 2"):
        holm(p, size=2)


def test_holm_levels_agree_with_holms_decisions():
    r = np.random.default_rng(7)
    for _ in range(200):
        p = r.uniform(0, 0.06, r.integers(1, 6)) ** r.uniform(1, 3)
        size = len(p) + int(r.integers(0, 3))
        for adjusted, level, pi in zip(holm(p, size), holm_levels(p, size), p):
            assert (pi < 1 - level) == (adjusted < 0.05) or math.isclose(pi, 1 - level)


# ---- the verdict words ---------------------------------------------------------------------------------------

def box(low, high, difference=None):
    return {"low": low, "high": high, "difference": (low + high) / 2 if difference is None else difference}


PAPER_CASES = [   # (low, high, estimate, paper gap, paper resolution, verdict)
    (0.5, 3.0, None, 2.0, None, "reproduced"),                                # the paper's gap inside
    (3.0, 5.0, None, 2.0, None, "reproduced"),                                # beyond it
    (-3.0, -0.5, None, -2.0, None, "reproduced"),                             # the paper's side is below 0
    (0.5, 2.0, None, 5.73, 1.48, "right direction, smaller than the paper's"),  # the old 'reproduced' at 5.73
    (-1.0, 1.5, None, 4.0, None, "no difference shown"),
    (-1.30, 4.23, 1.32, -2.36, 1.35, "no difference shown (estimate of opposite sign)"),  # TMKD - TKD
    (-3.0, -0.5, None, 2.0, None, "opposite"),
    (-1.0, 5.0, None, 4.0, None, "inconclusive"),                             # holds both 0 and the gap
    (1.5, 3.0, None, 0.1, 1.55, "a difference the paper has none of"),        # the old 'inconclusive'
    (-3.0, -1.5, None, 0.0, None, "a difference the paper has none of"),
    (-0.8, 0.6, None, 0.15, 1.55, "equivalent within ±1"),
    (-1.2, 0.6, None, 0.15, 1.55, "inconclusive"),
]


@pytest.mark.parametrize("low, high, estimate, paper, resolution, expected", PAPER_CASES)
def test_every_paper_verdict_on_a_hand_made_interval(low, high, estimate, paper, resolution, expected):
    assert claim_verdict(box(low, high, estimate), paper, resolution) == expected
    assert claim_verdict(box(low, high, estimate), paper, resolution) == \
        expected_verdict(low, high, (low + high) / 2 if estimate is None else estimate, paper,
                         float("nan") if resolution is None else resolution)


def test_the_cases_cover_every_paper_verdict_and_the_margin_is_the_configured_one():
    assert {verdict_kind(c[-1]) for c in PAPER_CASES} == set(PAPER_VERDICTS)
    assert claim_verdict(box(-0.8, 0.6), 0.15, 1.55, margin=0.5) == "inconclusive"
    assert claim_verdict(box(-0.4, 0.3), 0.15, 1.55, margin=0.5) == "equivalent within ±0.5"


OWN_CASES = [(0.10, 3.17, "stage 1 beats more steps: yes"), (-3.0, -0.5, "stage 1 beats more steps: no"),
             (-0.8, 0.6, "stage 1 beats more steps: no (equivalent within ±1)"),
             (-1.31, 4.45, "stage 1 beats more steps: cannot tell")]


@pytest.mark.parametrize("low, high, expected", OWN_CASES)
def test_the_series_own_question_gets_its_own_words(low, high, expected):
    assert own_verdict(box(low, high), "stage 1 beats more steps") == expected
    assert verdict_kind(expected) in OWN_ANSWERS


def test_a_comparison_without_a_paper_number_is_never_read_as_the_papers_claim():
    with pytest.raises(ValueError, match="series' own"):
        claim_verdict(box(0.1, 3.2), None)
    with pytest.raises(ValueError, match="series' own"):
        claim_verdict(box(0.1, 3.2), float("nan"))


def test_random_intervals_get_exactly_one_fitting_verdict():
    r = np.random.default_rng(3)
    seen = set()
    for _ in range(3000):
        low, high = np.sort(r.normal(0, 3, 2))
        d = r.uniform(low, high)
        paper, resolution = r.normal(0, 4), r.choice([float("nan"), 0.5, 1.5])
        v = claim_verdict(box(low, high, d), paper, resolution)
        assert v == expected_verdict(low, high, d, paper, resolution)
        seen.add(verdict_kind(v))
    assert seen == set(PAPER_VERDICTS)


def test_paper_resolution_and_claim_words():
    # QNLI: p = 0.78, n = 5463: 2 * 0.78 * 0.22 / 5463 = 6.2823e-5, sqrt = 0.0079261, x 1.96 x 100 = 1.5535
    assert paper_resolution(78.0, 5463) == pytest.approx(1.5535, abs=1e-3)
    assert claim_words("m-o-1", "no KD", "qnli", -0.71) == "on QNLI the paper has m-o-1 0.71 below no KD"
    assert claim_words("m-o-1", "1-o-1", "qnli", 0.15, resolution=1.554) == (
        "on QNLI the paper has m-o-1 and 1-o-1 0.15 apart, below the 1.55 its single run can show: no difference")
    assert "series' own question" in claim_words("TMKD", "the control", "qnli", None)


# ---- the family adjustment on rows ------------------------------------------------------------------------------

def row(a, b, per_seed, family, paper=None, resolution=None, se_examples=0.3):
    from tmkd.stats.evidence import comparison_row
    interval = interval_from_seeds(per_seed, se_examples, 2000)
    r = comparison_row("qnli", "validation", a, b, interval)
    r.update(family=family, paper_difference=paper, paper_resolution=resolution,
             whose="paper" if paper is not None else "series")
    return r, interval


def test_a_primary_verdict_reads_the_holm_adjusted_interval():
    """The old 'reproduced' rested on an unadjusted interval: here TMKD - m-o-1 excludes 0 at 95 % (p about 0.02)
    but not at Holm's first step over 7 (0.05 / 7), so its verdict holds 0; an exploratory row keeps 95 %."""
    primary, i1 = row("tmkd", "mo1", [1.5, 2.5, 2.0], "primary", 5.73, 1.48, se_examples=0.1)
    other, i2 = row("mo1", "1o1", [1.5, 2.5, 2.0], "exploratory", 5.73, 1.48, se_examples=0.1)
    own, i3 = row("tmkd", "mo1_matched", [0.85, 2.80, 1.05], "exploratory", se_examples=0.0)
    assert primary["low"] > 0 and primary["p_value"] > 0.05 / 7
    out = adjust_family([primary, other, own], [i1, i2, i3], size=7)
    p, e, o = out
    assert p["adjustment"] == "Holm over 7" and p["p_holm"] == pytest.approx(holm_by_hand([p["p_value"]], 7)[0], rel=1e-3)
    assert p["verdict_level"] == pytest.approx(1 - 0.05 / 7, abs=1e-5) and p["verdict_low"] < 0 < p["verdict_high"]
    assert p["verdict"] == "no difference shown"
    assert e["verdict_level"] == 0.95 and e["p_holm"] is None and e["verdict"] == "right direction, smaller than the paper's"
    assert o["verdict"] == "stage 1 beats more steps: cannot tell" and o["whose"] == "series"
    assert p["detectable"] > e["detectable"]                   # the adjusted level detects less
