"""What the chapters run: each KD method of the registry (tmkd.model.methods) as student steps (chapters 04 and 06), the
sweeps (chapter 03), the two stages (chapters 05-06), each recording its dev accuracy rows in metrics.csv. Every
function trains its students in one call (tmkd.training.pool.train_students), then reads them."""
from __future__ import annotations

import dataclasses

import numpy as np

from tmkd.core.config import Config, TMKDError, stage1_tasks
from tmkd.inputs.data import POOL_OFFSET, dev_splits, split_dataset
from tmkd.training.logit_cache import align_examples
from tmkd.model import methods
from tmkd.model.method import combine_students
from tmkd.model.methods import method_students
from tmkd.core.numbers import rounded
from tmkd.training.pool import train_students
from tmkd.core.progress import progress
from tmkd.training.environment import open_chapter
from tmkd.training.rundir import check_run_dir, read_metrics, record_metrics
from tmkd.training.specs import (arm_seeds, arm_specs, base_spec, method_specs, stage1_spec, stage2_spec,
                                 stage2_tasks, sweep_specs)
from tmkd.training.students import (COLLAPSED, StudentSpec, kept_epoch, select_curve, spec_row,
                                    student_dir, student_predictions, student_rows)
from tmkd.training.teacher_selection import best_teacher, evaluate_teachers, weak_teachers
from tmkd.training.teachers import teacher_name, teacher_names, train_teacher
from tmkd.training.trainer import params_of
from tmkd.training.weights import release


def start_chapter(chapter: str, profile: str, run_dir: str = "", data_dir: str = "", overrides=None,
                  force=False) -> Config:
    """A chapter's first step: its configuration, the run directory's lock and run.json, where it runs
    (tmkd.training.environment.open_chapter), and under keep_weights="needed" the weights that no chapter from this
    one on reads removed (tmkd.training.weights.release)."""
    cfg = open_chapter(profile, run_dir, data_dir, overrides, force)
    release(cfg, chapter)
    return cfg


def arm_rows(cfg: Config, task: str, method: str, sweep: str = "", seeds=None, **changes) -> list:
    """The dev rows of one arm's trained students, seed by seed; m-o-m also records each of its students on its
    own (method mom_member). Reads them: trains nothing."""
    m, rows = methods.method(method), []
    for seed in arm_seeds(cfg, method) if seeds is None else seeds:
        specs = [dataclasses.replace(s, **changes) for s in method_specs(cfg, task, method, seed)]
        if m.combine in ("avg", "vote"):
            rows += mom_rows(cfg, specs, method)
            rows += [r for s in specs for r in student_rows(cfg, s, "mom_member")]
        else:
            rows += student_rows(cfg, specs[0], method, sweep=sweep)
    return rows


def run_arms(cfg: Config, arms, force: bool = False) -> None:
    """Each (task, method) of `arms`: all their students trained in one call (side by side with student_workers,
    so that one arm's odd student pairs with the next arm's), then every arm's dev rows recorded (a chapter's cell
    shows nothing: its tables follow)."""
    arm_results(cfg, arms, force)


def arm_results(cfg: Config, arms, force: bool = False) -> list:
    """run_arms, returning the dev rows it recorded."""
    check_run_dir(cfg)
    arms = list(arms)
    for task, method in arms:
        if not methods.method(method).trained:
            raise TMKDError(f"{method!r} is a row of the tables, not a method: choose from {list(methods.arms())}")
        if method == "1o1":
            progress(f"  1-o-1 on {task} learns from {best_teacher(cfg, task)} (best on the held-out select slice)")
    train_students(cfg, [s for task, method in arms for s in arm_specs(cfg, task, method)], force)
    rows = [r for task, method in arms for r in arm_rows(cfg, task, method)]
    record_metrics(cfg.run_path, rows)
    return rows


def chapter_arms(cfg: Config, chapter: str, variants: bool | None = None) -> list:
    """The (task, method) pairs a chapter trains: chapter 04 the one-stage methods on every task, chapter 06 the
    two-stage methods and the control on every stage-2 task; variants False: the paper's methods only, True: the
    series' variants only (a weak-teacher variant where it is configured), None: both."""
    tasks = cfg.tasks if chapter == "04" else stage2_tasks(cfg)
    if chapter == "04":                                    # task by task
        pairs = [(t, k) for t in tasks for k in methods.arms(chapter)]
    else:                                                  # method by method, its main arm (TMKD) first
        ordered = sorted(methods.arms(chapter), key=lambda k: not methods.is_main_arm(k))
        pairs = [(t, k) for k in ordered for t in tasks]
    return [(t, k) for t, k in pairs if variants in (None, bool(methods.method(k).extends))
            and (not methods.method(k).needs_weak or k in configured_variants(cfg, t))]


def run_method(cfg: Config, task: str, method: str, force: bool = False) -> list:
    """Train (or reuse) the students of one method, once per seed, and record their dev accuracy rows."""
    return arm_results(cfg, [(task, method)], force)


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


def configured_variants(cfg: Config, task: str) -> list:
    """The weak-teacher variants worth training on `task` (records with needs_weak): when a teacher is flagged weak
    and at least two teachers remain (with one left, each would be 1-o-1, already trained)."""
    weak = weak_teachers(cfg, task)
    left = len(teacher_names(cfg)) - len(weak)
    return [k for k in methods.arms() if methods.method(k).needs_weak] if weak and left >= 2 else []


def one_vs_many(cfg: Config, task: str, force: bool = False) -> list:
    """Chapter 04 on one task: each one-stage method once per seed, and the weak-teacher variants where a teacher
    is weak."""
    return arm_results(cfg, [(t, m) for t, m in chapter_arms(cfg, "04") if t == task], force)


def head_accuracies(cfg: Config, chapter: str = "04"):
    """Every KD student of `chapter`'s arms scored by its golden head alone, its soft heads alone (their
    probabilities averaged) and Eq. 6 (all of them: what it predicts), on each task's first dev split, from the
    predictions cached with it (one forward pass; no training): one row per method and task, the mean over its
    seeds and how many seeds it has."""
    import pandas as pd
    rows = []
    for task, key in chapter_arms(cfg, chapter):
        m = methods.method(key)
        if m.combine != "eq6" or not any(s.teachers for s in method_students(key, teacher_names(cfg), "t", ())):
            continue
        split, got = dev_splits(task)[0], []
        for spec in arm_specs(cfg, task, key):
            p = student_predictions(cfg, spec, split)
            got.append([float((p[h].argmax(-1) == p["labels"]).mean()) for h in ("golden", "soft", "probs")])
        mean = np.mean(got, axis=0) * 100
        rows.append({"task": task, "method": methods.label(key), "seeds": len(got), "golden head (%)": mean[0],
                     "soft heads (%)": mean[1], "Eq. 6: all heads (%)": mean[2]})
    return pd.DataFrame(rows)


# ---- chapter 03: the student's knobs ---------------------------------------------------------------------


def run_sweep(cfg: Config, knob: str, force: bool = False):
    """Train the m-o-1 student of cfg.sweep_task at each value of one knob; rows carry sweep=<knob>."""
    return run_sweeps(cfg, (knob,), force)[knob]


def run_sweeps(cfg: Config, knobs, force: bool = False) -> dict:
    """Chapter 03's sweeps: every knob's students trained in one call, then each knob's table {knob: frame}."""
    import pandas as pd
    check_run_dir(cfg)
    train_students(cfg, [s for k in knobs for s in sweep_specs(cfg, k)], force)
    out = {}
    for knob in knobs:
        rows = [r for spec in sweep_specs(cfg, knob) for r in student_rows(cfg, spec, "mo1", sweep=knob)]
        record_metrics(cfg.run_path, rows)
        out[knob] = pd.DataFrame(rows)[["task", "split", knob, "accuracy", "params", "model"]]
    return out


def pooling_check(cfg: Config, force: bool = False):
    """Does the base learn from its [CLS] state or from the mean of its tokens? On every task of the run, the middle
    teacher and the no-KD student from the base, with each pooling (the configured one is the run's own teacher;
    the other is trained in RUN_DIR/checks/pooling-<p>, a run directory of its own). Rows carry sweep="pooling"."""
    import pandas as pd
    lr = cfg.teacher_lrs[len(cfg.teacher_lrs) // 2]
    rows = []
    for task in cfg.tasks:
        for p in ("cls", "mean"):
            c = cfg if p == cfg.pooling else dataclasses.replace(
                cfg, pooling=p, tasks=(task,), sweep_task=task, stage1_task=task, stage2_task=task, teacher_lrs=(lr,),
                run_dir=str(cfg.run_path / "checks" / f"pooling-{p}"))
            check_run_dir(c)
            train_teacher(c, task, lr, force)
            teacher = evaluate_teachers(c, tasks=(task,), record=False)
            teacher = teacher[teacher["model"] == f"{task}/{teacher_name(lr)}"]
            spec = base_spec(c, task, teachers=(), alpha=0.0)
            train_students(c, [spec], force)
            student = pd.DataFrame(student_rows(c, spec, "no_kd", sweep="pooling"))
            for frame, what in ((teacher, "teacher"), (student, "no_kd")):
                for r in frame.to_dict("records"):
                    rows.append(r | {"sweep": "pooling", "pooling": p, "method": what,
                                     "model": f"{r['model']}-{p}"})
    record_metrics(cfg.run_path, rows)
    frame = pd.DataFrame(rows)
    frame["collapsed"] = frame.get("top_class_share", pd.Series(0.0, index=frame.index)).map(
        lambda x: bool(x not in ("", None) and x == x and float(x) >= COLLAPSED))
    frame["accuracy (%)"] = (frame["accuracy"].astype(float) * 100).map(rounded)
    return frame[["task", "split", "method", "pooling", "accuracy (%)", "collapsed", "model"]]


CURVE_COLUMNS = ["task", "method", "epoch", "select_accuracy", "best", "last_epoch"]


def convergence_curves(cfg: Config, force: bool = False):
    """Chapter 03: are the arms trained long enough? The first seed's student of every one-stage method with one
    student (no KD, 1-o-1, 1avg-o-1, m-o-1: the same steps chapter 04 then reuses) on every task, and with
    student_patience > 0 each one's accuracy on the held-out select slice after every epoch: a frame task, method,
    epoch, select_accuracy (%), best, last_epoch."""
    import pandas as pd
    curved = [k for k in methods.arms("04", variants=False) if methods.method(k).combine == "eq6"]
    pairs = [(t, m, method_specs(cfg, t, m)[0]) for t in cfg.tasks for m in curved]
    train_students(cfg, [spec for *_, spec in pairs], force)
    rows = [r for _, m, spec in pairs for r in curve_rows(cfg, spec, m)]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def curve_rows(cfg: Config, spec: StudentSpec, method: str) -> list:
    """A trained student's select accuracy after each epoch as rows of CURVE_COLUMNS (none without a curve)."""
    curve = select_curve(cfg, spec)
    top = kept_epoch(curve)
    return [{"task": spec.task, "method": method, "epoch": e, "select_accuracy": 100 * a, "best": e == top,
             "last_epoch": curve[-1][0]} for e, a in curve]


# ---- chapters 05-06: the two stages ----------------------------------------------------------------------


def stage1_overlap(cfg: Config) -> dict:
    """For each task, how many stage-1 pairs are also among its train or select pairs (0 by construction)."""
    if cfg.corpus_file:              # the user's own pairs: nothing ties them to a task's rows
        return {}
    tasks = stage1_tasks(cfg)
    corpus = np.asarray(split_dataset(cfg, cfg.stage1_task, "stage1")["idx"])
    out = {}
    for k, t in enumerate(tasks):
        mine = set((corpus[(corpus >= k * POOL_OFFSET) & (corpus < (k + 1) * POOL_OFFSET)] - k * POOL_OFFSET).tolist())
        labelled = set(split_dataset(cfg, t, "train")["idx"]) | set(split_dataset(cfg, t, "select")["idx"])
        out[t] = {"stage1_pairs": len(mine), "shared_with_train_or_select": len(mine & labelled)}
    return out


def run_stage1(cfg: Config, method: str = "tmkd", force: bool = False) -> list:
    """Distillation pre-training, once per seed; also scores each stage-1 student on its task's dev set
    (sweep='stage1'). Returns the final folders, in the order of cfg.seeds."""
    check_run_dir(cfg)
    specs = [stage1_spec(cfg, method, seed) for seed in arm_seeds(cfg, method)]
    finals = train_students(cfg, specs, force)
    record_metrics(cfg.run_path, [r for spec in specs for r in student_rows(cfg, spec, method, sweep="stage1")])
    return [finals[spec] for spec in specs]


STAGE1_SIZE_COLUMNS = ("stage-1 pairs", "labelled pairs", "x labelled pairs", "after stage 1 (%)", "after stage 2 (%)",
                       "kept epoch", "stage-2 model")


def stage1_size_curve(cfg: Config, force: bool = False):
    """Chapter 05's corpus-size curve (the paper's TMKD_base on 4M pairs vs TMKD_large on 40M, in miniature): TMKD's
    stage 1 on the first N pairs of the one scored corpus for each N of stage1_sizes, then its stage 2 on
    stage2_task, first seed; the whole corpus is the main TMKD (trained here for the first seed, reused by chapter
    06). N = 0 is no stage 1: stage 2 from the pre-trained base is m-o-1, chapter 04's student. One row per size,
    dev accuracy on the first dev split of each stage's task (STAGE1_SIZE_COLUMNS); rows also go to metrics.csv
    (sweep 'stage1_size'). A size at or beyond the corpus (an exercise that shrinks stage1_size) is the whole corpus."""
    import pandas as pd
    check_run_dir(cfg)
    corpus = len(split_dataset(cfg, cfg.stage1_task, "stage1"))
    task, labelled = cfg.stage2_task, len(split_dataset(cfg, cfg.stage2_task, "train"))
    first = lambda rows: rows[0]                                 # noqa: E731  (the first dev split's row)
    out, record = [], []
    sizes = sorted({k for k in cfg.stage1_sizes if k < corpus} | {corpus})    # a size beyond the corpus is the corpus
    train_students(cfg, [stage1_spec(cfg, "tmkd", corpus_pairs=0 if k == corpus else k) for k in sizes if k], force)
    train_students(cfg, [method_specs(cfg, task, "mo1")[0] if k == 0 else
                         stage2_spec(cfg, "tmkd", corpus_pairs=0 if k == corpus else k) for k in sizes], force)
    for k in sizes:
        n = 0 if k == corpus else k
        if k == 0:
            spec, after1 = method_specs(cfg, task, "mo1")[0], None
        else:
            s1 = stage1_spec(cfg, "tmkd", corpus_pairs=n)
            r1 = student_rows(cfg, s1, "tmkd", sweep="stage1_size")
            after1, record = first(r1)["accuracy"], record + (r1 if n else [])
            spec = stage2_spec(cfg, "tmkd", corpus_pairs=n)
        r2 = student_rows(cfg, spec, "tmkd" if k else "mo1", sweep="stage1_size")
        record += r2 if n else []
        out.append({"stage-1 pairs": k, "labelled pairs": labelled, "x labelled pairs": round(k / labelled, 2),
                    "after stage 1 (%)": None if after1 is None else rounded(100 * after1),
                    "after stage 2 (%)": rounded(100 * first(r2)["accuracy"]),
                    "kept epoch": first(r2).get("best_epoch"), "stage-2 model": f"{task}/{spec.name}"})
    record_metrics(cfg.run_path, record)
    return pd.DataFrame(out, columns=list(STAGE1_SIZE_COLUMNS))


def control_curves(cfg: Config):
    """Chapter 06: the select accuracy after each epoch of the first seed's compute-matched control, the one-stage
    method it extends (m-o-1) and the two-stage arm compared with it (TMKD, stage 2) on every stage-2 task, as
    convergence_curves' frame (empty without early stopping). Reads the trained students; trains nothing."""
    import pandas as pd
    rows = []
    for control in (k for k in methods.arms() if methods.method(k).budget == "matched"):
        against = [a for a, b in methods.comparisons() if b == control]
        for task in stage2_tasks(cfg):
            for method in (methods.method(control).extends, control, *against):
                rows += curve_rows(cfg, method_specs(cfg, task, method)[0], method)
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def run_stage2(cfg: Config, method: str = "tmkd", task: str | None = None, alpha: float | None = None,
               sweep: str = "", force: bool = False, seeds=None) -> list:
    """Task distillation fine-tuning from the stage-1 student, once per seed: (1-alpha) l_g + alpha l_s on `task`
    (or chapter 06's other arms: the compute-matched control, one stage); `alpha` other than the configuration's
    for the alpha sweep (rows carry `sweep`)."""
    check_run_dir(cfg)
    task = task or cfg.stage2_task
    changes = {} if alpha is None else {"alpha": alpha}
    seeds = arm_seeds(cfg, method) if seeds is None else seeds
    train_students(cfg, [dataclasses.replace(s, **changes) for seed in seeds
                         for s in method_specs(cfg, task, method, seed)], force)
    rows = arm_rows(cfg, task, method, sweep, seeds, **changes)
    record_metrics(cfg.run_path, rows)
    return rows


def alpha_sweep(cfg: Config, force: bool = False):
    """The paper's Table 8 on stage2_task, first seed only: TMKD's stage 2 at every alpha of cfg.alphas (the paper:
    larger is better, except alpha = 1), and one-stage m-o-1 at the same alphas (the series' own question: does a
    small alpha, a quieter soft loss, rescue one stage?). Both methods' students train in one call."""
    import pandas as pd
    check_run_dir(cfg)
    task, first = cfg.stage2_task, cfg.seeds[:1]
    one_stage = [dataclasses.replace(method_specs(cfg, task, "mo1")[0], alpha=a) for a in cfg.alphas]
    train_students(cfg, [stage2_spec(cfg, "tmkd", a, seed=first[0]) for a in cfg.alphas] + one_stage, force)
    rows = [r for key in ("tmkd", "mo1") for a in cfg.alphas
            for r in arm_rows(cfg, task, key, "alpha", first, alpha=a)]
    record_metrics(cfg.run_path, rows)
    frame = pd.DataFrame(rows)
    frame["accuracy (%)"] = (frame["accuracy"].astype(float) * 100).map(rounded)
    return frame[["task", "split", "method", "alpha", "accuracy (%)", "model"]]


# ---- which rows the tables show: the current configuration's students only ----------------------------------

def configured_models(cfg: Config) -> set:
    """The `model` names (metrics.csv) of every teacher and main-comparison student of the current configuration:
    what chapters 04 and 06 train with these settings, for these seeds (every trained method of the registry). A
    student an exercise trained with other settings in the same run directory (another alpha, say) has another
    name and stays out of the tables."""
    models = set()
    names = teacher_names(cfg)
    for task in cfg.tasks:
        models |= {f"{task}/{n}" for n in names} | {f"{task}/ensemble-{len(names)}"}
        for method in methods.arms():
            if methods.method(method).needs_weak and method not in configured_variants(cfg, task):
                continue
            for seed in arm_seeds(cfg, method):
                specs = method_specs(cfg, task, method, seed)
                models |= {f"{task}/{s.name}" for s in specs}
                if methods.method(method).combine in ("avg", "vote"):
                    models.add(f"{task}/mom{len(specs)}{specs[0].suffix}")
        models.add(f"{task}/{stage2_spec(cfg, 'tmkd', task=task).name}-int8")
    return models


def configured_metrics(cfg: Config):
    """metrics.csv with its main rows (no sweep) limited to the current configuration's models; sweep and stage-1
    rows are kept (each sweep table names its own knob)."""
    m = read_metrics(cfg.run_path)
    return m[(m["sweep"].astype(str) != "") | m["model"].isin(configured_models(cfg))].reset_index(drop=True)
