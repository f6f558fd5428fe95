"""Teacher logits: computed once per teacher and split, cached with what produced them, and aligned to a split by
example id and to the task's label order by name. Teachers are reported on dev from these files, and compared
(best teacher, weak teachers) on the held-out select slice of train only."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .config import TASKS, Config, TMKDError
from .data import dev_splits, split_dataset
from .method import accuracy, teacher_ensemble
from .rundir import (check_run_dir, file_sha256, force_stamp, forced_here, load_npz, note_artifact, read_json,
                     record_metrics, save_npz_atomic, write_json_atomic)
from .teachers import load_teacher, teacher_dir, teacher_label_names, teacher_names
from .trainer import params_of, predict_logits


def logits_path(cfg: Config, task: str, teacher: str, split: str) -> Path:
    return cfg.run_path / "logits" / task / teacher / f"{split}.npz"


def teacher_logits(cfg: Config, task: str, teacher: str, split: str, force: bool = False) -> dict:
    """The teacher's logits on a split: {'logits' (n, C) in the teacher's own label order, 'idx', 'labels'}.

    Cached in RUN_DIR/logits/<task>/<teacher>/<split>.npz beside a json of what produced it (teacher,
    its weights, data fingerprint, label order, file hash). A stale, partial or corrupt cache is rebuilt."""
    path = logits_path(cfg, task, teacher, split)
    folder = teacher_dir(cfg, task, teacher) / "final"
    done = read_json(folder / "done.json")
    if done is None:
        raise TMKDError(f"{task}/{teacher} is not trained yet: run chapter 01 (teachers) first")
    ds = split_dataset(cfg, task, split)
    teacher_labels = teacher_label_names(folder)
    meta = {"teacher": f"{task}/{teacher}", "teacher_weights": {k: v for k, v in done.items() if k != "forced_in"},
            "data": ds._fingerprint, "n": len(ds), "label_names": teacher_labels, "split": split}
    cached = read_json(path.with_suffix(".json"))
    problem = _logits_problem(path, cached, meta)
    if problem is None and (not force or forced_here(cached)):
        note_artifact(path.with_suffix(".json"))
        arrays = load_npz(path)
        return {"logits": arrays["logits"], "idx": arrays["idx"], "labels": teacher_labels}
    if problem and path.with_suffix(".json").exists():
        print(f"! {task}/{teacher}/{split}: cached logits {problem} - recomputing")
    model = load_teacher(folder)
    logits = predict_logits(model, ds, cfg.eval_batch_size, desc=f"{teacher} {split}", mixed=False)   # fp32 targets
    save_npz_atomic(path, logits=logits, idx=np.asarray(ds["idx"], dtype=np.int64))
    write_json_atomic(path.with_suffix(".json"), meta | {"sha256": file_sha256(path)} | force_stamp(force))
    note_artifact(path.with_suffix(".json"))
    return {"logits": logits, "idx": np.asarray(ds["idx"]), "labels": teacher_labels}


def _logits_problem(path: Path, cached, meta: dict):
    if cached is None:
        return "missing"
    for key in ("teacher_weights", "data", "n", "label_names"):
        if cached.get(key) != json.loads(json.dumps(meta[key])):
            return f"stale ({key} changed)"
    if not path.exists() or file_sha256(path) != cached.get("sha256"):
        return "corrupt (file missing or hash mismatch)"
    return None


def align_labels(logits: np.ndarray, from_labels, to_labels) -> np.ndarray:
    """Re-order logit columns from a model's label order to the task's (by name, e.g. MNLI's two orders)."""
    from_labels, to_labels = [str(l).lower() for l in from_labels], [str(l).lower() for l in to_labels]
    if sorted(from_labels) != sorted(to_labels):
        raise TMKDError(f"teacher labels {from_labels} differ from the task's {to_labels}: "
                        "these logits come from a teacher of another task; use that task's teachers")
    return logits[:, [from_labels.index(l) for l in to_labels]]


def align_examples(values: np.ndarray, idx, target_idx) -> np.ndarray:
    """Rows of `values` (keyed by example id `idx`) in the order of `target_idx`."""
    position = {int(i): r for r, i in enumerate(np.asarray(idx))}
    missing = [int(i) for i in target_idx if int(i) not in position]
    if missing:
        raise TMKDError(f"{len(missing)} examples (e.g. id {missing[0]}) have no cached value: "
                        "the cache was built on other data; re-run chapter 02 with FORCE=True")
    return values[[position[int(i)] for i in target_idx]]


def stacked_teacher_logits(cfg: Config, task: str, teachers, split: str, ds=None) -> np.ndarray:
    """(examples x teachers x classes) logits of `teachers` on `split`, aligned to `ds` by example and label."""
    ds = split_dataset(cfg, task, split) if ds is None else ds
    order = TASKS[task].labels
    blocks = []
    for t in teachers:
        c = teacher_logits(cfg, task, t, split)
        blocks.append(align_examples(align_labels(c["logits"], c["labels"], order), c["idx"], ds["idx"]))
    return np.stack(blocks, axis=1).astype(np.float32)


def with_teacher_logits(cfg: Config, task: str, split: str, teachers, average: bool = False):
    """The split with a `teacher_logits` column (teachers x classes per example); `average` -> one mean teacher."""
    ds = split_dataset(cfg, task, split)
    logits = stacked_teacher_logits(cfg, task, teachers, split, ds)
    if average:
        logits = logits.mean(axis=1, keepdims=True)
    return ds.add_column("teacher_logits", logits.tolist())


def cache_all_logits(cfg: Config, force: bool = False):
    """Chapter 02: every teacher's logits for every split; returns a summary frame."""
    import pandas as pd
    check_run_dir(cfg)
    rows = []
    for task in cfg.tasks:
        for t in teacher_names(cfg):
            for split in ("train", "select", *dev_splits(task)):
                c = teacher_logits(cfg, task, t, split, force)
                rows.append({"task": task, "teacher": t, "split": split, "examples": len(c["idx"]),
                             "classes": c["logits"].shape[1],
                             "file": str(logits_path(cfg, task, t, split).relative_to(cfg.run_path))})
    return pd.DataFrame(rows)


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


def select_accuracies(cfg: Config, task: str) -> dict:
    """Each teacher's accuracy on the held-out `select` slice of train (never on the reported dev set)."""
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
