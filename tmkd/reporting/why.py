"""Why one-stage KD trails no KD here and stage 1 works (the series' own questions, measured in chapters 04 and 06):
the teachers on the pairs they trained on against pairs they never saw, every KD student's heads one by one, the
label-only control and the α sweep, in generated plain words that also say where they do not support the in-sample
explanation."""
from __future__ import annotations

from tmkd.core.numbers import gap, pct, rounded
from tmkd.model.methods import label
from tmkd.reporting.report import main_rows, sweep_rows


# ---- chapter 04: why one-stage KD trails no KD here (the series' own questions, measured) ---------------------

def seen_sentence(seen) -> str:
    """The teachers on the pairs they trained on against pairs they never saw (teacher_selection.
    teachers_seen_and_unseen), in plain words: how right and how sure they are, and how large their logits are.
    Surer: at least 2 points more probability on the gold label; larger: logits at least 5 % larger (RMS)."""
    out = []
    for task, g in seen.groupby("task", sort=False):
        m = g.groupby("pairs", sort=False)[["n", "accuracy (%)", "P(gold label) (%)", "logit RMS"]].mean()
        trained, unseen = m.iloc[0], m.iloc[1]
        ratio = trained["logit RMS"] / unseen["logit RMS"]
        surer = trained["P(gold label) (%)"] - unseen["P(gold label) (%)"] >= 2
        larger = ratio >= 1.05
        out.append(f"{task.upper()}: on the {trained['n']:,.0f} pairs they trained on, the teachers are right on "
                   f"{pct(trained['accuracy (%)'])} % and give the gold label {pct(trained['P(gold label) (%)'])} % "
                   f"probability on average; on {unseen['n']:,.0f} pairs they never saw, {pct(unseen['accuracy (%)'])} "
                   f"% and {pct(unseen['P(gold label) (%)'])} %.")
        reading = {(True, True): "so one-stage KD copies surer and larger targets than stage 1 reads.",
                   (True, False): "so one-stage KD copies surer targets than stage 1 reads, though no larger.",
                   (False, True): "so one-stage KD copies larger targets than stage 1 reads, though no surer.",
                   (False, False): "so here the in-sample targets are neither surer nor larger: the in-sample "
                                   "explanation finds no support in them."}[(bool(surer), bool(larger))]
        out.append(f"Their logits are {ratio:.2f}x as large on their own training pairs (RMS "
                   f"{trained['logit RMS']:.2f} against {unseen['logit RMS']:.2f}), {reading}")
    return "\n".join(out)


def heads_sentence(heads) -> str:
    """m-o-1's golden head, soft heads and Eq. 6 (experiments.head_accuracies) in plain words, and how far Eq. 6
    moves any KD student from its golden head."""
    if not len(heads):
        return "No KD student with soft heads in this run."
    out = []
    for r in heads[heads["method"].isin([label("mo1"), label("mo1_label")])].to_dict("records"):
        out.append(f"{r['task'].upper()} {r['method']} ({r['seeds']} seed{'s' if r['seeds'] > 1 else ''}): golden "
                   f"head {pct(r['golden head (%)'])} %, soft heads {pct(r['soft heads (%)'])} %, all heads (Eq. 6) "
                   f"{pct(r['Eq. 6: all heads (%)'])} %.")
    gain = heads["Eq. 6: all heads (%)"] - heads["golden head (%)"]
    worst = heads.loc[gain.abs().idxmax()]
    out.append(f"Across the {len(heads)} KD arms, Eq. 6 is at most {pct(gain.abs().max())} points from the golden "
               f"head alone ({worst['task'].upper()} {worst['method']}): "
               + ("averaging in the soft heads is not what costs the KD students accuracy here."
                  if gain.min() > -1 else "averaging in the soft heads costs some of them accuracy here."))
    return "\n".join(out)


def label_only_sentence(intervals) -> str:
    """The label-only control against no KD and against m-o-1 (their paired intervals), and which explanation of
    m-o-1's deficit it supports: the loss' form and scale, or the teachers' in-sample logits."""
    rows = intervals[intervals["a"] == "mo1_label"]
    if not len(rows):
        return "The label-only control is not in this run."
    out = []
    for (task, split), g in rows.groupby(["task", "split"], sort=False):
        r = {row["b"]: row for row in g.to_dict("records")}
        if not {"no_kd", "mo1"} <= set(r):
            continue
        nokd, mo1 = r["no_kd"], r["mo1"]
        say = lambda row: (f"{row['difference']:+.2f} points [{row['low']:+.2f}, {row['high']:+.2f}]")  # noqa: E731
        where = task.upper() + (f" ({split})" if rows[rows["task"] == task]["split"].nunique() > 1 else "")
        out.append(f"{where}: the label-only control minus no KD is {say(nokd)}, and minus m-o-1 {say(mo1)} "
                   f"({nokd['seeds']} seeds, paired, 95 %).")
        below_nokd, above_mo1 = nokd["high"] < 0, mo1["low"] > 0
        if below_nokd and not above_mo1:
            out.append("It trails no KD as m-o-1 does: the soft loss' form and scale explain the deficit, not what the "
                       "teachers know.")
        elif above_mo1 and not below_nokd:
            out.append("It beats m-o-1 and does not trail no KD: the teachers' logits on their own training pairs are "
                       "what costs m-o-1.")
        elif above_mo1:
            out.append("It beats m-o-1 yet trails no KD: both the loss and the teachers' in-sample logits cost "
                       "accuracy.")
        else:
            out.append("Neither explanation is shown at this run's size: both intervals hold 0 or point both ways.")
    return "\n".join(out) or "The label-only control is not compared in this run."


# ---- chapter 06: why stage 1 lifts TMKD here (the series' own question, from what chapters 04-06 measured) -----

def stage1_why(seen, metrics, heads=None) -> str:
    """Why stage 1 works where one stage does not, in plain words from what is measured: the teachers on pairs they
    never saw (what stage 1 reads) against their own training pairs (what one-stage KD copies); one-stage m-o-1 at
    the α sweep's smallest α against no KD at the sweep's seed (does a quieter soft loss rescue one stage?); and
    TMKD's golden head against Eq. 6. Each sentence says where it does not support the in-sample explanation."""
    out = []
    for task, g in seen.groupby("task", sort=False):
        m = g.groupby("pairs", sort=False)[["accuracy (%)", "P(gold label) (%)"]].mean()
        trained, unseen = m.iloc[0], m.iloc[1]
        out.append(f"{task.upper()}: stage 1 reads the teachers on pairs they never saw, where they are right on "
                   f"{pct(unseen['accuracy (%)'])} % and give the gold label {pct(unseen['P(gold label) (%)'])} % on "
                   f"average; one-stage KD copies them on their own training pairs ({pct(trained['accuracy (%)'])} % "
                   f"and {pct(trained['P(gold label) (%)'])} %).")
        unsure = trained["P(gold label) (%)"] - unseen["P(gold label) (%)"] >= 2
        out.append("So stage 1's targets say how unsure the teachers are, which a gold label cannot; one-stage KD's "
                   "mostly repeat the label." if unsure else "So stage 1's targets are about as sure as one-stage "
                   "KD's: the in-sample explanation does not account for stage 1's lift here.")
    sweep = sweep_rows(metrics, "alpha")
    one = sweep[sweep["method"] == "mo1"]
    if len(one):
        task, low = one["task"].iloc[0], one["alpha"].min()
        seed = int(one["seed"].iloc[0])
        nokd = main_rows(metrics)
        nokd = nokd[(nokd["method"] == "no_kd") & (nokd["task"] == task) & (nokd["seed"].astype(int) == seed)]
        if len(nokd):
            acc, base = 100 * one.loc[one["alpha"] == low, "accuracy"].mean(), 100 * nokd["accuracy"].mean()
            out.append(f"One-stage m-o-1 at the smallest alpha, {low:g}, scores {pct(acc)} % against no KD's "
                       f"{pct(base)} % at seed {seed} ({gap(acc, base)} points, one seed): " + (
                           "a quieter soft loss closes the gap, so the loss' loudness explains part of it."
                           if rounded(acc) >= rounded(base) else
                           "a quieter soft loss does not close the gap on its own."))
    if heads is not None and len(heads):
        for r in heads[heads["method"] == label("tmkd")].to_dict("records"):
            out.append(f"{r['task'].upper()} TMKD ({r['seeds']} seeds): golden head {pct(r['golden head (%)'])} %, "
                       f"soft heads {pct(r['soft heads (%)'])} %, all heads (Eq. 6) {pct(r['Eq. 6: all heads (%)'])} %.")
    return "\n".join(out) or "Nothing measured for this question in this run."
