"""Files: every artifact is written under a temporary name and renamed, so a crash leaves the old file or the new
one, never half of one; content hashes that identify files. safetensors / npy / npz / json, never pickle.
The bottom of the package: it imports nothing from tmkd."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def fingerprint(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic(path, folder: bool = False):
    """The one way anything is written here: yield a temporary name beside `path` (a file, or with folder=True a
    folder, made empty), then move it into place in one rename, so that a reader (or a resumed run after kill -9)
    sees the old version or the whole new one, never half. A failure removes the temporary and keeps the old one.
    Hand-written because the rename must also cover folders (a model, a dataset) and the Trainer's own writers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    if folder:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if folder else tmp.unlink(missing_ok=True)
        raise
    if folder:
        replace_dir(tmp, path)
    else:
        os.replace(tmp, path)


def _write_synced(path, mode: str, write) -> Path:
    """write(f) into `path` atomically, flushed to disk before the rename."""
    with atomic(path) as tmp, open(tmp, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def write_text_atomic(path, text: str) -> Path:
    return _write_synced(path, "w", lambda f: f.write(text))


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
    return _write_synced(path, "wb", lambda f: np.savez(f, **arrays))


def load_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def replace_dir(tmp: Path, final: Path):
    """Move a fully written folder into place (the old one, if any, is removed first)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def save_npy_atomic(path: Path, array) -> Path:
    """One .npy file written atomically (loadable memory-mapped, no pickle)."""
    return _write_synced(path, "wb", lambda f: np.save(f, array, allow_pickle=False))


_HASHES = {}        # (resolved path, size, mtime_ns) -> sha256: a file is hashed once per process while unchanged


def cached_sha256(path) -> str:
    """The sha256 of a file's bytes, kept while its size and modification time do not change (a large corpus file
    is hashed once per process)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path)
    return _HASHES[key]
