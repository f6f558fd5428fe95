"""The interval of a comparison between two methods, and what a family of comparisons does to it: pure numpy and
scipy.stats, no run directory.

A comparison is A - B in dev accuracy points, seed s of A paired with seed s of B on the same dev examples. Two
chances move it: which seeds were drawn (training, stage 1 included) and which dev examples (the dev sample).
With the per-example differences f[s, i] (1, 0 or -1) as a two-way crossed layout (seeds x examples, one value
per cell), the mean difference has

    Var = sigma_seed^2 / S + sigma_example^2 / n + sigma_interaction^2 / (n S)

and the mean squares estimate its parts without counting any twice: the per-seed differences d_s carry the seed
part and the seed x example interaction (S - 1 degrees of freedom); the example means over seeds, less the
interaction, carry the dev sample's part, which every seed shares (n - 1 degrees of freedom).

The interval puts a t multiplier with S - 1 degrees of freedom on the seed level and a normal one on the example
level, combined in quadrature:  half-width = sqrt(t_{S-1}^2 se_seeds^2 + z^2 se_examples^2).  Each level alone is
exact (a t interval on the per-seed differences; a normal interval on 2,000 examples); together the interval is
conservative, never below its nominal level: at most 98.7 % (2 seeds), 97.7 % (3), 96.6 % (5) for a 95 % interval,
where both levels weigh alike. A percentile bootstrap over the seed rows, which this replaced, held 0 in 85 % of
simulated 3-seed null runs (benchmarks/bench_coverage.py prints both)."""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

LEVEL = 0.95              # every interval of the series, before any adjustment for a family
SPAN = 100.0              # an accuracy difference lies within +-100 points: intervals are cut there (coverage kept)
POWER = 0.80              # `detectable`: the smallest true difference found with this power at two-sided 1 - LEVEL


def _arms(correct_a, correct_b, ids_a, ids_b):
    """Both arms as (seeds, examples) floats, refused unless they hold the same examples and as many seeds."""
    a = np.atleast_2d(np.asarray(correct_a, dtype=float))
    b = np.atleast_2d(np.asarray(correct_b, dtype=float))
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"arms must be (seeds, examples): got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise ValueError(f"both arms need the same dev examples: {a.shape[1]} vs {b.shape[1]}")
    if (ids_a is None) != (ids_b is None):
        raise ValueError("both arms need the same dev examples: give ids for both arms or for neither")
    if ids_a is not None:
        ia, ib = np.asarray(ids_a), np.asarray(ids_b)
        if ia.shape != (a.shape[1],) or ib.shape != (a.shape[1],):
            raise ValueError(f"both arms need the same dev examples: ids {ia.shape}, {ib.shape}, {a.shape[1]} rows")
        differ = np.flatnonzero(ia != ib)
        if len(differ):
            i = int(differ[0])
            raise ValueError(f"both arms need the same dev examples: ids differ first at position {i} "
                             f"({ia[i]!r} vs {ib[i]!r})")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"both arms need the same seeds, paired row by row: {a.shape[0]} vs {b.shape[0]} seeds")
    return a, b


def variance_parts(diff) -> dict:
    """The two-way layout's mean squares of diff (seeds x examples), in points^2 per seed / per example:
    seeds = var(d_s), the per-seed differences' variance (sigma_seed^2 + sigma_interaction^2 / n);
    examples = var over examples of the seed-averaged difference (sigma_example^2 + sigma_interaction^2 / S);
    interaction = the residual mean square (sigma_interaction^2). One seed: seeds and interaction are None."""
    f = np.asarray(diff, dtype=float) * 100
    n_seeds, n = f.shape
    per_seed, per_example = f.mean(axis=1), f.mean(axis=0)
    examples = float(per_example.var(ddof=1)) if n > 1 else 0.0
    if n_seeds == 1:
        return {"seeds": None, "examples": examples, "interaction": None}
    resid = f - per_seed[:, None] - per_example[None, :] + f.mean()
    interaction = float((resid ** 2).sum() / ((n - 1) * (n_seeds - 1))) if n > 1 else 0.0
    return {"seeds": float(per_seed.var(ddof=1)), "examples": examples, "interaction": interaction}


def standard_errors(parts: dict, n_seeds: int, n: int) -> tuple:
    """(se_seeds, se_examples) in points: the seed level, sqrt(var(d_s) / S), which the t multiplier takes, and the
    dev sample's level, sqrt((examples - interaction / S) / n), floored at 0 (the interaction is already in the seed
    level: counting it twice would widen the interval for nothing). One seed: no seed level; the example level is
    then every per-example difference's variance / n (the seed's own chance cannot be told from the dev sample's)."""
    if parts["seeds"] is None:
        return 0.0, math.sqrt(parts["examples"] / n)
    return math.sqrt(parts["seeds"] / n_seeds), math.sqrt(max(parts["examples"] - parts["interaction"] / n_seeds, 0.0) / n)


def half_width(se_seeds: float, se_examples: float, n_seeds: int, level: float = LEVEL) -> float:
    """sqrt(t^2 se_seeds^2 + z^2 se_examples^2): t with S - 1 degrees of freedom (scipy.stats.t), z normal, both at
    the two-sided `level`."""
    q = 0.5 + level / 2
    t = stats.t.ppf(q, n_seeds - 1) if n_seeds > 1 else 0.0
    return math.hypot(t * se_seeds, stats.norm.ppf(q) * se_examples)


def p_value(difference: float, se_seeds: float, se_examples: float, n_seeds: int) -> float:
    """Two-sided p of "no difference": the largest 1 - level whose interval still holds 0, so that p < alpha exactly
    when the 1 - alpha interval excludes 0 (the verdicts and the family adjustment read the same intervals)."""
    if difference == 0:
        return 1.0
    if se_seeds == 0 and se_examples == 0:
        return 0.0
    gap = lambda alpha: half_width(se_seeds, se_examples, n_seeds, 1 - alpha) - abs(difference)  # noqa: E731
    if gap(1e-15) <= 0:
        return 1e-15
    if gap(1 - 1e-12) >= 0:
        return 1.0
    return float(optimize.brentq(gap, 1e-15, 1 - 1e-12, xtol=1e-14, rtol=1e-10))


def detectable(se_seeds: float, se_examples: float, n_seeds: int, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true difference this interval finds with `power` at two-sided 1 - level: the half-width at
    `level` plus the one-sided `power` quantile of the same combination (large samples: (1.96 + 0.84) x se)."""
    return half_width(se_seeds, se_examples, n_seeds, level) + half_width(se_seeds, se_examples, n_seeds, 2 * power - 1)


def paired_interval(correct_a, correct_b, ids_a=None, ids_b=None, level: float = LEVEL) -> dict:
    """Accuracy of arm A minus arm B, in points, with an interval that holds its level at the run's seed count.

    correct_a, correct_b: (seeds, examples) booleans (or (examples,) for one seed); row s of A is paired with row s
    of B (same seed, same stage-1 weights), the same examples in the same order (checked on ids_a/ids_b if given).
    The interval: t with S - 1 degrees of freedom on the seed level, normal on the dev sample's, in quadrature (the
    module's docstring). One seed has no seed level: the interval then covers another dev sample only, and says so
    (seed_level False).

    Returns difference (mean over seeds and examples), low/high at `level`, level, se_seeds and se_examples (the
    two levels, points), se (both together), p_value, detectable (the smallest true difference found with 80 %
    power at two-sided 5 %, same standard errors and multipliers), parts (variance_parts, for needed_size),
    seed_level, seeds (rows of A, rows of B) and examples."""
    a, b = _arms(correct_a, correct_b, ids_a, ids_b)
    diff = a - b
    parts = variance_parts(diff)
    return _interval(float(diff.mean() * 100), parts, diff.shape[0], diff.shape[1], level)


def interval_from_seeds(per_seed, se_examples: float, n_examples: int, level: float = LEVEL) -> dict:
    """paired_interval's interval from what a table kept instead of the predictions: the per-seed differences
    (points, from each seed's accuracies) and the dev sample's standard error (points). The interaction is not
    known apart, so the seed level holds it all (needed_size then never lets more examples shrink it)."""
    d = np.asarray(per_seed, dtype=float)
    several = len(d) > 1
    parts = {"seeds": float(d.var(ddof=1)) if several else None, "examples": se_examples ** 2 * n_examples,
             "interaction": 0.0 if several else None}
    return _interval(float(d.mean()), parts, len(d), n_examples, level)


def _interval(difference: float, parts: dict, n_seeds: int, n: int, level: float) -> dict:
    se_seeds, se_examples = standard_errors(parts, n_seeds, n)
    low, high = _within_span(difference, half_width(se_seeds, se_examples, n_seeds, level))
    return {"difference": difference, "low": low, "high": high, "level": level,
            "se_seeds": se_seeds, "se_examples": se_examples, "se": math.hypot(se_seeds, se_examples),
            "p_value": p_value(difference, se_seeds, se_examples, n_seeds),
            "detectable": detectable(se_seeds, se_examples, n_seeds), "parts": parts, "seed_level": n_seeds > 1,
            "seeds": (n_seeds, n_seeds), "examples": n}


def t_seeds(interval: dict) -> int:
    """The seed count whose S - 1 degrees of freedom the seed level's t has: the comparison's own, or for a one-seed
    comparison given a borrowed seed level, the seeds that level was measured on."""
    return int(interval.get("t_seeds") or interval["seeds"][0])


def borrow_seed_level(interval: dict, seed_variance: float, n_from: int, level: float = LEVEL) -> dict:
    """A one-seed comparison with the seed level it cannot measure, borrowed: `seed_variance`, var(d_s) of a
    comparison of the main arms measured over `n_from` seeds (points^2; it holds the seed's chance of one seed's
    difference), taken whole (one seed: divided by 1) with t on n_from - 1 degrees of freedom. So the interval of one
    seed is wider than the measured seeds' own, never narrower, as another seed's chance widens it. The seed level is
    then borrowed, not measured (seed_level stays False: no verdict is read from it)."""
    se_seeds = math.sqrt(seed_variance)
    low, high = _within_span(interval["difference"], half_width(se_seeds, interval["se_examples"], n_from, level))
    return interval | {"low": low, "high": high, "se_seeds": se_seeds, "se": math.hypot(se_seeds, interval["se_examples"]),
                       "p_value": p_value(interval["difference"], se_seeds, interval["se_examples"], n_from),
                       "detectable": detectable(se_seeds, interval["se_examples"], n_from), "t_seeds": n_from,
                       "borrowed": True}


def interval_at(interval: dict, level: float) -> tuple:
    """(low, high) of `interval`'s comparison at another level (a family's adjusted one)."""
    return _within_span(interval["difference"],
                        half_width(interval["se_seeds"], interval["se_examples"], t_seeds(interval), level))


def _within_span(difference: float, h: float) -> tuple:
    """difference -+ h, cut to the differences two accuracies can have (a t with 1 degree of freedom at a family's
    level reaches thousands of points: what it says is that 2 seeds tell nothing)."""
    return max(difference - h, -SPAN), min(difference + h, SPAN)


# ---- what a larger run would buy ----------------------------------------------------------------------------------

def _levels_at(parts: dict, n0: int, s0: int, n: int, s: int) -> tuple:
    """(se_seeds, se_examples) at n examples and s seeds, from the parts measured at n0 and s0: var(d_s) =
    sigma_seed^2 + sigma_interaction^2 / n (sigma_seed^2 floored at 0, the interaction then taking all of var(d_s)),
    the example level sigma_example^2 / n."""
    example = max(parts["examples"] - (parts["interaction"] or 0.0) / s0, 0.0) if parts["seeds"] is not None \
        else parts["examples"]
    if parts["seeds"] is None:
        return 0.0, math.sqrt(example / n)
    interaction = min(parts["interaction"], parts["seeds"] * n0)
    seed_part = parts["seeds"] - interaction / n0
    return math.sqrt((seed_part + interaction / n) / s), math.sqrt(example / n)


def _smallest(fits, start: int, cap: int):
    """The smallest k >= start with fits(k) (fits is monotone), or None below cap."""
    if fits(start):
        return start
    hi = start
    while not fits(hi):
        if hi >= cap:
            return None
        hi = min(hi * 2, cap)
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def needed_size(interval: dict, target: float, level: float = LEVEL) -> dict:
    """About how many dev examples (these seeds) and how many seeds (these examples) would make a true difference
    of abs(target) detectable at `level` (`detectable` <= abs(target)), from the measured parts (variance_parts). None: not
    reachable by that lever alone (below a billion examples or ten thousand seeds: the other level's noise is too
    large). One seed: the seed level is unmeasured, so no number of seeds is given. A size at or below the run's
    own means it already can."""
    parts, n0, s0 = interval["parts"], interval["examples"], interval["seeds"][0]
    goal = abs(float(target))

    def fits(n, s):
        return detectable(*_levels_at(parts, n0, s0, n, s), s, level) <= goal
    examples = _smallest(lambda n: fits(n, s0), 1, 10 ** 9)
    seeds = _smallest(lambda s: fits(n0, s), 2, 10 ** 4) if parts["seeds"] is not None else None
    return {"examples": examples, "seeds": seeds}


# ---- a family of comparisons ----------------------------------------------------------------------------------

def holm(p_values, size: int | None = None) -> np.ndarray:
    """Holm's step-down adjusted p-values. `size`: the family's size named before the run, when some of its
    members are not measured here (they count as p = 1, never rejected: the adjustment stays conservative)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p) if size is None else size
    if m < len(p):
        raise ValueError(f"a family of {m} cannot hold {len(p)} p-values")
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(len(p))) * p[order]))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def holm_levels(p_values, size: int | None = None, alpha: float = 1 - LEVEL) -> np.ndarray:
    """The confidence level of each member's interval, consistent with Holm's decisions: the j-th smallest p is
    tested at alpha / (m - j + 1); a member Holm rejects gets the interval at that level (it excludes 0), and from
    the first member it keeps on, every remaining one gets that member's level (they all hold 0)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p) if size is None else size
    order = np.argsort(p, kind="stable")
    levels = np.empty(len(p))
    stopped = None
    for j, i in enumerate(order):
        step = alpha / (m - j)
        if stopped is None and p[i] > step:
            stopped = step
        levels[i] = 1 - (step if stopped is None else stopped)
    return levels
