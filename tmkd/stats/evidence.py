"""Evidence for the comparisons of chapters 04, 06 and 08: which comparisons are the paper's headline claims (one
family, named before the run and adjusted together with Holm's procedure) and which are exploratory; the verdict
words, which fit every interval; and the comparisons themselves on this run's students. The intervals are
tmkd.stats.intervals'; the words down to `own_verdict` read numbers only."""
from __future__ import annotations

import math

import numpy as np

from tmkd.core.config import Config
from tmkd.inputs.data import dev_splits
from tmkd.training.experiments import configured_variants
from tmkd.training.specs import arm_seeds, method_specs
from tmkd.stats.intervals import (LEVEL, borrow_seed_level, detectable, holm, holm_levels, interval_at, needed_size,
                                  paired_interval, t_seeds)
from tmkd.training.logit_cache import align_examples
from tmkd.model.method import combine_students
from tmkd.model.methods import REGISTRY, comparison, comparisons, label
from tmkd.model.methods import method as method_record
from tmkd.model.paper import PUBLISHED
from tmkd.training.students import student_predictions

# The verdict on one of the paper's claims, read in the paper's direction and size. Exclusive and exhaustive: each
# interval gets exactly one (claim_verdict). "no difference shown" may add "(estimate of opposite sign)";
# "equivalent" is returned as "equivalent within ±{margin}": match them by prefix (verdict_kind).
PAPER_VERDICTS = ("reproduced", "right direction, smaller than the paper's", "no difference shown", "opposite",
                  "a difference the paper has none of", "equivalent", "inconclusive")
# A comparison trained on one seed reads no verdict at all, however narrow its dev interval: no verdict word.
NO_VERDICT = "one seed: no verdict"
# The answer to a question of the series' own (a comparison the paper does not make), "<question>: <answer>".
OWN_ANSWERS = ("yes", "no", "cannot tell")


def verdict_kind(verdict: str) -> str:
    """A verdict without its detail: one of PAPER_VERDICTS, or OWN_ANSWERS for the series' own questions
    ("stage 1 beats more steps: no (equivalent within ±1)" -> "no"), for colours and counts."""
    v = str(verdict)
    if v == NO_VERDICT:
        return "no verdict"
    if ": " in v:
        return v.rsplit(": ", 1)[1].split(" (")[0]
    return next((kind for kind in PAPER_VERDICTS if v.startswith(kind)), v)


# Dev set sizes of the paper's tables (GLUE / SNLI dev). The paper's MNLI is the mean of matched and mismatched;
# matched (9815) stands for both (mismatched has 9832), which moves the resolution by far less than 0.01 points.
PAPER_DEV_SIZES = {"rte": 277, "qnli": 5463, "mnli": 9815, "snli": 9842}


def _bounds(interval: dict):
    """low, high widened to hold the point difference (an interval from elsewhere may, rarely, miss its own
    estimate, and no verdict may contradict the estimate's sign)."""
    d = interval.get("difference", interval["low"])
    return min(interval["low"], d), max(interval["high"], d)


def _no_number(x) -> bool:
    return x is None or x == "" or x != x


def no_difference_claimed(paper_difference, resolution=None) -> bool:
    """The paper's gap is 0 or below what its single run can show (`resolution`): a claim of no difference."""
    return float(paper_difference) == 0 or (not _no_number(resolution) and abs(float(paper_difference)) < resolution)


def claim_verdict(interval: dict, paper_difference, resolution=None, margin: float = 1.0) -> str:
    """The verdict on a claim of the paper, in its direction and size (PAPER_VERDICTS).

    The paper claims a gap (in its direction, +g): 'reproduced' when the interval lies on the paper's side of 0
    and reaches g (g inside it, or the interval beyond g); 'right direction, smaller than the paper's' when it lies
    on the paper's side but below g; 'no difference shown' when it holds 0 and lies below g (with '(estimate of
    opposite sign)' when the estimate is); 'opposite' when it lies on the other side of 0; 'inconclusive' when it
    holds both 0 and g. The paper claims no difference (its gap 0, or below `resolution`): 'a difference the paper
    has none of' when the interval excludes 0; 'equivalent within ±margin' when it lies inside ±margin; else
    'inconclusive'."""
    if _no_number(paper_difference):
        raise ValueError("the paper gives no number for this comparison: it is the series' own (own_verdict)")
    lo, hi = _bounds(interval)
    if no_difference_claimed(paper_difference, resolution):
        if lo > 0 or hi < 0:
            return "a difference the paper has none of"
        return f"equivalent within ±{margin:g}" if -margin <= lo and hi <= margin else "inconclusive"
    p = float(paper_difference)
    lo, hi, estimate = (lo, hi, interval["difference"]) if p > 0 else (-hi, -lo, -interval["difference"])
    if hi < 0:
        return "opposite"
    if lo > 0:
        return "reproduced" if hi >= abs(p) else "right direction, smaller than the paper's"
    if hi >= abs(p):
        return "inconclusive"
    return "no difference shown" + (" (estimate of opposite sign)" if estimate < 0 else "")


def own_verdict(interval: dict, question: str, margin: float = 1.0) -> str:
    """The answer to a question of the series' own, "A beats B" in its words: '<question>: yes' when the interval
    lies above 0, 'no' when below (B is better) or, with '(equivalent within ±margin)', inside ±margin; else
    'cannot tell'."""
    lo, hi = _bounds(interval)
    if lo > 0:
        answer = "yes"
    elif hi < 0:
        answer = "no"
    elif -margin <= lo and hi <= margin:
        answer = f"no (equivalent within ±{margin:g})"
    else:
        answer = "cannot tell"
    return f"{question}: {answer}"


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
        return f"the paper gives no number: the series' own question, {a} vs {b}"
    p, where = float(paper_difference), f"on {task.upper()} the paper has"
    if not _no_number(resolution) and abs(p) < resolution:
        return (f"{where} {a} and {b} {abs(p):.2f} apart, below the {resolution:.2f} its single run can show: "
                "no difference")
    if p == 0:
        return f"{where} {a} and {b} 0.00 apart: no difference"
    return f"{where} {a} {abs(p):.2f} {'above' if p > 0 else 'below'} {b}"


# ---- which comparisons: the paper's headline family, the paper's other claims, the series' own questions ---------

# Which comparisons: each method's record (tmkd.model.methods) names the comparisons it is the first arm of and their
# family: the paper's headline claims, named before any run (KD helps: m-o-1 over no KD; two stages help: TMKD over
# one-stage m-o-1; TMKD over no KD), one family on every task and dev split of the run, adjusted together; the
# paper's other claims (exploratory); and the series' own questions (the compute-matched control, the weak-teacher
# variants), which the paper does not ask.


def own_question(a: str, b: str) -> str:
    """The question a comparison the paper does not make asks, in the series' own words."""
    c = comparison(a, b)
    return c.question if c and c.question else f"{label(a)} beats {label(b)}"


def is_own(a: str, b: str) -> bool:
    c = comparison(a, b)
    return bool(c) and c.family == "own"


def family_size(tasks) -> int:
    """Members of the primary family: each headline comparison on each task and dev split (MNLI has two)."""
    return len(comparisons(family="primary")) * sum(len(dev_splits(t)) for t in tasks)


def paper_claim(a: str, b: str, task: str) -> dict:
    """The paper's difference A - B on `task` (Table 4, points; None without both numbers, and for the series'
    own questions) and the smallest gap its single run could show there (paper_resolution at the rows' mean)."""
    def reported(m):          # a method the paper reports (its record's paper row) on `task`, else None
        return PUBLISHED["paper"][m].get(task) if m in REGISTRY and REGISTRY[m].paper else None
    pa, pb = reported(a), reported(b)
    if pa is None or pb is None or is_own(a, b):
        return {"paper_difference": None, "resolution": None}
    return {"paper_difference": round(pa - pb, 2),
            "resolution": round(paper_resolution((pa + pb) / 2, PAPER_DEV_SIZES[task]), 2)}


def comparison_row(task: str, split: str, a: str, b: str, interval: dict) -> dict:
    """One comparison as the interval tables hold it, before the family's adjustment (adjust_family adds the
    verdict): whose claim it is, its family, the paper's claim in words, this run's difference and 95 % interval,
    the two standard errors and the p-value (so that the table alone can be adjusted again)."""
    paper = paper_claim(a, b, task)
    p, resolution = paper["paper_difference"], paper["resolution"]
    la, lb = label(a), label(b)
    return {"task": task, "split": split, "a": a, "b": b, "whose": "paper" if p is not None else "series",
            "family": "primary" if getattr(comparison(a, b), "family", "") == "primary" else "exploratory",
            "claim": claim_words(la, lb, task, p, resolution) if p is not None else
            f"the series' own question (the paper makes no such comparison): {own_question(a, b)}",
            "seeds": interval["seeds"][0], "seed_level": "borrowed" if interval.get("borrowed") else
            "measured" if interval["seed_level"] else "none", "t_seeds": t_seeds(interval),
            "examples": interval["examples"], "paper_difference": p,
            "paper_resolution": resolution, "difference": round(interval["difference"], 2),
            "low": round(interval["low"], 2), "high": round(interval["high"], 2),
            "se_seeds": round(interval["se_seeds"], 4), "se_examples": round(interval["se_examples"], 4),
            "p_value": float(f"{interval['p_value']:.4g}")}


def power_columns(row: dict, interval: dict) -> dict:
    """What the comparison could detect at the level its verdict reads (80 % power), and the dev examples and seeds
    a true difference of the paper's size would need here (a directional claim of the paper only)."""
    level = float(row["verdict_level"])
    found = detectable(interval["se_seeds"], interval["se_examples"], t_seeds(interval), level)
    p = row["paper_difference"]
    directional = row["whose"] == "paper" and not no_difference_claimed(p, row["paper_resolution"])
    need = needed_size(interval, p, level) if directional else {"examples": None, "seeds": None}
    return {"detectable": round(found, 2), "examples_needed": need["examples"], "seeds_needed": need["seeds"]}


def adjust_family(rows, intervals, size: int, margin: float = 1.0) -> list:
    """The primary rows adjusted together (Holm over a family of `size`, its members not among `rows` counting as
    never rejected), each with the interval at its Holm-consistent level (tmkd.stats.intervals.holm_levels); every other
    row keeps its unadjusted 95 % interval and says so. Then, on the interval each row states, its verdict and
    what it could detect (power_columns, from `intervals`, the rows' own, in order)."""
    rows = [dict(r) for r in rows]
    primary = [r for r in rows if r["family"] == "primary"]
    p = [float(r["p_value"]) for r in primary]
    for r, adjusted, level in zip(primary, holm(p, size), holm_levels(p, size)):
        r.update(adjustment=f"Holm over {size}", p_holm=float(f"{adjusted:.4g}"), verdict_level=round(level, 5))
    for r, interval in zip(rows, intervals):
        if r["family"] != "primary":
            r.update(adjustment="none", p_holm=None, verdict_level=LEVEL)
        low, high = interval_at(interval, float(r["verdict_level"]))
        r.update(verdict_low=round(low, 2), verdict_high=round(high, 2))
        shown = {"difference": float(r["difference"]), "low": r["verdict_low"], "high": r["verdict_high"]}
        if not interval.get("seed_level", True):     # one seed: its own seed's chance is unmeasured, so no verdict
            r["verdict"] = NO_VERDICT
        else:
            r["verdict"] = (own_verdict(shown, own_question(r["a"], r["b"]), margin) if r["whose"] == "series" else
                            claim_verdict(shown, r["paper_difference"], r["paper_resolution"], margin))
        r.update(power_columns(r, interval))
    return rows


# ---- the comparisons of chapters 04, 06 and 08, on this run's students -----------------------------------------

def method_correct(cfg: Config, task: str, method: str, split: str):
    """(correct, ids): correct is (seeds, dev examples) booleans, whether `method`'s prediction is the gold label, in
    the order of ids, the sorted example ids (the same for every seed, checked)."""
    out, ids = [], None
    how = method_record(method).combine
    for specs in (method_specs(cfg, task, method, s) for s in arm_seeds(cfg, method)):
        preds = [student_predictions(cfg, s, split) for s in specs]
        order = np.sort(preds[0]["idx"])
        if ids is not None and not np.array_equal(order, ids):
            raise ValueError(f"{method} on {task} {split}: its seeds were scored on different dev examples")
        ids = order
        probs = [align_examples(p["probs"], p["idx"], order) for p in preds]
        gold = align_examples(preds[0]["labels"], preds[0]["idx"], order)
        predicted = combine_students(probs, how) if how in ("avg", "vote") else probs[0].argmax(-1)
        out.append(predicted == gold)
    return np.stack(out), ids


def compare_methods(cfg: Config, pairs, tasks=None):
    """For each task, dev split and pair (A, B) of trained methods: A's accuracy minus B's in points (mean over
    seeds), its 95 % interval, p-value and the smallest difference it could detect; the paper's headline
    comparisons adjusted together (Holm over the whole family of the run's tasks: members not in `pairs` count
    as never rejected), the others exploratory; and each row's verdict. A weak-teacher variant is compared only
    on a task where the configuration trains it."""
    import pandas as pd
    keys, intervals = [], []
    for task in tasks or cfg.tasks:
        variants = configured_variants(cfg, task)
        for split in dev_splits(task):
            for a, b in pairs:
                if any(method_record(m).needs_weak and m not in variants for m in (a, b)):
                    continue
                (ca, ia), (cb, ib) = method_correct(cfg, task, a, split), method_correct(cfg, task, b, split)
                both = min(len(ca), len(cb))     # the seeds both arms have (side arms train the first side_seeds)
                ca, cb = ca[:both], cb[:both]
                keys.append((task, split, a, b))
                intervals.append(paired_interval(ca, cb, ia, ib))
    intervals = lend_seed_level(keys, intervals)
    rows = [comparison_row(*k, i) for k, i in zip(keys, intervals)]
    return pd.DataFrame(adjust_family(rows, intervals, family_size(cfg.tasks), cfg.equivalence_margin))


def lend_seed_level(keys, intervals) -> list:
    """Each one-seed comparison ((task, split, a, b) in `keys`) given the seed level of the headline comparisons
    measured over several seeds on its task and dev split: the largest per-seed variance var(d_s) among them, with
    that comparison's seeds for t's degrees of freedom (borrow_seed_level). Without one, the one-seed interval is
    left as it is (the dev sample's alone) and says so (seed_level "none")."""
    lender = {}
    for (task, split, a, b), i in zip(keys, intervals):
        if getattr(comparison(a, b), "family", "") == "primary" and i["seed_level"]:
            if (task, split) not in lender or i["parts"]["seeds"] > lender[(task, split)][0]:
                lender[(task, split)] = (i["parts"]["seeds"], i["seeds"][0])
    return [borrow_seed_level(i, *lender[k[:2]]) if not i["seed_level"] and k[:2] in lender else i
            for k, i in zip(keys, intervals)]


# ---- how the comparisons read: a table and a forest plot ----------------------------------------------------------

VERDICT_COLORS = {"reproduced": "tab:green", "right direction, smaller than the paper's": "tab:olive",
                  "no difference shown": "tab:purple", "opposite": "tab:red",
                  "a difference the paper has none of": "tab:orange", "equivalent": "tab:blue",
                  "inconclusive": "tab:gray", "yes": "tab:cyan", "no": "tab:pink", "cannot tell": "tab:brown",
                  "no verdict": "silver"}


def group_of(r) -> str:
    """primary | exploratory | own: where a comparison (a row of an interval table) stands, the paper's headline
    family, one of its other claims, or the series' own question."""
    return "own" if r.get("whose") == "series" else "primary" if r.get("family") == "primary" else "exploratory"


def one_seed(r) -> bool:
    """A comparison trained on one seed: its interval holds the dev sample's chance only, so no verdict is read."""
    return str(r.get("seeds", "")) in ("1", "1.0")


def seeds_label(r) -> str:
    """"7 seeds" or "1 seed, seed level borrowed": how many seeds a comparison pairs, and what its seed level is."""
    n = int(float(r["seeds"]))
    how = {"borrowed": ", seed level borrowed", "none": ", no seed level"}.get(r.get("seed_level"), "")
    return f"{n} seed{'s' if n > 1 else ''}{how}"


def detectable_text(r) -> str:
    """A row's detectable difference as written everywhere: "2.44"; on one seed without a borrowed seed level a
    lower bound, "≥ 1.00", because another seed's chance, which it does not hold, only widens it."""
    return ("≥ " if one_seed(r) and r.get("seed_level") != "borrowed" else "") + f"{float(r['detectable']):.2f}"


def plot_intervals(intervals, title: str = "A minus B at matched seeds, dev accuracy points"):
    """Forest plot: one line per comparison and task, the interval its verdict reads (a primary comparison's is
    adjusted for its family: the thin line beyond it is its unadjusted 95 % interval) around this run's
    difference, the paper's difference as a cross, and 0 (no difference) as a vertical line. Labels say whether a
    comparison is of the paper's headline family, one of its other claims (exploratory) or the series' own."""
    import matplotlib.pyplot as plt
    d = intervals.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(d) + 1.2))          # wide: the labels leave the axes room
    y = np.arange(len(d))[::-1]
    for yi, (_, r) in zip(y, d.iterrows()):
        c = VERDICT_COLORS[verdict_kind(r["verdict"])]
        borrowed = r.get("seed_level") == "borrowed"
        if r.get("seed_level") != "none":     # one seed without a seed level to borrow: a point, no interval
            ax.plot([r["low"], r["high"]], [yi, yi], color=c, lw=2.2, ls="--" if borrowed else "-")
            if group_of(r) == "primary":      # Holm's wider interval, the verdict's, thin with end marks
                ax.plot([r["verdict_low"], r["verdict_high"]], [yi, yi], color=c, lw=0.9, marker="|", ms=9)
        ax.plot(r["difference"], yi, "o", color=c, mfc="white" if one_seed(r) else c)
        if r.get("paper_difference") not in (None, "") and r["paper_difference"] == r["paper_difference"]:
            ax.plot(float(r["paper_difference"]), yi, "x", color="k")
    split = lambda s: "" if s in ("validation", "", None) or s != s else f" {str(s).split('_')[-1]}"   # noqa: E731
    labels = [f"[{group_of(r)}] {r['task'].upper()}{split(r.get('split'))}: {label(r['a'])} - "
              f"{label(r['b'])} ({seeds_label(r)})" for _, r in d.iterrows()]
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    crosses = d["paper_difference"].map(lambda x: x not in (None, "") and x == x).any()
    lent = (d.get("seed_level", "") == "borrowed").any()
    ax.set_xlabel("difference in dev accuracy (points): thick, 95 %" + ("; thin with end marks, Holm-adjusted"
                  if (d["family"] == "primary").any() else "") + ("; dashed: one seed, seed level borrowed" if lent
                  else "") + ("; x = the paper's difference" if crosses else ""), fontsize=8)
    shown = {verdict_kind(v) for v in d["verdict"]}
    handles = [plt.Line2D([], [], color=c, lw=2, label=v) for v, c in VERDICT_COLORS.items() if v in shown]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def interval_table(intervals):
    """The intervals as a reader reads them: task, where the comparison stands (the paper's headline family,
    adjusted with Holm; one of its other claims, exploratory and unadjusted; or the series' own question), arms A
    and B, the paper's difference, this run's with its 95 % interval, the interval its verdict reads (its level),
    the Holm-adjusted p of a primary comparison, the smallest difference this run could detect, and the verdict."""
    import pandas as pd
    d = intervals.reset_index(drop=True)
    pts = lambda x: "" if x in ("", None) or x != x else f"{float(x):+.2f}"  # noqa: E731
    return pd.DataFrame({
        "task": d["task"].str.upper() + d["split"].map(lambda s: "" if s == "validation" else f" {s.split('_')[-1]}"),
        "comparison": [{"primary": f"primary ({r['adjustment']})", "exploratory": "exploratory, unadjusted",
                        "own": "the series' own question"}[group_of(r)] for r in d.to_dict("records")],
        "A": d["a"].map(label), "B": d["b"].map(label), "seeds": [seeds_label(r) for r in d.to_dict("records")],
        "paper A - B": d["paper_difference"].map(pts), "here A - B": d["difference"].map(pts),
        "95 % interval": [f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in zip(d["low"], d["high"])],
        "verdict's interval": [f"[{lo:+.2f}, {hi:+.2f}] ({100 * float(lv):.1f} %)"
                               for lo, hi, lv in zip(d["verdict_low"], d["verdict_high"], d["verdict_level"])],
        "p (Holm)": d["p_holm"].map(lambda x: "" if x in ("", None) or x != x else f"{float(x):.3g}"),
        "detectable": [detectable_text(r) for r in d.to_dict("records")], "verdict": d["verdict"]})
