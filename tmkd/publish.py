"""The committed reference run: results/reference/ and the README table generated from it."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .config import REPO, TMKDError
from .report import METHOD_LABELS, comparison_table, save_table, to_markdown
from .rundir import read_json, read_metrics, replace_dir, write_json_atomic, write_text_atomic

REFERENCE = REPO / "results" / "reference"
README = REPO / "README.md"
TABLE_START, TABLE_END = "<!-- reference-table:start -->", "<!-- reference-table:end -->"
REFERENCE_CONTENT = {".": (".csv", ".json"), "tables": (".csv", ".md"), "figures": (".png",),
                     "executed": (".ipynb",)}

def export_reference(run, dest=None) -> Path:
    """Copy a finished run's results to `dest` (default results/reference): metrics.csv, speed.csv, run.json,
    tables, figures and executed notebooks. No model, checkpoint, logit or dataset file is copied.
    The copy is assembled in a temporary folder and renamed into place."""
    run, dest = Path(run), Path(dest or REFERENCE)
    if not (run / "metrics.csv").exists():
        raise TMKDError(f"{run} has no metrics.csv: run the chain to the end before exporting it")
    times = chapter_times(run)                     # refuses a run without executed chapters before writing
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for folder, suffixes in REFERENCE_CONTENT.items():
        for f in sorted((run / folder).glob("*")):
            if f.is_file() and f.suffix in suffixes and not f.name.startswith("."):
                (tmp / folder).mkdir(parents=True, exist_ok=True)
                if f.suffix == ".ipynb":
                    write_json_atomic(tmp / folder / f.name, without_widget_state(read_json(f)))
                else:
                    shutil.copy2(f, tmp / folder / f.name)
    save_table(tmp, "chapter_times", times)
    replace_dir(tmp, dest)
    return dest


def without_widget_state(nb: dict) -> dict:
    """An executed notebook without its saved widget state: about 1 MB of progress-bar models per chapter that
    no viewer renders once the kernel is gone; the cells' text and figures are kept."""
    return dict(nb, metadata={k: v for k, v in nb.get("metadata", {}).items() if k != "widgets"})


def chapter_times(run):
    """Wall time of each executed chapter (papermill's own record in the executed notebook) and the total."""
    import pandas as pd
    seconds = {}
    for nb in sorted((Path(run) / "executed").glob("[0-9][0-9]_*.ipynb")):
        duration = (read_json(nb) or {}).get("metadata", {}).get("papermill", {}).get("duration")
        if duration is not None:
            seconds[nb.stem] = float(duration)
    if not seconds:
        raise TMKDError(f"{run}/executed holds no executed chapter: run the chain before exporting it")
    seconds["total"] = sum(seconds.values())
    minutes = (pd.Series(seconds, name="minutes") / 60).round(1)
    return minutes.rename_axis("chapter").to_frame()


def readme_table(reference=None) -> str:
    """The README's comparison table: this run's dev accuracy next to the paper's, params and speed.
    Built from `reference`/metrics.csv and speed.csv only."""
    import pandas as pd
    reference = Path(reference or REFERENCE)
    metrics = read_metrics(reference)
    speed_file = reference / "speed.csv"
    speed = pd.read_csv(speed_file, keep_default_na=False) if speed_file.exists() else None
    table = comparison_table(metrics, speed)
    tasks = [t for t in ("qnli", "rte", "mnli", "snli") if t in table.columns]
    out = pd.DataFrame(index=[METHOD_LABELS.get(m, m) for m in table.index])
    out.index.name = "method"
    for t in tasks:
        out[f"{t.upper()} (this run)"] = table[t].to_numpy()
        out[f"{t.upper()} (paper)"] = table[f"{t} (paper)"].to_numpy()
    out["params (M)"] = table["params_M"].to_numpy()
    if "examples_per_s" in table.columns:
        out["examples/s"] = table["examples_per_s"].to_numpy()
    return to_markdown(out.astype(object).where(out.notna(), None))


def readme_block(readme=None) -> str:
    """The text between the reference-table markers of the README."""
    text = Path(readme or README).read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise TMKDError(f"{readme or README} has no {TABLE_START} ... {TABLE_END} block for the reference table")
    return text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip("\n") + "\n"


def update_readme(reference=None, readme=None) -> Path:
    """Rewrite the README's reference table from `reference`/metrics.csv (the rest of the README is kept)."""
    readme = Path(readme or README)
    readme_block(readme)                           # refuses a README without the markers
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    return write_text_atomic(readme, f"{head}{TABLE_START}\n{readme_table(reference)}{TABLE_END}{tail}")
