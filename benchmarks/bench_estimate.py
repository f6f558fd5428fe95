"""Chapter 01's estimate against the time the chain really took, for run directories made by run_chain.py.

    python benchmarks/bench_estimate.py results/smoke
    python benchmarks/bench_estimate.py results/reference results/offline-mini

For each run directory: the configuration it ran with (its chain.json, then --data-dir and --set), the plan's
workload, the rates measured here and now (run it on an idle machine, as the chain was), the estimate, and the
chapters' measured seconds (measured_seconds). Prints the ratio estimate / measured (target 0.67-1.5).
A benchmark, not a test: it asserts nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tmkd.core.config import coerce, make_config  # noqa: E402
from tmkd.chain.estimate import estimate  # noqa: E402


def measured_seconds(run: Path) -> dict:
    """Seconds of each executed chapter: a published reference's tables/chapter_times.csv (the run's own minutes,
    kept when chapters were executed again from its cache), else papermill's record in the executed copies."""
    table = run / "tables" / "chapter_times.csv"
    if table.exists():
        import pandas as pd
        minutes = pd.read_csv(table, index_col="chapter")["minutes"].drop("total", errors="ignore")
        return {chapter: 60 * float(m) for chapter, m in minutes.items()}
    out = {}
    for nb in sorted((run / "executed").glob("[0-9][0-9]_*.ipynb")):
        duration = json.loads(nb.read_text()).get("metadata", {}).get("papermill", {}).get("duration")
        if duration is not None:
            out[nb.stem] = float(duration)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--data-dir", default="")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    extra = {k: coerce(k, v) for k, v in (s.split("=", 1) for s in args.settings)}
    print("| run | profile | models | estimate (s) | measured (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        chain = json.loads((run / "chain.json").read_text())
        cfg = make_config(chain["profile"], {**chain.get("overrides", {}), **extra},
                          data_dir=args.data_dir or chain.get("data_dir", ""), run_dir=f"/tmp/bench-estimate-{run.name}")
        with contextlib.redirect_stdout(io.StringIO()):
            cost = estimate(cfg)
        seconds = measured_seconds(run)
        total = sum(seconds.values())
        est = cost["hours"] * 3600
        print(f"| {run} | {cfg.profile} | {cost['teachers']} teachers, {cost['students']} students | {est:,.0f} | "
              f"{total:,.0f} | {est / total:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
