"""The committed reference run (results/reference/) and the README table generated from it never drift apart."""
import json
import math
import re

import pandas as pd
import pytest

import tmkd.core.config
import tmkd.model.method
import tmkd.model.methods
import tmkd.model.paper
from tmkd.model.methods import short_name
from tmkd.reporting import publish
from conftest import REPO, run_chain
from rules import expected_verdict, holm_by_hand, holm_levels_by_hand, interval_by_hand

REF = publish.REFERENCE
CHAPTERS = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REGENERATE = "regenerate it with: python -c 'import helpers; publish.update_readme()'"


def table_cells(block: str):
    lines = [line for line in block.strip().splitlines() if line.startswith("|")]
    split = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    return split(lines[0]), [split(line) for line in lines[2:]]


def test_readme_table_is_the_one_generated_from_the_reference_metrics():
    assert publish.readme_block() == publish.readme_table(REF), f"README table differs from {REF}; {REGENERATE}"


def configured_by_name(metrics, cfg):
    """The main rows of the configuration's models, chosen by their names alone (independently of
    tmkd.training.experiments.configured_models): teachers and ensembles; students of the configured seeds whose name
    carries the configured alpha (the no-KD student has none)."""
    main = metrics[metrics["sweep"].astype(str) == ""]
    seed = main["model"].str.extract(r"-s(\d+)(?:-int8)?$")[0]
    teacher = main["method"].isin(["teacher", "teacher_ensemble"])
    alpha = main["model"].str.contains(f"-a{cfg.alpha:g}-") | (main["method"] == "no_kd")
    return main[teacher | (seed.astype(float).isin(cfg.seeds) & alpha)]


def test_every_readme_accuracy_equals_the_mean_of_the_configured_models_rows():
    """The reference holds the configuration's models only (an exercise's other-alpha student would be a row
    outside the selection), and each README cell is the mean of those rows, recomputed with plain pandas."""
    m = pd.read_csv(REF / "metrics.csv", keep_default_na=False)
    cfg = publish.run_config(REF)
    mine = configured_by_name(m, cfg)
    main = m[m["sweep"].astype(str) == ""]
    assert len(mine) == len(main), f"rows of other settings in the reference: {sorted(set(main.model) - set(mine.model))}"
    method_of = {m.label: key for key, m in tmkd.model.methods.REGISTRY.items()}
    header, rows = table_cells(publish.readme_block())
    assert {"QNLI (this run)", "QNLI (paper)"} <= set(header)
    checked = 0
    for row in rows:
        method = method_of[row[0]]
        for column, cell in zip(header[1:], row[1:]):
            task = column.split()[0].lower()
            on = mine[(mine["method"] == method) & (mine["task"] == task)]
            if column.endswith("(this run)"):
                if cell == "":
                    assert on.empty, f"{method}/{task} has metrics but an empty README cell"
                    continue
                mean, _, sd = cell.split(" (")[0].partition(" ± ")
                assert float(mean) == pytest.approx(round(on["accuracy"].astype(float).mean() * 100, 2), abs=0.006)
                seeds = on.groupby("seed")["accuracy"].mean() * 100
                if sd:
                    assert len(seeds) > 1 and float(sd) == pytest.approx(seeds.std(), abs=0.006), (method, task)
                checked += 1
            elif column.endswith("(paper)"):
                paper = tmkd.model.paper.PUBLISHED["paper"].get(method, {}).get(task)
                assert (cell == "" and paper is None) or float(cell) == paper, (method, task)
    assert checked >= 10
    assert {method_of[r[0]] for r in rows} >= {"teacher", "no_kd", "1o1", "mom_avg", "mo1", "tkd", "tmkd"}


def test_the_name_selection_leaves_out_an_exercise_with_another_alpha():
    m = pd.read_csv(REF / "metrics.csv", keep_default_na=False)
    cfg = publish.run_config(REF)
    tmkd_row = m[(m["method"] == "tmkd") & (m["sweep"] == "")].iloc[[0]]
    foreign = tmkd_row.assign(model=tmkd_row["model"].str.replace(f"-a{cfg.alpha:g}-", "-a1-"), accuracy=0.01)
    assert len(configured_by_name(pd.concat([m, foreign]), cfg)) == len(configured_by_name(m, cfg))


def test_readme_verdicts_are_generated_from_the_reference_intervals():
    assert publish.readme_verdicts_block() == publish.readme_verdicts(REF), f"README verdicts differ; {REGENERATE}"
    assert publish.readme_findings_block() == publish.readme_findings(REF), f"README findings differ; {REGENERATE}"


def test_the_first_screen_opens_with_absolute_accuracies_and_the_headline_differences():
    """The findings open with what a learner reads first: the teachers', no KD's, m-o-1's and TMKD's dev accuracy,
    then each headline claim's difference with its 95 % interval, seeds and the paper's number; a question of the
    series' own comes only after the paper's claims; no sentence is over 45 words."""
    first = "\n".join((REPO / "README.md").read_text(encoding="utf-8").splitlines()[:80])
    assert "python run_chain.py --profile smoke" in first and "| 01 |" in first
    findings = publish.readme_findings_block().splitlines()
    assert findings[0] in first and all(f" {name} " in findings[0] for name in ("teachers", "no KD", "m-o-1", "TMKD"))
    d = publish.verdict_rows(publish.reference_intervals(), REF)
    for r in d[d["family"] == "primary"].to_dict("records"):
        shown = f"{float(r['difference']):+.2f} points (95 % interval {float(r['low']):+.2f} to {float(r['high']):+.2f}"
        assert any(line.startswith(f"- {short_name(r['a'])} minus {short_name(r['b'])}: {shown}") and line in first
                   for line in findings), r
    own = [i for i, line in enumerate(findings) if "own questions" in line]
    assert own == [len(findings) - 1]
    for line in findings:
        for sentence in re.split(r"(?<=[.?!])\s+", line):
            assert len(sentence.split()) <= 45, sentence


def test_every_verdict_in_the_readme_follows_from_its_interval():
    """Recomputed with plain pandas, math and scipy (tests/rules.py): the paper's difference from its Table 4 and the
    smallest gap its single run can show; each interval from its two standard errors at its level; Holm over the
    headline family; the verdict rule on each interval; and for a reference made before issue 29, the seed level
    from the per-seed accuracies of its metrics.csv."""
    raw = pd.read_csv(REF / "tables" / "intervals.csv", index_col=0)
    primary = raw[raw["family"] == "primary"] if "family" in raw else raw       # side arms may train one seed
    assert len(raw) >= 7 and (primary["seeds"] >= 3).all(), "the headline intervals rest on at least 3 seeds"
    d = publish.verdict_rows(publish.reference_intervals(), REF)
    text = publish.readme_verdicts_block()
    paper = tmkd.model.paper.PUBLISHED["paper"]
    dev = {"rte": 277, "qnli": 5463, "mnli": 9815, "snli": 9842}
    m = pd.read_csv(REF / "metrics.csv", keep_default_na=False)
    main = m[m["sweep"].astype(str) == ""]
    primary = d[d["family"] == "primary"]
    splits = len(set(zip(d["task"], d["split"])))
    assert set(zip(primary["a"], primary["b"])) <= {("tmkd", "mo1"), ("tmkd", "no_kd"), ("mo1", "no_kd")}
    assert list(primary["p_holm"].astype(float)) == pytest.approx(holm_by_hand(list(primary["p_value"]), 3 * splits),
                                                                 rel=2e-3)
    levels = dict(zip(primary.index, holm_levels_by_hand([float(x) for x in primary["p_value"]], 3 * splits)))
    for key, r in d.iterrows():
        t_seeds = r["t_seeds"] if "t_seeds" in d.columns else r["seeds"]     # a one-seed row's borrowed seed level
        shown = interval_by_hand(r["difference"], r["se_seeds"], r["se_examples"], t_seeds, float(r["verdict_level"]))
        assert (r["verdict_low"], r["verdict_high"]) == pytest.approx(shown, abs=0.011), r
        if r["family"] == "primary":
            excludes = r["verdict_low"] > 0 or r["verdict_high"] < 0
            assert excludes == (float(r["p_holm"]) <= 0.05)
            assert float(r["verdict_level"]) == pytest.approx(levels[key], abs=1e-5)     # Holm's step-down level
        else:
            assert float(r["verdict_level"]) == 0.95
        if "family" not in raw.columns:                       # the seed level, from the per-seed accuracies
            acc = {x: main[(main["method"] == x) & (main["task"] == r["task"])].groupby("seed")["accuracy"].mean()
                   for x in (r["a"], r["b"])}
            per_seed = (acc[r["a"]] - acc[r["b"]]) * 100
            assert r["difference"] == pytest.approx(per_seed.mean(), abs=0.006)
            assert r["se_seeds"] == pytest.approx(per_seed.std() / math.sqrt(len(per_seed)), abs=1e-3)
        pa, pb = paper.get(r["a"], {}).get(r["task"]), paper.get(r["b"], {}).get(r["task"])
        shown = f"| {r['difference']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}] | [{r['verdict_low']:+.2f}, {r['verdict_high']:+.2f}] ("
        line = next(line for line in text.splitlines() if shown in line)
        if r["whose"] == "series":                            # the series' own questions, never the paper's
            assert r["b"] in ("mo1_matched", "no_kd", "mo1") and (
                r["seeds"] < 2 and r["verdict"] == "one seed: no verdict" or
                r["verdict"].rsplit(": ", 1)[1].split(" (")[0] in ("yes", "no", "cannot tell"))
            assert line.split("**")[1] == r["verdict"]
            continue
        gap = round(pa - pb, 2)
        p = (pa + pb) / 200
        resolution = round(1.96 * math.sqrt(2 * p * (1 - p) / dev[r["task"]]) * 100, 2)
        expected = expected_verdict(r["verdict_low"], r["verdict_high"], r["difference"], gap, resolution)
        if r["seeds"] < 2:                                    # one seed: its own seed's chance is unmeasured
            expected = "one seed: no verdict" if "seed_level" in d.columns else "inconclusive"   # (before issue 43)
        assert r["verdict"] == expected and line.split("**")[1] == expected, (r, line)


def test_every_reference_student_row_records_its_own_init_seed_and_pooling():
    """Each student row names where it started: one-stage students and stage 1 the configured base (the paper's
    BERT-k), stage 2 the stage-1 student of its own seed and method; and the configured pooling."""
    m = pd.read_csv(REF / "metrics.csv", keep_default_na=False)
    cfg = publish.run_config(REF)
    m = m[m["sweep"] != "pooling"]                      # chapter 03's check trains the other pooling on purpose
    students = m[~m["method"].isin(["teacher", "teacher_ensemble"])]
    assert (students["pooling"] == cfg.pooling).all()
    assert set(students["seed"].astype(int)) == set(cfg.seeds)
    stage2 = students[(students["stage"].astype(str) == "2") & (students["sweep"] != "stage1_size")]  # the curve: own corpus
    assert len(stage2) and (stage2["init"] == "stage1:" + stage2["method"].str.replace("_int8", "")
                            + "-stage1-" + cfg.stage1_corpus + "-k" + str(cfg.student_layers)
                            + "-s" + stage2["seed"].astype(str)).all()
    rest = students[students["stage"].astype(str) != "2"]
    assert set(rest["init"]) == {cfg.student_init}, "the one-stage students and stage 1 start from the base"


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
    own = times.assign(minutes=times["minutes"] + 60)         # the run's times, kept over a re-execution from cache
    again = publish.export_reference(run, tmp_path / "again", times=own)
    assert pd.read_csv(again / "tables" / "chapter_times.csv", index_col="chapter").equals(own)
    with pytest.raises(tmkd.core.config.TMKDError, match="the times given hold chapters"):
        publish.export_reference(run, tmp_path / "wrong", times=own.drop(index="08_results"))
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
    with pytest.raises(tmkd.core.config.TMKDError, match="no metrics.csv: run the chain to the end"):
        publish.export_reference(tmp_path / "empty", tmp_path / "ref")
    (tmp_path / "unrun").mkdir()
    (tmp_path / "unrun" / "metrics.csv").write_text("task,method,model,split,accuracy\n")
    with pytest.raises(tmkd.core.config.TMKDError, match="holds no executed chapter"):
        publish.export_reference(tmp_path / "unrun", tmp_path / "ref")
    assert not (tmp_path / "ref").exists() and not list(tmp_path.glob(".ref.tmp-*")), "a refused export wrote files"
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(tmkd.core.config.TMKDError, match="no <!-- reference-table:start -->"):
        publish.update_readme(REF, readme)
    assert readme.read_text() == "no markers here\n"
    proc = run_chain(tmp_path / "run", "--publish")
    assert proc.returncode == 2 and "--publish is for real data" in proc.stderr
