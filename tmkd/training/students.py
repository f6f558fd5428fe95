"""One student step: what it learns from (StudentSpec), its identity, building it from files, training it with the
Trainer, and scoring it on dev. The student model itself and its losses are in tmkd.model.method."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from tmkd.inputs.base_model import base_model_path
from tmkd.core.config import TASKS, Config, TMKDError
from tmkd.inputs.data import dev_splits, split_dataset, split_fingerprint
from tmkd.core.files import file_sha256, load_npz, read_json, save_npz_atomic, write_json_atomic
from tmkd.model.methods import Student
from tmkd.training.identity import SPEC_FIELDS, identity
from tmkd.training.logit_cache import with_label_logits, with_teacher_logits
from tmkd.model.method import TMKDStudent, accuracy, carry_over_stage1, copy_bottom_layers, soft_heads, student_config
from tmkd.core.parallel import launch, wants_launch
from tmkd.core.progress import progress
from tmkd.training.rundir import claim_step, finished_model, note_reused, require_weights, step_finished
from tmkd.training.teacher_selection import best_teacher
from tmkd.training.teachers import pretrained_encoder, teacher_dir, teacher_names
from tmkd.training.trainer import (SelectStopping, collate, device, device_precision, finish_step, fit, params_of, predict_logits,
                      training_args)


@dataclass(frozen=True)
class StudentSpec:
    """What one student run learns from. Its `name` says what it holds; its folder is students/<task>/<name>."""
    task: str                          # the data it is trained on (stage 1: the corpus' teachers' task)
    teachers: tuple = ()               # names of `task`'s teachers, one soft head each; () = gold labels only
    average_teachers: bool = False     # 1avg-o-1: the mean of the teachers' logits as one teacher
    alpha: float = 0.7
    layers: int = 3
    head_layers: int = 1
    optimizer: str = "adamw"
    seed: int = 42
    stage: int = 0                     # 0 one stage, 1 distillation pre-training, 2 task fine-tuning
    corpus: str = "task"               # stage 1: "task" or "pool" (config.stage1_corpus), labels dropped
    init_from: str = ""                # stage 2: name of the stage-1 student it starts from
    corpus_pairs: int = 0              # stage 1 (and the stage 2 after it): the first N pairs of the scored stage-1
                                       # corpus (chapter 05's corpus-size curve); 0 = the whole corpus
    epochs: float = 0.0                # 0: the configuration's (student_epochs; stage1_epochs in stage 1)
    variant: str = ""                  # the method's variant (tmkd.model.methods.KDMethod.variant): "strong" (without
                                       # the teachers flagged weak), "matched-full" (the compute-matched control),
                                       # "labelonly" (soft targets: the gold label as logits, with_label_logits)

    @property
    def who(self) -> str:
        """The method part of the name: nokd, 1o1-<teacher>, 1avgo1, mo1; tkd/tmkd for the two stages."""
        if self.stage:
            two = "tmkd" if len(self.teachers) > 1 else "tkd"
            size = f"-n{self.corpus_pairs}" if self.corpus_pairs else ""
            return f"{two}-stage1-{self.corpus}{size}" if self.stage == 1 else two + size
        if not self.teachers:
            return "nokd"
        if self.average_teachers:
            who = "1avgo1"
        else:
            who = f"1o1-{self.teachers[0]}" if len(self.teachers) == 1 else "mo1"
        return f"{who}-{self.variant}" if self.variant else who

    @property
    def suffix(self) -> str:
        """-k<layers>[-h<head layers>][-<optimizer>][-a<alpha>]-s<seed>; the paper's h1 and adamw are not spelled out,
        nor alpha where it is implied (0 without teachers, 1 in stage 1)."""
        parts = [f"k{self.layers}"]
        if self.head_layers != 1:
            parts.append(f"h{self.head_layers}")
        if self.optimizer != "adamw":
            parts.append(self.optimizer)
        if self.teachers and self.stage != 1:
            parts.append(f"a{self.alpha:g}")
        if self.epochs:
            parts.append(f"e{self.epochs:g}")
        return "-" + "-".join(parts + [f"s{self.seed}"])

    @property
    def name(self) -> str:
        return self.who + self.suffix

    @property
    def n_heads(self) -> int:
        """Soft heads of the multi-header layer (tmkd.model.method.soft_heads)."""
        return soft_heads(Student(self.teachers, self.average_teachers))


def student_dir(cfg: Config, spec: StudentSpec) -> Path:
    return cfg.run_path / "students" / spec.task / spec.name


def student_source(cfg: Config, task: str) -> str:
    """Where a one-stage student's layers come from: the teachers' pre-trained base (paper), or the best teacher."""
    if cfg.student_init == "teacher":
        return str(teacher_dir(cfg, task, best_teacher(cfg, task)) / "final")
    return base_model_path(cfg)


def student_identity(cfg: Config, spec: StudentSpec) -> dict:
    """Every setting that can change this student: the configuration as the student sees it (its spec's values
    in place of the defaults), minus identity.settings_excluded(...), plus the spec and the exact weights of
    its teachers and of the model it starts from."""
    seen = dataclasses.replace(cfg, **{field: getattr(spec, key) for key, field in SPEC_FIELDS.items()})
    teachers = {t: finished_model(teacher_dir(cfg, spec.task, t) / "final").get("weights_sha256")
                for t in spec.teachers}
    if spec.stage == 2:
        start = finished_model(stage1_folder(cfg, spec)).get("weights_sha256")
    elif cfg.student_init == "teacher":
        start = finished_model(student_source(cfg, spec.task)).get("weights_sha256")
    else:
        start = cfg.student_init
    kind = ("student", "stage1", "stage2")[spec.stage]
    return identity(seen, kind, spec=asdict(spec), teacher_weights=teachers, starts_from=start)


def stage1_folder(cfg: Config, spec: StudentSpec) -> Path:
    return cfg.run_path / "students" / cfg.stage1_task / spec.init_from / "final"


def student_train_data(cfg: Config, spec: StudentSpec):
    """The training split with its teachers' cached logits (no teacher forward during training).
    Stage 1 drops the gold labels altogether, so they cannot leak into the soft loss."""
    split = "stage1" if spec.stage == 1 else "train"
    if not spec.teachers:
        ds = split_dataset(cfg, spec.task, split)
    elif spec.variant == LABEL_TARGETS:
        ds = with_label_logits(cfg, spec.task, split, spec.teachers)
    else:
        ds = with_teacher_logits(cfg, spec.task, split, spec.teachers, spec.average_teachers)
    if spec.stage == 1 and "label" in ds.column_names:
        ds = ds.remove_columns(["label"])
    if spec.stage == 1 and spec.corpus_pairs:
        ds = ds.select(corpus_subset(cfg, len(ds), spec.corpus_pairs))
    return ds


def corpus_subset(cfg: Config, n: int, pairs: int) -> np.ndarray:
    """Rows of the first `pairs` pairs of a stage-1 corpus of n, in a fixed-seed order: a smaller size's pairs are
    among every larger size's, so the corpus-size curve adds pairs and changes nothing else."""
    if pairs > n:
        raise TMKDError(f"a stage-1 corpus of {pairs:,} pairs was asked for; the scored corpus holds {n:,}: choose "
                        f"stage1_sizes of at most {n:,} (or raise stage1_size)")
    return np.sort(np.random.default_rng(cfg.seed).permutation(n)[:pairs])


def build_student(source, layers: int, n_teachers: int, label_names, head_layers: int = 1, alpha: float = 0.7,
                  init: str = "copy", soft_loss: str = "mse", kd_temperature: float = 1.0, seed: int = 42,
                  pooling: str = "cls"):
    """A BERT-k student shaped like the BERT at `source` (a folder or Hub id: the pre-trained base or a fine-tuned
    teacher). init="copy": its embeddings and bottom k layers are copied (the paper); "random": same shapes."""
    from transformers import AutoConfig, set_seed
    bert_config = AutoConfig.from_pretrained(str(source)).to_dict()
    try:
        config = student_config(bert_config, layers, label_names, n_teachers, head_layers, alpha, soft_loss,
                                kd_temperature, pooling)
    except ValueError as e:
        raise TMKDError(f"{source}: {e}") from e
    set_seed(seed)
    student = TMKDStudent(config)
    if init == "copy":
        copy_bottom_layers(student, pretrained_encoder(source))   # the base's BertModel, or a teacher's
    elif init != "random":
        raise TMKDError(f"init must be 'copy' or 'random', not {init!r}")
    return student


def student_from_stage1(stage1_folder, n_teachers: int, label_names, alpha: float, head_layers: int,
                        soft_loss: str = "mse", kd_temperature: float = 1.0, seed: int = 42):
    """Stage 2's starting point: a student for the new task whose encoder (and heads, where they fit) come from
    the stage-1 student. The loss settings are stage 2's own. Returns (student, what was carried over)."""
    from transformers import set_seed
    require_weights(stage1_folder, "run chapter 05 again with FORCE=True to retrain the stage-1 students")
    old = TMKDStudent.from_pretrained(str(stage1_folder))
    config = student_config(old.config.to_dict(), old.config.num_hidden_layers, label_names, n_teachers,
                            head_layers, alpha, soft_loss, kd_temperature, old.config.pooling)
    set_seed(seed)
    new = TMKDStudent(config)
    return new, carry_over_stage1(old, new)


def check_vocabulary(cfg: Config, model, task: str, teachers):
    """A student learns from logits computed on token ids: its vocabulary must be its teachers'."""
    for t in teachers:
        tc = read_json(teacher_dir(cfg, task, t) / "final" / "config.json") or {}
        if tc.get("vocab_size") != model.config.vocab_size:
            raise TMKDError(f"student vocabulary ({model.config.vocab_size} tokens) differs from teacher {t}'s "
                            f"({tc.get('vocab_size')}): build the student from the teachers' base model")


def check_stage1_done(cfg: Config, spec: StudentSpec) -> None:
    if spec.stage == 2 and read_json(stage1_folder(cfg, spec) / "done.json") is None:
        raise TMKDError(f"stage 2 starts from {spec.init_from}, which is not trained: run chapter 05 first")


def train_student(cfg: Config, spec: StudentSpec, force: bool = False, callbacks=()) -> Path:
    """Train one student (skip when finished, resume when interrupted) and return its final folder."""
    out = student_dir(cfg, spec)
    check_stage1_done(cfg, spec)
    run_spec = student_identity(cfg, spec)
    if wants_launch(cfg) and not step_finished(out, run_spec, force):   # nproc processes (DDP)
        student_train_data(cfg, spec)            # data and teacher logits prepared once, before the workers start
        return launch(train_student, cfg, spec, force, tuple(callbacks), nproc=cfg.nproc)
    if claim_step(out, run_spec, force):
        note_reused("student", f"{spec.task}/{spec.name}")
        return out / "final"
    ds = student_train_data(cfg, spec)
    labels = TASKS[spec.task].labels
    if spec.stage == 2:
        model, msg = student_from_stage1(stage1_folder(cfg, spec), spec.n_heads, labels, spec.alpha,
                                         spec.head_layers, cfg.soft_loss, cfg.kd_temperature, spec.seed)
        progress(f"  {msg}")
    else:
        model = build_student(student_source(cfg, spec.task), spec.layers, spec.n_heads, labels, spec.head_layers,
                              spec.alpha, "random" if cfg.student_init == "random" else "copy", cfg.soft_loss,
                              cfg.kd_temperature, spec.seed, cfg.pooling)
    check_vocabulary(cfg, model, spec.task, spec.teachers)
    progress(f"> {spec.task}/{spec.name}: {len(ds)} examples, {spec.n_heads} soft head(s), alpha={spec.alpha:g}")
    epochs = student_epochs(cfg, spec)
    args = training_args(out, cfg.student_lr, epochs, cfg.student_batch_size,
                         dataclasses.replace(cfg, seed=spec.seed), spec.optimizer)
    stopper = select_stopping(cfg, spec, out)
    trainer = fit(model, ds, out, args, (*callbacks, *([stopper] if stopper else [])), cfg.checkpoint_sync_minutes * 60)
    best = stopper.restore(trainer.model, trainer.state) if stopper else {}
    if best:
        progress(f"  kept epoch {best['best_epoch']} ({100 * best['select_accuracy']:.1f} % on the select slice); it "
                 f"trained {best['epochs_run']} of at most {epochs:g} epochs")
    final = finish_step(trainer, out, run_spec, force=force)
    if stopper:
        stopper.best_file.unlink(missing_ok=True)
    return final


FULL_BUDGET = "matched-full"    # the variant of a student that trains its whole budget (the compute-matched control)
LABEL_TARGETS = "labelonly"     # the variant whose soft targets are the gold label as logits (the label-only control)


def select_stopping(cfg: Config, spec: StudentSpec, out: Path):
    """The early-stopping callback of a gold-label student (cfg.student_patience > 0; never in stage 1): scored
    on the task's held-out select slice, the data that also chooses teachers, never on dev. A FULL_BUDGET student
    is scored and keeps its best epoch too, but is never stopped: its learning-rate schedule runs to its end."""
    if not cfg.student_patience or spec.stage == 1:
        return None
    patience = math.inf if spec.variant == FULL_BUDGET else cfg.student_patience
    select = split_dataset(cfg, spec.task, "select")
    labels = np.asarray(select["label"])

    def score(model):
        return accuracy(np.exp(predict_logits(model, select, cfg.eval_batch_size, desc="select",
                                              dtype=device_precision(cfg))), labels)
    return SelectStopping(score, patience, out / "best-select.safetensors")


def select_curve(cfg: Config, spec: StudentSpec) -> list:
    """[(epoch, select accuracy)] of a student trained with early stopping (empty without it)."""
    history = read_json(student_dir(cfg, spec) / "final" / "log_history.json") or []
    return [(h["epoch"], h["select_accuracy"]) for h in history if "select_accuracy" in h]


def kept_epoch(curve: list):
    """The epoch early stopping keeps: the first with the best select accuracy (None without a curve); a whole
    number as an int, so that metrics.csv reads 3, never 3.0 beside 3."""
    if not curve:
        return None
    epoch = max(curve, key=lambda c: c[1])[0]
    return int(epoch) if float(epoch).is_integer() else epoch


def load_student(cfg: Config, spec: StudentSpec):
    final = student_dir(cfg, spec) / "final"
    require_weights(final, "run the chapter that trains it again with FORCE=True (04: one stage; 05, 06: the two "
                           "stages)")
    return TMKDStudent.from_pretrained(str(final)).to(device())


class WithHeads(torch.nn.Module):
    """A student whose `logits` are [log O | log P | log mean_i softmax(R_si)] (B, 3C): Eq. 6's prediction, the
    golden head's alone and the soft heads' alone (NaN without teachers), all from one forward pass."""
    def __init__(self, student):
        super().__init__()
        self.student = student

    def forward(self, **batch):
        out = self.student(**batch)
        golden = out.golden_logits.float().log_softmax(-1)
        soft = (out.soft_logits.float().softmax(-1).mean(1).clamp_min(1e-12).log() if out.soft_logits is not None
                and out.soft_logits.shape[1] else torch.full_like(golden, float("nan")))
        return SimpleNamespace(logits=torch.cat([out.logits.float(), golden, soft], dim=-1))


def student_predictions(cfg: Config, spec: StudentSpec, split: str) -> dict:
    """Dev probabilities of a trained student, cached beside it: {'probs' (Eq. 6: what it predicts), 'golden' (its
    golden head alone), 'soft' (its soft heads alone, averaged; NaN without teachers), 'idx', 'labels'}."""
    final = student_dir(cfg, spec) / "final"
    path = final / f"predictions-{split}.npz"
    done = read_json(final / "done.json")
    if done is None:
        raise TMKDError(f"{spec.task}/{spec.name} is not trained in {cfg.run_path}: run the chapter that trains it "
                        "with the same settings first (04: the one-stage methods; 05 and 06: the two stages)")
    meta_path = path.with_suffix(".json")
    ds = split_dataset(cfg, spec.task, split)
    meta = {"done": done, "data": split_fingerprint(cfg, spec.task, split), "heads": True}
    if read_json(meta_path) == meta | {"sha256": file_sha256(path) if path.exists() else None}:
        return load_npz(path) | {"labels": np.asarray(ds["label"])}
    every = predict_logits(WithHeads(load_student(cfg, spec)), ds, cfg.eval_batch_size, desc=f"{spec.name} {split}",
                           dtype=device_precision(cfg))
    probs, golden, soft = np.split(np.exp(every), 3, axis=1)
    save_npz_atomic(path, probs=probs, golden=golden, soft=soft, idx=np.asarray(ds["idx"], dtype=np.int64))
    write_json_atomic(meta_path, meta | {"sha256": file_sha256(path)})
    return {"probs": probs, "golden": golden, "soft": soft, "idx": np.asarray(ds["idx"]),
            "labels": np.asarray(ds["label"])}


def student_epochs(cfg: Config, spec: StudentSpec) -> float:
    return spec.epochs or (cfg.stage1_epochs if spec.stage == 1 else cfg.student_epochs)


def student_init(cfg: Config, spec: StudentSpec) -> str:
    """Where the student's weights start, as metrics.csv records it: base (the teachers' pre-trained model,
    the paper's BERT-k), teacher:<name> (the best teacher's layers), random, or stage1:<stage-1 student>."""
    if spec.stage == 2:
        return f"stage1:{spec.init_from}"
    if cfg.student_init == "teacher":
        return f"teacher:{best_teacher(cfg, spec.task)}"
    return cfg.student_init


def spec_row(cfg: Config, spec: StudentSpec) -> dict:
    """The metrics.csv columns that describe a student."""
    return {"task": spec.task, "stage": spec.stage, "alpha": spec.alpha, "layers": spec.layers,
            "head_layers": spec.head_layers, "optimizer": spec.optimizer, "teachers": "+".join(spec.teachers),
            "corpus": spec.corpus if spec.stage == 1 else "", "lr": cfg.student_lr,
            "epochs": student_epochs(cfg, spec), "seed": spec.seed, "init": student_init(cfg, spec),
            "pooling": cfg.pooling, "train_pairs": train_pairs(cfg, spec)}


def train_pairs(cfg: Config, spec: StudentSpec) -> int:
    """The pairs a student trains on: its task's labelled train pairs, or the stage-1 corpus (unlabelled)."""
    n = len(split_dataset(cfg, spec.task, "stage1" if spec.stage == 1 else "train"))
    return min(n, spec.corpus_pairs) if spec.stage == 1 and spec.corpus_pairs else n


COLLAPSED = 0.95     # a model that predicts one class for at least this share of dev examples has collapsed


def top_class_share(probs) -> float:
    """The share of examples predicted as the most predicted class: near 1 means a collapsed model (one label for
    everything), whatever its accuracy says."""
    predicted = np.asarray(probs).argmax(-1)
    return float(np.bincount(predicted).max() / len(predicted))


def student_rows(cfg: Config, spec: StudentSpec, method: str, sweep: str = "") -> list:
    """Evaluate a trained student on its task's dev splits (gold labels) as metrics rows."""
    params = params_of(student_dir(cfg, spec) / "final")
    rows = []
    for split in dev_splits(spec.task):
        p = student_predictions(cfg, spec, split)
        rows.append(spec_row(cfg, spec) | {
            "method": method, "model": f"{spec.task}/{spec.name}", "split": split, "sweep": sweep,
            "accuracy": accuracy(p["probs"], p["labels"]), "n_examples": len(p["labels"]), "params": params,
            "top_class_share": top_class_share(p["probs"])})
    curve = select_curve(cfg, spec)
    if curve:                         # early stopping: the epoch kept (the first best on the select slice)
        rows = [r | {"best_epoch": kept_epoch(curve)} for r in rows]
    return rows


# ---- the student on one real batch (chapter 03 recomputes every number from the paper's formulas) -----------

def first_batch(cfg: Config, task: str, size: int = 8, teachers=None, average: bool = False) -> dict:
    """`size` train pairs of `task`, collated as the Trainer collates them: input_ids, attention_mask,
    token_type_ids, labels (B,) and teacher_logits (B, N, C) (N = 1 with `average`)."""
    ds = with_teacher_logits(cfg, task, "train", teachers or teacher_names(cfg), average)
    return collate([ds[i] for i in range(min(size, len(ds)))])


def fresh_student(cfg: Config, task: str, n_teachers: int, alpha: float):
    """An untrained BERT-k student from the teachers' base, in eval mode (no dropout: numbers repeat)."""
    student = build_student(base_model_path(cfg), cfg.student_layers, n_teachers, TASKS[task].labels,
                            cfg.student_head_layers, alpha, soft_loss=cfg.soft_loss, kd_temperature=cfg.kd_temperature,
                            seed=cfg.seeds[0], pooling=cfg.pooling)
    return student.eval()
