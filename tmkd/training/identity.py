"""Step identity: which settings can change a step's result. A step (teacher, logit file, student, the run's data and
teachers) is identified by EVERY setting of the configuration except those listed here, each with the reason it
cannot change that step's result, so a new setting is part of every identity until someone argues it out here."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tmkd.core.config import Config, TMKDError
from tmkd.inputs.corpus import corpus_fingerprint
from tmkd.core.parallel import distributed, world_size

NO_EFFECT = {
    "profile": "only names the values it started from; every value is itself part of the identity",
    "run_dir": "where files go",
    "save_steps": "checkpoint interval: a resumed run ends where an uninterrupted one does (tested)",
    "logging_steps": "how often the loss is logged",
    "checkpoint_dir": "where checkpoints are kept while training: a resumed run ends where an uninterrupted one does",
    "checkpoint_sync_minutes": "how often checkpoints are copied to the run directory (same reason)",
    "eval_batch_size": "prediction batch: padding is masked, so only float rounding can differ",
    "nproc": "how many processes run a step: a training step records its own world size and per-device batch "
             "(parallel_identity; the effective batch is the configured one), and logits are the same from any number",
    "student_workers": "how many students train at once, each in its own process (tmkd.training.pool): the same steps; only the "
                       "float rounding of another thread count can differ",
    "stage1_shard_pairs": "how a corpus file is cut into files: the pairs, their order and their logits are the same "
                          "for any shard size",
    "speed_batch_size": "chapter 07's timing only",
    "speed_repeats": "chapter 07's timing only",
    "equivalence_margin": "how a verdict reads an interval: no step's result",
    "keep_weights": "whether a finished model's weights stay on disk: its result is recorded before they go",
    "check_free_space": "whether the chain checks the free space before it starts",
}
SELECTION = {     # which steps a chapter runs; each step records the value it uses itself
    "tasks": "which tasks get teachers; a step records its own task",
    "sweep_task": "where chapter 03 trains; a student records its own task",
    "stage2_task": "where stage 2 trains; a student records its own task",
    "sweep_optimizers": "which optimizers chapter 03 compares; a student records its own optimizer",
    "sweep_head_layers": "which head depths chapter 03 compares; a student records its own",
    "sweep_layers": "which depths chapter 03 compares; a student records its own",
    "alphas": "which alphas chapter 06 compares; a student records its own alpha",
    "seeds": "how many students per method; a student records its own seed",
    "side_seeds": "how many students per side method; a student records its own seed",
    "stage1_sizes": "which corpus sizes chapter 05's curve trains; a student records its own (spec corpus_pairs)",
    "weak_margin": "which extra 'without the weak teacher' students run; a student records its own teachers",
}
STUDENT_ONLY = ("student_layers", "student_head_layers", "student_init", "student_lr", "student_epochs",
                "student_batch_size", "student_patience", "optimizer", "alpha", "soft_loss", "kd_temperature")
STAGE1_ONLY = ("stage1_task", "stage1_corpus", "stage1_pool_tasks", "stage1_epochs", "stage1_size")
# What a student's own spec sets in place of the configuration's default (spec field -> Config field).
SPEC_FIELDS = {"layers": "student_layers", "head_layers": "student_head_layers", "optimizer": "optimizer",
               "alpha": "alpha"}


def settings_excluded(step: str) -> set:
    """The settings that cannot change the result of `step`: teacher | run | student | stage1 | stage2."""
    base = set(NO_EFFECT) | set(SELECTION)
    if step == "teacher":      # a teacher records its own learning rate
        return base | set(STUDENT_ONLY) | set(STAGE1_ONLY) | {"teacher_lrs"}
    if step == "run":          # run.json: the data and the teachers of a run directory
        return base | set(STUDENT_ONLY) | set(STAGE1_ONLY)
    if step == "student":      # one stage: no stage-1 corpus involved
        return base | set(STAGE1_ONLY)
    if step == "stage1":       # stage 1 trains for stage1_epochs, alpha = 1 by definition (no gold labels to stop on)
        return base | {"student_epochs", "student_patience", "alpha"}
    if step == "stage2":       # starts from the stage-1 student: everything counts
        return base
    raise ValueError(f"unknown step kind {step!r}")


TRAINING_BATCH = {"teacher": "teacher_batch_size", "student": "student_batch_size", "stage1": "student_batch_size",
                  "stage2": "student_batch_size"}


def planned_world(cfg: Config) -> int:
    """The processes a step runs in: those of the distributed launch this process belongs to (torchrun, accelerate
    launch, or the workers nproc starts), else cfg.nproc (the workers it will start)."""
    return world_size() if distributed() else cfg.nproc


def parallel_identity(cfg: Config, step: str) -> dict:
    """What several processes change in a training step: {"processes": {"world_size", "per_device_batch"}}.
    Empty for one process, so that run directories made before keep their identity; a 1-process and a 2-process
    step therefore never match. The effective batch (per_device_batch x world_size) is the configured one."""
    world = planned_world(cfg)
    if step not in TRAINING_BATCH or world == 1:
        return {}
    batch = getattr(cfg, TRAINING_BATCH[step])
    if batch % world:
        raise TMKDError(f"{TRAINING_BATCH[step]}={batch} does not split over {world} processes: choose a multiple "
                        f"of {world} (the configured batch is the effective one)")
    return {"processes": {"world_size": world, "per_device_batch": batch // world}}


def identity(cfg: Config, step: str, **own) -> dict:
    """Every setting of `cfg` that can change `step`'s result, plus what the step adds (`own`), JSON-ready.
    A training step run by several processes adds their number and the per-device batch (parallel_identity);
    a stage-1 corpus file is its name and content hash (a changed file under the same name is another corpus, the
    same file in another folder the same)."""
    values = dataclasses.asdict(cfg)
    values["data_dir"] = str(Path(cfg.data_dir).resolve()) if cfg.data_dir else ""
    out = {k: v for k, v in values.items()
           if k not in settings_excluded(step)}
    if "stage1_corpus" in out and cfg.corpus_file:
        out["stage1_corpus"] = {"file": Path(cfg.corpus_file).name, "sha256": corpus_fingerprint(cfg.corpus_file)}
    return _jsonable(out | parallel_identity(cfg, step) | own)


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def describe_diff(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    parts = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(parts) or "no difference"
