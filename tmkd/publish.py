"""The committed reference run: results/reference/ and the README table generated from it."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .config import REPO, TMKDError
from .evidence import VERDICTS, claim_verdict, claim_words, paper_claim, verdict_kind
from .files import read_json, replace_dir, write_json_atomic, write_text_atomic
from .method import METHOD_LABELS, METHOD_ORDER, VARIANT_ORDER
from .report import collapsed_count, comparison_table, per_seed, save_table, to_markdown
from .rundir import read_metrics
from .takeaways import power_sentences

REFERENCE = REPO / "results" / "reference"
README = REPO / "README.md"
TABLE_START, TABLE_END = "<!-- reference-table:start -->", "<!-- reference-table:end -->"
VERDICTS_START, VERDICTS_END = "<!-- reference-verdicts:start -->", "<!-- reference-verdicts:end -->"
FINDINGS_START, FINDINGS_END = "<!-- reference-findings:start -->", "<!-- reference-findings:end -->"
README_METHODS = METHOD_ORDER + tuple(m for m in VARIANT_ORDER if m != "mom_member")
# The paper's comparisons (A, B), named without a direction: the direction and size are the paper's own numbers,
# put into words by tmkd.evidence.claim_words beside each verdict.
CLAIMS = {("mo1", "no_kd"): "m-o-1 vs the no-KD student",
          ("mo1", "1o1"): "m-o-1 (all teachers) vs 1-o-1 (the best teacher)",
          ("mo1", "1avgo1"): "m-o-1 (a head per teacher) vs 1avg-o-1 (their average)",
          ("mom_avg", "mo1"): "m-o-m (N students) vs m-o-1 (one student)",
          ("tmkd", "mo1"): "TMKD (two stages) vs m-o-1 (stage 2 alone)",
          ("tmkd", "mo1_matched"): "TMKD vs m-o-1 trained for as many examples (the paper has no such control)",
          ("tmkd", "tkd"): "TMKD vs TKD (one teacher in both stages); the paper's TMKD row compared is TMKD_base, "
                           "whose 4M-pair stage 1 is the smaller of its two corpora, as ours is"}
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
                    write_json_atomic(tmp / folder / f.name, clean_notebook(read_json(f), run))
                else:
                    shutil.copy2(f, tmp / folder / f.name)
    save_table(tmp, "chapter_times", times)
    replace_dir(tmp, dest)
    return dest


def without_widget_state(nb: dict) -> dict:
    """An executed notebook without its saved widget state: about 1 MB of progress-bar models per chapter that
    no viewer renders once the kernel is gone; the cells' text and figures are kept."""
    return dict(nb, metadata={k: v for k, v in nb.get("metadata", {}).items() if k != "widgets"})


PROGRESS = re.compile(r"(\d+%\|)|(it/s\])|(s/it\])|(\d+/\d+ \[\d)")
NOISE = re.compile(r"(Warning|warnings\.warn|warn\(|^\s*_validate\()")


def clean_notebook(nb: dict, run) -> dict:
    """An executed chapter as the reference publishes it: no widget state, no frozen progress bars (the live bars
    a reader saw while it ran), no library warnings, and no machine-specific paths (the run directory reads RUN_DIR,
    the repository's folder '.', its parent '..'). The parameters appear once: papermill's injected cell (the values
    the run used, its run directory relative to the repository when inside it) replaces the chapter's defaults.
    Cells, results and figures are kept."""
    nb = without_widget_state(nb)
    run = Path(run).resolve()
    repo = [(str(REPO.resolve()) + "/", ""), (str(REPO.resolve()), "."), (str(REPO.resolve().parent) + "/", "../")]
    swaps = [(str(run), "RUN_DIR")] + repo

    def unpath(text: str, order=swaps) -> str:
        for old, new in order:
            text = text.replace(old, new)
        return text
    tags = [c.get("metadata", {}).get("tags", []) for c in nb.get("cells", [])]
    injected = any("injected-parameters" in t for t in tags)

    def lines(text):
        return "".join(text) if isinstance(text, list) else text
    cells = []
    for c, tag in zip(nb.get("cells", []), tags):
        if injected and "parameters" in tag:
            continue                         # the defaults; the injected cell below holds what ran
        c = dict(c, source=unpath(lines(c.get("source", "")), repo + swaps if "injected-parameters" in tag else swaps))
        outputs = []
        for o in c.get("outputs", []):
            o = dict(o)
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                continue                     # a progress widget: without its kernel it shows only a frozen bar
            if "<progress" in lines(o.get("data", {}).get("text/html", "")):
                continue                     # the Trainer's live progress and loss log (the curves are in figures)
            if o.get("output_type") == "stream":
                kept = [line for line in lines(o.get("text", "")).replace("\r", "\n").split("\n")
                        if line.strip() and not PROGRESS.search(line) and not NOISE.search(line)]
                if not kept:
                    continue
                o["text"] = unpath("\n".join(kept) + "\n")
            for key in ("data",):
                if key in o:
                    o[key] = {k: (unpath(lines(v)) if k.startswith("text/") else v) for k, v in o[key].items()}
            outputs.append(o)
        if c.get("cell_type") == "code":
            c["outputs"] = outputs
        cells.append(c)
    return dict(nb, cells=cells)


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
    """The README's comparison table: this run's dev accuracy (mean ± sd over seeds where there are several) next
    to the paper's, params and speed. Built from `reference`/metrics.csv and speed.csv only."""
    import pandas as pd
    reference = Path(reference or REFERENCE)
    metrics = read_metrics(reference)
    speed_file = reference / "speed.csv"
    speed = pd.read_csv(speed_file, keep_default_na=False) if speed_file.exists() else None
    table = comparison_table(metrics, speed, README_METHODS)
    spread = per_seed(metrics, README_METHODS).groupby(["method", "task"])["accuracy"].agg(["std", "count"])
    tasks = [t for t in ("qnli", "rte", "mnli", "snli") if t in table.columns]
    out = pd.DataFrame(index=[METHOD_LABELS.get(m, m) for m in table.index])
    out.index.name = "method"

    def cell(method, task):
        mean = table.loc[method, task]
        if mean != mean:
            return None
        text = f"{mean:.2f}"
        if (method, task) in spread.index and spread.loc[(method, task), "count"] > 1:
            text += f" ± {spread.loc[(method, task), 'std']:.2f}"
        n_bad = collapsed_count(metrics, method, task)
        return text + (f" ({n_bad} collapsed)" if n_bad else "")
    for t in tasks:
        out[f"{t.upper()} (this run)"] = [cell(m, t) for m in table.index]
        out[f"{t.upper()} (paper)"] = table[f"{t} (paper)"].to_numpy()
    out["params (M)"] = table["params_M"].to_numpy()
    if "examples_per_s" in table.columns:
        out["examples/s"] = table["examples_per_s"].to_numpy()
    return to_markdown(out.astype(object).where(out.notna(), None))


def reference_intervals(reference=None):
    """Every interval of the reference run (chapters 04 and 06): tables/intervals.csv."""
    import pandas as pd
    path = Path(reference or REFERENCE) / "tables" / "intervals.csv"
    if not path.exists():
        raise TMKDError(f"{path} is missing: run chapter 08 (results) before publishing")
    return pd.read_csv(path, index_col=0, keep_default_na=False)


def verdict_rows(d):
    """The reference intervals with the paper's claim in words, its resolution and the verdict. A reference made before
    the two-level bootstrap (no `claim` column) keeps its intervals (dev examples resampled, seeds averaged), and its
    verdicts are re-read from them in the paper's direction and size; it has no detectable difference."""
    d = d.copy()
    if "claim" in d.columns:
        return d
    claims, verdicts, resolutions = [], [], []
    for r in d.to_dict("records"):
        paper = paper_claim(r["a"], r["b"], r["task"])
        la, lb = METHOD_LABELS.get(r["a"], r["a"]), METHOD_LABELS.get(r["b"], r["b"])
        claims.append(claim_words(la, lb, r["task"], paper["paper_difference"], paper["resolution"]))
        interval = {k: float(r[k]) for k in ("difference", "low", "high")}
        verdicts.append(claim_verdict(interval, paper["paper_difference"], paper["resolution"]))
        resolutions.append(paper["resolution"])
    d["claim"], d["verdict"], d["paper_resolution"], d["detectable"] = claims, verdicts, resolutions, ""
    return d


def readme_verdicts(reference=None) -> str:
    """The README's verdict on each of the paper's claims, generated from the reference run's intervals: per claim
    and task, the paper's claim in its own direction and size, this run's difference with its 95 % interval and the
    smallest difference it could detect, and the verdict (tmkd.evidence.claim_verdict)."""
    raw = reference_intervals(reference)
    legacy = "claim" not in raw.columns
    d = verdict_rows(raw)
    seeds = sorted(set(d["seeds"].astype(int)))          # seeds per arm: one number when every arm has them all
    counts = d["verdict"].map(verdict_kind).value_counts()
    how = ("paired bootstrap 95 % interval over dev examples, seeds averaged (this reference predates the two-level "
           "bootstrap over seeds and examples; the next reference run replaces it)" if legacy else
           "two-level paired bootstrap 95 % interval (seeds and dev examples resampled together)")
    lines = [f"Over {len(d)} comparisons ({', '.join(f'{counts[v]} {v}' for v in VERDICTS if v in counts)}); "
             f"differences in dev accuracy points, mean over {' or '.join(map(str, seeds))} seeds, {how}. "
             "*Reproduced*: the interval excludes 0 on the paper's side; *opposite*: on the other side; *smaller "
             "than the paper's*: it holds 0 but not the paper's gap; *inconclusive*: it holds both; a paper gap "
             "below what its single run can show is a claim of no difference (*equivalent* within the margin, "
             "else *inconclusive*).", ""]
    for (a, b), title in CLAIMS.items():
        rows = d[(d["a"] == a) & (d["b"] == b)]
        if not len(rows):
            continue
        parts = []
        for r in rows.itertuples():
            task = r.task.upper() + ("" if r.split == "validation" else f" {r.split.replace('validation_', '')}")
            detect = "" if r.detectable in ("", None) else f", detectable {float(r.detectable):.2f}"
            parts.append(f"{task}: {r.claim}; here {float(r.difference):+.2f} [{float(r.low):+.2f}, "
                         f"{float(r.high):+.2f}]{detect}: **{r.verdict}**")
        lines.append(f"- {title}. " + "; ".join(parts) + ".")
    power = power_sentences(d[d["verdict"].map(verdict_kind) == "inconclusive"])
    if power:
        lines += ["", "What an undecided claim of the paper's size would need here, from the measured disagreement "
                  "between its arms:", ""] + [f"- {line}" for line in power]
    return "\n".join(lines) + "\n"


def readme_findings(reference=None) -> str:
    """The README's first-screen summary, five lines generated from the reference verdicts: the count, what this run
    reproduces, what it finds opposite, the compute-matched control, and what it cannot decide."""
    raw = reference_intervals(reference)
    d = verdict_rows(raw)
    kind = d["verdict"].map(verdict_kind)
    counts = kind.value_counts()
    legacy = "" if "claim" in raw.columns else (" This reference predates the two-level bootstrap: its intervals "
                                                 "cover dev examples, not seeds.")

    def listed(rows, named: bool = True) -> str:
        return "; ".join(f"{r.task.upper()}" + (f", {CLAIMS[(r.a, r.b)].split(';')[0]}" if named else "")
                         + f": {float(r.difference):+.2f} [{float(r.low):+.2f}, {float(r.high):+.2f}]"
                         for r in rows.itertuples()) or "none"
    matched = d[(d["a"] == "tmkd") & (d["b"] == "mo1_matched")]
    lines = [f"- {len(d)} comparisons of the paper's claims: "
             + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts) + f" (points of dev accuracy, 95 %).{legacy}",
             f"- Reproduced: {listed(d[kind == 'reproduced'])}.",
             f"- Opposite to the paper: {listed(d[kind == 'opposite'])}.",
             f"- TMKD minus m-o-1 trained for as many examples (a control the paper lacks): {listed(matched, False)}.",
             f"- Inconclusive at this run's size: {int((kind == 'inconclusive').sum())} comparisons (their intervals "
             "hold both 0 and the paper's gap; each row says the smallest difference it could detect)."]
    return "\n".join(lines) + "\n"


def _block(text: str, start: str, end: str, where) -> str:
    if start not in text or end not in text:
        raise TMKDError(f"{where} has no {start} ... {end} block for the reference results")
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def readme_findings_block(readme=None) -> str:
    return _block(Path(readme or README).read_text(encoding="utf-8"), FINDINGS_START, FINDINGS_END, readme or README)


def readme_verdicts_block(readme=None) -> str:
    return _block(Path(readme or README).read_text(encoding="utf-8"), VERDICTS_START, VERDICTS_END, readme or README)


def readme_block(readme=None) -> str:
    """The text between the reference-table markers of the README."""
    return _block(Path(readme or README).read_text(encoding="utf-8"), TABLE_START, TABLE_END, readme or README)


def update_readme(reference=None, readme=None) -> Path:
    """Rewrite the README's reference table and, where the README has its markers, the verdicts on the paper's
    claims, from `reference` (the rest of the README is kept)."""
    readme = Path(readme or README)
    readme_block(readme)                           # refuses a README without the table markers
    text = readme.read_text(encoding="utf-8")
    blocks = [(TABLE_START, TABLE_END, readme_table(reference))]
    if VERDICTS_START in text:
        blocks.append((VERDICTS_START, VERDICTS_END, readme_verdicts(reference)))
    if FINDINGS_START in text:
        blocks.append((FINDINGS_START, FINDINGS_END, readme_findings(reference)))
    for start, end, body in blocks:
        head, rest = text.split(start, 1)
        text = f"{head}{start}\n{body}{end}{rest.split(end, 1)[1]}"
    return write_text_atomic(readme, text)
