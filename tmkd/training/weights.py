"""keep_weights="needed": a finished model's weights removed as soon as no later step reads them (the rule, and the
plan's arithmetic of it: tmkd.core.keep). Two moments remove weights:

- settle, right after a student trains: its dev predictions are cached, and unless a later chapter reads it (a
  stage-1 student, a student chapter 07 times) its weights go at once, so a chapter of 36 students holds one or two
  students' weights at a time, not 36;
- release, at the start of every chapter: every model whose last reader came before this chapter goes, once what
  it was read for is cached (a teacher's logits, a student's dev predictions), so a chapter run out of order still
  finds the weights it needs.

What stays is what the tables and a re-run read: done.json (the step is finished and skipped), spec.json, metrics,
cached logits and predictions, the training log, config.json, and weights-removed.json (the weights' size, hash and
parameter count). A step that needs removed weights says which chapter to re-run (rundir.require_weights)."""
from __future__ import annotations

from pathlib import Path

from tmkd.core.config import Config
from tmkd.core.files import read_json
from tmkd.core.keep import POOLING_UNTIL, STAGE1_UNTIL, TIMED_UNTIL, teacher_until
from tmkd.core.progress import progress
from tmkd.inputs.data import dev_splits
from tmkd.training.logit_cache import logits_cached
from tmkd.training.rundir import has_weights, remove_weights
from tmkd.training.specs import timed_specs
from tmkd.training.students import StudentSpec, student_dir, student_predictions
from tmkd.training.teachers import teacher_dir, teacher_names
from tmkd.training.trainer import params_of


def student_until(cfg: Config, spec: StudentSpec) -> str | None:
    """The last chapter that reads a student's weights after its own step; None: only its own step (tmkd.core.keep)."""
    if spec.stage == 1:
        return STAGE1_UNTIL
    timed = {s for specs, _ in timed_specs(cfg).values() for s in specs}
    return TIMED_UNTIL if spec in timed else None


def settle(cfg: Config, spec: StudentSpec) -> None:
    """After a student trains under keep_weights="needed": its dev predictions cached, then its weights removed
    unless a later chapter reads them. Under "all", nothing."""
    if cfg.keep_weights != "needed":
        return
    for split in dev_splits(spec.task):
        student_predictions(cfg, spec, split)
    if student_until(cfg, spec) is None:
        _remove(student_dir(cfg, spec) / "final")


def release(cfg: Config, chapter: str) -> int:
    """At the start of `chapter` under keep_weights="needed": remove the weights of every finished model of the run
    directory that no chapter from this one on reads, once what it was read for is cached. Returns the bytes
    freed (0 under "all")."""
    if cfg.keep_weights != "needed":
        return 0
    freed = 0
    for task in cfg.tasks:
        for i, name in enumerate(teacher_names(cfg)):
            folder = teacher_dir(cfg, task, name) / "final"
            splits = ("train", "select", *dev_splits(task), *(("stage1",) if task == cfg.stage1_task else ()))
            if teacher_until(cfg, task, first=i == 0) < chapter and _finished(folder) and \
                    logits_cached(cfg, task, name, splits):
                freed += _remove(folder)
    if POOLING_UNTIL < chapter:                 # chapter 03's models with the other pooling (their dev rows recorded)
        for folder in sorted((cfg.run_path / "checks").glob("pooling-*/*/*/*/final")):
            if _finished(folder) and (folder.parent.parent.parent.name == "teachers" or _predicted(folder)):
                freed += _remove(folder)
    for folder in sorted((cfg.run_path / "students").glob("*/*/final")):
        spec = _spec_of(folder)
        last = student_until(cfg, spec) if spec else TIMED_UNTIL
        if (last is None or last < chapter) and _finished(folder) and _predicted(folder):
            freed += _remove(folder)
    if freed:
        progress(f"  {freed / 1e6:,.1f} MB of weights removed (keep_weights='needed': no later chapter reads them)")
    return freed


def _finished(folder: Path) -> bool:
    return read_json(folder / "done.json") is not None and has_weights(folder)


def _predicted(folder: Path) -> bool:
    """A student's dev predictions are cached, on every dev split of its task (what the tables read after its step)."""
    task = folder.parent.parent.name
    return all((folder / f"predictions-{split}.npz").exists() and (folder / f"predictions-{split}.json").exists()
               for split in dev_splits(task))


def _spec_of(folder: Path) -> StudentSpec | None:
    """The spec a student folder was trained with (its spec.json), or None for one this code cannot read."""
    recorded = (read_json(folder.parent / "spec.json") or {}).get("spec")
    try:
        return StudentSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})
    except (AttributeError, TypeError):
        return None


def _remove(folder: Path) -> int:
    return remove_weights(folder, params_of(folder)) if has_weights(folder) else 0
