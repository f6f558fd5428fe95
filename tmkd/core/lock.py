"""One writer per run directory: a chain or a notebook that writes to a run directory holds RUN_DIR/.lock.json.

A second writer is refused at once, with the holder's host, pid and start time. A lock whose holder is gone is
taken over: on the same host when its pid no longer runs, elsewhere (another Colab runtime on the same Drive)
when its heartbeat, refreshed every minute, is older than STALE_AFTER_S.

Hand-written, not filelock's: a refusal here names the holder (host, pid, start, what it is) and a dead holder's lock
is taken over on a shared Drive where no OS lock crosses runtimes; filelock's FileLock/SoftFileLock say neither who
holds a lock nor whether the holder still lives (its lease lock would need a release fixed for GHSA-fq56-3cx3-fjxp,
checked before any swap)."""
from __future__ import annotations

import atexit
import json
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from tmkd.core.config import TMKDError

LOCK_NAME = ".lock.json"
HEARTBEAT_S = 60
STALE_AFTER_S = 300


def lock_token() -> str:
    """The chain's token (its chapters' kernels share its lock), or this process's own."""
    return os.environ.get("TMKD_LOCK_TOKEN") or _PROCESS_TOKEN


_PROCESS_TOKEN = uuid.uuid4().hex


class RunLock:
    """A run directory's lock as its taker holds it: the lock file, the token written into it, and whether this
    process took it (a chain's kernel finds its chain's lock: not its own to give back). While held a heartbeat
    thread refreshes it, and it is given back at exit (atexit) if the holder did not."""

    def __init__(self, path: Path, token: str, owned: bool):
        self.path, self.token, self.owned = path, token, owned
        if owned:
            atexit.register(self.release)
            threading.Thread(target=self._beat, daemon=True, name="tmkd-lock-heartbeat").start()

    def release(self) -> None:
        """Give the lock back if this process took it and the file is still ours (once; later calls do nothing)."""
        if not self.owned:
            return
        self.owned = False
        atexit.unregister(self.release)
        if (_read(self.path) or {}).get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def _beat(self) -> None:
        while self.owned:
            time.sleep(HEARTBEAT_S)
            if self.owned:
                try:
                    os.utime(self.path)
                except OSError:
                    return


def acquire(run: Path, what: str = "") -> RunLock:
    """Take the run directory's lock (or confirm it is already ours). Raises TMKDError naming the holder."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    path = run / LOCK_NAME
    token = lock_token()
    for _ in range(3):
        holder = _read_settled(path)
        if holder is not None and holder.get("token") == token:
            return RunLock(path, token, owned=False)     # ours (this process, or the chain that runs us)
        if holder is not None and not _stale(path, holder):
            raise TMKDError(
                f"{run} is in use by another run: {holder.get('what') or 'a process'} (pid {holder.get('pid')} on "
                f"{holder.get('host')}, started {holder.get('started')}). Wait for it to finish, stop it, or use "
                f"another --run-dir. A holder that died is taken over automatically (same machine: at once; "
                f"another machine: {STALE_AFTER_S // 60} minutes after its last heartbeat).")
        if holder is not None:
            print(f"! taking over the lock of a run that is gone (pid {holder.get('pid')} on {holder.get('host')})")
            path.unlink(missing_ok=True)
        mine = {"token": token, "host": socket.gethostname(), "pid": os.getpid(), "what": what,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue                                      # someone else was faster: look again
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(mine, f)
        return RunLock(path, token, owned=True)
    raise TMKDError(f"could not take the lock {path}: another process keeps taking it; try again")


def _read(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"token": None, "pid": None, "host": None, "started": "?", "unreadable": True}


def _read_settled(path: Path, wait_s: float = 2.0):
    """The holder, read again while its lock file is still being written (created, its content not yet there): two
    chains started together otherwise saw each other as 'pid None on None'."""
    holder = _read(path)
    deadline = time.time() + wait_s
    while holder is not None and holder.get("unreadable") and time.time() < deadline:
        time.sleep(0.05)
        holder = _read(path)
    return holder


def _stale(path: Path, holder: dict) -> bool:
    if holder.get("unreadable"):
        return _age(path) > 5                            # a half-written lock: its writer died mid-write
    if holder.get("host") == socket.gethostname():
        return not _alive(holder.get("pid"))
    return _age(path) > STALE_AFTER_S


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
