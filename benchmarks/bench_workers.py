"""Students one at a time vs student_workers=2 (tmkd.training.pool): the wall time of one arm of chapter 04, measured in one run.

    python benchmarks/bench_workers.py --data-dir ../shared/data/glue            # about 12 minutes on a 2-core CPU
    python benchmarks/bench_workers.py --data-dir ../shared/data/glue --quick    # about 4 minutes

This is a benchmark, not a test: it asserts nothing and prints what it measured, with the machine and settings. Run
it alone on the machine.

The offline profile's no-KD students (all-MiniLM-L6-v2's bottom 3 layers, its labelled pairs, epochs, early stopping
on the select slice, dev scoring) for --students seeds, trained by tmkd.training.experiments.run_method, as chapter 04 trains
an arm: first one at a time (one process, every core), then with student_workers=2 (two spawned processes, the
cores shared out), each in a fresh run directory whose data was tokenized before the clock started. Ratio: the
first wall time over the second (above 1: the workers are faster). The dev accuracies of both are printed too:
the same students, trained with another thread count, differ by float rounding at most in what they learn.
--quick: 400 labelled pairs, 1 epoch, 1,000 dev pairs (the ratio only; the accuracies mean nothing then).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tmkd.core.config  # noqa: E402
import tmkd.training.environment  # noqa: E402
import tmkd.training.experiments  # noqa: E402
import tmkd.training.pool  # noqa: E402
import tmkd.training.rundir  # noqa: E402
import tmkd.training.students  # noqa: E402


def settings(run_dir: Path, args, workers: int, **more):
    """The offline profile for args.students no-KD students (--quick: 400 pairs, 1 epoch, 1,000 dev pairs)."""
    quick = dict(train_size=400, student_epochs=1.0, dev_size=1000) if args.quick else {}
    return tmkd.core.config.make_config("offline", run_dir=str(run_dir), data_dir=args.data_dir, student_workers=workers,
                                   seeds=tuple(range(42, 42 + args.students)), **quick, **more)


def prepared(cfg):
    """The run directory claimed and every split the students read tokenized, before any timing."""
    tmkd.training.rundir.check_run_dir(cfg)
    for seed in cfg.seeds:
        spec = tmkd.training.specs.method_specs(cfg, cfg.stage2_task, "no_kd", seed)[0]
        tmkd.training.students.student_train_data(cfg, spec)
        tmkd.training.pool.prepare_scored_splits(cfg, spec)
    return cfg


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="GLUE-layout folder (the offline profile's QNLI)")
    p.add_argument("--students", type=int, default=4, help="students per arm (seeds 42, 43, ...)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    tmkd.training.environment.quiet()
    root = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    out = {}
    for workers in (1, 2):
        cfg = prepared(settings(root / f"workers-{workers}", args, workers))
        t0 = time.perf_counter()
        rows = tmkd.training.experiments.run_method(cfg, cfg.stage2_task, "no_kd")
        out[workers] = (time.perf_counter() - t0, [100 * r["accuracy"] for r in rows])
    cfg = settings(root / "workers-1", args, 1)
    print(f"machine: {tmkd.training.environment.device_name(cpu=True)}; torch threads: {__import__('torch').get_num_threads()}")
    print(f"settings: offline profile{' --quick' if args.quick else ''}, {args.students} no-KD students of "
          f"{cfg.student_layers} layers, {cfg.train_size} labelled pairs, at most {cfg.student_epochs:g} epochs "
          f"(patience {cfg.student_patience}), batch {cfg.student_batch_size}, {cfg.max_seq_len} tokens, dev "
          f"{cfg.dev_size or 'all'} pairs")
    for workers, (seconds, acc) in out.items():
        what = "one at a time" if workers == 1 else f"{workers} workers"
        print(f"  {what:>14}: {seconds:7.1f} s; dev accuracy (%): {', '.join(f'{a:.2f}' for a in acc)}")
    print(f"ratio (one at a time / 2 workers): {out[1][0] / out[2][0]:.2f}")
    print(f"run directories kept in {root}")


if __name__ == "__main__":
    main()
