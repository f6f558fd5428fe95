"""Data: the Hub, a local folder in GLUE's layout, or the generator; labels mapped by name; tokenized once."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from tmkd.inputs.base_model import SMOKE_WORDS, base_model_path, load_tokenizer, tokenizer_fingerprint
from tmkd.core.config import SMOKE_MODEL, TASKS, Config, TMKDError, stage1_tasks
from tmkd.inputs.corpus import check_corpus_file, corpus_key, corpus_tokens
from tmkd.core.files import atomic, fingerprint, read_json, write_json_atomic
from tmkd.core.parallel import main_first

POOL_OFFSET = 10_000_000   # example ids of the pool's k-th task start at k * POOL_OFFSET: ids never collide


def dev_splits(task: str) -> tuple:
    return TASKS[task].dev_splits


def local_file(data_dir, task: str, split: str) -> Path:
    """The file of one split in a GLUE-layout folder, or a TMKDError saying what is missing and where."""
    spec = TASKS[task]
    folder = Path(data_dir) / spec.folder
    names = spec.local_files[split]
    found = [folder / n for n in names if (folder / n).exists()]
    if not found:
        raise TMKDError(f"{task}: no {split} file in {folder} (looked for {', '.join(names)}). "
                        f"Put GLUE's {spec.folder}/{names[0]} there or point --data-dir at the folder that holds {spec.folder}/.")
    return found[0]


NO_GOLD_LABEL = ("", "-", "-1", "None", "nan")


def check_local_split(data_dir, task: str, split: str) -> Path:
    """Read one split's file line by line and refuse what would fail later: bytes that are not UTF-8, a TSV row
    with another number of fields than its header, a missing column, a label outside the task's label set.
    Each message names the file, the line where there is one, and the fix."""
    return _scan_local_split(data_dir, task, split)[0]


def labelled_rows(data_dir, task: str, split: str) -> int:
    """How many rows of one split's file have a gold label (what the run will read; checked as check_local_split)."""
    return _scan_local_split(data_dir, task, split)[1]


def _scan_local_split(data_dir, task: str, split: str) -> tuple:
    """(path, rows with a gold label) of one split's file, refusing what check_local_split refuses."""
    path = local_file(data_dir, task, split)
    spec = TASKS[task]
    wanted = (*spec.local_columns, spec.local_label)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise TMKDError(f"{path}, line {line}: bytes that are not UTF-8 text (byte {e.start}). A GLUE file is "
                        "UTF-8 text: is this the right file (not a zip or a binary), or re-save it as UTF-8?") from None
    lines = text.splitlines()
    if not lines:
        raise TMKDError(f"{path} is empty: put the {task} {split} split there")
    labels, seen, gold = set(spec.labels), {}, 0
    if path.suffix == ".jsonl":
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise TMKDError(f"{path}, line {n}: not a JSON object (a .jsonl file holds one per line)") from None
            missing = [c for c in wanted if c not in row]
            if missing:
                raise TMKDError(f"{path}, line {n}: missing field(s) {missing}; a {task} file needs {list(wanted)}")
            label = str(row[spec.local_label]).strip()
            seen.setdefault(label, n)
            gold += label not in NO_GOLD_LABEL
    else:
        header = lines[0].split("\t")
        missing = [c for c in wanted if c not in header]
        if missing:
            raise TMKDError(f"{path}: missing column(s) {missing}; found {header}. "
                            f"A {task} file needs {list(wanted)} (selected by name, tab-separated).")
        col = header.index(spec.local_label)
        for n, line in enumerate(lines[1:], 2):
            fields = line.split("\t")
            if len(fields) != len(header):
                raise TMKDError(f"{path}, line {n}: {len(fields)} tab-separated fields where the header has "
                                f"{len(header)}. Remove or repair that row (a tab or line break inside a sentence?).")
            label = fields[col].strip()
            seen.setdefault(label, n)
            gold += label not in NO_GOLD_LABEL
    bad = {label: n for label, n in seen.items() if label not in labels and label not in NO_GOLD_LABEL}
    if bad:
        label, n = next(iter(bad.items()))
        hint = (" These look like label ids: write label names (the order of ids differs between sources)."
                if all(b.lstrip("-").isdigit() for b in bad) else "")
        raise TMKDError(f"{path}, line {n}: label(s) {sorted(bad)[:5]} are not in {task}'s label set "
                        f"{list(spec.labels)}.{hint} Fix the file or choose the task whose labels these are.")
    return path, gold


def check_data_dir(cfg: Config) -> None:
    """Every file the configuration will read (its GLUE-layout folder, a stage-1 corpus file), checked before
    anything runs."""
    if cfg.corpus_file:
        check_corpus_file(cfg.corpus_file)
    if not cfg.data_dir:
        return
    if not Path(cfg.data_dir).is_dir():
        raise TMKDError(f"--data-dir {cfg.data_dir} is not a folder: point it at the folder that holds RTE/, QNLI/, ...")
    for task in dict.fromkeys((*cfg.tasks, *stage1_tasks(cfg))):
        for split in ("train", *dev_splits(task)):
            check_local_split(cfg.data_dir, task, split)


def read_local_split(data_dir, task: str, split: str):
    """One split of a GLUE-layout folder as a frame with text_a, text_b, label (names) and idx."""
    import pandas as pd
    spec = TASKS[task]
    path = check_local_split(data_dir, task, split)
    if path.suffix == ".jsonl":
        df = pd.read_json(path, lines=True, dtype=False)
        df = df.astype({c: str for c in df.columns if df[c].dtype == object})
    else:   # some sentences start with a quote: no quoting, no NA guessing
        df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)
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


def frame_to_labelled(df, task: str, where: str):
    """Map label names to the task's order; drop rows without a gold label; refuse unknown labels."""
    labels = TASKS[task].labels
    df = df[~df["label"].isin(NO_GOLD_LABEL)]
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


TRAIN_PARTS = ("train", "select", "unused")


def part_sizes(n: int, train_size: int, select_size: int, share: float = 0.0) -> dict:
    """How many pairs of an n-pair train file each part of train_parts gets: select first, then the stage-1 share
    of the rest (held out, unlabelled), then train_size of what remains (0 = all of it); unused = the rest."""
    if select_size * 2 > n:
        raise TMKDError(f"select_size={select_size} would take over half of a {n}-pair train file: lower it")
    held = round(share * (n - select_size))
    train = min(train_size, n - select_size - held) if train_size else n - select_size - held
    return {"select": select_size, "train": train, "unused": n - select_size - train, "held": held}


def train_parts(df, train_size: int, select_size: int, seed: int, share: float = 0.0) -> dict:
    """A train file cut in three disjoint fixed-seed parts (example ids = rows of the file):
    select: `select_size` held-out pairs on which teachers are compared (never the reported dev set);
    train: `train_size` of the rest (0 = all of it) once a `share` of the rest is held out for stage 1 (stage1_share),
    the labelled data of teachers and students;
    unused: what is left, the only pairs stage 1 may use (unlabelled), so stage 2 never saw them with labels."""
    size = part_sizes(len(df), train_size, select_size, share)
    order = np.random.default_rng(seed).permutation(len(df))
    start = select_size + size["held"]           # the held-out share comes first, so share=0 keeps the old cut
    parts = {"select": order[:select_size], "train": order[start:start + size["train"]],
             "unused": np.concatenate([order[select_size:start], order[start + size["train"]:]])}
    return {name: df.iloc[np.sort(rows)].reset_index(drop=True) for name, rows in parts.items()}


def generated_rows(cfg: Config, file_split: str) -> int:
    """Rows of a generated (smoke) file: a train file twice train_size plus the select slice (so stage 1 has unused
    pairs), a dev file dev_size (0: 200)."""
    return (cfg.train_size or 200) * 2 + cfg.select_size if file_split == "train" else (cfg.dev_size or 200)


def labelled_file(cfg: Config, task: str, file_split: str):
    """One whole file (train, or a dev split) as a labelled frame, from the source the configuration names."""
    source = data_source(cfg)
    if source == "generated":
        df = generate_split(task, file_split, generated_rows(cfg, file_split), cfg.seed)
    elif source == "hub":
        df = read_hub_split(task, file_split)
    else:
        df = read_local_split(cfg.data_dir, task, file_split)
    return frame_to_labelled(df, task, f"{task}/{file_split} from {source}")


def subsets(cfg: Config, file_split: str, df) -> dict:
    """The splits a file gives: the train file's three parts (train_parts), or a dev file's fixed-seed subset."""
    if file_split == "train":
        return train_parts(df, cfg.train_size, cfg.select_size, cfg.seed, cfg.stage1_share)
    return {file_split: take_subset(df, cfg.dev_size, cfg.seed)}


def raw_split(cfg: Config, task: str, split: str):
    """One labelled split as a frame: a dev split (dev_size of it), or one of the train file's parts."""
    file_split = "train" if split in TRAIN_PARTS else split
    return subsets(cfg, file_split, labelled_file(cfg, task, file_split))[split]


def task_data(cfg: Config, task: str):
    """The task's train and dev splits, tokenized once and kept in RUN_DIR/data (a datasets folder).

    Columns: input_ids, attention_mask, token_type_ids, label (index into TASKS[task].labels), idx.
    With several processes the main one prepares the data and the others then read it (tmkd.core.parallel)."""
    if task not in TASKS:
        raise TMKDError(f"unknown task {task!r}: choose from {sorted(TASKS)}")
    with main_first():
        return _task_data(cfg, task)


def data_key(cfg: Config, task: str) -> dict:
    """What a task's tokenized data depends on: its source, sizes, seed, tokenizer and sequence length."""
    return {"task": task, "source": data_source(cfg), "train_size": cfg.train_size, "dev_size": cfg.dev_size,
            "select_size": cfg.select_size, "seed": cfg.seed, "tokenizer": tokenizer_fingerprint(base_model_path(cfg)),
            "max_seq_len": cfg.max_seq_len, "stage1_share": cfg.stage1_share}


def split_fingerprint(cfg: Config, task: str, split: str) -> str:
    """Our identity of a tokenized split (split_dataset's names), what a teacher, a logit file and a student's
    predictions are keyed on: its data folder's identity (data_key) and the split's name; 'stage1' the data of every
    task it draws from and stage1_size, or a corpus file's key. Computed from the inputs, never read from datasets."""
    if split == "stage1":
        data = {"corpus": corpus_key(cfg)} if cfg.corpus_file else [data_key(cfg, t) for t in stage1_tasks(cfg)]
        return fingerprint({"split": split, "data": data, "stage1_size": cfg.stage1_size})
    return fingerprint({"split": split, "data": data_key(cfg, task)})


def _task_data(cfg: Config, task: str):
    from datasets import DatasetDict, load_from_disk
    tok_path = base_model_path(cfg)
    key = data_key(cfg, task)
    folder = cfg.run_path / "data" / f"{task}-{fingerprint(key)}"
    if read_json(folder / "done.json") == key:
        return load_from_disk(str(folder / "dataset"))
    files = {s: labelled_file(cfg, task, s) for s in ("train", *dev_splits(task))}   # bad input writes nothing
    frames = {name: df for s, f in files.items() for name, df in subsets(cfg, s, f).items()}
    ds = DatasetDict({s: _frame_to_dataset(f) for s, f in frames.items() if len(f)})
    ds = tokenize(ds, load_tokenizer(tok_path), cfg.max_seq_len)
    # an empty part (no unused pairs, select_size=0) is not stored: split_dataset gives it as train with no rows
    with atomic(folder, folder=True) as tmp:
        ds.save_to_disk(str(tmp / "dataset"))
        write_json_atomic(tmp / "done.json", key)
    return load_from_disk(str(folder / "dataset"))


def _frame_to_dataset(df):
    from datasets import Dataset
    return Dataset.from_pandas(df.reset_index(drop=True), preserve_index=False)


def tokenize(ds, tokenizer, max_seq_len: int):
    def encode(batch):
        return tokenizer(batch["text_a"], batch["text_b"], truncation=True, max_length=max_seq_len)
    return ds.map(encode, batched=True, remove_columns=["text_a", "text_b"], desc="tokenize")


def stage1_corpus(cfg: Config):
    """Stage 1's unlabelled corpus: the unused train pairs (train_parts) of stage1_task, or of every task of
    stage1_pool_tasks (ids of the k-th task offset by k * POOL_OFFSET), labels dropped, at most stage1_size pairs.
    Or a file of the user's pairs (stage1_corpus=<path>; its first stage1_size pairs), tokenized in shards and
    memory-mapped (tmkd.inputs.corpus.TokenShards: never loaded whole)."""
    if cfg.corpus_file:
        return corpus_tokens(cfg)
    with main_first():                  # the main process writes the datasets cache of the pool's id offsets
        return _unused_pairs(cfg)


def _unused_pairs(cfg: Config):
    from datasets import concatenate_datasets
    tasks = stage1_tasks(cfg)
    parts = []
    for k, t in enumerate(tasks):
        d = split_dataset(cfg, t, "unused").remove_columns(["label"])
        parts.append(d.map(lambda b, o=k * POOL_OFFSET: {"idx": [o + i for i in b["idx"]]}, batched=True,
                           desc=f"stage-1 pairs of {t}") if k else d)
    ds = concatenate_datasets(parts)
    if len(ds) == 0:
        raise TMKDError(f"no unused train pairs in {list(tasks)} for stage 1: every pair is trained on or selects "
                        "a teacher. Hold a share out with stage1_share, lower train_size, or add a task with spare "
                        "pairs to stage1_pool_tasks")
    if cfg.stage1_size and cfg.stage1_size < len(ds):
        ds = ds.select(np.sort(np.random.default_rng(cfg.seed).permutation(len(ds))[:cfg.stage1_size]))
    return ds


def split_dataset(cfg: Config, task: str, split: str):
    """A tokenized split by name: train | select | unused | a dev split, or 'stage1' (stage1_corpus)."""
    if split == "stage1":
        return stage1_corpus(cfg)
    data = task_data(cfg, task)
    if split in TRAIN_PARTS and split not in data:
        return data["train"].select([])
    if split not in data:
        raise TMKDError(f"{task} has no split {split!r}: it has {list(data)}")
    return data[split]


def peek(cfg: Config, task: str, n: int = 3):
    """A few raw examples of a task with their label names, as the student and teachers see them."""
    df = raw_split(cfg, task, "train").head(n)
    return df.assign(label=[TASKS[task].labels[i] for i in df["label"]])
