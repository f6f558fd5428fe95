"""The smoke chain end to end through papermill: every chapter, every method above chance, results and figures."""
import json

import matplotlib.image as mpimg
import pandas as pd
import pytest

import helpers
import tmkd.core.config
import tmkd.model.method
import tmkd.model.methods
import tmkd.training.rundir
from conftest import REPO, run_chain
from rules import expected_verdict, half_width_by_hand, holm_by_hand, interval_by_hand

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
    assert set(tmkd.model.methods.table_order("main")) <= set(main["method"])
    quality = pd.read_csv(run / "tables" / "teacher_quality.csv")
    weak = {f"{r.task}/{r.teacher}" for r in quality.itertuples() if r.weak}     # flagged on the held-out slice
    for _, row in main.iterrows():
        chance = 1 / len(tmkd.core.config.TASKS[row["task"]].labels)
        if row["model"] in weak:
            continue
        assert row["accuracy"] > chance + 0.2, f"{row['method']} {row['model']} {row['split']}: {row['accuracy']}"
    for task in ("rte", "qnli", "mnli"):
        methods = set(main[main["task"] == task]["method"])
        assert {"teacher", "teacher_ensemble", "no_kd", "1o1", "1avgo1", "mom_avg", "mom_vote", "mo1"} <= methods
    assert {"tkd", "tmkd", "tmkd_int8"} <= set(main[main["task"] == "qnli"]["method"])


def test_metrics_have_one_row_per_model_and_no_duplicates(smoke_chain):
    m = helpers.read_metrics(smoke_chain[0])
    assert not m.duplicated(list(tmkd.training.rundir.METRIC_KEY)).any()
    assert set(m[m["task"] == "mnli"]["split"]) == {"validation_matched", "validation_mismatched"}
    sweeps = m[m["sweep"] != ""]
    assert set(sweeps["sweep"]) == {"optimizer", "head_layers", "layers", "stage1", "alpha", "pooling", "stage1_size"}
    curve = sweeps[sweeps["sweep"] == "stage1_size"]             # the curve's own students only (sizes short of the corpus)
    assert len(curve) and all("-n160" in name for name in curve["model"]), list(curve["model"])
    assert sorted(sweeps[sweeps["sweep"] == "layers"]["layers"].astype(int)) == [1, 3, 5]
    alpha = sweeps[sweeps["sweep"] == "alpha"]
    for method in ("tmkd", "mo1"):          # TMKD's stage 2 (Table 8) and one-stage m-o-1 beside it (the series')
        assert sorted(alpha[alpha["method"] == method]["alpha"].astype(float)) == [0.1, 0.3, 0.5, 0.7, 0.9, 1.0]


def test_comparison_table_equals_the_metrics(smoke_chain):
    run, _ = smoke_chain
    table = pd.read_csv(run / "tables" / "comparison.csv", index_col=0)
    m = helpers.read_metrics(run)
    main = m[m["sweep"] == ""]
    checked = 0
    for (method, task), group in main.groupby(["method", "task"]):
        if method not in tmkd.model.methods.table_order("main"):                        # variants have their own tables
            continue
        expected = group["accuracy"].astype(float).mean() * 100     # MNLI: mean of matched and mismatched
        assert table.loc[method, task] == pytest.approx(expected, abs=0.0051), (method, task)   # 2 decimals
        checked += 1
    assert checked >= 25
    assert table.loc["tmkd", "qnli (paper)"] == 83.53


def test_figures_are_valid_png_files(smoke_chain):
    run, _ = smoke_chain
    expected = {"methods", "one_vs_many", "two_stage", "alpha_sweep", "stage1_loss", "accuracy_vs_speed",
                "curves_teachers", "curves_two_stage", "sweep_optimizer", "sweep_head_layers", "sweep_layers",
                "intervals", "intervals_one_stage", "intervals_two_stage", "stage1_size"}
    found = {p.stem for p in (run / "figures").glob("*.png")}
    assert expected <= found
    for name in expected:
        path = run / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert mpimg.imread(path).shape[0] > 100
    assert (run / "tables" / "comparison.md").read_text().startswith("| method |")


def test_the_corpus_size_curve_trains_each_size_once_and_reuses_the_main_arms(smoke_chain):
    run, _ = smoke_chain
    cfg = tmkd.core.config.make_config("smoke")
    curve = pd.read_csv(run / "tables" / "stage1_size.csv", index_col=0)
    corpus = int(pd.read_csv(run / "metrics.csv").query("sweep == 'stage1'")["train_pairs"].iloc[0])
    assert list(curve["stage-1 pairs"]) == sorted(set(cfg.stage1_sizes) | {corpus})
    m = helpers.read_metrics(run)
    main = m[m["sweep"] == ""]
    s42 = lambda method: main[(main["method"] == method) & (main["seed"] == 42) & (main["stage"] != 1)  # noqa: E731
                              & (main["task"] == cfg.stage2_task)]
    # N = 0 is chapter 04's m-o-1 and the whole corpus chapter 06's TMKD: the same students, the same numbers
    assert curve.iloc[0]["after stage 2 (%)"] == pytest.approx(100 * s42("mo1")["accuracy"].iloc[0], abs=0.051)
    assert curve.iloc[-1]["after stage 2 (%)"] == pytest.approx(100 * s42("tmkd")["accuracy"].iloc[0], abs=0.051)
    sub = m[(m["sweep"] == "stage1_size") & (m["stage"] == 1)]
    assert set(sub["train_pairs"].astype(int)) == {k for k in cfg.stage1_sizes if 0 < k < corpus}
    assert (run / "students" / "qnli" / f"tmkd-stage1-pool-n{cfg.stage1_sizes[1]}-k3-s42" / "final").is_dir()


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
    """Each table's intervals, family adjustment and verdicts recomputed from its own columns with scipy and the
    rules written out again (tests/rules.py): chapter 08's table holds the whole headline family of the run's tasks,
    Holm over all of it, and chapter 06's primary rows agree with it."""
    run, _ = smoke_chain
    cfg = tmkd.core.config.make_config("smoke", run_dir=str(run))
    splits = sum(len(tmkd.core.config.TASKS[t].dev_splits) for t in cfg.tasks)
    tables = {name: pd.read_csv(run / "tables" / f"{name}.csv", index_col=0)
              for name in ("intervals_one_stage", "intervals_two_stage", "intervals")}
    for name, pairs in (("intervals_one_stage", helpers.ONE_STAGE_COMPARISONS),
                        ("intervals_two_stage", helpers.TWO_STAGE_COMPARISONS),
                        ("intervals", helpers.ALL_COMPARISONS)):
        table = tables[name]
        variants = {p for p in pairs if not any(m.endswith("_strong") for m in p)}
        assert variants <= set(zip(table["a"], table["b"])) <= set(pairs), name
        for r in table.to_dict("records"):
            level = float(r["verdict_level"])
            shown = interval_by_hand(r["difference"], r["se_seeds"], r["se_examples"], r["seeds"], level)
            assert (r["verdict_low"], r["verdict_high"]) == pytest.approx(shown, abs=0.011), (name, r)
            power = sum(half_width_by_hand(r["se_seeds"], r["se_examples"], r["seeds"], lv) for lv in (level, 0.6))
            assert r["detectable"] == pytest.approx(power, abs=0.011), (name, r)
            assert (r["detectable"] > 0) == (r["se_seeds"] + r["se_examples"] > 0), (name, r)
            if r["whose"] == "series":
                assert r["family"] == "exploratory" and pd.isna(r["paper_difference"])
                assert r["verdict"].rsplit(": ", 1)[1].split(" (")[0] in ("yes", "no", "cannot tell"), r
            else:
                assert r["verdict"] == expected_verdict(r["verdict_low"], r["verdict_high"], r["difference"],
                                                        r["paper_difference"], r["paper_resolution"]), (name, r)
            assert (r["family"] == "primary") == ((r["a"], r["b"]) in {("tmkd", "mo1"), ("tmkd", "no_kd"),
                                                                        ("mo1", "no_kd")})
            assert level == 0.95 if r["family"] != "primary" else level > 0.95
    whole = tables["intervals"]
    primary = whole[whole["family"] == "primary"]
    assert len(primary) == 3 * splits and (primary["adjustment"] == f"Holm over {3 * splits}").all()
    assert list(primary["p_holm"]) == pytest.approx(holm_by_hand(list(primary["p_value"]), 3 * splits), rel=2e-3)
    assert ((primary["verdict_low"] > 0) | (primary["verdict_high"] < 0)).tolist() == (primary["p_holm"] <= 0.05).tolist()
    key = ["task", "split", "a", "b"]
    two = tables["intervals_two_stage"]
    merged = two[two["family"] == "primary"].merge(primary, on=key, suffixes=("", "_08"))
    assert len(merged) == len(primary) and (merged["verdict"] == merged["verdict_08"]).all()
    assert (merged["verdict_low"] == merged["verdict_low_08"]).all()


def test_an_exercise_with_another_alpha_never_enters_a_table_the_readme_or_the_int8_row(smoke_chain, tmp_path):
    """Chapters 04 and 06's exercise trains students with alpha = 1 in the same run directory (and chapter 07 then
    quantizes that TMKD student); re-running the chapters with the configured alpha gives the same main tables and
    intervals, the same README blocks from an export, and the same int8 table (rows come from the configuration's
    own models, never from whatever else the run directory holds; int8 is matched to its fp32 model by name)."""
    import shutil
    from tmkd.reporting import publish
    run = tmp_path / "run"
    shutil.copytree(smoke_chain[0], run)
    cfg = tmkd.core.config.make_config("smoke", run_dir=str(run))
    names = ("one_vs_many", "intervals_one_stage", "two_stage", "intervals_two_stage", "seeds", "comparison",
             "intervals")
    before = {n: (run / "tables" / f"{n}.csv").read_text() for n in names}
    int8_before = helpers.int8_table(helpers.configured_metrics(cfg), cfg.stage2_task)
    exported = publish.export_reference(run, tmp_path / "before")
    readme_before = [f(exported) for f in (publish.readme_table, publish.readme_verdicts, publish.readme_findings)]
    proc = run_chain(run, "--only", "04", "06", "07", "--set", "alpha=1.0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = helpers.read_metrics(run)
    exercise = m[(m["sweep"] == "") & m["model"].str.contains("-a1-")]
    assert {"mo1", "tmkd", "tkd", "mo1_matched", "tmkd_int8"} <= set(exercise["method"]), set(exercise["method"])
    assert any(x.endswith("/tkd-k3-a1-s42") for x in m["model"])   # chapter 06's exercise 1 shows (test_exercises)
    assert len(helpers.int8_table(m, cfg.stage2_task)) == 2 * len(int8_before)       # both int8 students, each its own
    proc = run_chain(run, "--only", "04", "06", "07", "08")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = {n: (run / "tables" / f"{n}.csv").read_text() for n in names}
    assert after == before
    assert helpers.int8_table(helpers.configured_metrics(cfg), cfg.stage2_task).equals(int8_before)
    exported = publish.export_reference(run, tmp_path / "after")
    assert [f(exported) for f in (publish.readme_table, publish.readme_verdicts, publish.readme_findings)] == readme_before
    published = pd.read_csv(exported / "metrics.csv", keep_default_na=False)
    assert not published[published["sweep"] == ""]["model"].str.contains("-a1-").any()
