"""Teachers: N = len(teacher_lrs) BERTs per task fine-tuned with the Trainer, skipped when finished and resumed
from their last checkpoint when not."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tmkd.inputs.base_model import base_model_path
from tmkd.core.config import TASKS, Config, TMKDError
from tmkd.inputs.data import split_fingerprint, task_data
from tmkd.core.files import read_json
from tmkd.training.identity import identity
from tmkd.model.method import TeacherClassifier, TeacherConfig
from tmkd.core.parallel import launch, wants_launch
from tmkd.core.progress import progress
from tmkd.training.rundir import check_run_dir, claim_step, note_reused, require_weights, step_finished
from tmkd.training.trainer import device, finish_step, fit, training_args


def teacher_name(lr: float) -> str:
    """teacher-lr3e-05: the exact learning rate in one notation for every teacher (2e-05, 1e-04, 1.5e-05)."""
    return f"teacher-lr{np.format_float_scientific(lr, trim='-', exp_digits=2)}"


def teacher_names(cfg: Config) -> list:
    return [teacher_name(lr) for lr in cfg.teacher_lrs]


def teacher_dir(cfg: Config, task: str, name: str) -> Path:
    return cfg.run_path / "teachers" / task / name


def train_teacher(cfg: Config, task: str, lr: float, force: bool = False, callbacks=()) -> Path:
    """Fine-tune one teacher (BERT + classifier) on the task; skip it when finished, resume it when not."""
    from transformers import AutoConfig, set_seed
    name = teacher_name(lr)
    out = teacher_dir(cfg, task, name)
    base = base_model_path(cfg)
    data = task_data(cfg, task)
    labels = TASKS[task].labels
    spec = identity(cfg, "teacher", task=task, lr=lr, labels=labels, data=split_fingerprint(cfg, task, "train"))
    if wants_launch(cfg):            # nproc processes (DDP); the data is prepared above, once
        if step_finished(out, spec, force):
            note_reused("teacher", f"{task}/{name}")
            return out / "final"
        return launch(train_teacher, cfg, task, lr, force, tuple(callbacks), nproc=cfg.nproc)
    if claim_step(out, spec, force):
        note_reused("teacher", f"{task}/{name}")
        return out / "final"
    progress(f"> {task}/{name}: fine-tuning on {len(data['train'])} examples")
    set_seed(cfg.seed)
    shape = {k: v for k, v in AutoConfig.from_pretrained(base).to_dict().items()
             if k not in ("model_type", "architectures", "transformers_version")}
    config = TeacherConfig(**shape | dict(pooling=cfg.pooling, num_labels=len(labels),
                                          id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)}))
    model = TeacherClassifier.from_pretrained(base, config=config)
    args = training_args(out, lr, cfg.teacher_epochs, cfg.teacher_batch_size, cfg)
    trainer = fit(model, data["train"], out, args, callbacks, cfg.checkpoint_sync_minutes * 60)
    return finish_step(trainer, out, spec, tokenizer_from=base, force=force)


def train_teachers(cfg: Config, force: bool = False) -> dict:
    """All teachers of every task of the profile: {task: [final folders]}."""
    check_run_dir(cfg, force)
    return {task: [train_teacher(cfg, task, lr, force) for lr in cfg.teacher_lrs] for task in cfg.tasks}


def load_teacher(folder):
    if read_json(Path(folder) / "done.json") is None:
        raise TMKDError(f"{folder} is not a finished teacher: run chapter 01 (teachers) first")
    require_weights(folder, "run chapter 01 again with FORCE=True to retrain it")
    return TeacherClassifier.from_pretrained(str(folder)).to(device())


def pretrained_encoder(source):
    """The BertModel inside `source`: the pre-trained base (a folder or Hub id) or a fine-tuned teacher's folder."""
    from transformers import AutoConfig, AutoModel
    if AutoConfig.from_pretrained(str(source)).model_type == TeacherConfig.model_type:
        require_weights(source, "run chapter 01 again with FORCE=True to retrain it")
        return TeacherClassifier.from_pretrained(str(source)).bert
    return AutoModel.from_pretrained(str(source))


def teacher_label_names(folder) -> list:
    config = read_json(Path(folder) / "config.json")
    return [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
