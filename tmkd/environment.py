"""What the chapters print first: library versions, device, run directory; quieter library logging."""
from __future__ import annotations

import sys

from .config import Config
from .data import data_source
from .speed import device_name


def quiet():
    """Fewer library messages in the chapters (warnings about weights newly initialised, pin_memory)."""
    import warnings
    import transformers
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")


def describe_environment(cfg: Config) -> dict:
    """Library versions, device and run directory; warns when there is no GPU for a GPU-sized profile."""
    import datasets
    import torch
    import transformers
    info = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "device": device_name(), "profile": cfg.profile,
            "run_dir": str(cfg.run_path), "data": data_source(cfg)}
    if cfg.profile == "paper" and not torch.cuda.is_available():
        print("! the paper profile expects a GPU (Runtime > Change runtime type in Colab)")
    return info
