"""Fault injection, the data folder's content: a train split SHA256SUMS does not list, and files whose
checksums agree with content of the wrong shape. Each is refused in one line naming the file and what was
expected (exit code 2 on a command line); a resumed run notices a train split that appeared. Data folders a test
damages are private copies (``data_copy``).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from faults_support import one_line_error, resum

from baselines.human import main as human_main
from envs.multiwoz import data as mw_data
from vrb import train as vrb_train
from vrb.algorithms import make_config
from vrb.checkpoint import save_checkpoint
from vrb.data import main as data_main
from vrb.evaluate import main as evaluate_main

pytestmark = pytest.mark.faults


def unlisted_train_split(folder: Path) -> Path:
    """A train split dropped into the folder without a line in SHA256SUMS."""
    shutil.copyfile(folder / "val.json.zip", folder / "train.json.zip")
    return folder / "train.json.zip"


def test_an_unlisted_train_split_is_refused_not_trained_on(data_copy, capsys):
    train = unlisted_train_split(data_copy)
    assert (
        data_main(["verify", "--data-dir", str(data_copy)]) == 2
    )  # was: "OK", and training used it unchecked
    one_line_error(capsys.readouterr().err, train, "not listed in SHA256SUMS")
    with pytest.raises(mw_data.DataError, match=r"train\.json\.zip is not listed in SHA256SUMS"):
        mw_data.verify(data_copy)
    resum(data_copy)  # listed, it is a train split like any other
    with open(data_copy / "SHA256SUMS", "a") as f:
        f.write(f"{mw_data.sha256_of(train)}  train.json.zip\n")
    assert "train.json.zip" in mw_data.verify(data_copy)
    assert mw_data.MultiWozData(data_copy).training_split() == "train"


def run_on(folder: Path, tmp_path: Path) -> Path:
    """A run folder whose last.pt was written on ``folder`` as it is now."""
    run = tmp_path / "run"
    cfg = make_config(algo="ppo", out_dir=str(run), data_dir=str(folder))
    sums = mw_data.verify(folder)
    save_checkpoint(run / "last.pt", config=cfg, epoch=0, state={}, data_checksums=sums)
    return run


@pytest.mark.parametrize("listed", [False, True], ids=["unlisted", "listed"])
def test_resume_notices_a_train_split_that_appeared(data_copy, tmp_path, capsys, listed):
    run = run_on(data_copy, tmp_path)  # trained on val: the folder had no train split
    train = unlisted_train_split(data_copy)
    if listed:
        with open(data_copy / "SHA256SUMS", "a") as f:
            f.write(f"{mw_data.sha256_of(train)}  train.json.zip\n")
    argv = ["--algo", "ppo", "--out", str(run), "--resume", "--data-dir", str(data_copy)]
    assert vrb_train.main(argv) == 2  # was (unlisted): resumed, its next epochs on the train split
    one_line_error(capsys.readouterr().err, "train.json.zip")


def rewrite_split(folder: Path, split: str, change) -> Path:
    """Change the dialogues of a split (``change(dialogues)``) and rewrite SHA256SUMS to match."""
    path = folder / f"{split}.json.zip"
    with zipfile.ZipFile(path) as archive:
        (member,) = archive.namelist()
        dialogues = json.loads(archive.read(member))
    change(dialogues)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, json.dumps(dialogues))
    resum(folder)
    return path


def log_as_text(dialogues: dict) -> None:
    first = next(iter(dialogues))
    dialogues[first]["log"] = "hello"


def db_of_numbers(folder: Path) -> Path:
    path = folder / "db" / "hotel_db.json"
    path.write_text("[1, 2, 3]")
    resum(folder)
    return path


def test_a_database_of_the_wrong_shape_is_refused_in_one_line(data_copy, capsys):
    path = db_of_numbers(data_copy)
    with pytest.raises(mw_data.DataError, match=r"hotel_db\.json.*expected") as refused:
        mw_data.MultiWozData(data_copy).databases  # noqa: B018
    assert "\n" not in str(refused.value)
    argv = ["--policy", "rule", "--dialogues", "2", "--data-dir", str(data_copy)]
    assert evaluate_main(argv) == 2  # was: a traceback from the database's first query
    one_line_error(capsys.readouterr().err, path, "expected")


def test_a_taxi_database_of_the_wrong_shape_is_refused(data_copy):
    (data_copy / "db" / "taxi_db.json").write_text('{"taxi_colors": 3}')
    resum(data_copy)
    with pytest.raises(mw_data.DataError, match=r"taxi_db\.json.*expected"):
        mw_data.MultiWozData(data_copy).databases  # noqa: B018


@pytest.mark.parametrize(
    "change, named",
    [
        (log_as_text, "'log'"),
        (lambda d: d.update({next(iter(d)): [1, 2]}), "expected"),
        (lambda d: next(iter(d.values()))["log"].append("a turn"), "'log'"),
        (lambda d: next(iter(d.values())).pop("goal"), "'goal'"),
    ],
    ids=["log is text", "dialogue is a list", "turn is text", "no goal"],
)
@pytest.mark.slow
def test_dialogues_of_the_wrong_shape_are_refused_in_one_line(data_copy, capsys, change, named):
    path = rewrite_split(data_copy, "test", change)
    with pytest.raises(mw_data.DataError, match=r"test\.json\.zip") as refused:
        mw_data.MultiWozData(data_copy).corpus("test")
    assert named in str(refused.value) and "\n" not in str(refused.value)
    assert human_main(["--split", "test", "--data-dir", str(data_copy)]) == 2  # was: a traceback
    one_line_error(capsys.readouterr().err, path, named)


@pytest.mark.slow
def test_a_training_split_of_the_wrong_shape_stops_training_in_one_line(data_copy, tmp_path, capsys):
    path = rewrite_split(data_copy, "val", log_as_text)
    argv = ["--algo", "ppo", "--out", str(tmp_path / "run"), "--data-dir", str(data_copy)]
    assert vrb_train.main([*argv, "--epochs", "1", "--steps-per-epoch", "16", "--num-envs", "2"]) == 2
    one_line_error(capsys.readouterr().err, path, "'log'")
    assert not (tmp_path / "run").exists()
