"""Tables and figures, from metrics.csv and speed.csv only (and the Trainer logs for training curves)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .experiments import log_history
from .rundir import note_artifact, tmp_name, write_text_atomic

METHOD_LABELS = {"teacher": "teacher (mean of 3)", "teacher_ensemble": "teacher ensemble (3)",
                 "no_kd": "student, no KD", "1o1": "1-o-1", "1avgo1": "1avg-o-1", "mom_avg": "m-o-m (average)",
                 "mom_vote": "m-o-m (vote)", "mo1": "m-o-1 (MKD)", "tkd": "TKD", "tmkd": "TMKD",
                 "tmkd_int8": "TMKD, int8", "mom_member": "m-o-m member (1 teacher)",
                 "mo1_strong": "m-o-1 without weak teachers", "1avgo1_strong": "1avg-o-1 without weak teachers",
                 "mo1_matched": "m-o-1, compute-matched to TMKD"}

# Published dev accuracies (%) for reference. Source: Yang et al. 2020, Table 4 (paper) and the seed
# reimplementation's slides (1000-example subsets, bert-base teachers, its own test split; see docs/PAPER.md).
PUBLISHED = {
    "paper": {
        "no_kd": {"mnli": 70.77, "snli": 77.75, "qnli": 78.51, "rte": 57.42},
        "teacher": {"mnli": 79.10, "snli": 80.90, "qnli": 90.30, "rte": 68.23},
        "teacher_ensemble": {"mnli": 79.57, "snli": 81.39, "qnli": 90.91, "rte": 70.75},
        "1o1": {"mnli": 71.07, "snli": 78.62, "qnli": 77.65, "rte": 55.23},
        "1avgo1": {"mnli": 70.63, "snli": 78.64, "qnli": 78.20, "rte": 58.12},
        "mom_avg": {"mnli": 71.28, "snli": 78.71, "qnli": 77.90, "rte": 57.40},
        "mo1": {"mnli": 71.98, "snli": 78.80, "qnli": 77.80, "rte": 59.92},
        "tkd": {"mnli": 72.34, "snli": 78.23, "qnli": 85.89, "rte": 67.35},
        "tmkd": {"mnli": 71.29, "snli": 78.35, "qnli": 83.53, "rte": 66.64},
    },
    "seed": {
        "teacher": {"mnli": 59.5, "rte": 55.5, "qnli": 81.0},       # midpoints of 0.52-0.67, 0.52-0.59, 0.78-0.84
        "mo1": {"mnli": 39.5},
        "tmkd": {"rte": 58.3, "qnli": 53.2},
    },
}
METHOD_ORDER = ("teacher", "teacher_ensemble", "no_kd", "1o1", "1avgo1", "mom_avg", "mom_vote", "mo1", "tkd",
                "tmkd", "tmkd_int8")
VARIANT_ORDER = ("mom_member", "mo1_strong", "1avgo1_strong", "mo1_matched")


def per_seed(metrics, methods=METHOD_ORDER + VARIANT_ORDER):
    """Accuracy (%) per method, task and seed: the mean over a task's dev splits (MNLI's two) and over a method's
    models of that seed (the N teachers, m-o-m's members), so each seed counts once."""
    df = main_rows(metrics)
    df = df[df["method"].isin(methods)]
    return df.groupby(["method", "task", "seed"])["accuracy"].mean().mul(100).rename("accuracy").reset_index()


def seed_table(metrics, methods=METHOD_ORDER + VARIANT_ORDER, tasks=None):
    """Accuracy (%) per method x task as "mean ± sd (n seeds)": the sd is over seeds (a teacher row: over
    the N teachers of its one seed, i.e. how far apart the teachers are)."""
    import pandas as pd
    df = per_seed(metrics, methods)
    teachers = main_rows(metrics)
    teachers = teachers[teachers["method"] == "teacher"]
    if tasks:
        df, teachers = df[df["task"].isin(tasks)], teachers[teachers["task"].isin(tasks)]
    if not len(df):
        return pd.DataFrame()
    cells = {}
    for (m, t), g in df.groupby(["method", "task"]):
        values = g["accuracy"]
        if m == "teacher":
            values = teachers[teachers["task"] == t].groupby("model")["accuracy"].mean() * 100
        sd = values.std(ddof=1) if len(values) > 1 else float("nan")
        cells[(m, t)] = f"{values.mean():.1f} ± {sd:.1f} ({len(values)})" if len(values) > 1 else f"{values.mean():.1f} (1)"
    table = pd.Series(cells).unstack()
    order = [m for m in methods if m in table.index]
    table = table.loc[order]
    table.index = [METHOD_LABELS.get(m, m) for m in order]
    table.index.name = "method (mean ± sd over n)"
    return table


def plot_intervals(intervals, title: str = "Paired bootstrap 95 % intervals (A minus B, dev accuracy points)"):
    """Forest plot: one line per comparison and task, the interval around this run's difference, the paper's
    difference as a cross, and 0 (no difference) as a vertical line."""
    import matplotlib.pyplot as plt
    d = intervals.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(d) + 1.2))
    y = np.arange(len(d))[::-1]
    colors = {"supported": "tab:green", "refuted": "tab:red", "within noise": "tab:gray"}
    for yi, (_, r) in zip(y, d.iterrows()):
        c = colors.get(r["verdict"], "k")
        ax.plot([r["low"], r["high"]], [yi, yi], color=c, lw=2)
        ax.plot(r["difference"], yi, "o", color=c)
        if r.get("paper_difference") not in (None, "") and r["paper_difference"] == r["paper_difference"]:
            ax.plot(float(r["paper_difference"]), yi, "x", color="k")
    labels = [f"{r['task']}: {METHOD_LABELS.get(r['a'], r['a'])} - {METHOD_LABELS.get(r['b'], r['b'])}"
              for _, r in d.iterrows()]
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("difference in dev accuracy (points); x = the paper's difference")
    handles = [plt.Line2D([], [], color=c, lw=2, label=v) for v, c in colors.items()]
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_title(title, fontsize=9)
    return fig


def main_rows(metrics):
    """The comparison rows: no sweep rows, no stage-1 rows; MNLI = mean of matched and mismatched."""
    df = metrics[metrics["sweep"].astype(str) == ""].copy()
    df["accuracy"] = df["accuracy"].astype(float)
    return df


def method_table(metrics, methods=METHOD_ORDER):
    """Accuracy (%) per method x task; teachers as their mean (and best) over the N teachers."""
    import pandas as pd
    df = main_rows(metrics)
    df = df[df["method"].isin(methods)]
    by_task = df.groupby(["method", "task"])["accuracy"].mean().unstack("task") * 100
    order = [m for m in methods if m in by_task.index]
    return by_task.loc[order].round(2) if len(order) else pd.DataFrame()


def comparison_table(metrics, speed=None):
    """Table-4-style: methods x tasks (this run) with params, examples/s and the published numbers."""
    table = method_table(metrics)
    df = main_rows(metrics)
    params = df.groupby("method")["params"].max()
    table.insert(0, "params_M", (params.reindex(table.index).astype(float) / 1e6).round(2))
    if speed is not None and len(speed):
        from .speed import main_device
        on = speed[speed["device"] == main_device(speed)]        # one device: never the best across devices
        eps = on.groupby("method")["examples_per_s"].max()
        table.insert(1, "examples_per_s", eps.reindex(table.index).round(1))
    for source, numbers in PUBLISHED.items():
        for task in [t for t in table.columns if t in ("mnli", "snli", "qnli", "rte")]:
            table[f"{task} ({source})"] = [numbers.get(m, {}).get(task) for m in table.index]
    return table


def relative_table(metrics):
    """Each student's accuracy as % of the mean teacher and of the teacher ensemble, per task."""
    import pandas as pd
    acc = method_table(metrics)
    rows = {}
    for m in acc.index:
        if m in ("teacher", "teacher_ensemble"):
            continue
        rows[f"{m} / mean teacher"] = (acc.loc[m] / acc.loc["teacher"] * 100).round(1)
        rows[f"{m} / ensemble"] = (acc.loc[m] / acc.loc["teacher_ensemble"] * 100).round(1)
    return pd.DataFrame(rows).T


def sweep_table(metrics, knob: str):
    df = metrics[metrics["sweep"].astype(str) == knob].copy()
    df["accuracy"] = df["accuracy"].astype(float) * 100
    return df.groupby(["task", knob])["accuracy"].mean().unstack("task").round(2)


def to_markdown(df, index: bool = True) -> str:
    """A pipe table (no extra dependency)."""
    d = df.reset_index() if index else df
    fmt = lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else (f"{v:.2f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(map(str, d.columns)) + " |", "|" + "---|" * len(d.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def save_table(run: Path, name: str, df) -> Path:
    """RUN_DIR/tables/<name>.md and .csv (atomic)."""
    folder = Path(run) / "tables"
    write_text_atomic(folder / f"{name}.csv", df.to_csv())
    path = write_text_atomic(folder / f"{name}.md", to_markdown(df))
    note_artifact(path)
    return path


def save_figure(run: Path, name: str, fig) -> Path:
    """RUN_DIR/figures/<name>.png (atomic)."""
    path = Path(run) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    note_artifact(path)
    return path


def plot_methods(metrics, methods=("1o1", "mom_avg", "mom_vote", "mo1", "tkd", "tmkd")):
    """Grouped bar chart: accuracy per task for each method, with the teacher ensemble as a line."""
    import matplotlib.pyplot as plt
    table = method_table(metrics)
    shown = [m for m in methods if m in table.index]
    tasks = list(table.columns)
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(tasks), 3.6))
    width = 0.8 / max(len(shown), 1)
    for i, m in enumerate(shown):
        ax.bar(np.arange(len(tasks)) + i * width, table.loc[m, tasks], width, label=METHOD_LABELS.get(m, m))
    if "teacher_ensemble" in table.index:
        for j, t in enumerate(tasks):
            ax.hlines(table.loc["teacher_ensemble", t], j - width / 2, j + 0.8 - width / 2, colors="k",
                      linestyles="--", label="teacher ensemble" if j == 0 else None)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks)
    ax.set_ylabel("dev accuracy (%)")
    ax.set_ylim(max(0, np.nanmin(table.loc[shown, tasks].values) - 10) if shown else 0, 100)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("One vs many teachers")
    return fig


def plot_sweep(metrics, knob: str, title: str = ""):
    import matplotlib.pyplot as plt
    table = sweep_table(metrics, knob)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for task in table.columns:
        if knob == "optimizer":
            ax.bar([str(v) for v in table.index], table[task], label=task)
        else:
            ax.plot(table.index, table[task], marker="o", label=task)
    ax.set_xlabel(knob)
    ax.set_ylabel("dev accuracy (%)")
    ax.set_title(title or f"{knob} sweep")
    ax.legend()
    return fig


def plot_curves(folders: dict, title: str = "training loss"):
    """Training loss against epoch for several finished runs {label: folder}."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, folder in folders.items():
        h = log_history(folder)
        if len(h):
            ax.plot(h["epoch"], h["loss"], label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return fig


def plot_speed(metrics, speed):
    """Accuracy against examples/s (log scale) on one device: the trade the paper's QPS column reports."""
    import matplotlib.pyplot as plt
    from .speed import main_device
    device = main_device(speed)
    speed = speed[speed["device"] == device]
    acc = main_rows(metrics).groupby(["method", "task"])["accuracy"].mean()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for _, r in speed.iterrows():
        task = r["model"].split("/")[0] if "/" in r["model"] else None
        key = (r["method"], task)
        if key in acc.index:
            ax.scatter(r["examples_per_s"], acc[key] * 100)
            ax.annotate(r["model"].split("/")[-1], (r["examples_per_s"], acc[key] * 100), fontsize=7)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(plt.LogLocator(subs=(1, 2, 5)))   # 10, 20, 50, 100, ... in plain numbers
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("examples/s (batch 32)")
    ax.set_ylabel("dev accuracy (%)")
    ax.set_title(f"Accuracy vs speed on {device.split(' (')[0]}")
    return fig


def training_runs(run: Path) -> dict:
    """{label: final folder} of every finished teacher and student, for the training curves."""
    run = Path(run)
    found = {}
    for kind in ("teachers", "students"):
        for final in sorted(run.glob(f"{kind}/*/*/final")):
            if (final / "log_history.json").exists():
                found[f"{final.parent.parent.name}/{final.parent.name}"] = final
    return found
