"""The evidence rules of docs/DESIGN.md written out again, independently of tmkd.stats.intervals and tmkd.stats.evidence, for
the tests that check generated tables and README blocks against them."""
import math

from scipy import stats


def expected_verdict(low, high, difference, paper, resolution, margin=1.0):
    """The verdict on a claim of the paper from an interval (the paper's side first, then its gap)."""
    low, high = min(low, difference), max(high, difference)
    if paper is None or paper != paper:
        raise ValueError("no paper number")
    if paper == 0 or (resolution == resolution and resolution is not None and abs(paper) < resolution):
        if low > 0 or high < 0:
            return "a difference the paper has none of"
        return f"equivalent within ±{margin:g}" if -margin <= low and high <= margin else "inconclusive"
    if paper < 0:
        low, high, difference = -high, -low, -difference
    if high < 0:
        return "opposite"
    if low > 0:
        return "reproduced" if high >= abs(paper) else "right direction, smaller than the paper's"
    if high >= abs(paper):
        return "inconclusive"
    return "no difference shown (estimate of opposite sign)" if difference < 0 else "no difference shown"


def holm_by_hand(p_values, m):
    """Holm's adjusted p-values, step by step: the j-th smallest times (m - j + 1), never below an earlier one."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    out, running = [0.0] * len(p_values), 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p_values[i]))
        out[i] = running
    return out


def holm_levels_by_hand(p_values, m, alpha=0.05):
    """Each member's level as Holm decides it: the j-th smallest p (from 1) is tested at alpha / (m - j + 1); while
    Holm rejects, a member gets 1 - that; from the first member Holm keeps, every later one gets the kept one's level."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    out, kept = [0.0] * len(p_values), None
    for j, i in enumerate(order):
        test = alpha / (m - j)
        if kept is None and p_values[i] > test:
            kept = test
        out[i] = 1 - (test if kept is None else kept)
    return out


def interval_by_hand(difference, se_seeds, se_examples, seeds, level=0.95):
    """difference -+ the half-width, within the +-100 points two accuracies can differ by."""
    h = half_width_by_hand(se_seeds, se_examples, seeds, level)
    return max(difference - h, -100.0), min(difference + h, 100.0)


def half_width_by_hand(se_seeds, se_examples, seeds, level=0.95):
    """The t (S - 1 degrees of freedom) and normal quantiles from scipy, combined in quadrature; one seed has no
    seed term (its spread is unknown, not zero)."""
    q = 0.5 + level / 2
    seed_term = 0.0 if seeds < 2 else stats.t.ppf(q, seeds - 1) * se_seeds
    return math.sqrt(seed_term ** 2 + (stats.norm.ppf(q) * se_examples) ** 2)
