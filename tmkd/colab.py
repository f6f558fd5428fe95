"""Colab: where a run lives there, and the set-up every chapter's first cell runs on Colab only
(`%run /content/tmkd-notebooks/tmkd/colab.py`): update the clone, install what Colab lacks, mount Drive (the default
RUN_DIR lives there, so a new session resumes where the last one died) and work from the notebooks folder.
Importing this module does nothing; it imports nothing from tmkd (it runs as a script before the package is set up)."""
import os
import subprocess
import sys
from pathlib import Path

CLONE = "/content/tmkd-notebooks"
COLAB_DRIVE = Path("/content/drive/MyDrive")
COLAB_LOCAL_CHECKPOINTS = Path("/content/tmkd-checkpoints")


def drive_run_dir(profile: str):
    """On Colab (Drive mounted): the profile's run directory in Drive; elsewhere None."""
    return COLAB_DRIVE / "tmkd-runs" / profile if COLAB_DRIVE.exists() else None


def local_checkpoints(run_path):
    """On Colab, for a run directory in Drive: the runtime's local disk, where Trainer checkpoints are written
    while a step trains (Drive sees one checkpoint per step every few minutes instead of every save); else None."""
    if COLAB_DRIVE.exists() and str(run_path).startswith(str(COLAB_DRIVE)):
        return COLAB_LOCAL_CHECKPOINTS
    return None


def main():
    subprocess.run(["git", "-C", CLONE, "pull", "-q", "--ff-only"], check=False)       # keep local edits if any
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", f"{CLONE}/requirements-colab.txt"], check=True)
    from google.colab import drive
    drive.mount("/content/drive")
    os.chdir(f"{CLONE}/notebooks")


if __name__ == "__main__":
    main()
