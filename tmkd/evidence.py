"""Evidence for a comparison between two methods: a paired bootstrap interval of their accuracy difference on the
same dev examples (averaged over seeds), a verdict that calls a difference inside the interval noise, and the
comparisons of chapters 04 and 06 on this run's students."""
from __future__ import annotations

import numpy as np

from .config import Config
from .data import dev_splits
from .experiments import matched_spec, method_specs, stage2_spec
from .logit_cache import align_examples
from .method import METHOD_LABELS, combine_students
from .paper import PUBLISHED
from .students import student_predictions


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


# ---- the comparisons of chapters 04 and 06, on this run's students ---------------------------------------------

ONE_STAGE_COMPARISONS = (("mo1", "no_kd"), ("mo1", "1o1"), ("mo1", "1avgo1"), ("mom_avg", "mo1"))
TWO_STAGE_COMPARISONS = (("tmkd", "mo1"), ("tmkd", "mo1_matched"), ("tmkd", "tkd"))


def method_spec_lists(cfg: Config, task: str, method: str) -> list:
    """Per seed, the students whose combined prediction is `method`'s."""
    if method in ("tmkd", "tkd"):
        return [[stage2_spec(cfg, method, task=task, seed=s)] for s in cfg.seeds]
    if method == "mo1_matched":
        return [[matched_spec(cfg, task, s)] for s in cfg.seeds]
    return [method_specs(cfg, task, method, s) for s in cfg.seeds]


def method_correct(cfg: Config, task: str, method: str, split: str):
    """(seeds, dev examples in example-id order): whether `method`'s prediction is the gold label."""
    out = []
    for specs in method_spec_lists(cfg, task, method):
        preds = [student_predictions(cfg, s, split) for s in specs]
        order = np.sort(preds[0]["idx"])
        probs = [align_examples(p["probs"], p["idx"], order) for p in preds]
        gold = align_examples(preds[0]["labels"], preds[0]["idx"], order)
        predicted = combine_students(probs, method.split("_")[1]) if method.startswith("mom_") else probs[0].argmax(-1)
        out.append(predicted == gold)
    return np.stack(out)


def compare_methods(cfg: Config, pairs, tasks=None):
    """For each task, dev split and pair (A, B) of trained methods: A's accuracy minus B's in points (mean over
    seeds), its paired bootstrap 95 % interval, the paper's difference, and the verdict on the paper's claim."""
    import pandas as pd
    rows = []
    for task in tasks or cfg.tasks:
        for split in dev_splits(task):
            for a, b in pairs:
                interval = paired_bootstrap(method_correct(cfg, task, a, split), method_correct(cfg, task, b, split))
                paper = PUBLISHED["paper"]
                pa, pb = paper.get(a, {}).get(task), paper.get(b, {}).get(task)
                claim = round(pa - pb, 2) if pa is not None and pb is not None else None
                rows.append({"task": task, "split": split, "a": a, "b": b, "seeds": interval["seeds"][0],
                             "difference": round(interval["difference"], 2), "low": round(interval["low"], 2),
                             "high": round(interval["high"], 2), "paper_difference": claim,
                             "verdict": claim_verdict(interval, claim),
                             "reads": sentence(METHOD_LABELS.get(a, a), METHOD_LABELS.get(b, b), interval)})
    return pd.DataFrame(rows)
