"""The peer, side by side: one epoch of multi-teacher distillation with this series and with TextBrewer's
MultiTeacherDistiller, in one run, on the same data, teachers, student initialisation, batch, learning rate and alpha.

- This series: the teachers' logits were cached once (chapter 02); the student reads them as a column of its
  dataset, so a training step runs the student only. Timed: the Trainer's epoch of the m-o-1 student (one soft head
  per teacher) and of the 1avg-o-1 student (one soft head on the mean of the teachers' logits).
- TextBrewer (0.2.1): the three teachers run online in every step. Its MultiTeacherDistiller matches the student's
  logits to the MEAN of the teachers' logits, i.e. the paper's 1avg-o-1; its student here is this series' 1avg-o-1
  student (same weights at the start), its loss alpha * MSE(soft head, mean teacher logits) + (1 - alpha) * CE(golden
  head), the same as ours, with the same AdamW, linear warm-up schedule and gradient clipping.
Each trained student is scored on the task's dev set with Eq. 6 (every head's probabilities averaged).

Needs a run directory whose chapters 01-02 ran (the offline chain: results/offline) and, for this benchmark only,
TextBrewer (`pip install textbrewer --no-deps tensorboardX`; not a requirement of the series):

    python benchmarks/bench_peer.py --run-dir results/offline --data-dir ../shared/data/glue

Prints each arm's epoch seconds and dev accuracy, and the ratio TextBrewer / this series. A benchmark, not a test:
nothing is asserted; absolute figures depend on the machine and its load (run it alone).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmkd.inputs.base_model import base_model_path  # noqa: E402
from tmkd.core.config import TASKS, make_config  # noqa: E402
from tmkd.inputs.data import dev_splits, split_dataset  # noqa: E402
from tmkd.training.logit_cache import with_teacher_logits  # noqa: E402
from tmkd.model.method import accuracy  # noqa: E402
from tmkd.training.students import build_student  # noqa: E402
from tmkd.training.teachers import load_teacher, teacher_dir, teacher_names  # noqa: E402
from tmkd.training.trainer import collate, fit, predict_logits, training_args  # noqa: E402


def student(cfg, task, n_heads, seed):
    return build_student(base_model_path(cfg), cfg.student_layers, n_heads, TASKS[task].labels, cfg.student_head_layers,
                         cfg.alpha, soft_loss=cfg.soft_loss, seed=seed, pooling=cfg.pooling)


def dev_accuracy(cfg, task, model) -> float:
    ds = split_dataset(cfg, task, dev_splits(task)[0])
    return 100 * accuracy(np.exp(predict_logits(model, ds, cfg.eval_batch_size)), np.asarray(ds["label"]))


def ours(cfg, task, average: bool, seed: int, work: Path):
    """One epoch with this series' Trainer path, from the cached logits. Returns (seconds, model)."""
    ds = with_teacher_logits(cfg, task, "train", teacher_names(cfg), average)
    model = student(cfg, task, 1 if average else len(teacher_names(cfg)), seed)
    import dataclasses
    args = training_args(work, cfg.student_lr, 1.0, cfg.student_batch_size, dataclasses.replace(cfg, seed=seed))
    start = time.perf_counter()
    trainer = fit(model, ds, work, args)
    return time.perf_counter() - start, trainer.model


class Heads(torch.nn.Module):
    """The 1avg-o-1 student as TextBrewer calls it: forward(**batch) -> (golden logits, soft logits)."""
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids, labels=None):
        return self.model.heads(input_ids, attention_mask, token_type_ids)


def textbrewer(cfg, task, seed: int, work: Path):
    """One epoch of TextBrewer's MultiTeacherDistiller, teachers online. Returns (seconds, model)."""
    from textbrewer import DistillationConfig, MultiTeacherDistiller, TrainingConfig
    from transformers import get_linear_schedule_with_warmup, set_seed
    teachers = [load_teacher(teacher_dir(cfg, task, t) / "final").eval() for t in teacher_names(cfg)]
    model = student(cfg, task, 1, seed)
    wrapped = Heads(model)
    ds = split_dataset(cfg, task, "train").select_columns(["input_ids", "attention_mask", "token_type_ids", "label"])
    set_seed(seed)
    loader = torch.utils.data.DataLoader(list(ds), batch_size=cfg.student_batch_size, shuffle=True, collate_fn=collate)
    steps = len(loader)
    decay = [p for n, p in model.named_parameters() if not any(k in n for k in ("bias", "LayerNorm"))]
    rest = [p for n, p in model.named_parameters() if any(k in n for k in ("bias", "LayerNorm"))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                  lr=cfg.student_lr)

    def adaptor_t(batch, out):
        return {"logits": [out.logits]}

    def adaptor_s(batch, out):
        golden, soft = out
        return {"logits": [soft[:, 0]], "losses": [torch.nn.functional.cross_entropy(golden, batch["labels"])]}
    distiller = MultiTeacherDistiller(
        TrainingConfig(device="cpu", output_dir=str(work), log_dir=None, ckpt_frequency=1, ckpt_epoch_frequency=1),
        DistillationConfig(temperature=1, kd_loss_type="mse", kd_loss_weight=cfg.alpha,
                           hard_label_weight=1 - cfg.alpha),
        model_T=teachers, model_S=wrapped, adaptor_T=adaptor_t, adaptor_S=adaptor_s)
    start = time.perf_counter()
    with distiller:
        distiller.train(optimizer, loader, num_epochs=1, scheduler_class=get_linear_schedule_with_warmup,
                        scheduler_args={"num_warmup_steps": int(cfg.warmup * steps) if cfg.warmup < 1 else 0,
                                        "num_training_steps": steps}, max_grad_norm=1.0)
    return time.perf_counter() - start, model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", default="results/offline")
    p.add_argument("--data-dir", default="../shared/data/glue")
    p.add_argument("--profile", default="offline")
    p.add_argument("--task", default="")
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args(argv)
    import datasets
    import transformers
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    cfg = make_config(a.profile, run_dir=a.run_dir, data_dir=a.data_dir)
    task = a.task or cfg.stage2_task
    for t in teacher_names(cfg):
        if not (teacher_dir(cfg, task, t) / "final" / "done.json").exists():
            sys.exit(f"{teacher_dir(cfg, task, t)} is not trained: run chapters 01-02 of this run directory first")
    torch.set_num_threads(torch.get_num_threads())
    print(f"task {task}, {len(split_dataset(cfg, task, 'train'))} train pairs, batch {cfg.student_batch_size}, "
          f"lr {cfg.student_lr:g}, alpha {cfg.alpha:g}, {cfg.student_layers}-layer student, "
          f"{len(teacher_names(cfg))} teachers, {torch.get_num_threads()} threads")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in (("this series, m-o-1 (cached logits)", lambda w: ours(cfg, task, False, a.seed, w)),
                          ("this series, 1avg-o-1 (cached logits)", lambda w: ours(cfg, task, True, a.seed, w)),
                          ("TextBrewer MultiTeacherDistiller (= 1avg-o-1, teachers online)",
                           lambda w: textbrewer(cfg, task, a.seed, w))):
            seconds, model = run(Path(tmp) / str(len(rows)))
            rows[name] = (seconds, dev_accuracy(cfg, task, model))
            print(f"  {name}: {seconds:.1f} s per epoch, dev accuracy {rows[name][1]:.1f} %", flush=True)
    (mo1, _), (avg, _), (tb, _) = rows.values()
    print(f"TextBrewer / this series, seconds per epoch: {tb / mo1:.2f}x (vs m-o-1), {tb / avg:.2f}x (vs 1avg-o-1, "
          "the same loss)")
    n = len(split_dataset(cfg, task, dev_splits(task)[0]))
    noise = 196 * np.sqrt(0.25 / n)
    print(f"Dev accuracies after one epoch each, one seed, on {n} dev pairs: a 95 % dev-sample interval is up to "
          f"+-{noise:.1f} points, so accuracies closer than that are equal here.")


if __name__ == "__main__":
    main()
