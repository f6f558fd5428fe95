"""Issue 13's fair arms: seeds in step specs, held-out teacher choice, disjoint stage-1 corpus, init in every row,
the pooling choice, and verdicts on the paper's claims."""

import numpy as np
import pytest
import torch

import helpers
import tmkd.training.specs
import tmkd.core.config
import tmkd.inputs.data
import tmkd.stats.evidence
import tmkd.training.experiments
import tmkd.training.teacher_selection
import tmkd.training.logit_cache
from conftest import SHARED_GLUE, needs_shared_glue, smoke_config, stub_run
from tmkd.stats.evidence import claim_verdict, paired_interval


def test_student_specs_and_identities_differ_by_seed(tmp_path, stub_training):
    cfg = stub_run(tmp_path / "run", seeds=(1, 2))
    helpers.train_teachers(cfg)
    names = {s: [spec.name for spec in tmkd.training.specs.method_specs(cfg, "rte", "mo1", s)] for s in cfg.seeds}
    assert names[1] != names[2] and names[1][0].endswith("-s1") and names[2][0].endswith("-s2")
    a, b = (tmkd.training.specs.method_specs(cfg, "rte", "no_kd", s)[0] for s in cfg.seeds)
    from tmkd.training.students import student_identity
    assert student_identity(cfg, a) != student_identity(cfg, b)
    assert student_identity(cfg, a)["spec"]["seed"] == 1 and student_identity(cfg, b)["spec"]["seed"] == 2


def test_train_select_unused_are_disjoint_and_cover_the_file():
    import pandas as pd
    df = pd.DataFrame({"idx": np.arange(100)})
    parts = tmkd.inputs.data.train_parts(df, train_size=30, select_size=20, seed=0)
    ids = {k: set(v["idx"]) for k, v in parts.items()}
    assert [len(ids[k]) for k in ("select", "train", "unused")] == [20, 30, 50]
    assert not (ids["select"] & ids["train"]) and not (ids["unused"] & (ids["select"] | ids["train"]))
    with pytest.raises(tmkd.core.config.TMKDError, match="select_size"):
        tmkd.inputs.data.train_parts(df, train_size=0, select_size=60, seed=0)


@pytest.mark.parametrize("corpus", ["task", "pool"])
def test_stage1_corpus_never_holds_a_stage2_train_or_select_pair(tmp_path, corpus):
    cfg = stub_run(tmp_path / "run", stage1_corpus=corpus, stage1_task="qnli", stage1_pool_tasks=("rte", "qnli"))
    ds = tmkd.inputs.data.split_dataset(cfg, "qnli", "stage1")
    assert "label" not in ds.column_names and len(ds) > 0
    ids = np.asarray(ds["idx"])
    tasks = ("rte", "qnli") if corpus == "pool" else ("qnli",)
    for k, task in enumerate(tasks):
        mine = set((ids[(ids >= k * 10_000_000) & (ids < (k + 1) * 10_000_000)] - k * 10_000_000).tolist())
        assert mine, task
        assert not mine & set(tmkd.inputs.data.split_dataset(cfg, task, "train")["idx"])
        assert not mine & set(tmkd.inputs.data.split_dataset(cfg, task, "select")["idx"])
        assert mine <= set(tmkd.inputs.data.split_dataset(cfg, task, "unused")["idx"])
    assert all(o["shared_with_train_or_select"] == 0 for o in helpers.stage1_overlap(cfg).values())
    small = stub_run(tmp_path / "small", stage1_corpus=corpus, stage1_task="qnli", stage1_size=10)
    assert len(tmkd.inputs.data.split_dataset(small, "qnli", "stage1")) == 10


def test_stage1_without_unused_pairs_is_refused(tmp_path):
    cfg = stub_run(tmp_path / "run", train_size=0, stage1_corpus="task", stage1_task="qnli", stage1_share=0.0)
    with pytest.raises(tmkd.core.config.TMKDError, match="no unused train pairs"):
        tmkd.inputs.data.split_dataset(cfg, "qnli", "stage1")


def test_best_and_weak_teachers_never_read_dev(tmp_path, stub_training, monkeypatch):
    cfg = stub_run(tmp_path / "run")
    helpers.train_teachers(cfg)
    read = []
    real = tmkd.training.logit_cache.split_dataset

    def spy(cfg_, task, split):
        read.append(split)
        return real(cfg_, task, split)
    monkeypatch.setattr(tmkd.training.logit_cache, "split_dataset", spy)
    monkeypatch.setattr(tmkd.training.teacher_selection, "split_dataset", spy)
    best = helpers.best_teacher(cfg, "rte")
    tmkd.training.teacher_selection.weak_teachers(cfg, "rte")
    helpers.teacher_quality(cfg, "rte")
    assert best in helpers.teacher_names(cfg)
    assert read and set(read) == {"select"}, read


def test_best_teacher_follows_the_select_slice_not_dev(tmp_path, stub_training, monkeypatch):
    cfg = stub_run(tmp_path / "run")
    helpers.train_teachers(cfg)
    names = helpers.teacher_names(cfg)

    def fake(cfg_, task, teachers, split, ds=None):
        ds = tmkd.inputs.data.split_dataset(cfg_, task, split)
        gold = np.asarray(ds["label"])
        good = np.eye(2)[gold] * 5.0
        out = np.stack([good if (i == 1) == (split == "select") else -good for i in range(len(teachers))], axis=1)
        return out.astype(np.float32)
    monkeypatch.setattr(tmkd.training.teacher_selection, "stacked_teacher_logits", fake)
    assert helpers.best_teacher(cfg, "rte") == names[1]                  # dev would have said names[0]
    assert tmkd.training.teacher_selection.weak_teachers(cfg, "rte") == [names[0]]


def test_every_student_row_records_its_init_and_seed(tmp_path, stub_training):
    cfg = stub_run(tmp_path / "run", seeds=(1, 2))
    helpers.train_teachers(cfg)
    for method in ("no_kd", "1o1", "mo1", "mom_avg"):
        tmkd.training.experiments.run_method(cfg, "rte", method)
    helpers.run_stage1(cfg, "tmkd")
    tmkd.training.experiments.run_stage2(cfg, "tmkd", "rte")
    tmkd.training.experiments.run_stage2(cfg, "mo1_matched", "rte")
    m = helpers.read_metrics(cfg.run_path)
    students = m[~m["method"].isin(["teacher", "teacher_ensemble"])]
    assert len(students) and set(students[students["stage"].astype(int) < 2]["init"]) == {"base"}
    assert (students["pooling"] == cfg.pooling).all()
    stage2 = students[students["stage"].astype(int) == 2]
    assert set(stage2["seed"].astype(int)) == {1, 2}                  # stage 2's seed s starts from stage 1's seed s
    assert (stage2["init"] == f"stage1:tmkd-stage1-{cfg.stage1_corpus}-k3-s" + stage2["seed"].astype(str)).all()
    stage1 = students[students["sweep"] == "stage1"]
    assert set(stage1["seed"].astype(int)) == {1, 2}
    one_stage = students[students["sweep"] == ""]
    assert set(one_stage["seed"].astype(int)) == {1, 2}
    assert {"mom_member", "mo1_matched"} <= set(students["method"])
    matched = students[students["method"] == "mo1_matched"]
    assert (matched["epochs"].astype(float) > cfg.student_epochs).all()
    table = helpers.seed_table(m)
    assert "(2)" in table.loc["m-o-1 (MKD)", "rte"]
    correct, ids = tmkd.stats.evidence.method_correct(cfg, "rte", "mo1", "validation")
    assert correct.shape == (2, len(ids)) and (np.diff(ids) > 0).all()


def test_teacher_init_is_named_in_the_rows(tmp_path, stub_training):
    cfg = stub_run(tmp_path / "run", student_init="teacher", seeds=(1,))
    helpers.train_teachers(cfg)
    rows = tmkd.training.experiments.run_method(cfg, "rte", "no_kd")
    assert rows[0]["init"] == f"teacher:{helpers.best_teacher(cfg, 'rte')}"


def test_mean_pooling_ignores_padding_and_cls_takes_the_first_token():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(helpers.pool(h, mask, "mean"), torch.tensor([[2.0, 3.0]]))
    assert torch.equal(helpers.pool(h, mask, "cls"), torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="pooling"):
        helpers.pool(h, mask, "max")


def test_a_cls_teacher_is_bert_for_sequence_classification():
    from transformers import BertConfig, BertForSequenceClassification
    from tmkd.model.method import TeacherClassifier, TeacherConfig
    shape = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 num_labels=2)
    torch.manual_seed(0)
    ref = BertForSequenceClassification(BertConfig(**shape)).eval()
    teacher = TeacherClassifier(TeacherConfig(pooling="cls", **shape)).eval()
    teacher.load_state_dict(ref.state_dict())
    ids = torch.randint(0, 50, (3, 7))
    assert torch.allclose(teacher(input_ids=ids).logits, ref(input_ids=ids).logits, atol=1e-6)


def test_claim_verdict_follows_the_papers_sign_and_size():
    """On real arms (2 seeds): B fixes about half of A's errors, at every seed on the same examples (+15 points)."""
    rng = np.random.default_rng(0)
    base = rng.random((2, 400)) < 0.6
    better = base | (rng.random(400) < 0.5)[None, :]
    up = paired_interval(better, base)
    assert up["low"] > 0 and up["seed_level"]
    assert claim_verdict(up, 1.2) == "reproduced" and claim_verdict(up, -2.4) == "opposite"
    assert claim_verdict(up, 60.0) == "right direction, smaller than the paper's"
    assert claim_verdict(up, 0.5, resolution=1.0) == "a difference the paper has none of"
    down = paired_interval(base, better)
    assert claim_verdict(down, -2.4) == "reproduced" and claim_verdict(down, 0.5) == "opposite"
    same = paired_interval(base, base)
    assert claim_verdict(same, 3.0) == "no difference shown" and claim_verdict(same, 0.5, resolution=1.0) == \
        "equivalent within ±1"


def test_the_compute_matched_control_runs_its_whole_schedule(tmp_path):
    """With early stopping the control keeps its best epoch like every arm but is never stopped: its learning rate
    decays over its whole budget (stopped at 4 of 7 epochs it lost to plain m-o-1); it has a name of its own, so an
    early-stopped control of an earlier run is never reused. Without early stopping nothing changes."""
    from tmkd.training.students import select_stopping
    stopping = smoke_config(tmp_path / "run", student_patience=2)
    control, arm = tmkd.training.specs.matched_spec(stopping, "qnli"), tmkd.training.specs.method_specs(stopping, "qnli", "mo1")[0]
    assert control.name.startswith("mo1-matched-full-") and control.epochs > stopping.student_epochs
    assert select_stopping(stopping, control, tmp_path).patience == float("inf")
    assert select_stopping(stopping, arm, tmp_path).patience == 2
    fixed = smoke_config(tmp_path / "run")
    assert tmkd.training.specs.matched_spec(fixed, "qnli").name.startswith("mo1-matched-k3-")
    assert select_stopping(fixed, tmkd.training.specs.matched_spec(fixed, "qnli"), tmp_path) is None


@pytest.mark.parametrize("patience, stops_at", [(2, 3), (float("inf"), None)])
def test_select_stopping_stops_after_patience_epochs_without_a_better_score(tmp_path, patience, stops_at):
    from types import SimpleNamespace

    from tmkd.training.trainer import SelectStopping
    scores = iter([0.70, 0.68, 0.69, 0.66, 0.71, 0.72, 0.73])              # the best at epoch 1, then 7
    model = torch.nn.Linear(2, 2)
    stopper = SelectStopping(lambda m: next(scores), patience, tmp_path / "best.safetensors")
    state = SimpleNamespace(log_history=[], epoch=0.0, global_step=0)
    stopped = None
    for epoch in range(1, 8):
        state.epoch, state.global_step = float(epoch), epoch * 10
        control = stopper.on_step_end(None, state, SimpleNamespace(should_save=False, should_training_stop=False),
                                      model=model)
        if control.should_training_stop:
            stopped = epoch
            break
    assert stopped == stops_at
    assert stopper.restore(model, state)["best_epoch"] == (1 if stops_at else 7)




def test_compute_matched_epochs_of_the_smoke_profile_are_ten(tmp_path):
    """smoke: 4 student epochs + 640 stage-1 pairs (RTE's and QNLI's unused pairs) x 3 stage-1 epochs / 320 train
    pairs = 10."""
    cfg = smoke_config(tmp_path / "run")
    assert len(tmkd.inputs.data.split_dataset(cfg, cfg.stage1_task, "stage1")) == 640
    assert {t: tmkd.training.specs.matched_spec(cfg, t).epochs for t in cfg.tasks} == {"rte": 10.0, "qnli": 10.0, "mnli": 10.0}


@needs_shared_glue
def test_compute_matched_epochs_of_the_offline_profile_are_thirteen(tmp_path):
    """offline: at most 3 student epochs + 12,000 stage-1 pairs x 1 stage-1 epoch / 1,200 train pairs = 13 (QNLI); the
    control, like every arm, keeps its best epoch on the select slice within that budget."""
    cfg = tmkd.core.config.make_config("offline", run_dir=str(tmp_path / "run"), data_dir=str(SHARED_GLUE))
    assert len(tmkd.inputs.data.split_dataset(cfg, cfg.stage1_task, "stage1")) == 12_000
    assert {t: tmkd.training.specs.matched_spec(cfg, t).epochs for t in cfg.tasks} == {"qnli": 13.0}
