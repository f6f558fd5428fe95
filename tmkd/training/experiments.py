"""What the chapters run: each KD method of the registry (tmkd.model.methods) as student steps (chapters 04 and 06), the
sweeps (chapter 03), the two stages (chapters 05-06), each recording its dev accuracy rows in metrics.csv. Every
function trains its students in one call (tmkd.training.pool.train_students), then reads them."""
from __future__ import annotations

import dataclasses

import numpy as np

from tmkd.inputs.base_model import base_depth
from tmkd.core.config import Config, TMKDError, stage1_tasks
from tmkd.inputs.corpus import corpus_name
from tmkd.inputs.data import POOL_OFFSET, dev_splits, split_dataset
from tmkd.training.logit_cache import align_examples
from tmkd.model import methods
from tmkd.model.method import combine_students
from tmkd.model.methods import method_students
from tmkd.core.numbers import rounded
from tmkd.training.pool import train_students
from tmkd.core.progress import progress
from tmkd.training.rundir import check_run_dir, read_metrics, record_metrics
from tmkd.training.students import (COLLAPSED, FULL_BUDGET, StudentSpec, kept_epoch, select_curve, spec_row,
                                    student_dir, student_predictions, student_rows)
from tmkd.training.teacher_selection import best_teacher, evaluate_teachers, weak_teachers
from tmkd.training.teachers import teacher_name, teacher_names, train_teacher
from tmkd.training.trainer import params_of


def base_spec(cfg: Config, task: str, **changes) -> StudentSpec:
    """The configuration's default student (m-o-1 with every teacher, the first seed), with `changes` applied."""
    spec = StudentSpec(task=task, teachers=tuple(teacher_names(cfg)), alpha=cfg.alpha, layers=cfg.student_layers,
                       head_layers=cfg.student_head_layers, optimizer=cfg.optimizer, seed=cfg.seeds[0])
    return dataclasses.replace(spec, **changes)


def arm_seeds(cfg: Config, method: str) -> tuple:
    """The seeds `method` trains: every seed for a main arm, the first side_seeds for the others (methods.arm_seeds)."""
    return methods.arm_seeds(method, cfg.seeds, cfg.side_seeds)


def method_specs(cfg: Config, task: str, method: str, seed: int | None = None) -> list:
    """The student steps of `method` on `task` for one seed, as its record says: a two-stage method's stage-2
    student, the compute-matched control, or the students of a one-stage method (the best teacher where it needs
    one, without the weak ones for a variant that leaves them out)."""
    m = methods.method(method)
    seed = cfg.seeds[0] if seed is None else seed
    if m.stages == 2:
        return [stage2_spec(cfg, method, task=task, seed=seed)]
    if m.budget == "matched":
        return [matched_spec(cfg, task, seed)]
    best = best_teacher(cfg, task) if m.best_teacher else ""
    weak = weak_teachers(cfg, task) if m.needs_weak else ()
    specs = []
    for s in method_students(method, teacher_names(cfg), best, weak):
        changes = {"teachers": s.teachers, "average_teachers": s.average, "seed": seed}
        if not s.teachers:
            changes["alpha"] = 0.0                       # no teachers: gold labels only
        if m.variant:
            changes["variant"] = m.variant
        specs.append(base_spec(cfg, task, **changes))
    return specs


def arm_specs(cfg: Config, task: str, method: str) -> list:
    """Every student of one arm on `task`, seed by seed (m-o-m: one per teacher)."""
    return [s for seed in arm_seeds(cfg, method) for s in method_specs(cfg, task, method, seed)]


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


def sweep_specs(cfg: Config, knob: str) -> list:
    return [base_spec(cfg, cfg.sweep_task, **{knob: v}) for v in sweep_values(cfg, knob)]


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

def stage_teachers(cfg: Config, method: str, task: str) -> tuple:
    """The teachers of a two-stage method's student on `task` (TMKD: all of them; TKD: the best one), as its record
    says (tmkd.model.methods)."""
    two = methods.arms(stages=2)
    if method not in two:
        raise TMKDError(f"the two stages serve the two-stage methods {two}, not {method!r}")
    best = best_teacher(cfg, task) if methods.method(method).best_teacher else ""
    return method_students(method, teacher_names(cfg), best)[0].teachers


def stage1_spec(cfg: Config, method: str, seed: int | None = None, corpus_pairs: int = 0) -> StudentSpec:
    """Stage 1: soft loss only (alpha = 1) from the stage-1 task's teachers, on the unused train pairs. One per seed:
    stage 2's seed s starts from stage 1's seed s, so a comparison over seeds carries stage 1's chance too.
    corpus_pairs: the first N pairs of the scored corpus only (the corpus-size curve; 0 = all)."""
    return base_spec(cfg, cfg.stage1_task, teachers=stage_teachers(cfg, method, cfg.stage1_task), alpha=1.0,
                     stage=1, corpus=corpus_name(cfg), seed=cfg.seeds[0] if seed is None else seed,
                     corpus_pairs=corpus_pairs)


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


def stage2_tasks(cfg: Config) -> list:
    """stage2_task first, then every other task with teachers: each starts from the one stage-1 student."""
    return [cfg.stage2_task] + [t for t in cfg.tasks if t != cfg.stage2_task]


def stage2_spec(cfg: Config, method: str, alpha: float | None = None, task: str | None = None,
                seed: int | None = None, corpus_pairs: int = 0) -> StudentSpec:
    task, seed = task or cfg.stage2_task, cfg.seeds[0] if seed is None else seed
    return base_spec(cfg, task, teachers=stage_teachers(cfg, method, task), seed=seed,
                     alpha=cfg.alpha if alpha is None else alpha, stage=2, corpus_pairs=corpus_pairs,
                     init_from=stage1_spec(cfg, method, seed, corpus_pairs).name)


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


def matched_spec(cfg: Config, task: str, seed: int | None = None) -> StudentSpec:
    """The compute-matched control: m-o-1 on the stage-2 pairs for as many examples as stage 1 + stage 2 see, so
    "two stages help" cannot be "more steps on the same pairs". Like every arm it trains with a learning rate that
    decays linearly over its whole budget; so with student_patience it is never stopped early (stopping would cut
    its schedule off midway: a decay sized for 7 epochs left at epoch 4), but it is scored on the select slice after
    every epoch and keeps its best one, as every arm does (variant FULL_BUDGET; the early-stopped control of earlier
    runs keeps its own name, variant 'matched', and stays out of the tables)."""
    stage1 = len(split_dataset(cfg, cfg.stage1_task, "stage1")) * cfg.stage1_epochs
    train = len(split_dataset(cfg, task, "train"))
    epochs = round(cfg.student_epochs + stage1 / train, 2)
    return base_spec(cfg, task, seed=cfg.seeds[0] if seed is None else seed, epochs=epochs,
                     variant=FULL_BUDGET if cfg.student_patience else "matched")


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
    """TMKD stage 2 on stage2_task at every alpha of cfg.alphas, first seed only (paper Table 8: larger is better,
    except alpha = 1)."""
    import pandas as pd
    check_run_dir(cfg)
    train_students(cfg, [stage2_spec(cfg, "tmkd", a, seed=cfg.seeds[0]) for a in cfg.alphas], force)
    rows = [r for a in cfg.alphas for r in arm_rows(cfg, cfg.stage2_task, "tmkd", "alpha", cfg.seeds[:1], alpha=a)]
    record_metrics(cfg.run_path, rows)
    frame = pd.DataFrame(rows)
    frame["accuracy (%)"] = (frame["accuracy"].astype(float) * 100).map(rounded)
    return frame[["task", "split", "alpha", "accuracy (%)", "model"]]


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
