"""The multi-header student: initialisation from a teacher, save/load, and the two stages."""
import numpy as np
import pytest
import torch

import helpers
import tmkd.training.specs
import tmkd.core.config
import tmkd.inputs.data
import tmkd.training.experiments
import tmkd.training.logit_cache
import tmkd.training.students
import tmkd.training.teachers
import tmkd.training.trainer
from tmkd.training.students import student_source

LABELS = tmkd.core.config.TASKS["rte"].labels


def teacher_folder(cfg, task="rte"):
    return tmkd.training.teachers.teacher_dir(cfg, task, helpers.teacher_names(cfg)[0]) / "final"


def test_student_copies_the_teachers_bottom_layers_exactly(teacher_run):
    from tmkd.training.teachers import pretrained_encoder
    teacher = pretrained_encoder(teacher_folder(teacher_run))           # the BertModel inside the teacher
    student = tmkd.training.students.build_student(teacher_folder(teacher_run), 3, 3, LABELS)
    assert len(student.bert.encoder.layer) == 3
    t, s = teacher.state_dict(), student.bert.state_dict()
    copied = [k for k in s if k.startswith("embeddings.") or k.startswith(("encoder.layer.0.", "encoder.layer.1.", "encoder.layer.2."))]
    assert copied and all(torch.equal(s[k], t[k]) for k in copied)
    random = tmkd.training.students.build_student(teacher_folder(teacher_run), 3, 3, LABELS, init="random")
    assert not torch.equal(random.bert.encoder.layer[0].attention.self.query.weight,
                           t["encoder.layer.0.attention.self.query.weight"])


def test_student_has_one_golden_head_and_one_soft_head_per_teacher(teacher_run):
    student = tmkd.training.students.build_student(teacher_folder(teacher_run), 1, 3, tmkd.core.config.TASKS["mnli"].labels, head_layers=2)
    assert len(student.soft_heads) == 3
    assert [type(m).__name__ for m in student.golden_head] == ["Linear", "GELU", "Linear"]
    golden, soft = student.heads(torch.tensor([[2, 5, 6, 3]]))
    assert golden.shape == (1, 3) and soft.shape == (1, 3, 3)


def test_save_and_load_round_trip(teacher_run, tmp_path):
    student = tmkd.training.students.build_student(teacher_folder(teacher_run), 2, 3, LABELS, alpha=0.5).eval()
    student.save_pretrained(str(tmp_path / "s"))
    loaded = helpers.TMKDStudent.from_pretrained(str(tmp_path / "s")).eval()
    batch = {"input_ids": torch.tensor([[2, 7, 8, 3, 9, 3]]), "token_type_ids": torch.tensor([[0, 0, 0, 0, 1, 1]])}
    torch.testing.assert_close(student(**batch).logits, loaded(**batch).logits)
    assert (loaded.config.n_teachers, loaded.config.alpha, loaded.config.num_hidden_layers) == (3, 0.5, 2)


def test_prediction_is_eq6_the_mean_of_all_heads(teacher_run):
    student = tmkd.training.students.build_student(teacher_folder(teacher_run), 1, 2, LABELS, alpha=0.7).eval()
    ids = torch.tensor([[2, 7, 8, 3]])
    golden, soft = student.heads(ids)
    expected = (golden.softmax(-1) + soft[:, 0].softmax(-1) + soft[:, 1].softmax(-1)) / 3
    torch.testing.assert_close(student(input_ids=ids).logits.exp(), expected)


def test_student_training_data_aligns_teacher_logits_and_stage1_has_no_labels(teacher_run):
    spec = tmkd.training.specs.base_spec(teacher_run, "rte")
    ds = tmkd.training.students.student_train_data(teacher_run, spec)
    assert np.array(ds[0]["teacher_logits"]).shape == (3, 2) and "label" in ds.column_names
    s1 = tmkd.training.students.student_train_data(teacher_run, tmkd.training.specs.stage1_spec(teacher_run, "tmkd"))
    assert "label" not in s1.column_names
    avg = tmkd.training.students.student_train_data(teacher_run, tmkd.training.specs.base_spec(teacher_run, "rte", average_teachers=True))
    np.testing.assert_allclose(np.array(avg[5]["teacher_logits"])[0], np.array(ds[5]["teacher_logits"]).mean(0), rtol=1e-5)


class Captured(Exception):
    """Raised by the spy that stands in for the Trainer: the batch it would have trained on is in `batch`."""


def test_stage1_batches_carry_no_gold_labels(run_copy, monkeypatch):
    """Stage 1 is soft loss only: the batches the Trainer would see (collated as it collates them, from the very
    dataset train_student hands to fit) carry the teachers' logits and no gold label. With alpha = 1 a label in the
    batch would change no weight, so the check is on the batch itself, not on the trained weights."""
    cfg = run_copy
    spec = tmkd.training.specs.stage1_spec(cfg, "tmkd")

    def spy(model, train_ds, out, args, callbacks=(), sync_every_s=0.0):
        error = Captured()
        error.batch = tmkd.training.trainer.collate([train_ds[i] for i in range(min(8, len(train_ds)))])
        raise error
    monkeypatch.setattr(tmkd.training.students, "fit", spy)
    with pytest.raises(Captured) as caught:
        tmkd.training.students.train_student(cfg, spec, force=True)
    batch = caught.value.batch
    assert "teacher_logits" in batch and batch["teacher_logits"].shape[1] == len(spec.teachers)
    assert "labels" not in batch, "a gold label reached stage 1"


def test_stage2_starts_from_the_stage1_weights(run_copy):
    cfg = run_copy
    s1 = tmkd.training.students.train_student(cfg, tmkd.training.specs.stage1_spec(cfg, "tmkd"))
    old = helpers.TMKDStudent.from_pretrained(str(s1))
    new, msg = tmkd.training.students.student_from_stage1(s1, 3, tmkd.core.config.TASKS["qnli"].labels, 0.7, 1)
    assert all(torch.equal(v, old.bert.state_dict()[k]) for k, v in new.bert.state_dict().items())
    assert torch.equal(new.soft_heads[2][0].weight, old.soft_heads[2][0].weight)
    assert "3 of 3 soft heads carried over" in msg


def test_stage2_into_a_three_class_task_reinitialises_the_heads(run_copy):
    cfg = run_copy
    s1 = tmkd.training.students.train_student(cfg, tmkd.training.specs.stage1_spec(cfg, "tmkd"))             # 2 classes (rte)
    new, msg = tmkd.training.students.student_from_stage1(s1, 3, tmkd.core.config.TASKS["mnli"].labels, 0.7, 1)
    assert "heads re-initialised" in msg and "2 classes" in msg
    golden, soft = new.heads(torch.tensor([[2, 7, 8, 3]]))
    assert golden.shape == (1, 3) and soft.shape == (1, 3, 3)
    old = helpers.TMKDStudent.from_pretrained(str(s1))
    assert all(torch.equal(v, old.bert.state_dict()[k]) for k, v in new.bert.state_dict().items())


def test_two_class_stage1_then_three_class_stage2_trains(run_copy, capsys):
    cfg = tmkd.core.config.make_config("smoke", run_dir=str(run_copy.run_path), stage2_task="mnli")
    helpers.run_stage1(cfg, "tmkd")
    rows = tmkd.training.experiments.run_stage2(cfg, "tmkd")
    assert "heads re-initialised (stage 1 had 2 classes" in capsys.readouterr().out
    assert {r["split"] for r in rows} == {"validation_matched", "validation_mismatched"}
    assert all(r["accuracy"] > 1 / 3 + 0.2 for r in rows)


def test_pool_stage1_scores_every_pooled_pair_with_the_stage1_teachers(run_copy):
    """stage1_corpus="pool": the unused train pairs of several tasks, labels dropped, each scored by the stage-1
    task's teachers; ids of different tasks never collide; the stage-2 student starts from it."""
    cfg = tmkd.core.config.make_config("smoke", run_dir=str(run_copy.run_path), stage1_task="qnli", stage1_corpus="pool",
                              stage1_pool_tasks=("rte", "qnli"))
    spec = tmkd.training.specs.stage1_spec(cfg, "tmkd")
    ds = tmkd.training.students.student_train_data(cfg, spec)
    sizes = [len(tmkd.inputs.data.split_dataset(cfg, t, "unused")) for t in ("rte", "qnli")]
    assert len(ds) == sum(sizes) and "label" not in ds.column_names
    assert len(set(ds["idx"])) == len(ds)
    first = helpers.teacher_names(cfg)[0]
    own = tmkd.training.logit_cache.teacher_logits(cfg, "qnli", first, "unused")
    pooled = dict(zip(ds["idx"], np.asarray(ds["teacher_logits"])[:, 0]))
    for i, row in zip(own["idx"][:20], own["logits"][:20]):     # a QNLI pair's pooled score = its train score
        np.testing.assert_allclose(pooled[int(i) + 10_000_000], row, rtol=1e-5, atol=1e-6)
    helpers.run_stage1(cfg, "tmkd")
    rows = tmkd.training.experiments.run_stage2(cfg, "tmkd")
    assert rows and rows[0]["model"] == "qnli/tmkd-k3-a0.7-s42"
    assert tmkd.training.specs.stage2_spec(cfg, "tmkd").init_from == "tmkd-stage1-pool-k3-s42"


def test_teacher_init_takes_the_best_teachers_bottom_layers(run_copy):
    cfg = tmkd.core.config.make_config("smoke", run_dir=str(run_copy.run_path), student_init="teacher")
    best = helpers.best_teacher(cfg, "rte")
    assert student_source(cfg, "rte") == str(tmkd.training.teachers.teacher_dir(cfg, "rte", best) / "final")
    from tmkd.training.teachers import pretrained_encoder
    teacher = pretrained_encoder(student_source(cfg, "rte")).state_dict()
    student = tmkd.training.students.build_student(student_source(cfg, "rte"), 2, 3, LABELS).bert.state_dict()
    assert torch.equal(student["encoder.layer.1.output.dense.weight"], teacher["encoder.layer.1.output.dense.weight"])
