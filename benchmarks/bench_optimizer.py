"""AdamW's multi-tensor kernel ("adamw_torch") vs its fused kernel ("adamw_torch_fused", what tmkd.core.config.OPTIMIZERS
names for "adamw"): the offline profile's students and a teacher, trained with each, measured in one run.

    python benchmarks/bench_optimizer.py --data-dir ../shared/data/glue            # about 10 minutes on a 2-core CPU
    python benchmarks/bench_optimizer.py --data-dir ../shared/data/glue --quick    # about 2 minutes

This is a benchmark, not a test: it asserts nothing and prints what it measured, with the machine and settings. Run
it alone on the machine.

For each kernel, in a fresh run directory whose data was tokenized before the clock started: --students no-KD
students of the offline profile (all-MiniLM-L6-v2's bottom 3 layers, its labelled pairs, at most its epochs with
the best kept on the select slice, dev scoring), one at a time in this process (every core), as
tmkd.training.experiments.run_method trains an arm; then one teacher (6 layers, the profile's first learning rate) for
--teacher-epochs. Ratio: the multi-tensor kernel's wall time over the fused one's (above 1: fused is faster). Both
kernels compute the same AdamW update, so the dev accuracies should agree up to what float rounding changes.
--quick: 400 labelled pairs, 1 epoch, 1,000 dev pairs, a half-epoch teacher (the ratio only).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import bench_workers  # noqa: E402  (this folder: its settings and data preparation)
import tmkd.core.config  # noqa: E402
import tmkd.training.environment  # noqa: E402
import tmkd.training.experiments  # noqa: E402
import tmkd.training.teachers  # noqa: E402

KERNELS = ("adamw_torch", "adamw_torch_fused")


def settings(run_dir: Path, args):
    return bench_workers.settings(run_dir, args, 1, teacher_epochs=args.teacher_epochs)


def prepared(cfg):
    """bench_workers.prepared, and the teacher's split tokenized too, before any timing."""
    tmkd.training.teachers.task_data(cfg, cfg.stage2_task)
    return bench_workers.prepared(cfg)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="GLUE-layout folder (the offline profile's QNLI)")
    p.add_argument("--students", type=int, default=2, help="no-KD students per kernel (seeds 42, 43, ...)")
    p.add_argument("--teacher-epochs", type=float, default=1.0, help="the teacher's epochs (0: no teacher)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.teacher_epochs = min(args.teacher_epochs, 0.5)
    tmkd.training.environment.quiet()
    root = Path(tempfile.mkdtemp(prefix="bench-optimizer-"))
    out = {}
    for kernel in KERNELS:
        tmkd.core.config.OPTIMIZERS["adamw"] = kernel          # training_args reads it at each call (one process)
        cfg = prepared(settings(root / kernel, args))
        t0 = time.perf_counter()
        rows = tmkd.training.experiments.run_method(cfg, cfg.stage2_task, "no_kd")
        students = time.perf_counter() - t0
        teacher = 0.0
        if args.teacher_epochs > 0:
            t0 = time.perf_counter()
            tmkd.training.teachers.train_teacher(cfg, cfg.stage2_task, cfg.teacher_lrs[0])
            teacher = time.perf_counter() - t0
        out[kernel] = (students, teacher, [100 * r["accuracy"] for r in rows])
    cfg = settings(root / KERNELS[0], args)
    print(f"machine: {tmkd.training.environment.device_name(cpu=True)}; torch threads: {__import__('torch').get_num_threads()}; "
          f"torch {__import__('torch').__version__}")
    print(f"settings: offline profile{' --quick' if args.quick else ''}, {args.students} no-KD students of "
          f"{cfg.student_layers} layers one at a time, {cfg.train_size} labelled pairs, at most {cfg.student_epochs:g} "
          f"epochs, batch {cfg.student_batch_size}, {cfg.max_seq_len} tokens, dev {cfg.dev_size or 'all'} pairs; "
          f"a teacher of 6 layers for {args.teacher_epochs:g} epoch(s), batch {cfg.teacher_batch_size}")
    for kernel, (students, teacher, acc) in out.items():
        print(f"  {kernel:>17}: students {students:7.1f} s, teacher {teacher:6.1f} s; "
              f"students' dev accuracy (%): {', '.join(f'{a:.2f}' for a in acc)}")
    (s0, t0, _), (s1, t1, _) = out[KERNELS[0]], out[KERNELS[1]]
    print(f"ratio (multi-tensor / fused): students {s0 / s1:.2f}" + (f", teacher {t0 / t1:.2f}" if t1 else ""))
    print(f"run directories kept in {root}")


if __name__ == "__main__":
    main()
