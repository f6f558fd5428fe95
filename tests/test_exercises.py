"""Issue 23: every exercise runs as written on the smoke profile. An exercise that changes something (an OVERRIDES
literal in its text, an edit of a cell, an edit of a file in the run directory) is applied to a copy of the smoke
chain's run directory, and the chapters it names are executed there with papermill: each must finish, and show the
change. Exercises that ask only for a prediction, a reading of a table or an argument change nothing and run nothing.

Fast lane: the table below covers every exercise that changes something, and quotes what its text says. Slow: each
run (about 5 minutes in all)."""
import ast
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

import helpers
import tmkd.core.config

NOTEBOOKS = REPO / "notebooks"


def exercises() -> dict:
    """{(chapter number, exercise number): text} from every chapter's closing "## Exercises" cell."""
    found = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        last = "".join(json.loads(path.read_text())["cells"][-1]["source"])
        for number, text in re.findall(r"^(\d+)\. (.*)$", last, flags=re.MULTILINE):
            found[(path.name[:2], int(number))] = text
    return found


def overrides_in(text: str) -> list:
    """Every `OVERRIDES = {...}` literal an exercise asks for, in order."""
    return [ast.literal_eval(m) for m in re.findall(r"`OVERRIDES = (\{.*?\})`", text)]


def new_run_dir(text: str) -> str:
    """The other run directory an exercise asks for (`RUN_DIR = "..."`), or "" for this run's."""
    found = re.findall(r'`RUN_DIR = "([^"]+)"`', text)
    return found[0] if found else ""


def starts_empty(text: str) -> bool:
    """The exercise's run directory is new and empty (not a copy of this run, `cp -r`)."""
    return bool(new_run_dir(text)) and "cp -r" not in text


def corrupt_one_hash(run: Path) -> None:
    """Chapter 02, exercise 1: change the sha256 in one .json beside a logit file."""
    meta = min(run.glob("logits/*/*/train.json"))
    data = json.loads(meta.read_text())
    data["sha256"] = "0" * 64
    meta.write_text(json.dumps(data))


def model_names(run: Path) -> str:
    return " ".join(helpers.read_metrics(run)["model"].astype(str))


@dataclass(frozen=True)
class Exercise:
    chapters: tuple            # chapter numbers executed in this order, e.g. ("05", "06")
    quoted: str = ""           # what the exercise's text must quote: the edit the test makes
    cell: tuple = ()           # (old, new): a change of one cell of the exercise's own chapter
    run_edit: object = None    # a change of a file in the run directory, made before the chapters run
    shows: object = None       # (run, output text) -> True when the change is visible


EXERCISES = {
    ("01", 1): Exercise(("01",), shows=lambda run, out: (run / "teachers" / "rte" / "teacher-lr2e-05").exists()),
    ("02", 1): Exercise(("02",), quoted="change its `sha256`", run_edit=corrupt_one_hash,
                        shows=lambda run, out: "hash mismatch) - recomputing" in out),
    ("02", 3): Exercise(("02",)),                  # runs with either margin; which teachers are flagged is the answer
    ("03", 1): Exercise(("03",), quoted="`alpha = 0.0`",
                        cell=("task, alpha = cfg.sweep_task, cfg.alpha", "task, alpha = cfg.sweep_task, 0.0"),
                        shows=lambda run, out: "loss at alpha=0.0" in out and "hand-computed = helpers" in out),
    ("03", 2): Exercise(("03",), quoted="`R_t[:, 0] *= 10`",
                        cell=("y, R_t = batch['labels'], batch['teacher_logits']",
                              "y, R_t = batch['labels'], batch['teacher_logits']; R_t[:, 0] *= 10"),
                        shows=lambda run, out: "hand-computed = helpers" in out),
    ("03", 3): Exercise(("03",), shows=lambda run, out: "-k6-" in model_names(run)),
    ("04", 3): Exercise(("04",), shows=lambda run, out: "-s44" in model_names(run)),
    ("05", 3): Exercise(("05", "06"), shows=lambda run, out: "Stage 1 reads 320 pairs (qnli 320 unused" in out),
    ("06", 2): Exercise(("05", "06"), shows=lambda run, out: "100 examples" in out),
    ("07", 1): Exercise(("03", "07"), shows=lambda run, out: "student-k2" in (run / "speed.csv").read_text()),
    ("07", 2): Exercise(("07",), shows=lambda run, out: (pd.read_csv(run / "speed.csv")["batch_size"] == 1).all()),
}
# Run by another test: chapters 04's and 06's alpha = 1, both "re-run chapter 04, then 06" at OVERRIDES alpha = 1
# (tests/test_chain.py runs chapters 04, 06 and 07 so, checks that the exercise's students are there, chapter 06's
# TKD among them, and that the main tables stay as they were). Issue 42 merged chapter 06's run into that one.
ELSEWHERE = {("04", 2): "test_an_exercise_with_another_alpha_never_enters_a_table_the_readme_or_the_int8_row",
             ("06", 1): "test_an_exercise_with_another_alpha_never_enters_a_table_the_readme_or_the_int8_row"}
ELSEWHERE_OVERRIDES = [{"alpha": 1.0}]     # what that test sets (--set alpha=1.0)


def test_every_exercise_that_changes_something_is_run_and_quotes_its_edit():
    """The table covers every exercise with an OVERRIDES literal or an edit; each edit the test makes is the one the
    exercise's text quotes (so text and test cannot drift apart); no entry names an exercise that is gone."""
    found = exercises()
    assert set(EXERCISES) | set(ELSEWHERE) <= set(found), "an entry names an exercise that no chapter has"
    for key, text in found.items():
        if overrides_in(text):
            assert key in EXERCISES or key in ELSEWHERE, f"chapter {key[0]} exercise {key[1]} sets OVERRIDES: run it"
    for key, ex in EXERCISES.items():
        assert ex.quoted in found[key], f"chapter {key[0]} exercise {key[1]} no longer quotes {ex.quoted!r}"
        assert ex.quoted or overrides_in(found[key]), f"chapter {key[0]} exercise {key[1]} changes nothing to run"
        assert bool(ex.cell or ex.run_edit) == bool(ex.quoted), key
        assert not ex.cell or ex.chapters[0] == key[0], "a cell edit changes the exercise's own chapter"
    assert "alpha" in json.dumps(overrides_in(found[("04", 2)]))
    for key in ELSEWHERE:
        assert overrides_in(found[key]) == ELSEWHERE_OVERRIDES, f"chapter {key[0]} exercise {key[1]}: not what runs"


def test_every_exercise_override_is_valid_and_asks_only_what_the_run_directory_and_data_can_give():
    """Every OVERRIDES literal is a valid setting on the smoke profile; a stage1_size it asks for exists in the smoke
    data (640 unused pairs); and one that changes the run's data or teachers, which a run directory refuses, is asked
    in a new run directory, on the smoke and on the offline profile."""
    from tmkd.training.identity import identity
    glue = str(REPO.parent / "shared" / "data" / "glue")
    bases = {p: tmkd.core.config.make_config(p, data_dir=glue if p == "offline" else "") for p in ("smoke", "offline")}
    for (chapter, number), text in exercises().items():
        for overrides in overrides_in(text):
            cfg = tmkd.core.config.make_config("smoke", overrides)
            assert cfg.stage1_size <= 640, f"{chapter} exercise {number}: the smoke corpus has 640 unused pairs"
            for profile, base in bases.items():
                changed = tmkd.core.config.make_config(profile, overrides, data_dir=base.data_dir)
                if identity(changed, "run") != identity(base, "run"):
                    assert new_run_dir(text), (f"{chapter} exercise {number}: {overrides} changes the {profile} run's "
                                               "data or teachers; the run directory refuses it: name a new RUN_DIR")


def cases():
    found = exercises()
    for key, ex in EXERCISES.items():
        literals = overrides_in(found.get(key, "")) or [{}]
        for k, overrides in enumerate(literals):
            yield pytest.param(key, ex, overrides, id=f"{key[0]}-ex{key[1]}" + (f"-{k + 1}" if len(literals) > 1 else ""))


def execute(chapter: str, run: Path, overrides: dict, force: bool, cell: tuple, out: Path) -> str:
    """Execute one chapter with papermill on `run` (a cell edited if asked); returns its printed text."""
    import papermill as pm
    source = next(NOTEBOOKS.glob(f"{chapter}_*.ipynb"))
    nb = json.loads(source.read_text())
    if cell:
        edited = [c for c in nb["cells"] if c["cell_type"] == "code" and cell[0] in "".join(c["source"])]
        assert len(edited) == 1, f"{source.name}: the exercise's cell ({cell[0]!r}) is not there once"
        edited[0]["source"] = "".join(edited[0]["source"]).replace(cell[0], cell[1])
    path = NOTEBOOKS / f".exercise-{out.stem}.ipynb"            # beside the chapters: ".." is the repository
    path.write_text(json.dumps(nb))
    try:
        pm.execute_notebook(str(path), str(out), parameters={"RUN_DIR": str(run), "OVERRIDES": overrides, "FORCE": force},
                            cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
    finally:
        path.unlink()
    cells = json.loads(out.read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


@pytest.mark.slow
@pytest.mark.parametrize("key,exercise,overrides", list(cases()))
def test_exercise_runs_as_written_on_a_copy_of_the_smoke_run(key, exercise, overrides, smoke_chain, tmp_path):
    text = exercises()[key]
    run = tmp_path / "run"
    if not starts_empty(text):
        shutil.copytree(smoke_chain[0], run)           # this run (or the copy the exercise makes of it)
    force = "`FORCE = True`" in text
    if exercise.run_edit:
        exercise.run_edit(run)
    printed = "".join(execute(chapter, run, overrides, force, exercise.cell if chapter == key[0] else (),
                              tmp_path / f"{tmp_path.name}-{chapter}.ipynb") for chapter in exercise.chapters)
    if exercise.shows:
        assert exercise.shows(run, printed), f"chapter {key[0]} exercise {key[1]}: the change does not show"
