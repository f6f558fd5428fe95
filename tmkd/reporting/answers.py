"""Each chapter's answer to its question, generated from this run's numbers and stated first, in plain words: does
any KD method beat no KD (04), what stage 1 alone gives (05), does TMKD beat one-stage m-o-1, the compute-matched
control and no KD (06), how close the student comes to its teachers (08); and the sentences that say why a section
trains nothing (no weak teacher, one stage-2 task). An answer never claims more than its interval: "beats" only when
the interval its verdict reads lies above 0."""
from __future__ import annotations

from tmkd.core.config import Config
from tmkd.inputs.data import split_dataset
from tmkd.stats.evidence import one_seed
from tmkd.training.experiments import configured_metrics, configured_variants
from tmkd.training.specs import arm_seeds, matched_spec, stage1_spec, stage2_tasks
from tmkd.reporting.figures import loss_ends
from tmkd.model.methods import arms, label, short_name
from tmkd.core.numbers import gap, mean_sd, pct
from tmkd.model.paper import PUBLISHED
from tmkd.reporting.plain import (accuracies_sentence, at_first_seed_sentence, difference_sentence, headline_words,
                                  kept_last_sentence)
from tmkd.reporting.report import first_seed, log_history, matched, per_seed, relative_table, seeds_words
from tmkd.reporting.takeaways import (group_rows, not_learning, pair_name, power_sentences,
                                      result_sentences, verdict_summary, where)
from tmkd.training.teacher_selection import best_teacher, select_accuracies, teacher_quality, weak_teachers



def _row(intervals, a: str, b: str, task: str):
    if not len(intervals):
        return None
    r = intervals[(intervals["a"] == a) & (intervals["b"] == b) & (intervals["task"] == task)]
    return None if not len(r) else r.iloc[0].to_dict()


def _side(r) -> int:
    """+1 when the interval the verdict reads lies above 0, -1 below, 0 when it holds 0 or rests on one seed (no
    verdict is read from it)."""
    if one_seed(r):
        return 0
    return 1 if float(r["verdict_low"]) > 0 else -1 if float(r["verdict_high"]) < 0 else 0


def plainly(r, a: str, b: str) -> str:
    """What a comparison says, plainly: "TMKD beats no KD", "... is worse than ...", "... does not beat ...", and
    on one seed that it cannot tell."""
    if one_seed(r):
        return f"one seed cannot tell whether {a} beats {b}"
    return {1: f"{a} beats {b}", -1: f"{a} is worse than {b}"}.get(_side(r), f"{a} does not beat {b} beyond this "
                                                                               "run's noise (nor fall behind it)")


def _means(metrics, methods, task) -> dict:
    seeds = per_seed(metrics, tuple(methods))
    return seeds[seeds["task"] == task].groupby("method")["accuracy"].mean().to_dict()


# ---- chapter 04: does any KD method beat the no-KD student? ------------------------------------------------------

def kd_takeaway(metrics, intervals, tasks) -> str:
    """Chapter 04's answer first, in short sentences: does any KD method beat the no-KD student here? Only m-o-1
    minus no KD (the paper's headline claim) has an interval that can say "beats". Then, per task, the absolute
    accuracies, that difference with its 95 % interval and seeds beside the paper's, whether m-o-1 kept its last
    epoch, and every arm at the seed they all have (the side arms' only seed). Last: these verdicts are
    provisional until chapter 08 adjusts the whole family."""
    lines, beaten, above = [], [], []
    first = first_seed(metrics) if len(metrics) else None
    kd_methods = [m for m in arms("04", variants=False) if m != "no_kd"]
    for task in tasks:
        if "no_kd" not in _means(metrics, ("no_kd",), task):
            continue
        lines.append(accuracies_sentence(metrics, task, ("teacher", "no_kd", "mo1")))
        r = _row(intervals, "mo1", "no_kd", task)
        if r is not None:
            lines.append(difference_sentence(r))
            beaten += [task.upper()] if _side(r) > 0 else []
        lines.append(kept_last_sentence(metrics, "mo1", task))
        lines.append(at_first_seed_sentence(metrics, task, ("no_kd", *kd_methods)))
        for m in kd_methods:
            pair = matched(metrics, m, "no_kd", task)
            if m != "mo1" and pair and pair["a"] > pair["b"]:
                above.append(f"{short_name(m)} on {task.upper()}")
    lines = [line for line in lines if line]
    if not lines:
        return "No KD method and no-KD student on the same task in this run."
    if beaten:
        answer = f"Does any KD method beat the no-KD student? Yes: m-o-1 beats it beyond noise on {', '.join(beaten)}."
    else:
        answer = ("Does any KD method beat the no-KD student? No: m-o-1 does not beat it beyond this run's noise on any "
                  "task." + (f" {'; '.join(above)} scores above no KD at seed {first}, one seed, which tells no "
                             "verdict." if above else ""))
    provisional = ("These verdicts are provisional: chapter 08 adjusts the paper's headline claims together, once "
                   "chapter 06 has trained TMKD, and says which verdicts changed.")
    return "\n".join([answer] + lines + [provisional])


def best_teacher_sentence(cfg: Config) -> str:
    """Chapter 04: which teacher 1-o-1 learns from on each task, and the select accuracies that chose it."""
    lines = []
    for task in cfg.tasks:
        accs, best = select_accuracies(cfg, task), best_teacher(cfg, task)
        others = " and ".join(f"{t} {pct(100 * a)} %" for t, a in accs.items() if t != best)
        lines.append(f"{task.upper()}: 1-o-1 learns from {best}, {pct(100 * accs[best])} % on the held-out select "
                     f"slice" + (f" (the others: {others})." if others else "."))
    return "\n".join(lines)


def weak_teacher_sentence(cfg: Config, majority=None) -> str:
    """Chapter 04's section without the weak teachers: per task, which teachers chapter 02 flagged and what was
    trained; when nothing was, why not (and that m-o-1 and 1avg-o-1 above already stand with every teacher)."""
    lines = []
    for task in cfg.tasks:
        flagged = list(teacher_quality(cfg, task).query("weak")["teacher"])
        if not flagged:
            lines.append(f"{task.upper()}: chapter 02 flagged no teacher as weak, so no variant is trained here: m-o-1 "
                         "and 1avg-o-1 above already learn from every teacher.")
            continue
        left = [t for t in flagged if t not in weak_teachers(cfg, task)]
        kept = f" ({', '.join(left)} kept: the best teacher never leaves)" if left else ""
        variants = configured_variants(cfg, task)
        lines.append(f"{task.upper()}: chapter 02 flagged {', '.join(flagged)} as weak{kept}. " + (
            "Without the weak teacher(s):\n" + result_sentences(configured_metrics(cfg), variants, (task,), majority) if variants else
            "Without them one teacher would be left, and m-o-1 and 1avg-o-1 would both be 1-o-1: nothing is trained."))
    return "\n".join(lines)


# ---- chapter 05: what stage 1 alone gives ---------------------------------------------------------------------

def stage1_loss_sentence(curves: dict) -> str:
    """How far each stage-1 soft loss fell, in the figure's unit (epochs): the mean of its first and of its last
    quarter of logged values (figures.loss_ends), each against its own start (the methods' targets differ)."""
    lines = []
    for label, folder in curves.items():
        h = log_history(folder)
        if len(h) < 2:
            continue
        e = loss_ends(h)
        change = (1 - e["last"] / e["first"]) * 100 if e["first"] else 0.0
        span_of = lambda ends: f"{ends[0]:.1f}-{ends[1]:.1f}"  # noqa: E731
        lines.append(f"{label} stage 1: soft loss {e['first']:.3f} over epochs {span_of(e['first_epochs'])}, "
                     f"{e['last']:.3f} over epochs {span_of(e['last_epochs'])}: {abs(change):.0f} % "
                     f"{'lower' if change >= 0 else 'higher'} than its own start.")
    if len(lines) > 1:
        lines.append("Each loss has its own target (TKD copies one teacher, TMKD several): compare how far each fell, "
                     "never their heights.")
    return "\n".join(lines) or "No stage-1 loss was logged."


def seeds_sentence(cfg: Config) -> str:
    """Which seeds each arm trains: every seed for the main arms, the first side_seeds for the side arms."""
    every = f"{len(cfg.seeds)} seed(s) ({', '.join(map(str, cfg.seeds))})"
    side = arm_seeds(cfg, "1o1")
    if len(side) == len(cfg.seeds):
        return f"Every method trains one student (m-o-m: N) per seed: {every}."
    return (f"The main arms (no KD, m-o-1, TMKD and its stage 1) train one student per seed: {every}. The side arms "
            f"(1-o-1, 1avg-o-1, m-o-m, TKD, the compute-matched control) train "
            + (f"the first seed only ({side[0]}" if len(side) == 1 else f"the first {len(side)} ({', '.join(map(str, side))}")
            + f", side_seeds = {len(side)}), to fit the time; a comparison pairs the seeds both arms have"
            + (", so one with a side arm has no seed level and reads no verdict." if len(side) == 1 else "."))


def stage1_students_sentence(cfg: Config, method: str) -> str:
    """What one stage-1 section trained: its students (one per seed), their soft heads and teachers, the corpus."""
    spec = stage1_spec(cfg, method)
    pairs = len(split_dataset(cfg, cfg.stage1_task, "stage1"))
    seeds = arm_seeds(cfg, method)
    return (f"{label(method)} stage 1: {len(seeds)} student(s), seed(s) "
            f"{', '.join(map(str, seeds))}, each with {spec.n_heads} soft head(s) ({', '.join(spec.teachers)} of "
            f"{cfg.stage1_task.upper()}), soft loss only, {cfg.stage1_epochs:g} epoch(s) of the {pairs:,} stage-1 pairs; "
            "their loss and what they score are below.")


def stage1_takeaway(metrics, majority=None) -> str:
    """Chapter 05's answer first: what stage 1 alone gives, per method and task: dev accuracy from soft heads never
    trained on a gold label, against the majority class and the no-KD student trained on gold labels."""
    s1 = metrics[metrics["sweep"].astype(str) == "stage1"]
    lines = []
    for (method, task), g in s1.groupby(["method", "task"]):
        acc = g["accuracy"].astype(float) * 100
        seeds = f" over {len(acc)} seeds" if len(acc) > 1 else f" at seed {int(g['seed'].iloc[0])} (one seed)"
        text = f"{label(method)} after stage 1 alone: {mean_sd(acc)} %{seeds} on {task.upper()} dev"
        lean = not_learning(acc.mean(), majority, task)
        if majority and task in majority and not lean:
            text += f", {gap(acc.mean(), majority[task]).lstrip('+')} points above the {pct(majority[task])} % majority class"
        text += lean
        lines.append(text + ".")
        nokd = per_seed(metrics, ("no_kd",))
        nokd = nokd[(nokd["task"] == task) & nokd["seed"].isin(set(g["seed"]))]      # at the stage-1 students' seeds
        if len(nokd):
            seeds = sorted(int(x) for x in nokd["seed"])
            stage1 = acc[g["seed"].isin(seeds).to_numpy()].mean()
            lines.append(f"The no-KD student, trained on gold labels, has {pct(nokd['accuracy'].mean())} % at "
                         f"{'the same ' if len(seeds) > 1 else ''}{seeds_words(seeds)} "
                         f"({gap(stage1, nokd['accuracy'].mean())} points).")
    if not lines:
        return "What stage 1 alone gives: no stage-1 student was scored in this run."
    return "What stage 1 alone gives, from soft heads never trained on a gold label:\n" + "\n".join(lines)


# ---- chapter 06: does TMKD beat one-stage m-o-1, the control and no KD? ------------------------------------------

def stage2_sentence(cfg: Config) -> str:
    """Which tasks stage 2 runs on, and why only those: the tasks of the run with teachers."""
    tasks = stage2_tasks(cfg)
    return (f"Stage 2 runs on {', '.join(t.upper() for t in tasks)}: " + (
        "the only task of this run (its `tasks` setting); the paper also reports RTE, MNLI and SNLI." if len(tasks) == 1
        else f"every task of this run, {tasks[0].upper()} first."))


def control_budget_sentence(cfg: Config) -> str:
    """The compute-matched control's budget on each stage-2 task, against one-stage m-o-1's."""
    most = "at most " if cfg.student_patience else ""
    return "\n".join(f"{task.upper()}: the control trains {most}{matched_spec(cfg, task).epochs:g} epochs of the "
                     f"stage-2 pairs, against {most}{cfg.student_epochs:g} for one-stage m-o-1 (the difference: stage "
                     f"1's examples, as epochs of these pairs)." for task in stage2_tasks(cfg))


def control_sentence(curves) -> str:
    """Chapter 06: where each arm beside the compute-matched control kept its best epoch, of the epochs it ran
    (first seed; control_curves), and whether the control's best select score reached m-o-1's."""
    if not len(curves):
        return ("No curve: with student_patience = 0 every arm trains its fixed epochs to the end of its schedule "
                "(the control: its whole budget).")
    lines = []
    for task, on in curves.groupby("task", sort=False):
        best = on[on["best"]].set_index("method")
        kept = "; ".join(f"{short_name(m)} kept epoch {r.epoch:g} of the {r.last_epoch:g} "
                         f"it ran ({pct(r.select_accuracy)} %)" for m, r in best.iterrows())
        text = f"{task.upper()}: {kept}."
        if {"mo1", "mo1_matched"} <= set(best.index):
            text += (f" The control's best select score is {gap(best.loc['mo1_matched', 'select_accuracy'], best.loc['mo1', 'select_accuracy'])}"
                     " points from m-o-1's.")
        lines.append(text)
    return "\n".join(lines)


def matched_takeaway(metrics, intervals, tasks) -> str:
    """Chapter 06's answer first, per task, in short sentences: does TMKD beat one-stage m-o-1 (the paper's claim),
    the compute-matched control (the series' own question) and no KD? "Beats" only where the interval its verdict
    reads lies above 0. Then the absolute accuracies, TMKD minus m-o-1 and minus no KD with their 95 % intervals and
    seeds beside the paper's, and the control against m-o-1 and TMKD at the seed it has (never against their means)."""
    lines = []
    for task in tasks:
        one, none, matched_row = (_row(intervals, "tmkd", b, task) for b in ("mo1", "no_kd", "mo1_matched"))
        if one is None:
            continue
        arms_ = [(r, b) for r, b in ((one, "mo1"), (matched_row, "mo1_matched"), (none, "no_kd")) if r is not None]
        beats = [short_name(b) for r, b in arms_ if _side(r) > 0]
        untold = [short_name(b) for r, b in arms_ if one_seed(r)]
        answer = (f"{task.upper()}: does TMKD beat one-stage m-o-1, the compute-matched control and no KD? " +
                  (f"It beats {' and '.join(beats)} beyond this run's noise" if beats else
                   "It beats none of them beyond this run's noise") +
                  (f" ({' and '.join(untold)}: one seed, so no verdict)" if untold else "") + ".")
        lines += [answer, accuracies_sentence(metrics, task, ("teacher", "no_kd", "mo1", "tmkd")),
                  difference_sentence(one)]
        if none is not None:
            lines.append(difference_sentence(none))
        means = _means(metrics, ("tmkd", "no_kd"), task)
        if {"tmkd", "no_kd"} <= set(means) and (none is None or _side(none) <= 0):
            lines.append(f"So two-stage distillation does not pay here: TMKD ({pct(means['tmkd'])} %) does not beat no "
                         f"KD ({pct(means['no_kd'])} %)" + (", not even on its mean." if means["tmkd"] <= means["no_kd"]
                                                            else " beyond this run's noise."))
        control = matched(metrics, "mo1_matched", "mo1", task)
        if control is not None:
            tmkd = matched(metrics, "tmkd", "mo1_matched", task)
            seeds = seeds_words(control["seeds"])
            lines.append(f"At {seeds}, which the control has: TMKD {pct(tmkd['a'])} %, the control "
                         f"{pct(control['a'])} % and one-stage m-o-1 {pct(control['b'])} %." if tmkd else "")
            lines.append(f"So more steps move m-o-1 by {gap(control['a'], control['b'])} points and stage 1 by "
                         f"{gap(tmkd['a'], control['b'])} at {seeds}" + (" (one seed: no verdict)." if len(
                             control["seeds"]) == 1 else ".") if tmkd else "")
    return "\n".join(line for line in lines if line) or "No two-stage comparison in this run."


# ---- chapter 08: how close the student comes to its teachers ------------------------------------------------------

def closeness(metrics, intervals) -> list:
    """The question, then per task in short sentences: TMKD and the no-KD student against the mean teacher and the
    ensemble (relative_table's numbers), the paper's own ratio beside them, and the paper's headline claims by verdict."""
    rel = relative_table(metrics)
    lines = []
    for task in dict.fromkeys(per_seed(metrics, ("tmkd",))["task"]):
        means = _means(metrics, ("tmkd", "no_kd", "teacher", "teacher_ensemble"), task)
        col = lambda label, ref: rel.loc[label, f"{task.upper()}: % of {ref}"]  # noqa: E731
        n = len(per_seed(metrics, ("tmkd",)).query("task == @task"))
        text = (f"On {task.upper()} dev, TMKD reaches {pct(means['tmkd'])} % ({n} seed{'s' if n > 1 else ''}): "
                f"{col('TMKD', 'mean teacher')} % of the mean teacher's {pct(means.get('teacher'))} %")
        if "teacher_ensemble" in means:
            text += f" and {col('TMKD', 'ensemble')} % of the ensemble's {pct(means['teacher_ensemble'])} %"
        lines.append(text + ".")
        if "no_kd" in means:
            lines.append(f"The no-KD student reaches {pct(means['no_kd'])} %, {col('student, no KD', 'mean teacher')} % "
                         "of the mean teacher.")
        paper = PUBLISHED["paper"]
        if task in paper["tmkd"] and task in paper["teacher"]:
            lines.append(f"In the paper, TMKD_base reaches {pct(100 * paper['tmkd'][task] / paper['teacher'][task])} % "
                         f"of its teachers ({paper['tmkd'][task]:.2f} against {paper['teacher'][task]:.2f}).")
        lines += headline_words(group_rows(intervals[intervals["task"] == task], "primary"))
        lines.append(kept_last_sentence(metrics, "mo1", task))
    lines = [line for line in lines if line]
    return ["How close does the student come to its teachers?"] + lines if lines else []


def changed_verdicts(intervals, earlier: dict) -> list:
    """Each verdict of `intervals` that an earlier chapter read otherwise ({"04": its interval table, ...}), in one
    short sentence each, with why: Holm's step-down reads a headline claim at a level set by the whole family's
    p-values, and chapter 04 counted the members it had not measured as never rejected."""
    lines = []
    for chapter, old in earlier.items():
        if old is None or not len(old):
            continue
        before = {(r["task"], r["split"], r["a"], r["b"]): r for r in old.to_dict("records")}
        for r in intervals.to_dict("records"):
            o = before.get((r["task"], r["split"], r["a"], r["b"]))
            if o is None or o["verdict"] == r["verdict"]:
                continue
            why = (f"with the whole family in, Holm's step-down reads it at {100 * float(r['verdict_level']):.1f} %, "
                   f"not {100 * float(o['verdict_level']):.1f} %" if float(o["verdict_level"]) != float(r["verdict_level"])
                   else "its interval moved")
            lines.append(f"{where(r)} {pair_name(r)}: chapter {chapter} read {o['verdict']}, this chapter "
                         f"{r['verdict']} ({why}).")
    return lines or ["No verdict changed since the chapters that first read them."]


def conclusion(intervals, metrics=None, earlier=None) -> str:
    """Chapter 08: the answer first (how close TMKD comes to its teachers, and the headline claims by verdict),
    the verdicts that changed since chapters 04 and 06 (`earlier`: {chapter: interval table}) and why, then the
    verdicts counted apart (the paper's headline family, its other claims, the series' own questions, never
    among the paper's), and what an undecided claim of the paper would need. Each comparison is a row of the
    interval table above: no sentence repeats it."""
    lines = (closeness(metrics, intervals) + [""]) if metrics is not None else []
    if earlier is not None:
        lines += changed_verdicts(intervals, earlier) + [""]
    lines.append(verdict_summary(intervals))
    power = power_sentences(intervals)
    return "\n".join(lines + ([""] + power if power else []))


# ---- chapter 05: stage 1's corpus size ------------------------------------------------------------------------

def size_lines(metrics, task: str) -> dict:
    """{label: %} the corpus-size figure's reference lines: the teachers' ensemble and the no-KD student (means
    over seeds), as far as this run has them."""
    seeds = per_seed(metrics, ("teacher_ensemble", "no_kd"))
    seeds = seeds[seeds["task"] == task]
    if not len(seeds):
        return {}
    first = int(seeds["seed"].min())          # the curve trains one student per size, at the first seed
    at = seeds[seeds["seed"] == first].groupby("method")["accuracy"].mean()
    names = {"teacher_ensemble": "teachers' ensemble", "no_kd": f"no KD at seed {first}, the curve's seed"}
    return {names[m]: float(at[m]) for m in ("teacher_ensemble", "no_kd") if m in at.index}


def stage1_size_sentence(curve, lines: dict) -> str:
    """Chapter 05's answer on the corpus size: TMKD after stage 2 from no stage 1 (m-o-1) to the whole corpus, in
    the order of the sizes, against the reference lines; one seed per size, so a step smaller than one student's
    spread (chapters 04 and 06 measure it) is not read as a trend."""
    rows = curve.sort_values("stage-1 pairs").to_dict("records")
    labelled = int(rows[0]["labelled pairs"])
    steps = ", ".join(f"{int(r['stage-1 pairs']):,} pairs ({r['x labelled pairs']:g}x) {pct(r['after stage 2 (%)'])} %"
                      for r in rows)
    first, last = rows[0], rows[-1]
    change = float(last["after stage 2 (%)"]) - float(first["after stage 2 (%)"])
    trend = [float(r["after stage 2 (%)"]) for r in rows]
    rising = all(b >= a for a, b in zip(trend, trend[1:]))
    text = (f"TMKD after stage 2, by stage-1 corpus size ({labelled:,} labelled pairs; one seed per size): {steps}. "
            f"From no stage 1 to the whole corpus it {'gains' if change > 0 else 'loses' if change < 0 else 'keeps'} "
            f"{gap(last['after stage 2 (%)'], first['after stage 2 (%)'])[1:] if change else ''}"
            f"{' points' if change else 'its accuracy'}"
            f"{', rising at every size' if rising and change > 0 else ', not at every step' if change > 0 else ''}.")
    ens = next((v for k, v in lines.items() if k.startswith("teachers")), None)
    nokd = next((v for k, v in lines.items() if k.startswith("no KD")), None)
    if ens is not None and nokd is not None and ens > nokd:
        closed = (float(last["after stage 2 (%)"]) - nokd) / (ens - nokd)
        text += (f" The teachers' ensemble is {pct(ens)} % and no KD {pct(nokd)} % at that seed: the whole corpus "
                 f"closes {100 * closed:.0f} % of that gap" + (" (beyond it: above the teachers)." if closed > 1 else
                                                        " (none: below no KD)." if closed < 0 else "."))
    one = [r for r in rows if r["after stage 1 (%)"] == r["after stage 1 (%)"] and r["after stage 1 (%)"] is not None]
    if one:
        text += (" After stage 1 alone (no gold label seen): " + ", ".join(
            f"{int(r['stage-1 pairs']):,} pairs {pct(r['after stage 1 (%)'])} %" for r in one) + ".")
    return text
