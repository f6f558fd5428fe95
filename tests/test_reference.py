"""The README's results table is the committed reference run's metrics.csv, so the two never drift."""
import pandas as pd
import pytest

import helpers
from conftest import REPO

REFERENCE = REPO / "results" / "reference"


def readme_cells():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = helpers.README_TABLE
    lines = [l for l in text.split(start, 1)[1].split(end, 1)[0].strip().splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:]]
    return {(r[0], col): cell for r in rows for col, cell in zip(header[1:], r[1:])}


def test_readme_table_equals_the_reference_metrics():
    metrics = helpers.read_metrics(REFERENCE)
    assert len(metrics) > 0, "results/reference/metrics.csv is missing"
    expected = helpers.method_table(metrics)
    cells = readme_cells()
    checked = 0
    for method in expected.index:
        for task in expected.columns:
            value = expected.loc[method, task]
            if pd.notna(value):
                assert cells[(method, task)] == f"{value:.2f}", (method, task)
                checked += 1
    assert checked >= 10
    assert {m for m, _ in cells} == set(expected.index)


def test_reference_holds_results_not_checkpoints():
    files = [p for p in REFERENCE.rglob("*") if p.is_file()]
    assert {"metrics.csv", "speed.csv"} <= {p.name for p in files}
    assert len(list((REFERENCE / "executed").glob("*.ipynb"))) == 8
    assert not [p for p in files if p.suffix in (".safetensors", ".pt", ".bin", ".npz")]
    assert sum(p.stat().st_size for p in files) < 20e6
    assert all(p.stat().st_size < 5e6 for p in files)
