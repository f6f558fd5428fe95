"""The plain words every answer opens with (chapters 04-08 and the README's first screen): absolute accuracies, a
difference with its 95 % interval and seeds beside the paper's number, every arm at the seed they all have, and the
paper's headline claims by verdict. Short sentences, each read in one pass; the verdicts' vocabulary stays in the
interval tables (tmkd.stats.evidence) and in chapter 04's one paragraph on it."""
from __future__ import annotations

from tmkd.core.numbers import pct
from tmkd.model.methods import short_name
from tmkd.reporting.report import first_seed, per_seed
from tmkd.reporting.takeaways import pair_name, where
from tmkd.stats.evidence import PAPER_VERDICTS, verdict_kind


def difference_words(r) -> str:
    """"+5.83 points (95 % interval +3.96 to +7.70, 7 paired seeds)": a comparison plainly, at its unadjusted 95 %
    interval (the one every chapter shows alike; the verdicts' adjusted levels live in the tables)."""
    n = int(float(r["seeds"]))
    seeds = f"{n} paired seeds" if n > 1 else "one seed" + (
        ", its seed level borrowed" if r.get("seed_level") == "borrowed" else "")
    return (f"{float(r['difference']):+.2f} points (95 % interval {float(r['low']):+.2f} to {float(r['high']):+.2f}, "
            f"{seeds})")


def difference_sentence(r) -> str:
    """"TMKD minus m-o-1: +5.83 points (...); the paper has +5.73.": one comparison in a short sentence."""
    p = r.get("paper_difference")
    paper = "" if p is None or p == "" or p != p else f"; the paper has {float(p):+.2f}"
    return f"{pair_name(r)}: {difference_words(r)}{paper}."


def accuracies_sentence(metrics, task: str, methods) -> str:
    """"On QNLI dev: the teachers 72.5 % on average, no KD 68.1 %, m-o-1 65.6 % and TMKD 71.4 % (7 seeds each).":
    absolute accuracies, each a mean over its seeds, with how many."""
    seeds = per_seed(metrics, tuple(methods))
    seeds = seeds[seeds["task"] == task]
    parts, counts = [], {}
    for m in methods:
        acc = seeds.loc[seeds["method"] == m, "accuracy"]
        if not len(acc):
            continue
        if m == "teacher":
            parts.append(f"the teachers {pct(acc.mean())} % on average")
        else:
            parts.append(f"{short_name(m)} {pct(acc.mean())} %")
            counts[m] = len(acc)
    if not parts:
        return ""
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]
    n = set(counts.values())
    one = next(iter(n)) if len(n) == 1 else 0
    tail = ((" (one seed)" if one == 1 else f" ({one} seeds{' each' if len(counts) > 1 else ''})") if one else
            " (seeds: " + ", ".join(f"{short_name(m)} {c}" for m, c in counts.items()) + ")")
    return f"On {task.upper()} dev: {listed}{tail}."


def at_first_seed_sentence(metrics, task: str, methods) -> str:
    """"At seed 42, which every arm has: no KD 65.1 %, 1-o-1 61.4 % and m-o-1 64.9 %.": a one-seed arm read against
    the main arms at its own seed, never against their mean over seeds."""
    seeds = per_seed(metrics, tuple(methods))
    first = first_seed(metrics)
    at = seeds[(seeds["task"] == task) & (seeds["seed"] == first)].groupby("method")["accuracy"].mean()
    parts = [f"{short_name(m)} {pct(at[m])} %" for m in methods if m in at.index]
    if len(parts) < 2:
        return ""
    return f"At seed {first}, which every arm has: {', '.join(parts[:-1])} and {parts[-1]}."


def kept_last_sentence(metrics, method: str, task: str) -> str:
    """How often `method` kept its last allowed epoch (it may still have been improving), from metrics.csv's
    best_epoch and epochs; "" when it never did or the run keeps no epoch."""
    if "best_epoch" not in metrics.columns:
        return ""
    rows = metrics[(metrics["method"] == method) & (metrics["task"] == task) & (metrics["sweep"].astype(str) == "")]
    rows = rows.drop_duplicates("seed")
    kept = rows["best_epoch"].astype(str).str.strip().replace("", "nan").astype(float)
    last = (kept == rows["epochs"].astype(float)).sum()
    if not last:
        return ""
    return (f"{short_name(method)} kept its last allowed epoch on {last} of {len(rows)} seeds, so it may still have "
            "been improving there (chapter 06's compute-matched control trains it longer).")


def headline_words(rows) -> list:
    """The paper's headline claims on one task, one short sentence per verdict that occurs, in the verdict's own
    words ("opposite to the paper" only for the verdict opposite): which claims it is."""
    if not rows:
        return []
    found = {}
    for r in rows:
        found.setdefault(verdict_kind(r["verdict"]), []).append(f"{short_name(r['a'])} vs {short_name(r['b'])}"
                                                              + ("" if r["split"] == "validation" else
                                                                 f" ({where(r)})"))
    words = {"opposite": "opposite to the paper"}
    return [f"Of the paper's headline claims, {words.get(kind, kind)}: {' and '.join(dict.fromkeys(names))}."
            for kind in (*PAPER_VERDICTS, "no verdict") for k, names in found.items() if k == kind]
