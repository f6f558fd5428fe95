"""What each KD method is (Table 4), without training: which teachers, how many students, how many soft heads."""
import pytest
import torch

import helpers
import tmkd.training.specs
import tmkd.training.experiments
import tmkd.model.method
import tmkd.model.methods
import tmkd.training.students
from tmkd.chain.plan import build_plan, students_per_task
from tmkd.reporting.report import seed_table
from tmkd.stats.evidence import compare_methods
from conftest import stub_run

TEACHERS = ("teacher-lr1e-03", "teacher-lr2e-03", "teacher-lr3e-03")
BEST = "teacher-lr2e-03"


def test_method_students_pure():
    ms = tmkd.model.methods.method_students
    assert [s.teachers for s in ms("no_kd", TEACHERS, BEST)] == [()]
    assert [s.teachers for s in ms("1o1", TEACHERS, BEST)] == [(BEST,)]
    assert [(s.teachers, s.average) for s in ms("1avgo1", TEACHERS, BEST)] == [(TEACHERS, True)]
    assert [s.teachers for s in ms("mom_avg", TEACHERS, BEST)] == [(t,) for t in TEACHERS]
    assert ms("mom_vote", TEACHERS, BEST) == ms("mom_avg", TEACHERS, BEST)
    assert [(s.teachers, s.average) for s in ms("mo1", TEACHERS, BEST)] == [(TEACHERS, False)]
    assert ms("tkd", TEACHERS, BEST) == ms("1o1", TEACHERS, BEST)
    assert ms("tmkd", TEACHERS, BEST) == ms("mo1", TEACHERS, BEST)
    with pytest.raises(ValueError, match="unknown method 'kd'"):
        ms("kd", TEACHERS, BEST)
    assert [tmkd.model.method.soft_heads(s) for m in ("no_kd", "1o1", "1avgo1", "mo1") for s in ms(m, TEACHERS, BEST)] == [0, 1, 1, 3]


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """Specs only: the best teacher is given (it would be read from cached logits); nothing is trained."""
    monkeypatch.setattr(tmkd.training.specs, "best_teacher", lambda cfg, task: BEST)
    monkeypatch.setattr(tmkd.training.experiments, "best_teacher", lambda cfg, task: BEST)
    return stub_run(tmp_path / "run", teacher_lrs=(1e-3, 2e-3, 3e-3))


def test_1o1_and_tkd_use_the_best_teacher_in_both_stages(cfg):
    (one,) = tmkd.training.specs.method_specs(cfg, "qnli", "1o1")
    assert one.teachers == (BEST,) and one.n_heads == 1 and one.stage == 0
    assert tmkd.training.specs.stage1_spec(cfg, "tkd").teachers == (BEST,)
    s2 = tmkd.training.specs.stage2_spec(cfg, "tkd")
    assert s2.teachers == (BEST,) and s2.init_from == tmkd.training.specs.stage1_spec(cfg, "tkd").name


def test_tmkd_uses_all_teachers_in_both_stages(cfg):
    s1, s2 = tmkd.training.specs.stage1_spec(cfg, "tmkd"), tmkd.training.specs.stage2_spec(cfg, "tmkd")
    assert s1.teachers == s2.teachers == TEACHERS and s1.n_heads == s2.n_heads == 3
    assert (s1.stage, s1.alpha, s2.stage, s2.alpha) == (1, 1.0, 2, cfg.alpha)
    assert s2.init_from == s1.name and s1.name.startswith("tmkd-stage1-") and s2.name == "tmkd-k3-a0.7-s42"


def test_mom_trains_n_distinct_students_and_combines_their_outputs(cfg):
    specs = tmkd.training.specs.method_specs(cfg, "qnli", "mom_avg")
    assert [s.teachers for s in specs] == [(t,) for t in TEACHERS]
    assert len({tmkd.training.students.student_dir(cfg, s) for s in specs}) == 3 and all(s.n_heads == 1 for s in specs)
    assert tmkd.training.specs.method_specs(cfg, "qnli", "mom_vote") == specs
    assert BEST in {s.teachers[0] for s in specs}         # the 1-o-1 student is one of them (trained once)
    assert tmkd.training.specs.method_specs(cfg, "qnli", "1o1")[0] in specs


def test_1avgo1_has_one_averaged_head_and_mo1_n_heads(cfg):
    (avg,) = tmkd.training.specs.method_specs(cfg, "rte", "1avgo1")
    (mo1,) = tmkd.training.specs.method_specs(cfg, "rte", "mo1")
    (nokd,) = tmkd.training.specs.method_specs(cfg, "rte", "no_kd")
    assert avg.average_teachers and avg.teachers == TEACHERS and avg.n_heads == 1
    assert not mo1.average_teachers and mo1.n_heads == 3
    assert nokd.teachers == () and nokd.alpha == 0.0 and nokd.n_heads == 0
    assert len({s.name for s in (avg, mo1, nokd)}) == 3


def test_names_say_method_depth_alpha_and_seed(cfg):
    names = {m: tmkd.training.specs.method_specs(cfg, "qnli", m)[0].name for m in ("no_kd", "1o1", "1avgo1", "mo1")}
    assert names == {"no_kd": "nokd-k3-s42", "1o1": f"1o1-{BEST}-k3-a0.7-s42", "1avgo1": "1avgo1-k3-a0.7-s42",
                     "mo1": "mo1-k3-a0.7-s42"}
    assert tmkd.training.specs.base_spec(cfg, "rte", head_layers=2, optimizer="sgd").name == "mo1-k3-h2-sgd-a0.7-s42"
    assert helpers.teacher_names(stub_run("x", teacher_lrs=(4e-5, 1e-4, 1.5e-5))) == [
        "teacher-lr4e-05", "teacher-lr1e-04", "teacher-lr1.5e-05"]


def test_student_output_is_the_log_of_eq6():
    config = tmkd.model.method.TMKDConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16, num_labels=3, n_teachers=2, alpha=0.5)
    student = helpers.TMKDStudent(config).eval()
    ids = torch.tensor([[1, 4, 5, 2]])
    golden, soft = student.heads(ids)
    out = student(input_ids=ids).logits
    torch.testing.assert_close(out.exp(), helpers.head_probabilities(golden, soft, 0.5))
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(1))


def test_a_method_registered_in_its_record_alone_is_trained_tabled_compared_and_planned(run_copy, monkeypatch):
    """A test-only method (m-o-1 of the first two teachers, compared with m-o-1) added to the registry and nowhere
    else: chapter 04's arms train it in a folder of its own, the tables show it, its comparison is made and the plan
    counts its students."""
    methods = tmkd.model.methods
    record = methods.KDMethod("mo1_pair", "m-o-1 of two teachers", lambda teachers, best, weak: [
        methods.Student(teachers[:2])], compared=(methods.Comparison(
            "mo1", "own", ("04",), "m-o-1 of two teachers vs of all", "two teachers teach as well as all"),))
    cfg = run_copy
    planned = build_plan(cfg)["models"]
    monkeypatch.setitem(methods.REGISTRY, record.key, record)
    task, experiments = cfg.stage2_task, tmkd.training.experiments
    assert (task, "mo1_pair") in experiments.chapter_arms(cfg, "04", variants=False)
    experiments.run_arms(cfg, [(task, "mo1"), (task, "mo1_pair")])
    pair, = experiments.method_specs(cfg, task, "mo1_pair")
    (mo1,) = experiments.method_specs(cfg, task, "mo1")
    assert pair.teachers == mo1.teachers[:2] and pair.name != mo1.name and pair.n_heads == 2
    assert (tmkd.training.students.student_dir(cfg, pair) / "final" / "done.json").exists()
    table = seed_table(experiments.configured_metrics(cfg))
    assert "m-o-1 of two teachers" in table.index and table.loc["m-o-1 of two teachers"].notna().any()
    pairs = [p for p in methods.comparisons("04") if "mo1_pair" in p]
    assert pairs == [("mo1_pair", "mo1")]
    compared = compare_methods(cfg, pairs, tasks=[task])
    assert set(compared["a"]) == {"mo1_pair"} and (compared["whose"] == "series").all()
    assert compared["claim"].str.contains("two teachers teach as well as all").all()
    assert ("mo1_pair", len(cfg.seeds)) in students_per_task(cfg, "04")
    counted = {what: n for _, what, n, _, _ in build_plan(cfg)["models"]}
    before = {what: n for _, what, n, _, _ in planned}
    assert counted[f"{task} one-stage students"] == before[f"{task} one-stage students"] + len(cfg.seeds)


def test_the_records_paper_rows_are_the_papers_table_4():
    """A record with a paper row is a row of the paper's Table 4 (tmkd.model.paper), and every Table 4 row has one."""
    from tmkd.model.paper import PUBLISHED
    assert {k for k, m in tmkd.model.methods.REGISTRY.items() if m.paper} == set(PUBLISHED["paper"])
    assert set(PUBLISHED["slides"]) <= set(tmkd.model.methods.REGISTRY)
