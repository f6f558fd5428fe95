"""Figures from metrics.csv and speed.csv (and the Trainer logs for training curves): every method, the sweeps, the
convergence and loss curves, the teachers' logits, accuracy against speed. Each is fitted to its data, with a legend
in a stable order and no label over a marker or a tick. The tables are tmkd.reporting.report's; the sentences tmkd.reporting.takeaways'."""
from __future__ import annotations

import numpy as np

from tmkd.model.methods import arms, label, table_order
from tmkd.core.numbers import pct
from tmkd.reporting.report import collapsed, dev_noise, log_history, main_device, main_rows, per_seed, sweep_rows


def plot_methods(metrics, methods=None, title="Dev accuracy by method", majority=None):
    """One axis per task: each method's mean over seeds with its sd as an error bar, the teacher ensemble as a
    dashed line and, with `majority` ({task: %}, majority_classes), the majority class as a dotted one (a bar at
    or below it did not learn); a collapsed model (one class for >= 95 % of examples) is marked x."""
    import matplotlib.pyplot as plt
    methods = tuple(arms("04", variants=False) if methods is None else methods)     # default: chapter 04's methods
    seeds = per_seed(metrics, methods + ("teacher_ensemble",))
    tasks = sorted(seeds["task"].unique())
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(3.4 * max(len(tasks), 1) + 1.2, 3.8), squeeze=False)
    bad = collapsed(metrics)
    main = main_rows(metrics)
    first = int(seeds["seed"].min())
    for ax, task in zip(axes[0], tasks):
        on = seeds[seeds["task"] == task]
        shown = [m for m in methods if m in set(on["method"])]
        stats = on.groupby("method")["accuracy"].agg(["mean", "std", "count"]).reindex(shown)
        several = (stats["count"] > 1).to_numpy()
        x = np.arange(len(shown))
        ax.bar(x[several], stats["mean"][several], yerr=stats["std"][several], capsize=3, color="tab:blue",
               label="mean over its seeds ± sd")
        ax.bar(x[~several], stats["mean"][~several], color="tab:blue", alpha=0.35, hatch="//", edgecolor="tab:blue",
               label=f"one seed ({first}): no sd")        # a one-seed bar has no spread to draw, so no cap
        at = on[on["seed"] == first].groupby("method")["accuracy"].mean().reindex(shown)
        ax.plot(x, at, "o", color="k", ms=4, label=f"seed {first}, which every arm has: compare these")
        for i, m in enumerate(shown):
            models = main[(main["task"] == task) & (main["method"] == m)]["model"]
            if any(x in bad for x in models):
                ax.plot(i, stats.loc[m, "mean"] + 1, "x", color="tab:red", ms=9)
        ens = on[on["method"] == "teacher_ensemble"]["accuracy"]
        values = list(stats["mean"] - stats["std"].fillna(0)) + list(stats["mean"] + stats["std"].fillna(0)) + \
            list(at.dropna())
        if len(ens):
            ax.axhline(ens.mean(), color="k", ls="--", lw=1, label="teacher ensemble")
            values.append(ens.mean())
        if majority and task in majority:
            ax.axhline(majority[task], color="gray", ls=":", lw=1.2, label="majority class")
            values.append(majority[task])
        ax.set_xticks(x, [f"{label(m)} ({int(n)})" for m, n in zip(shown, stats["count"])], rotation=35, ha="right",
                      fontsize=8)
        ax.set_ylim(max(0, min(values) - 3), min(100, max(values) + 3))     # fitted to the data and its lines
        ax.set_title(task.upper(), fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    axes[0][0].set_ylabel("dev accuracy (%)", labelpad=6)
    found = {}
    for ax in axes[0]:                      # every kind of mark once, whichever axis drew it
        for h, text in zip(*ax.get_legend_handles_labels()):
            found.setdefault(text, h)
    fig.legend(list(found.values()), list(found), fontsize=7, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.04),
               frameon=False)
    fig.suptitle(title + "\n(each label's (n): its seeds" + ("; x: collapsed to one class)" if any(
        m in bad for m in main["model"]) else ")"), fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_sweep(metrics, knob: str, title: str = "", majority=None):
    """One line per task (and method, report.sweep_rows) over the knob's values (one seed): error bars are the 95 % binomial interval of each
    accuracy on its dev set, i.e. how much a different dev sample of that size could move it. The y axis fits the
    points; the majority class ({task: %}) is dotted where it falls inside, else named in the legend."""
    import matplotlib.pyplot as plt
    df = sweep_rows(metrics, knob)                       # 1, 3, 10 in numeric order, alpha on its own scale
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    low, high = [], []
    for series, g in df.groupby("series", sort=False):
        g = g.groupby(knob).agg(accuracy=("accuracy", "mean"), n=("n_examples", "sum")).reset_index()
        err = [dev_noise(a, n) for a, n in zip(g["accuracy"], g["n"])]
        x = [str(v) for v in g[knob]] if knob == "optimizer" else g[knob]
        ax.errorbar(x, g["accuracy"] * 100, yerr=err, marker="o", capsize=3, label=series,
                    ls="none" if knob == "optimizer" else "-")        # no line joins two unordered choices
        low.append(min(g["accuracy"] * 100 - err))
        high.append(max(g["accuracy"] * 100 + err))
    if low:
        ax.set_ylim(max(0, min(low) - 2), min(100, max(high) + 2))
    for task in sorted(set(df["task"])):
        if majority and task in majority:
            inside = ax.get_ylim()[0] <= majority[task] <= ax.get_ylim()[1]
            ax.axhline(majority[task] if inside else float("nan"), color="gray", ls=":", lw=1.2,
                       label=f"{task.upper()} majority class ({pct(majority[task])} %)" + ("" if inside else ", below the axis"))
    ax.set_xlabel(knob)
    ax.set_ylabel("dev accuracy (%)")
    ax.set_title(title or f"{knob} sweep (one seed; bars: 95 % dev-sample interval)", fontsize=9)
    if knob != "optimizer":
        ticks = sorted(set(df[knob]))
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: "majority" in labels[i])       # the data first, then the line
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7, loc="upper center",
              bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)            # below: the axes keep the width
    fig.tight_layout()
    return fig


def plot_logits(cfg, split: str = "select"):
    """Each teacher's pre-softmax logits on `split` (every class pooled), one panel per task: the scale the soft
    loss's MSE works on. The legend gives each teacher's logit_scale (the standard deviation, chapter 02's table)."""
    import matplotlib.pyplot as plt
    from tmkd.training.logit_cache import stacked_teacher_logits
    from tmkd.training.teachers import teacher_names
    names = teacher_names(cfg)
    fig, axes = plt.subplots(1, len(cfg.tasks), figsize=(4.4 * len(cfg.tasks) + 1.8, 3.2), squeeze=False)
    for ax, task in zip(axes[0], cfg.tasks):
        logits = stacked_teacher_logits(cfg, task, names, split)
        bins = np.linspace(logits.min(), logits.max(), 40)
        for i, t in enumerate(names):
            ax.hist(logits[:, i].ravel(), bins=bins, histtype="step", lw=1.5,
                    label=f"{t.removeprefix('teacher-')} (scale {logits[:, i].std():.2f})")
        ax.set_title(task.upper(), fontsize=9)
        ax.set_xlabel("teacher logit (every class)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    axes[0][0].set_ylabel(f"examples x classes ({split})")
    fig.suptitle("The teachers' logits: what each soft head's MSE is asked to match", fontsize=10)
    fig.tight_layout()
    return fig


def loss_ends(h) -> dict:
    """A logged loss curve's start and end, each the mean of a quarter of its logged points (at least one), so
    that two noisy per-batch values do not stand for the curve: {"first", "last": mean loss, "first_epochs",
    "last_epochs": (from, to) in epochs}."""
    k = max(1, len(h) // 4)
    head, tail = h.iloc[:k], h.iloc[-k:]
    return {"first": float(head["loss"].mean()), "last": float(tail["loss"].mean()),
            "first_epochs": (float(head["epoch"].iloc[0]), float(head["epoch"].iloc[-1])),
            "last_epochs": (float(tail["epoch"].iloc[0]), float(tail["epoch"].iloc[-1]))}


def in_order(labels):
    """Labels in a stable reading order: numbers inside them compared as numbers (lr 4e-05 < 6e-05 < 1e-04)."""
    import re
    number = r"\d+(?:\.\d+)?(?:e[-+]?\d+)?"
    return sorted(labels, key=lambda s: [(0, float(p)) if re.fullmatch(number, p) else (1, p)
                                         for p in re.split(f"({number})", str(s)) if p])


def plot_curves(folders: dict, title: str = "training loss", relative: bool = False):
    """Training loss against epoch for several finished runs {label: folder}, in a stable legend order. With
    `relative`, each run's loss is divided by its own start (loss_ends' first value): runs whose losses have
    different targets (TKD copies one teacher, TMKD several) are then compared by how far each fell."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.4, 3.3))
    for label in in_order(folders):
        h = log_history(folders[label])
        if len(h):
            scale = loss_ends(h)["first"] if relative else 1.0
            ax.plot(h["epoch"], h["loss"] / scale, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / its own start" if relative else "loss")
    if relative:
        ax.axhline(1.0, color="gray", ls=":", lw=1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def plot_speed(metrics, speed, task: str, majority=None):
    """Accuracy on `task` against examples/s (log scale) on one device, for the models of that task: the trade the
    paper's QPS column reports. A legend names the points (no label can cover a marker); the no-KD student is
    drawn at the speed of the student of its depth (the same encoder, one head); the majority class dotted."""
    import matplotlib.pyplot as plt
    device = main_device(speed)
    speed = speed[speed["device"] == device]
    mine = speed["model"].astype(str).str.split("/").str[0] == task
    acc = main_rows(metrics).groupby(["method", "task"])["accuracy"].mean()
    points = {r["method"]: r["examples_per_s"] for _, r in speed[mine].iterrows() if (r["method"], task) in acc.index}
    depth = speed[speed["method"] == "mo1"]            # the students' depths are timed on the sweep task: same encoder
    if "mo1" not in points and len(depth) and ("mo1", task) in acc.index:
        points["mo1"] = float(depth["examples_per_s"].iloc[0])
    if "mo1" in points and ("no_kd", task) in acc.index:
        points["no_kd"] = points["mo1"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    markers = "osD^vP*Xh<>"
    order = [m for m in table_order("main") if m in points] + [m for m in points if m not in table_order("main")]
    for i, m in enumerate(order):                  # hollow markers: two models at one spot both stay visible
        ax.scatter(points[m], acc[(m, task)] * 100, marker=markers[i % len(markers)], s=70 - 4 * i, zorder=3,
                   facecolors="none", edgecolors=f"C{i}", linewidths=1.6,
                   label=f"{label(m)} ({pct(acc[(m, task)] * 100)} %"
                         + ("; timed as m-o-1, the same encoder)" if m == "no_kd" else ")"))
    ys = [acc[(m, task)] * 100 for m in order]
    if ys:
        ax.set_ylim(min(ys) - 2, max(ys) + 2)             # fitted to the points
        xs = list(points.values())
        ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
    if majority and task in majority:
        inside = ax.get_ylim()[0] <= majority[task] <= ax.get_ylim()[1]
        ax.axhline(majority[task] if inside else float("nan"), color="gray", ls=":", lw=1.2,
                   label=f"majority class ({pct(majority[task])} %)" + ("" if inside else ", below the axis"))
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(plt.LogLocator(subs=(1, 2, 5)))   # 10, 20, 50, 100, ... in plain numbers
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("examples/s (batch 32)")
    ax.set_ylabel(f"{task.upper()} dev accuracy (%)")
    ax.set_title(f"{task.upper()}: accuracy vs speed on {device.split(' (')[0]}", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # below: full width
    fig.tight_layout()
    return fig


def plot_stage1_size(curve, lines: dict, task: str):
    """Chapter 05's corpus-size curve: dev accuracy against the stage-1 corpus' pairs, after stage 1 alone and after
    stage 2 (one seed per size), with horizontal lines for the reference models ({label: %}: the teachers'
    ensemble, no KD). The x axis is symmetric-log, so 0 (no stage 1) and every size show; its top axis counts
    multiples of the labelled pairs."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    labelled = int(curve["labelled pairs"].iloc[0])
    x = curve["stage-1 pairs"].astype(float)
    one = curve["after stage 1 (%)"].astype(float)
    two = curve["after stage 2 (%)"].astype(float)
    ax.plot(x, two, "o-", color="tab:blue", label="TMKD after stage 2")
    ax.plot(x[one.notna()], one[one.notna()], "s--", color="tab:orange", label="TMKD after stage 1 alone")
    styles = iter([("tab:green", "-"), ("tab:gray", ":"), ("tab:red", "-.")])
    for label, value in lines.items():
        color, ls = next(styles)
        ax.axhline(value, color=color, ls=ls, lw=1.2, label=f"{label} ({pct(value)} %)")
    ax.set_xscale("symlog", linthresh=max(float(x[x > 0].min()), 1.0) if (x > 0).any() else 1.0)
    ax.set_xticks(list(x), [f"{int(v):,}" for v in x], fontsize=8)
    ax.minorticks_off()
    ax.set_xlim(-0.1 * (x[x > 0].min() if (x > 0).any() else 1), x.max() * 1.6)
    values = [*two, *one.dropna(), *lines.values()]
    ax.set_ylim(min(values) - 2, max(values) + 2)
    ax.set_xlabel(f"stage-1 pairs (0 = no stage 1, that is m-o-1; {labelled:,} labelled pairs in stage 2)")
    ax.set_ylabel(f"{task.upper()} dev accuracy (%)")
    ax.set_title("Stage 1's corpus size (first seed; the paper: TMKD_base 4M vs TMKD_large 40M pairs)", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    fig.tight_layout()
    return fig
