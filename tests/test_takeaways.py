"""The generated words on hand-made interval tables and metrics: chapters 04, 05, 06 and 08's answers (each first,
in plain words, true to the verdicts), the power sentences and the README's first-screen findings. The overclaim of the reference before issue 29 (the
compute-matched control, a comparison the paper never made, counted among the paper's claims and leading the
findings) must not come back."""
import pandas as pd
import pytest

from tmkd.reporting import publish
from tmkd.reporting.answers import conclusion, kd_takeaway, matched_takeaway, stage1_takeaway
from tmkd.reporting.takeaways import power_sentences, verdict_summary


def hand_row(a, b, difference, low, high, verdict, family="exploratory", whose="paper", level=0.95, paper=None,
             task="qnli", **extra):
    return {"task": task, "split": "validation", "a": a, "b": b, "whose": whose, "family": family,
            "adjustment": "Holm over 3" if family == "primary" else "none",
            "claim": f"claim {a} vs {b}", "seeds": 3, "examples": 2000, "paper_difference": paper,
            "paper_resolution": 1.5 if paper is not None else None, "difference": difference,
            "low": low, "high": high, "p_value": 0.2, "p_holm": 0.6 if family == "primary" else None,
            "verdict_level": level, "verdict_low": low, "verdict_high": high, "detectable": 3.0,
            "examples_needed": None, "seeds_needed": None, "verdict": verdict} | extra


HOLM = 1 - 0.05 / 3


def overclaim_table():
    """The reference's comparisons as the old code read them, the control's 'reproduced' among them, now each in
    its place: three headline claims, the paper's other claims, and the series' own question answered 'yes'."""
    return pd.DataFrame([
        hand_row("mo1", "no_kd", -1.23, -5.17, 2.71, "inconclusive", "primary", level=HOLM, paper=-0.71),
        hand_row("mo1", "1o1", 0.58, -2.62, 4.18, "inconclusive", paper=0.15),
        hand_row("tmkd", "mo1", 1.20, -3.94, 6.34, "inconclusive", "primary", level=HOLM, paper=5.73),
        hand_row("tmkd", "no_kd", -0.04, -3.0, 2.9, "no difference shown (estimate of opposite sign)", "primary",
                 level=HOLM, paper=5.02),
        hand_row("tmkd", "mo1_matched", 1.57, 0.10, 3.17, "stage 1 beats more steps: yes", whose="series"),
        hand_row("tmkd", "tkd", 1.32, -1.30, 4.23, "no difference shown (estimate of opposite sign)", paper=-2.36)])


def test_the_conclusion_counts_the_papers_claims_apart_and_repeats_no_row_of_the_table():
    text = conclusion(overclaim_table())
    first = text.splitlines()[0]
    assert first == ("The paper's headline claims: 3 (1 no difference shown, 2 inconclusive); the paper's other "
                     "claims: 2 (1 no difference shown, 1 inconclusive); the series' own questions: 1 (1 yes).")
    assert "reproduced" not in text and "[-3.94, +6.34]" not in text       # every comparison is a row of the table


def test_a_chapter_table_without_headline_claims_says_so():
    d = overclaim_table()
    assert verdict_summary(d[d["family"] != "primary"]).startswith("The paper's headline claims: none in this table")


def hand_metrics(means, task="qnli", seeds=(1, 2, 3), sweep=""):
    """metrics.csv rows: each method's accuracy (a fraction) per seed, +0.001 per seed number."""
    return pd.DataFrame([{"task": task, "method": m, "model": f"{task}/{m}-s{s}", "split": "validation",
                          "sweep": sweep, "seed": s, "accuracy": acc + 0.001 * s, "n_examples": 1000}
                         for m, acc in means for s in seeds])


def test_kd_takeaway_answers_first_whether_any_kd_method_beats_no_kd():
    metrics = hand_metrics((("no_kd", 0.680), ("mo1", 0.667), ("1o1", 0.661)))
    below = pd.DataFrame([hand_row("mo1", "no_kd", -1.3, -2.5, -0.1, "a difference the paper has none of",
                                   "primary", level=HOLM, paper=-0.71)])
    lines = kd_takeaway(metrics, below, ["qnli"]).splitlines()
    assert lines[0] == "Does any KD method beat the no-KD student? No: m-o-1 does not beat it beyond this run's noise on any task."
    assert lines[1] == "On QNLI dev: no KD 68.2 % and m-o-1 66.9 % (3 seeds each)."
    assert lines[2] == "m-o-1 minus no KD: -1.30 points (95 % interval -2.50 to -0.10, 3 paired seeds); the paper has -0.71."
    assert lines[3] == "At seed 1, which every arm has: no KD 68.1 %, 1-o-1 66.2 % and m-o-1 66.8 %."
    assert lines[-1].startswith("These verdicts are provisional: chapter 08 adjusts")
    above = below.assign(difference=1.3, verdict_low=0.1, verdict_high=2.5)
    assert kd_takeaway(metrics, above, ["qnli"]).startswith("Does any KD method beat the no-KD student? Yes: m-o-1 beats "
                                                             "it beyond noise on QNLI.")
    holds_zero = below.assign(verdict_high=2.0)
    one_seed_above = pd.concat([hand_metrics((("no_kd", 0.660), ("mo1", 0.650))),
                                hand_metrics((("1o1", 0.667),), seeds=(1,))])
    first = kd_takeaway(one_seed_above, holds_zero, ["qnli"]).splitlines()[0]
    assert first.endswith("beyond this run's noise on any task. 1-o-1 on QNLI scores above no KD at seed 1, one seed, "
                          "which tells no verdict.")


def test_a_one_seed_arm_is_read_against_the_main_arms_at_its_own_seed_never_their_mean():
    """Seed 1's no KD is the weakest of three (as the reference's seed 42 was): the one-seed arm's gap is read there."""
    metrics = pd.concat([hand_metrics((("no_kd", 0.680),), seeds=(2, 3)), hand_metrics((("no_kd", 0.650),), seeds=(1,)),
                         hand_metrics((("1o1", 0.640),), seeds=(1,))])
    from tmkd.reporting.report import matched
    pair = matched(metrics, "1o1", "no_kd", "qnli")
    assert pair["seeds"] == [1] and pair["a"] == pytest.approx(64.1) and pair["b"] == pytest.approx(65.1)
    at = kd_takeaway(metrics, pd.DataFrame(), ["qnli"]).splitlines()
    assert "At seed 1, which every arm has: no KD 65.1 % and 1-o-1 64.1 %." in at


def test_every_answer_sentence_is_short():
    """A learner reads each sentence of an answer in one pass: none over 45 words."""
    import re
    metrics = hand_metrics(TWO_STAGE_MEANS + (("teacher", 0.702), ("teacher_ensemble", 0.728), ("1o1", 0.64),
                                              ("1avgo1", 0.64), ("mom_avg", 0.65), ("mom_vote", 0.65)))
    texts = [kd_takeaway(metrics, overclaim_table(), ["qnli"]), matched_takeaway(metrics, overclaim_table(), ["qnli"]),
             conclusion(overclaim_table(), metrics, {"04": overclaim_table().assign(verdict="inconclusive")})]
    for text in texts:
        for sentence in re.split(r"(?<=[.?!])\s+|\n", text):
            assert len(sentence.split()) <= 45, sentence


TWO_STAGE_MEANS = (("no_kd", 0.678), ("mo1", 0.665), ("mo1_matched", 0.662), ("tmkd", 0.677))


def test_matched_takeaway_answers_first_and_says_tmkd_does_not_beat_no_kd():
    lines = matched_takeaway(hand_metrics(TWO_STAGE_MEANS), overclaim_table(), ["qnli"]).splitlines()
    assert lines[0] == ("QNLI: does TMKD beat one-stage m-o-1, the compute-matched control and no KD? It beats the "
                        "compute-matched control beyond this run's noise.")
    assert lines[1] == "On QNLI dev: no KD 68.0 %, m-o-1 66.7 % and TMKD 67.9 % (3 seeds each)."
    assert lines[2] == "TMKD minus m-o-1: +1.20 points (95 % interval -3.94 to +6.34, 3 paired seeds); the paper has +5.73."
    assert lines[3] == "TMKD minus no KD: -0.04 points (95 % interval -3.00 to +2.90, 3 paired seeds); the paper has +5.02."
    assert lines[4] == ("So two-stage distillation does not pay here: TMKD (67.9 %) does not beat no KD (68.0 %), not "
                        "even on its mean.")
    better = overclaim_table()
    better.loc[better["b"] == "no_kd", ["verdict_low", "verdict_high"]] = [0.5, 3.0]
    assert "does not pay" not in matched_takeaway(hand_metrics(TWO_STAGE_MEANS), better, ["qnli"])


def test_the_control_is_read_at_its_own_seed_against_m_o_1_and_tmkd():
    """The control trains one seed: the answer puts it beside m-o-1 and TMKD at that seed, not beside their means."""
    metrics = pd.concat([hand_metrics((("no_kd", 0.678), ("mo1", 0.665), ("tmkd", 0.677))),
                         hand_metrics((("mo1_matched", 0.670),), seeds=(1,))])
    d = overclaim_table()
    d.loc[d["b"] == "mo1_matched", ["seeds", "verdict"]] = [1, "one seed: no verdict"]
    text = matched_takeaway(metrics, d, ["qnli"])
    assert "At seed 1, which the control has: TMKD 67.8 %, the control 67.1 % and one-stage m-o-1 66.6 %." in text
    assert "So more steps move m-o-1 by +0.5 points and stage 1 by +1.2 at seed 1 (one seed: no verdict)." in text


def test_stage1_takeaway_answers_what_stage_1_alone_gives_against_majority_and_no_kd():
    metrics = pd.concat([hand_metrics((("tmkd", 0.596),), sweep="stage1"), hand_metrics((("no_kd", 0.678),))])
    text = stage1_takeaway(metrics, {"qnli": 51.3})
    assert text.splitlines()[0].startswith("What stage 1 alone gives")
    assert ("TMKD after stage 1 alone: 59.8 ± 0.1 % over 3 seeds on QNLI dev, 8.5 points above the 51.3 % majority "
            "class.\nThe no-KD student, trained on gold labels, has 68.0 % at the same 3 seeds (-8.2 points).") in text
    flat = stage1_takeaway(hand_metrics((("tmkd", 0.500),), sweep="stage1"), {"qnli": 51.3})
    assert "at or below the 51.3 % majority class: it did not learn" in flat and "points above" not in flat


def test_the_conclusion_leads_with_how_close_tmkd_comes_to_its_teachers():
    metrics = hand_metrics(TWO_STAGE_MEANS + (("teacher", 0.702), ("teacher_ensemble", 0.728)))
    lines = conclusion(overclaim_table(), metrics).splitlines()
    assert lines[0] == "How close does the student come to its teachers?"
    assert lines[1] == ("On QNLI dev, TMKD reaches 67.9 % (3 seeds): 96.5 % of the mean teacher's 70.4 % and 93.0 % of "
                        "the ensemble's 73.0 %.")
    assert lines[2] == "The no-KD student reaches 68.0 %, 96.6 % of the mean teacher."
    assert lines[3] == "In the paper, TMKD_base reaches 92.5 % of its teachers (83.53 against 90.30)."
    assert lines[4:6] == ["Of the paper's headline claims, no difference shown: TMKD vs no KD.",
                          "Of the paper's headline claims, inconclusive: m-o-1 vs no KD and TMKD vs m-o-1."]
    held = overclaim_table()
    held.loc[(held["a"] == "tmkd") & (held["b"] == "mo1"), "verdict"] = "opposite"
    text = conclusion(held, metrics)
    assert "Of the paper's headline claims, opposite to the paper: TMKD vs m-o-1." in text
    assert "reversed" not in text and "reversed" not in conclusion(overclaim_table(), metrics)


def test_the_conclusion_names_each_verdict_that_changed_since_an_earlier_chapter_and_why():
    metrics = hand_metrics(TWO_STAGE_MEANS + (("teacher", 0.702),))
    final = overclaim_table()
    final.loc[final["b"] == "no_kd", "verdict_level"] = 0.95
    earlier = overclaim_table()
    earlier.loc[(earlier["a"] == "mo1") & (earlier["b"] == "no_kd"), "verdict"] = "no difference shown"
    text = conclusion(final, metrics, {"04": earlier, "06": None})
    assert ("QNLI m-o-1 minus no KD: chapter 04 read no difference shown, this chapter inconclusive (with the whole "
            "family in, Holm's step-down reads it at 95.0 %, not 98.3 %).") in text
    assert "No verdict changed" in conclusion(final, metrics, {"04": overclaim_table()})


def test_power_sentences_for_undecided_claims_of_the_paper_only():
    d = pd.DataFrame([
        hand_row("tmkd", "mo1", 1.2, -3.9, 6.3, "inconclusive", "primary", level=HOLM, paper=5.73,
                 examples_needed=9050, seeds_needed=4, detectable=5.96),
        hand_row("tmkd", "tkd", 1.3, -5.3, 7.9, "no difference shown", paper=-2.36, examples_needed=None,
                 seeds_needed=45, detectable=8.27),
        hand_row("mo1", "1o1", 0.5, -1.0, 2.0, "no difference shown", paper=4.0, examples_needed=800,
                 seeds_needed=2, detectable=3.1),
        hand_row("mo1", "1avgo1", 3.0, 1.0, 5.0, "reproduced", paper=2.0, examples_needed=100, seeds_needed=2),
        hand_row("tmkd", "mo1_matched", 1.57, -1.3, 4.4, "stage 1 beats more steps: cannot tell", whose="series",
                 examples_needed=500, seeds_needed=5)])
    lines = power_sentences(d)
    assert lines == [
        "QNLI TMKD vs m-o-1 (MKD): this run detects 5.96 points; the paper's 5.73 would need about 9,050 dev "
        "examples at these seeds, or about 4 seeds at these examples.",
        "QNLI TMKD vs TKD: this run detects 8.27 points; the paper's 2.36 would need no number of dev examples alone "
        "at these seeds, or about 45 seeds at these examples.",
        "QNLI m-o-1 (MKD) vs 1-o-1: this run detects 3.10 points, less than the paper's 4.00: a true gap of the "
        "paper's size would have shown (80 % power)."]


def _reference(tmp_path, d=None):
    (tmp_path / "tables").mkdir()
    (overclaim_table() if d is None else d).to_csv(tmp_path / "tables" / "intervals.csv")
    metrics = hand_metrics(TWO_STAGE_MEANS + (("teacher", 0.702),))
    metrics.assign(params=1, sweep="").to_csv(tmp_path / "metrics.csv", index=False)
    return tmp_path


def test_readme_findings_open_with_absolute_accuracies_and_keep_the_series_own_apart(tmp_path):
    lines = publish.readme_findings(_reference(tmp_path)).splitlines()
    assert lines[0] == "- On QNLI dev: the teachers 70.4 % on average, no KD 68.0 %, m-o-1 66.7 % and TMKD 67.9 % (3 seeds each)."
    assert lines[1] == ("- m-o-1 minus no KD: -1.23 points (95 % interval -5.17 to +2.71, 3 paired seeds); the paper "
                        "has -0.71.")
    assert lines[-1] == "- The series' own questions, not the paper's: 1, 1 yes."
    assert [i for i, line in enumerate(lines) if "own questions" in line] == [len(lines) - 1]
    verdicts = publish.readme_verdicts(tmp_path)
    assert verdicts.index("paper, headline") < verdicts.index("paper, other") < verdicts.index("the series' own")
    assert "| **stage 1 beats more steps: yes** |" in verdicts


@pytest.mark.parametrize("group", ["primary", "exploratory"])
def test_a_reproduced_claim_of_the_paper_is_named_in_the_findings(tmp_path, group):
    d = overclaim_table()
    d.loc[d["b"] == "1o1", ["family", "verdict", "verdict_low"]] = [group, "reproduced", 0.3]
    text = publish.readme_findings(_reference(tmp_path, d))
    assert ("Of the paper's headline claims, reproduced: m-o-1 vs 1-o-1." in text if group == "primary" else
            "The paper's other claims: 2 comparisons, 1 reproduced, 1 no difference shown." in text)


def test_the_readme_reads_what_a_needed_size_column_becomes_in_a_csv(tmp_path):
    """A column of sizes with blanks is read back as text ('14713.0'): the power sentences still read it."""
    d = overclaim_table()
    d.loc[d["b"] == "mo1", ["examples_needed", "seeds_needed", "detectable"]] = [14713, 4, 5.96]
    d.loc[d["b"] == "tkd", ["seeds_needed", "detectable"]] = [45, 8.27]
    d.loc[d["b"] == "no_kd", ["examples_needed", "detectable"]] = [None, 240.0]
    d.loc[(d["b"] == "no_kd") & (d["a"] == "tmkd"), "seeds_needed"] = 56
    text = publish.readme_verdicts(_reference(tmp_path, d))
    assert "- QNLI TMKD vs m-o-1 (MKD): this run detects 5.96 points; the paper's 5.73 would need about 14,713 dev " \
           "examples at these seeds, or about 4 seeds at these examples." in text
    assert "- QNLI TMKD vs student, no KD: this run detects no difference two accuracies can have (detectable 240 " \
           "points); the paper's 5.02 would need no number of dev examples alone at these seeds, or about 56 seeds" in text


def test_a_one_seed_control_is_never_said_to_be_beaten_and_its_detectable_is_a_lower_bound():
    """The reference's control trained one seed: its interval excludes 0 on the dev sample alone, which reads no
    verdict; the answer must not count it among what TMKD beats, the table writes its detectable as a bound, and no
    power sentence claims what one seed could have shown."""
    from tmkd.stats.evidence import interval_table
    d = overclaim_table()
    d.loc[d["b"] == "mo1_matched", ["seeds", "verdict", "detectable"]] = [1, "one seed: no verdict", 1.56]
    d.loc[d["b"] == "tkd", ["seeds", "detectable", "examples_needed"]] = [1, 1.0, 900]
    first = matched_takeaway(hand_metrics(TWO_STAGE_MEANS), d, ["qnli"]).splitlines()[0]
    assert "It beats none of them beyond this run's noise (the compute-matched control: one seed, so no verdict)." in first
    shown = dict(zip(interval_table(d)["B"], interval_table(d)["detectable"]))
    assert shown["TKD"] == "≥ 1.00" and shown["student, no KD"] == "3.00"
    assert not any("TKD" in line for line in power_sentences(d))
    assert any("TKD" in line for line in power_sentences(d.assign(seeds=3)))
