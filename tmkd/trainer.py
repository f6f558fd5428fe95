"""Trainer glue shared by teachers and students: arguments, resume from the last complete checkpoint, the final
model saved atomically with its done marker, batching, and prediction."""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from .base_model import load_tokenizer
from .config import OPTIMIZERS, Config
from .rundir import fingerprint, file_sha256, force_stamp, note_artifact, read_json, replace_dir, write_json_atomic


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def training_args(out: Path, lr: float, epochs: float, batch_size: int, cfg: Config, optimizer="adamw"):
    """One place for the Trainer's settings (mixed precision only on CUDA)."""
    from transformers import TrainingArguments
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    return TrainingArguments(
        output_dir=str(out), learning_rate=lr, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size, warmup_steps=cfg.warmup, weight_decay=0.01,
        optim=OPTIMIZERS[optimizer], save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2,
        logging_steps=cfg.logging_steps, eval_strategy="no", report_to="none", seed=cfg.seed,
        bf16=bf16, fp16=cuda and not bf16, dataloader_num_workers=0, dataloader_pin_memory=cuda, disable_tqdm=False,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random")


def last_good_checkpoint(out: Path):
    """The newest checkpoint whose files are complete; incomplete ones (a crash mid-save) are removed."""
    from safetensors import safe_open
    ckpts = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    for ckpt in reversed(ckpts):
        problem = None
        state = read_json(ckpt / "trainer_state.json")
        if state is None:
            problem = "trainer_state.json missing or truncated"
        elif not all((ckpt / f).exists() and (ckpt / f).stat().st_size > 0 for f in ("optimizer.pt", "scheduler.pt")):
            problem = "optimizer/scheduler state missing"
        else:
            try:
                with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
                    for k in f.keys():
                        f.get_tensor(k)
            except Exception as e:  # noqa: BLE001 - any failure means the file cannot be trusted
                problem = f"model.safetensors unreadable ({type(e).__name__})"
        if problem is None:
            return str(ckpt)
        print(f"! {ckpt.name}: {problem} - removed, resuming from an earlier one")
        shutil.rmtree(ckpt)
    return None


def fit(model, train_ds, out: Path, args, callbacks=()):
    """Train with the Trainer, resuming from the last complete checkpoint in `out` if there is one."""
    from transformers import Trainer
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=collate,
                      callbacks=list(callbacks))
    resume = last_good_checkpoint(out)
    if resume:
        print(f"  resuming from {Path(resume).name}")
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def finish_step(trainer, out: Path, spec: dict, tokenizer_from=None, force: bool = False) -> Path:
    """Save the final model (and its training log) to out/final atomically, then the done marker: the spec's
    fingerprint and the weights' size and hash (a retrained model with other weights is told apart)."""
    final, tmp = out / "final", out / f".final.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))
    (tmp / "training_args.bin").unlink(missing_ok=True)      # a pickle: nothing here loads it
    write_json_atomic(tmp / "log_history.json", trainer.state.log_history)
    if tokenizer_from:
        load_tokenizer(tokenizer_from).save_pretrained(str(tmp))
    replace_dir(tmp, final)
    spec = json.loads(json.dumps(spec, default=str))
    weights = final / "model.safetensors"
    write_json_atomic(final / "done.json", {"spec": fingerprint(spec), "weights_bytes": weights.stat().st_size,
                                            "weights_sha256": file_sha256(weights)} | force_stamp(force))
    note_artifact(final / "done.json")
    for ckpt in out.glob("checkpoint-*"):     # the final model supersedes them
        shutil.rmtree(ckpt)
    return final


def collate(features: list) -> dict:
    """Pad a list of tokenized examples to the longest one; carries labels and teacher logits along."""
    width = max(len(f["input_ids"]) for f in features)
    batch = {}
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if key in features[0]:
            batch[key] = torch.tensor([list(f[key]) + [0] * (width - len(f[key])) for f in features])
    if "label" in features[0] or "labels" in features[0]:
        batch["labels"] = torch.tensor([f.get("labels", f.get("label")) for f in features])
    if "teacher_logits" in features[0]:
        batch["teacher_logits"] = torch.tensor(np.array([f["teacher_logits"] for f in features]), dtype=torch.float32)
    return batch


@torch.inference_mode()
def predict_logits(model, ds, batch_size: int = 64, desc: str = "predict") -> np.ndarray:
    """The model's `logits` output for every example of `ds`, in its order. Batches are built by length."""
    from tqdm.auto import tqdm
    model.eval()
    dev = next(model.parameters()).device
    cols = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in ds.column_names]
    ds = ds.select_columns(cols)
    lengths = np.array([len(x) for x in ds["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    out = None
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        rows = order[start:start + batch_size]
        batch = {k: v.to(dev) for k, v in collate([ds[int(i)] for i in rows]).items()}
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = model(**batch).logits.float().cpu().numpy()
        if out is None:
            out = np.zeros((len(ds), logits.shape[1]), dtype=np.float32)
        out[rows] = logits
    return out


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def params_of(final: Path) -> int:
    """Parameters of a saved model, read from its safetensors header (no model is built)."""
    from safetensors import safe_open
    with safe_open(str(Path(final) / "model.safetensors"), "pt") as f:
        return int(sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()))
