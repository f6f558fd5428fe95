"""Evidence for a comparison between two methods: a two-level paired bootstrap interval of their accuracy difference
(seeds and dev examples resampled together), the smallest difference the run could detect, and a verdict on the
paper's claim in the paper's own direction and size; then the comparisons of chapters 04 and 06 on this run's
students. The statistics (down to `sentence`) are pure numpy; the comparisons read the students' predictions."""
from __future__ import annotations

import math

import numpy as np

from .config import Config
from .data import dev_splits
from .experiments import matched_spec, method_specs, stage2_spec
from .logit_cache import align_examples
from .method import METHOD_LABELS, combine_students
from .paper import PUBLISHED
from .students import student_predictions

VERDICTS = ("reproduced", "opposite", "smaller than the paper's", "equivalent", "inconclusive")
# "equivalent" is returned as "equivalent within ±{margin}": match it by prefix.


def verdict_kind(verdict: str) -> str:
    """The verdict without its margin ("equivalent within ±1" -> "equivalent"), for colours and counts."""
    return "equivalent" if str(verdict).startswith("equivalent") else str(verdict)


# Dev set sizes of the paper's tables (GLUE / SNLI dev). The paper's MNLI is the mean of matched and mismatched;
# matched (9815) stands for both (mismatched has 9832), which moves the resolution by far less than 0.01 points.
PAPER_DEV_SIZES = {"rte": 277, "qnli": 5463, "mnli": 9815, "snli": 9842}

DETECT_Z = 2.8          # 1.96 + 0.84: a true difference of 2.8 se is found at two-sided 5 % with 80 % power
_CHUNK = 4_000_000      # example-count cells per bootstrap chunk (n_boot x examples), to bound memory


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


def _counts(idx):
    """(m, k) draws of indices below k -> (m, k) how often each index was drawn, row by row."""
    m, k = idx.shape
    return np.bincount((idx + np.arange(m)[:, None] * k).ravel(), minlength=m * k).reshape(m, k)


def _sd(x) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


def _per_seed_draws(diff, n_boot, rng):
    """(n_boot, seeds): each seed's mean difference on one resampled dev set, the same example draw for every seed
    and both arms. Example draws become counts, so one matrix product replaces n_boot x seeds x examples floats."""
    n_ex = diff.shape[1]
    step = max(1, _CHUNK // n_ex)
    out = []
    for start in range(0, n_boot, step):
        m = min(step, n_boot - start)
        out.append(_counts(rng.integers(0, n_ex, size=(m, n_ex))) @ diff.T / n_ex)
    return np.concatenate(out)


def paired_bootstrap(correct_a, correct_b, ids_a=None, ids_b=None, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Accuracy of arm A minus arm B, in points, with a two-level paired bootstrap interval.

    correct_a, correct_b: (seeds, examples) booleans (or (examples,) for one seed); row s of A is paired with row s
    of B (same seed, same stage-1 weights), the same examples in the same order (checked on ids_a/ids_b if given).
    Each draw resamples seed rows and examples with replacement, the same draw for both arms, so the interval covers
    both another dev set of this size and another set of seeds; with one seed the seed level is a no-op.

    Returns difference (mean over all seeds and examples), low/high (percentile interval), se (sd of the draws),
    detectable = 2.8 x se: the smallest true difference this run finds with 80 % power at two-sided 5 %
    (1.96 + 0.84); se_examples (examples resampled only, seeds averaged) and se_seeds (seeds resampled only),
    which `needed_size` uses to say what a larger run would buy; seeds (rows of A, rows of B); examples."""
    a, b = _arms(correct_a, correct_b, ids_a, ids_b)
    diff = a - b
    n_seeds = diff.shape[0]
    rng = np.random.default_rng(seed)
    seed_w = _counts(rng.integers(0, n_seeds, size=(n_boot, n_seeds))) / n_seeds   # (n_boot, seeds), rows sum to 1
    per_seed = _per_seed_draws(diff, n_boot, rng)                      # (n_boot, seeds)
    both = (seed_w * per_seed).sum(axis=1) * 100
    examples_only = per_seed.mean(axis=1) * 100
    seeds_only = seed_w @ diff.mean(axis=1) * 100
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(both, [tail, 100 - tail])
    se = _sd(both)
    return {"difference": float(diff.mean() * 100), "low": float(lo), "high": float(hi), "se": se,
            "detectable": DETECT_Z * se, "se_examples": _sd(examples_only), "se_seeds": _sd(seeds_only),
            "seeds": (a.shape[0], b.shape[0]), "examples": diff.shape[1]}


def verdict(interval: dict) -> str:
    """'supported' when the whole interval is above 0 (A is better), 'refuted' when it is below, else 'within noise'."""
    if interval["low"] > 0:
        return "supported"
    if interval["high"] < 0:
        return "refuted"
    return "within noise"


def _bounds(interval: dict):
    """low, high widened to hold the point difference: a percentile interval of a skewed bootstrap can, rarely,
    miss its own estimate, and no verdict may contradict the estimate's sign."""
    d = interval.get("difference", interval["low"])
    return min(interval["low"], d), max(interval["high"], d)


def _no_number(x) -> bool:
    return x is None or x != x


def claim_verdict(interval: dict, paper_difference=None, resolution=None, margin: float = 1.0) -> str:
    """The verdict on the paper's claim, in its direction and size (one of VERDICTS).

    No paper number: the claim is "A beats B". A paper gap below `resolution` (what its single run can show, see
    paper_resolution), or exactly 0, claims no difference: 'equivalent within ±margin' when the interval lies inside
    ±margin, else 'inconclusive'. Otherwise: 'reproduced' when the interval excludes 0 on the paper's side,
    'opposite' when it excludes 0 on the other side, 'smaller than the paper's' when it holds 0 but not the paper's
    difference, 'inconclusive' when it holds both (the run cannot tell the paper's gap from none)."""
    lo, hi = _bounds(interval)
    if _no_number(paper_difference):
        return "reproduced" if lo > 0 else "opposite" if hi < 0 else "inconclusive"
    p = float(paper_difference)
    if p == 0 or (not _no_number(resolution) and abs(p) < resolution):
        return f"equivalent within ±{margin:g}" if -margin <= lo and hi <= margin else "inconclusive"
    lo, hi = (lo, hi) if p > 0 else (-hi, -lo)                         # in the paper's direction: its gap is +|p|
    if lo > 0:
        return "reproduced"
    if hi < 0:
        return "opposite"
    return "smaller than the paper's" if hi < abs(p) else "inconclusive"


def paper_resolution(accuracy_pct: float, n_dev: int) -> float:
    """The smallest gap, in points, the paper's single run could show: 1.96 x sqrt(2 p (1 - p) / n) x 100.

    The paper reports one run per method and no interval; two independent accuracies near p on its dev set of n
    examples differ by this much from dev-sample chance alone (95 %), so a smaller published gap is no claim of a
    difference."""
    p = accuracy_pct / 100
    return 1.96 * math.sqrt(2 * p * (1 - p) / n_dev) * 100


def claim_words(a: str, b: str, task: str, paper_difference, resolution=None) -> str:
    """The paper's claim in its own words, generated from its numbers (two decimals), so that the text beside a
    verdict can never disagree with the numbers the verdict was computed from."""
    if _no_number(paper_difference):
        return f"the paper gives no number; the claim tested is that {a} beats {b}"
    p, where = float(paper_difference), f"on {task.upper()} the paper has"
    if not _no_number(resolution) and abs(p) < resolution:
        return (f"{where} {a} and {b} {abs(p):.2f} apart, below the {resolution:.2f} its single run can show: "
                "no difference")
    if p == 0:
        return f"{where} {a} and {b} 0.00 apart: no difference"
    return f"{where} {a} {abs(p):.2f} {'above' if p > 0 else 'below'} {b}"


def needed_size(interval: dict, target: float, level_z: float = DETECT_Z) -> dict:
    """About how many dev examples (seeds fixed) and how many seeds (examples fixed) would bring level_z x se down
    to abs(target), i.e. make a true difference of that size detectable (80 % power at 5 % for level_z = 2.8).

    Model: se^2 = se_ex^2 n0 / n + se_seed^2 s0 / s, from the bootstrap's examples-only and seeds-only parts, both
    scaled so that they add up to the measured two-level se at the run's own size (n0 examples, s0 seeds). None:
    not reachable by that lever alone (the other part's noise alone is already too large). With one seed the seed
    part is unmeasured (0), so seeds never look like the remedy. A size below the run's own means it already can."""
    n0, s0 = interval["examples"], interval["seeds"][0]
    ex2, seed2 = interval["se_examples"] ** 2, interval["se_seeds"] ** 2
    scale = interval["se"] ** 2 / (ex2 + seed2) if ex2 + seed2 > 0 else 1.0
    ex2, seed2, goal2 = ex2 * scale, seed2 * scale, (abs(target) / level_z) ** 2
    return {"examples": _needed(ex2, seed2, n0, goal2), "seeds": _needed(seed2, ex2, s0, goal2)}


def _needed(part2: float, other2: float, now: int, goal2: float):
    """Smallest k with part2 x now / k + other2 <= goal2, or None when other2 alone exceeds the goal."""
    room = goal2 - other2
    if part2 == 0:
        return 1 if room >= 0 else None
    if room <= 0:
        return None
    return max(1, math.ceil(part2 * now / room - 1e-9))


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
    """(correct, ids): correct is (seeds, dev examples) booleans, whether `method`'s prediction is the gold label, in
    the order of ids, the sorted example ids (the same for every seed, checked)."""
    out, ids = [], None
    for specs in method_spec_lists(cfg, task, method):
        preds = [student_predictions(cfg, s, split) for s in specs]
        order = np.sort(preds[0]["idx"])
        if ids is not None and not np.array_equal(order, ids):
            raise ValueError(f"{method} on {task} {split}: its seeds were scored on different dev examples")
        ids = order
        probs = [align_examples(p["probs"], p["idx"], order) for p in preds]
        gold = align_examples(preds[0]["labels"], preds[0]["idx"], order)
        predicted = combine_students(probs, method.split("_")[1]) if method.startswith("mom_") else probs[0].argmax(-1)
        out.append(predicted == gold)
    return np.stack(out), ids


def paper_claim(a: str, b: str, task: str) -> dict:
    """The paper's difference A - B on `task` (Table 4, points; None without both numbers) and the smallest gap its
    single run could show there (paper_resolution at the two rows' mean accuracy)."""
    paper = PUBLISHED["paper"]
    pa, pb = paper.get(a, {}).get(task), paper.get(b, {}).get(task)
    if pa is None or pb is None:
        return {"paper_difference": None, "resolution": None}
    return {"paper_difference": round(pa - pb, 2),
            "resolution": round(paper_resolution((pa + pb) / 2, PAPER_DEV_SIZES[task]), 2)}


def compare_methods(cfg: Config, pairs, tasks=None):
    """For each task, dev split and pair (A, B) of trained methods: the paper's claim in its words, A's accuracy minus
    B's in points (mean over seeds) with its two-level paired bootstrap 95 % interval, the smallest difference this
    run could detect, the examples and seeds a difference of the paper's size would need here, and the verdict."""
    import pandas as pd
    rows = []
    for task in tasks or cfg.tasks:
        for split in dev_splits(task):
            for a, b in pairs:
                (ca, ia), (cb, ib) = method_correct(cfg, task, a, split), method_correct(cfg, task, b, split)
                interval = paired_bootstrap(ca, cb, ia, ib)
                paper = paper_claim(a, b, task)
                la, lb = METHOD_LABELS.get(a, a), METHOD_LABELS.get(b, b)
                p = paper["paper_difference"]
                directional = p is not None and abs(p) >= paper["resolution"]
                need = needed_size(interval, p) if directional else {"examples": None, "seeds": None}
                rows.append({"task": task, "split": split, "a": a, "b": b,
                             "claim": claim_words(la, lb, task, p, paper["resolution"]),
                             "seeds": interval["seeds"][0], "examples": interval["examples"],
                             "paper_difference": p, "paper_resolution": paper["resolution"],
                             "difference": round(interval["difference"], 2), "low": round(interval["low"], 2),
                             "high": round(interval["high"], 2), "detectable": round(interval["detectable"], 2),
                             "examples_needed": need["examples"], "seeds_needed": need["seeds"],
                             "verdict": claim_verdict(interval, p, paper["resolution"], cfg.equivalence_margin),
                             "reads": sentence(la, lb, interval)})
    return pd.DataFrame(rows)
