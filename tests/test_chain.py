"""The smoke chain end to end through papermill: every chapter, every method above chance, results and figures."""
import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd

import helpers
import tmkd.config
import tmkd.method
import tmkd.rundir
from conftest import REPO, run_chain

CHAPTERS = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_chapter_executed_with_its_parameters(smoke_chain):
    run, proc = smoke_chain
    assert len(CHAPTERS) == 8
    for name in CHAPTERS:
        nb = json.loads((run / "executed" / name).read_text())
        injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        assert injected and str(run) in "".join(injected[0]["source"])
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
    assert f"[8/8] {CHAPTERS[-1][:-6]}: running ... done in" in proc.stdout
    assert "IPKernelApp" not in proc.stdout + proc.stderr and "WARNING" not in proc.stdout + proc.stderr


def test_every_teacher_and_student_beats_chance_clearly(smoke_chain):
    run, _ = smoke_chain
    m = helpers.read_metrics(run)
    main = m[m["sweep"] == ""]
    assert set(tmkd.method.METHOD_ORDER) <= set(main["method"])
    quality = pd.read_csv(run / "tables" / "teacher_quality.csv")
    weak = {f"{r.task}/{r.teacher}" for r in quality.itertuples() if r.weak}     # flagged on the held-out slice
    for _, row in main.iterrows():
        chance = 1 / len(tmkd.config.TASKS[row["task"]].labels)
        if row["model"] in weak:
            continue
        assert row["accuracy"] > chance + 0.2, f"{row['method']} {row['model']} {row['split']}: {row['accuracy']}"
    for task in ("rte", "qnli", "mnli"):
        methods = set(main[main["task"] == task]["method"])
        assert {"teacher", "teacher_ensemble", "no_kd", "1o1", "1avgo1", "mom_avg", "mom_vote", "mo1"} <= methods
    assert {"tkd", "tmkd", "tmkd_int8"} <= set(main[main["task"] == "qnli"]["method"])


def test_metrics_have_one_row_per_model_and_no_duplicates(smoke_chain):
    m = helpers.read_metrics(smoke_chain[0])
    assert not m.duplicated(list(tmkd.rundir.METRIC_KEY)).any()
    assert set(m[m["task"] == "mnli"]["split"]) == {"validation_matched", "validation_mismatched"}
    sweeps = m[m["sweep"] != ""]
    assert set(sweeps["sweep"]) == {"optimizer", "head_layers", "layers", "stage1", "alpha", "pooling"}
    assert sorted(sweeps[sweeps["sweep"] == "layers"]["layers"].astype(int)) == [1, 3, 5]
    assert sorted(sweeps[sweeps["sweep"] == "alpha"]["alpha"].astype(float)) == [0.1, 0.3, 0.5, 0.7, 0.9, 1.0]


def test_comparison_table_equals_the_metrics(smoke_chain):
    run, _ = smoke_chain
    table = pd.read_csv(run / "tables" / "comparison.csv", index_col=0)
    m = helpers.read_metrics(run)
    main = m[m["sweep"] == ""]
    checked = 0
    for (method, task), group in main.groupby(["method", "task"]):
        if method not in tmkd.method.METHOD_ORDER:                        # variants have their own tables
            continue
        expected = group["accuracy"].astype(float).mean() * 100     # MNLI: mean of matched and mismatched
        assert table.loc[method, task] == np.round(expected, 2)
        checked += 1
    assert checked >= 25
    assert table.loc["tmkd", "qnli (paper)"] == 83.53


def test_figures_are_valid_png_files(smoke_chain):
    run, _ = smoke_chain
    expected = {"methods", "one_vs_many", "two_stage", "alpha_sweep", "stage1_loss", "accuracy_vs_speed",
                "curves_teachers", "curves_two_stage", "sweep_optimizer", "sweep_head_layers", "sweep_layers",
                "intervals", "intervals_one_stage", "intervals_two_stage"}
    found = {p.stem for p in (run / "figures").glob("*.png")}
    assert expected <= found
    for name in expected:
        path = run / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert mpimg.imread(path).shape[0] > 100
    assert (run / "tables" / "comparison.md").read_text().startswith("| method |")


def test_speed_rows_and_the_int8_student(smoke_chain):
    run, _ = smoke_chain
    speed = pd.read_csv(run / "speed.csv")
    assert {"teacher", "teacher_ensemble", "mo1", "mom_avg", "tmkd", "tmkd_int8"} <= set(speed["method"])
    assert (speed["examples_per_s"] > 0).all() and (speed["batch_size"] == 32).all()
    assert speed["device"].str.len().gt(0).all()
    assert speed[speed["method"] == "tmkd_int8"]["device"].str.startswith("cpu").all()   # int8 runs on the CPU
    m = helpers.read_metrics(run)
    int8 = m[m["method"] == "tmkd_int8"].iloc[0]
    assert float(int8["agreement_fp32"]) >= 0.9     # int8 predicts what fp32 predicts on most examples


def test_second_run_skips_all_finished_work(smoke_chain):
    run, _ = smoke_chain
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    proc = run_chain(run)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("done earlier, skipped") == len(CHAPTERS)
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    changed = [p for p in after if before.get(p) != after[p]]
    assert not changed, changed[:5]           # nothing recomputed, nothing rewritten


def test_interval_tables_say_what_their_intervals_say(smoke_chain):
    run, _ = smoke_chain
    from tmkd.evidence import claim_verdict
    for name, pairs in (("intervals_one_stage", helpers.ONE_STAGE_COMPARISONS),
                        ("intervals_two_stage", helpers.TWO_STAGE_COMPARISONS)):
        table = pd.read_csv(run / "tables" / f"{name}.csv", index_col=0)
        assert set(zip(table["a"], table["b"])) == set(pairs)
        assert (table["low"] <= table["difference"]).all() and (table["difference"] <= table["high"]).all()
        rows = table.to_dict("records")
        nan = lambda x: None if pd.isna(x) else x  # noqa: E731
        assert [claim_verdict(r, nan(r["paper_difference"]), nan(r["paper_resolution"])) for r in rows] \
            == table["verdict"].tolist()
        assert (table["detectable"] >= 0).all() and table["claim"].str.len().gt(0).all()


def test_an_exercise_with_another_alpha_never_enters_the_main_tables(smoke_chain, tmp_path):
    """Chapter 04's exercise trains students with another alpha in the same run directory; re-running chapters 04
    and 08 with the configured alpha gives the same main tables and intervals (rows come from the configuration's
    own students, never from whatever else the run directory holds)."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(smoke_chain[0], run)
    names = ("one_vs_many", "intervals_one_stage", "seeds", "comparison")
    before = {n: (run / "tables" / f"{n}.csv").read_text() for n in names}
    proc = run_chain(run, "--only", "04", "--set", "alpha=1.0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = helpers.read_metrics(run)
    exercise = m[(m["sweep"] == "") & m["model"].str.contains("-a1-")]
    assert len(exercise), "the exercise trained no alpha = 1 student"
    proc = run_chain(run, "--only", "04", "08")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = {n: (run / "tables" / f"{n}.csv").read_text() for n in names}
    assert after == before
