"""Speed benchmark for TMKD: what a small student and cached teacher logits save, as measured ratios.

    python benchmarks/bench_speed.py            # defaults: a few minutes on a 2-core CPU
    python benchmarks/bench_speed.py --quick    # smaller shapes: about a minute

This is a benchmark, not a test: it asserts nothing, it prints figures measured side by side in one run
(same process, same inputs, same threads; the models take turns, so load from other processes hits
them alike). Random weights everywhere: speed does not depend on what the weights hold. On a CPU that
other processes keep busy, oversubscribed threads slow every model down several-fold and make the figures
erratic: by default the script lowers torch's threads to the cores the load average leaves free (--threads N
overrides; the choice is printed). Absolute figures depend on the machine
and its load; the ratios are what to compare.

(a) Inference, examples/s on one batch (default 32 x 128 tokens, random token ids):
    teacher = BERT-base shape (12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522),
              `BertForSequenceClassification`;
    student = `helpers.TMKDStudent`, 3 layers of the same width, multi-header layer with 3 soft heads;
    each in fp32 and after int8 dynamic quantization (`speed.quantize_int8`), timed with
    `speed.time_models` (warm-up, then the median of --repeats runs).
    Ratios:
      student/teacher fp32  how many times more examples/s the student serves than the teacher (the paper
                            reports about 13x for BERT-3 against a 24-layer BERT-large teacher; against a
                            12-layer BERT-base teacher the layer count alone suggests about 4x);
      student/teacher int8  the same after both are quantized;
      int8/fp32             what quantization alone buys, for each model.

(b) Training, seconds for one knowledge-distillation epoch of the student (plain PyTorch loop, AdamW,
    loss from the student's forward, i.e. `helpers.tmkd_loss`) on a synthetic data set, three ways:
      plain   fine-tuning on gold labels only (alpha=0, no teachers, no soft heads: chapter 04's no_kd);
      cached  TMKD from cached logits (alpha=0.7): the teachers ran once beforehand and their logits travel
              with each batch through `trainer.collate`, as in the project (chapter 02 caches, 03-06 train);
      online  TMKD with three teachers run inside the loop (forward under torch.inference_mode) to produce
              each step's teacher_logits.
    Teachers default to all-MiniLM-L6-v2's shape (6 layers, hidden 384) so the run stays short; the
    student has 3 layers of the same width. The three loops take turns step by step over the same batches.
    Ratios:
      online/cached  how much slower an epoch is when the teachers run every step instead of once;
      cached/plain   what the soft heads and the soft loss cost on top of plain fine-tuning (close to 1).
    The one-off cost of caching (one teacher pass over the data) is printed as well: online pays it every
    epoch, cached pays it once.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import helpers  # noqa: E402
import tmkd.model.method  # noqa: E402
from tmkd.training import environment, trainer  # noqa: E402
from tmkd.reporting import speed

# torch 2.13 warns that its quantized tensor types (which quantize_dynamic produces) are deprecated.
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)

VOCAB = 30522
NUM_LABELS = 2

DEFAULTS = dict(batch_size=32, seq_len=128, repeats=3, examples=256, train_batch_size=16)
QUICK = dict(batch_size=8, seq_len=64, repeats=2, examples=48, train_batch_size=8)


# ---------------------------------------------------------------------------------------------- settings

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, help="(a) inference batch (default 32; --quick 8)")
    p.add_argument("--seq-len", type=int, help="tokens per example, (a) and (b) (default 128; --quick 64)")
    p.add_argument("--repeats", type=int, help="(a) timed runs per model, median reported (default 3; --quick 2)")
    p.add_argument("--examples", type=int, help="(b) synthetic training examples (default 256; --quick 48)")
    p.add_argument("--train-batch-size", type=int, help="(b) training batch (default 16; --quick 8)")
    p.add_argument("--teachers", type=int, default=3, help="(b) number of teachers (default 3)")
    p.add_argument("--teacher-layers", type=int, default=6, help="(b) teacher depth (default 6)")
    p.add_argument("--teacher-hidden", type=int, default=384, help="(b) teacher/student width (default 384)")
    p.add_argument("--student-layers", type=int, default=3, help="student depth, (a) and (b) (default 3)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (default 0 = torch's choice, lowered to the cores other processes leave free)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--quick", action="store_true", help="smaller shapes, about a minute")
    p.add_argument("--only", choices=("a", "b"), help="run one part only")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def print_machine(args, threads_note: str):
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"machine   {environment.device_name(cpu=True)}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads ({threads_note}); python {platform.python_version()}; load average {load}")
    print("settings  " + ", ".join(f"{k}={v}" for k, v in vars(args).items()))


def busy_cores() -> float:
    """About how many cores other processes keep busy (1-minute load average; 0 where unknown)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def choose_threads(requested: int) -> str:
    """Set torch's threads: as asked, or torch's default lowered to the free cores (at least 1)."""
    if requested:
        torch.set_num_threads(requested)
        return "as requested"
    default, busy = torch.get_num_threads(), busy_cores()
    free = max(1, (os.cpu_count() or 1) - round(busy))
    if free >= default:
        return "torch's default"
    torch.set_num_threads(free)
    return (f"lowered from {default}: other processes keep about {busy:.1f} cores busy, and more threads than "
            "free cores slow every model down several-fold")


# ---------------------------------------------------------------------------------------------- models

def bert_config(layers: int, hidden: int, heads: int, ffn: int, max_len: int) -> dict:
    return dict(vocab_size=VOCAB, num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                intermediate_size=ffn, max_position_embeddings=max(512, max_len), num_labels=NUM_LABELS)


def make_teacher(shape: dict, seed: int):
    """A BertForSequenceClassification with random weights."""
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**shape)).eval()


def make_student(shape: dict, layers: int, n_teachers: int, alpha: float, seed: int):
    """A helpers.TMKDStudent with the teacher's width, `layers` layers and one soft head per teacher."""
    torch.manual_seed(seed)
    config = tmkd.model.method.TMKDConfig(**(shape | dict(num_hidden_layers=layers)), n_teachers=n_teachers, alpha=alpha)
    return helpers.TMKDStudent(config)


def random_inputs(n: int, seq_len: int, seed: int) -> dict:
    """Token ids drawn at random (no [PAD]), full attention, two segments of equal length."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, VOCAB, (n, seq_len), generator=g)
    segments = (torch.arange(seq_len) >= seq_len // 2).long().expand(n, seq_len).clone()
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": segments}


def millions(model) -> str:
    return f"{trainer.count_params(model) / 1e6:.1f}M"


# ---------------------------------------------------------------------------------------------- (a) inference

def median_seconds(models: dict, inputs: dict, repeats: int) -> dict:
    """name -> median seconds per batch. One warm-up each, then the models take turns `repeats` times."""
    for model in models.values():
        speed.time_models([model], inputs, repeats=1, warmup=1)
    times = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            times[name].append(speed.time_models([model], inputs, repeats=1, warmup=0))
    return {name: statistics.median(t) for name, t in times.items()}


def inference_models(args) -> dict:
    shape = bert_config(12, 768, 12, 3072, args.seq_len)   # BERT-base
    teacher = make_teacher(shape, args.seed)
    student = make_student(shape, args.student_layers, n_teachers=3, alpha=0.7, seed=args.seed).eval()
    print(f"(a) teacher BERT-base shape {millions(teacher)} params; student TMKDStudent "
          f"{args.student_layers} layers x 768, 3 soft heads, {millions(student)} params")
    return {"teacher fp32": teacher, "student fp32": student,
            "teacher int8": speed.quantize_int8(teacher), "student int8": speed.quantize_int8(student)}


def part_a(args) -> dict:
    models = inference_models(args)
    inputs = random_inputs(args.batch_size, args.seq_len, args.seed)
    t0 = time.perf_counter()
    seconds = median_seconds(models, inputs, args.repeats)
    eps = {name: args.batch_size / s for name, s in seconds.items()}
    print(f"    batch {args.batch_size} x {args.seq_len} tokens, median of {args.repeats} "
          f"({time.perf_counter() - t0:.0f} s of timing)")
    for name in models:
        print(f"    {name:<13} {eps[name]:9.1f} examples/s   {1000 * seconds[name]:9.1f} ms/batch")
    ratios = {"student/teacher fp32": eps["student fp32"] / eps["teacher fp32"],
              "student/teacher int8": eps["student int8"] / eps["teacher int8"],
              "teacher int8/fp32": eps["teacher int8"] / eps["teacher fp32"],
              "student int8/fp32": eps["student int8"] / eps["student fp32"],
              "student int8/teacher fp32": eps["student int8"] / eps["teacher fp32"]}
    print_ratios(ratios)
    return ratios


# ---------------------------------------------------------------------------------------------- (b) training

def synthetic_features(n: int, seq_len: int, seed: int) -> list:
    """Tokenized-looking examples (lists of ids and a label), the form `trainer.collate` takes."""
    x = random_inputs(n, seq_len, seed)
    labels = torch.randint(0, NUM_LABELS, (n,), generator=torch.Generator().manual_seed(seed + 1))
    return [{k: x[k][i].tolist() for k in x} | {"label": int(labels[i])} for i in range(n)]


def batches(features: list, batch_size: int) -> list:
    return [features[i:i + batch_size] for i in range(0, len(features), batch_size)]


@torch.inference_mode()
def teacher_logits(teachers: list, batch: dict) -> torch.Tensor:
    """(B, N, C): every teacher's logits on one batch."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    return torch.stack([t(**inputs).logits for t in teachers], dim=1)


def cache_logits(teachers: list, features: list, batch_size: int) -> list:
    """Chapter 02 in miniature: one teacher pass, logits stored with each example."""
    out = []
    for chunk in batches(features, batch_size):
        logits = teacher_logits(teachers, trainer.collate(chunk)).numpy()
        out += [f | {"teacher_logits": row} for f, row in zip(chunk, logits)]
    return out


class Loop:
    """One student, its optimizer, and how a step gets its teacher logits: none, cached, or online."""

    def __init__(self, name: str, student, features: list, teachers=None):
        self.name, self.student, self.features, self.teachers = name, student.train(), features, teachers
        self.optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.01)
        self.seconds = 0.0

    def step(self, chunk_rows: slice) -> float:
        t0 = time.perf_counter()
        batch = trainer.collate(self.features[chunk_rows])
        if self.teachers:
            batch["teacher_logits"] = teacher_logits(self.teachers, batch).clone()   # a normal tensor again
        loss = self.student(**batch).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0


def training_loops(args, teachers: list, shape: dict, features: list, cached: list) -> list:
    k, n = args.student_layers, len(teachers)
    return [Loop("plain", make_student(shape, k, n_teachers=0, alpha=0.0, seed=args.seed), features),
            Loop("cached", make_student(shape, k, n_teachers=n, alpha=0.7, seed=args.seed), cached),
            Loop("online", make_student(shape, k, n_teachers=n, alpha=0.7, seed=args.seed), features, teachers)]


def run_epoch(loops: list, n: int, batch_size: int):
    """One warm-up step each (untimed), then one epoch each, the loops taking turns step by step."""
    for loop in loops:
        loop.step(slice(0, batch_size))
    for start in range(0, n, batch_size):
        for loop in loops:
            loop.seconds += loop.step(slice(start, start + batch_size))


def part_b(args) -> dict:
    hidden = args.teacher_hidden
    shape = bert_config(args.teacher_layers, hidden, max(1, hidden // 64), 4 * hidden, args.seq_len)
    teachers = [make_teacher(shape, args.seed + i) for i in range(args.teachers)]
    features = synthetic_features(args.examples, args.seq_len, args.seed)
    t0 = time.perf_counter()
    cached = cache_logits(teachers, features, args.train_batch_size)
    caching = time.perf_counter() - t0
    loops = training_loops(args, teachers, shape, features, cached)
    print(f"(b) {args.teachers} teachers {args.teacher_layers} layers x {hidden} ({millions(teachers[0])} params each); "
          f"student {args.student_layers} layers x {hidden} ({millions(loops[1].student)} params); "
          f"{args.examples} examples x {args.seq_len} tokens, batch {args.train_batch_size}, AdamW")
    run_epoch(loops, args.examples, args.train_batch_size)
    for loop in loops:
        print(f"    {loop.name:<7} {loop.seconds:8.2f} s/epoch   {args.examples / loop.seconds:7.1f} examples/s")
    print(f"    caching the {args.teachers} teachers' logits once: {caching:.2f} s")
    s = {loop.name: loop.seconds for loop in loops}
    ratios = {"online/cached": s["online"] / s["cached"], "cached/plain": s["cached"] / s["plain"],
              "online/plain": s["online"] / s["plain"]}
    print_ratios(ratios)
    return ratios


# ---------------------------------------------------------------------------------------------- main

def print_ratios(ratios: dict):
    for name, value in ratios.items():
        print(f"    ratio {name:<26} {value:6.2f}x")


def main(argv=None):
    args = parse_args(argv)
    print_machine(args, choose_threads(args.threads))
    t0 = time.perf_counter()
    if args.only in (None, "a"):
        part_a(args)
    if args.only in (None, "b"):
        part_b(args)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
