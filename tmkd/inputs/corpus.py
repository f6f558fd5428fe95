"""A stage-1 corpus from a file: the user's own unlabeled pairs, of any size (the paper's stage 1 reads 4M pairs for
TMKD_base and 40M for TMKD_large), never held in memory whole.

stage1_corpus=<path of a .jsonl, .tsv or .parquet file with two text columns>. The file is read in shards of
stage1_shard_pairs pairs, each shard tokenized and written to RUN_DIR/data/stage1-<hash>/shard-<k>/ as a datasets folder
(Arrow files: token ids and token types per pair) under a temporary name and renamed, with a marker holding their
hashes; a re-run resumes at the first missing shard. The shards are memory-mapped: scoring (tmkd.training.logit_cache)
and training read one shard or one example at a time. Example ids are the pairs' row numbers in the file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tmkd.inputs.base_model import base_model_path, load_tokenizer, tokenizer_fingerprint
from tmkd.core.config import CORPUS_COLUMNS, CORPUS_SUFFIXES, Config, TMKDError
from tmkd.core.files import atomic, cached_sha256, file_sha256, fingerprint, read_json, write_json_atomic
from tmkd.core.parallel import is_main, main_first
from tmkd.core.progress import progress


def corpus_fingerprint(path) -> str:
    """The sha256 of the corpus file's bytes (what its tokens and logits were made from); kept while the file's
    size and modification time do not change."""
    path = Path(path).resolve()
    if not path.is_file():
        raise TMKDError(f"stage1_corpus={str(path)!r}: no such file. Give a .jsonl, .tsv or .parquet file of "
                        f"unlabeled pairs with two text columns (e.g. {', '.join(CORPUS_COLUMNS[0])})")
    return cached_sha256(path)


# ---- reading the file in chunks ------------------------------------------------------------------------------

def _expected(path) -> str:
    names = " or ".join(f"({a}, {b})" for a, b in CORPUS_COLUMNS[:4])
    return (f"{path} needs two text columns named {names}, ..., or exactly two columns "
            "(a .tsv file: a header row, tab-separated; .jsonl: one JSON object per line)")


def _pick(columns, path) -> tuple:
    columns = list(columns)
    for a, b in CORPUS_COLUMNS:
        if a in columns and b in columns:
            return a, b
    if len(columns) == 2:
        return tuple(columns)
    raise TMKDError(f"{_expected(path)}; it has {columns}")


def corpus_columns(path) -> tuple:
    """The two text columns of a corpus file, from its header (first line, first object or parquet schema);
    a TMKDError naming the file and the expected columns when it has none of them."""
    path = Path(path)
    if not path.is_file():
        raise TMKDError(f"stage1_corpus={str(path)!r}: no such file. {_expected(path)}")
    suffix = path.suffix.lower()
    if suffix not in CORPUS_SUFFIXES:
        raise TMKDError(f"{path}: a corpus file is {' / '.join(CORPUS_SUFFIXES)}, not {suffix or 'without suffix'}")
    if suffix == ".parquet":
        import pyarrow.parquet as pq
        try:
            return _pick(pq.ParquetFile(path).schema_arrow.names, path)
        except TMKDError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure means it is not a readable parquet file
            raise TMKDError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            first = next((line for line in f if line.strip()), "")
        except UnicodeDecodeError:
            raise TMKDError(f"{path}: bytes that are not UTF-8 text near the start; is this the right file?") from None
    if not first:
        raise TMKDError(f"{path} is empty: {_expected(path)}")
    if suffix == ".jsonl":
        try:
            row = json.loads(first)
        except ValueError:
            raise TMKDError(f"{path}, line 1: not a JSON object (a .jsonl file holds one per line)") from None
        if not isinstance(row, dict):
            raise TMKDError(f"{path}, line 1: not a JSON object (a .jsonl file holds one per line)")
        return _pick(row, path)
    return _pick(first.rstrip("\n\r").split("\t"), path)


def check_corpus_file(path) -> Path:
    """Refuse a corpus file that cannot be read as pairs, in a second, before anything runs."""
    corpus_columns(path)
    return Path(path)


def read_pairs(path, chunk: int, limit: int = 0):
    """The file's pairs in chunks of `chunk` rows: (texts a, texts b) lists, streamed (the file is never read whole).
    `limit` > 0 stops after that many pairs. A bad row raises a TMKDError naming the file and line."""
    path = Path(path)
    a, b = corpus_columns(path)
    if path.suffix.lower() == ".parquet":
        rows = _parquet_rows(path, a, b, chunk)
    else:
        rows = _text_rows(path, a, b)
    got, left = 0, limit or -1
    batch_a, batch_b = [], []
    for x, y in rows:
        batch_a.append(x)
        batch_b.append(y)
        got += 1
        if len(batch_a) == chunk:
            yield batch_a, batch_b
            batch_a, batch_b = [], []
        if got == left:
            break
    if batch_a:
        yield batch_a, batch_b


def _parquet_rows(path, a, b, chunk):
    import pyarrow.parquet as pq
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk, columns=[a, b]):
        yield from zip(*(["" if v is None else str(v) for v in batch.column(c).to_pylist()] for c in (a, b)))


def _text_rows(path, a, b):
    jsonl = path.suffix.lower() == ".jsonl"
    with open(path, encoding="utf-8", newline="") as f:
        lines = enumerate(f, 1)
        if not jsonl:
            n, header = next(lines)
            header = header.rstrip("\r\n").split("\t")
            ia, ib, width = header.index(a), header.index(b), len(header)
        for n, line in lines:
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if jsonl:
                try:
                    row = json.loads(line)
                    yield str(row[a]), str(row[b])
                except (ValueError, KeyError, TypeError):
                    raise TMKDError(f"{path}, line {n}: not a JSON object with {a!r} and {b!r}") from None
            else:
                fields = line.split("\t")
                if len(fields) != width:
                    raise TMKDError(f"{path}, line {n}: {len(fields)} tab-separated fields where the header has "
                                    f"{width}. Remove or repair that row (a tab or line break inside a text?)")
                yield fields[ia], fields[ib]


def count_pairs(path) -> int:
    """Pairs in a corpus file without parsing it (parquet: its metadata; text: lines, minus a tsv header)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq
        return pq.ParquetFile(path).metadata.num_rows
    lines = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            lines += block.count(b"\n")
    return max(lines - (path.suffix.lower() == ".tsv"), 0)


# ---- tokenized shards ----------------------------------------------------------------------------------------

def corpus_key(cfg: Config) -> dict:
    """What the tokenized shards depend on: the file's bytes (not where it lies: a copy elsewhere is the same corpus),
    the tokenizer, max_seq_len, stage1_size, shard size."""
    return {"sha256": corpus_fingerprint(cfg.corpus_file),
            "tokenizer": tokenizer_fingerprint(base_model_path(cfg)), "max_seq_len": cfg.max_seq_len,
            "stage1_size": cfg.stage1_size, "shard_pairs": cfg.stage1_shard_pairs}


def corpus_dir(cfg: Config, key: dict | None = None) -> Path:
    return cfg.run_path / "data" / f"stage1-{fingerprint(key or corpus_key(cfg))}"


SHARD_COLUMNS = ("input_ids", "token_type_ids")


def shard_name(k: int) -> str:
    return f"shard-{k:05d}"


TOKENIZE_BATCH = 1000      # pairs per tokenizer call: Python lists of token ids for only this many pairs at a time


def _tokenize_shard(tokenizer, texts_a, texts_b, max_seq_len: int) -> dict:
    """One shard's pairs as flat arrays: input_ids (int32), token_type_ids (int8), offsets (int64, n + 1)."""
    ids, types, lengths = [], [], []
    for i in range(0, len(texts_a), TOKENIZE_BATCH):
        enc = tokenizer(texts_a[i:i + TOKENIZE_BATCH], texts_b[i:i + TOKENIZE_BATCH], truncation=True,
                        max_length=max_seq_len)
        n = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(enc["input_ids"]))
        lengths.append(n)
        ids.append(np.fromiter((t for x in enc["input_ids"] for t in x), dtype=np.int32, count=int(n.sum())))
        kinds = enc.get("token_type_ids")
        types.append(np.fromiter((t for x in kinds for t in x), dtype=np.int8, count=int(n.sum())) if kinds
                     else np.zeros(int(n.sum()), dtype=np.int8))
    lengths = np.concatenate(lengths)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return {"input_ids": np.concatenate(ids), "token_type_ids": np.concatenate(types), "offsets": offsets}


def _save_shard(folder: Path, k: int, arrays: dict) -> dict:
    """Shard k's pairs (_tokenize_shard's arrays) as a datasets folder, written atomically; its Arrow files' hashes."""
    import pyarrow as pa
    from datasets import Dataset
    offsets = pa.array(arrays["offsets"])
    table = pa.table({c: pa.LargeListArray.from_arrays(offsets, pa.array(arrays[c])) for c in SHARD_COLUMNS})
    with atomic(folder / shard_name(k), folder=True) as tmp:
        Dataset(table).save_to_disk(str(tmp))
    return _arrow_hashes(folder / shard_name(k))


def _arrow_hashes(path: Path) -> dict:
    return {p.name: file_sha256(p) for p in sorted(path.glob("*.arrow"))}


def _shard_table(folder: Path, k: int):
    """Shard k's Arrow table, memory-mapped (datasets' load_from_disk)."""
    from datasets import load_from_disk
    return load_from_disk(str(folder / shard_name(k))).data.table


def shard_ok(folder: Path, k: int, verify: bool = True) -> dict | None:
    """The marker of tokenized shard k when its folder is there with its recorded pairs and tokens and (verify) its
    recorded hashes; None when anything is missing, truncated or changed."""
    import pyarrow.compute as pc
    marker = read_json(folder / f"{shard_name(k)}.json")
    if marker is None:
        return None
    try:
        table = _shard_table(folder, k)
    except (OSError, ValueError):                 # missing, truncated, or not a datasets folder
        return None
    if table.num_rows != marker.get("n") or pc.sum(pc.list_value_length(table["input_ids"])).as_py() != marker.get("tokens"):
        return None
    if verify and _arrow_hashes(folder / shard_name(k)) != marker.get("sha256"):
        return None
    return marker


def tokenize_corpus(cfg: Config) -> Path:
    """The corpus file tokenized into shards under RUN_DIR/data/stage1-<hash>/ (by the main process, the others
    wait): finished shards are kept, a re-run resumes at the first missing or corrupt one. Returns the folder."""
    key = corpus_key(cfg)
    folder = corpus_dir(cfg, key)
    with main_first():
        if is_main() and not _complete(folder, key):
            _tokenize(cfg, key, folder)
    return folder


def _complete(folder: Path, key: dict) -> bool:
    """Finished, and every shard there with its lengths (hashes are checked when the shards are written)."""
    manifest = read_json(folder / "shards.json")
    if read_json(folder / "done.json") != key or manifest is None:
        return False
    bad = [k for k in range(len(manifest["shards"])) if shard_ok(folder, k, verify=False) is None]
    if bad:
        print(f"! stage-1 corpus: tokenized shard {bad[0]} is missing or truncated - tokenizing it again")
    return not bad


def _tokenize(cfg: Config, key: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "key.json", key)
    tokenizer, size, shards = None, cfg.stage1_shard_pairs, []
    limit = cfg.stage1_size
    start = 0
    for k, (texts_a, texts_b) in enumerate(read_pairs(cfg.corpus_file, size, limit)):
        marker = shard_ok(folder, k)
        if marker is None or marker.get("start") != start or marker.get("n") != len(texts_a):
            tokenizer = tokenizer or load_tokenizer(base_model_path(cfg))
            arrays = _tokenize_shard(tokenizer, texts_a, texts_b, cfg.max_seq_len)
            hashes = _save_shard(folder, k, arrays)
            marker = {"shard": k, "start": start, "n": len(texts_a), "tokens": int(arrays["offsets"][-1]),
                      "sha256": hashes}
            write_json_atomic(folder / f"{shard_name(k)}.json", marker)
            progress(f"  stage-1 corpus: shard {k} tokenized ({start + len(texts_a):,} pairs so far)")
        shards.append({"n": marker["n"], "start": start, "sha256": marker["sha256"]})
        start += len(texts_a)
    if start == 0:
        raise TMKDError(f"{cfg.corpus_file}: no pairs in it. {_expected(cfg.corpus_file)}")
    write_json_atomic(folder / "shards.json", {"n": start, "shards": shards})
    write_json_atomic(folder / "done.json", key)


class TokenShards:
    """The tokenized corpus, memory-mapped shard by shard: len(), one example as a dict (what trainer.collate
    pads), a shard's Arrow table, and a padded batch of a shard's rows. With `logits` (a function of the
    position in a shard (k, j) giving (teachers, classes)), every example carries its `teacher_logits`.

    Each shard is a datasets folder (save_to_disk / load_from_disk: Arrow files, memory-mapped). The writing around
    it stays hand-written, because datasets' own writers work in one piece (datasets 4/5): Dataset.map(cache_file_name=)
    writes one temporary file and moves it into place when the whole map ends (arrow_dataset._map_single), so a kill
    mid-way keeps nothing; load_dataset("json" / "csv") first copies the whole file into its Arrow cache, in one
    piece too, and its TSV reading cannot name the bad line; shard(contiguous=True) cuts a dataset that already
    exists. So the file is read in chunks here (read_pairs), a shard at a time is tokenized and saved, and a marker
    with its Arrow files' hashes says it is whole (load_from_disk checks no hash). This class, not one concatenated
    Dataset, because scoring reads a shard's rows as padded batches and training joins each row to its teachers'
    logits by shard and position."""

    def __init__(self, folder: Path, logits=None):
        self.folder = Path(folder)
        manifest = read_json(self.folder / "shards.json")
        if manifest is None:
            raise TMKDError(f"{folder}: the tokenized corpus is incomplete; run stage 1 again (it resumes)")
        self.n = manifest["n"]
        self.starts = np.array([s["start"] for s in manifest["shards"]] + [self.n], dtype=np.int64)
        self.n_shards = len(manifest["shards"])
        self.logits = logits
        self._open = {}
        self.manifest_fingerprint = fingerprint(manifest)     # what its scored logits are keyed on

    def __len__(self) -> int:
        return self.n

    @property
    def column_names(self) -> list:
        return ["input_ids", "token_type_ids", "attention_mask", "idx"] + (["teacher_logits"] if self.logits else [])

    def shard(self, k: int):
        """Shard k's Arrow table (memory-mapped; opened once)."""
        if k not in self._open:
            self._open[k] = _shard_table(self.folder, k)
        return self._open[k]

    def shard_rows(self, k: int) -> range:
        return range(int(self.starts[k]), int(self.starts[k + 1]))

    def __getitem__(self, i):
        if isinstance(i, str):
            if i != "idx":
                raise KeyError(i)
            return np.arange(self.n, dtype=np.int64)
        i = int(i)
        if not 0 <= i < self.n:
            raise IndexError(i)
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        s = self.shard(k)
        j = i - int(self.starts[k])
        ids, types = (s[c][j].values.to_numpy().astype(np.int64) for c in SHARD_COLUMNS)
        item = {"input_ids": ids, "token_type_ids": types, "attention_mask": np.ones(len(ids), dtype=np.int64), "idx": i}
        if self.logits is not None:
            item["teacher_logits"] = self.logits(k, j)
        return item

    def with_logits(self, logits) -> "TokenShards":
        return TokenShards(self.folder, logits)

    def shard_lengths(self, k: int) -> np.ndarray:
        import pyarrow.compute as pc
        return pc.list_value_length(self.shard(k)["input_ids"]).to_numpy().astype(np.int64)

    def shard_batch(self, k: int, rows) -> dict:
        """Padded tensors of rows (positions within shard k), as trainer.collate makes them."""
        import pyarrow.compute as pc
        import torch
        picked = self.shard(k).take(np.asarray(rows, dtype=np.int64))
        lengths = pc.list_value_length(picked["input_ids"]).to_numpy()
        mask = np.arange(int(lengths.max())) < lengths[:, None]
        out = {"attention_mask": torch.from_numpy(mask.astype(np.int64))}
        for c in SHARD_COLUMNS:
            padded = np.zeros(mask.shape, dtype=np.int64)
            padded[mask] = pc.list_flatten(picked[c]).to_numpy()        # row by row, as the mask runs
            out[c] = torch.from_numpy(padded)
        return out


def corpus_tokens(cfg: Config) -> TokenShards:
    """The stage-1 corpus file, tokenized (once) and memory-mapped."""
    return TokenShards(tokenize_corpus(cfg))


def corpus_name(cfg: Config) -> str:
    """How a stage-1 student names its corpus: task, pool, or file-<file name without suffix>."""
    if not cfg.corpus_file:
        return cfg.stage1_corpus
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(cfg.corpus_file).stem)[:40]
    return f"file-{stem}"

