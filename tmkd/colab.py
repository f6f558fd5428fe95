"""Colab set-up, run by every chapter's first cell on Colab only (`%run /content/tmkd-notebooks/tmkd/colab.py`):
update the clone, install what Colab lacks, mount Drive (the default RUN_DIR lives there, so a new session resumes
where the last one died) and work from the notebooks folder. Importing this module does nothing."""
import os
import subprocess
import sys

CLONE = "/content/tmkd-notebooks"


def main():
    subprocess.run(["git", "-C", CLONE, "pull", "-q", "--ff-only"], check=False)       # keep local edits if any
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", f"{CLONE}/requirements-colab.txt"], check=True)
    from google.colab import drive
    drive.mount("/content/drive")
    os.chdir(f"{CLONE}/notebooks")


if __name__ == "__main__":
    main()
