"""Cached teacher logits: alignment by label name and example id; stale and corrupt caches rebuilt."""
import json

import numpy as np
from safetensors.torch import load_file, save_file

import helpers
import tmkd.core.config
import tmkd.core.files
import tmkd.training.logit_cache
import tmkd.training.teachers


def test_teachers_with_different_label_orders_give_the_same_aligned_logits(run_copy):
    cfg, task = run_copy, "mnli"
    teacher = helpers.teacher_names(cfg)[0]
    before = tmkd.training.logit_cache.stacked_teacher_logits(cfg, task, [teacher], "validation_matched")
    # Store the same teacher with its labels in the older GLUE order: permute the classifier rows and id2label.
    folder = tmkd.training.teachers.teacher_dir(cfg, task, teacher) / "final"
    order = ["contradiction", "entailment", "neutral"]
    perm = [tmkd.core.config.TASKS[task].labels.index(l) for l in order]
    weights = load_file(str(folder / "model.safetensors"))
    for k in ("classifier.weight", "classifier.bias"):
        weights[k] = weights[k][perm].contiguous()
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): l for i, l in enumerate(order)}
    config["label2id"] = {l: i for i, l in enumerate(order)}
    (folder / "config.json").write_text(json.dumps(config))
    raw = tmkd.training.logit_cache.teacher_logits(cfg, task, teacher, "validation_matched")       # stale (label order) -> rebuilt
    assert raw["labels"] == order
    after = tmkd.training.logit_cache.stacked_teacher_logits(cfg, task, [teacher], "validation_matched")
    np.testing.assert_allclose(after, before, atol=1e-5)
    assert not np.allclose(raw["logits"], before[:, 0], atol=1e-3)              # the raw columns did move


def test_teacher_logits_column_is_examples_by_teachers_by_classes(teacher_run):
    ds = helpers.with_teacher_logits(teacher_run, "mnli", "train", helpers.teacher_names(teacher_run))
    assert np.array(ds["teacher_logits"]).shape == (len(ds), 3, 3)


def test_corrupt_logits_file_is_detected_and_rebuilt(run_copy, capsys):
    cfg = run_copy
    teacher = helpers.teacher_names(cfg)[1]
    path = helpers.logits_path(cfg, "rte", teacher, "train")
    good = tmkd.core.files.load_npz(path)["logits"]
    path.write_bytes(path.read_bytes()[:100])                 # truncated by a crash
    again = tmkd.training.logit_cache.teacher_logits(cfg, "rte", teacher, "train")
    assert "corrupt" in capsys.readouterr().out
    np.testing.assert_allclose(again["logits"], good, atol=1e-6)
    assert tmkd.core.files.file_sha256(path) == helpers.read_json(path.with_suffix(".json"))["sha256"]


def test_stale_logits_are_rebuilt_when_the_teacher_changes(run_copy, capsys):
    cfg = run_copy
    teacher = helpers.teacher_names(cfg)[0]
    path = helpers.logits_path(cfg, "rte", teacher, "validation")
    meta = helpers.read_json(path.with_suffix(".json"))
    meta["teacher_weights"]["weights_bytes"] += 1             # produced by other weights than the teacher's now
    tmkd.core.files.write_json_atomic(path.with_suffix(".json"), meta)
    tmkd.training.logit_cache.teacher_logits(cfg, "rte", teacher, "validation")
    assert "stale (teacher_weights changed)" in capsys.readouterr().out


def test_missing_metadata_means_the_cache_is_rebuilt(run_copy):
    cfg = run_copy
    teacher = helpers.teacher_names(cfg)[2]
    path = helpers.logits_path(cfg, "qnli", teacher, "train")
    path.with_suffix(".json").unlink()
    before = path.stat().st_mtime_ns
    tmkd.training.logit_cache.teacher_logits(cfg, "qnli", teacher, "train")
    assert path.stat().st_mtime_ns != before and path.with_suffix(".json").exists()
