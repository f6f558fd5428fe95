"""Choosing teachers: each teacher and their ensemble reported on dev, and compared only on the held-out `select`
slice of train: the best teacher (1-o-1, TKD) and the weak ones (the `_strong` variants leave them out). Read from
the cached logits, so no teacher runs here; nothing is chosen on the dev set."""
from __future__ import annotations

import functools

import numpy as np

from tmkd.core.config import Config, TMKDError
from tmkd.inputs.data import dev_splits, split_dataset
from tmkd.training.logit_cache import logits_path, stacked_teacher_logits
from tmkd.model.method import accuracy, teacher_ensemble
from tmkd.training.rundir import record_metrics
from tmkd.training.teachers import teacher_dir, teacher_names
from tmkd.training.trainer import params_of

# ---- teachers on dev, from their cached logits --------------------------------------------------------------

def evaluate_teachers(cfg: Config, tasks=None, record: bool = True):
    """Each teacher and the teacher ensemble (mean of probabilities) on the dev sets, against gold labels."""
    import pandas as pd
    rows = []
    for task in tasks or cfg.tasks:
        names = teacher_names(cfg)
        params = params_of(teacher_dir(cfg, task, names[0]) / "final")
        for split in dev_splits(task):
            ds = split_dataset(cfg, task, split)
            logits = stacked_teacher_logits(cfg, task, names, split, ds)          # (n, N, C)
            gold = np.asarray(ds["label"])
            common = {"task": task, "split": split, "n_examples": len(ds), "teachers": "+".join(names),
                      "epochs": cfg.teacher_epochs, "seed": cfg.seed, "stage": 0}
            for i, name in enumerate(names):
                rows.append(common | {"method": "teacher", "model": f"{task}/{name}", "params": params,
                                      "accuracy": accuracy(logits[:, i], gold), "lr": cfg.teacher_lrs[i],
                                      "teachers": name, "pooling": cfg.pooling})
            rows.append(common | {"method": "teacher_ensemble", "model": f"{task}/ensemble-{len(names)}",
                                  "params": params * len(names), "accuracy": accuracy(teacher_ensemble(logits), gold)})
    if record:
        record_metrics(cfg.run_path, rows)
    return pd.DataFrame(rows)


def select_split(cfg: Config, task: str):
    ds = split_dataset(cfg, task, "select")
    if len(ds) == 0:
        raise TMKDError(f"select_size={cfg.select_size}: {task} has no held-out slice to compare teachers on. "
                        "Set select_size (e.g. 200) so that the best teacher is not chosen on the dev set")
    return ds


def _select_version(cfg: Config, task: str) -> tuple:
    """The version of the task's select logits: their files' modification times (0 for a missing one)."""
    files = [logits_path(cfg, task, t, "select") for t in teacher_names(cfg)]
    return tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)


def select_accuracies(cfg: Config, task: str) -> dict:
    """Each teacher's accuracy on the held-out `select` slice of train (never on the reported dev set)."""
    return dict(_select_accuracies(cfg, task, _select_version(cfg, task)))


@functools.lru_cache(maxsize=64)
def _select_accuracies(cfg: Config, task: str, version: tuple) -> dict:
    """Cached per configuration, task and `version` of the select logits (a rewritten file is read again): the
    chapters ask the same question for every method and seed, and each answer reads the split and every teacher's
    logits."""
    ds = select_split(cfg, task)
    logits = stacked_teacher_logits(cfg, task, teacher_names(cfg), "select", ds)
    return {t: accuracy(logits[:, i], ds["label"]) for i, t in enumerate(teacher_names(cfg))}


def best_teacher(cfg: Config, task: str) -> str:
    """The teacher with the best accuracy on the held-out select slice (ties go to the first in teacher_lrs)."""
    accs = select_accuracies(cfg, task)
    return max(accs, key=lambda t: (accs[t], -list(accs).index(t)))


def teacher_quality(cfg: Config, task: str):
    """Per teacher, on the held-out select slice: accuracy, the majority-class rate, the scale of its logits
    (std over examples and classes: what MSE targets weigh) and whether it is weak (cfg.weak_margin below the best
    teacher, or within 2 points of the majority class). Nothing here reads the dev set."""
    return _teacher_quality(cfg, task, _select_version(cfg, task)).copy()


@functools.lru_cache(maxsize=64)
def _teacher_quality(cfg: Config, task: str, version: tuple):
    """Cached as _select_accuracies is (the caller gets a copy of the frame)."""
    import pandas as pd
    ds = select_split(cfg, task)
    gold = np.asarray(ds["label"])
    majority = float(np.bincount(gold).max() / len(gold))
    logits = stacked_teacher_logits(cfg, task, teacher_names(cfg), "select", ds)
    accs = [accuracy(logits[:, i], gold) for i in range(logits.shape[1])]
    rows = []
    for i, t in enumerate(teacher_names(cfg)):
        reasons = []
        if accs[i] < max(accs) - cfg.weak_margin:
            reasons.append(f"{(max(accs) - accs[i]) * 100:.1f} points below the best teacher")
        if accs[i] <= majority + 0.02:
            reasons.append(f"near the majority class ({majority * 100:.1f} %)")
        rows.append({"task": task, "teacher": t, "select_accuracy": round(accs[i] * 100, 2),
                     "majority_class": round(majority * 100, 2), "logit_scale": round(float(logits[:, i].std()), 2),
                     "weak": bool(reasons), "why": "; ".join(reasons)})
    return pd.DataFrame(rows)


def weak_teachers(cfg: Config, task: str) -> list:
    """The teachers teacher_quality flags on `task` (never all of them: the best one is kept)."""
    q = teacher_quality(cfg, task)
    weak = list(q.loc[q["weak"], "teacher"])
    return [t for t in weak if t != best_teacher(cfg, task)]


def teachers_seen_and_unseen(cfg: Config, task: str):
    """Each teacher on the pairs it trained on (train: the pairs one-stage KD copies its logits on) and on pairs it
    never saw (select: the kind stage 1 reads): accuracy, the mean probability it gives the gold label, its mean
    top probability, and the root mean square of its logits (the size of the MSE targets), from the cached logits."""
    import pandas as pd
    rows = []
    for split, seen in (("train", "trained on"), ("select", "never saw")):
        ds = split_dataset(cfg, task, split)
        gold = np.asarray(ds["label"])
        logits = stacked_teacher_logits(cfg, task, teacher_names(cfg), split, ds)            # (n, N, C)
        for i, t in enumerate(teacher_names(cfg)):
            z = logits[:, i] - logits[:, i].max(-1, keepdims=True)
            probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
            rows.append({"task": task, "teacher": t, "pairs": f"{split} ({seen})", "n": len(gold),
                         "accuracy (%)": 100 * accuracy(logits[:, i], gold),
                         "P(gold label) (%)": 100 * float(probs[np.arange(len(gold)), gold].mean()),
                         "top probability (%)": 100 * float(probs.max(-1).mean()),
                         "logit RMS": float(np.sqrt((logits[:, i] ** 2).mean()))})
    return pd.DataFrame(rows)
