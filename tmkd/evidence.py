"""Evidence for a comparison between two methods: a paired bootstrap interval of their accuracy difference on the
same dev examples (averaged over seeds), and a verdict that calls a difference inside the interval noise."""
from __future__ import annotations

import numpy as np


def paired_bootstrap(correct_a, correct_b, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Accuracy of arm A minus arm B, in points, with a paired bootstrap interval.

    correct_a, correct_b: (seeds, examples) booleans (or (examples,) for one seed), the same examples in the same
    order in both arms. Each bootstrap draw resamples examples with replacement (the same draw for both arms and
    every seed) and averages over seeds, so the interval covers what another dev set of this size would show."""
    a = np.atleast_2d(np.asarray(correct_a, dtype=float))
    b = np.atleast_2d(np.asarray(correct_b, dtype=float))
    if a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise ValueError(f"both arms need the same dev examples: {a.shape[1]} vs {b.shape[1]}")
    per_example = a.mean(axis=0) - b.mean(axis=0)                  # (examples,), averaged over seeds
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(per_example), size=(n_boot, len(per_example)))
    boot = per_example[draws].mean(axis=1) * 100
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    return {"difference": float(per_example.mean() * 100), "low": float(lo), "high": float(hi),
            "seeds": (a.shape[0], b.shape[0]), "examples": len(per_example)}


def verdict(interval: dict) -> str:
    """'supported' when the whole interval is above 0 (A is better), 'refuted' when it is below, else 'within noise'."""
    if interval["low"] > 0:
        return "supported"
    if interval["high"] < 0:
        return "refuted"
    return "within noise"


def claim_verdict(interval: dict, paper_difference=None) -> str:
    """The verdict on a paper's claim "A - B = paper_difference": 'supported' when the interval excludes 0 on the
    paper's side, 'refuted' when it excludes 0 on the other side, else 'within noise'. Without a published
    difference the claim is "A beats B" (e.g. TMKD vs the compute-matched control)."""
    if paper_difference is None or paper_difference != paper_difference or paper_difference >= 0:
        return verdict(interval)
    flipped = {"supported": "refuted", "refuted": "supported"}
    return flipped.get(verdict(interval), "within noise")


def sentence(a: str, b: str, interval: dict) -> str:
    """What the interval says, in words: "m-o-1 beats 1-o-1 by 1.2 points [0.3, 2.1]" or "... within noise"."""
    d, lo, hi = interval["difference"], interval["low"], interval["high"]
    span = f"[{lo:+.1f}, {hi:+.1f}]"
    v = verdict(interval)
    if v == "supported":
        return f"{a} beats {b} by {d:.1f} points {span}"
    if v == "refuted":
        return f"{a} falls behind {b} by {-d:.1f} points {span}"
    return f"{a} vs {b}: {d:+.1f} points {span}, within noise"
