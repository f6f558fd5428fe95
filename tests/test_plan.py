"""The plan of every profile, built offline before anything trains: the pairs of every split and step, a stage-1
corpus that exists (and on colab outnumbers stage 2's labelled pairs), an estimate that fits a free T4, an impossible
plan refused before chapter 01 with the setting to change, and the profile a Colab GPU runtime runs by default."""
import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

import run_chain
import tmkd.core.config
import tmkd.inputs.data
from conftest import REPO, SHARED_GLUE, smoke_config
from tmkd.core.config import PROFILES, TMKDError, make_config
from tmkd.chain.plan import HUB_SIZES, T4_RATES, build_plan, check_plan, hours



def profile_config(profile, **settings):
    if profile == "offline":
        if not SHARED_GLUE.exists():
            pytest.skip("the shared GLUE files are not on this machine")
        settings.setdefault("data_dir", str(SHARED_GLUE))
    return make_config(profile, **settings)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_plans_a_stage1_corpus_and_every_split(profile):
    cfg = profile_config(profile)
    plan = check_plan(cfg)                                # raises on an impossible plan
    assert plan["problems"] == []
    assert plan["stage1"]["pairs"] > 0
    for task in cfg.tasks:
        p = plan["tasks"][task]
        assert p["train"] > 0 and all(n > 0 for n in p["dev"].values())
        assert p["select"] + p["train"] + p["unused"] == p["file"]            # three disjoint parts of the file
    assert plan["students"] > 0 and plan["teachers"] == (len(cfg.teacher_lrs) + 1) * len(cfg.tasks)


def test_the_colab_plan_is_the_papers_regime_on_one_free_t4():
    cfg = make_config("colab")
    plan = check_plan(cfg)
    qnli, rte = HUB_SIZES["qnli"]["train"], HUB_SIZES["rte"]["train"]
    select = cfg.select_size
    # by hand: QNLI keeps train_size labelled pairs, everything else but the select slice is unused
    assert plan["tasks"]["qnli"]["unused"] == qnli - select - cfg.train_size
    # RTE: a share of its file (after select) is held out for stage 1, so RTE stays in the corpus
    assert plan["tasks"]["rte"]["unused"] == round(cfg.stage1_share * (rte - select)) > 0
    assert set(plan["stage1"]["sources"]) == {"rte", "qnli"} and plan["stage1"]["scored_by"] == "qnli"
    assert plan["stage1"]["pairs"] >= plan["stage2"]["labelled"] == cfg.train_size
    assert hours(cfg, plan, T4_RATES) <= 4.0


def test_the_paper_profile_pools_a_held_out_share_of_every_task():
    cfg = make_config("paper")
    plan = check_plan(cfg)
    expected = {t: round(cfg.stage1_share * (HUB_SIZES[t]["train"] - cfg.select_size)) for t in cfg.tasks}
    assert plan["stage1"]["sources"] == expected
    assert plan["stage1"]["pairs"] == sum(expected.values())


def test_an_empty_stage1_corpus_is_refused_with_the_setting_to_change():
    # the colab profile as it was: every RTE pair trained on, RTE's own teachers scoring RTE's unused pairs
    old = make_config("colab", stage1_task="rte", stage1_corpus="task", stage1_share=0.0, train_size=50_000)
    with pytest.raises(TMKDError, match="stage-1 corpus is empty") as e:
        check_plan(old)
    assert "stage1_share" in str(e.value) and "rte: 2,490 pairs" in str(e.value)
    check_plan(make_config("colab", stage1_task="rte", stage1_corpus="task", train_size=50_000))   # a share: fine


def test_a_select_slice_over_half_a_file_is_refused():
    with pytest.raises(TMKDError, match=r"rte: select_size=2000 would take over half of a 2490-pair train file"):
        check_plan(make_config("colab", select_size=2000))


def test_stopping_on_an_empty_select_slice_is_refused():
    with pytest.raises(TMKDError, match="select_size=0"):
        check_plan(make_config("colab", select_size=0))


def test_the_chain_refuses_an_impossible_plan_before_chapter_01(tmp_path, capsys):
    run = tmp_path / "run"
    code = run_chain.main(["--profile", "colab", "--run-dir", str(run), "--set", "stage1_share=0",
                           "--set", "stage1_task=rte", "--set", "stage1_corpus=task"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot run as set" in err and "stage1_share" in err
    assert not run.exists()                                         # nothing written, no chapter started


def test_run_chain_plan_prints_the_plan_and_trains_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_chain.main(["--profile", "colab", "--run-dir", str(run), "--plan"]) == 0
    out = capsys.readouterr().out
    plan = build_plan(make_config("colab"))
    assert f"stage 1: {plan['stage1']['pairs']:,} pairs" in out and "estimate on a free Colab T4" in out
    seeds = len(make_config("colab").seeds)
    assert f"05  {2 * seeds:>3} x stage-1 students" in out                 # TMKD and TKD once per seed, by chapter
    assert not run.exists()


@pytest.mark.parametrize("share", [0.0, 0.1])
def test_the_smoke_plan_is_what_the_data_gives(tmp_path, share):
    """The plan's arithmetic against the splits the run really builds (generated data, with and without a held-out
    share)."""
    cfg = smoke_config(tmp_path / "run", stage1_share=share)
    plan = build_plan(cfg)
    for task in cfg.tasks:
        data = tmkd.inputs.data.task_data(cfg, task)
        p = plan["tasks"][task]
        assert {s: len(data[s]) for s in ("train", "select", "unused")} == {s: p[s] for s in ("train", "select", "unused")}
        assert {s: len(data[s]) for s in p["dev"]} == p["dev"]
    assert len(tmkd.inputs.data.split_dataset(cfg, cfg.stage1_task, "stage1")) == plan["stage1"]["pairs"]


def write_tsv(path, rows, header):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")


def test_a_local_folder_is_counted_without_rows_that_have_no_gold_label(tmp_path):
    header = ["index", "sentence1", "sentence2", "label"]
    labels = ["entailment", "not_entailment"]
    for task, n in (("RTE", 50), ("QNLI", 90)):
        rows = [[str(i), f"a {i}", f"b {i}", labels[i % 2]] for i in range(n)] + [[str(n), "x", "y", "-"]]
        write_tsv(tmp_path / task / "train.tsv", rows, header)
        write_tsv(tmp_path / task / "dev.tsv", rows[:20], header)
    (tmp_path / "QNLI" / "train.tsv").write_text(
        (tmp_path / "QNLI" / "train.tsv").read_text().replace("sentence1\tsentence2", "question\tsentence"))
    (tmp_path / "QNLI" / "dev.tsv").write_text(
        (tmp_path / "QNLI" / "dev.tsv").read_text().replace("sentence1\tsentence2", "question\tsentence"))
    cfg = smoke_config(tmp_path / "run", data_dir=str(tmp_path), tasks=("rte", "qnli"), sweep_task="rte", stage1_sizes=(),
                       train_size=30, select_size=10, dev_size=0)
    plan = check_plan(cfg)
    assert plan["tasks"]["rte"]["file"] == 50 and plan["tasks"]["qnli"]["file"] == 90   # the "-" rows are not pairs
    for task in cfg.tasks:
        parts = tmkd.inputs.data.subsets(cfg, "train", tmkd.inputs.data.labelled_file(cfg, task, "train"))
        assert {k: len(v) for k, v in parts.items()} == {k: plan["tasks"][task][k] for k in parts}
    assert plan["stage1"]["sources"] == {"rte": 50 - 10 - 30, "qnli": 90 - 10 - 30}


def test_a_held_out_share_comes_first_and_leaves_the_old_cut_at_zero():
    df = pd.DataFrame({"x": np.arange(100)})
    old = tmkd.inputs.data.train_parts(df, 30, 20, seed=7)
    order = np.random.default_rng(7).permutation(100)
    assert sorted(old["select"]["x"]) == sorted(order[:20]) and sorted(old["train"]["x"]) == sorted(order[20:50])
    parts = tmkd.inputs.data.train_parts(df, 30, 20, seed=7, share=0.25)
    ids = {k: set(v["x"]) for k, v in parts.items()}
    assert ids["select"] == set(order[:20]) and ids["train"] == set(order[40:70])     # 20 of the 80 held out first
    assert ids["unused"] == set(order[20:40]) | set(order[70:])
    assert not (ids["train"] & ids["unused"]) and len(ids["train"] | ids["unused"] | ids["select"]) == 100


# ---- the profile a chapter runs ---------------------------------------------------------------------------------

def parameters_cells():
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        yield path.name, next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))


def test_every_parameters_cell_offers_every_profile():
    for name, cell in parameters_cells():
        line = next(line for line in cell.splitlines() if line.startswith("PROFILE ="))
        offered = line.split("#", 1)[1]
        assert all(p in offered for p in (*PROFILES, "auto")), (name, line)


@pytest.mark.parametrize("colab, gpu, expected", [(True, True, "colab"), (True, False, "smoke"),
                                                  (False, True, "smoke"), (False, False, "smoke")])
def test_the_chapters_default_profile_is_colab_on_a_colab_gpu_runtime(monkeypatch, colab, gpu, expected):
    import torch
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    for name, cell in parameters_cells():
        scope = {}
        exec(cell, scope)                                           # literals only
        assert make_config(scope["PROFILE"]).profile == expected, name


def test_chapter_01_says_which_profile_runs_and_how_to_change_it():
    from tmkd.training.environment import profile_note
    cfg = make_config("smoke")
    note = profile_note("auto", cfg)
    assert "smoke profile" in note and "not a Colab runtime with a GPU" in note
    assert all(p in note for p in PROFILES) and "--plan" in note
    assert "PROFILE = 'offline'" in profile_note("offline", profile_config("offline"))
    cells = json.loads((REPO / "notebooks" / "01_teachers.ipynb").read_text())["cells"]
    assert any("profile_note(PROFILE, cfg)" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_the_readme_colab_section_says_which_profile_runs():
    readme = (REPO / "README.md").read_text()
    colab = readme[readme.index("## Colab"):]
    colab = colab[:colab.index("\n## ", 5)] if "\n## " in colab[5:] else colab
    assert 'PROFILE = "auto"' in colab and "`colab` profile" in colab


def test_the_estimate_is_examples_at_the_rates_plus_measured_fixed_costs():
    from tmkd.chain.plan import CHAPTERS, PER_CHAPTER_S, PER_MODEL_S
    cfg = make_config("smoke")
    plan = {"teacher_examples": 1000, "student_examples": 6000, "predict_examples": 4000, "teachers": 2, "students": 8}
    rates = {"teacher_train": 100.0, "student_train": 300.0, "teacher_predict": 1000.0}
    by_hand = 10 + 20 + 4 + PER_CHAPTER_S * CHAPTERS + PER_MODEL_S * 10
    assert hours(cfg, plan, rates) * 3600 == pytest.approx(by_hand)
    two = make_config("smoke", nproc=2, teacher_batch_size=16, student_batch_size=16)
    assert hours(two, plan, rates) * 3600 == pytest.approx(17 + PER_CHAPTER_S * CHAPTERS + (PER_MODEL_S + 20) * 10)


def test_a_rate_is_timed_by_its_fastest_step_so_a_busy_moment_does_not_count():
    import time
    from tmkd.chain.estimate import _timed
    calls = []

    def step():
        calls.append(1)
        time.sleep(0.2 if len(calls) == 1 else 0.01)        # another process held the cores during the first call
    assert _timed(step, 4) < 0.1 and len(calls) == 4


def test_timings_name_the_cpu_model_and_its_vector_instructions(tmp_path):
    """Two machines both called '2-core x86_64' trained the offline teachers 1.4x apart: the device a rate or a
    speed row was measured on names the CPU model and its widest vector instructions."""
    from tmkd.training.environment import cpu_model
    zen3, zen4 = tmp_path / "zen3", tmp_path / "zen4"
    zen3.write_text("processor\t: 0\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma\n"
                    "\nprocessor\t: 1\nflags\t\t: fpu avx512f\n")
    zen4.write_text("processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
                    "flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_model(zen3) == "AMD EPYC family 25 model 1, AVX2"          # the first processor's entry only
    assert cpu_model(zen4) == "AMD EPYC family 25 model 17, AVX-512 bf16"
    assert cpu_model(tmp_path / "none") == ""                              # no /proc (macOS, Windows): nothing added
