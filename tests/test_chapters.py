"""Issue 14: the chapters teach. Each has its generated summaries and exercises; the reference chapters show no machine
path, frozen progress bar or traceback; chapter 03 checks its hand-computed batch against the helpers."""
import json
import re

import pytest

import tmkd.config
import tmkd.environment
from tmkd import publish
from conftest import REPO

CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SUMMARIES = ("result_sentences(", "result_sentence(", "interval_sentences(", "sweep_sentence(", "stage1_takeaway(",
             "print(f\"")


def cells(path, kind):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == kind]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_ends_with_exercises_and_prints_generated_summaries(path):
    last = cells(path, "markdown")[-1]
    assert last.startswith("## Exercises"), path.name
    exercises = re.findall(r"^\d+\. ", last, flags=re.M)
    assert 2 <= len(exercises) <= 3, path.name
    items = [e for e in last.split("\n")[1:] if e.strip()]
    assert all(("redict" in e or "?" in e) for e in items), f"{path.name}: each exercise asks for a prediction"
    code = "\n".join(cells(path, "code"))
    assert any(s in code for s in SUMMARIES), f"{path.name} prints no generated summary"
    assert "start_chapter(" in code


def test_chapter_03_checks_its_hand_computed_batch_against_the_helpers():
    code = "\n".join(cells(REPO / "notebooks" / "03_student_sweeps.ipynb", "code"))
    for check in ("golden_loss(golden, y), l_g", "mse_soft_loss(soft, R_t), l_s", "tmkd_loss(golden, soft, y, R_t, alpha), loss",
                  "head_probabilities(golden, soft, alpha), O", "out.loss, loss"):
        assert check in code, check


def test_the_smoke_chain_ran_chapter_03s_hand_computation(smoke_chain):
    run, _ = smoke_chain
    nb = json.loads((run / "executed" / "03_student_sweeps.ipynb").read_text())
    text = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    assert "hand-computed = helpers: loss" in text and "stage-1 loss = l_s" in text
    assert '"output_type": "error"' not in text


def test_deviations_name_the_papers_values():
    offline = tmkd.config.deviations(tmkd.config.make_config("offline", data_dir="x"))
    assert {"pooling", "teacher_lrs", "stage1_corpus"} <= set(offline.index)
    assert offline.loc["pooling", "paper"] == "cls" and offline.loc["teacher_lrs", "paper"] == "(2e-05, 3e-05, 5e-05)"
    paper = tmkd.config.deviations(tmkd.config.make_config("paper"))
    assert "teacher_lrs" not in paper.index and "pooling" not in paper.index
    assert "departs from the paper" in tmkd.environment.departures(tmkd.config.make_config("offline", data_dir="x"))


MACHINE = re.compile(r"(/work/|/root/|/home/|/tmp/|/content/tmkd-runs|site-packages)")


@pytest.mark.parametrize("name", [p.name for p in CHAPTERS])
def test_reference_chapters_show_no_machine_path_progress_bar_or_traceback(name):
    nb = json.loads((publish.REFERENCE / "executed" / name).read_text())
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            text = json.dumps(o)
            assert o.get("output_type") != "error" and "Traceback" not in text, name
            assert not publish.PROGRESS.search(text), (name, text[:200])
            assert not MACHINE.search(text), (name, MACHINE.search(text).group(0), text[:300])


def test_clean_notebook_drops_bars_warnings_widgets_and_paths(tmp_path):
    run = tmp_path / "run"
    nb = {"metadata": {"widgets": {}}, "cells": [{"cell_type": "code", "source": f'RUN_DIR = "{run}"', "outputs": [
        {"output_type": "stream", "name": "stderr", "text": "Loading: 10%|#  | 1/10 [00:01<00:09, 1.0it/s]\rdone\n"
                                                             "/x/y.py:3: UserWarning: noise\n"},
        {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {}, "text/plain": "0%|"}},
        {"output_type": "display_data", "data": {"text/html": "<div><progress value='80' max='80'></progress> "
                                                               "<table><tr><th>Step</th><th>Training Loss</th></tr>",
                                                 "text/plain": "<IPython.core.display.HTML object>"}},
        {"output_type": "execute_result", "data": {"text/plain": f"{run}/tables/a.md and {REPO}/notebooks"}}]}]}
    out = publish.clean_notebook(nb, run)
    c = out["cells"][0]
    assert "widgets" not in out["metadata"] and c["source"] == 'RUN_DIR = "RUN_DIR"'
    assert [o["output_type"] for o in c["outputs"]] == ["stream", "execute_result"]
    assert c["outputs"][0]["text"] == "done\n"
    assert c["outputs"][1]["data"]["text/plain"] == "RUN_DIR/tables/a.md and notebooks"


def test_the_set_up_is_short_and_its_colab_script_exists():
    for path in CHAPTERS:
        setup, imports, params, config = cells(path, "code")[:4]
        assert "google.colab" in setup and len(setup.splitlines()) <= 8, path.name
        assert "%run /content/tmkd-notebooks/tmkd/colab.py" in setup
        assert config.strip() == "cfg = start_chapter(PROFILE, RUN_DIR, DATA_DIR, OVERRIDES, FORCE)", path.name
    import tmkd.colab                                   # importing it does nothing (no Drive, no pip)
    assert (REPO / "tmkd" / "colab.py").exists() and callable(tmkd.colab.main)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_cell_has_its_own_id(path):
    """nbformat 4.5 cells carry an id; a cell without one makes every run print a MissingIDFieldWarning."""
    ids = [c.get("id") for c in json.loads(path.read_text())["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), path.name
