"""Scale-out benchmark: scoring a stage-1 corpus file with 1 vs 2 processes, and peak memory against corpus size.

    python benchmarks/bench_scaleout.py                   # about 5 minutes on a 2-core CPU
    python benchmarks/bench_scaleout.py --quick           # about 2 minutes
    python benchmarks/bench_scaleout.py --stage1 100000   # also a whole stage 1 on 100,000 generated pairs

This is a benchmark, not a test: it asserts nothing and prints what it measured, with the machine and settings.
Everything runs on the smoke profile's teachers (a 6-layer, 32-wide BERT trained for a few steps: speed and memory
do not depend on what the weights hold) and generated pairs in its vocabulary; no data, no downloads.

(a) Throughput: the same corpus (--pairs, in shards of --shard-pairs) scored by one teacher through
    tmkd.training.logit_cache.score_corpus, started by tmkd.core.parallel.launch with 1 and then 2 processes of one thread
    each (torch's elastic launcher, gloo). "scoring" is the time between two barriers around the scoring in
    the main process (what the processes share); "with start-up" adds starting the processes (imports).
    Ratio 2-proc/1-proc: pairs/s with two processes over pairs/s with one; about 2 when the machine has two
    free cores (the shards are shared round by round; the main process also writes them).

(b) Memory: a fresh process tokenizes and scores a corpus of 10,000 and one of 100,000 pairs (both teachers,
    one process, shards of --shard-pairs), and reports its peak resident memory (ru_maxrss) and how much of
    it came after the imports and the run directory were ready. Ratio 100k/10k of the peak: about 1 when
    nothing grows with the corpus (one shard at a time; the tokens and logits are memory-mapped files).

(c) --stage1 N: a fresh process runs stage 1 end to end on N generated pairs - tokenize, score with both
    teachers, train the TMKD stage-1 student for one epoch from the memory-mapped shards - and reports its
    peak resident memory and the time of each part.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import helpers  # noqa: E402
import tmkd.core.config  # noqa: E402
import tmkd.inputs.corpus  # noqa: E402
import tmkd.inputs.data  # noqa: E402
import tmkd.training.environment  # noqa: E402
import tmkd.training.experiments  # noqa: E402
import tmkd.training.logit_cache  # noqa: E402
import tmkd.core.parallel  # noqa: E402
import tmkd.training.students  # noqa: E402


def settings(run_dir, corpus, shard_pairs: int, **more):
    return tmkd.core.config.make_config("smoke", run_dir=str(run_dir), tasks=("rte",), sweep_task="rte", stage1_task="rte",
                               stage2_task="rte", stage1_pool_tasks=("rte",), teacher_lrs=(1e-3, 2e-3),
                               teacher_epochs=0.05, stage1_corpus=str(corpus), stage1_shard_pairs=shard_pairs,
                               stage1_epochs=1.0, save_steps=2000, logging_steps=200, **more)


def write_corpus(path: Path, n: int) -> Path:
    """n generated pairs, one JSON object per line, written in blocks (never all in memory)."""
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, n, 10_000):
            df = tmkd.inputs.data.generate_split("rte", f"corpus{start}", min(10_000, n - start), 11)
            f.writelines(json.dumps({"text_a": a, "text_b": b}) + "\n" for a, b in zip(df["text_a"], df["text_b"]))
    return path


def rss_mb() -> float:
    """Resident memory of this process now (MB), from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3          # Linux: kilobytes


# ---- (a) throughput ---------------------------------------------------------------------------------------

def timed_score(cfg, task, teacher) -> dict:
    """In every process of the launch: score the whole corpus (its logits were removed); returns the seconds between
    the two barriers around it, as the main process measured them."""
    from tmkd.core import parallel
    from tmkd.training.logit_cache import score_corpus
    import torch
    model_threads = torch.get_num_threads()
    parallel.barrier()
    t0 = time.perf_counter()
    score_corpus(cfg, task, teacher)
    parallel.barrier()
    return {"seconds": time.perf_counter() - t0, "threads": model_threads}


def task_of(cfg) -> str:
    return cfg.stage1_task


def throughput(cfg, repeats: int) -> dict:
    teacher = helpers.teacher_names(cfg)[0]
    n = len(tmkd.inputs.corpus.corpus_tokens(cfg))                         # tokenized once, before any timing
    out = {}
    for _ in range(repeats):
        for nproc in (1, 2):
            for old in (cfg.run_path / "logits" / task_of(cfg) / teacher).glob("stage1-*"):
                shutil.rmtree(old)                                  # score everything again
            t0 = time.perf_counter()
            got = tmkd.core.parallel.launch(timed_score, cfg, "rte", teacher, nproc=nproc, threads=1)
            wall = time.perf_counter() - t0
            best = out.get(nproc)
            if best is None or got["seconds"] < best["seconds"]:
                out[nproc] = {"seconds": got["seconds"], "wall": wall, "threads": got["threads"],
                              "pairs_per_s": n / got["seconds"], "pairs_per_s_wall": n / wall}
    return out


# ---- (b), (c) memory, each in a fresh process --------------------------------------------------------------

def child(args) -> None:
    """Runs in a fresh process: prepare, then score (and with --child-stage1 train) the corpus; prints json."""
    import torch
    torch.set_num_threads(args.threads)
    root = Path(args.child)
    cfg = settings(root / "run", root / "pairs.jsonl", args.shard_pairs)
    helpers.train_teachers(cfg)                                    # finished: skipped (reads the markers)
    before = rss_mb()
    times = {}
    t0 = time.perf_counter()
    tmkd.inputs.corpus.corpus_tokens(cfg)
    times["tokenize"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in helpers.teacher_names(cfg):
        tmkd.training.logit_cache.corpus_logits(cfg, "rte", t)
    times["score"] = time.perf_counter() - t0
    if args.child_stage1:
        t0 = time.perf_counter()
        tmkd.training.students.train_student(cfg, tmkd.training.specs.stage1_spec(cfg, "tmkd"))
        times["train"] = time.perf_counter() - t0
    print("RESULT " + json.dumps({"before_mb": before, "peak_mb": peak_mb(), "times": times,
                                  "pairs": tmkd.inputs.corpus.count_pairs(cfg.stage1_corpus)}), flush=True)


def in_fresh_process(base_run: Path, root: Path, pairs: int, args, stage1: bool = False) -> dict:
    root.mkdir(parents=True)
    shutil.copytree(base_run, root / "run")                          # the trained teachers, nothing scored
    write_corpus(root / "pairs.jsonl", pairs)
    cmd = [sys.executable, __file__, "--child", str(root), "--shard-pairs", str(args.shard_pairs),
           "--threads", str(args.threads)] + (["--child-stage1"] if stage1 else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


# ---- report ------------------------------------------------------------------------------------------------

def machine() -> str:
    import torch
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.machine()} CPU, {os.cpu_count()} cores ({platform.processor() or 'unknown'}), load average "
            f"{load}; Python {platform.python_version()}, torch {torch.__version__}, "
            f"GPU: {'yes' if torch.cuda.is_available() else 'none'}")


def report_memory(mem: dict, sizes: list) -> None:
    print("\n(b) peak resident memory while tokenizing and scoring (fresh process, both teachers)")
    for n, r in mem.items():
        print(f"  {n:,} pairs: peak {r['peak_mb']:,.0f} MB ({r['peak_mb'] - r['before_mb']:,.0f} MB above the "
              f"{r['before_mb']:,.0f} MB after imports); tokenize {r['times']['tokenize']:.1f} s, score "
              f"{r['times']['score']:.1f} s")
    lo, hi = mem[sizes[0]], mem[sizes[-1]]
    growth = (hi['peak_mb'] - hi['before_mb']) / max(lo['peak_mb'] - lo['before_mb'], 1)
    print(f"  ratio {sizes[-1]:,}/{sizes[0]:,}: peak {hi['peak_mb'] / lo['peak_mb']:.2f}, above imports "
          f"{growth:.2f} (corpus {sizes[-1] / sizes[0]:.0f}x larger)", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, help="(a) corpus size for the throughput (default 40,000; --quick 16,000)")
    p.add_argument("--shard-pairs", type=int, default=5_000, help="pairs per shard (default 5,000)")
    p.add_argument("--memory-sizes", default="10000,100000", help="(b) corpus sizes, comma-separated")
    p.add_argument("--repeats", type=int, help="(a) runs per process count, the fastest kept (default 2; --quick 1)")
    p.add_argument("--threads", type=int, default=1, help="(b, c) torch threads of the fresh process (default 1)")
    p.add_argument("--stage1", type=int, default=0, metavar="N", help="(c) also a whole stage 1 on N pairs")
    p.add_argument("--parts", default="ab", help="what to measure besides --stage1: a (throughput), b (memory)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-stage1", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    tmkd.training.environment.quiet()
    pairs = args.pairs or (16_000 if args.quick else 40_000)
    repeats = args.repeats or (1 if args.quick else 2)
    sizes = [int(s) for s in args.memory_sizes.split(",")]
    print(f"machine: {machine()}")
    print(f"settings: smoke teachers (6 layers, hidden 32), max_seq_len 24, eval batch 64, shards of "
          f"{args.shard_pairs:,} pairs; (a) {pairs:,} pairs, 1 thread per process, best of {repeats}; "
          f"(b) {' and '.join(f'{s:,}' for s in sizes)} pairs, both teachers, {args.threads} thread(s)"
          + (f"; (c) stage 1 on {args.stage1:,} pairs" if args.stage1 else ""), flush=True)
    with tempfile.TemporaryDirectory(prefix="tmkd-bench-scaleout-") as tmp:
        tmp = Path(tmp)
        base = settings(tmp / "base", tmp / "none.jsonl", args.shard_pairs)
        write_corpus(tmp / "none.jsonl", 10)
        helpers.train_teachers(base)                                      # a few steps each

        if "a" in args.parts:
            cfg = settings(tmp / "base", write_corpus(tmp / "throughput.jsonl", pairs), args.shard_pairs)
            speed = throughput(cfg, repeats)
            print("\n(a) scoring throughput, one teacher")
            for k, r in speed.items():
                print(f"  {k} process(es) x 1 thread: {r['pairs_per_s']:,.0f} pairs/s scoring ({r['seconds']:.1f} s), "
                      f"{r['pairs_per_s_wall']:,.0f} pairs/s with start-up ({r['wall']:.1f} s)")
            print(f"  ratio 2-proc/1-proc: {speed[2]['pairs_per_s'] / speed[1]['pairs_per_s']:.2f} (scoring), "
                  f"{speed[2]['pairs_per_s_wall'] / speed[1]['pairs_per_s_wall']:.2f} (with start-up); load "
                  f"average now {os.getloadavg()[0]:.1f}", flush=True)
        if "b" not in args.parts:
            sizes = []
        shutil.rmtree(tmp / "base" / "logits", ignore_errors=True)          # the teachers stay, nothing scored
        for old in (tmp / "base" / "data").glob("stage1-*"):
            shutil.rmtree(old)

        mem = {n: in_fresh_process(tmp / "base", tmp / f"mem-{n}", n, args) for n in sizes}
        if mem:
            report_memory(mem, sizes)
        if args.stage1:
            r = in_fresh_process(tmp / "base", tmp / "stage1", args.stage1, args, stage1=True)
            t = r["times"]
            print(f"\n(c) stage 1 on {r['pairs']:,} generated pairs (tokenize, score with 2 teachers, train the TMKD "
                  f"stage-1 student 1 epoch): peak {r['peak_mb']:,.0f} MB ({r['peak_mb'] - r['before_mb']:,.0f} MB "
                  f"above imports); tokenize {t['tokenize']:.0f} s, score {t['score']:.0f} s, train {t['train']:.0f} s")


if __name__ == "__main__":
    main()
