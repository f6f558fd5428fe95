"""keep_weights: a finished model whose weights were removed is still finished (a re-run skips it, its size is still
read) and a step that needs its weights says what to re-run; the plan's run directory fits a free Colab Drive; a run
directory that would outgrow its disk is refused before anything is written. The whole chain under
keep_weights="needed" (same metrics, every weight gone and recorded, killed and resumed): tests/test_interrupt.py."""
import collections

import pytest
import torch
from safetensors.torch import save_file

import run_chain
import tmkd.chain.plan
from tmkd.chain.plan import build_plan, plan_text, space
from tmkd.core.config import TMKDError, make_config
from tmkd.core.files import file_sha256, fingerprint, read_json, write_json_atomic
from tmkd.training.rundir import REMOVED, has_weights, remove_weights, require_weights, step_finished
from tmkd.training.teachers import load_teacher
from tmkd.training.trainer import params_of
from conftest import SHARED_GLUE, needs_shared_glue

DATA = {"offline": {"data_dir": str(SHARED_GLUE)}}      # the offline profile reads a local GLUE folder

SPEC = {"kind": "teacher", "lr": 3e-5}


def finished_step(out):
    """A step folder as finish_step leaves it: final/model.safetensors (3 x 4 + 4 parameters) and its done marker."""
    final = out / "final"
    final.mkdir(parents=True)
    save_file({"w": torch.zeros(3, 4), "b": torch.zeros(4)}, str(final / "model.safetensors"))
    weights = final / "model.safetensors"
    write_json_atomic(final / "done.json", {"spec": fingerprint(SPEC), "weights_bytes": weights.stat().st_size,
                                            "weights_sha256": file_sha256(weights)})
    return final


def test_a_model_without_its_weights_is_still_finished_and_says_what_to_rerun(tmp_path):
    final = finished_step(tmp_path / "teacher")
    size = (final / "model.safetensors").stat().st_size
    assert step_finished(final.parent, SPEC) and params_of(final) == 16
    assert remove_weights(final, params_of(final)) == size
    assert not has_weights(final) and read_json(final / REMOVED)["weights_bytes"] == size
    assert step_finished(final.parent, SPEC)           # a re-run skips it
    assert params_of(final) == 16                       # the tables still read its size
    with pytest.raises(TMKDError, match=r"weights were removed once no later chapter read them .*run chapter 01 "
                                        r"again with FORCE=True.*keep_weights='all'"):
        load_teacher(final)
    with pytest.raises(TMKDError, match="run chapter 05 again"):
        require_weights(final, "run chapter 05 again with FORCE=True")


def test_a_removal_record_of_other_weights_does_not_count_as_finished(tmp_path):
    final = finished_step(tmp_path / "teacher")
    remove_weights(final, 16)
    record = read_json(final / REMOVED)
    write_json_atomic(final / REMOVED, record | {"weights_sha256": "0" * 64})
    assert not step_finished(final.parent, SPEC)       # retrained, never reused on a record that names other weights


def test_the_colab_plan_fits_a_free_drive_and_says_so():
    cfg = make_config("colab")
    plan = build_plan(cfg)
    needed, everything = space(cfg, plan), space(make_config("colab", keep_weights="all"), plan)
    assert cfg.keep_weights == "needed" and make_config("paper").keep_weights == "needed"
    assert make_config("smoke").keep_weights == make_config("offline", **DATA["offline"]).keep_weights == "all"
    assert needed["peak"] <= 5e9 < 15e9 < everything["peak"]          # a free account's 15 GB, shared with its mail
    assert needed["final"] < needed["peak"] and everything["final"] > 15e9
    text = plan_text(cfg, plan)
    assert f"run directory (keep_weights=needed): at most {tmkd.chain.plan.gigabytes(needed['peak'])}" in text
    assert "keep_weights=all: at most" in text


@pytest.mark.parametrize("profile", ["smoke", pytest.param("offline", marks=needs_shared_glue), "colab", "paper"])
def test_every_profile_plans_less_space_when_it_keeps_only_what_is_read(profile):
    cfg = make_config(profile, keep_weights="needed", **DATA.get(profile, {}))
    plan = build_plan(cfg)
    everything = space(make_config(profile, keep_weights="all", **DATA.get(profile, {})), plan)
    needed = space(cfg, plan)
    assert 0 < needed["peak"] < everything["peak"] and needed["final"] < everything["final"]
    assert set(needed["chapters"]) == {f"{i:02d}" for i in range(1, 9)}


def test_a_run_directory_that_would_outgrow_its_disk_is_refused_before_anything_is_written(tmp_path, monkeypatch,
                                                                                          capsys):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(tmkd.chain.plan.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2 * 10**6, 2 * 10**6))
    run = tmp_path / "drive" / "run"
    assert run_chain.main(["--profile", "smoke", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the run directory {run} needs about ") and "but " in err and "has 2 MB free" in err
    for way in ("--set keep_weights=needed", "fewer seeds", "a RUN_DIR on a disk with room", "check_free_space=false"):
        assert way in err, way
    assert not run.exists() and not any(tmp_path.rglob("*.json"))       # nothing written
    args = run_chain.parser().parse_args(["--profile", "smoke", "--run-dir", str(run), "--set",
                                          "check_free_space=false"])
    assert run_chain.prepare(args)[0].check_free_space is False          # goes on where a disk misreports
