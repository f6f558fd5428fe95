"""Chapter 01's estimate against the time the chain really took, for run directories made by run_chain.py.

    python benchmarks/bench_estimate.py results/smoke
    python benchmarks/bench_estimate.py results/reference --data-dir ../shared/data/glue --set dev_size=2000

For each run directory: the configuration it ran with (its chain.json, then --data-dir and --set: the reference was
run on a 2,000-pair dev set, which `dev_size=2000` gives again from today's files), the plan's workload, the rates
measured here and now (run it on an idle machine, as the chain was), the estimate, and the chapters' measured
seconds (papermill's durations in the executed copies). Prints the ratio estimate / measured (target 0.67-1.5).
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
from tmkd.config import coerce, make_config  # noqa: E402
from tmkd.estimate import estimate  # noqa: E402


def measured_seconds(run: Path) -> dict:
    """Seconds of each executed chapter (papermill's record)."""
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
