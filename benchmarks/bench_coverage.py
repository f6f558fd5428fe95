"""Does a comparison's 95 % interval hold 95 %? Coverage of tmkd.stats.intervals.paired_interval, simulated at 2, 3 and 5
seeds (or any --seed-counts), beside the percentile two-level bootstrap it replaced (--before).

Each simulated run draws a dev set of `--examples` examples from a population and trains (draws) two students per
seed whose accuracies, averaged over the population, differ by a known amount: the true difference, with a
seed-to-seed sd on that difference. The students agree on a set share of the examples, as two students of one task
do: on each example a student answers from the example's own difficulty (shared by both arms and every seed) with
probability rho, from an arm-specific difficulty (shared by that arm's seeds: the dev sample's arm-by-example part)
with probability (1 - rho) / 2, and from fresh chance otherwise; each answer is right with the arm's accuracy of that
seed. Coverage is the share of runs whose interval holds the true difference (target 93-97 %; an interval is
`nominal` when its coverage is within the binomial noise of 95 % for that many runs).

    python benchmarks/bench_coverage.py               # the new interval: 108 cases x 300 runs, a few minutes
    python benchmarks/bench_coverage.py --before      # and the old percentile bootstrap on a part of the grid
    python benchmarks/bench_coverage.py --runs 1000   # tighter estimates
    python benchmarks/bench_coverage.py --seed-counts 7   # another seed count (the offline reference trains 7)

A benchmark, not a test: tests/test_coverage.py keeps the 3-seed case honest."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmkd.stats.intervals import paired_interval  # noqa: E402

BASE_ACCURACY = 0.70


def simulate(rng, difference: float, seed_sd: float, seeds: int, agreement: float, examples: int = 2000):
    """One run: (correct_a, correct_b), (seeds, examples) booleans; `difference` and `seed_sd` in points;
    `agreement`: the share of examples on which the two arms answer alike when their accuracies are equal."""
    same = BASE_ACCURACY ** 2 + (1 - BASE_ACCURACY) ** 2            # two independent answers agree this often
    rho = np.sqrt(max(agreement - same, 0.0) / (1 - same))
    shared, own_a, own_b = rng.random((3, examples))
    common = rng.normal(0, 1.0, seeds) / 100                         # a seed moves both arms alike
    acc_b = BASE_ACCURACY + common
    acc_a = acc_b + (difference + rng.normal(0, seed_sd, seeds)) / 100

    def arm(accuracy, own):
        which = rng.random((seeds, examples))
        latent = np.where(which < rho, shared, np.where(which < (1 + rho) / 2, own, rng.random((seeds, examples))))
        return latent < accuracy[:, None]
    return arm(acc_a, own_a), arm(acc_b, own_b)


def _counts(idx):
    """(m, k) draws of indices below k -> (m, k) how often each index was drawn, row by row."""
    m, k = idx.shape
    return np.bincount((idx + np.arange(m)[:, None] * k).ravel(), minlength=m * k).reshape(m, k)


def old_percentile_bootstrap(correct_a, correct_b, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """The interval the series published before issue 29 (tmkd/stats/evidence.py at 3dca3fe): seed rows and examples
    resampled together, the same example draw for every seed and both arms, the percentile interval."""
    diff = np.asarray(correct_a, float) - np.asarray(correct_b, float)
    n_seeds, n = diff.shape
    rng = np.random.default_rng(seed)
    seed_w = _counts(rng.integers(0, n_seeds, size=(n_boot, n_seeds))) / n_seeds
    both = (seed_w * (_counts(rng.integers(0, n, size=(n_boot, n))) @ diff.T / n)).sum(axis=1) * 100
    tail = (1 - level) / 2 * 100
    return tuple(np.percentile(both, [tail, 100 - tail]))


def new_interval(correct_a, correct_b):
    r = paired_interval(correct_a, correct_b)
    return r["low"], r["high"]


def coverage(method, rng, runs: int, difference: float, seed_sd: float, seeds: int, agreement: float,
             examples: int = 2000) -> tuple:
    """(share of runs whose interval holds the true difference, median width in points)."""
    held, widths = 0, []
    for _ in range(runs):
        low, high = method(*simulate(rng, difference, seed_sd, seeds, agreement, examples))
        held += low <= difference <= high
        widths.append(high - low)
    return held / runs, float(np.median(widths))


def table(method, rng, runs: int, grid, examples: int, seed_counts=(2, 3, 5)) -> str:
    """Markdown: one row per (true difference, seed sd, agreement), one column per seed count."""
    lines = ["| true difference | seed sd | agreement | " + " | ".join(f"{s} seeds" for s in seed_counts) + " |",
             "|---|---|---|" + "---|" * len(seed_counts)]
    print("\n".join(lines), flush=True)
    for difference, seed_sd, agreement in grid:
        cells = []
        for s in seed_counts:
            cov, width = coverage(method, rng, runs, difference, seed_sd, s, agreement, examples)
            cells.append(f"{100 * cov:.1f} % (width {width:.1f})")
        lines.append(f"| {difference:+g} | {seed_sd:g} | {agreement:.0%} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=300, help="simulated runs per case (default 300)")
    p.add_argument("--examples", type=int, default=2000, help="dev examples per run (default 2000)")
    p.add_argument("--before", action="store_true", help="also the old percentile bootstrap (slower: 24 cases)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seed-counts", type=lambda v: tuple(int(x) for x in v.split(",")), default=(2, 3, 5),
                   help="seeds per simulated run, comma-separated (default 2,3,5)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    noise = 1.96 * np.sqrt(0.95 * 0.05 / args.runs) * 100
    print(f"{args.runs} runs per case, {args.examples} dev examples; a coverage within 95 +- {noise:.1f} % is "
          "nominal at this many runs. Cells: coverage (median interval width, points).\n")
    grid = [(d, sd, agr) for d in (0.0, 2.0, -2.0) for sd in (0.0, 1.0, 2.0, 3.0) for agr in (0.7, 0.8, 0.9)]
    print("After (tmkd.stats.intervals: t on the seed level, normal on the dev sample's):")
    table(new_interval, rng, args.runs, grid, args.examples, args.seed_counts)
    if args.before:
        print("\nBefore (the percentile two-level bootstrap, 2,000 draws):")
        old = [(d, sd, agr) for d in (0.0, 2.0) for sd in (0.0, 2.0) for agr in (0.7, 0.9)]
        table(old_percentile_bootstrap, rng, args.runs, old, args.examples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
