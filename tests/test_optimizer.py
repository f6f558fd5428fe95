"""AdamW runs torch's fused kernel (benchmarks/bench_optimizer.py: the multi-tensor step took a quarter of a CPU
student's step), and the fused kernel learns what the multi-tensor one learns: the same update to float rounding."""
import copy

import torch
from transformers import Trainer

import tmkd.core.config
import tmkd.inputs.base_model
import tmkd.training.students
import tmkd.training.trainer
from conftest import smoke_config


def smoke_student(cfg):
    return tmkd.training.students.build_student(tmkd.inputs.base_model.base_model_path(cfg), cfg.student_layers, 2, ("a", "b"),
                                       pooling=cfg.pooling, seed=0)


def test_the_trainer_builds_adamw_with_the_fused_kernel_and_sgd_as_sgd(tmp_path):
    cfg = smoke_config(tmp_path / "run")
    model = smoke_student(cfg)
    for ours, expected in (("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)):
        args = tmkd.training.trainer.training_args(tmp_path / ours, 1e-3, 1.0, 4, cfg, optimizer=ours)
        opt = Trainer(model=model, args=args).create_optimizer()
        opt = getattr(opt, "optimizer", opt)                     # accelerate may wrap it
        assert isinstance(opt, expected), type(opt)
        assert bool(opt.defaults.get("fused")) == (ours == "adamw"), opt.defaults


def test_fused_and_multi_tensor_adamw_train_the_same_student(tmp_path):
    cfg = smoke_config(tmp_path / "run")
    torch.manual_seed(0)
    batches = [dict(input_ids=torch.randint(5, 90, (4, 12)), attention_mask=torch.ones(4, 12, dtype=torch.long),
                    labels=torch.randint(0, 2, (4,)), teacher_logits=torch.randn(4, 2, 2)) for _ in range(8)]
    first = smoke_student(cfg).eval()                            # no dropout: both see the same gradients
    trained = {}
    for fused in (False, True):
        model = copy.deepcopy(first)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, fused=fused, foreach=not fused)
        for batch in batches:
            model(**batch).loss.backward()
            opt.step()
            opt.zero_grad()
        trained[fused] = model.state_dict()
    moved = max((trained[False][k] - first.state_dict()[k]).abs().max().item() for k in trained[False])
    apart = max((trained[False][k] - trained[True][k]).abs().max().item() for k in trained[False])
    assert moved > 1e-3                                          # the steps changed the weights
    assert apart < 1e-5, f"fused and multi-tensor AdamW differ by {apart:.2e} after 8 steps"
