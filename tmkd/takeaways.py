"""What this run shows, in words generated from its numbers: one sentence per result, per sweep and per interval,
and each chapter's takeaway. Never fixed prose that an output could contradict."""
from __future__ import annotations

from .evidence import OWN_ANSWERS, PAPER_VERDICTS, group_of, verdict_kind
from .intervals import SPAN
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


def control_sentence(curves) -> str:
    """Chapter 06: where each arm beside the compute-matched control kept its best epoch, of the epochs it ran
    (first seed; control_curves), and whether the control's best select score reached m-o-1's."""
    if not len(curves):
        return ("No curve: with student_patience = 0 every arm trains its fixed epochs to the end of its schedule "
                "(the control: its whole budget).")
    lines = []
    for task, on in curves.groupby("task", sort=False):
        best = on[on["best"]].set_index("method")
        kept = "; ".join(f"{SHORT_NAMES.get(m, METHOD_LABELS.get(m, m))} kept epoch {r.epoch:g} of the {r.last_epoch:g} "
                         f"it ran ({r.select_accuracy:.1f} %)" for m, r in best.iterrows())
        text = f"{task.upper()}: {kept}."
        if {"mo1", "mo1_matched"} <= set(best.index):
            gap = best.loc["mo1_matched", "select_accuracy"] - best.loc["mo1", "select_accuracy"]
            text += f" The control's best select score is {gap:+.1f} points from m-o-1's."
        lines.append(text)
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


# ---- the comparisons in words (chapters 04, 06 and 08, and the README through tmkd.publish) -------------------------

GROUPS = (("primary", "The paper's headline claims (primary family, named before the run; verdicts on intervals "
                      "adjusted together with Holm's procedure)"),
          ("exploratory", "The paper's other claims (exploratory: unadjusted 95 % intervals, never headlined)"),
          ("own", "The series' own questions (the paper makes no such comparison: not counted among its claims)"))


def _rows(intervals, group: str) -> list:
    return [r for r in intervals.to_dict("records") if group_of(r) == group]


def _missing(x) -> bool:
    return x is None or x == "" or x != x


def span(r) -> str:
    """The difference and the interval its verdict reads: "+1.20 [-0.60, +3.00] (Holm-adjusted 98.3 %)" for a
    primary comparison, "+1.20 [-0.33, +2.72] (95 %)" for any other."""
    level = float(r["verdict_level"]) * 100
    how = f"Holm-adjusted {level:.1f} %" if group_of(r) == "primary" else f"{level:g} %"
    return f"{float(r['difference']):+.2f} [{float(r['verdict_low']):+.2f}, {float(r['verdict_high']):+.2f}] ({how})"


SHORT_NAMES = {"no_kd": "no KD", "mo1": "m-o-1", "mom_avg": "m-o-m", "mo1_matched": "the compute-matched control"}


def pair_name(r) -> str:
    """"TMKD minus m-o-1": a comparison's arms in short."""
    short = lambda m: SHORT_NAMES.get(m, METHOD_LABELS.get(m, m))  # noqa: E731
    return f"{short(r['a'])} minus {short(r['b'])}"


def where(r) -> str:
    """"QNLI", "MNLI matched": the task and, for a task with two dev sets, which."""
    return r["task"].upper() + ("" if r["split"] == "validation" else f" {r['split'].split('_')[-1]}")


def row_sentence(r) -> str:
    """One comparison: the claim in its words, this run's difference with the interval its verdict reads, the
    smallest difference it could detect, and the verdict."""
    return f"{where(r)}: {r['claim']}; here {span(r)}, detectable {float(r['detectable']):.2f} -> {r['verdict']}"


def counted(rows, kinds) -> str:
    """"1 no difference shown, 2 inconclusive" (only the kinds that occur, in the order of `kinds`)."""
    found = [verdict_kind(r["verdict"]) for r in rows]
    return ", ".join(f"{found.count(k)} {k}" for k in kinds if k in found) or "none"


def verdict_summary(intervals) -> str:
    """The verdicts counted apart: the paper's headline family, its other claims, the series' own questions."""
    parts = []
    for group, title in GROUPS:
        rows = _rows(intervals, group)
        if rows:
            kinds = OWN_ANSWERS if group == "own" else PAPER_VERDICTS
            parts.append(f"{title.split(' (')[0]}: {len(rows)} ({counted(rows, kinds)})")
        elif group == "primary":
            parts.append(f"{title.split(' (')[0]}: none in this table (chapters 06 and 08 hold them)")
    return "; ".join(parts[:1] + [p[0].lower() + p[1:] for p in parts[1:]]) + "."


def interval_sentences(intervals) -> str:
    """Every comparison in words, grouped: the paper's headline family, its other claims, the series' own."""
    lines = []
    for group, title in GROUPS:
        rows = _rows(intervals, group)
        if rows:
            lines += [f"{title}:"] + [f"  {row_sentence(r)}" for r in rows]
    return "\n".join(lines)


def _row(intervals, a: str, b: str, task: str):
    r = intervals[(intervals["a"] == a) & (intervals["b"] == b) & (intervals["task"] == task)]
    return None if not len(r) else r.iloc[0].to_dict()


def _side(r) -> int:
    """+1 when the interval the verdict reads lies above 0, -1 below, 0 when it holds 0."""
    return 1 if float(r["verdict_low"]) > 0 else -1 if float(r["verdict_high"]) < 0 else 0


def plainly(r, a: str, b: str) -> str:
    """What a comparison says, plainly: "TMKD beats no KD", "... is worse than ...", "... does not beat ..."."""
    return {1: f"{a} beats {b}", -1: f"{a} is worse than {b}"}.get(_side(r), f"{a} does not beat {b} beyond this "
                                                                               "run's noise (nor fall behind it)")


def kd_takeaway(metrics, intervals, tasks) -> str:
    """Chapter 04: does distillation beat the no-KD student here? Per task the means over seeds, then m-o-1 minus
    no KD, the paper's headline claim, on its family-adjusted interval with its verdict; then one sentence over all
    tasks. The other KD methods are compared in the exploratory rows."""
    seeds = per_seed(metrics, ("no_kd",) + KD_METHODS)
    lines, beaten = [], []
    for task in tasks:
        means = seeds[seeds["task"] == task].groupby("method")["accuracy"].mean()
        if "no_kd" not in means or not set(KD_METHODS) & set(means.index):
            continue
        kd = means.reindex([m for m in KD_METHODS if m in means.index])
        best = kd.idxmax()
        text = (f"{task.upper()}: no KD {means['no_kd']:.1f} %; the best KD method, {METHOD_LABELS[best]}, "
                f"{kd[best]:.1f} % ({kd[best] - means['no_kd']:+.1f} points, means over seeds).")
        r = _row(intervals, "mo1", "no_kd", task)
        if r is not None:
            text += f" m-o-1 minus no KD (the paper's headline claim): {span(r)}: {plainly(r, 'm-o-1', 'no KD')}; " \
                    f"verdict: {r['verdict']}."
            if _side(r) > 0:
                beaten.append(task.upper())
        lines.append(text)
    lines.append(f"So m-o-1 beats the no-KD student beyond noise on {', '.join(beaten)}." if beaten else
                 "So m-o-1 does not beat the no-KD student beyond this run's noise on any task (the other KD methods: "
                 "the exploratory rows above).")
    return "\n".join(lines)


def matched_takeaway(intervals, tasks) -> str:
    """Chapter 06, per task: TMKD against one-stage m-o-1 first (the paper's claim), then against no KD (plainly,
    when TMKD does not beat it), then the series' own question, TMKD against the compute-matched control: does
    stage 1 beat more steps on the stage-2 pairs?"""
    lines = []
    for task in tasks:
        one, none, matched = (_row(intervals, "tmkd", b, task) for b in ("mo1", "no_kd", "mo1_matched"))
        if one is None:
            continue
        text = f"{task.upper()}: TMKD minus one-stage m-o-1 {span(one)}: {plainly(one, 'TMKD', 'one-stage m-o-1')} " \
               f"(verdict on the paper's claim: {one['verdict']})."
        if none is not None:
            text += f" TMKD minus no KD {span(none)}: " + ("TMKD beats the no-KD student." if _side(none) > 0 else
                                                           f"{plainly(none, 'TMKD', 'the no-KD student')}: two-stage "
                                                           "distillation does not pay here.")
        if matched is not None:
            control = float(one["difference"]) - float(matched["difference"])
            text += (f" The series' own question, stage 1 against more steps: TMKD minus m-o-1 given as many "
                     f"examples {span(matched)} -> {matched['verdict']} (the control itself is {control:+.2f} points "
                     "from one-stage m-o-1).")
        lines.append(text)
    return "\n".join(lines) or "No two-stage comparison in this run."


def conclusion(intervals) -> str:
    """Chapter 08: the verdicts counted apart, then every comparison in one line, the paper's headline family
    first and the series' own questions last (never among the paper's), then what a decision on an undecided
    claim of the paper would need."""
    lines = [verdict_summary(intervals)]
    for group, title in GROUPS:
        rows = _rows(intervals, group)
        if rows:
            lines += ["", f"{title}:"] + [f"- {row_sentence(r)}" for r in rows]
    power = power_sentences(intervals)
    return "\n".join(lines + ([""] + power if power else []))


def power_sentences(intervals) -> list:
    """For each claim of the paper with a direction that this run does not reproduce: what this run could
    detect, and about how many dev examples (these seeds) or seeds (these examples) a gap of the paper's size
    would need here (tmkd.intervals.needed_size). The series' own questions have no paper gap: none."""
    if "examples_needed" not in intervals.columns:
        return []
    lines = []
    for r in intervals.to_dict("records"):
        if group_of(r) == "own" or _missing(r.get("paper_difference")) or verdict_kind(r["verdict"]) == "reproduced":
            continue
        examples, seeds = r.get("examples_needed"), r.get("seeds_needed")
        if _missing(examples) and _missing(seeds):
            continue
        pair = f"{where(r)} {METHOD_LABELS.get(r['a'], r['a'])} vs {METHOD_LABELS.get(r['b'], r['b'])}"
        if float(r["detectable"]) == 0:
            lines.append(f"{pair}: both arms predict alike on every dev example and seed.")
            continue
        if float(r["detectable"]) >= SPAN:
            lines.append(f"{pair}: this run detects no difference two accuracies can have (detectable "
                         f"{float(r['detectable']):.0f} points); the paper's {abs(float(r['paper_difference'])):.2f} "
                         f"would need {_need(examples, seeds)}.")
            continue
        if not _missing(examples) and int(float(examples)) <= int(float(r["examples"])):
            lines.append(f"{pair}: this run detects {float(r['detectable']):.2f} points, less than the paper's "
                         f"{abs(float(r['paper_difference'])):.2f}: a true gap of the paper's size would have shown "
                         "(80 % power).")
            continue
        lines.append(f"{pair}: this run detects {float(r['detectable']):.2f} points; the paper's "
                     f"{abs(float(r['paper_difference'])):.2f} would need {_need(examples, seeds)}.")
    return lines


def _need(examples, seeds) -> str:
    """"about 4,975 dev examples at these seeds, or about 5 seeds at these examples"."""
    examples = "no number of dev examples alone" if _missing(examples) else f"about {int(float(examples)):,} dev examples"
    seeds = "no number of seeds alone" if _missing(seeds) else f"about {int(float(seeds))} seeds"
    return f"{examples} at these seeds, or {seeds} at these examples"



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
