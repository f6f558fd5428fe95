"""Trainer glue shared by teachers and students: arguments, resume from the last complete checkpoint, the final
model saved atomically with its done marker, batching, and prediction."""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from tmkd.inputs.base_model import load_tokenizer
from tmkd.colab import local_checkpoints
from tmkd.core.config import OPTIMIZERS, Config, TMKDError
from tmkd.core.files import atomic, file_sha256, fingerprint, read_json, write_json_atomic
from tmkd.core.parallel import barrier, distributed, is_main, local_rank, on_main, world_size
from tmkd.training.rundir import REMOVED, finished_model, force_stamp, has_weights, note_artifact


def device() -> torch.device:
    """This process's device: its own GPU (LOCAL_RANK of a launch of several processes), else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def precision(capability) -> str:
    """The training and inference dtype for a device: "fp32" on the CPU (capability None), "fp16" (with loss
    scaling) below CUDA compute capability 8 (T4, V100: no native bf16 - torch.cuda.is_bf16_supported() says True
    on a T4 through emulation, several times slower), "bf16" from 8 on (A100, L4, H100)."""
    if capability is None:
        return "fp32"
    return "bf16" if tuple(capability)[0] >= 8 else "fp16"


def has_fast_bf16() -> bool:
    """Whether this CPU does bf16 matrix products in hardware: AMX tiles or AVX-512's bf16 instructions (Linux:
    /proc/cpuinfo's amx_bf16 / avx512_bf16 flags; elsewhere False). benchmarks/bench_precision.py measured 1.5-2.2x
    per step with avx512_bf16 alone, at the same accuracy."""
    from tmkd.training.environment import cpu_info
    flags = set(cpu_info().get("flags", "").split())
    return "amx_bf16" in flags or "avx512_bf16" in flags


def device_precision(cfg: Config | None = None) -> str:
    """The dtype this process trains and predicts in: on a GPU, precision() of the device; on a CPU, cfg.precision
    (fp32 without a configuration; "auto": bf16 where the CPU does bf16 in hardware, has_fast_bf16(), else fp32)."""
    if torch.cuda.is_available():
        return precision(torch.cuda.get_device_capability(0))
    wanted = cfg.precision if cfg is not None else "fp32"
    return ("bf16" if has_fast_bf16() else "fp32") if wanted == "auto" else wanted


AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


def checkpoint_root(cfg: Config) -> Path:
    """Where a step's Trainer checkpoints go while it trains: the run directory itself, or a local-disk mirror of it
    (cfg.checkpoint_dir; on Colab by default, so that Drive sees one checkpoint per step every few minutes instead
    of every save)."""
    if cfg.checkpoint_dir:
        return Path(cfg.checkpoint_dir)
    return local_checkpoints(cfg.run_path) or cfg.run_path


def work_dir(cfg: Config, out: Path) -> Path:
    """Where the Trainer writes a step's checkpoints: the step's folder, or its mirror under cfg's checkpoint root
    (checkpoint_root), kept apart per run directory."""
    root = checkpoint_root(cfg)
    if root == cfg.run_path:
        return out
    return root / fingerprint(str(cfg.run_path.resolve())) / out.relative_to(cfg.run_path)


def per_device_batch(batch_size: int) -> int:
    """The configured (effective) batch split over the processes of this launch: each takes batch / world_size."""
    world = world_size()
    if batch_size % world:
        raise TMKDError(f"batch size {batch_size} does not split over {world} processes: choose a multiple of {world}")
    return batch_size // world


def training_args(out: Path, lr: float, epochs: float, batch_size: int, cfg: Config, optimizer="adamw"):
    """One place for the Trainer's settings (mixed precision by device_precision(cfg)). `batch_size` is the
    effective batch: with several processes (DistributedDataParallel) each takes its share (per_device_batch).
    One process that sees several GPUs trains on one: the Trainer would otherwise wrap the model in
    nn.DataParallel and silently multiply the batch by the GPUs (nproc=N uses them all, through DDP).
    AdamW is torch's fused kernel: the same update as the multi-tensor one to float rounding, in one pass over the
    parameters (on a CPU the multi-tensor step took a quarter of a student's step: benchmarks/bench_optimizer.py)."""
    from transformers import TrainingArguments
    cuda = torch.cuda.is_available()
    dtype = device_precision(cfg)
    args = TrainingArguments(
        output_dir=str(work_dir(cfg, out)), learning_rate=lr, num_train_epochs=epochs,
        per_device_train_batch_size=per_device_batch(batch_size), use_cpu=not cuda,   # CPU processes: gloo DDP
        per_device_eval_batch_size=cfg.eval_batch_size, warmup_steps=cfg.warmup, weight_decay=0.01,
        optim=OPTIMIZERS[optimizer], save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2,
        logging_steps=cfg.logging_steps, eval_strategy="no", report_to="none", seed=cfg.seed,
        bf16=dtype == "bf16", fp16=dtype == "fp16", dataloader_num_workers=0, dataloader_pin_memory=cuda, disable_tqdm=False,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random")
    if distributed() and args.world_size != world_size():
        raise TMKDError(f"the Trainer sees {args.world_size} process(es) in a launch of {world_size()}: it would train "
                        "each process on all the data; report this with your torch / transformers / accelerate versions")
    if args.n_gpu > 1:                   # one process, several GPUs: no DataParallel
        print(f"! {args.n_gpu} GPUs visible to one process: training on one of them (set nproc={args.n_gpu} to use "
              "them all, one process each)")
        args._n_gpu = 1
    return args


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


def fit(model, train_ds, out: Path, args, callbacks=(), sync_every_s: float = 0.0):
    """Train with the Trainer, resuming from the last complete checkpoint if there is one. With checkpoints on local
    disk (args.output_dir is not `out`), the newest is copied to `out` at most every `sync_every_s` seconds, and a
    new runtime without the local copy resumes from the one in `out`."""
    from transformers import Trainer
    work = Path(args.output_dir)
    callbacks = list(callbacks)
    if work != out:
        callbacks.insert(0, SyncCheckpoints(work, out, sync_every_s))
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=collate, callbacks=callbacks)
    resume = on_main(lambda: last_good_checkpoint(work) or (restore_checkpoint(out, work) if work != out else None))
    if resume:
        print(f"  resuming from {Path(resume).name}")
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def copy_checkpoint(ckpt: Path, dest: Path) -> Path:
    """Copy a checkpoint folder into `dest` atomically; older checkpoints there are removed (one per step)."""
    final = dest / ckpt.name
    with atomic(final, folder=True) as tmp:
        shutil.copytree(ckpt, tmp, dirs_exist_ok=True)
    for old in dest.glob("checkpoint-*"):
        if old != final:
            shutil.rmtree(old)
    return final


def restore_checkpoint(out: Path, work: Path):
    """A new runtime: bring the step's last synced checkpoint back from the run directory to local disk."""
    ckpt = last_good_checkpoint(out)
    if ckpt is None:
        return None
    print(f"  copying {Path(ckpt).name} back from the run directory")
    work.mkdir(parents=True, exist_ok=True)
    return str(copy_checkpoint(Path(ckpt), work))


class SyncCheckpoints(TrainerCallback):
    """After a save, copy the newest local checkpoint to the run directory if the last copy is old enough."""
    def __init__(self, work: Path, out: Path, every_s: float):
        self.work, self.out, self.every_s, self.last = work, out, every_s, float("-inf")

    def on_save(self, args, state, control, **kwargs):
        ckpt = self.work / f"checkpoint-{state.global_step}"
        barrier()                        # every process has written its part (its RNG state) of the checkpoint
        if is_main() and ckpt.exists() and time.time() - self.last >= self.every_s:
            self.out.mkdir(parents=True, exist_ok=True)
            copy_checkpoint(ckpt, self.out)
            self.last = time.time()


class SelectStopping(TrainerCallback):
    """Early stopping on held-out data: after every epoch `score(model)` (the held-out `select` slice's accuracy) is
    logged as select_accuracy; training stops after `patience` epochs without a better score, and the best epoch's
    weights are kept in `best_file` (restore() puts them back before the final save). The scores live in the
    Trainer's log history, so a resumed run knows the best so far; an epoch's last step is scored, then saved."""
    def __init__(self, score, patience: int, best_file: Path):
        self.score, self.patience, self.best_file = score, patience, Path(best_file)

    def history(self, state) -> list:
        return [h for h in state.log_history if "select_accuracy" in h]

    def on_step_end(self, args, state, control, model=None, **kwargs):
        # at the last step of an epoch, before that step's checkpoint (so a resumed run has the epoch's score)
        if state.epoch is None or abs(state.epoch - round(state.epoch)) > 1e-6 or round(state.epoch) < 1:
            return control
        from safetensors.torch import save_file
        scores = self.history(state)
        value = on_main(lambda: float(self.score(model)))
        model.train()
        state.log_history.append({"epoch": round(state.epoch), "step": state.global_step, "select_accuracy": value})
        values = [h["select_accuracy"] for h in scores] + [value]
        if value > max(values[:-1], default=float("-inf")) and is_main():
            with atomic(self.best_file) as tmp:
                save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))
        since_best = len(values) - 1 - values.index(max(values))        # epochs since the (first) best one
        control.should_save = True
        if since_best >= self.patience:
            control.should_training_stop = True
        return control

    def restore(self, model, state) -> dict:
        """Load the best epoch's weights into `model`; returns {"best_epoch", "select_accuracy", "epochs_run"}."""
        from safetensors.torch import load_file
        scores = self.history(state)
        if not scores:
            return {}
        top = max(scores, key=lambda h: h["select_accuracy"])       # the first of equal scores: the earliest
        model.load_state_dict(load_file(str(self.best_file)))
        return {"best_epoch": top["epoch"], "select_accuracy": top["select_accuracy"],
                "epochs_run": scores[-1]["epoch"]}


def finish_step(trainer, out: Path, spec: dict, tokenizer_from=None, force: bool = False) -> Path:
    """Save the final model (and its training log) to out/final atomically, then the done marker: the spec's
    fingerprint and the weights' size and hash (a retrained model with other weights is told apart). With several
    processes the main one saves and the others wait until final/ is complete."""
    final = out / "final"
    if distributed():
        barrier()                                      # every process has finished training
        if is_main():
            _save_final(trainer, out, spec, tokenizer_from, force)
        barrier()
        return final
    return _save_final(trainer, out, spec, tokenizer_from, force)


def _save_final(trainer, out: Path, spec: dict, tokenizer_from=None, force: bool = False) -> Path:
    final = out / "final"
    with atomic(final, folder=True) as tmp:
        trainer.save_model(str(tmp))
        (tmp / "training_args.bin").unlink(missing_ok=True)      # a pickle: nothing here loads it
        write_json_atomic(tmp / "log_history.json", trainer.state.log_history)
        if tokenizer_from:
            load_tokenizer(tokenizer_from).save_pretrained(str(tmp))
    spec = json.loads(json.dumps(spec, default=str))
    weights = final / "model.safetensors"
    write_json_atomic(final / "done.json", {"spec": fingerprint(spec), "weights_bytes": weights.stat().st_size,
                                            "weights_sha256": file_sha256(weights)} | force_stamp(force))
    note_artifact(final / "done.json")
    for ckpt in [*out.glob("checkpoint-*"), *Path(trainer.args.output_dir).glob("checkpoint-*")]:
        shutil.rmtree(ckpt, ignore_errors=True)   # the final model supersedes them
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
def predict_logits(model, ds, batch_size: int = 64, desc: str = "predict", mixed: bool = True,
                   dtype: str | None = None) -> np.ndarray:
    """The model's `logits` output for every example of `ds`, in its order. Batches are built by length.
    mixed: autocast to `dtype` (device_precision(cfg): the run's precision; None: the GPU's, fp32 on a CPU) for dev
    accuracy; False: fp32 everywhere (teacher logits, the students' MSE targets, are the same on every device)."""
    cols = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in ds.column_names]
    ds = ds.select_columns(cols)
    lengths = np.array([len(x) for x in ds["input_ids"]])

    def rows_batch(rows):
        part = ds[[int(i) for i in rows]]                 # one read of the batch's rows (columns of lists)
        return collate([{k: part[k][j] for k in cols} for j in range(len(rows))])
    return predict_batches(model, lengths, rows_batch, batch_size, desc, mixed, dtype)


@torch.inference_mode()
def predict_batches(model, lengths, rows_batch, batch_size: int = 64, desc: str = "predict", mixed: bool = True,
                    dtype: str | None = None):
    """The model's logits for examples 0..n-1 (n = len(lengths)), in their order: batches of similar length,
    longest first; rows_batch(rows) gives the padded tensors of those rows."""
    from tqdm.auto import tqdm
    model.eval()
    dev = next(model.parameters()).device
    order = np.argsort(-np.asarray(lengths), kind="stable")
    out = None
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        rows = order[start:start + batch_size]
        batch = {k: v.to(dev) for k, v in rows_batch(rows).items()}
        cast = AUTOCAST.get(dtype or (device_precision() if dev.type == "cuda" else "fp32")) if mixed else None
        with torch.autocast(dev.type, dtype=cast, enabled=cast is not None):
            logits = model(**batch).logits.float().cpu().numpy()
        if out is None:
            out = np.zeros((len(order), logits.shape[1]), dtype=np.float32)
        out[rows] = logits
    return out


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def params_of(final: Path) -> int:
    """Parameters of a saved model, read from its safetensors header (no model is built), or from the record of
    its removed weights (keep_weights="needed")."""
    from safetensors import safe_open
    if not has_weights(final):
        removed = finished_model(final) and read_json(Path(final) / REMOVED)
        if not removed:
            raise TMKDError(f"{final}: model.safetensors is missing; run the chapter that trains it again")
        return int(removed["params"])
    with safe_open(str(Path(final) / "model.safetensors"), "pt") as f:
        return int(sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()))
