"""The committed reference run (results/reference/) and the README table generated from it never drift apart."""
import json
import math
import re

import pandas as pd
import pytest

import tmkd.config
import tmkd.method
import tmkd.paper
from tmkd import publish
from conftest import REPO, run_chain

REF = publish.REFERENCE
CHAPTERS = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REGENERATE = "regenerate it with: python -c 'import helpers; publish.update_readme()'"


def table_cells(block: str):
    lines = [line for line in block.strip().splitlines() if line.startswith("|")]
    split = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    return split(lines[0]), [split(line) for line in lines[2:]]


def test_readme_table_is_the_one_generated_from_the_reference_metrics():
    assert publish.readme_block() == publish.readme_table(REF), f"README table differs from {REF}; {REGENERATE}"


def test_every_readme_accuracy_equals_the_mean_of_its_reference_metrics_rows():
    """Recomputed here with plain pandas, not with the code that wrote the table."""
    m = pd.read_csv(REF / "metrics.csv", keep_default_na=False)
    m = m[m["sweep"].astype(str) == ""]
    method_of = {label: key for key, label in tmkd.method.METHOD_LABELS.items()}
    header, rows = table_cells(publish.readme_block())
    assert {"QNLI (this run)", "QNLI (paper)"} <= set(header)
    checked = 0
    for row in rows:
        method = method_of[row[0]]
        for column, cell in zip(header[1:], row[1:]):
            task = column.split()[0].lower()
            if column.endswith("(this run)"):
                acc = m[(m["method"] == method) & (m["task"] == task)]["accuracy"].astype(float)
                if cell == "":
                    assert acc.empty, f"{method}/{task} has metrics but an empty README cell"
                    continue
                mean, _, sd = cell.split(" (")[0].partition(" ± ")
                assert float(mean) == pytest.approx(round(acc.mean() * 100, 2), abs=0.006), (method, task)
                seeds = m[(m["method"] == method) & (m["task"] == task)].groupby("seed")["accuracy"].mean() * 100
                if sd:
                    assert len(seeds) > 1 and float(sd) == pytest.approx(seeds.std(), abs=0.006), (method, task)
                checked += 1
            elif column.endswith("(paper)"):
                paper = tmkd.paper.PUBLISHED["paper"].get(method, {}).get(task)
                assert (cell == "" and paper is None) or float(cell) == paper, (method, task)
    assert checked >= 10
    assert {method_of[r[0]] for r in rows} >= {"teacher", "no_kd", "1o1", "mom_avg", "mo1", "tkd", "tmkd"}


def test_readme_verdicts_are_generated_from_the_reference_intervals():
    assert publish.readme_verdicts_block() == publish.readme_verdicts(REF), f"README verdicts differ; {REGENERATE}"
    assert publish.readme_findings_block() == publish.readme_findings(REF), f"README findings differ; {REGENERATE}"


def test_the_readme_states_a_verdict_with_its_number_on_its_first_screen():
    first = "\n".join((REPO / "README.md").read_text(encoding="utf-8").splitlines()[:80])
    assert "python run_chain.py --profile smoke" in first and "| 01 |" in first
    assert re.search(r"(reproduced|opposite|inconclusive|equivalent)", first, re.I)
    assert re.search(r"[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]", first), "no interval on the first screen"


def expected_verdict(low, high, difference, paper, resolution, margin=1.0):
    """The verdict rule written out again, independently of tmkd.evidence (docs/DESIGN.md, Evidence)."""
    low, high = min(low, difference), max(high, difference)
    if paper is None:
        return "reproduced" if low > 0 else "opposite" if high < 0 else "inconclusive"
    if abs(paper) < resolution:
        return f"equivalent within ±{margin:g}" if -margin <= low and high <= margin else "inconclusive"
    if paper < 0:
        low, high = -high, -low
    if low > 0:
        return "reproduced"
    if high < 0:
        return "opposite"
    return "smaller than the paper's" if high < abs(paper) else "inconclusive"


def test_every_verdict_in_the_readme_follows_from_its_interval():
    """Recomputed here with plain pandas and math: the paper's difference from its Table 4, the smallest gap its
    single run can show (1.96 sqrt(2 p (1-p) / n) on its dev set), and the verdict rule on each interval."""
    d = pd.read_csv(REF / "tables" / "intervals.csv", index_col=0)
    assert len(d) >= 7 and (d["seeds"] >= 3).all(), "the reference intervals rest on at least 3 seeds"
    assert {("mo1", "no_kd"), ("mo1", "1o1"), ("mo1", "1avgo1"), ("mom_avg", "mo1"), ("tmkd", "mo1"),
            ("tmkd", "mo1_matched"), ("tmkd", "tkd")} <= set(zip(d["a"], d["b"]))
    text = publish.readme_verdicts_block()
    paper = tmkd.paper.PUBLISHED["paper"]
    dev = {"rte": 277, "qnli": 5463, "mnli": 9815, "snli": 9842}
    for r in d.itertuples():
        pa, pb = paper.get(r.a, {}).get(r.task), paper.get(r.b, {}).get(r.task)
        gap = None if pa is None or pb is None else round(pa - pb, 2)
        p = 0 if gap is None else (pa + pb) / 200
        resolution = round(1.96 * math.sqrt(2 * p * (1 - p) / dev[r.task]) * 100, 2)
        expected = expected_verdict(r.low, r.high, r.difference, gap, resolution)
        assert f"here {r.difference:+.2f} [{r.low:+.2f}, {r.high:+.2f}]" in text and f"**{expected}**" in text, r
        line = next(line for line in text.splitlines() if f"here {r.difference:+.2f} [{r.low:+.2f}, {r.high:+.2f}]" in line)
        after = line.split(f"here {r.difference:+.2f} [{r.low:+.2f}, {r.high:+.2f}]", 1)[1]
        assert after.split("**")[1] == expected, (r, after)


def test_every_reference_student_row_records_init_seed_and_pooling():
    m = pd.read_csv(REF / "metrics.csv", keep_default_na=False)
    students = m[~m["method"].isin(["teacher", "teacher_ensemble"])]
    assert (students["init"] != "").all() and (students["pooling"] != "").all()
    one_stage = students[(students["sweep"] == "") & (students["stage"].astype(str) == "0")]
    assert set(one_stage["init"]) == {"base"}, "the main comparisons start from the teachers' pre-trained base"


def test_reference_folder_holds_results_only_and_every_executed_chapter():
    files = [f for f in REF.rglob("*") if f.is_file()]
    assert {f.suffix for f in files} <= {".csv", ".json", ".md", ".png", ".ipynb"}
    assert not [f for f in files if "checkpoint" in str(f)]
    size = sum(f.stat().st_size for f in files)
    assert size < 5e6, f"results/reference is {size / 1e6:.1f} MB"
    assert (REF / "speed.csv").exists() and (REF / "run.json").exists()
    assert json.loads((REF / "chain.json").read_text())["profile"] == "offline"          # run.json: data and teachers only
    for name in CHAPTERS:
        nb = json.loads((REF / "executed" / name).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert any(c.get("outputs") for c in code), f"executed {name} has no outputs"
        assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert "widgets" not in nb["metadata"], f"executed {name} still carries its widget state"
        printed = "".join("".join(o.get("text", "")) for c in code for o in c.get("outputs", []))
        assert printed.count("finished earlier") <= 3, f"executed {name}: more than 3 reuse lines"


def test_readme_shows_figures_of_the_reference_run():
    text = (REPO / "README.md").read_text()
    shown = [line.split("](")[1].split(")")[0] for line in text.splitlines() if line.startswith("![")]
    assert shown and all((REPO / p).exists() and p.startswith("results/reference/figures/") for p in shown)


def test_committed_chapters_carry_no_outputs():
    for name in CHAPTERS:
        nb = json.loads((REPO / "notebooks" / name).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), name
        assert sum("parameters" in c["metadata"].get("tags", []) for c in code) == 1, name


def test_export_and_readme_update_on_a_fresh_run(smoke_chain, tmp_path):
    run, _ = smoke_chain
    dest = publish.export_reference(run, tmp_path / "reference")
    copied = {f.relative_to(dest).as_posix() for f in dest.rglob("*") if f.is_file()}
    assert {"metrics.csv", "speed.csv", "run.json", "tables/comparison.csv", "figures/methods.png"} <= copied
    assert {f"executed/{name}" for name in CHAPTERS} <= copied
    assert not [p for p in copied if p.endswith((".safetensors", ".npz", ".arrow"))]
    for name in CHAPTERS:
        original, exported = (json.loads((d / "executed" / name).read_text()) for d in (run, dest))
        tags = lambda c: c["metadata"].get("tags", [])  # noqa: E731
        kept = [c for c in original["cells"] if "parameters" not in tags(c)]        # the defaults: shown once, as run
        assert "widgets" not in exported["metadata"] and len(exported["cells"]) == len(kept) == len(original["cells"]) - 1
        assert sum("injected-parameters" in tags(c) for c in exported["cells"]) == 1
        for o, e in zip(kept, exported["cells"]):      # same cells; paths, bars and warnings removed
            assert e["cell_type"] == o["cell_type"]
            assert e["source"] == "".join(o["source"]).replace(str(run.resolve()), "RUN_DIR")
            assert not publish.PROGRESS.search(json.dumps(e.get("outputs", [])))
    times = pd.read_csv(dest / "tables" / "chapter_times.csv", index_col="chapter")
    assert list(times.index) == [name[:-len(".ipynb")] for name in CHAPTERS] + ["total"]
    assert (times["minutes"] >= 0).all() and times.loc["total", "minutes"] > 0
    assert times.loc["total", "minutes"] == pytest.approx(times["minutes"].iloc[:-1].sum(), abs=0.05 * len(CHAPTERS))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{publish.TABLE_START}\nold table\n{publish.TABLE_END}\nmiddle\n"
                      f"{publish.VERDICTS_START}\nold verdicts\n{publish.VERDICTS_END}\noutro\n")
    publish.update_readme(dest, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{publish.VERDICTS_END}\noutro\n") and "\nmiddle\n" in text
    assert publish.readme_block(readme) == publish.readme_table(dest) and "old table" not in text
    assert publish.readme_verdicts_block(readme) == publish.readme_verdicts(dest) and "old verdicts" not in text
    assert "| TMKD |" in text


def test_bad_exports_are_refused_with_a_clear_message(tmp_path):
    with pytest.raises(tmkd.config.TMKDError, match="no metrics.csv: run the chain to the end"):
        publish.export_reference(tmp_path / "empty", tmp_path / "ref")
    (tmp_path / "unrun").mkdir()
    (tmp_path / "unrun" / "metrics.csv").write_text("task,method,model,split,accuracy\n")
    with pytest.raises(tmkd.config.TMKDError, match="holds no executed chapter"):
        publish.export_reference(tmp_path / "unrun", tmp_path / "ref")
    assert not (tmp_path / "ref").exists() and not list(tmp_path.glob(".ref.tmp-*")), "a refused export wrote files"
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(tmkd.config.TMKDError, match="no <!-- reference-table:start -->"):
        publish.update_readme(REF, readme)
    assert readme.read_text() == "no markers here\n"
    proc = run_chain(tmp_path / "run", "--publish")
    assert proc.returncode == 2 and "--publish is for real data" in proc.stderr
