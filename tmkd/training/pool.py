"""Students side by side on a CPU: `student_workers` processes, each training whole students with its share of the
cores (one thread each on two cores).

Why: a small student does not keep two cores busy. On this project's 2-core CPU two 1-thread processes trained more
examples per second together than one 2-thread process (benchmarks/bench_workers.py prints the ratio, measured in
one run). The students of a call do not depend on each other (every seed of an arm, every value of a sweep), so
nothing changes but the wall time: each worker calls train_student, the one training path (identity, resume,
checkpoints, atomic files), then scores its student on dev (the predictions are cached beside it), and takes the
next. The caller then reads the finished students as usual. A stage-2 student needs its stage-1 student first:
callers hand them over in waves.

The workers are a ProcessPoolExecutor of spawned processes, not forked ones (a kernel that already holds threads or
a GPU cannot fork safely); their progress lines reach the caller's output, and the first failure stops the others
and is raised here."""
from __future__ import annotations

import os
import queue
import sys
import time

from tmkd.core.config import Config, TMKDError
from tmkd.core.progress import progress
from tmkd.training.rundir import step_finished
from tmkd.training.students import (check_stage1_done, student_dir, student_identity, student_predictions,
                                    student_train_data, train_student)
from tmkd.training.weights import settle

POLL_S = 0.2


def worker_count(cfg: Config, unfinished: int) -> int:
    """How many processes to start for `unfinished` students: student_workers, never more than the students, 1 on a
    GPU (the device is shared, not the cores) and under nproc (each step is already several processes)."""
    import torch
    if cfg.student_workers > 1 and torch.cuda.is_available():
        progress("! student_workers shares a CPU's cores; on a GPU the students train one at a time")
        return 1
    return max(1, min(cfg.student_workers, unfinished))


def train_students(cfg: Config, specs, force: bool = False) -> dict:
    """Train every student of `specs` (independent of each other; finished ones are skipped, interrupted ones resume)
    and return {spec: final folder}. With student_workers > 1 the unfinished ones train student_workers at a time;
    a worker left alone at the end takes every core (5 students, 2 workers: the 5th ends with both). The workers
    say which students they trained; the rest go through train_student here (it trains, or says it reused)."""
    specs = list(dict.fromkeys(specs))
    for spec in specs:
        check_stage1_done(cfg, spec)
    trained = set()
    if cfg.student_workers > 1:
        todo = [s for s in specs if not step_finished(student_dir(cfg, s), student_identity(cfg, s), force)]
        workers = worker_count(cfg, len(todo))
        if workers > 1:
            trained = set(train_side_by_side(cfg, todo, force, workers))
    finals = {}
    for s in specs:
        finals[s] = student_dir(cfg, s) / "final" if s in trained else train_student(cfg, s, force)
        settle(cfg, s)              # keep_weights="needed": its dev predictions cached, its weights gone if unread
    return finals


def train_side_by_side(cfg: Config, todo: list, force: bool, workers: int) -> list:
    """`todo` trained and scored by `workers` processes, their data prepared here first; returns the specs trained."""
    for spec in todo:                            # data and teacher logits prepared here, once, before any worker reads
        student_train_data(cfg, spec)
        prepare_scored_splits(cfg, spec)
    threads = max(1, (os.cpu_count() or 1) // workers)
    progress(f"  {len(todo)} students on {workers} processes x {threads} thread(s) (the last one busy: every core)")
    return list(run_pool(cfg, todo, force, workers, threads))


def prepare_scored_splits(cfg: Config, spec) -> None:
    """Prepare (tokenize) once each split a student is scored on: its select slice and its dev splits."""
    from tmkd.inputs.data import dev_splits, split_dataset
    for split in list(dev_splits(spec.task)) + (["select"] if cfg.student_patience and spec.stage != 1 else []):
        split_dataset(cfg, spec.task, split)


def run_pool(cfg: Config, specs: list, force: bool, workers: int, threads: int):
    """Yield each spec as its worker finishes it; raise the first failure (TMKDError as itself) after stopping
    every worker. An interrupt (a stopped cell) stops them too: each student resumes from its last checkpoint.
    The processes are a concurrent.futures.ProcessPoolExecutor with a spawn context; what it lacks is here: the
    workers' lines relayed to the caller, a stop signal each worker reads before every training step (the executor
    cannot stop a running task), the cores of a worker left without students handed to the busy one."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    from tmkd.core.lock import lock_token
    from tmkd.core.parallel import child_environment, run_token
    ctx = mp.get_context("spawn")
    lines, stop = ctx.Queue(), ctx.Event()
    busy = ctx.Value("i", workers)               # workers still training: each takes os.cpu_count() // busy threads
    waiting = ctx.Value("i", len(specs))         # students no worker has started yet
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false",
           "TMKD_RUN_TOKEN": run_token(), "TMKD_LOCK_TOKEN": lock_token()}
    with child_environment(env):                 # the executor spawns its processes as the students are submitted
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker,
                                   initargs=(threads, lines, os.getpid(), busy, waiting, stop))
        futures = {pool.submit(_train_one, cfg, spec, force): spec for spec in specs}
    started, pending = time.time(), set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            _relay(lines)
            for future in done:
                spec = futures[future]
                try:
                    future.result()
                except TMKDError:
                    raise
                except BrokenProcessPool:
                    raise RuntimeError("a student worker ended early: killed (out of memory?), or a script without "
                                       "`if __name__ == '__main__':` around its calls (workers are spawned and import "
                                       "it). Finished students are kept: run it again") from None
                except Exception as e:  # noqa: BLE001 - raised here with the worker's own traceback
                    raise RuntimeError(f"{spec.task}/{spec.name} failed in a worker: {type(e).__name__}: {e}\n"
                                       f"{getattr(e.__cause__, 'tb', '')}") from None
                progress(f"  {len(futures) - len(pending)}/{len(futures)} {spec.task}/{spec.name} finished "
                         f"({time.time() - started:.0f} s since the first started)")
                yield spec
    finally:
        stop.set()                               # running students stop at their next step (resumable)
        pool.shutdown(wait=True, cancel_futures=True)
        _relay(lines)


def _relay(lines) -> None:
    """Print what the workers printed (their progress and warnings), in the order it arrived."""
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            return
        progress(line)


def _orphaned(parent: int) -> None:
    """End this worker within a second of its parent's death (a killed kernel or chain): a worker left running would
    go on writing its student's folder beside the re-run that resumes it."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


class _Lines:
    """A worker's stdout: each line goes to the caller, who prints it where its own output goes."""
    def __init__(self, lines):
        self.lines, self.buffer = lines, ""

    def write(self, text):
        self.buffer += text
        *done, self.buffer = self.buffer.split("\n")
        for line in done:
            if line.strip() and not line.lstrip().startswith("{'"):    # the Trainer's per-step loss logs stay here
                self.lines.put(line)
        return len(text)

    def flush(self):
        pass


def _widening(busy):
    """A worker's share of the cores as a TrainerCallback, checked before each training step and each scoring:
    os.cpu_count() // the workers still busy, so the last one left trains on every core, not beside an idle one."""
    import torch
    from transformers import TrainerCallback

    class Widen(TrainerCallback):
        def __call__(self, *args, **kwargs):
            if _WORKER["stop"] is not None and _WORKER["stop"].is_set():
                raise KeyboardInterrupt("the caller stopped the students")   # resumes from its last checkpoint
            threads = max(1, (os.cpu_count() or 1) // max(1, busy.value))
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)

        on_step_begin = on_epoch_end = __call__

        def done(self):
            with busy.get_lock():
                busy.value -= 1
    return Widen()


# What a worker process keeps between its students: set once by _start_worker (the executor's initializer), read by
# _train_one in the same process. The caller's process never reads or writes it.
_WORKER = {"widen": None, "stop": None, "waiting": None}


def _start_worker(threads: int, lines, parent: int, busy, waiting, stop) -> None:
    """A worker's start: its threads, its output sent to the caller, its end with its parent's death."""
    import threading

    import torch
    threading.Thread(target=_orphaned, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    sys.stdout = _Lines(lines)
    sys.stderr = open(os.devnull, "w")           # progress bars of two processes would interleave; failures are sent
    from tmkd.training.environment import quiet
    quiet()
    _WORKER.update(widen=_widening(busy), stop=stop, waiting=waiting)


def _train_one(cfg: Config, spec, force: bool) -> None:
    """One student in a worker: trained (train_student, the one training path) and scored on dev; a worker that
    finds no student left to start hands its cores to the busy ones."""
    from tmkd.inputs.data import dev_splits
    widen, waiting = _WORKER["widen"], _WORKER["waiting"]
    with waiting.get_lock():
        waiting.value -= 1
    try:
        train_student(cfg, spec, force, callbacks=(widen,))
        widen()
        for split in dev_splits(spec.task):
            student_predictions(cfg, spec, split)
        settle(cfg, spec)
    finally:
        if waiting.value == 0:
            widen.done()
