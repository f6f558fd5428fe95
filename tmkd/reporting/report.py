"""Tables from metrics.csv and speed.csv only, every accuracy written by tmkd.core.numbers; where figures and tables are
saved; the convergence figure (the other figures are tmkd.reporting.figures'). The sentences that say what they show are
tmkd.reporting.takeaways'."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tmkd.inputs.data import dev_splits, split_dataset
from tmkd.core.files import atomic, read_json, write_text_atomic
from tmkd.model.methods import label, table_order
from tmkd.core.numbers import TABLE4, below_majority, mean_sd, pct, rounded
from tmkd.model.paper import PUBLISHED, SOURCE_LABELS
from tmkd.training.rundir import note_artifact
from tmkd.training.students import COLLAPSED


def main_device(speed) -> str:
    """The device the chain timed its models on (its teacher's row): tables and plots use that device's rows."""
    teacher = speed[speed["method"] == "teacher"]
    return str((teacher if len(teacher) else speed)["device"].iloc[0])


def log_history(folder):
    """A finished run's Trainer log (step, epoch, loss, learning_rate) as a frame."""
    import pandas as pd
    logs = read_json(Path(folder) / "log_history.json") or []
    return pd.DataFrame([r for r in logs if "loss" in r])


def per_seed(metrics, methods=None):
    """Accuracy (%) per method, task and seed: the mean over a task's dev splits (MNLI's two) and over a method's
    models of that seed (the N teachers, m-o-m's members), so each seed counts once."""
    df = main_rows(metrics)
    methods = table_order() if methods is None else methods
    df = df[df["method"].isin(methods)]
    return df.groupby(["method", "task", "seed"])["accuracy"].mean().mul(100).rename("accuracy").reset_index()


def first_seed(metrics) -> int:
    """The seed every arm has: the side arms train it alone (side_seeds = 1), the main arms beside their others."""
    return int(main_rows(metrics)["seed"].astype(int).min())


def seeds_of(metrics, method: str, task: str) -> list:
    """The seeds `method` has a result for on `task`, in order."""
    seeds = per_seed(metrics, (method,))
    return sorted(int(s) for s in seeds.loc[seeds["task"] == task, "seed"])


def matched(metrics, a: str, b: str, task: str) -> dict:
    """A against B at matched seeds, the seeds both have (a side arm's one seed: the main arm at that seed, never
    its mean over seeds): {"a": mean %, "b": mean %, "seeds": [...]}; None when they share no seed."""
    seeds = per_seed(metrics, (a, b))
    seeds = seeds[seeds["task"] == task]
    shared = sorted(set(seeds.loc[seeds["method"] == a, "seed"]) & set(seeds.loc[seeds["method"] == b, "seed"]))
    if not shared:
        return None
    at = seeds[seeds["seed"].isin(shared)].groupby("method")["accuracy"].mean()
    return {"a": float(at[a]), "b": float(at[b]), "seeds": [int(s) for s in shared]}


def seeds_words(seeds) -> str:
    """"7 seeds" or "seed 42": how many seeds a number stands on, as every sentence writes it."""
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds"


# Rows whose sd is over every model rather than over seeds: the N teachers (how far apart they are), and m-o-m's
# members (N per seed: the n of the cell counts them all).
PER_MODEL = ("teacher", "mom_member")


def seed_table(metrics, methods=None, tasks=None, majority=None):
    """Accuracy (%) per method x task as "mean ± sd (n)": the sd is over seeds (a teacher row: over the N teachers
    of its one seed, i.e. how far apart the teachers are; m-o-m's members: over all N x seeds of them). With
    `majority` ({task: majority class %}, majority_classes) a cell at or below it says the model did not learn."""
    import pandas as pd
    methods = table_order() if methods is None else methods
    df = per_seed(metrics, methods)
    models = main_rows(metrics)
    models = models[models["method"].isin(PER_MODEL)]
    if tasks:
        df, models = df[df["task"].isin(tasks)], models[models["task"].isin(tasks)]
    if not len(df):
        return pd.DataFrame()
    cells = {}
    for (m, t), g in df.groupby(["method", "task"]):
        values = g["accuracy"]
        if m in PER_MODEL:
            on = models[(models["task"] == t) & (models["method"] == m)]
            values = on.groupby("model")["accuracy"].mean() * 100
        cells[(m, t)] = f"{mean_sd(values)} ({len(values)})"
        if majority and t in majority and below_majority(values.mean(), majority[t]):
            cells[(m, t)] += f", did not learn (majority class {pct(majority[t])})"
        n_bad = collapsed_count(metrics, m, t)
        if n_bad:
            cells[(m, t)] += f" {n_bad} collapsed"
    first = first_seed(metrics)
    at_first = df[df["seed"] == first].groupby(["method", "task"])["accuracy"].mean()
    table = pd.Series(cells).unstack()
    tasks = list(table.columns)
    table.columns = [f"{t} (mean of {' and '.join(d.split('_')[-1] for d in dev_splits(t))})"
                     if len(dev_splits(t)) > 1 else t for t in table.columns]
    for t in tasks:           # every row at the seed all arms have: a one-seed arm is read against this column
        table[f"{t} at seed {first}"] = [pct(at_first.get((m, t))) for m in table.index]
    order = [m for m in methods if m in table.index]
    table = table.loc[order].fillna("")
    table.index = [label(m) for m in order]
    table.index.name = "method (mean ± sd over n seeds)"
    return table


def main_rows(metrics):
    """The comparison rows: no sweep rows, no stage-1 rows; MNLI = mean of matched and mismatched."""
    df = metrics[metrics["sweep"].astype(str) == ""].copy() if "sweep" in metrics.columns else metrics.copy()
    df["accuracy"] = df["accuracy"].astype(float)
    return df


def method_table(metrics, methods=None):
    """Accuracy (%) per method x task; teachers as their mean (and best) over the N teachers."""
    import pandas as pd
    df = main_rows(metrics)
    methods = table_order() if methods is None else methods
    df = df[df["method"].isin(methods)]
    by_task = df.groupby(["method", "task"])["accuracy"].mean().unstack("task") * 100
    order = [m for m in methods if m in by_task.index]
    return by_task.loc[order].apply(lambda col: col.map(lambda v: rounded(v, TABLE4))) if len(order) else pd.DataFrame()


def comparison_table(metrics, speed=None, methods=None):
    """Table-4-style: methods x tasks (this run) with params, examples/s and the published numbers."""
    methods = table_order("main") if methods is None else methods
    table = method_table(metrics, methods)
    df = main_rows(metrics)
    params = df.groupby("method")["params"].max()
    table.insert(0, "params_M", (params.reindex(table.index).astype(float) / 1e6).round(2))
    if speed is not None and len(speed):
        on = speed[speed["device"] == main_device(speed)]        # one device: never the best across devices
        eps = on.groupby("method")["examples_per_s"].max()
        table.insert(1, "examples_per_s", eps.reindex(table.index).round(1))
    tasks = [t for t in table.columns if t in ("mnli", "snli", "qnli", "rte")]
    first, seeds = first_seed(df), per_seed(metrics, tuple(table.index))
    for task in tasks:        # how many seeds each row's mean holds, and every row at the seed all arms have
        on = seeds[seeds["task"] == task]
        n = on.groupby("method")["seed"].nunique()
        at = on[on["seed"] == first].groupby("method")["accuracy"].mean()
        place = list(table.columns).index(task) + 1
        table.insert(place, f"{task} seeds", [str(int(n[m])) if m in n else "" for m in table.index])
        table.insert(place + 1, f"{task} at seed {first}", [rounded(at.get(m), TABLE4) for m in table.index])
    for source, numbers in PUBLISHED.items():
        for task in tasks:
            table[f"{task} ({SOURCE_LABELS[source]})"] = [numbers.get(m, {}).get(task) for m in table.index]
    return table


def readable(table, decimals: int = 1):
    """A method x column table as a reader reads it: method labels, fixed decimals, blank where there is no number."""
    shown = table.rename(index=label,
                         columns={"params_M": "params (M)", "examples_per_s": "examples/s (batch 32)"})
    shown = shown.apply(lambda col: [v if isinstance(v, str) else pct(float(v), decimals) if v == v and v is not None
                                     else "" for v in col])     # text (a seed count, a published range) as it is
    shown.index.name = "method"
    return shown


def pooling_table(pooling):
    """Chapter 03's pooling check as a reader reads it: the arm by its label, no run names."""
    shown = pooling.drop(columns=["model"]).assign(method=pooling["method"].map(label))
    return shown.rename(columns={"method": "arm"}).reset_index(drop=True)


def chapter_intervals(run: Path) -> dict:
    """{"04": chapter 04's interval table, "06": chapter 06's} as they were saved (None where a chapter has not run):
    what chapter 08 compares its verdicts with."""
    import pandas as pd
    found = {}
    for chapter, name in (("04", "intervals_one_stage"), ("06", "intervals_two_stage")):
        path = Path(run) / "tables" / f"{name}.csv"
        found[chapter] = pd.read_csv(path, index_col=0, keep_default_na=False) if path.exists() else None
    return found


def stage1_size_table(curve):
    """The corpus-size curve as a reader reads it: "no stage 1" where a size has no stage 1 to score."""
    column = "after stage 1 (%)"
    shown = curve.drop(columns=[c for c in ("stage-2 model",) if c in curve.columns]).astype({column: object})
    shown.loc[curve[column].isna(), column] = "no stage 1"
    return shown


def int8_table(metrics, task: str):
    """Chapter 07: the int8 TMKD student beside the same student in fp32 (matched by name: the int8 row of model M
    is M's own, never the mean of every TMKD row of its seed), on each dev split of `task`: accuracy (%) and how
    often int8 predicts what fp32 does (%), one decimal each. Give it configured_metrics(cfg): an exercise's int8
    student (another alpha) then stays out."""
    import pandas as pd
    df = main_rows(metrics)
    int8 = df[(df["method"] == "tmkd_int8") & (df["task"] == task)]
    rows = []
    for r in int8.itertuples():
        fp32 = df[(df["model"] == str(r.model).removesuffix("-int8")) & (df["split"] == r.split)]
        if len(fp32) != 1:
            raise ValueError(f"{r.model} ({r.split}): {len(fp32)} fp32 rows named {str(r.model).removesuffix('-int8')}")
        for label, acc, agree in (("TMKD, fp32", fp32["accuracy"].iloc[0], 100.0),
                                  ("TMKD, int8", r.accuracy, 100 * float(r.agreement_fp32))):
            rows.append({"model": label, "seed": int(r.seed), "split": r.split, "accuracy (%)": f"{100 * acc:.1f}",
                         "same prediction as fp32 (%)": f"{agree:.1f}"})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def relative_table(metrics):
    """Each student's accuracy as % of the mean teacher's and of the teacher ensemble's, per task (one decimal;
    a dash where the student did not run on that task)."""
    import pandas as pd
    acc = method_table(metrics)
    students = [m for m in acc.index if m not in ("teacher", "teacher_ensemble")]
    table = pd.DataFrame(index=pd.Index([label(m) for m in students], name="student"))
    seeds, first = per_seed(metrics, tuple(acc.index)), first_seed(metrics)
    for task in acc.columns:
        on = seeds[seeds["task"] == task]
        n = on.groupby("method")["seed"].nunique()
        at = on[on["seed"] == first].groupby("method")["accuracy"].mean()
        table[f"{task.upper()}: seeds"] = [str(int(n[m])) if m in n else "-" for m in students]
        for ref, name in (("teacher", "mean teacher"), ("teacher_ensemble", "ensemble")):
            if ref in acc.index:       # the teachers are trained once: every seed of a student is read against them
                ratio = acc.loc[students, task] / acc.loc[ref, task] * 100
                table[f"{task.upper()}: % of {name}"] = [pct(v) if v == v else "-" for v in ratio]
        if "teacher" in acc.index:
            ratio = at.reindex(students) / acc.loc["teacher", task] * 100
            table[f"{task.upper()} at seed {first}: % of mean teacher"] = [pct(v) if v == v else "-" for v in ratio]
    return table


def sweep_rows(metrics, knob: str):
    """A sweep's rows (one seed) with a `series` column naming each line of it: the task, and the method where the
    sweep holds several (the alpha sweep: TMKD's stage 2 and one-stage m-o-1)."""
    df = metrics[metrics["sweep"].astype(str) == knob].copy()
    df["accuracy"] = df["accuracy"].astype(float)
    if knob != "optimizer":                        # numbers in numeric order (1, 3, 10), written as such
        df[knob] = df[knob].astype(float)
    several = df["method"].nunique() > 1
    df["series"] = [f"{t.upper()}, {label(m)}" if several else t.upper() for t, m in zip(df["task"], df["method"])]
    return df


def sweep_table(metrics, knob: str, majority=None):
    """A sweep (one seed) as text: each value's dev accuracy (%) per task (and method), one decimal as in its
    sentence; with `majority` ({task: %}) a value at or below the majority class says the student did not learn."""
    df = sweep_rows(metrics, knob)
    df["accuracy"] = df["accuracy"] * 100
    task_of = dict(zip(df["series"], df["task"]))
    table = df.groupby(["series", knob], sort=False)["accuracy"].mean().unstack("series")
    if knob != "optimizer":
        table.index = [f"{v:g}" for v in table.index]
        table.index.name = knob
    for s in table.columns:
        t = task_of[s]
        low = majority and t in majority
        table[s] = [pct(v) + (f", did not learn (majority class {pct(majority[t])})"
                              if low and below_majority(v, majority[t]) else "") for v in table[s]]
    seeds = ", ".join(map(str, sorted(set(df["seed"].astype(int))))) if "seed" in df.columns else ""
    table.columns = [f"{s} dev accuracy (%{', seed ' + seeds if seeds else ''})" for s in table.columns]
    return table


def to_markdown(df, index: bool | None = None) -> str:
    """A pipe table (no extra dependency). index None: the index is a column unless it is pandas' default
    0..n-1 (an unnamed RangeIndex numbers rows and says nothing a reader needs)."""
    import pandas as pd
    if index is None:
        index = not (isinstance(df.index, pd.RangeIndex) and df.index.name is None)
    d = df.reset_index() if index else df
    fmt = lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else (f"{v:.2f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(map(str, d.columns)) + " |", "|" + "---|" * len(d.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def save_table(run: Path, name: str, df) -> None:
    """RUN_DIR/tables/<name>.md and .csv (atomic)."""
    folder = Path(run) / "tables"
    write_text_atomic(folder / f"{name}.csv", df.to_csv())
    note_artifact(write_text_atomic(folder / f"{name}.md", to_markdown(df)))


def save_figure(run: Path, name: str, fig) -> None:
    """RUN_DIR/figures/<name>.png (atomic)."""
    path = Path(run) / "figures" / f"{name}.png"
    with atomic(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    note_artifact(path)


def collapsed(metrics) -> dict:
    """{model: share} of the models that predict one class for >= COLLAPSED of their dev examples."""
    if "top_class_share" not in metrics.columns:
        return {}
    share = metrics[metrics["top_class_share"].astype(str) != ""]
    share = share.assign(top=share["top_class_share"].astype(float))
    return {m: round(v, 3) for m, v in share.groupby("model")["top"].max().items() if v >= COLLAPSED}


def collapsed_count(metrics, method: str, task: str) -> int:
    """How many of `method`'s models on `task` collapsed to one class (see `collapsed`)."""
    main = main_rows(metrics)
    models = set(main[(main["task"] == task) & (main["method"] == method)]["model"])
    return sum(m in models for m in collapsed(metrics))


def dev_noise(accuracy: float, n: int) -> float:
    """Half-width (points) of the 95 % binomial interval of an accuracy measured on n dev examples."""
    p = min(max(accuracy, 1e-6), 1 - 1e-6)
    return 196 * math.sqrt(p * (1 - p) / max(n, 1))


def majority_classes(cfg) -> dict:
    """{task: %} what always answering the most frequent label scores on the task's dev set (the mean over MNLI's
    two): the line a model must clear to have learned anything, in tables, sentences and figures."""
    out = {}
    for task in cfg.tasks:
        shares = []
        for split in dev_splits(task):
            gold = np.asarray(split_dataset(cfg, task, split)["label"])
            shares.append(100 * np.bincount(gold).max() / len(gold))
        out[task] = float(np.mean(shares))
    return out


def plot_convergence(curves, title: str = "Held-out (select) accuracy after each epoch, first seed"):
    """One panel per task: each arm's select accuracy per epoch (chapter 03's convergence_curves), its kept (best)
    epoch ringed. None when the run trains fixed epochs (no curve)."""
    import matplotlib.pyplot as plt
    if not len(curves):
        return None
    tasks = list(dict.fromkeys(curves["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks) + 1.4, 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        on = curves[curves["task"] == task]
        for method, g in on.groupby("method", sort=False):
            line, = ax.plot(g["epoch"], g["select_accuracy"], marker="o", ms=3, label=label(method))
            best = g[g["best"]]
            ax.plot(best["epoch"], best["select_accuracy"], "o", ms=10, mfc="none", color=line.get_color())
        ax.set_title(task.upper(), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_xticks(sorted(on["epoch"].unique()))
    axes[0][0].set_ylabel("select accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(title + " (ring: the epoch kept)", fontsize=10)
    fig.tight_layout()
    return fig


def stage_curves(run: Path, stage: int, seed: int, alpha: float) -> dict:
    """{short label: final folder} of the two-stage students of one seed: stage 1 (its soft loss) or stage 2 at
    `alpha` (one loss on one scale per figure)."""
    run = Path(run)
    found = {}
    for final in sorted(run.glob("students/*/*/final")):
        name, task = final.parent.name, final.parent.parent.name
        if not name.startswith(("tmkd", "tkd")) or not name.endswith(f"-s{seed}"):
            continue
        if (stage == 1) == ("-stage1-" in name) and (stage == 1 or f"-a{alpha:g}-" in name):
            found[f"{task.upper()} {name.split('-')[0].upper()}"] = final
    return found


def training_runs(run: Path, kinds=("teachers", "students")) -> dict:
    """{task/name: final folder} of every finished model of `kinds` (teachers, students), for training curves."""
    run = Path(run)
    found = {}
    for kind in kinds:
        for final in sorted(run.glob(f"{kind}/*/*/final")):
            if (final / "log_history.json").exists():
                found[f"{final.parent.parent.name}/{final.parent.name}"] = final
    return found


def teacher_table(rows):
    """Each teacher and the teacher ensemble on dev (evaluate_teachers' rows): accuracy in %, one decimal, one row per
    task and dev split, one column per teacher (named by its learning rate)."""
    d = rows.copy()
    d["who"] = [f"lr {float(lr):g}" if m == "teacher" else "ensemble"
                for m, lr in zip(d["method"], d.get("lr", [""] * len(d)))]
    d["task"] = d["task"].str.upper() + d["split"].map(lambda s: "" if s == "validation" else f" {s.split('_')[-1]}")
    table = d.pivot_table(index="task", columns="who", values="accuracy", aggfunc="first", sort=False) * 100
    table = table[[c for c in table.columns if c != "ensemble"] + ["ensemble"]]
    table.columns.name = "dev accuracy (%)"
    return table.round(1)


def speed_table(speed):
    """speed.csv as a reader reads it: throughput at the timed batch and latency at batch 1, parameters in millions,
    one decimal each."""
    import pandas as pd
    d = speed.reset_index(drop=True)
    batch = int(d["batch_size"].iloc[0]) if len(d) else 0
    table = pd.DataFrame({"model": [timed_name(m) for m in d["model"]], "params (M)": (d["params"] / 1e6).round(1),
                          f"examples/s (batch {batch})": d["examples_per_s"].round(1),
                          "latency (ms, batch 1)": d["latency_ms"].round(1), "device": d["device"]})
    if table["device"].nunique() == 1:          # one device: named once, above the rows, not on each of them
        table = table.drop(columns="device").rename(columns={"model": f"model (on {d['device'].iloc[0]})"})
        return table.set_index(table.columns[0])
    return table.set_index("model")


def timed_name(model: str) -> str:
    """A timed model as a reader names it ("qnli/student-k3" -> "student, 3 layers"), never its run name."""
    import re
    name = str(model).split("/")[-1]
    if m := re.fullmatch(r"student-k(\d+)", name):
        return f"student, {m.group(1)} layer{'s' if m.group(1) != '1' else ''}"
    if m := re.fullmatch(r"teacher-ensemble-(\d+)", name):
        return f"teacher ensemble ({m.group(1)} teachers)"
    if m := re.fullmatch(r"mom(\d+)", name):
        return f"m-o-m ({m.group(1)} students)"
    return {"teacher": "one teacher", "tmkd": "TMKD student", "tmkd-int8": "TMKD student, int8"}.get(name, name)
