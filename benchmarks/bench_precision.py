"""bf16 on this CPU, measured: what `precision="bf16"` (an opt-in setting; the profiles stay fp32) buys and costs.

(a) Examples/s of a training step and of a prediction batch, fp32 vs bf16 autocast, for a teacher and a student of
    the profile's shapes (built from the base model's config, random weights, the profile's batch sizes and
    max_seq_len), side by side in one run, with their ratios.
(b) With --run-dir (a run whose chapters 01-02 ran, e.g. the offline chain): the same m-o-1 student (first seed,
    same cached fp32 teacher logits) trained for --epochs in fp32 and in bf16 and scored on dev, with the 95 %
    dev-sample interval of the difference, so that "same accuracy" is a statement about this dev set's noise.

    python benchmarks/bench_precision.py --profile offline --data-dir ../shared/data/glue --run-dir results/offline

bf16 is fast on CPUs that do it in hardware (AMX tiles, or AVX-512's bf16 instructions); elsewhere it may be slower
than fp32, which is why precision="auto" picks bf16 only there. A benchmark, not a test: nothing is asserted; run it alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmkd.core.config import make_config  # noqa: E402
from tmkd.inputs.data import dev_splits, split_dataset  # noqa: E402
from tmkd.chain.estimate import _predict_rate, _train_rate, base_shape  # noqa: E402
from tmkd.model.method import TMKDStudent, accuracy, student_config  # noqa: E402
from tmkd.training.trainer import has_fast_bf16  # noqa: E402


def rates(cfg) -> dict:
    from transformers import AutoModelForSequenceClassification
    shape = base_shape(cfg)
    teacher = AutoModelForSequenceClassification.from_config(shape.__class__(**{**shape.to_dict(), "num_labels": 2}))
    student = TMKDStudent(student_config(shape.to_dict(), cfg.student_layers, ("a", "b"), len(cfg.teacher_lrs)))
    out = {}
    for name, model, train_batch in (("teacher", teacher, cfg.teacher_batch_size),
                                     ("student", student, cfg.student_batch_size)):
        for prec in ("fp32", "bf16"):
            def batch(size):
                ids = torch.randint(5, shape.vocab_size, (size, cfg.max_seq_len))
                return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            torch.manual_seed(0)
            out[(name, prec)] = (_train_rate(model, batch(train_batch), prec),
                                 _predict_rate(model, batch(cfg.eval_batch_size), prec))
    return out


def trained_accuracy(cfg, prec: str, epochs: float, work: Path):
    """The first seed's m-o-1 student (the run's fp32 teachers and cached logits) trained in `prec` for `epochs`
    with the series' Trainer path: (seconds, dev accuracy %, per-example hits)."""
    from tmkd.inputs.base_model import base_model_path
    from tmkd.core.config import TASKS
    from tmkd.training.logit_cache import with_teacher_logits
    from tmkd.training.students import build_student
    from tmkd.training.teachers import teacher_names
    from tmkd.training.trainer import fit, predict_logits, training_args
    task, seed = cfg.stage2_task, cfg.seeds[0]
    ds = with_teacher_logits(cfg, task, "train", teacher_names(cfg))
    model = build_student(base_model_path(cfg), cfg.student_layers, len(teacher_names(cfg)), TASKS[task].labels,
                          cfg.student_head_layers, cfg.alpha, soft_loss=cfg.soft_loss, seed=seed, pooling=cfg.pooling)
    args = training_args(work / prec, cfg.student_lr, epochs, cfg.student_batch_size,
                         dataclasses.replace(cfg, precision=prec, seed=seed))
    start = time.perf_counter()
    model = fit(model, ds, work / prec, args).model
    seconds = time.perf_counter() - start
    dev = split_dataset(cfg, task, dev_splits(task)[0])
    probs = np.exp(predict_logits(model, dev, cfg.eval_batch_size, dtype=prec))
    labels = np.asarray(dev["label"])
    return seconds, 100 * accuracy(probs, labels), probs.argmax(-1) == labels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="offline")
    p.add_argument("--data-dir", default="")
    p.add_argument("--run-dir", default="", help="a run whose teachers and logits exist: also train fp32 vs bf16")
    p.add_argument("--epochs", type=float, default=2.0)
    a = p.parse_args(argv)
    import transformers
    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    cfg = make_config(a.profile, data_dir=a.data_dir, **({"run_dir": a.run_dir} if a.run_dir else {}))
    print(f"CPU bf16 in hardware (AMX or AVX-512 bf16): {'yes' if has_fast_bf16() else 'no'}; {torch.get_num_threads()} threads; profile {a.profile}, "
          f"{cfg.max_seq_len} tokens, batches: teacher {cfg.teacher_batch_size}, student {cfg.student_batch_size}, "
          f"predict {cfg.eval_batch_size}")
    r = rates(cfg)
    print("examples/s        training step            prediction")
    for name in ("teacher", "student"):
        (t32, p32), (t16, p16) = r[(name, "fp32")], r[(name, "bf16")]
        print(f"  {name:8s} fp32 {t32:7.1f}  bf16 {t16:7.1f} ({t16 / t32:.2f}x)   fp32 {p32:7.1f}  bf16 {p16:7.1f} "
              f"({p16 / p32:.2f}x)")
    if a.run_dir:
        with tempfile.TemporaryDirectory() as tmp:
            runs = {prec: trained_accuracy(cfg, prec, a.epochs, Path(tmp)) for prec in ("fp32", "bf16")}
        (s32, acc32, h32), (s16, acc16, h16) = runs["fp32"], runs["bf16"]
        rng = np.random.default_rng(0)
        idx = rng.integers(0, len(h32), (2000, len(h32)))
        diffs = 100 * (h16[idx].mean(1) - h32[idx].mean(1))
        low, high = np.percentile(diffs, [2.5, 97.5])
        print(f"m-o-1 student, {a.epochs:g} epochs, first seed, {len(h32)} dev pairs: fp32 {acc32:.1f} % in {s32:.0f} s, "
              f"bf16 {acc16:.1f} % in {s16:.0f} s ({s32 / s16:.2f}x the speed)")
        print(f"bf16 - fp32: {acc16 - acc32:+.2f} points, paired bootstrap 95 % interval [{low:+.2f}, {high:+.2f}] "
              + ("(contains 0: equal within this dev set's noise)" if low <= 0 <= high else "(excludes 0)"))


if __name__ == "__main__":
    main()
