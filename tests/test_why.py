"""Why one-stage KD trails no KD (chapter 04's own questions, issue 43): the label-only control's targets, the teachers
on the pairs they trained on against pairs they never saw, each head scored alone, and the alpha sweep of both
methods. Hand-checked pieces on the shared teacher run; what the chain records on the shared smoke chain."""
import numpy as np
import pandas as pd
import pytest
import torch

import helpers
import tmkd.core.config
from tmkd.training.logit_cache import stacked_teacher_logits, with_label_logits
from tmkd.training.students import WithHeads, first_batch, fresh_student
from tmkd.reporting.why import seen_sentence
from tmkd.training.teacher_selection import teacher_quality, teachers_seen_and_unseen


def seen(train, select):
    """A teachers_seen_and_unseen frame of one teacher: (accuracy, P(gold), RMS) on its train and select pairs."""
    return pd.DataFrame([{"task": "qnli", "teacher": "t", "pairs": pairs, "n": n, "accuracy (%)": a,
                          "P(gold label) (%)": p, "top probability (%)": p, "logit RMS": r}
                         for pairs, n, (a, p, r) in (("train (trained on)", 1200, train),
                                                     ("select (never saw)", 1000, select))])


def test_the_seen_and_unseen_sentence_says_what_its_numbers_say():
    both = seen_sentence(seen((99.0, 95.0, 2.20), (80.0, 72.0, 1.71)))
    assert "right on 99.0 % and give the gold label 95.0 %" in both and "1.29x as large" in both
    assert "surer and larger targets than stage 1 reads" in both
    neither = seen_sentence(seen((80.0, 72.0, 1.71), (80.0, 71.5, 1.70)))
    assert "1.01x" in neither and "neither surer nor larger" in neither and "no support" in neither


@pytest.mark.parametrize("task", ["qnli", "mnli"])        # two classes and three
def test_label_only_targets_are_the_gold_label_at_each_teachers_own_scale(run_copy, task):
    cfg, teachers = run_copy, helpers.teacher_names(run_copy)
    ds = with_label_logits(cfg, task, "train", teachers)
    targets, gold = np.array(ds["teacher_logits"]), np.array(ds["label"])                   # (n, N, C), (n,)
    own = stacked_teacher_logits(cfg, task, teachers, "train", helpers.task_data(cfg, task)["train"])
    n, N, C = targets.shape
    for i in range(N):
        s = np.sqrt((own[:, i] ** 2).mean())                                   # the teacher's own logit RMS
        expected = np.full((n, C), -s / np.sqrt(C - 1))
        expected[np.arange(n), gold] = s * np.sqrt(C - 1)                       # +s, -s for two classes
        np.testing.assert_allclose(targets[:, i], expected, rtol=1e-5)
        np.testing.assert_allclose(np.sqrt((targets[:, i] ** 2).mean()), s, rtol=1e-5)    # the same magnitude
    assert (targets.argmax(-1) == gold[:, None]).all() and np.allclose(targets.sum(-1), 0, atol=1e-5)


def test_the_teachers_on_seen_and_unseen_pairs_read_their_cached_logits(run_copy):
    cfg, task = run_copy, "qnli"
    seen = teachers_seen_and_unseen(cfg, task)
    names = helpers.teacher_names(cfg)
    assert list(seen["pairs"]) == ["train (trained on)"] * len(names) + ["select (never saw)"] * len(names)
    select = seen[seen["pairs"].str.startswith("select")].set_index("teacher")
    quality = teacher_quality(cfg, task).set_index("teacher")
    np.testing.assert_allclose(select["accuracy (%)"], quality["select_accuracy"], atol=0.01)
    ds = helpers.task_data(cfg, task)["train"]
    z = stacked_teacher_logits(cfg, task, names, "train", ds)[:, 0]
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    first = seen.iloc[0]
    assert first["n"] == len(ds) and np.isclose(first["logit RMS"], np.sqrt((z ** 2).mean()))
    assert np.isclose(first["P(gold label) (%)"], 100 * p[np.arange(len(ds)), ds["label"]].mean())
    assert np.isclose(first["top probability (%)"], 100 * p.max(-1).mean())


def test_one_forward_scores_eq6_the_golden_head_and_the_soft_heads(run_copy):
    cfg, task = run_copy, "qnli"
    student = fresh_student(cfg, task, n_teachers=3, alpha=0.7)
    batch = {k: v for k, v in first_batch(cfg, task).items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        every = WithHeads(student)(**batch).logits
        golden, soft = student.heads(**batch)
        eq6 = student(**batch).logits
    C = golden.shape[1]
    assert torch.equal(every[:, :C], eq6)                                       # what the student predicts, unchanged
    torch.testing.assert_close(every[:, C:2 * C].exp(), golden.softmax(-1))
    torch.testing.assert_close(every[:, 2 * C:].exp(), soft.softmax(-1).mean(1))


def test_the_chain_trains_the_label_only_control_and_both_alpha_sweeps(smoke_chain):
    run, _ = smoke_chain
    cfg = tmkd.core.config.make_config("smoke", run_dir=str(run))
    m = helpers.read_metrics(run)
    label = m[(m["method"] == "mo1_label") & (m["sweep"] == "")]
    assert set(label["task"]) == set(cfg.tasks) and set(label["seed"].astype(int)) == set(cfg.seeds[:3])
    assert label["model"].str.contains("mo1-labelonly-").all()
    intervals = pd.read_csv(run / "tables" / "intervals_one_stage.csv")
    pairs = set(zip(intervals["a"], intervals["b"]))
    assert {("mo1_label", "no_kd"), ("mo1_label", "mo1")} <= pairs
    assert (intervals[intervals["a"] == "mo1_label"]["seeds"] == min(3, len(cfg.seeds))).all()
    alpha = m[m["sweep"] == "alpha"]
    for method in ("tmkd", "mo1"):
        assert sorted(alpha[alpha["method"] == method]["alpha"].astype(float).unique()) == sorted(cfg.alphas)
    table = (run / "tables" / "alpha_sweep.md").read_text()
    assert "TMKD dev accuracy" in table and "m-o-1 (MKD) dev accuracy" in table


def test_the_heads_table_holds_what_each_student_predicts(smoke_chain):
    """Its Eq. 6 column is each arm's recorded dev accuracy (the same predictions), mean over its seeds."""
    run, _ = smoke_chain
    heads = pd.read_csv(run / "tables" / "heads_one_stage.csv", index_col=0)
    m = helpers.read_metrics(run)
    mo1 = heads[(heads["task"] == "qnli") & (heads["method"] == "m-o-1 (MKD)")].iloc[0]
    rows = m[(m["method"] == "mo1") & (m["sweep"] == "") & (m["task"] == "qnli") & (m["split"] == "validation")]
    assert mo1["seeds"] == len(rows)
    assert np.isclose(mo1["Eq. 6: all heads (%)"], 100 * rows["accuracy"].astype(float).mean())
    chapter = (run / "executed" / "04_one_vs_many.ipynb").read_text()
    assert "golden head" in chapter and "the label-only control minus no KD" in chapter
