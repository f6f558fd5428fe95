"""The paired bootstrap and its verdict on hand-made arms."""
import numpy as np
import pytest

from tmkd.evidence import paired_bootstrap, sentence, verdict

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
