"""The 3-seed case kept honest: the interval of tmkd.stats.intervals.paired_interval holds the true difference in close to
95 % of simulated runs (benchmarks/bench_coverage.py prints every case, and the percentile bootstrap it replaced)."""
import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_coverage import coverage, new_interval  # noqa: E402


@pytest.mark.slow
def test_three_seeds_hold_zero_in_about_95_percent_of_null_runs():
    """Arms whose true difference is 0, a seed-to-seed sd of 2 points on the difference, 3 seeds, 2,000 dev
    examples, students agreeing on 85 % of examples: the old percentile bootstrap held 0 in 85 % of 300 runs."""
    held, width = coverage(new_interval, np.random.default_rng(2029), 300, 0.0, 2.0, 3, 0.85)
    assert 0.925 <= held <= 0.995, held
    assert width < 20, width                     # and not by being useless: t(2) on a 2-point sd is about 9 wide
