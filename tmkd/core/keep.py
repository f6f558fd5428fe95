"""keep_weights="needed": which chapter reads a model's weights last. The one rule that the plan's space arithmetic
(tmkd.chain.plan.space) and the run's removals (tmkd.training.weights) both read, so the size `--plan` prints is the
size the run keeps. Everything else a chapter needs from a finished model (its done marker, metrics, cached logits
and predictions, training log) stays; only model.safetensors goes. No torch here.

- A teacher is read by chapter 02 (its logits on every split), by chapter 05 when it scores the stage-1 corpus
  (stage1_task), by the one-stage students when they start from the best teacher (student_init="teacher", up to
  chapter 06), and by chapter 07 when it is timed: stage2_task's first teacher, alone and as the ensemble (the
  teachers share one shape, so the ensemble's time is three passes of one of them).
- Chapter 03's teacher with the other pooling is read in chapter 03 only.
- A stage-1 student is read by its stage-2 students (chapter 05's corpus-size curve, chapter 06).
- The students chapter 07 times (the layer sweep's, the m-o-m members, TMKD's first seed) are read there.
- Every other student is read once, right after it trains, when its dev predictions are cached: it keeps no
  weights past its own step (tmkd.training.weights.settle).
A model is released at the start of the first chapter after its last reader, and only once what it was read for is
cached (a chapter run out of order finds the weights it needs)."""
from __future__ import annotations

from tmkd.core.config import Config

POLICIES = ("all", "needed")
STAGE1_UNTIL = "06"
TIMED_UNTIL = "07"
POOLING_UNTIL = "03"
NEVER = "99"        # keep_weights="all": after every chapter


def teacher_until(cfg: Config, task: str, first: bool) -> str:
    """The last chapter that reads the weights of one of `task`'s teachers (`first`: the first of teacher_lrs)."""
    if cfg.keep_weights == "all":
        return NEVER
    if task == cfg.stage2_task and first:
        return TIMED_UNTIL
    if cfg.student_init == "teacher":
        return "06"
    return "05" if task == cfg.stage1_task else "02"


def until(cfg: Config, last: str) -> str:
    """`last` under keep_weights="needed", NEVER under "all"."""
    return NEVER if cfg.keep_weights == "all" else last
