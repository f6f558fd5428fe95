"""Run the TMKD chapters in order with papermill.

    python run_chain.py --profile smoke
    python run_chain.py --profile offline --data-dir ../shared/data/glue
    python run_chain.py --profile colab --plan            # the plan and its estimate; trains nothing
    python run_chain.py --profile smoke --only 01 02      # some chapters only
    python run_chain.py --profile smoke --force           # recompute everything
    python run_chain.py --profile smoke --set teacher_epochs=1 --set tasks=rte,qnli   # any setting
    python run_chain.py --profile smoke --config my-settings.json                      # settings from a file
    python run_chain.py --profile colab --nproc 2     # teachers, logits and students on 2 GPUs (torch's elastic
                                                      # launcher, DDP; the configured batch stays the effective one)
    python run_chain.py --profile offline --data-dir ../shared/data/glue --publish
                                    # then copy the results to results/reference and rewrite the README table

Executed copies go to RUN_DIR/executed/. A chapter is skipped when it finished with the same parameters and the same
code (helpers.py, tmkd/) and everything it made is intact; after a chapter runs, the later ones run too. A failing
chapter stops the chain with its name and error, and running the same command again continues from there
(every chapter resumes its unfinished steps from their checkpoints).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

from tmkd.core import config, files, lock    # light modules only: bad input is refused before torch loads

from tmkd.training import rundir
from tmkd.core.config import TMKDError, coerce, settings_help
from tmkd.inputs.data import check_data_dir
from tmkd.chain.plan import build_plan, check_free_space, check_plan, plan_text
from tmkd.core.progress import LOG_ENV

REPO = Path(__file__).resolve().parent
NOTEBOOKS = REPO / "notebooks"


def chapters(only=()) -> list:
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = set(only) - {p.name[:2] for p in found}
        if unknown:
            raise TMKDError(f"--only {sorted(unknown)}: no such chapter; chapters are "
                            f"{[p.name[:2] for p in found]}")
        found = [p for p in found if p.name[:2] in only]
    return found


def code_fingerprint() -> str:
    """The code every chapter runs: helpers.py and the tmkd package. A change re-executes the chapters (each
    still skips its finished steps inside)."""
    sources = [REPO / "helpers.py", *sorted((REPO / "tmkd").rglob("*.py"))]
    return files.fingerprint({f.relative_to(REPO).as_posix(): files.file_sha256(f) for f in sources})


def read_ledger(ledger: Path) -> list:
    """The artifacts a chapter recorded while it ran (one json line each), last record per path."""
    if not ledger.exists():
        return []
    entries = {}
    for line in ledger.read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        entries[e["path"]] = e
    return sorted(entries.values(), key=lambda e: e["path"])


def chapter_done(marker: Path, stamp: dict) -> bool:
    """A chapter counts as done while its marker matches (parameters, notebook, code) and every artifact it made
    (teachers, logit files, students, tables, figures) is still there, unchanged."""
    old = files.read_json(marker)
    if old is None or {k: old.get(k) for k in stamp} != stamp:
        return False
    return rundir.artifacts_intact(old.get("artifacts", []), marker.parent.parent)


USER_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")


def wait_policy() -> None:
    """How the next chapter's OpenMP threads wait, decided when its kernel starts: passively (they sleep) when other
    processes keep the cores busy at that moment or another chain or notebook kernel is running, else the library's
    default (they spin briefly before sleeping).
    Spinning threads beside another busy process fight it for the cores (a smoke chain took 8x longer beside another
    one); sleeping threads cost a small model up to a third of its speed on an idle machine (benchmarks/README.md).
    Either way no result changes. A policy the user set is kept."""
    if USER_WAIT_POLICY is not None:
        return
    if others_busy() or other_chains():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        os.environ.pop("OMP_WAIT_POLICY", None)


CHAIN_PROCESSES = ("run_chain.py", "ipykernel_launcher")


def other_chains() -> bool:
    """True when another chain or notebook kernel is running, busy or not at this moment: two chains started together
    each found the other idle while it was starting its kernel, both kernels spun, and chapter 01 took 4 minutes
    instead of 16 s. This process and its own kernels do not count. False where there is no /proc."""
    me = os.getpid()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int(entry.name) == me or int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue                                    # the process ended meanwhile, or is not readable
        if any(name in command for name in CHAIN_PROCESSES):
            return True
    return False


def others_busy(interval: float = 0.5) -> bool:
    """True when other processes keep at least half a core busy right now (the chain itself is idle between chapters):
    /proc/stat read twice, `interval` seconds apart. False where there is no /proc/stat."""
    def busy_total():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - (v[4] if len(v) > 4 else 0), sum(v)      # minus idle and iowait
    try:
        b0, t0 = busy_total()
        time.sleep(interval)
        b1, t1 = busy_total()
    except (OSError, ValueError, IndexError):
        return False
    return t1 > t0 and (b1 - b0) / (t1 - t0) * (os.cpu_count() or 1) >= 0.5


def run_chapter(notebook: Path, executed: Path, parameters: dict):
    """Execute one chapter; the executed copy is written under a temporary name and renamed when done.

    papermill runs in a worker thread: the main thread only waits, so Ctrl-C is handled at once (papermill's
    client otherwise sits in a blocking zmq poll until the kernel next sends a message). The kernel process logs
    errors only, into RUN_DIR/executed/.<chapter>.kernel.log, not into the chain's output."""
    import papermill as pm
    partial = executed / f".{notebook.stem}.partial.ipynb"
    wait_policy()
    outcome = {}

    def execute():
        try:
            pm.execute_notebook(str(notebook), str(partial), parameters=parameters, kernel_name="python3",
                                cwd=str(NOTEBOOKS), progress_bar=False, log_output=False,
                                extra_arguments=["--IPKernelApp.log_level=ERROR"], shutdown_kernel="immediate",
                                kernel_manager_class=kernel_manager(executed / f".{notebook.stem}.kernel.log"))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread as it is
            outcome["error"] = e
    worker = threading.Thread(target=execute, name=f"papermill {notebook.stem}", daemon=True)
    log = executed / f".{notebook.stem}.progress.log"
    log.unlink(missing_ok=True)
    os.environ[LOG_ENV] = str(log)                  # the kernel's progress lines go there, not into the chapter
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
            follow(log)
    finally:
        os.environ.pop(LOG_ENV, None)
        if sys.stdout.isatty():
            print("\x1b[K", end="", flush=True)        # the progress line goes; " done in ..." takes its place
    if "error" in outcome:
        raise outcome["error"]
    KERNELS.clear()                  # shut down with the chapter: never signal a pid that may be reused
    os.replace(partial, executed / notebook.name)


def follow(log: Path) -> None:
    """On a terminal: the running chapter's last progress line (tmkd.core.progress), rewritten in place after
    "[3/8] 03_student_sweeps: running ...". Elsewhere (a log file, CI) the chain prints one line per chapter."""
    if not sys.stdout.isatty() or not log.exists():
        return
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    if lines:
        print(f"\x1b7 {len(lines)} steps, last: {lines[-1].strip()[:70]}\x1b[K\x1b8", end="", flush=True)


def kernel_manager(log: Path):
    """jupyter_client's KernelManager with the kernel process's stderr going to `log`."""
    from jupyter_client.manager import KernelManager

    class LoggedKernelManager(KernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(log, "ab") as stderr:                  # the kernel process keeps its own copy
                result = await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": stderr})
            KERNELS.append(self.provisioner.process.pid)
            return result
    return LoggedKernelManager


KERNELS = []        # pids of the running chapter's kernels: stopped at once on Ctrl-C


def stop_kernels() -> None:
    for pid in KERNELS:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def parse_settings(pairs: list, config_file: str) -> dict:
    """--config FILE.json, then every --set KEY=VALUE, each converted and checked by Config's own fields."""
    settings = {}
    if config_file:
        data = files.read_json(config_file)
        if not isinstance(data, dict):
            raise TMKDError(f"--config {config_file}: not a readable JSON object of settings, "
                            'e.g. {"teacher_epochs": 1, "tasks": ["rte", "qnli"]}')
        settings.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise TMKDError(f"--set {pair!r}: write KEY=VALUE, e.g. --set teacher_epochs=1")
        settings[key.strip()] = value
    for key in ("profile", "run_dir", "data_dir"):
        if key in settings:
            raise TMKDError(f"{key} has its own option: use --{key.replace('_', '-')}")
    return {k: coerce(k, v) for k, v in settings.items()}


def check_writable(run: Path) -> None:
    """Refuse a run directory that is a file or cannot be written, before anything is written."""
    if run.exists() and not run.is_dir():
        raise TMKDError(f"--run-dir {run} is a file: choose a folder (it is created if missing)")
    probe = run
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise TMKDError(f"--run-dir {run}: {probe} is not writable; choose a folder you can write to")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="settings for --set and --config (defaults: the smoke profile):\n" + settings_help())
    p.add_argument("--profile", default="smoke", help=f"one of {sorted(config.PROFILES)}, or auto (colab on a Colab "
                                                      "GPU runtime, else smoke)")
    p.add_argument("--run-dir", default="", help="run directory (default results/<profile>)")
    p.add_argument("--data-dir", default="", help="folder in GLUE's layout (<TASK>/train.tsv, dev.tsv)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting listed below, e.g. --set teacher_epochs=1 --set tasks=rte,qnli (repeatable)")
    p.add_argument("--config", default="", metavar="FILE.json", help="settings from a JSON object; --set wins")
    p.add_argument("--nproc", type=int, default=0, metavar="N",
                   help="processes (one per GPU) for teacher training, logit caching and student training: the "
                        "chapters start them with torch's elastic launcher (torchrun's engine); same as --set nproc=N")
    p.add_argument("--plan", action="store_true",
                   help="print the plan (pairs of every split and step, the stage-1 corpus against stage 2's labelled "
                        "pairs, the models of each chapter, the estimate) and stop; trains nothing")
    p.add_argument("--only", nargs="*", default=[], help="chapter numbers to run, e.g. 01 02")
    p.add_argument("--force", action="store_true", help="recompute finished steps (each once in this run)")
    p.add_argument("--publish", action="store_true",
                   help="after the chain: copy metrics, speed, tables, figures and executed notebooks to "
                        "results/reference/ and rewrite the README's reference table from them")
    return p


def prepare(args):
    """Everything checked in this process, in a second or two, before a kernel starts or a file is written."""
    overrides = parse_settings(args.settings, args.config)
    if args.nproc:
        overrides["nproc"] = coerce("nproc", args.nproc)
    cfg = config.make_config(args.profile, overrides, run_dir=os.path.abspath(args.run_dir) if args.run_dir else "",
                              data_dir=os.path.abspath(args.data_dir) if args.data_dir else "")
    check_data_dir(cfg)
    if not args.plan:
        plan = check_plan(cfg)       # an impossible plan is refused here, before chapter 01, with the setting to change
        check_free_space(cfg, plan)  # and a run directory that would outgrow its disk
    todo = chapters(args.only)
    if args.publish and cfg.profile == "smoke":
        raise TMKDError("--publish is for real data: the smoke profile's generated numbers do not "
                                "belong in results/reference or the README")
    check_writable(cfg.run_path)
    return cfg, overrides, todo


def print_plan(cfg) -> int:
    """`--plan`: the plan and the estimate (rates measured here, or a T4's for a GPU profile on a machine without
    one); 2 when the plan is impossible, with what to change."""
    from tmkd.chain.estimate import plan_rates
    plan = build_plan(cfg)
    print(plan_text(cfg, plan, *plan_rates(cfg)), flush=True)
    return 2 if plan["problems"] else 0


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg, overrides, todo = prepare(args)
        if args.plan:
            return print_plan(cfg)
        run = cfg.run_path
        os.environ["TMKD_LOCK_TOKEN"] = uuid.uuid4().hex    # the chapters' kernels share the chain's lock
        held = lock.acquire(run, what=f"run_chain.py --profile {cfg.profile}")
        rundir.check_run_dir(cfg, args.force)
    except TMKDError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    executed = run / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps({"profile": cfg.profile, "data_dir": cfg.data_dir, "overrides": overrides}))
    if files.read_json(run / "chain.json") != settings:            # what the chain was last run with
        files.write_json_atomic(run / "chain.json", settings)
    parameters = {"PROFILE": cfg.profile, "RUN_DIR": str(run), "DATA_DIR": cfg.data_dir, "FORCE": args.force,
                  "OVERRIDES": json.loads(json.dumps(overrides))}      # tuples as lists: papermill writes literals
    for sig in (signal.SIGINT, signal.SIGTERM):     # Ctrl-C (also when started in the background) and kill:
        signal.signal(sig, signal.default_int_handler)   # stop at once, resumable, with one line
    try:
        return run_chain(cfg, run, todo, parameters, args)
    except KeyboardInterrupt:
        stop_kernels()                 # the running chapter's kernel: its last checkpoint is what resumes
        held.release()
        print("\ninterrupted: finished steps are kept and unfinished ones resume from their last checkpoint; "
              "run the same command again to continue", file=sys.stderr, flush=True)
        return 130
    finally:
        held.release()


def run_chain(cfg, run: Path, todo: list, parameters: dict, args) -> int:
    executed = run / "executed"
    start = time.time()
    print(f"TMKD chain: profile {cfg.profile}, run directory {run}", flush=True)
    # FORCE recomputes each step at most once per run; an interrupted --force run continues with the same token,
    # so running the same command again resumes it instead of recomputing its finished steps once more.
    forced = run / ".force-run.json"
    token = (files.read_json(forced) or {}).get("token") if args.force else None
    os.environ["TMKD_RUN_TOKEN"] = token or uuid.uuid4().hex
    if args.force and not token:
        files.write_json_atomic(forced, {"token": os.environ["TMKD_RUN_TOKEN"]})
    code = code_fingerprint()
    rerun_rest, summary = False, []
    for i, nb in enumerate(todo, 1):
        marker = executed / f"{nb.stem}.done.json"
        stamp = {"parameters": parameters, "notebook": files.file_sha256(nb), "code": code}
        head = f"[{i}/{len(todo)}] {nb.stem}"
        if not args.force and not rerun_rest and chapter_done(marker, stamp):
            print(f"{head}: done earlier, skipped", flush=True)
            summary.append((nb.stem, "skipped", 0.0))
            continue
        rerun_rest = True            # a chapter that runs again may change what the later ones read
        if nb.name.startswith("01_") and not files.read_json(marker):
            from tmkd.chain.estimate import estimate, record_rates
            estimate(cfg, record_rates(cfg))   # before any training: the time and space this profile will take here
                                               # (its rates kept for chapter 01, which prints the same estimate)
        print(f"{head}: running ...", end="", flush=True)
        t0 = time.time()
        ledger = executed / f".{nb.stem}.ledger.jsonl"
        ledger.unlink(missing_ok=True)
        os.environ["TMKD_LEDGER"] = str(ledger)
        try:
            run_chapter(nb, executed, parameters)
        except KeyboardInterrupt:
            print(f" interrupted after {time.time() - t0:.0f}s", flush=True)
            raise
        except Exception as e:  # noqa: BLE001 - report any failure with the chapter's name
            name = getattr(e, "ename", type(e).__name__)
            value = getattr(e, "evalue", str(e))
            if name == "KeyboardInterrupt":          # Ctrl-C reached the kernel first
                print(f" interrupted after {time.time() - t0:.0f}s", flush=True)
                raise KeyboardInterrupt from None
            print(f" FAILED after {time.time() - t0:.0f}s", flush=True)
            print(f"{head}: {name}: {value}\n"
                  f"  executed copy: {executed / ('.' + nb.stem + '.partial.ipynb')}\n"
                  "  fix the cause and run the same command again to continue from here", file=sys.stderr)
            return 1
        finally:
            os.environ.pop("TMKD_LEDGER", None)
        files.write_json_atomic(marker, stamp | {"artifacts": read_ledger(ledger)})
        ledger.unlink(missing_ok=True)
        print(f" done in {time.time() - t0:.0f}s", flush=True)
        summary.append((nb.stem, "ran", time.time() - t0))
    forced.unlink(missing_ok=True)                       # the forced run is complete
    ran = [f"{name} {secs:.0f}s" for name, status, secs in summary if status == "ran"]
    print(f"chain finished in {time.time() - start:.0f}s: {len(ran)} chapter(s) ran ({', '.join(ran) or 'none'}), "
          f"{len(summary) - len(ran)} skipped; results in {run}", flush=True)
    if args.publish:
        from tmkd.reporting import publish
        dest = publish.export_reference(run)
        publish.update_readme(dest)
        size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
        print(f"published: {dest} ({size / 1e6:.1f} MB) and the README table", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    if code == 130:                    # interrupted: leave at once, without waiting for the kernel client's
        sys.stdout.flush()             # sockets (the papermill thread) to wind down
        os._exit(code)
    sys.exit(code)
