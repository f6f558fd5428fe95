"""Which student steps each KD method, sweep and stage trains: its students' specs (tmkd.training.students.StudentSpec)
for a configuration, as the methods' registry (tmkd.model.methods) says, and the students chapter 07 times.
Building a spec trains nothing; tmkd.training.experiments trains them."""
from __future__ import annotations

import dataclasses

from tmkd.core.config import Config, TMKDError
from tmkd.inputs.base_model import base_depth
from tmkd.inputs.corpus import corpus_name
from tmkd.inputs.data import split_dataset
from tmkd.model import methods
from tmkd.model.methods import method_students
from tmkd.training.students import FULL_BUDGET, StudentSpec
from tmkd.training.teacher_selection import best_teacher, weak_teachers
from tmkd.training.teachers import teacher_names


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


def stage2_tasks(cfg: Config) -> list:
    """stage2_task first, then every other task with teachers: each starts from the one stage-1 student."""
    return [cfg.stage2_task] + [t for t in cfg.tasks if t != cfg.stage2_task]


def stage2_spec(cfg: Config, method: str, alpha: float | None = None, task: str | None = None,
                seed: int | None = None, corpus_pairs: int = 0) -> StudentSpec:
    task, seed = task or cfg.stage2_task, cfg.seeds[0] if seed is None else seed
    return base_spec(cfg, task, teachers=stage_teachers(cfg, method, task), seed=seed,
                     alpha=cfg.alpha if alpha is None else alpha, stage=2, corpus_pairs=corpus_pairs,
                     init_from=stage1_spec(cfg, method, seed, corpus_pairs).name)


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


def timed_specs(cfg: Config) -> dict:
    """The students chapter 07 times, {name in speed.csv: ([specs], method)}: the layer sweep's students on
    sweep_task (m-o-1 at every depth; the default depth is the table's m-o-1), m-o-m's members and TMKD's stage-2
    student on stage2_task (first seed). Their weights are kept until chapter 07 (tmkd.core.keep)."""
    task = cfg.stage2_task
    out = {}
    for k in sweep_values(cfg, "layers"):
        out[f"{cfg.sweep_task}/student-k{k}"] = ([base_spec(cfg, cfg.sweep_task, layers=k)],
                                                 "mo1" if k == cfg.student_layers else f"mo1_k{k}")
    mom = method_specs(cfg, task, "mom_avg")
    out[f"{task}/mom{len(mom)}"] = (mom, "mom_avg")
    out[f"{task}/tmkd"] = ([stage2_spec(cfg, "tmkd")], "tmkd")
    return out
