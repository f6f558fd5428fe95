"""The two-level paired bootstrap, the verdicts on the paper's claims and the power arithmetic, on hand-made arms."""
import numpy as np
import pytest

from tmkd.evidence import (PAPER_DEV_SIZES, VERDICTS, claim_verdict, claim_words, needed_size, paired_bootstrap,
                           paper_resolution, sentence, verdict)

rng = np.random.default_rng(1)
BASE = rng.random((3, 500)) < 0.7              # 3 seeds x 500 examples, about 70 % correct


def test_identical_arms_cover_zero():
    interval = paired_bootstrap(BASE, BASE)
    assert interval["difference"] == 0 and interval["low"] <= 0 <= interval["high"]
    assert verdict(interval) == "within noise" and "within noise" in sentence("m-o-1", "1-o-1", interval)


def test_a_shifted_arm_excludes_zero_both_ways():
    better = BASE | (rng.random((3, 500)) < 0.5)      # fixes about half of the errors: about +15 points
    up = paired_bootstrap(better, BASE)
    assert up["low"] > 0 and verdict(up) == "supported"
    assert up["difference"] == pytest.approx((better.mean() - BASE.mean()) * 100)
    assert sentence("m-o-1", "1-o-1", up).startswith("m-o-1 beats 1-o-1 by ")
    down = paired_bootstrap(BASE, better)
    assert down["high"] < 0 and verdict(down) == "refuted"


def test_a_small_noisy_gap_is_within_noise():
    flip = BASE.copy()
    flip[:, :3] = ~flip[:, :3]                         # three examples changed: well inside the noise of 500
    assert verdict(paired_bootstrap(flip, BASE)) == "within noise"


def test_arms_on_different_examples_are_refused():
    with pytest.raises(ValueError, match="same dev examples"):
        paired_bootstrap(BASE[:, :10], BASE[:, :11])


def test_arms_whose_ids_differ_or_whose_seeds_differ_are_refused():
    ids = np.arange(500)
    other = ids.copy()
    other[7] = 9999
    paired_bootstrap(BASE, BASE, ids_a=ids, ids_b=ids.copy())                   # equal ids: accepted
    with pytest.raises(ValueError, match="same dev examples.*position 7"):
        paired_bootstrap(BASE, BASE, ids_a=ids, ids_b=other)
    with pytest.raises(ValueError, match="seeds"):
        paired_bootstrap(BASE, BASE[:2])


def test_detectable_is_2_8_standard_errors_and_one_seed_has_no_seed_level():
    better = BASE | (rng.random((3, 500)) < 0.1)
    interval = paired_bootstrap(better, BASE)
    assert interval["se"] > 0 and interval["detectable"] == pytest.approx(2.8 * interval["se"])
    assert interval["se_examples"] > 0 and interval["se_seeds"] > 0 and interval["seeds"] == (3, 3)
    one = paired_bootstrap(better[0], BASE[0])
    assert one["seeds"] == (1, 1) and one["se_seeds"] == 0 and one["se"] == pytest.approx(one["se_examples"])


def test_seeds_that_disagree_widen_the_interval():
    """A's seeds at 50/70/90 % vs B at 70 %: the seed level must show in the interval; with the same per-example
    noise but A's seeds all at the 70 % mean level, it must not."""
    noise, other = np.random.default_rng(5).random((2, 3, 2000))
    b = other < 0.7
    spread = paired_bootstrap(noise < np.array([[0.5], [0.7], [0.9]]), b)
    flat = paired_bootstrap(noise < 0.7, b)
    assert spread["difference"] == pytest.approx(flat["difference"], abs=1.0)
    assert spread["high"] - spread["low"] > 1.5 * (flat["high"] - flat["low"])
    assert spread["se_seeds"] > 3 * flat["se_seeds"]


def test_two_level_bootstrap_is_fast_on_a_large_run():
    import time
    big = np.random.default_rng(2).random((2, 5, 2000)) < 0.7
    start = time.perf_counter()
    paired_bootstrap(big[0], big[1])
    assert time.perf_counter() - start < 1.0


def box(low, high, difference=None):
    return {"low": low, "high": high, "difference": (low + high) / 2 if difference is None else difference}


def test_every_claim_verdict_branch():
    assert claim_verdict(box(0.5, 3.0), 2.0) == "reproduced"
    assert claim_verdict(box(-3.0, -0.5), -2.0) == "reproduced"
    assert claim_verdict(box(-3.0, -0.5), 2.0) == "opposite"
    assert claim_verdict(box(0.5, 3.0), -2.0) == "opposite"
    assert claim_verdict(box(-1.0, 1.5), 4.0) == "smaller than the paper's"
    assert claim_verdict(box(-1.5, 1.0), -4.0) == "smaller than the paper's"
    assert claim_verdict(box(-1.0, 5.0), 4.0) == "inconclusive"
    assert claim_verdict(box(-0.8, 0.6), 0.15, resolution=1.55) == "equivalent within ±1"
    assert claim_verdict(box(-0.8, 0.6), 0.15, resolution=1.55, margin=0.5) == "inconclusive"
    assert claim_verdict(box(-1.2, 0.6), 0.15, resolution=1.55) == "inconclusive"
    assert claim_verdict(box(-1.2, 0.1), 0.15, resolution=0.1) == "smaller than the paper's"   # gap above resolution
    assert claim_verdict(box(0.5, 3.0), None) == "reproduced"
    assert claim_verdict(box(-3.0, -0.5), float("nan")) == "opposite"
    assert claim_verdict(box(-0.5, 3.0), None) == "inconclusive"
    for v in ("reproduced", "opposite", "smaller than the paper's", "inconclusive"):
        assert v in VERDICTS
    assert claim_verdict(box(-0.8, 0.6), 0.15, resolution=1.55).startswith(VERDICTS[3])


def test_reproduced_never_when_the_estimate_has_the_other_sign():
    r = np.random.default_rng(3)
    seen = set()
    for _ in range(2000):
        low, high = np.sort(r.normal(0, 3, 2))
        d = r.uniform(low - 1, high + 1)                 # sometimes outside its own percentile interval
        paper = r.normal(0, 4)
        v = claim_verdict(box(low, high, d), paper, resolution=r.choice([None, 0.5]))
        seen.add(v.split(" within")[0])
        if d * paper < 0:
            assert v != "reproduced", (low, high, d, paper)
        if d * paper > 0 and abs(paper) > 0.5:
            assert v != "opposite", (low, high, d, paper)
    assert seen == set(VERDICTS)


def test_paper_resolution_by_hand():
    # QNLI: p = 0.78, n = 5463: 2 * 0.78 * 0.22 / 5463 = 6.2823e-5, sqrt = 0.0079261, x 1.96 x 100 = 1.5535
    assert paper_resolution(78.0, 5463) == pytest.approx(1.5535, abs=1e-3)
    assert paper_resolution(50.0, 100) == pytest.approx(1.96 * 0.5 ** 0.5 / 10 * 100)
    assert PAPER_DEV_SIZES["rte"] == 277 and paper_resolution(57.0, 277) > paper_resolution(57.0, 5463)


def test_claim_words_in_the_three_cases():
    assert claim_words("m-o-1", "no KD", "qnli", -0.71) == "on QNLI the paper has m-o-1 0.71 below no KD"
    assert claim_words("m-o-1", "no KD", "rte", 2.5) == "on RTE the paper has m-o-1 2.50 above no KD"
    assert claim_words("m-o-1", "1-o-1", "qnli", 0.15, resolution=1.554) == (
        "on QNLI the paper has m-o-1 and 1-o-1 0.15 apart, below the 1.55 its single run can show: no difference")
    assert claim_words("m-o-1", "the control", "qnli", None) == (
        "the paper gives no number; the claim tested is that m-o-1 beats the control")


def test_needed_size_by_hand_and_monotone():
    # se_ex = 0.3, se_seed = 0.4, se = 0.5 (parts add up: no rescaling); n0 = 1000, s0 = 4.
    # target so that (target / 2.8)^2 = 0.1825 = 0.16 + 0.09 / 4:
    #   examples: 0.09 * 1000 / (0.1825 - 0.16) = 4000; seeds: 0.16 * 4 / (0.1825 - 0.09) = 6.92 -> 7
    interval = {"se": 0.5, "se_examples": 0.3, "se_seeds": 0.4, "examples": 1000, "seeds": (4, 4)}
    target = 2.8 * 0.1825 ** 0.5
    assert needed_size(interval, target) == {"examples": 4000, "seeds": 7}
    assert needed_size(interval, -target) == {"examples": 4000, "seeds": 7}
    assert needed_size(interval, 2.8 * 0.5)["examples"] == 1000          # the run's own detectable: its own size
    assert needed_size(interval, 2.8 * 0.39) == {"examples": None, "seeds": 11}   # seed noise alone is too large
    assert needed_size(interval, 2.8 * 0.29) == {"examples": None, "seeds": None}
    sizes = [needed_size(interval, t) for t in (3.0, 2.5, 2.0, 1.5, 1.2)]
    ex = [s["examples"] for s in sizes]
    sd = [s["seeds"] for s in sizes]
    assert ex == sorted(ex) and sd == sorted(sd) and ex[0] < ex[-1] and sd[0] < sd[-1]
