"""What the chapters print first, and the machine they run on: library versions, the device, the run directory, where
the run departs from the paper; quieter library logging."""
from __future__ import annotations

import gc
import os
import platform
import subprocess
import warnings
from pathlib import Path

from tmkd.core import lock
from tmkd.core.config import AUTO, PROFILES, REPO, Config, deviations, make_config
from tmkd.inputs.data import data_source
from tmkd.core.progress import progress
from tmkd.training.rundir import LIBRARIES, check_run_dir, collect_reuse, library_versions


def open_chapter(profile: str, run_dir: str = "", data_dir: str = "", overrides=None, force=False) -> Config:
    """A chapter's first step (tmkd.training.experiments.start_chapter): its configuration (the parameters cell's
    values, OVERRIDES however papermill passed them), the run directory's lock (one writer at a time) and run.json,
    quieter logs, and where it runs."""
    cfg = make_config(profile, overrides, run_dir=run_dir, data_dir=data_dir)
    lock.acquire(cfg.run_path, what=f"a notebook kernel (profile {cfg.profile})")
    check_run_dir(cfg, str(force).lower() in ("true", "1"))
    quiet()
    summarise_reuse_per_cell()
    freeze_import_objects()
    info = describe_environment(cfg)
    versions = ("python", *LIBRARIES)                     # as run.json records them (rundir.library_versions)
    print("versions: " + ", ".join(f"{k} {info[k]}" for k in versions))
    print("; ".join(f"{k}: {v}" for k, v in info.items() if k not in versions))
    n = len(deviations(cfg))
    print(f"This run departs from the paper in {n} setting{'s' if n != 1 else ''}: chapter 01 lists them beside the "
          "paper's values." if n else "This run uses the paper's settings.")
    return cfg


def profile_note(requested: str, cfg: Config) -> str:
    """Which profile this chapter runs, why, and how to choose another."""
    if requested == AUTO:
        why = ('PROFILE = "auto" on a Colab runtime with a GPU' if cfg.profile == "colab" else
               'PROFILE = "auto", and this is not a Colab runtime with a GPU')
    else:
        why = f"PROFILE = {requested!r}"
    return (f"This run uses the {cfg.profile} profile ({why}). To run another, set PROFILE in the parameters cell to "
            f"one of {', '.join(PROFILES)} (or run_chain.py --profile NAME); run_chain.py --profile NAME --plan "
            "prints what it trains and how long it takes, without training.")


def summarise_reuse_per_cell() -> None:
    """In a notebook, a cell that reuses finished steps ends with one line ("18 students finished earlier, reused")
    instead of one line per step; outside IPython nothing changes."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or getattr(shell, "_tmkd_reuse_hook", False):
        return
    log = collect_reuse()

    def after_cell(*_):
        line = log.summary()
        if line:
            progress(line)            # under the chain: the chapter's progress log, not the published chapter
    shell.events.register("post_run_cell", after_cell)
    shell._tmkd_reuse_hook = True


def departures(cfg: Config) -> str:
    """Where this run departs from the paper, one line per setting, the paper's value beside it."""
    d = deviations(cfg)
    if not len(d):
        return "This run uses the paper's settings."
    return "Where this run departs from the paper:\n" + "\n".join(
        f"  {name}: {r['this run']}  (paper: {r['paper']})" for name, r in d.iterrows())


def freeze_import_objects() -> None:
    """Move what the imports made (about 440,000 objects: torch, transformers, datasets, pandas) out of the garbage
    collector's reach, once per process. The Trainer runs a full collection every time it starts training
    (accelerate's free_memory); over the imports' objects that took 0.18 s per model, and a smoke chain trains about
    100 models. Objects made later (models, data) are collected as before; nothing that is computed changes."""
    if not _FROZEN:
        gc.collect()
        gc.freeze()
        _FROZEN.append(True)


_FROZEN: list = []


def quiet():
    """Fewer library messages in the chapters (warnings about weights newly initialised, pin_memory)."""
    import transformers
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")


def shown_path(path) -> str:
    """A path as a chapter shows it: relative to the repository when inside it (no machine-specific prefix)."""
    p = Path(str(path))
    if not p.is_absolute():
        return str(path)
    for base, name in ((REPO, ""), (REPO.parent, "..")):
        for where in (p, p.resolve()):            # as given first: a run directory linked into the repository
            try:                                  # (Drive, another disk) shows where the chapter reads it
                rel = where.relative_to(base.resolve())
                return str(Path(name) / rel) if name else str(rel)
            except ValueError:
                continue
    return str(path)


def describe_environment(cfg: Config) -> dict:
    """Library versions, device and run directory; warns when there is no GPU for a GPU-sized profile."""
    import torch
    info = library_versions() | {"device": device_description(), "profile": cfg.profile,
                                 "run_dir": shown_path(cfg.run_path), "data": shown_path(data_source(cfg))}
    if cfg.nproc > 1:
        info["processes"] = cfg.nproc
    if cfg.profile == "paper" and not torch.cuda.is_available():
        print("! the paper profile expects a GPU (Runtime > Change runtime type in Colab)")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus > 1 and cfg.nproc == 1:
        print(f"! {gpus} GPUs: the heavy steps use one of them; set nproc={gpus} (OVERRIDES, or run_chain.py "
              f"--nproc {gpus}) to train and score on all of them, one process each")
    return info


def device_description() -> str:
    """The device, without initialising CUDA (torch.cuda.get_device_name would): a notebook that later starts
    worker processes by forking them (accelerate's notebook_launcher) needs CUDA untouched. GPU names come from
    nvidia-smi."""
    import torch
    if not torch.cuda.is_available():
        return device_name(cpu=True)
    n = torch.cuda.device_count()
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        names = []
    name = names[0].strip() if names and names[0].strip() else "CUDA GPU"
    return f"{name} x {n}" if n > 1 else name


CPUINFO = Path("/proc/cpuinfo")


def cpu_info(cpuinfo: Path = CPUINFO) -> dict:
    """The first processor's fields in /proc/cpuinfo ({} where there is none: macOS, Windows)."""
    try:
        first = cpuinfo.read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model and widest vector instructions ("" where unknown): machines of one name differ (an AMD EPYC
    without AVX-512 trained the offline teachers 1.4x slower than one with it), so measured rates and timings name
    it."""
    info = cpu_info(cpuinfo)
    flags = set(info.get("flags", "").split())
    isa = ("AMX" if "amx_bf16" in flags else "AVX-512 bf16" if "avx512_bf16" in flags
           else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "")
    name = info.get("model name", "")
    if "cpu family" in info:
        name += f" family {info['cpu family']} model {info.get('model', '?')}"
    return ", ".join(x for x in (name.strip(), isa) if x)


def device_name(cpu: bool = False) -> str:
    """The GPU's name (this initialises CUDA), or the CPU with its core count, model and vector instructions."""
    import torch
    if torch.cuda.is_available() and not cpu:
        return torch.cuda.get_device_name(0)
    model = cpu_model()
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores{', ' + model if model else ''})"
