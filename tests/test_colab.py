"""Colab without a GPU or the Hub: precision by compute capability, the colab/paper configurations, the default
run directory in Drive, and the checkpoint mirror on local disk."""
import sys
import types

import pytest

import tmkd.colab
import tmkd.core.config
from tmkd.training.trainer import precision, work_dir


@pytest.mark.parametrize("capability, expected", [
    (None, "fp32"),            # CPU
    ((7, 0), "fp16"),          # V100
    ((7, 5), "fp16"),          # T4: bf16 only through emulation, although is_bf16_supported() says True
    ((8, 0), "bf16"),          # A100
    ((8, 9), "bf16"),          # L4
    ((9, 0), "bf16"),          # H100 / H200
])
def test_precision_follows_compute_capability(capability, expected):
    assert precision(capability) == expected


@pytest.mark.parametrize("profile", ["colab", "paper"])
def test_gpu_profiles_build(profile):
    cfg = tmkd.core.config.make_config(profile)
    assert cfg.base_model == "bert-base-uncased" and cfg.teacher_lrs == (2e-5, 3e-5, 5e-5)
    assert cfg.student_layers == 3 and cfg.student_lr == 1e-4 and not cfg.data_dir


@pytest.fixture
def fake_colab(tmp_path, monkeypatch):
    drive = tmp_path / "drive" / "MyDrive"
    drive.mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(tmkd.colab, "COLAB_DRIVE", drive)
    monkeypatch.setattr(tmkd.colab, "COLAB_LOCAL_CHECKPOINTS", tmp_path / "content" / "tmkd-checkpoints")
    return drive


def test_on_colab_the_run_directory_is_in_drive_and_checkpoints_on_local_disk(fake_colab, tmp_path):
    cfg = tmkd.core.config.make_config("colab")
    assert cfg.run_path == fake_colab / "tmkd-runs" / "colab"
    out = cfg.run_path / "teachers" / "rte" / "teacher-lr2e-05"
    local = work_dir(cfg, out)
    assert str(local).startswith(str(tmp_path / "content" / "tmkd-checkpoints"))
    assert local.parts[-3:] == ("teachers", "rte", "teacher-lr2e-05")


def test_outside_colab_checkpoints_stay_in_the_run_directory(tmp_path):
    cfg = tmkd.core.config.make_config("smoke", run_dir=str(tmp_path / "run"))
    out = cfg.run_path / "teachers" / "rte" / "x"
    assert work_dir(cfg, out) == out
    local = tmkd.core.config.make_config("smoke", run_dir=str(tmp_path / "run"), checkpoint_dir=str(tmp_path / "local"))
    assert work_dir(local, out).parent.parent.parent.parent == tmp_path / "local"


def test_one_repository_address_in_every_setup_cell_and_the_readme():
    import json
    import re
    from conftest import REPO
    found = {}
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        urls = re.findall(r'^REPO_URL = "https://github\.com/([\w.-]+/[\w.-]+)"', code, re.M)
        assert len(urls) == 1 and code.count("github.com") == 1, path.name     # one line holds the address
        found[path.name] = urls[0]
    readme = (REPO / "README.md").read_text()
    badges = re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/notebooks/", readme)
    assert len(badges) == len(found) == 8
    assert len(set(found.values()) | set(badges)) == 1, set(found.values()) | set(badges)
    assert f"REPO_URL" in readme
