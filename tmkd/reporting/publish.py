"""The committed reference run: results/reference/ and the README table generated from it."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from tmkd.core.config import REPO, TMKDError, make_config
from tmkd.stats.evidence import (OWN_ANSWERS, PAPER_VERDICTS, adjust_family, comparison_row, detectable_text,
                                 family_size, group_of, seeds_label)
from tmkd.training.experiments import configured_models
from tmkd.core.files import atomic, read_json, write_json_atomic, write_text_atomic
from tmkd.stats.intervals import interval_from_seeds
from tmkd.model.methods import comparison, comparisons, label, method, table_order
from tmkd.core.numbers import TABLE4, pct
from tmkd.reporting.plain import accuracies_sentence, difference_sentence, headline_words, kept_last_sentence
from tmkd.reporting.report import (collapsed_count, comparison_table, first_seed, main_rows, per_seed, save_table,
                                   to_markdown)
from tmkd.training.rundir import read_metrics
from tmkd.reporting.takeaways import GROUPS, counted, pair_name, power_sentences, where

REFERENCE = REPO / "results" / "reference"
README = REPO / "README.md"
TABLE_START, TABLE_END = "<!-- reference-table:start -->", "<!-- reference-table:end -->"
VERDICTS_START, VERDICTS_END = "<!-- reference-verdicts:start -->", "<!-- reference-verdicts:end -->"
FINDINGS_START, FINDINGS_END = "<!-- reference-findings:start -->", "<!-- reference-findings:end -->"
# The README's table: Table 4's rows, then the variants' (not m-o-m's members, which m-o-m's row stands for). The
# comparisons are named by their records (tmkd.model.methods.Comparison.claim), without a direction: the direction
# and size are the paper's own numbers, put into words by tmkd.stats.evidence.claim_words beside each verdict.
README_METHODS = table_order("main") + tuple(m for m in table_order("variant") if method(m).trained)
REFERENCE_CONTENT = {".": (".csv", ".json"), "tables": (".csv", ".md"), "figures": (".png",),
                     "executed": (".ipynb",)}

def export_reference(run, dest=None, times=None) -> Path:
    """Copy a finished run's results to `dest` (default results/reference): metrics.csv, speed.csv, run.json,
    tables, figures and executed notebooks. No model, checkpoint, logit or dataset file is copied.
    The copy is assembled in a temporary folder and renamed into place. tables/chapter_times is each chapter's wall
    time from its executed copy; `times` (that table, from an earlier export of the same run) keeps the run's own
    times when some chapters were executed again from its cache (they train nothing, so their new times are not
    the run's)."""
    run, dest = Path(run), Path(dest or REFERENCE)
    if not (run / "metrics.csv").exists():
        raise TMKDError(f"{run} has no metrics.csv: run the chain to the end before exporting it")
    found = chapter_times(run)                     # refuses a run without executed chapters before writing
    if times is not None and set(times.index) != set(found.index):
        raise TMKDError(f"the times given hold chapters {sorted(times.index)}, the run {sorted(found.index)}")
    times = found if times is None else times
    models = configured_models(run_config(run))
    with atomic(dest, folder=True) as tmp:
        for folder, suffixes in REFERENCE_CONTENT.items():
            for f in sorted((run / folder).glob("*")):
                if f.is_file() and f.suffix in suffixes and not f.name.startswith("."):
                    (tmp / folder).mkdir(parents=True, exist_ok=True)
                    if f.suffix == ".ipynb":
                        write_json_atomic(tmp / folder / f.name, clean_notebook(read_json(f), run))
                    elif f.suffix == ".json":                  # chain.json, run.json: their data folder, relative
                        write_json_atomic(tmp / folder / f.name, relative_paths(read_json(f), path_swaps(run)))
                    else:
                        shutil.copy2(f, tmp / folder / f.name)
        save_table(tmp, "chapter_times", times)
        write_text_atomic(tmp / "metrics.csv", configured_rows(run / "metrics.csv", models))
    return dest


def run_config(run):
    """The configuration the chain last ran with in `run` (its chain.json: profile, data folder, overrides)."""
    chain = read_json(Path(run) / "chain.json")
    if chain is None:
        raise TMKDError(f"{run} has no chain.json: publish a run made by run_chain.py (it records its settings)")
    data = chain.get("data_dir") or ""
    if data and not Path(data).is_absolute():          # published relative to the repository ("../shared/...")
        data = os.path.normpath(REPO / data)
    return make_config(chain["profile"], chain.get("overrides") or {}, run_dir=str(run), data_dir=data)


def configured_rows(path, models) -> str:
    """metrics.csv as published: its main rows limited to the configuration's models (`models`, from
    tmkd.training.experiments.configured_models), so that a student an exercise trained with other settings in the run
    directory never reaches the README; sweep rows kept (each sweep names its knob). The kept rows' text is as
    the run wrote it."""
    import pandas as pd
    m = pd.read_csv(path, dtype=str, keep_default_na=False)
    return m[(m["sweep"] != "") | m["model"].isin(set(models))].to_csv(index=False)


def without_widget_state(nb: dict) -> dict:
    """An executed notebook without its saved widget state: about 1 MB of progress-bar models per chapter that
    no viewer renders once the kernel is gone; the cells' text and figures are kept."""
    return dict(nb, metadata={k: v for k, v in nb.get("metadata", {}).items() if k != "widgets"})


def path_swaps(run, as_parameter=False) -> list:
    """What a machine path becomes in a published file: the run directory RUN_DIR, the repository's folder
    itself '.' (a path inside it: relative), its parent '..' (the shared data: "../shared/data/glue"). A run made
    in another checkout of the series (a git worktree beside this one) is relative to its own checkout, as it ran.
    `as_parameter`: the injected RUN_DIR parameter, which reads as the run was started (relative to its checkout
    when inside one, so a reader can run it again) rather than as RUN_DIR. The swaps are applied most specific
    first whatever their order here (relative_paths), so the folders around the clone never change what wins."""
    run = Path(run).resolve()
    checkouts = list(dict.fromkeys([c for c in run.parents if (c / "run_chain.py").exists()][:1] + [REPO.resolve()]))
    inside = [c for c in checkouts if run.is_relative_to(c)]
    swaps = [(str(run), run.relative_to(inside[0]).as_posix() if as_parameter and inside else "RUN_DIR")]
    for repo in checkouts:
        swaps += [(str(repo) + "/", ""), (str(repo), ".")]
    return swaps + [(str(REPO.resolve().parent) + "/", "../")]


def relative_paths(obj, swaps):
    """Every string inside a JSON value with the machine's paths swapped (path_swaps): no absolute path of the
    developer's machine reaches a published file. At each place the longest path that matches wins (one regular
    expression, alternatives longest first), so a run directory beside the clone is RUN_DIR, never '../...'."""
    if isinstance(obj, dict):
        return {k: relative_paths(v, swaps) for k, v in obj.items()}
    if isinstance(obj, list):
        return [relative_paths(v, swaps) for v in obj]
    if isinstance(obj, str):
        table = dict(sorted(swaps, key=lambda s: -len(s[0])))
        pattern = re.compile("|".join(re.escape(old) for old in table))
        return pattern.sub(lambda m: table[m.group(0)], obj)
    return obj


# A published chapter says where its progress went: a reference made before issue 30 lacks this field.
PUBLISHED_MARK = {"progress": "in the run's executed/.<chapter>.progress.log, not in the chapter"}
PROGRESS = re.compile(r"(\d+%\|)|(it/s\])|(s/it\])|(\d+/\d+ \[\d)")
NOISE = re.compile(r"(Warning|warnings\.warn|warn\(|^\s*_validate\()")


def clean_notebook(nb: dict, run) -> dict:
    """An executed chapter as the reference publishes it: no widget state, no frozen progress bars (the live bars
    a reader saw while it ran), no library warnings, and no machine-specific paths (the run directory reads RUN_DIR,
    the repository's folder '.', its parent '..'). The parameters appear once: papermill's injected cell (the values
    the run used, its run directory relative to the repository when inside it) replaces the chapter's defaults.
    Cells, results and figures are kept."""
    nb = without_widget_state(nb)
    swaps, as_run = path_swaps(run), path_swaps(run, as_parameter=True)
    nb = dict(nb, metadata=relative_paths(nb.get("metadata", {}), swaps) | {"tmkd": PUBLISHED_MARK})
    tags = [c.get("metadata", {}).get("tags", []) for c in nb.get("cells", [])]
    injected = any("injected-parameters" in t for t in tags)

    def lines(text):
        return "".join(text) if isinstance(text, list) else text
    cells = []
    for c, tag in zip(nb.get("cells", []), tags):
        if injected and "parameters" in tag:
            continue                         # the defaults; the injected cell below holds what ran
        c = dict(c, source=relative_paths(lines(c.get("source", "")), as_run if "injected-parameters" in tag else swaps))
        outputs = []
        for o in c.get("outputs", []):
            o = dict(o)
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                continue                     # a progress widget: without its kernel it shows only a frozen bar
            if "<progress" in lines(o.get("data", {}).get("text/html", "")):
                continue                     # the Trainer's live progress and loss log (the curves are in figures)
            if o.get("output_type") == "stream":
                kept = [line for line in lines(o.get("text", "")).replace("\r", "\n").split("\n")
                        if not PROGRESS.search(line) and not NOISE.search(line)]
                text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")   # paragraphs kept, no empty runs
                if not text.strip():
                    continue
                o["text"] = relative_paths(text + "\n", swaps)
            for key in ("data",):
                if key in o:
                    o[key] = {k: (relative_paths(lines(v), swaps) if k.startswith("text/") else v) for k, v in o[key].items()}
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
    to the paper's, params and speed. Built from `reference`/metrics.csv (the configuration's models only:
    export_reference filters them) and speed.csv only."""
    import pandas as pd
    reference = Path(reference or REFERENCE)
    metrics = read_metrics(reference)
    speed_file = reference / "speed.csv"
    speed = pd.read_csv(speed_file, keep_default_na=False) if speed_file.exists() else None
    table = comparison_table(metrics, speed, README_METHODS)
    spread = per_seed(metrics, README_METHODS).groupby(["method", "task"])["accuracy"].agg(["std", "count"])
    tasks = [t for t in ("qnli", "rte", "mnli", "snli") if t in table.columns]
    out = pd.DataFrame(index=[label(m) for m in table.index])
    out.index.name = "method"

    def cell(method, task):
        mean = table.loc[method, task]
        if mean != mean:
            return None
        text = pct(mean, TABLE4)
        if (method, task) in spread.index and spread.loc[(method, task), "count"] > 1:
            text += f" ± {pct(spread.loc[(method, task), 'std'], TABLE4)}"
        n_bad = collapsed_count(metrics, method, task)
        return text + (f" ({n_bad} collapsed)" if n_bad else "")
    first = first_seed(metrics)
    for t in tasks:
        out[f"{t.upper()} (this run)"] = [cell(m, t) for m in table.index]
        out["seeds"] = table[f"{t} seeds"].to_numpy()
        out[f"at seed {first}"] = [pct(v, TABLE4) for v in table[f"{t} at seed {first}"]]
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


def verdict_rows(d, reference=None):
    """The reference's comparisons as chapter 08 writes them. A reference made before issue 29 (no `family` column:
    percentile-bootstrap intervals, no adjustment) is read again by legacy_rows."""
    import pandas as pd
    if "family" in d.columns:
        return d.copy()
    cfg = run_config(Path(reference or REFERENCE))
    rows, intervals = legacy_rows(d, read_metrics(Path(reference or REFERENCE)))
    tasks = list(dict.fromkeys(d["task"]))
    return pd.DataFrame(adjust_family(rows, intervals, family_size(tasks), cfg.equivalence_margin))


def legacy_rows(d, metrics) -> tuple:
    """A pre-issue-29 interval table read with this code, without the predictions it was made from: each row's
    per-seed differences from metrics.csv's per-seed accuracies (the seed level, t with S - 1 degrees of freedom),
    and the dev sample's level from the old two-level bootstrap's standard error (its `detectable` / 2.8) less that
    bootstrap's seed part (the per-seed differences' variance with divisor S, over S). What remains also holds some
    of the seed x example interaction, which the seed level holds already: these intervals are a little wider than
    the predictions would give (conservative). The old table's own intervals are not used. Returns (rows,
    intervals) for tmkd.stats.evidence.adjust_family."""
    main = main_rows(metrics)
    rows, intervals = [], []
    for r in d.to_dict("records"):
        acc = {m: main[(main["method"] == m) & (main["task"] == r["task"]) & (main["split"] == r["split"])]
               .groupby("seed")["accuracy"].mean() * 100 for m in (r["a"], r["b"])}
        per_seed = (acc[r["a"]] - acc[r["b"]]).dropna().to_numpy()
        seed_part = per_seed.var() / len(per_seed)
        se_examples = max((float(r["detectable"]) / 2.8) ** 2 - seed_part, 0.0) ** 0.5
        intervals.append(interval_from_seeds(per_seed, se_examples, int(r["examples"])))
        rows.append(comparison_row(r["task"], r["split"], r["a"], r["b"], intervals[-1]))
    return rows, intervals


LEGEND = ("Each row: A − B in dev accuracy points at matched seeds (seed s of A against seed s of B, stage 1 "
          "included), with an interval that carries both chances, the seeds' and the dev sample's "
          "([benchmarks/README.md](benchmarks/README.md)). A one-seed row borrows its seed level from the headline "
          "comparisons and reads no verdict. The paper's three headline claims are one family, adjusted together "
          "(Holm); the other rows are unadjusted 95 %. Chapter 04 explains each verdict word.")
LEGACY = ("This reference predates these intervals (issue 29): each is recomputed from the reference's per-seed "
          "accuracies and the dev-sample error of its old percentile bootstrap, a little wider than its predictions "
          "would give; a headline comparison it did not make counts in the family as not rejected.")


def _missing_primary(d) -> list:
    """The headline comparisons of the family that the table lacks, as 'TASK: A vs B'."""
    have = set(zip(d["task"], d["split"], d["a"], d["b"]))
    return [f"{where({'task': t, 'split': sp})} {pair_name({'a': a, 'b': b})}"
            for t, sp in dict.fromkeys(zip(d["task"], d["split"])) for a, b in comparisons(family="primary")
            if (t, sp, a, b) not in have]


def readme_verdicts(reference=None) -> str:
    """The README's verdicts as one table, generated from the reference run's intervals: the paper's headline claims
    first (Holm-adjusted), then its other claims (exploratory), then the series' own questions; per comparison its
    seeds, the paper's difference, this run's with its 95 % interval, the interval its verdict reads, the smallest
    difference it could detect, and the verdict (tmkd.stats.evidence)."""
    import pandas as pd
    raw = reference_intervals(reference)
    d = verdict_rows(raw, reference)
    rows = []
    for group, title in GROUPS:
        for r in (r for r in d.to_dict("records") if group_of(r) == group):
            p = r.get("paper_difference")
            rows.append({"comparison": f"{comparison(r['a'], r['b']).claim} ({where(r)})",
                         "claims": {"primary": "paper, headline", "exploratory": "paper, other",
                                    "own": "the series' own"}[group],
                         "seeds": seeds_label(r), "paper": "" if p is None or p == "" or p != p else f"{float(p):+.2f}",
                         "here (95 %)": f"{float(r['difference']):+.2f} [{float(r['low']):+.2f}, {float(r['high']):+.2f}]",
                         "verdict's interval": f"[{float(r['verdict_low']):+.2f}, {float(r['verdict_high']):+.2f}] "
                                               f"({100 * float(r['verdict_level']):.1f} %)",
                         "detectable": detectable_text(r), "verdict": f"**{r['verdict']}**"})
    lines = [LEGEND + ("" if "family" in raw.columns else " " + LEGACY), "",
             to_markdown(pd.DataFrame(rows), index=False).rstrip("\n")]
    power = power_sentences(d)
    if power:
        lines += ["", "What an undecided claim of the paper's size would need here:", ""] + [f"- {p}" for p in power]
    return "\n".join(lines) + "\n"


def readme_findings(reference=None) -> str:
    """The README's first-screen summary in short sentences, generated from the reference: the absolute accuracies
    (teachers, no KD, m-o-1, TMKD), each headline difference with its 95 % interval and seeds beside the paper's,
    the headline verdicts by kind; the paper's other claims and the series' own questions counted apart."""
    raw = reference_intervals(reference)
    d = verdict_rows(raw, reference)
    metrics = read_metrics(Path(reference or REFERENCE))
    rows = {g: [r for r in d.to_dict("records") if group_of(r) == g] for g, _ in GROUPS}
    lines = []
    for task in dict.fromkeys(r["task"] for r in rows["primary"]):
        lines.append(accuracies_sentence(metrics, task, ("teacher", "no_kd", "mo1", "tmkd")))
        lines += [difference_sentence(r) for r in rows["primary"] if r["task"] == task]
        lines += headline_words([r for r in rows["primary"] if r["task"] == task])
        lines += [line for line in [kept_last_sentence(metrics, "mo1", task)] if line]
    missing = _missing_primary(d)
    if missing:
        lines.append(f"Not measured: {'; '.join(missing)}.")
    lines.append(f"The paper's other claims: {len(rows['exploratory'])} comparisons, "
                 f"{counted(rows['exploratory'], PAPER_VERDICTS + ('no verdict',))}.")
    if rows["own"]:
        lines.append(f"The series' own questions, not the paper's: {len(rows['own'])}, "
                     f"{counted(rows['own'], OWN_ANSWERS + ('no verdict',))}.")
    if "family" not in raw.columns:
        lines.append(LEGACY)
    return "\n".join(f"- {line}" for line in lines) + "\n"


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
