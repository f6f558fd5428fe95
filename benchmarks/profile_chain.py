"""Where a chain's time goes, read from the run directory's own records (nothing is re-run).

    python benchmarks/profile_chain.py RUN_DIR              # e.g. results/smoke, or results/reference
    python benchmarks/profile_chain.py RUN_DIR --markdown   # the table as markdown (benchmarks/README.md)

Per chapter, from the executed notebooks (papermill's per-cell start and end): seconds in kernel start (the
chapter's wall time not spent in any cell), imports, data preparation, training, prediction (teacher logits),
evaluation, timing (chapter 07) and report (tables, figures, sentences); each code cell is put in one phase by the
helpers it calls. Per step kind, from each finished model's Trainer log (train_runtime): teachers, one-stage
students, stage-1 and stage-2 students, and how many of each. A benchmark, not a test: it asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tmkd.reporting.report import to_markdown  # noqa: E402

# The first phase whose pattern a cell's code matches (order matters: a cell that trains and plots is training).
PHASES = (
    ("imports", r"^\s*(from helpers import|import |REPO_URL)"),
    ("start", r"start_chapter\(|^PROFILE ="),
    ("training", r"train_teachers|run_method|run_sweep|pooling_check|run_stage1|run_stage2|alpha_sweep"),
    ("prediction", r"cache_all_logits"),
    ("evaluation", r"evaluate_teachers|compare_methods|int8_accuracy|teacher_quality|select_accuracies|best_teacher"),
    ("timing", r"measure_speed"),
    ("data", r"task_data|peek|first_batch|fresh_student|stage1_overlap|with_teacher_logits"),
)
COLUMNS = ["kernel start", "imports", "start", "data", "training", "prediction", "evaluation", "timing", "report"]


def phase(code: str) -> str:
    for name, pattern in PHASES:
        if re.search(pattern, code, re.M):
            return name
    return "report"


def chapter_profile(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    row = dict.fromkeys(COLUMNS, 0.0)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            row[phase("".join(cell["source"]))] += cell["metadata"].get("papermill", {}).get("duration") or 0.0
    total = nb["metadata"].get("papermill", {}).get("duration") or sum(row.values())
    row["kernel start"] = max(0.0, total - sum(row.values()))
    row["total"] = total
    return row


def step_kinds(run: Path) -> pd.DataFrame:
    """Trainer seconds per kind of training step, from final/log_history.json of every finished model."""
    rows = []
    for log in run.glob("*/*/*/final/log_history.json"):
        kind = log.parts[-5]
        name = log.parts[-3]
        if kind == "students":
            kind = "stage-1 student" if "stage1" in name else "stage-2 student" if "stage2" in name or \
                name.startswith(("tmkd-", "tkd-")) else "one-stage student"
        else:
            kind = kind.rstrip("s")
        runtime = next((r["train_runtime"] for r in json.loads(log.read_text()) if "train_runtime" in r), None)
        if runtime is not None:
            rows.append({"kind": kind, "seconds": float(runtime)})
    if not rows:
        return pd.DataFrame(columns=["steps", "train seconds", "seconds per step"])
    d = pd.DataFrame(rows).groupby("kind")["seconds"].agg(["count", "sum"])
    d.columns = ["steps", "train seconds"]
    d["seconds per step"] = d["train seconds"] / d["steps"]
    return d.round(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    chapters = sorted((args.run_dir / "executed").glob("[0-9][0-9]_*.ipynb"))
    if not chapters:
        raise SystemExit(f"{args.run_dir}/executed holds no executed chapters: run the chain first")
    table = pd.DataFrame({p.stem: chapter_profile(p) for p in chapters}).T[COLUMNS + ["total"]]
    table.loc["chain"] = table.sum()
    table.index.name = "chapter"
    table = table.round(0).astype(int)
    show = to_markdown if args.markdown else (lambda d: d.to_string())
    print(f"seconds per chapter and phase, {args.run_dir}")
    print(show(table))
    kinds = step_kinds(args.run_dir)
    if len(kinds):
        print("\nTrainer seconds per step kind")
        print(show(kinds))


if __name__ == "__main__":
    main()
