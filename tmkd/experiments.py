"""What the chapters run: each KD method of tmkd.method as student steps (chapter 04), the sweeps (chapter 03) and
the two stages (chapters 05-06), each recording its dev accuracy rows in metrics.csv."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .base_model import base_depth
from .config import Config, TMKDError
from .data import dev_splits
from .logit_cache import align_examples, best_teacher
from .method import ONE_STAGE_METHODS, combine_students, method_students
from .rundir import check_run_dir, read_json, read_metrics, record_metrics
from .students import StudentSpec, spec_row, student_dir, student_predictions, student_rows, train_student
from .teachers import teacher_names
from .trainer import params_of


def base_spec(cfg: Config, task: str, **changes) -> StudentSpec:
    """The configuration's default student (m-o-1 with every teacher), with `changes` applied."""
    spec = StudentSpec(task=task, teachers=tuple(teacher_names(cfg)), alpha=cfg.alpha, layers=cfg.student_layers,
                       head_layers=cfg.student_head_layers, optimizer=cfg.optimizer, seed=cfg.seed)
    return dataclasses.replace(spec, **changes)


def method_specs(cfg: Config, task: str, method: str) -> list:
    """The student steps of `method` on `task` (tmkd.method.method_students says what each method trains)."""
    best = best_teacher(cfg, task) if method in ("1o1", "tkd") else ""
    specs = []
    for s in method_students(method, teacher_names(cfg), best):
        changes = {"teachers": s.teachers, "average_teachers": s.average}
        if not s.teachers:
            changes["alpha"] = 0.0                       # no teachers: gold labels only
        specs.append(base_spec(cfg, task, **changes))
    return specs


def run_method(cfg: Config, task: str, method: str, force: bool = False) -> list:
    """Train (or reuse) the students of one one-stage method and record its dev accuracy rows."""
    if method not in ONE_STAGE_METHODS:
        raise TMKDError(f"unknown one-stage method {method!r}: choose from {ONE_STAGE_METHODS}")
    specs = method_specs(cfg, task, method)
    if method == "1o1":
        print(f"  1-o-1 on {task} learns from {specs[0].teachers[0]} (the teacher with the best dev accuracy)")
    for spec in specs:
        train_student(cfg, spec, force)
    rows = mom_rows(cfg, specs, method) if method.startswith("mom_") else student_rows(cfg, specs[0], method)
    record_metrics(cfg.run_path, rows)
    return rows


def mom_rows(cfg: Config, specs: list, method: str) -> list:
    """m-o-m rows: the students' dev probabilities aligned by example id, then averaged or voted."""
    task, how = specs[0].task, method.split("_")[1]
    rows = []
    for split in dev_splits(task):
        preds = [student_predictions(cfg, s, split) for s in specs]
        ref = preds[0]["idx"]
        probs = [align_examples(p["probs"], p["idx"], ref) for p in preds]
        gold = align_examples(preds[0]["labels"], preds[0]["idx"], ref)
        predicted = combine_students(probs, how)
        rows.append(spec_row(cfg, specs[0]) | {
            "method": method, "model": f"{task}/mom{len(specs)}{specs[0].suffix}", "split": split,
            "sweep": "", "teachers": "+".join(t for s in specs for t in s.teachers),
            "accuracy": float((predicted == gold).mean()), "n_examples": len(gold),
            "params": sum(params_of(student_dir(cfg, s) / "final") for s in specs)})
    return rows


def one_vs_many(cfg: Config, force: bool = False):
    """Chapter 04: every one-stage method on every task, beside the teachers and their ensemble."""
    from .report import method_table
    check_run_dir(cfg)
    for task in cfg.tasks:
        for method in ONE_STAGE_METHODS:
            run_method(cfg, task, method, force)
    return method_table(read_metrics(cfg.run_path), ("teacher_ensemble", "teacher") + ONE_STAGE_METHODS)


# ---- chapter 03: the student's knobs ---------------------------------------------------------------------

SWEEPS = {"optimizer": "sweep_optimizers", "head_layers": "sweep_head_layers", "layers": "sweep_layers"}


def sweep_values(cfg: Config, knob: str) -> list:
    if knob not in SWEEPS:
        raise TMKDError(f"unknown sweep {knob!r}: choose from {list(SWEEPS)}")
    values = list(getattr(cfg, SWEEPS[knob]))
    if knob == "layers":     # the paper's Table 9, capped at the teachers' depth
        depth = base_depth(cfg)
        values = sorted({min(k, depth) for k in values})
    return values


def run_sweep(cfg: Config, knob: str, force: bool = False):
    """Train the m-o-1 student of cfg.sweep_task at each value of one knob; rows carry sweep=<knob>."""
    import pandas as pd
    check_run_dir(cfg)
    rows = []
    for value in sweep_values(cfg, knob):
        spec = base_spec(cfg, cfg.sweep_task, **{knob: value})
        train_student(cfg, spec, force)
        rows += student_rows(cfg, spec, "mo1", sweep=knob)
    record_metrics(cfg.run_path, rows)
    return pd.DataFrame(rows)[["task", "split", knob, "accuracy", "params", "model"]]


# ---- chapters 05-06: the two stages ----------------------------------------------------------------------

def stage_teachers(cfg: Config, method: str, task: str) -> tuple:
    """TMKD: all of the task's teachers; TKD: its best one (tmkd.method.method_students)."""
    if method not in ("tmkd", "tkd"):
        raise TMKDError(f"the two stages serve method 'tmkd' (m-o-1) or 'tkd' (1-o-1), not {method!r}")
    best = best_teacher(cfg, task) if method == "tkd" else ""
    return method_students(method, teacher_names(cfg), best)[0].teachers


def stage1_spec(cfg: Config, method: str) -> StudentSpec:
    """Stage 1: soft loss only (alpha = 1) from the stage-1 task's teachers, on its corpus."""
    corpus = "pool" if cfg.stage1_corpus == "pool" else "train"
    return base_spec(cfg, cfg.stage1_task, teachers=stage_teachers(cfg, method, cfg.stage1_task), alpha=1.0,
                     stage=1, corpus=corpus)


def run_stage1(cfg: Config, method: str = "tmkd", force: bool = False) -> Path:
    """Distillation pre-training; also scores the stage-1 student on its task's dev set (sweep='stage1')."""
    check_run_dir(cfg)
    spec = stage1_spec(cfg, method)
    if spec.corpus == "pool":
        print(f"  stage-1 corpus: train pairs of {list(cfg.stage1_pool_tasks)}, labels dropped, "
              f"scored by the {cfg.stage1_task} teachers")
    final = train_student(cfg, spec, force)
    record_metrics(cfg.run_path, student_rows(cfg, spec, method, sweep="stage1"))
    return final


def stage2_spec(cfg: Config, method: str, alpha: float | None = None) -> StudentSpec:
    task = cfg.stage2_task
    return base_spec(cfg, task, teachers=stage_teachers(cfg, method, task),
                     alpha=cfg.alpha if alpha is None else alpha, stage=2, init_from=stage1_spec(cfg, method).name)


def run_stage2(cfg: Config, method: str = "tmkd", alpha: float | None = None, sweep: str = "",
               force: bool = False) -> list:
    """Task distillation fine-tuning from the stage-1 student: (1-alpha) l_g + alpha l_s on stage2_task."""
    check_run_dir(cfg)
    spec = stage2_spec(cfg, method, alpha)
    train_student(cfg, spec, force)
    rows = student_rows(cfg, spec, method, sweep=sweep)
    record_metrics(cfg.run_path, rows)
    return rows


def alpha_sweep(cfg: Config, force: bool = False):
    """TMKD stage 2 at every alpha of cfg.alphas (paper Table 8: larger is better, except alpha = 1)."""
    import pandas as pd
    rows = []
    for a in cfg.alphas:
        rows += run_stage2(cfg, "tmkd", a, sweep="alpha", force=force)
    return pd.DataFrame(rows)[["task", "split", "alpha", "accuracy", "model"]]


def log_history(folder):
    """A finished run's Trainer log (step, epoch, loss, learning_rate) as a frame."""
    import pandas as pd
    logs = read_json(Path(folder) / "log_history.json") or []
    return pd.DataFrame([r for r in logs if "loss" in r])


# ---- which differences are more than noise (tmkd.evidence) ------------------------------------------------

ONE_STAGE_COMPARISONS = (("mo1", "no_kd"), ("mo1", "1o1"), ("mo1", "1avgo1"), ("mom_avg", "mo1"))
TWO_STAGE_COMPARISONS = (("tmkd", "mo1"), ("tmkd", "tkd"))


def method_correct(cfg: Config, task: str, method: str, split: str):
    """Per dev example (in example-id order), whether `method`'s prediction is the gold label."""
    import numpy as np
    specs = [stage2_spec(cfg, method)] if method in ("tmkd", "tkd") else method_specs(cfg, task, method)
    preds = [student_predictions(cfg, s, split) for s in specs]
    order = np.sort(preds[0]["idx"])
    probs = [align_examples(p["probs"], p["idx"], order) for p in preds]
    gold = align_examples(preds[0]["labels"], preds[0]["idx"], order)
    predicted = combine_students(probs, method.split("_")[1]) if method.startswith("mom_") else probs[0].argmax(-1)
    return predicted == gold


def compare_methods(cfg: Config, pairs, tasks=None):
    """For each task, dev split and pair (A, B) of trained methods: A's accuracy minus B's in points, its paired
    bootstrap 95 % interval and the verdict (supported / refuted / within noise)."""
    import pandas as pd
    from .evidence import paired_bootstrap, sentence, verdict
    from .report import METHOD_LABELS
    rows = []
    for task in tasks or cfg.tasks:
        for split in dev_splits(task):
            for a, b in pairs:
                interval = paired_bootstrap(method_correct(cfg, task, a, split), method_correct(cfg, task, b, split))
                rows.append({"task": task, "split": split, "a": a, "b": b,
                             "difference": round(interval["difference"], 2), "low": round(interval["low"], 2),
                             "high": round(interval["high"], 2), "verdict": verdict(interval),
                             "reads": sentence(METHOD_LABELS.get(a, a), METHOD_LABELS.get(b, b), interval)})
    return pd.DataFrame(rows)
