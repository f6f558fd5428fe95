"""Progress of the live run: a line as each step starts or ends ("> qnli/mo1-k3-a0.7-s43: 800 examples, ...").

A chapter the chain executes (papermill) writes these lines to RUN_DIR/executed/.<chapter>.progress.log, which the
chain's console follows while the chapter runs; the executed copy a reader meets holds the chapter's results, not
its run log. In a notebook a person steps through, or in a script, they are printed. Warnings ("! ...") are printed
everywhere: they concern the result."""
from __future__ import annotations

import os

LOG_ENV = "TMKD_PROGRESS_LOG"      # set by run_chain.py for the chapter it executes


def progress(line: str) -> None:
    """One line of progress: to the chapter's progress log under the chain, else to the output."""
    path = os.environ.get(LOG_ENV)
    if not path:
        print(line, flush=True)
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip() + "\n")
