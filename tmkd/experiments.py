"""What the chapters run: each KD method of tmkd.method as student steps (chapter 04), the sweeps (chapter 03) and
the two stages (chapters 05-06), each recording its dev accuracy rows in metrics.csv."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .base_model import base_depth
from .config import Config, TMKDError
from .corpus import corpus_name
from .data import dev_splits
from .logit_cache import align_examples, best_teacher, weak_teachers
from .method import ONE_STAGE_METHODS, combine_students, method_students
from .rundir import check_run_dir, read_json, read_metrics, record_metrics
from .students import StudentSpec, spec_row, student_dir, student_predictions, student_rows, train_student
from .teachers import teacher_name, teacher_names
from .trainer import params_of


def base_spec(cfg: Config, task: str, **changes) -> StudentSpec:
    """The configuration's default student (m-o-1 with every teacher, the first seed), with `changes` applied."""
    spec = StudentSpec(task=task, teachers=tuple(teacher_names(cfg)), alpha=cfg.alpha, layers=cfg.student_layers,
                       head_layers=cfg.student_head_layers, optimizer=cfg.optimizer, seed=cfg.seeds[0])
    return dataclasses.replace(spec, **changes)


# Variants beside the paper's methods (metrics.csv `method` column): the same student code, other teachers or steps.
VARIANTS = {
    "mom_member": "one student of m-o-m (a 1-o-1 student of each teacher), scored on its own",
    "mo1_strong": "m-o-1 without the teachers flagged weak on the held-out slice",
    "1avgo1_strong": "1avg-o-1 without the teachers flagged weak on the held-out slice",
    "mo1_matched": "m-o-1 trained for as many steps as TMKD's two stages together, on the stage-2 pairs only",
}


def method_specs(cfg: Config, task: str, method: str, seed: int | None = None) -> list:
    """The student steps of `method` on `task` for one seed (tmkd.method.method_students says what each method
    trains; the `_strong` variants leave out the weak teachers)."""
    seed = cfg.seeds[0] if seed is None else seed
    strong = method.endswith("_strong")
    paper = method.removesuffix("_strong")
    teachers = teacher_names(cfg)
    if strong:
        weak = weak_teachers(cfg, task)
        teachers = [t for t in teachers if t not in weak]
    best = best_teacher(cfg, task) if paper in ("1o1", "tkd") else ""
    specs = []
    for s in method_students(paper, teachers, best):
        changes = {"teachers": s.teachers, "average_teachers": s.average, "seed": seed}
        if not s.teachers:
            changes["alpha"] = 0.0                       # no teachers: gold labels only
        if strong:
            changes["variant"] = "strong"
        specs.append(base_spec(cfg, task, **changes))
    return specs


def run_method(cfg: Config, task: str, method: str, force: bool = False) -> list:
    """Train (or reuse) the students of one one-stage method, once per seed, and record their dev accuracy rows.
    m-o-m also records each of its students on its own (method mom_member)."""
    known = ONE_STAGE_METHODS + ("mo1_strong", "1avgo1_strong")
    if method not in known:
        raise TMKDError(f"unknown one-stage method {method!r}: choose from {known}")
    if method == "1o1":
        print(f"  1-o-1 on {task} learns from {best_teacher(cfg, task)} (best on the held-out select slice)")
    rows = []
    for seed in cfg.seeds:
        specs = method_specs(cfg, task, method, seed)
        for spec in specs:
            train_student(cfg, spec, force)
        if method.startswith("mom_"):
            rows += mom_rows(cfg, specs, method)
            rows += [r for s in specs for r in student_rows(cfg, s, "mom_member")]
        else:
            rows += student_rows(cfg, specs[0], method)
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
            "top_class_share": float(np.bincount(predicted).max() / len(predicted)),
            "params": sum(params_of(student_dir(cfg, s) / "final") for s in specs)})
    return rows


def strong_variants(cfg: Config, task: str) -> list:
    """The weak-teacher variants worth training on `task`: m-o-1 and 1avg-o-1 without the flagged teachers, when
    at least two teachers remain (with one left, both would be 1-o-1, already trained)."""
    weak = weak_teachers(cfg, task)
    left = len(teacher_names(cfg)) - len(weak)
    if weak:
        print(f"  {task}: {', '.join(weak)} flagged weak on the held-out slice; {left} teacher(s) left"
              + ("" if left >= 2 else ": without them m-o-1 and 1avg-o-1 would be 1-o-1, so nothing more is trained"))
    return ["mo1_strong", "1avgo1_strong"] if weak and left >= 2 else []


def one_vs_many(cfg: Config, task: str, methods=ONE_STAGE_METHODS, force: bool = False):
    """Chapter 04 on one task: each method once per seed, then the weak-teacher variants where a teacher is weak.
    Returns the accuracy table (mean and sd over seeds) beside the teachers."""
    from .report import seed_table
    check_run_dir(cfg)
    for method in methods:
        run_method(cfg, task, method, force)
    for method in strong_variants(cfg, task):
        run_method(cfg, task, method, force)
    return seed_table(read_metrics(cfg.run_path), tasks=(task,))


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


def pooling_check(cfg: Config, force: bool = False):
    """Does the base learn from its [CLS] state or from the mean of its tokens? On sweep_task, the middle teacher
    and the no-KD student from the base, with each pooling (the configured one is the run's own teacher; the other
    is trained in RUN_DIR/checks/pooling-<p>, a run directory of its own). Rows carry sweep="pooling"."""
    import pandas as pd
    from .logit_cache import evaluate_teachers
    from .teachers import train_teacher
    task, lr = cfg.sweep_task, cfg.teacher_lrs[len(cfg.teacher_lrs) // 2]
    rows = []
    for p in ("cls", "mean"):
        c = cfg if p == cfg.pooling else dataclasses.replace(
            cfg, pooling=p, tasks=(task,), sweep_task=task, stage1_task=task, stage2_task=task, teacher_lrs=(lr,),
            run_dir=str(cfg.run_path / "checks" / f"pooling-{p}"))
        check_run_dir(c)
        train_teacher(c, task, lr, force)
        teacher = evaluate_teachers(c, tasks=(task,), record=False)
        teacher = teacher[teacher["model"] == f"{task}/{teacher_name(lr)}"]
        spec = base_spec(c, task, teachers=(), alpha=0.0)
        train_student(c, spec, force)
        student = pd.DataFrame(student_rows(c, spec, "no_kd", sweep="pooling"))
        for frame, what in ((teacher, "teacher"), (student, "no_kd")):
            for r in frame.to_dict("records"):
                rows.append(r | {"sweep": "pooling", "pooling": p, "method": what,
                                 "model": f"{r['model']}-{p}"})
    record_metrics(cfg.run_path, rows)
    return pd.DataFrame(rows)[["task", "split", "method", "pooling", "accuracy", "model"]]


# ---- chapters 05-06: the two stages ----------------------------------------------------------------------

def stage_teachers(cfg: Config, method: str, task: str) -> tuple:
    """TMKD: all of the task's teachers; TKD: its best one (tmkd.method.method_students)."""
    if method not in ("tmkd", "tkd"):
        raise TMKDError(f"the two stages serve method 'tmkd' (m-o-1) or 'tkd' (1-o-1), not {method!r}")
    best = best_teacher(cfg, task) if method == "tkd" else ""
    return method_students(method, teacher_names(cfg), best)[0].teachers


def stage1_spec(cfg: Config, method: str) -> StudentSpec:
    """Stage 1: soft loss only (alpha = 1) from the stage-1 task's teachers, on the unused train pairs (one seed:
    stage 2's seeds all start from it)."""
    return base_spec(cfg, cfg.stage1_task, teachers=stage_teachers(cfg, method, cfg.stage1_task), alpha=1.0,
                     stage=1, corpus=corpus_name(cfg))


def stage1_overlap(cfg: Config) -> dict:
    """For each task, how many stage-1 pairs are also among its train or select pairs (0 by construction)."""
    from .data import POOL_OFFSET, split_dataset
    if cfg.corpus_file:              # the user's own pairs: nothing ties them to a task's rows
        return {}
    tasks = cfg.stage1_pool_tasks if cfg.stage1_corpus == "pool" else (cfg.stage1_task,)
    corpus = np.asarray(split_dataset(cfg, cfg.stage1_task, "stage1")["idx"])
    out = {}
    for k, t in enumerate(tasks):
        mine = set((corpus[(corpus >= k * POOL_OFFSET) & (corpus < (k + 1) * POOL_OFFSET)] - k * POOL_OFFSET).tolist())
        labelled = set(split_dataset(cfg, t, "train")["idx"]) | set(split_dataset(cfg, t, "select")["idx"])
        out[t] = {"stage1_pairs": len(mine), "shared_with_train_or_select": len(mine & labelled)}
    return out


def run_stage1(cfg: Config, method: str = "tmkd", force: bool = False) -> Path:
    """Distillation pre-training; also scores the stage-1 student on its task's dev set (sweep='stage1')."""
    check_run_dir(cfg)
    spec = stage1_spec(cfg, method)
    final = train_student(cfg, spec, force)
    record_metrics(cfg.run_path, student_rows(cfg, spec, method, sweep="stage1"))
    return final


def stage2_tasks(cfg: Config) -> list:
    """stage2_task first, then every other task with teachers: each starts from the one stage-1 student."""
    return [cfg.stage2_task] + [t for t in cfg.tasks if t != cfg.stage2_task]


def stage2_spec(cfg: Config, method: str, alpha: float | None = None, task: str | None = None,
                seed: int | None = None) -> StudentSpec:
    task = task or cfg.stage2_task
    return base_spec(cfg, task, teachers=stage_teachers(cfg, method, task), seed=cfg.seeds[0] if seed is None else seed,
                     alpha=cfg.alpha if alpha is None else alpha, stage=2, init_from=stage1_spec(cfg, method).name)


def matched_spec(cfg: Config, task: str, seed: int | None = None) -> StudentSpec:
    """The compute-matched control: m-o-1 on the stage-2 pairs for as many examples as stage 1 + stage 2 see, so
    "two stages help" cannot be "more steps on the same pairs"."""
    from .data import split_dataset
    stage1 = len(split_dataset(cfg, cfg.stage1_task, "stage1")) * cfg.stage1_epochs
    train = len(split_dataset(cfg, task, "train"))
    epochs = round(cfg.student_epochs + stage1 / train, 2)
    return base_spec(cfg, task, seed=cfg.seeds[0] if seed is None else seed, variant="matched", epochs=epochs)


def run_stage2(cfg: Config, method: str = "tmkd", task: str | None = None, alpha: float | None = None,
               sweep: str = "", force: bool = False, seeds=None) -> list:
    """Task distillation fine-tuning from the stage-1 student, once per seed: (1-alpha) l_g + alpha l_s on `task`.
    method "mo1_matched" trains the compute-matched control instead (one stage)."""
    check_run_dir(cfg)
    task = task or cfg.stage2_task
    rows = []
    for seed in (cfg.seeds if seeds is None else seeds):
        spec = matched_spec(cfg, task, seed) if method == "mo1_matched" else stage2_spec(cfg, method, alpha, task, seed)
        train_student(cfg, spec, force)
        rows += student_rows(cfg, spec, method, sweep=sweep)
    record_metrics(cfg.run_path, rows)
    return rows


def alpha_sweep(cfg: Config, force: bool = False):
    """TMKD stage 2 on stage2_task at every alpha of cfg.alphas, first seed only (paper Table 8: larger is better,
    except alpha = 1)."""
    import pandas as pd
    rows = []
    for a in cfg.alphas:
        rows += run_stage2(cfg, "tmkd", alpha=a, sweep="alpha", force=force, seeds=cfg.seeds[:1])
    return pd.DataFrame(rows)[["task", "split", "alpha", "accuracy", "model"]]


def log_history(folder):
    """A finished run's Trainer log (step, epoch, loss, learning_rate) as a frame."""
    import pandas as pd
    logs = read_json(Path(folder) / "log_history.json") or []
    return pd.DataFrame([r for r in logs if "loss" in r])


# ---- which differences are more than noise (tmkd.evidence) ------------------------------------------------

ONE_STAGE_COMPARISONS = (("mo1", "no_kd"), ("mo1", "1o1"), ("mo1", "1avgo1"), ("mom_avg", "mo1"))
TWO_STAGE_COMPARISONS = (("tmkd", "mo1"), ("tmkd", "mo1_matched"), ("tmkd", "tkd"))


def method_spec_lists(cfg: Config, task: str, method: str) -> list:
    """Per seed, the students whose combined prediction is `method`'s."""
    if method in ("tmkd", "tkd"):
        return [[stage2_spec(cfg, method, task=task, seed=s)] for s in cfg.seeds]
    if method == "mo1_matched":
        return [[matched_spec(cfg, task, s)] for s in cfg.seeds]
    return [method_specs(cfg, task, method, s) for s in cfg.seeds]


def method_correct(cfg: Config, task: str, method: str, split: str):
    """(seeds, dev examples in example-id order): whether `method`'s prediction is the gold label."""
    out = []
    for specs in method_spec_lists(cfg, task, method):
        preds = [student_predictions(cfg, s, split) for s in specs]
        order = np.sort(preds[0]["idx"])
        probs = [align_examples(p["probs"], p["idx"], order) for p in preds]
        gold = align_examples(preds[0]["labels"], preds[0]["idx"], order)
        predicted = combine_students(probs, method.split("_")[1]) if method.startswith("mom_") else probs[0].argmax(-1)
        out.append(predicted == gold)
    return np.stack(out)


def compare_methods(cfg: Config, pairs, tasks=None):
    """For each task, dev split and pair (A, B) of trained methods: A's accuracy minus B's in points (mean over
    seeds), its paired bootstrap 95 % interval, the paper's difference, and the verdict on the paper's claim."""
    import pandas as pd
    from .evidence import claim_verdict, paired_bootstrap, sentence
    from .report import METHOD_LABELS, PUBLISHED
    rows = []
    for task in tasks or cfg.tasks:
        for split in dev_splits(task):
            for a, b in pairs:
                interval = paired_bootstrap(method_correct(cfg, task, a, split), method_correct(cfg, task, b, split))
                paper = PUBLISHED["paper"]
                pa, pb = paper.get(a, {}).get(task), paper.get(b, {}).get(task)
                claim = round(pa - pb, 2) if pa is not None and pb is not None else None
                rows.append({"task": task, "split": split, "a": a, "b": b, "seeds": interval["seeds"][0],
                             "difference": round(interval["difference"], 2), "low": round(interval["low"], 2),
                             "high": round(interval["high"], 2), "paper_difference": claim,
                             "verdict": claim_verdict(interval, claim),
                             "reads": sentence(METHOD_LABELS.get(a, a), METHOD_LABELS.get(b, b), interval)})
    return pd.DataFrame(rows)
