"""precision (fp32 | bf16 | auto) on a CPU: opt-in bf16 reaches the Trainer and the dev predictions, teacher logits
stay fp32, and the default leaves every existing step's identity as it was."""
import dataclasses

import numpy as np
import pytest
import torch

import tmkd.core.config
import tmkd.training.identity
import tmkd.training.trainer
from conftest import smoke_config


def test_auto_is_bf16_only_where_the_cpu_has_fast_bf16(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("on a GPU the device decides")
    cfg = tmkd.core.config.make_config("smoke", precision="auto")
    monkeypatch.setattr(tmkd.training.trainer, "has_fast_bf16", lambda: False)
    assert tmkd.training.trainer.device_precision(cfg) == "fp32"
    monkeypatch.setattr(tmkd.training.trainer, "has_fast_bf16", lambda: True)
    assert tmkd.training.trainer.device_precision(cfg) == "bf16"
    assert tmkd.training.trainer.device_precision(dataclasses.replace(cfg, precision="bf16")) == "bf16"
    assert tmkd.training.trainer.device_precision() == "fp32"                 # no configuration: fp32


def test_the_precision_is_part_of_every_training_identity():
    cfg = tmkd.core.config.make_config("smoke")
    for step in ("teacher", "student", "stage1", "stage2"):
        assert tmkd.training.identity.identity(cfg, step)["precision"] == "fp32"     # fp32 and bf16 never share a step
    bf16 = dataclasses.replace(cfg, precision="bf16")
    assert tmkd.training.identity.identity(bf16, "student")["precision"] == "bf16"
    with pytest.raises(tmkd.core.config.TMKDError, match="precision='fp16' is not one of"):
        tmkd.core.config.make_config("smoke", precision="fp16")


def test_bf16_reaches_the_trainer_and_predictions_but_not_the_teacher_logits(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CPU precision")
    cfg = smoke_config(tmp_path / "run", precision="bf16")
    args = tmkd.training.trainer.training_args(tmp_path / "out", 1e-3, 1.0, 16, cfg)
    assert args.bf16 and not args.fp16
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, input_ids, attention_mask, token_type_ids=None):
            seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
            return type("Out", (), {"logits": torch.zeros(len(input_ids), 2)})()

        def parameters(self):
            return iter([torch.zeros(1)])
    import datasets
    ds = datasets.Dataset.from_dict({"input_ids": [[1, 2, 3]] * 4, "attention_mask": [[1, 1, 1]] * 4})
    tmkd.training.trainer.predict_logits(Probe(), ds, 2, dtype=tmkd.training.trainer.device_precision(cfg))
    tmkd.training.trainer.predict_logits(Probe(), ds, 2, mixed=False, dtype="bf16")   # teacher logits: fp32 always
    tmkd.training.trainer.predict_logits(Probe(), ds, 2)                              # no precision given: fp32 on a CPU
    assert seen == [torch.bfloat16] * 2 + [None] * 4
    assert np.isfinite(tmkd.training.trainer.predict_logits(Probe(), ds, 4)).all()
