"""GPU check: the smoke chain on CUDA, then teacher vs student examples/s in the chosen precision and in fp32.

    python benchmarks/gpu_check.py                 # about 5 minutes on one GPU
    python benchmarks/gpu_check.py --skip-chain    # the speed part only

It prints the device, its compute capability, the precision tmkd.training.trainer.precision() chooses for it (and what
torch.cuda.is_bf16_supported() claims), the smoke chain's wall time and results (accuracy above chance, speed
rows per device, teacher logits computed in fp32), then examples/s of a BERT-base-shaped teacher and a 3-layer
student (random weights, built from their configs: no download) in fp32 and in the chosen precision, for
inference and for a training step, and the ratios. It also prints the colab profile's estimate on this device.
A check, not a test: it asserts nothing but prints FAIL lines where a result is not what it should be.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import helpers  # noqa: E402
import tmkd.core.config  # noqa: E402
from tmkd.chain.estimate import _predict_rate, _train_rate, estimate, measure_rates  # noqa: E402
from tmkd.model.method import TMKDStudent, student_config  # noqa: E402
from tmkd.training.trainer import device_precision, precision  # noqa: E402


def environment():
    import transformers
    cap = torch.cuda.get_device_capability(0) if torch.cuda.is_available() else None
    print(f"device: {torch.cuda.get_device_name(0) if cap else 'cpu (no CUDA)'}; capability {cap}; "
          f"precision chosen: {precision(cap)}; torch.cuda.is_bf16_supported(): "
          f"{torch.cuda.is_bf16_supported() if cap else '-'}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {sys.version.split()[0]}")


def smoke_chain():
    run = Path(tempfile.mkdtemp()) / "run"
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(REPO / "run_chain.py"), "--profile", "smoke", "--run-dir", str(run)],
                          cwd=REPO, capture_output=True, text=True)
    print(f"smoke chain: exit {proc.returncode} in {time.time() - t0:.0f}s")
    print("  " + "\n  ".join(l for l in proc.stdout.splitlines() if l.startswith(("[", "chain"))))
    if proc.returncode:
        print("FAIL: smoke chain\n" + proc.stderr[-3000:])
        return
    m = helpers.read_metrics(run)
    main = m[m["sweep"] == ""]
    chance = main["task"].map(lambda t: 1 / len(tmkd.core.config.TASKS[t].labels))
    import pandas as pd
    path = run / "tables" / "teacher_quality.csv"
    quality = pd.read_csv(path) if path.exists() else None
    weak = set() if quality is None else {f"{r.task}/{r.teacher}" for r in quality.itertuples() if r.weak}
    low = main[(main["accuracy"].astype(float) <= chance + 0.2) & ~main["model"].isin(weak)]
    print(f"  metrics: {len(m)} rows; {len(low)} of {len(main)} main rows at most 20 points above chance "
          f"(teachers flagged weak on the held-out slice not counted: {sorted(weak) or 'none'})")
    if len(low):
        print("FAIL: near chance:\n" + low[["task", "method", "model", "accuracy"]].to_string())
    import pandas as pd
    speed = pd.read_csv(run / "speed.csv")
    print("  speed.csv by device:\n" + speed[["model", "device", "examples_per_s"]].to_string(index=False))
    meta = helpers.read_json(next(run.glob("logits/qnli/*/train.json")))
    print(f"  teacher logits: {meta['teacher']} cached from {meta['n']} examples (fp32: predict_logits(mixed=False))")


def throughput(batch: int, seq: int):
    from transformers import BertConfig, BertForSequenceClassification
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = BertConfig()                                   # bert-base-uncased's shape
    teacher = BertForSequenceClassification(BertConfig(num_labels=2)).to(dev)
    student = TMKDStudent(student_config(shape.to_dict(), 3, ("a", "b"), 3)).to(dev)
    ids = torch.randint(5, shape.vocab_size, (batch, seq), device=dev)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    chosen = device_precision()
    rows = {}
    for name, model in (("teacher (12 layers)", teacher), ("student (3 layers)", student)):
        for prec in dict.fromkeys(("fp32", chosen)):
            rows[(name, prec)] = (_predict_rate(model, inputs, prec), _train_rate(model, inputs, prec))
    print(f"examples/s at batch {batch} x {seq} tokens (inference | training step):")
    for (name, prec), (inf, train) in rows.items():
        print(f"  {name:20s} {prec:5s} {inf:10.0f} | {train:8.0f}")
    for prec in dict.fromkeys(("fp32", chosen)):
        t, s = rows[("teacher (12 layers)", prec)], rows[("student (3 layers)", prec)]
        print(f"  student/teacher {prec}: inference {s[0] / t[0]:.2f}x, training {s[1] / t[1]:.2f}x")
    if chosen != "fp32":
        for name in ("teacher (12 layers)", "student (3 layers)"):
            a, b = rows[(name, chosen)], rows[(name, "fp32")]
            print(f"  {chosen}/fp32 {name}: inference {a[0] / b[0]:.2f}x, training {a[1] / b[1]:.2f}x")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-chain", action="store_true")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seq", type=int, default=128)
    args = p.parse_args()
    environment()
    if not args.skip_chain:
        smoke_chain()
    throughput(args.batch, args.seq)
    cfg = tmkd.core.config.make_config("colab", run_dir=tempfile.mkdtemp())
    estimate(cfg, measure_rates(cfg))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
