"""Progress lines belong to the live run: printed in a notebook or script, written to the chapter's progress log
(not into the executed copy a reader meets) when run_chain.py executes the chapter."""
import run_chain
from tmkd.core.progress import LOG_ENV, progress


def test_progress_is_printed_in_a_notebook_or_script(monkeypatch, capsys):
    monkeypatch.delenv(LOG_ENV, raising=False)
    progress("> qnli/mo1-k3-a0.7-s42: 800 examples")
    assert capsys.readouterr().out == "> qnli/mo1-k3-a0.7-s42: 800 examples\n"


def test_under_the_chain_progress_goes_to_the_log_and_not_to_the_output(monkeypatch, capsys, tmp_path):
    log = tmp_path / ".04_one_vs_many.progress.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    progress("> qnli/mo1-k3-a0.7-s42: 800 examples")
    progress("  kept epoch 3 (71.0 % on the select slice)")
    assert capsys.readouterr().out == ""
    assert log.read_text().splitlines() == ["> qnli/mo1-k3-a0.7-s42: 800 examples",
                                            "  kept epoch 3 (71.0 % on the select slice)"]


def test_the_chain_sets_the_log_for_the_chapter_it_runs_and_clears_it_after(monkeypatch, tmp_path):
    seen = {}

    class FakePapermill:
        @staticmethod
        def execute_notebook(src, dst, **kw):
            import os
            seen["log"] = os.environ.get(LOG_ENV)
            open(dst, "w").write("{}")
    monkeypatch.setitem(__import__("sys").modules, "papermill", FakePapermill)
    notebook = tmp_path / "04_one_vs_many.ipynb"
    notebook.write_text("{}")
    run_chain.run_chapter(notebook, tmp_path, {})
    assert seen["log"] == str(tmp_path / ".04_one_vs_many.progress.log")
    assert LOG_ENV not in __import__("os").environ
