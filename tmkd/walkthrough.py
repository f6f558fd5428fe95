"""The multi-header student on one real batch, for the chapter that teaches it: a fresh student built from the
teachers' pre-trained base and a batch of train pairs with their cached teacher logits. The chapter recomputes
every number from the paper's formulas with plain torch and checks it against tmkd.method."""
from __future__ import annotations

from .base_model import base_model_path
from .config import TASKS, Config
from .logit_cache import with_teacher_logits
from .students import build_student
from .teachers import teacher_names
from .trainer import collate


def first_batch(cfg: Config, task: str, size: int = 8, teachers=None, average: bool = False) -> dict:
    """`size` train pairs of `task`, collated as the Trainer collates them: input_ids, attention_mask,
    token_type_ids, labels (B,) and teacher_logits (B, N, C) (N = 1 with `average`)."""
    ds = with_teacher_logits(cfg, task, "train", teachers or teacher_names(cfg), average)
    return collate([ds[i] for i in range(min(size, len(ds)))])


def fresh_student(cfg: Config, task: str, n_teachers: int, alpha: float):
    """An untrained BERT-k student from the teachers' base, in eval mode (no dropout: numbers repeat)."""
    student = build_student(base_model_path(cfg), cfg.student_layers, n_teachers, TASKS[task].labels,
                            cfg.student_head_layers, alpha, soft_loss=cfg.soft_loss, kd_temperature=cfg.kd_temperature,
                            seed=cfg.seeds[0], pooling=cfg.pooling)
    return student.eval()
