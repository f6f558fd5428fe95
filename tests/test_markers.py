"""run_chain's chapter markers: a chapter is skipped only while its parameters, its notebook, the code it runs and
every artifact it made are unchanged."""
import json
import shutil

import pytest

import tmkd.core.files
import run_chain
from tmkd.training import rundir


def ledger_of(tmp_path, monkeypatch, files):
    (tmp_path / "executed").mkdir(exist_ok=True)
    ledger = tmp_path / "executed" / "ledger.jsonl"
    monkeypatch.setenv("TMKD_LEDGER", str(ledger))
    for f in files:
        rundir.note_artifact(f)
    return run_chain.read_ledger(ledger)


def test_a_marker_counts_only_while_its_artifacts_are_intact(tmp_path, monkeypatch):
    a, b = tmp_path / "done.json", tmp_path / "table.md"
    a.write_text('{"spec": "x"}')
    b.write_text("| a |")
    marker, stamp = tmp_path / "executed" / "01.done.json", {"parameters": {"PROFILE": "smoke"}, "notebook": "n", "code": "c"}
    tmkd.core.files.write_json_atomic(marker, stamp | {"artifacts": ledger_of(tmp_path, monkeypatch, [a, b, a])})
    assert [e["path"] for e in json.loads(marker.read_text())["artifacts"]] == ["done.json", "table.md"]
    assert run_chain.chapter_done(marker, stamp)
    assert not run_chain.chapter_done(marker, stamp | {"code": "other"})          # the helpers changed
    assert not run_chain.chapter_done(marker, stamp | {"parameters": {"PROFILE": "offline"}})
    b.write_text("| b |")                                                         # an artifact was rewritten
    assert not run_chain.chapter_done(marker, stamp)
    b.write_text("| a |")
    assert run_chain.chapter_done(marker, stamp)
    a.unlink()                                                                    # a teacher's final/ deleted
    assert not run_chain.chapter_done(marker, stamp)


def test_no_ledger_outside_a_chain(tmp_path, monkeypatch):
    monkeypatch.delenv("TMKD_LEDGER", raising=False)
    f = tmp_path / "x.json"
    f.write_text("{}")
    rundir.note_artifact(f)                       # a notebook on its own: nothing recorded, nothing fails
    assert not list(tmp_path.glob("*.jsonl"))


def test_code_fingerprint_covers_every_module(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(run_chain.REPO / "tmkd", repo / "tmkd", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(run_chain.REPO / "helpers.py", repo / "helpers.py")
    monkeypatch.setattr(run_chain, "REPO", repo)
    before = run_chain.code_fingerprint()
    for module in sorted((repo / "tmkd").rglob("*.py")) + [repo / "helpers.py"]:
        original = module.read_text()
        module.write_text(original + "\n# changed\n")
        assert run_chain.code_fingerprint() != before, module.name
        module.write_text(original)
    assert run_chain.code_fingerprint() == before


@pytest.mark.slow
def test_a_deleted_teacher_makes_chapter_01_run_again(smoke_chain, tmp_path):
    from conftest import run_chain as chain
    run = tmp_path / "run"
    shutil.copytree(smoke_chain[0], run)
    final = next(run.glob("teachers/rte/*/final"))
    shutil.rmtree(final)
    proc = chain(run, "--only", "01")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "01_teachers: running" in proc.stdout and (final / "done.json").exists()
