"""Cross-evaluation: a run's policy scored on another simulator gives what vrb.evaluate gives there."""

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "TQDM_DISABLE": "1"}


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300, env=ENV
    )


@pytest.mark.slow
def test_cross_evaluation_matches_evaluate_and_tabulates(tmp_path):
    out = tmp_path / "mle-run"
    trained = run("vrb.train", "--algo", "mle", "--out", str(out), "--set", "mle_epochs=1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    evaluated = run(
        "vrb.evaluate",
        "--checkpoint",
        str(out / "best.pt"),
        "--dialogues",
        "4",
        "--seed",
        "7",
        "--transcripts",
        "0",
        "--out",
        str(tmp_path / "eval.json"),
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]

    crossed = run(
        "experiments.cross",
        str(out),
        str(out),
        "--simulators",
        "agenda",
        "--dialogues",
        "4",
        "--seed",
        "7",
        "--out",
        str(tmp_path / "cross"),
    )
    assert crossed.returncode == 0, crossed.stderr[-2000:]
    runs = json.loads((tmp_path / "cross.json").read_text())
    expected = json.loads((tmp_path / "eval.json").read_text())["summary"]
    assert [(r["algo"], r["trained_on"]) for r in runs] == [("mle", "agenda")] * 2
    for key in ("dialogues", "paper_success", "paper_turns", "success"):
        assert runs[0]["on"]["agenda"][key] == expected[key]
    caption, _, header, _, row = (tmp_path / "cross.md").read_text().splitlines()
    assert "95% Student-t interval over seeds" in caption and header.startswith("| policy | trained on |")
    assert row.startswith("| mle | agenda | ") and row.endswith("| 2 |")
    assert f"{expected['paper_success']:.3f} ± 0.000" in row


@pytest.mark.slow
def test_a_folder_without_best_pt_is_named(tmp_path):
    done = run("experiments.cross", str(tmp_path), "--dialogues", "1")
    assert done.returncode == 2
    assert (
        done.stderr.strip() == f"error: no best.pt in {tmp_path}; expected a run folder written by vrb.train"
    )
