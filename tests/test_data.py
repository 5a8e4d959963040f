"""The data folder: which one is used, actionable integrity errors, the decoded goal model, corpus splits."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from envs.multiwoz import data as mw_data
from vrb.data import main as data_cli
from vrb.data import resolve_with_reason


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env var, no folder beside the repository, an empty user cache: each test adds what it needs."""
    monkeypatch.delenv(mw_data.DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(mw_data, "REPO_ROOT", tmp_path / "workspace" / "repo")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def fake_data_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "SHA256SUMS").write_text("")
    return path


@pytest.fixture
def data_copy(mwdata, tmp_path, monkeypatch):
    """A private copy of the real data folder, safe to damage."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return Path(shutil.copytree(mwdata.root, tmp_path / "multiwoz"))


def test_resolution_order(isolated, monkeypatch):
    explicit = fake_data_dir(isolated / "explicit")
    from_env = fake_data_dir(isolated / "from_env")
    beside = fake_data_dir(isolated / "workspace" / "shared" / "multiwoz")
    cached = fake_data_dir(isolated / "cache" / "vrb" / "multiwoz")

    assert resolve_with_reason(None) == (beside.resolve(), "beside the repository")
    monkeypatch.setenv(mw_data.DATA_ENV_VAR, str(from_env))
    assert resolve_with_reason(None) == (from_env.resolve(), "$VRB_DATA_DIR")
    assert resolve_with_reason(str(explicit)) == (explicit.resolve(), "--data-dir")
    monkeypatch.delenv(mw_data.DATA_ENV_VAR)
    shutil.rmtree(beside)
    assert resolve_with_reason(None) == (cached.resolve(), "user cache")
    shutil.rmtree(cached)
    with pytest.raises(mw_data.DataError, match="no MultiWOZ data folder found.*vrb.data download"):
        mw_data.resolve_data_dir(None)


@pytest.mark.parametrize("source", ["--data-dir", "$VRB_DATA_DIR"])
def test_missing_explicit_dir_is_an_error_not_a_fallback(isolated, monkeypatch, source):
    fake_data_dir(isolated / "workspace" / "shared" / "multiwoz")
    missing = isolated / "nowhere"
    if source == "--data-dir":
        call = lambda: mw_data.resolve_data_dir(missing)  # noqa: E731
    else:
        monkeypatch.setenv(mw_data.DATA_ENV_VAR, str(missing))
        call = lambda: mw_data.resolve_data_dir(None)  # noqa: E731
    with pytest.raises(mw_data.DataError, match=f"{missing}.*from {source.replace('$', '[$]')}"):
        call()


def test_cli_missing_dir_exits_2_naming_it(isolated, capsys):
    missing = isolated / "nowhere"
    assert data_cli(["info", "--data-dir", str(missing)]) == 2
    message = capsys.readouterr().err.strip()
    assert str(missing) in message and "download" in message and len(message.splitlines()) == 1


def test_cli_bad_usage_exits_2(capsys):
    for argv in (["bogus"], ["download"], [], ["verify", "--no-such-flag"]):
        with pytest.raises(SystemExit) as exit_info:
            data_cli(argv)
        assert exit_info.value.code == 2


def test_checksum_failure_names_the_file(data_copy, capsys):
    with open(data_copy / "db/police_db.json", "ab") as f:
        f.write(b"\n")
    with pytest.raises(mw_data.DataError, match=r"police_db\.json is corrupt"):
        mw_data.verify(data_copy)
    assert data_cli(["verify", "--data-dir", str(data_copy)]) == 2
    assert "db/police_db.json is corrupt" in capsys.readouterr().err


def test_verify_hashes_content_so_a_same_size_same_mtime_edit_is_caught(data_copy):
    mw_data.verify(data_copy)
    target = data_copy / "db/police_db.json"
    stat = target.stat()
    damaged = target.read_bytes().replace(b"a", b"b", 1)
    target.write_bytes(damaged)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime as the verified file
    with pytest.raises(mw_data.DataError, match="police_db"):
        mw_data.verify(data_copy)


def test_missing_file_says_how_to_get_the_data(data_copy):
    (data_copy / "ontology.json").unlink()
    with pytest.raises(mw_data.DataError, match=r"ontology\.json is missing.*python -m vrb\.data download"):
        mw_data.verify(data_copy)
    with pytest.raises(mw_data.DataError, match=r"ontology\.json is missing.*vrb\.data download"):
        mw_data.MultiWozData(data_copy).ontology  # noqa: B018


def test_cli_info_and_verify(data_copy, capsys):
    assert data_cli(["info", "--data-dir", str(data_copy)]) == 0
    out = capsys.readouterr().out
    assert f"data folder: {data_copy.resolve()}" in out
    assert "chosen by:   --data-dir" in out
    assert "goal_model.json" in out and "MiB" in out
    assert "training split: val" in out
    assert "checksums: verified" in out
    assert data_cli(["verify", "--data-dir", str(data_copy)]) == 0
    assert capsys.readouterr().out.startswith("OK: 25 files")


def test_goal_model_keeps_tuple_keys_in_file_order(mwdata):
    raw = json.loads((mwdata.root / "goal_model.json").read_text())
    goal = mwdata.goal_model
    file_order = [key for key, _ in raw["domain_ordering_dist"]["__pairs__"]]
    assert [list(key) for key in goal.domain_ordering_dist] == file_order
    assert list(goal.domain_ordering_dist)[:3] == [("hotel",), ("police",), ("train", "hotel")]
    assert list(goal.slots_combination_dist["attraction"]["info"]) == [
        ("area",),
        ("area", "type"),
        ("type",),
        ("name",),
    ]
    assert list(goal.slots_num_dist["attraction"]["reqt"].items()) == [(3, 929), (1, 878), (2, 909)]
    assert list(goal.ind_slot_dist["attraction"]["info"]) == ["area", "type", "name"]


def test_corpus_splits(mwdata):
    val, test = mwdata.corpus("val"), mwdata.corpus("test")
    assert (len(val), len(test)) == (999, 1000)
    assert list(val) == mwdata.split_ids("val")
    first = next(iter(test.values()))
    assert {"goal", "log"} <= first.keys() and "dialog_act" in first["log"][0]
    with pytest.raises(ValueError, match="split 'dev'"):
        mwdata.corpus("dev")


def test_training_split_falls_back_to_val(data_copy):
    folder = mw_data.MultiWozData(data_copy)
    assert folder.training_split() == "val"
    with pytest.raises(mw_data.DataError, match=r"train\.json\.zip is missing.*download"):
        folder.corpus("train")
    shutil.copyfile(data_copy / "val.json.zip", data_copy / "train.json.zip")
    assert folder.training_split() == "train"
