"""Teacher logits: computed once per teacher and split, cached with what produced them, and aligned to a split by
example id and to the task's label order by name; a stage-1 corpus file scored shard by shard. Which teacher is
best or weak is tmkd.training.teacher_selection's job."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tmkd.core.config import TASKS, Config, TMKDError
from tmkd.inputs.corpus import corpus_tokens
from tmkd.inputs.data import dev_splits, split_dataset, split_fingerprint
from tmkd.core.files import file_sha256, load_npz, read_json, save_npy_atomic, save_npz_atomic, write_json_atomic
from tmkd.core.parallel import (
    barrier,
    broadcast,
    gather_to_main,
    is_main,
    launch,
    main_first,
    on_main,
    rank,
    wants_launch,
    world_size,
)
from tmkd.core.progress import progress
from tmkd.training.rundir import check_run_dir, force_stamp, forced_here, note_artifact
from tmkd.training.teachers import load_teacher, teacher_dir, teacher_label_names, teacher_names
from tmkd.training.trainer import predict_batches, predict_logits


def logits_path(cfg: Config, task: str, teacher: str, split: str) -> Path:
    return cfg.run_path / "logits" / task / teacher / f"{split}.npz"


def teacher_logits(cfg: Config, task: str, teacher: str, split: str, force: bool = False) -> dict:
    """The teacher's logits on a split: {'logits' (n, C) in the teacher's own label order, 'idx', 'labels'}.

    Cached in RUN_DIR/logits/<task>/<teacher>/<split>.npz beside a json of what produced it (teacher,
    its weights, data fingerprint, label order, file hash). A stale, partial or corrupt cache is rebuilt.
    A stage-1 corpus file is cached shard by shard (corpus_logits); here its shards are joined in memory."""
    if split == "stage1" and cfg.corpus_file:
        shards = corpus_logits(cfg, task, teacher, force)
        return {"logits": np.concatenate([np.asarray(a) for a in shards["shards"]]),
                "idx": np.arange(shards["n"], dtype=np.int64), "labels": shards["labels"]}
    job = _logits_job(cfg, task, teacher, split)
    # with several processes the main one decides (it writes): the others may look after it wrote
    if broadcast(job["problem"] is None and (not force or forced_here(job["cached"]))):
        note_artifact(job["path"].with_suffix(".json"))
        arrays = load_npz(job["path"])
        return {"logits": arrays["logits"], "idx": arrays["idx"], "labels": job["labels"]}
    if wants_launch(cfg):
        launch(score_splits, cfg, [(task, teacher, split)], force, nproc=cfg.nproc)
        return teacher_logits(cfg, task, teacher, split)
    with main_first():                       # several processes: the main one computes and writes, the others read
        if is_main():
            _write_split(job, _score_split(cfg, job), force)
    return teacher_logits(cfg, task, teacher, split)         # now cached: read back and checked


def _logits_job(cfg: Config, task: str, teacher: str, split: str) -> dict:
    """What one cached logit file is: its path, the data, what produced it, and what is wrong with the cache."""
    path = logits_path(cfg, task, teacher, split)
    folder = teacher_dir(cfg, task, teacher) / "final"
    done = read_json(folder / "done.json")
    if done is None:
        raise TMKDError(f"{task}/{teacher} is not trained yet: run chapter 01 (teachers) first")
    ds = split_dataset(cfg, task, split)
    labels = teacher_label_names(folder)
    meta = {"teacher": f"{task}/{teacher}", "teacher_weights": {k: v for k, v in done.items() if k != "forced_in"},
            "data": split_fingerprint(cfg, task, split), "n": len(ds), "label_names": labels, "split": split}
    cached = read_json(path.with_suffix(".json"))
    return {"path": path, "folder": folder, "ds": ds, "labels": labels, "meta": meta, "cached": cached,
            "problem": _logits_problem(path, cached, meta), "name": f"{task}/{teacher}/{split}"}


def logits_cached(cfg: Config, task: str, teacher: str, splits) -> bool:
    """Whether one teacher's logits on every split of `splits` are cached and intact ("stage1": the stage-1 corpus,
    a file's shards or the unused train pairs), so nothing needs the teacher's weights to read them."""
    for split in splits:
        if split == "stage1" and cfg.corpus_file:
            tokens = corpus_tokens(cfg)
            out = corpus_logits_dir(cfg, task, teacher, tokens)
            if any(_shard_problem(out / f"shard-{k:05d}.npy", _shard_meta(cfg, task, teacher, tokens, k), False)
                   for k in range(tokens.n_shards)):
                return False
        elif _logits_job(cfg, task, teacher, split)["problem"] is not None:
            return False
    return True


def _score_split(cfg: Config, job: dict) -> np.ndarray:
    model = load_teacher(job["folder"])
    return predict_logits(model, job["ds"], cfg.eval_batch_size, desc=job["name"], mixed=False)   # fp32 targets


def _write_split(job: dict, logits: np.ndarray, force: bool) -> None:
    path = job["path"]
    if job["problem"] and path.with_suffix(".json").exists():
        print(f"! {job['name']}: cached logits {job['problem']} - recomputing")
    save_npz_atomic(path, logits=logits, idx=np.asarray(job["ds"]["idx"], dtype=np.int64))
    write_json_atomic(path.with_suffix(".json"), job["meta"] | {"sha256": file_sha256(path)} | force_stamp(force))
    note_artifact(path.with_suffix(".json"))


def score_splits(cfg: Config, items, force: bool = False) -> int:
    """Cache the logits of (task, teacher, split) items whose cache is missing, stale or corrupt (all of them
    with force, once per run), the items shared among the processes of a launch; the main process writes every
    file. Returns how many were computed."""
    jobs = [_logits_job(cfg, *item) for item in items]        # in every process (each reads the prepared data)
    work = on_main(lambda: [i for i, job in enumerate(jobs)
                            if job["problem"] is not None or (force and not forced_here(job["cached"]))])
    across_processes(work, lambda i: _score_split(cfg, jobs[i]), lambda i, logits: _write_split(jobs[i], logits, force))
    return len(work)


def across_processes(items: list, compute, write) -> None:
    """compute(item) for every item, each in one process of the launch (item k in process k mod world_size), and
    write(item, result) in the main process, in rounds of one item per process: memory holds one result per
    process, and whatever was written before a crash stays written."""
    world = world_size()
    for first in range(0, len(items), world):
        k = first + rank()
        result = (k, compute(items[k])) if k < len(items) else None
        for got in gather_to_main(result):
            if got is not None:
                write(items[got[0]], got[1])
    barrier()


def _logits_problem(path: Path, cached, meta: dict):
    if cached is None:
        return "missing"
    for key in ("teacher_weights", "data", "n", "label_names"):
        if cached.get(key) != json.loads(json.dumps(meta[key])):
            return f"stale ({key} changed)"
    if not path.exists() or file_sha256(path) != cached.get("sha256"):
        return "corrupt (file missing or hash mismatch)"
    return None


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
    """The split with a `teacher_logits` column (teachers x classes per example); `average` -> one mean teacher.
    A stage-1 corpus file gives its memory-mapped shards (tmkd.inputs.corpus.TokenShards), logits read per example."""
    if split == "stage1" and cfg.corpus_file:
        return corpus_with_logits(cfg, task, teachers, average)
    ds = split_dataset(cfg, task, split)
    logits = stacked_teacher_logits(cfg, task, teachers, split, ds)
    if average:
        logits = logits.mean(axis=1, keepdims=True)
    return ds.add_column("teacher_logits", logits.tolist())


def with_label_logits(cfg: Config, task: str, split: str, teachers):
    """The label-only control's training split: a `teacher_logits` column like with_teacher_logits', where each
    teacher's logits are replaced by the gold label written as logits at that teacher's own scale: the zero-mean
    vector with +s*sqrt(C-1) for the gold class and -s/sqrt(C-1) for the others (+s and -s for two classes), whose
    root mean square s is that of the teacher's own logits on the train pairs. Same loss, same alpha, same
    magnitude as m-o-1's targets; only what the teachers know beyond the label is gone."""
    ds = split_dataset(cfg, task, split)
    gold = np.asarray(ds["label"])
    train = stacked_teacher_logits(cfg, task, teachers, "train", split_dataset(cfg, task, "train"))   # (n, N, C)
    scale = np.sqrt((train ** 2).mean(axis=(0, 2)))                                              # (N,)
    classes = train.shape[2]
    unit = np.full((len(gold), classes), -1 / np.sqrt(classes - 1), dtype=np.float32)
    unit[np.arange(len(gold)), gold] = np.sqrt(classes - 1)
    return ds.add_column("teacher_logits", (unit[:, None, :] * scale[None, :, None]).astype(np.float32).tolist())


def cache_all_logits(cfg: Config, force: bool = False):
    """Chapter 02: every teacher's logits for every split; returns a summary frame. With nproc > 1 (or inside a
    launch of several processes) the files are computed by all processes, each taking its share."""
    import pandas as pd
    check_run_dir(cfg)
    items = [(task, t, split) for task in cfg.tasks for t in teacher_names(cfg) for split in ("train", "select", *dev_splits(task))]
    if wants_launch(cfg):
        if any(_logits_job(cfg, *item)["problem"] is not None for item in items) or force:
            launch(score_splits, cfg, items, force, nproc=cfg.nproc)     # the data is prepared: _logits_job read it
    else:
        score_splits(cfg, items, force)
    rows = []
    for task in cfg.tasks:
        for t in teacher_names(cfg):
            for split in ("train", "select", *dev_splits(task)):
                c = teacher_logits(cfg, task, t, split, force)
                rows.append({"task": task, "teacher": t, "split": split, "examples": len(c["idx"]),
                             "classes": c["logits"].shape[1],
                             "file": str(logits_path(cfg, task, t, split).relative_to(cfg.run_path))})
    return pd.DataFrame(rows)


# ---- a stage-1 corpus file: logits shard by shard ------------------------------------------------------------

def corpus_logits_dir(cfg: Config, task: str, teacher: str, tokens) -> Path:
    return cfg.run_path / "logits" / task / teacher / f"stage1-{tokens.folder.name.split('-', 1)[1]}"


def _shard_meta(cfg: Config, task: str, teacher: str, tokens, k: int) -> dict:
    folder = teacher_dir(cfg, task, teacher) / "final"
    done = read_json(folder / "done.json")
    if done is None:
        raise TMKDError(f"{task}/{teacher} is not trained yet: run chapter 01 (teachers) first")
    return {"teacher": f"{task}/{teacher}", "teacher_weights": {k_: v for k_, v in done.items() if k_ != "forced_in"},
            "data": tokens.manifest_fingerprint, "shard": k, "n": len(tokens.shard_rows(k)),
            "label_names": teacher_label_names(folder), "split": "stage1"}


def _shard_problem(path: Path, meta: dict, force: bool):
    cached = read_json(path.with_suffix(".json"))
    problem = _logits_problem(path, cached, meta)
    if problem is None and force and not forced_here(cached):
        return "recomputed (force)"
    return problem


def score_corpus(cfg: Config, task: str, teacher: str, force: bool = False) -> int:
    """Score the stage-1 corpus file with one teacher, shard by shard: the shards not yet scored (or stale, or
    corrupt) are shared among the processes of the launch and the main process writes each shard's logits
    (.npy, then its .json with the file's hash) as soon as it has them, so a crash loses at most one round.
    Returns how many shards were scored."""
    tokens = corpus_tokens(cfg)
    out = corpus_logits_dir(cfg, task, teacher, tokens)
    path = lambda k: out / f"shard-{k:05d}.npy"                                   # noqa: E731

    def todo():
        return [k for k in range(tokens.n_shards)
                if _shard_problem(path(k), _shard_meta(cfg, task, teacher, tokens, k), force) is not None]
    work = on_main(todo)
    if not work:
        return 0
    model = load_teacher(teacher_dir(cfg, task, teacher) / "final")

    def compute(k):
        return predict_batches(model, tokens.shard_lengths(k), lambda rows: tokens.shard_batch(k, rows),
                               cfg.eval_batch_size, desc=f"{teacher} stage-1 shard {k}", mixed=False)

    def write(k, logits):
        out.mkdir(parents=True, exist_ok=True)
        save_npy_atomic(path(k), logits)
        write_json_atomic(path(k).with_suffix(".json"), _shard_meta(cfg, task, teacher, tokens, k)
                          | {"sha256": file_sha256(path(k))} | force_stamp(force))
        progress(f"  {task}/{teacher}: stage-1 shard {k + 1} of {tokens.n_shards} scored")
    across_processes(work, compute, write)
    return len(work)


def corpus_logits(cfg: Config, task: str, teacher: str, force: bool = False) -> dict:
    """One teacher's logits on the stage-1 corpus file: {'shards': memory-mapped (n_k, C) arrays in the teacher's
    label order, 'n', 'labels'}. Scores what is missing first (nproc processes); every shard's provenance (teacher
    weights, tokenized corpus, label order) and hash are checked."""
    tokens = corpus_tokens(cfg)
    out = corpus_logits_dir(cfg, task, teacher, tokens)
    if wants_launch(cfg):
        stale = [k for k in range(tokens.n_shards) if _shard_problem(
            out / f"shard-{k:05d}.npy", _shard_meta(cfg, task, teacher, tokens, k), force) is not None]
        if stale:
            launch(score_corpus, cfg, task, teacher, force, nproc=cfg.nproc)
    else:
        score_corpus(cfg, task, teacher, force)
    shards = []
    for k in range(tokens.n_shards):
        path = out / f"shard-{k:05d}.npy"
        problem = _shard_problem(path, _shard_meta(cfg, task, teacher, tokens, k), False)
        if problem is not None:
            raise TMKDError(f"{path}: stage-1 logits {problem} after scoring; run stage 1 again (it rescores them)")
        shards.append(np.load(path, mmap_mode="r", allow_pickle=False))
        note_artifact(path.with_suffix(".json"))
    return {"shards": shards, "n": tokens.n, "labels": teacher_label_names(teacher_dir(cfg, task, teacher) / "final")}


def corpus_with_logits(cfg: Config, task: str, teachers, average: bool = False):
    """The stage-1 corpus file as a training set: memory-mapped tokens, and per example its teachers' logits
    (teachers x classes, in the task's label order; `average` -> one mean teacher), read from the shards."""
    tokens = corpus_tokens(cfg)
    order = TASKS[task].labels
    per_teacher = []
    for t in teachers:
        c = corpus_logits(cfg, task, t)
        cols = align_labels(np.eye(len(order), dtype=np.float32), c["labels"], order).argmax(0)
        per_teacher.append((c["shards"], cols))            # column m of the task = column cols[m] of the teacher
    return tokens.with_logits(ShardLogits(per_teacher, average))


class ShardLogits:
    """(teachers x classes) logits of example j of shard k, aligned to the task's label order (a picklable
    callable for tmkd.inputs.corpus.TokenShards)."""
    def __init__(self, per_teacher, average: bool):
        self.per_teacher, self.average = per_teacher, average

    def __call__(self, k: int, j: int) -> np.ndarray:
        rows = np.stack([np.asarray(shards[k][j])[columns] for shards, columns in self.per_teacher]).astype(np.float32)
        return rows.mean(axis=0, keepdims=True) if self.average else rows
