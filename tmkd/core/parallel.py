"""Several processes (GPUs) for the heavy steps, through the engines users already have.

Two ways in, one set of rules:
- `nproc` > 1 (run_chain.py --nproc N, or OVERRIDES={"nproc": N} in a chapter): each heavy step (a teacher, a
  logit cache, a student) starts N worker processes with torch's elastic launcher - the engine behind `torchrun` -
  and waits for them. Workers are spawned, not forked, so a notebook that already touched CUDA can launch them.
- A script of yours under `torchrun --nproc_per_node N` or `accelerate launch`: every function here sees the
  launch's world (RANK, WORLD_SIZE, LOCAL_RANK) and uses it; nothing is started twice.

In both, only the main process (rank 0) writes the run directory; the others wait at barriers and read what it
wrote. Data is prepared once, by the main process, before the others read it. Training runs as
DistributedDataParallel through the Trainer with the configured batch split over the processes (the effective
batch stays the configured one); nn.DataParallel is never used.

Nothing here imports torch until a process group is needed.

Why not accelerate's PartialState (evaluated with accelerate 1.16): rank, world size and local rank are read from
the launch's environment, as PartialState reads them, but without importing accelerate, which imports torch (0.9 s
measured): every single-process call asks is_main(). PartialState() in a launch initialises the process group when
first constructed, and its wait_for_everyone / main_process_first know nothing of on_main's main-only call (there the
main process alone would wait at a barrier the others never reach); its broadcast_object_list is
torch.distributed's, and it has no gather to one process (gather_object gathers to all). So the few collectives
here call torch.distributed directly.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
import uuid

from tmkd.core.config import TMKDError
from tmkd.core.progress import progress

# FORCE recomputes each step once per run: a chain run passes one token to all its chapters (TMKD_RUN_TOKEN), a
# notebook on its own gets one per kernel, and the workers `launch` starts get their parent's.
_KERNEL_TOKEN = uuid.uuid4().hex


def run_token() -> str:
    return os.environ.get("TMKD_RUN_TOKEN") or _KERNEL_TOKEN


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def distributed() -> bool:
    """True inside a launch of several processes (torchrun, accelerate launch, or the workers `launch` starts)."""
    return world_size() > 1


def is_main() -> bool:
    return rank() == 0


def _group():
    """The default process group, initialised on first use (nccl on GPUs, gloo on CPUs); None for one process, and
    inside on_main's main-only call (the other processes are waiting for its result, not at a collective)."""
    if not distributed() or _solo.get():
        return None
    import torch
    import torch.distributed as dist
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist


def barrier() -> None:
    """Wait until every process of the launch gets here (nothing with one process)."""
    dist = _group()
    if dist is not None:
        dist.barrier()


def broadcast(value):
    """The main process's `value`, in every process (a picklable object)."""
    dist = _group()
    if dist is None:
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(value) -> list:
    """Every process's `value`, in rank order, in the main process ([] in the others)."""
    dist = _group()
    if dist is None:
        return [value]
    out = [None] * world_size() if is_main() else None
    dist.gather_object(value, out, dst=0)
    return out or []


def on_main(fn, *args, **kwargs):
    """fn(*args, **kwargs) run by the main process only (it may write the run directory); every process gets its
    result. A failure in the main process ends the launch (the launcher stops the others)."""
    if not distributed() or _solo.get():
        return fn(*args, **kwargs)
    result = None
    if is_main():
        token = _solo.set(True)          # barriers and main_first inside fn: this process alone
        try:
            result = fn(*args, **kwargs)
        finally:
            _solo.reset(token)
    return broadcast(result)


# Whether this context is inside on_main's main-only call, and inside a main_first block: state of the running
# call (set on the way in, reset on the way out, even when it raises), so context variables, not module globals.
_solo = contextvars.ContextVar("tmkd_on_main_solo", default=False)
_ordered = contextvars.ContextVar("tmkd_main_first_ordered", default=False)


@contextlib.contextmanager
def main_first():
    """The block runs in the main process first (it prepares and writes); the others run it after, when what it
    wrote is there to read. Every process passes exactly one barrier; a block inside another adds none (the outer
    one already orders them)."""
    if not distributed() or _ordered.get() or _solo.get():
        yield
        return
    token = _ordered.set(True)
    try:
        if not is_main():
            barrier()
        yield
    finally:
        _ordered.reset(token)
        if is_main():
            barrier()


# ---- starting the workers ---------------------------------------------------------------------------------

def wants_launch(cfg) -> bool:
    """True when this process should start cfg.nproc workers for a heavy step (it is not one itself)."""
    return cfg.nproc > 1 and not distributed()


def launch(fn, *args, nproc: int, threads: int = 0, **kwargs):
    """fn(*args, **kwargs) in `nproc` processes started by torch's elastic launcher (torchrun's engine, standalone:
    one machine, a free port), each with its RANK / WORLD_SIZE / LOCAL_RANK; returns the main process's result.
    fn and its arguments must be picklable (module-level functions, configurations, specs). On CPUs each worker
    gets `threads` threads (default: the cores divided among the workers). A worker's failure stops the others
    and is raised here with its message."""
    import torch
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch
    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise TMKDError(f"nproc={nproc} processes, but this machine has {torch.cuda.device_count()} GPU(s): one process "
                        f"per GPU, so set nproc to at most {torch.cuda.device_count()}")
    threads = threads or max(1, (os.cpu_count() or 1) // nproc)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)   # failures are raised below
    logging.getLogger("torch.multiprocessing").setLevel(logging.ERROR)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    where = f"{nproc} GPUs" if torch.cuda.is_available() else f"{nproc} CPU processes x {threads} thread(s)"
    progress(f"  {getattr(fn, '__name__', fn)} on {where}")
    try:
        with child_environment({"OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false",
                                "TMKD_RUN_TOKEN": run_token()}):   # FORCE: the workers' recomputation is this run's
            results = elastic_launch(config, _worker)(fn, args, kwargs, threads)
    except ChildFailedError as e:
        rank_, failure = _root_cause(e.failures)
        info = failure.message if isinstance(failure.message, dict) else {"message": str(failure.message)}
        message = str(info.get("message", ""))
        if message.startswith("TMKDError:"):
            raise TMKDError(message.split(":", 1)[1].strip()) from None
        stack = str(info.get("extraInfo", {}).get("py_callstack", ""))
        raise RuntimeError(f"{getattr(fn, '__name__', fn)} failed in process {rank_} of {nproc}: {message}\n"
                           f"{stack}") from None
    return results[0]


@contextlib.contextmanager
def child_environment(env: dict):
    """os.environ with `env` set while child processes start (their OpenMP reads its thread count before torch
    starts), then as it was."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _root_cause(failures: dict):
    """The failure that started it: not a lost connection (what the other processes see when one dies at a
    collective), the earliest."""
    return min(failures.items(), key=lambda kv: (_lost(str(kv[1].message)), kv[1].timestamp, kv[0]))


def _lost(message: str) -> bool:
    """A failure that only says another process is gone (a collective lost its peer, or the launcher stopped it)."""
    return any(s in message for s in ("Connection closed by peer", "Connection reset by peer", "Signal ", "NCCL"))


def _worker(fn, args, kwargs, threads):
    """One worker: its device (GPU `LOCAL_RANK`) or its CPU threads, the process group, then fn."""
    import sys

    import torch
    from torch.distributed.elastic.multiprocessing.errors import record
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    else:
        torch.set_num_threads(threads)
    if not is_main():                    # one copy of every message: the main process's (errors still show)
        sys.stdout = open(os.devnull, "w")
    _group()
    try:
        result = record(fn)(*args, **kwargs)
    except Exception as e:
        if _lost(str(e)):                # another process died: let the launcher see that one first
            time.sleep(5)
        raise
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()
    return result
