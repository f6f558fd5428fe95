"""What this run shows, in words generated from its numbers: one sentence per result, per sweep and per interval
(each chapter's answer to its question is tmkd.reporting.answers'). Never fixed prose that an output could contradict; every
accuracy written by tmkd.core.numbers."""
from __future__ import annotations

from tmkd.stats.evidence import OWN_ANSWERS, PAPER_VERDICTS, group_of, one_seed, verdict_kind
from tmkd.stats.intervals import SPAN
from tmkd.model.methods import label, short_name
from tmkd.core.numbers import TABLE4, below_majority, gap, mean_sd, pct, rounded
from tmkd.model.paper import PUBLISHED
from tmkd.reporting.report import COLLAPSED, collapsed, dev_noise, main_rows, per_seed, sweep_rows


def not_learning(accuracy: float, majority, task: str) -> str:
    """"; below the 51.3 % majority class: it did not learn" when it is (majority: {task: %} or None), else ""."""
    if not majority or task not in majority or not below_majority(accuracy, majority[task]):
        return ""
    return f"; at or below the {pct(majority[task])} % majority class: it did not learn"


def result_sentence(metrics, method: str, task: str, majority=None) -> str:
    """What this run shows for one method on one task, generated from metrics.csv: mean ± sd over seeds, the
    paper's number, and a warning when the model collapsed to one class or stayed at or below the majority class
    (`majority`: {task: %}, tmkd.reporting.report.majority_classes)."""
    seeds = per_seed(metrics, (method,))
    acc = seeds[seeds["task"] == task]["accuracy"]
    name = label(method)
    if not len(acc):
        return f"{name} has no {task.upper()} result in this run."
    spread = f" % over {len(acc)} seeds" if len(acc) > 1 else " % (one seed)"
    paper = PUBLISHED["paper"].get(method, {}).get(task)
    text = f"{name} on {task.upper()}: {mean_sd(acc)}{spread}" + (f" (paper {pct(paper, TABLE4)})" if paper else "")
    text += not_learning(acc.mean(), majority, task)
    models = main_rows(metrics)
    models = models[(models["task"] == task) & (models["method"] == method)]["model"]
    bad = {m: v for m, v in collapsed(metrics).items() if m in set(models)}
    if bad:
        text += f"; {len(bad)} model(s) collapsed (one class for >= {COLLAPSED:.0%} of dev examples)"
    return text + "."


def result_sentences(metrics, methods, tasks, majority=None) -> str:
    """result_sentence for each task and method that has a result (a variant trained on some tasks only is not
    listed where it did not run); one line saying so when none has."""
    seeds = per_seed(metrics, tuple(methods))
    have = set(zip(seeds["method"], seeds["task"]))
    lines = [result_sentence(metrics, m, t, majority) for t in tasks for m in methods if (m, t) in have]
    return "\n".join(lines) or f"No result for {', '.join(label(m) for m in methods)} in this run."


def convergence_sentence(curves, cfg) -> str:
    """Chapter 03's takeaway on convergence, from the select curves: each arm's kept epoch, and which arms were
    still improving at their last allowed epoch (those could gain from more epochs)."""
    if not len(curves):
        return (f"student_patience = 0 here: every student trains {cfg.student_epochs:g} epochs and no curve is "
                "recorded (the offline profile stops each arm on the select slice: student_patience = 2).")
    lines = []
    for task, on in curves.groupby("task", sort=False):
        best = on[on["best"]]
        kept = ", ".join(f"{label(r.method)} {r.epoch:g} ({pct(r.select_accuracy)} %)"
                         for r in best.itertuples())
        rising = [label(r.method) for r in best.itertuples()
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


def sweep_sentence(metrics, knob: str, majority=None) -> str:
    """A sweep in words (one seed): each value's accuracy, whether the spread exceeds the dev-sample noise, and a
    value at or below the majority class (`majority`: {task: %}) called out as not learning. The alpha sweep also
    says whether it can test the paper's Table 8 (larger alpha better, except alpha = 1) and what it shows."""
    df = sweep_rows(metrics, knob)
    if not len(df):
        return f"No {knob} sweep in this run."
    out = []
    name = (lambda k: f"{float(k):g}") if knob != "optimizer" else str  # noqa: E731
    for series, g in df.groupby("series", sort=False):
        task = g["task"].iloc[0]
        g = g.groupby(knob).agg(accuracy=("accuracy", "mean"), n=("n_examples", "sum"))
        acc = g["accuracy"] * 100
        values = ", ".join(f"{name(k)} {pct(a)} %" for k, a in acc.items())
        noise = max(dev_noise(a, n) for a, n in zip(g["accuracy"], g["n"]))
        spread = gap(acc.max(), acc.min())
        reading = ("larger than" if float(spread) > rounded(noise) else "within") + f" the ±{pct(noise)}-point dev-sample interval"
        out.append(f"{series} ({knob}, one seed): {values}; best {name(acc.idxmax())}; spread "
                   f"{spread.lstrip('+')} points, {reading}.")
        flat = [name(k) for k, a in acc.items() if not_learning(a, majority, task)]
        if flat:
            out.append(f"Did not learn (at or below the {pct(majority[task])} % majority class): {knob} "
                       f"{', '.join(flat)}.")
        if knob == "alpha" and g_method(df, series) != "mo1":
            out.append(alpha_trend(acc, noise))
        elif knob == "alpha":               # the series' own question: the paper sweeps alpha for TMKD only
            out.append(f"The paper sweeps alpha for TMKD only; {series} is the series' own question (can a quieter "
                       f"soft loss rescue one stage?): at the smallest alpha, {name(acc.index.min())}, it reaches "
                       f"{pct(acc.loc[acc.index.min()])} %, {gap(acc.loc[acc.index.min()], acc.max())} points from "
                       f"its best.")
    bad = [m for m in collapsed(df)]
    if bad:
        out.append(f"Collapsed to one class: {', '.join(bad)}.")
    return "\n".join(out)


def pooling_sentence(pooling, cfg) -> str:
    """Chapter 03's pooling check in words: each arm's accuracy with [CLS] and with the mean of the tokens, and a
    collapsed model (one class for most dev examples) called out."""
    acc = pooling.groupby(["task", "method", "pooling"])["accuracy (%)"].mean().unstack()
    flat = pooling.groupby(["task", "method", "pooling"])["collapsed"].any().unstack()
    mark = lambda task, m, p: f" (collapsed: one class for >= {COLLAPSED:.0%} of dev)" if flat.loc[(task, m), p] else ""  # noqa: E731
    return f"This run uses pooling={cfg.pooling!r}.\n" + "\n".join(
        f"{task.upper()} {label(m)}: [CLS] {pct(acc.loc[(task, m), 'cls'])} %{mark(task, m, 'cls')}, mean of the tokens "
        f"{pct(acc.loc[(task, m), 'mean'])} %{mark(task, m, 'mean')}." for task, m in acc.index)


def sweeps_conclusion(metrics, cfg, majority=None) -> str:
    """Chapter 03's conclusion, generated: the deepest student of the layer sweep against the best teacher and the
    ensemble; whether SGD learned at the learning rate tuned for AdamW; the head depth's best value. One seed each,
    so a gap inside the dev-sample noise is called no gap."""
    lines = []
    layers = sweep_rows(metrics, "layers")
    teachers = main_rows(metrics)
    if len(layers):
        task = layers["task"].iloc[0]
        on = teachers[teachers["task"] == task]
        deep = layers.loc[layers["layers"].idxmax()]
        acc = 100 * float(deep["accuracy"])
        noise = dev_noise(float(deep["accuracy"]), int(deep["n_examples"]))
        best = 100 * on.loc[on["method"] == "teacher", "accuracy"].max() if (on["method"] == "teacher").any() else None
        ens = 100 * on.loc[on["method"] == "teacher_ensemble", "accuracy"].mean() if (
            on["method"] == "teacher_ensemble").any() else None
        if best is not None:
            near = lambda ref: "level with" if abs(rounded(acc) - rounded(ref)) < rounded(noise) else (  # noqa: E731
                "above" if acc > ref else "below")
            text = (f"The {int(deep['layers'])}-layer student scores {pct(acc)} % on {task.upper()} dev: {near(best)} "
                    f"the best teacher ({pct(best)} %)")
            text += f" and {near(ens)} the ensemble ({pct(ens)} %)" if ens is not None else ""
            lines.append(text + f", within one seed's ±{pct(noise)} points of dev-sample noise.")
    opt = sweep_rows(metrics, "optimizer")
    if {"adamw", "sgd"} <= set(opt["optimizer"]):
        task = opt["task"].iloc[0]
        by = opt.groupby("optimizer")["accuracy"].mean() * 100
        flat = bool(not_learning(by["sgd"], majority, task))
        lines.append(f"SGD at AdamW's learning rate ({cfg.student_lr:g}) scores {pct(by['sgd'])} % against AdamW's "
                     f"{pct(by['adamw'])} %" + (": it did not learn. That rate is far too small for plain SGD, so this "
                                                "says nothing about SGD at a rate of its own." if flat else "."))
    heads = sweep_rows(metrics, "head_layers")
    if heads["head_layers"].nunique() > 1:
        by = heads.groupby("head_layers")["accuracy"].mean() * 100
        lines.append(f"One FC layer per head or more: {', '.join(f'{int(k)} {pct(v)} %' for k, v in by.items())}; the "
                     f"series keeps {cfg.student_head_layers}, as the paper does.")
    return "\n".join(lines) or "No sweep in this run."


def g_method(df, series: str) -> str:
    """The method of one line of a sweep (report.sweep_rows)."""
    return df.loc[df["series"] == series, "method"].iloc[0]


def alpha_trend(acc, noise: float) -> str:
    """The paper's Table 8 against one alpha sweep ({alpha: %}): with fewer than three alphas below 1 the trend
    cannot be tested; otherwise whether accuracy rises with alpha below 1 (Spearman's rank correlation) and
    where alpha = 1 stands, read against the dev-sample noise."""
    from scipy.stats import spearmanr
    below = acc[acc.index < 1]
    if len(below) < 3:
        return (f"Table 8's trend (larger alpha is better, except alpha = 1) needs at least three alphas below 1; this "
                f"run has {len(below)} ({', '.join(f'{a:g}' for a in below.index)}), so it cannot test it (the smoke "
                "profile's alphas, 0.1 to 1.0 in six steps, can).")
    if below.nunique() == 1:
        order = "is the same at every alpha here"
    else:
        rho = spearmanr(below.index, below.to_numpy()).statistic
        order = (f"{'rises' if rho > 0.5 else 'falls' if rho < -0.5 else 'shows no order'} with alpha here (rank "
                 f"correlation {rho:+.2f})")
    text = (f"Table 8's trend: below alpha = 1, accuracy {order}, one seed with ±{pct(noise)} points of dev-sample "
            "noise per point")
    if 1.0 in acc.index:
        text += (f"; alpha = 1 scores {pct(acc[1.0])} % against {pct(below.max())} % at the best alpha below 1 "
                 f"({gap(acc[1.0], below.max())} points)")
    return text + "."


# ---- the comparisons counted and their intervals in words (chapters 04, 06 and 08, and the README) --------------

GROUPS = (("primary", "The paper's headline claims (primary family, named before the run; verdicts on intervals "
                      "adjusted together with Holm's procedure)"),
          ("exploratory", "The paper's other claims (exploratory: unadjusted 95 % intervals, never headlined)"),
          ("own", "The series' own questions (the paper makes no such comparison: not counted among its claims)"))


def group_rows(intervals, group: str) -> list:
    return [r for r in intervals.to_dict("records") if group_of(r) == group]


def _missing(x) -> bool:
    return x is None or x == "" or x != x


def span(r) -> str:
    """The difference and the interval its verdict reads: "+1.20 [-0.60, +3.00] (Holm-adjusted 98.3 %)" for a
    primary comparison, "+1.20 [-0.33, +2.72] (95 %)" for any other."""
    level = float(r["verdict_level"]) * 100
    how = f"Holm-adjusted {level:.1f} %" if group_of(r) == "primary" else f"{level:g} %"
    if one_seed(r):
        how += ("; one seed, its seed level borrowed from the headline comparisons: no verdict"
                if r.get("seed_level") == "borrowed" else "; one seed: another seed's chance is not in it, no verdict")
    return f"{float(r['difference']):+.2f} [{float(r['verdict_low']):+.2f}, {float(r['verdict_high']):+.2f}] ({how})"




def pair_name(r) -> str:
    """"TMKD minus m-o-1": a comparison's arms in short."""
    return f"{short_name(r['a'])} minus {short_name(r['b'])}"


def where(r) -> str:
    """"QNLI", "MNLI matched": the task and, for a task with two dev sets, which."""
    return r["task"].upper() + ("" if r["split"] == "validation" else f" {r['split'].split('_')[-1]}")


def counted(rows, kinds) -> str:
    """"1 no difference shown, 2 inconclusive" (only the kinds that occur, in the order of `kinds`)."""
    found = [verdict_kind(r["verdict"]) for r in rows]
    return ", ".join(f"{found.count(k)} {k}" for k in kinds if k in found) or "none"


def verdict_summary(intervals) -> str:
    """The verdicts counted apart: the paper's headline family, its other claims, the series' own questions."""
    parts = []
    for group, title in GROUPS:
        rows = group_rows(intervals, group)
        if rows:
            kinds = (OWN_ANSWERS if group == "own" else PAPER_VERDICTS) + ("no verdict",)
            parts.append(f"{title.split(' (')[0]}: {len(rows)} ({counted(rows, kinds)})")
        elif group == "primary":
            parts.append(f"{title.split(' (')[0]}: none in this table (chapters 06 and 08 hold them)")
    return "; ".join(parts[:1] + [p[0].lower() + p[1:] for p in parts[1:]]) + "."


def power_sentences(intervals) -> list:
    """For each claim of the paper with a direction that this run does not reproduce: what this run could
    detect, and about how many dev examples (these seeds) or seeds (these examples) a gap of the paper's size
    would need here (tmkd.stats.intervals.needed_size). The series' own questions have no paper gap: none."""
    if "examples_needed" not in intervals.columns:
        return []
    lines = []
    for r in intervals.to_dict("records"):
        if group_of(r) == "own" or _missing(r.get("paper_difference")) or verdict_kind(r["verdict"]) == "reproduced":
            continue
        if one_seed(r):                     # what it could detect is unknown: another seed's chance is not in it
            continue
        examples, seeds = r.get("examples_needed"), r.get("seeds_needed")
        if _missing(examples) and _missing(seeds):
            continue
        pair = f"{where(r)} {label(r['a'])} vs {label(r['b'])}"
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
        lines.append(f"{split}: int8 {pct(int8)} % vs fp32 {pct(fp32)} % ({gap(int8, fp32)} points, seed "
                     f"{int(t['seed'].iloc[0])}); int8 keeps fp32's prediction on "
                     f"{t.loc['TMKD, int8', 'same prediction as fp32 (%)']} % of the examples.")
    return "\n".join(lines)


def majority_sentences(cfg, rows) -> str:
    """Each dev split's majority class (what answering one label always scores) and the teachers at or near it
    (within 2 points: they learned little), from evaluate_teachers' rows."""
    import numpy as np

    from tmkd.inputs.data import split_dataset
    lines = []
    for (task, split), g in rows[rows["method"] == "teacher"].groupby(["task", "split"], sort=False):
        gold = np.asarray(split_dataset(cfg, task, split)["label"])
        majority = 100 * np.bincount(gold).max() / len(gold)
        acc = g.set_index("model")["accuracy"].astype(float) * 100
        near = [m.split("/")[-1] for m, a in acc.items() if a <= majority + 2]
        name = task.upper() + ("" if split == "validation" else f" {split.split('_')[-1]}")
        lines.append(f"{name}: always answering the majority class scores {pct(majority)} %; " + (
            f"{', '.join(near)} {'is' if len(near) == 1 else 'are'} within 2 points of it (learned little)." if near
            else f"every teacher is above it, by {_span_of(acc.min(), acc.max(), majority)} points."))
    return "\n".join(lines)


def _span_of(low: float, high: float, base: float) -> str:
    """"3.1 to 5.0" points above `base`, each the difference of the printed numbers; "3.1" when both ends agree."""
    a, b = gap(low, base).lstrip("+"), gap(high, base).lstrip("+")
    return a if a == b else f"{a} to {b}"
