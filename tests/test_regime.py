"""Issue 31: the offline profile in the paper's regime. Fast tests of the pieces (the side arms' seeds, the corpus-size
curve's nested subsets and its refusal, its sentence on a hand-made table, why the offline corpus has no RTE pairs),
and the bars on the published reference: GLUE's whole QNLI dev set, a stage-1 corpus at least 10x the labelled
pairs, teachers at least 4 points above no KD, a corpus-size table of at least 4 sizes, and TMKD - m-o-1 and
TMKD - no KD each detectable at 3 points or less."""
import json

import numpy as np
import pandas as pd
import pytest

import tmkd.core.config
from tmkd.reporting.answers import stage1_size_sentence
from tmkd.training.specs import arm_seeds
from tmkd.reporting.report import stage1_size_table
from tmkd.chain.plan import build_plan, stage1_sentence
from tmkd.training.students import corpus_subset
from conftest import REPO, SHARED_GLUE, needs_shared_glue

REF = REPO / "results" / "reference"


def offline(**settings):
    return tmkd.core.config.make_config("offline", data_dir=str(SHARED_GLUE), **settings)


def test_main_arms_train_every_seed_and_side_arms_the_first_side_seeds():
    cfg = tmkd.core.config.make_config("smoke", seeds=(1, 2, 3, 4, 5), side_seeds=2)
    for method in ("no_kd", "mo1", "tmkd"):
        assert arm_seeds(cfg, method) == (1, 2, 3, 4, 5)
    for method in ("1o1", "1avgo1", "mom_avg", "mom_vote", "tkd", "mo1_matched", "mo1_strong"):
        assert arm_seeds(cfg, method) == (1, 2)
    assert arm_seeds(tmkd.core.config.make_config("smoke", seeds=(1, 2, 3)), "tkd") == (1, 2, 3)     # 0 = every seed


def test_side_seeds_above_the_seed_count_is_refused():
    with pytest.raises(tmkd.core.config.TMKDError, match="side_seeds=4 is more than the 3 seeds"):
        tmkd.core.config.make_config("smoke", seeds=(1, 2, 3), side_seeds=4)


def test_corpus_size_subsets_are_nested_and_a_subset_larger_than_the_corpus_is_refused():
    cfg = tmkd.core.config.make_config("smoke")
    small, large = corpus_subset(cfg, 1000, 100), corpus_subset(cfg, 1000, 400)
    assert len(small) == 100 and len(large) == 400 and set(small) <= set(large)
    assert np.all(np.diff(large) > 0)                                  # the corpus' own order, no repeats
    with pytest.raises(tmkd.core.config.TMKDError, match="holds 1,000"):
        corpus_subset(cfg, 1000, 1001)


def test_the_plan_counts_the_side_seeds_and_the_curve():
    plan = build_plan(tmkd.core.config.make_config("smoke", seeds=(1, 2, 3), side_seeds=1, stage1_sizes=(0, 100)))
    rows = {what: count for _, what, count, _, _ in plan["models"]}
    assert rows["stage-1 students (TMKD, TKD)"] == 3 + 1
    assert rows["stage-1 student on 100 of the pairs (corpus-size curve)"] == 1
    assert rows["qnli stage-2 students of the corpus-size curve"] == 1
    assert rows["qnli compute-matched m-o-1"] == 1
    # no KD, m-o-1 x 3; 1avg-o-1, 3 x 1-o-1 x 1; the label-only control on its own 3 seeds (tmkd.model.methods)
    assert rows["qnli one-stage students"] == 2 * 3 + (1 + 3) * 1 + 3
    beyond = build_plan(tmkd.core.config.make_config("smoke", stage1_sizes=(0, 10**6)))      # a size beyond the corpus
    assert not beyond["problems"] and not [m for m in beyond["models"] if "corpus-size" in m[1]]   # is the corpus


@needs_shared_glue
def test_the_offline_plan_is_in_the_papers_regime():
    plan = build_plan(offline())
    assert plan["tasks"]["qnli"]["dev"] == {"validation": 5463}
    assert plan["stage1"]["ratio"] >= 10
    assert len(set(offline().stage1_sizes) | {plan["stage1"]["pairs"]}) >= 4
    assert len(offline().seeds) >= 5 and offline().side_seeds >= 1


@needs_shared_glue
def test_the_offline_corpus_says_why_it_reads_no_rte_pairs():
    text = stage1_sentence(offline())
    assert "QNLI-style question-sentence pairs only, not RTE's pairs" in text and "majority class" in text
    assert "not RTE's pairs" not in stage1_sentence(tmkd.core.config.make_config("smoke"))      # smoke pools RTE's


def curve(after2, after1=None):
    sizes = [0, 100, 400, 1000][:len(after2)]
    after1 = after1 or [None] + [60.0] * (len(after2) - 1)
    return pd.DataFrame({"stage-1 pairs": sizes, "labelled pairs": 100, "x labelled pairs": [s / 100 for s in sizes],
                         "after stage 1 (%)": after1, "after stage 2 (%)": after2})


def test_the_size_sentence_reads_the_table():
    lines = {"teachers' ensemble": 80.0, "no KD (mean of 5 seeds)": 70.0}
    text = stage1_size_sentence(curve([71.0, 72.0, 74.0, 75.0]), lines)
    assert "0 pairs (0x) 71.0 %" in text and "1,000 pairs (10x) 75.0 %" in text
    assert "gains 4.0 points, rising at every size" in text
    assert "closes 50 % of that gap" in text
    assert "loses 2.0 points" in stage1_size_sentence(curve([71.0, 72.0, 69.0]), lines)
    assert "not at every step" in stage1_size_sentence(curve([71.0, 73.0, 72.0]), lines)
    assert "(none: below no KD)" in stage1_size_sentence(curve([71.0, 66.0]), lines)


def test_the_size_table_says_no_stage_1_where_there_is_none_and_keeps_the_numbers():
    table = curve([71.0, 72.0]).assign(**{"after stage 1 (%)": [None, 65.5]})
    shown = stage1_size_table(table)
    assert list(shown["after stage 1 (%)"]) == ["no stage 1", 65.5]
    assert table["after stage 1 (%)"].isna().iloc[0]                      # the table it was given is unchanged


# ---- the bars on the published reference --------------------------------------------------------------------

def reference():
    if not (REF / "metrics.csv").exists():
        pytest.skip("no published reference")
    chain = json.loads((REF / "chain.json").read_text())
    if chain.get("profile") != "offline" or not (REF / "tables" / "stage1_size.csv").exists():
        pytest.skip("the reference predates the regime issue (no corpus-size table)")
    return pd.read_csv(REF / "metrics.csv")


def test_reference_is_scored_on_glue_whole_qnli_dev():
    m = reference()
    assert set(m[m["task"] == "qnli"]["n_examples"].astype(int)) == {5463}


def test_reference_stage1_reads_ten_times_the_no_kd_students_pairs():
    m = reference()
    students = m[m["method"].isin(["no_kd", "1o1", "1avgo1", "mo1", "tkd", "tmkd", "mo1_matched"])]
    assert len(students) and students["train_pairs"].notna().all()          # every student row says what it read
    no_kd = students[(students["method"] == "no_kd") & (students["sweep"].fillna("") == "")]["train_pairs"].max()
    stage1 = m[(m["stage"].astype(str) == "1") & (m["sweep"].fillna("") == "stage1")]["train_pairs"].min()
    assert stage1 >= 10 * no_kd


def test_reference_teachers_ensemble_is_four_points_above_no_kd():
    m = reference()
    main = m[m["sweep"].fillna("") == ""]
    ensemble = main[main["method"] == "teacher_ensemble"]["accuracy"].mean()
    no_kd = main[main["method"] == "no_kd"]["accuracy"].mean()
    assert 100 * (ensemble - no_kd) >= 4.0


def test_reference_corpus_size_table_has_four_sizes():
    reference()
    table = pd.read_csv(REF / "tables" / "stage1_size.csv")
    assert table["stage-1 pairs"].nunique() >= 4 and 0 in set(table["stage-1 pairs"])
    assert (REF / "figures" / "stage1_size.png").exists()


@pytest.mark.xfail(strict=True, reason="the 2026-12-05 reference (1,200 pairs, 7 seeds) detects TMKD - m-o-1 at 2.61 "
                   "points but TMKD - no KD at 3.08: no KD's seed spread (sd 1.5) is nearly twice TMKD's")
def test_reference_tmkd_comparisons_are_detectable_at_three_points():
    reference()
    iv = pd.read_csv(REF / "tables" / "intervals.csv")
    for b in ("mo1", "no_kd"):
        row = iv[(iv["a"] == "tmkd") & (iv["b"] == b)]
        assert len(row) == 1, f"TMKD - {b} missing from intervals.csv"
        assert float(row["detectable"].iloc[0]) <= 3.0


def test_a_one_seed_comparison_gets_no_verdict_however_narrow_its_dev_interval():
    from tmkd.stats.evidence import adjust_family, comparison_row
    from tmkd.stats.intervals import paired_interval
    from tmkd.reporting.takeaways import span
    rng = np.random.default_rng(0)
    b = rng.random((1, 5000)) < 0.70
    a = b | (rng.random((1, 5000)) < 0.30)                   # A fixes a third of B's errors: +9 points at one seed
    interval = paired_interval(a, b)
    assert interval["low"] > 0                               # the dev sample alone would call it
    row = adjust_family([comparison_row("qnli", "validation", "mo1", "1o1", interval)], [interval], 3)[0]
    assert row["verdict"] == "one seed: no verdict"
    assert "one seed" in span(row)
    two = np.vstack([a, a]), np.vstack([b, b])
    interval = paired_interval(*two)
    row = adjust_family([comparison_row("qnli", "validation", "mo1", "1o1", interval)], [interval], 3)[0]
    assert row["verdict"] != "one seed: no verdict" and "one seed" not in span(row)


def test_a_one_seed_comparison_borrows_the_headline_seed_level_and_is_never_narrower_than_it():
    """Seven seeds whose per-seed differences spread by a few points: the one-seed arm's interval gets that spread
    whole (one seed is not an average), so it is wider than the seven-seed interval it borrowed from."""
    from tmkd.stats.evidence import lend_seed_level
    from tmkd.stats.intervals import paired_interval
    rng = np.random.default_rng(3)
    b = rng.random((7, 3000)) < 0.68
    a = rng.random((7, 3000)) < (0.66 + 0.03 * rng.standard_normal((7, 1)))     # each seed its own shift
    main = paired_interval(a, b)
    one = paired_interval(a[:1] | (rng.random((1, 3000)) < 0.1), b[:1])
    keys = [("qnli", "validation", "mo1", "no_kd"), ("qnli", "validation", "mo1", "1o1")]
    lent_main, lent = lend_seed_level(keys, [main, one])
    assert lent_main is main and lent["borrowed"] and not lent["seed_level"]
    assert lent["high"] - lent["low"] > main["high"] - main["low"] > one["high"] - one["low"]
    assert lent["se_seeds"] ** 2 == pytest.approx(main["parts"]["seeds"]) and lent["t_seeds"] == 7
