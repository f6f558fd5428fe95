"""What this run shows, in words generated from its numbers: one sentence per result, per sweep and per interval,
and each chapter's takeaway. Never fixed prose that an output could contradict."""
from __future__ import annotations

from .evidence import VERDICTS, verdict_kind
from .method import METHOD_LABELS
from .paper import PUBLISHED
from .report import COLLAPSED, collapsed, dev_noise, log_history, main_rows, per_seed


def result_sentence(metrics, method: str, task: str) -> str:
    """What this run shows for one method on one task, generated from metrics.csv: mean ± sd over seeds, the
    paper's number, and a warning when the model collapsed to one class."""
    seeds = per_seed(metrics, (method,))
    acc = seeds[seeds["task"] == task]["accuracy"]
    label = METHOD_LABELS.get(method, method)
    if not len(acc):
        return f"{label} has no {task.upper()} result in this run."
    spread = f" ± {acc.std():.1f} % over {len(acc)} seeds" if len(acc) > 1 else " % (one seed)"
    paper = PUBLISHED["paper"].get(method, {}).get(task)
    text = f"{label} on {task.upper()}: {acc.mean():.1f}{spread}" + (f" (paper {paper:.2f})" if paper else "")
    models = main_rows(metrics)
    models = models[(models["task"] == task) & (models["method"] == method)]["model"]
    bad = {m: v for m, v in collapsed(metrics).items() if m in set(models)}
    if bad:
        text += f"; {len(bad)} model(s) collapsed (one class for >= {COLLAPSED:.0%} of dev examples)"
    return text + "."


def result_sentences(metrics, methods, tasks) -> str:
    """result_sentence for each task and method that has a result (a variant trained on some tasks only is not
    listed where it did not run); one line saying so when none has."""
    seeds = per_seed(metrics, tuple(methods))
    have = set(zip(seeds["method"], seeds["task"]))
    lines = [result_sentence(metrics, m, t) for t in tasks for m in methods if (m, t) in have]
    return "\n".join(lines) or f"No result for {', '.join(METHOD_LABELS.get(m, m) for m in methods)} in this run."


def verdict_summary(intervals) -> str:
    """"Of 14 comparisons: 2 reproduced, 1 opposite, 11 inconclusive." (only the verdicts that occur)."""
    counts = intervals["verdict"].map(verdict_kind).value_counts()
    return f"Of {len(intervals)} comparisons: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts) + "."


def interval_sentences(intervals) -> str:
    """One line per comparison: the paper's claim in its words, this run's difference with its interval and the
    smallest difference it could detect, and the verdict."""
    lines = []
    for r in intervals.itertuples():
        split = "" if r.split == "validation" else f" ({r.split})"
        lines.append(f"{r.task.upper()}{split}: {r.claim}; here {float(r.difference):+.2f} "
                     f"[{float(r.low):+.2f}, {float(r.high):+.2f}], detectable {float(r.detectable):.2f} -> {r.verdict}")
    return "\n".join(lines)


def convergence_sentence(curves, cfg) -> str:
    """Chapter 03's takeaway on convergence, from the select curves: each arm's kept epoch, and which arms were
    still improving at their last allowed epoch (those could gain from more epochs)."""
    if not len(curves):
        return (f"student_patience = 0 here: every student trains {cfg.student_epochs:g} epochs and no curve is "
                "recorded (the offline profile stops each arm on the select slice: student_patience = 2).")
    lines = []
    for task, on in curves.groupby("task", sort=False):
        best = on[on["best"]]
        kept = ", ".join(f"{METHOD_LABELS.get(r.method, r.method)} {r.epoch:g} ({r.select_accuracy:.1f} %)"
                         for r in best.itertuples())
        rising = [METHOD_LABELS.get(r.method, r.method) for r in best.itertuples()
                  if r.epoch == r.last_epoch and r.epoch >= cfg.student_epochs]
        lines.append(f"{task.upper()}: epoch kept (of at most {cfg.student_epochs:g}) - {kept}. " + (
            f"Still improving at the last epoch: {', '.join(rising)}; more epochs might help "
            f"{'it' if len(rising) == 1 else 'them'}."
            if rising else "Every arm stopped improving before its last epoch: each is compared at its best."))
    noise = dev_noise(curves["select_accuracy"].mean() / 100, cfg.select_size)
    lines.append(f"The select slice has {cfg.select_size} pairs: one epoch's score is uncertain by about +-{noise:.0f} "
                 "points (95 %), so the kept epoch is itself a noisy choice (the dev set, never used to choose, "
                 "judges the arms).")
    return "\n".join(lines)


def sweep_sentence(metrics, knob: str) -> str:
    """A sweep in words (one seed): each value's accuracy and whether the spread exceeds the dev-sample noise."""
    df = metrics[metrics["sweep"].astype(str) == knob].copy()
    if not len(df):
        return f"No {knob} sweep in this run."
    df["accuracy"] = df["accuracy"].astype(float)
    out = []
    for task, g in df.groupby("task"):
        g = g.groupby(knob).agg(accuracy=("accuracy", "mean"), n=("n_examples", "sum"))
        values = ", ".join(f"{k} {a * 100:.1f} %" for k, a in g["accuracy"].items())
        spread = (g["accuracy"].max() - g["accuracy"].min()) * 100
        noise = max(dev_noise(a, n) for a, n in zip(g["accuracy"], g["n"]))
        reading = ("larger than" if spread > noise else "within") + f" the ±{noise:.1f}-point dev-sample interval"
        best = g["accuracy"].idxmax()
        out.append(f"{task.upper()} ({knob}, one seed): {values}; best {best}; spread {spread:.1f} points, {reading}.")
    bad = [m for m in collapsed(df)]
    if bad:
        out.append(f"Collapsed to one class: {', '.join(bad)}.")
    return "\n".join(out)


# ---- each chapter's takeaway -----------------------------------------------------------------------------------

KD_METHODS = ("1o1", "1avgo1", "mom_avg", "mom_vote", "mo1")


def _row(intervals, a: str, b: str, task: str):
    r = intervals[(intervals["a"] == a) & (intervals["b"] == b) & (intervals["task"] == task)]
    return None if not len(r) else r.iloc[0]


def _span(r) -> str:
    return f"{float(r['difference']):+.2f} points [{float(r['low']):+.2f}, {float(r['high']):+.2f}]"


def _side(r) -> int:
    """+1 when the interval lies above 0, -1 below, 0 when it holds 0."""
    return 1 if float(r["low"]) > 0 else -1 if float(r["high"]) < 0 else 0


def kd_takeaway(metrics, intervals, tasks) -> str:
    """Chapter 04: does any KD method beat the no-KD student here? Per task the means over seeds, and m-o-1 minus no
    KD with its interval; then one sentence over all tasks."""
    seeds = per_seed(metrics, ("no_kd",) + KD_METHODS)
    lines, beaten = [], []
    for task in tasks:
        means = seeds[seeds["task"] == task].groupby("method")["accuracy"].mean()
        if "no_kd" not in means or not set(KD_METHODS) & set(means.index):
            continue
        kd = means.reindex([m for m in KD_METHODS if m in means.index])
        best = kd.idxmax()
        text = (f"{task.upper()}: no KD {means['no_kd']:.1f} %; the best KD method, {METHOD_LABELS[best]}, "
                f"{kd[best]:.1f} % ({kd[best] - means['no_kd']:+.1f} points).")
        r = _row(intervals, "mo1", "no_kd", task)
        if r is not None:
            side = _side(r)
            text += f" m-o-1 minus no KD: {_span(r)}, " + ("above 0: m-o-1 beats no KD." if side > 0 else
                                                           "below 0: m-o-1 is worse than no KD." if side < 0 else
                                                           "holding 0: no difference this run can show.")
            if side > 0:
                beaten.append(task.upper())
        lines.append(text)
    lines.append(f"So KD beats the no-KD student beyond noise on {', '.join(beaten)}." if beaten else
                 "So no KD method beats the no-KD student beyond this run's noise.")
    return "\n".join(lines)


def stage1_takeaway(metrics, curves: dict) -> str:
    """Chapter 05: how far each stage-1 soft loss fell (first and last logged values; the curve is per batch, so it
    is not smooth), and what the stage-1 students score on their task's dev set from soft heads alone."""
    lines = []
    for label, folder in curves.items():
        h = log_history(folder)
        if len(h) >= 2:
            first, last = float(h["loss"].iloc[0]), float(h["loss"].iloc[-1])
            change = f" ({abs(1 - last / first) * 100:.0f} % {'lower' if last <= first else 'higher'})" if first else ""
            lines.append(f"{label} stage 1: soft loss {first:.3f} at step {int(h['step'].iloc[0])}, {last:.3f} at step "
                         f"{int(h['step'].iloc[-1])}{change}")
    s1 = metrics[metrics["sweep"].astype(str) == "stage1"]
    for (method, task), g in s1.groupby(["method", "task"]):
        acc = g["accuracy"].astype(float) * 100
        spread = f" ± {acc.std():.1f} over {len(acc)} seeds" if len(acc) > 1 else " (one seed)"
        lines.append(f"{METHOD_LABELS.get(method, method)} after stage 1 alone, on {task.upper()} dev: "
                     f"{acc.mean():.1f} %{spread}, from soft heads never trained on a gold label.")
    return "\n".join(line for line in lines if line)


def matched_takeaway(intervals, tasks) -> str:
    """Chapter 06: is TMKD's gain over one-stage m-o-1 more than the gain of training m-o-1 as long?"""
    lines = []
    for task in tasks:
        one, matched = _row(intervals, "tmkd", "mo1", task), _row(intervals, "tmkd", "mo1_matched", task)
        if one is None or matched is None:
            continue
        text = (f"{task.upper()}: TMKD minus one-stage m-o-1 {_span(one)}; TMKD minus m-o-1 trained for as many "
                f"examples {_span(matched)}. ")
        if _side(matched) > 0:
            text += "TMKD beats even the compute-matched control: stage 1 adds something beyond more steps."
        elif _side(one) > 0 and _side(matched) == 0:
            text += ("The two-stage gain is not distinguishable from the gain of more steps on the stage-2 pairs: "
                     "within this run's noise, stage 1 adds nothing beyond them.")
        elif _side(one) <= 0:
            text += "TMKD does not beat one-stage m-o-1 beyond noise here, so there is no two-stage gain to explain."
        else:
            text += "The compute-matched control beats TMKD: more steps on the stage-2 pairs did better than stage 1."
        lines.append(text)
    return "\n".join(lines) or "No compute-matched comparison in this run."


def conclusion(intervals) -> str:
    """Chapter 08: the verdicts counted, then every comparison this run decides (reproduced, opposite, smaller than
    the paper's, equivalent) in one line each, then what a decision would need where it could not decide."""
    kinds = intervals["verdict"].map(verdict_kind)
    lines = [verdict_summary(intervals)]
    for kind in VERDICTS[:-1]:
        for r in intervals[kinds == kind].to_dict("records"):
            split = "" if r["split"] == "validation" else f" ({r['split'].split('_')[-1]} dev)"
            lines.append(f"{r['verdict'].capitalize()}: {r.get('claim') or r['a'] + ' vs ' + r['b']}{split}; "
                         f"here {_span(r)}.")
    undecided = int((kinds == "inconclusive").sum())
    if undecided:
        lines.append(f"Inconclusive: {undecided} comparison(s); their intervals hold both 0 and the paper's gap.")
    return "\n".join(lines + power_sentences(intervals[kinds == "inconclusive"]))


def power_sentences(intervals) -> list:
    """For each claim with a direction among `intervals`: what this run could detect, and about how many
    dev examples (these seeds) or seeds (these examples) a gap of the paper's size would need here (from the measured
    disagreement between the arms: tmkd.evidence.needed_size)."""
    if "examples_needed" not in intervals.columns:
        return []
    lines = []
    for r in intervals.to_dict("records"):
        gap = r.get("paper_difference")
        if gap in ("", None) or gap != gap or verdict_kind(r["verdict"]) == "reproduced":
            continue
        missing = lambda v: v in ("", None) or v != v  # noqa: E731
        examples, seeds = r.get("examples_needed"), r.get("seeds_needed")
        if missing(examples) and missing(seeds):
            continue
        if float(r["detectable"]) == 0:
            lines.append(f"{r['task'].upper()} {METHOD_LABELS.get(r['a'], r['a'])} vs "
                         f"{METHOD_LABELS.get(r['b'], r['b'])}: both arms predict alike on every dev example and seed.")
            continue
        examples = "no number of dev examples alone" if missing(examples) else f"about {int(examples):,} dev examples"
        seeds = "no number of seeds alone" if missing(seeds) else f"about {int(seeds)} seeds"
        lines.append(f"{r['task'].upper()} {METHOD_LABELS.get(r['a'], r['a'])} vs {METHOD_LABELS.get(r['b'], r['b'])}: "
                     f"this run detects {float(r['detectable']):.2f} points; the paper's {abs(float(gap)):.2f} would "
                     f"need {examples} at these seeds, or {seeds} at these "
                     "examples.")
    return lines


def size_sentence(speed) -> str:
    """Why a shallow student is not proportionally small, from the timed models' parameter counts: the parameters
    per encoder layer (from two student depths) and the rest, mostly the token embeddings, which no depth removes."""
    import re
    on = speed[speed["device"] == speed["device"].mode()[0]]
    depth = {int(m.group(1)): r for r in on.itertuples() if (m := re.search(r"/student-k(\d+)$", str(r.model)))}
    teacher = on[on["model"].astype(str).str.endswith("/teacher")]
    if len(depth) < 2 or not len(teacher):
        return "Fewer than two student depths were timed: no split of the parameters into layers and embeddings."
    low, high = min(depth), max(depth)
    per_layer = (depth[high].params - depth[low].params) / (high - low)
    fixed = depth[low].params - low * per_layer
    t = teacher.iloc[0]
    mid = sorted(depth)[len(depth) // 2]
    return (f"Each encoder layer holds {per_layer / 1e6:.1f} M parameters; the other {fixed / 1e6:.1f} M (mostly the "
            f"token embeddings, vocabulary x hidden size) stay at every depth. So the {mid}-layer student keeps "
            f"{100 * depth[mid].params / t.params:.0f} % of the teacher's {t.params / 1e6:.1f} M parameters, yet runs "
            f"{depth[mid].examples_per_s / t.examples_per_s:.1f}x as many examples/s: an embedding lookup costs "
            "almost nothing, the layers cost the time.")


def int8_sentence(table) -> str:
    """What int8 did to the TMKD student, from int8_table: the accuracy change and the share of predictions kept."""
    if not len(table):
        return "No int8 student was measured (chapter 06's TMKD student is not trained)."
    lines = []
    for split in dict.fromkeys(table["split"]):
        t = table[table["split"] == split]
        fp32, int8 = (float(t.loc[m, "accuracy (%)"]) for m in ("TMKD, fp32", "TMKD, int8"))
        lines.append(f"{split}: int8 {int8:.1f} % vs fp32 {fp32:.1f} % ({int8 - fp32:+.1f} points, seed "
                     f"{int(t['seed'].iloc[0])}); int8 keeps fp32's prediction on "
                     f"{t.loc['TMKD, int8', 'same prediction as fp32 (%)']} % of the examples.")
    return "\n".join(lines)


def majority_sentences(cfg, rows) -> str:
    """Each dev split's majority class (what answering one label always scores) and the teachers at or near it
    (within 2 points: they learned little), from evaluate_teachers' rows."""
    import numpy as np

    from .data import split_dataset
    lines = []
    for (task, split), g in rows[rows["method"] == "teacher"].groupby(["task", "split"], sort=False):
        gold = np.asarray(split_dataset(cfg, task, split)["label"])
        majority = 100 * np.bincount(gold).max() / len(gold)
        acc = g.set_index("model")["accuracy"].astype(float) * 100
        near = [m.split("/")[-1] for m, a in acc.items() if a <= majority + 2]
        name = task.upper() + ("" if split == "validation" else f" {split.split('_')[-1]}")
        lines.append(f"{name}: always answering the majority class scores {majority:.1f} %; " + (
            f"{', '.join(near)} {'is' if len(near) == 1 else 'are'} within 2 points of it (learned little)." if near
            else f"every teacher is above it, by {_span_of(acc.min() - majority, acc.max() - majority)} points."))
    return "\n".join(lines)


def _span_of(low: float, high: float) -> str:
    """"3.1 to 5.0", or "3.1" when both ends round alike."""
    return f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f} to {high:.1f}"
