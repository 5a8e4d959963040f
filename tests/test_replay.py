"""Parity with the golden ConvLab-2 traces: goal sampling, the user's start and every user turn."""

import gzip
import json
import re
import subprocess
import sys

import pytest

from envs.multiwoz import replay
from envs.multiwoz.data import REPO_ROOT
from envs.multiwoz.traces import read_traces


@pytest.fixture(scope="module")
def context():
    return replay.ReplayContext()


def test_every_trace_replays_exactly(trace_paths, context):
    assert len(trace_paths) == 2
    for path in trace_paths:
        tallies = replay.replay(str(path), ctx=context)
        assert list(tallies) == ["goal", "init", "user-turns"]
        assert tallies["goal"].checked == tallies["init"].checked == 200
        assert tallies["user-turns"].checked == sum(len(d["turns"]) for d in read_traces(path))
        assert replay.all_match(tallies), replay.format_report(tallies)


def test_cli_reports_parity_and_exits_zero(trace_paths):
    result = subprocess.run([sys.executable, "-m", "envs.multiwoz.replay", str(trace_paths[0])],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"parity: goal (\d+)/(\d+), init (\d+)/(\d+), user-turns (\d+)/(\d+)", last)
    assert match, last
    numbers = [int(n) for n in match.groups()]
    assert numbers[0] == numbers[1] == numbers[2] == numbers[3] == 200 and numbers[4] == numbers[5] > 0


def test_mismatch_exits_one_and_names_the_first(trace_paths, tmp_path, capsys):
    dialogues = list(read_traces(trace_paths[0], limit=3))
    dialogues[1]["turns"][0]["user"] = [["bye", "general", "none", "none"]]
    path = tmp_path / "edited.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in dialogues))
    assert replay.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert f"first user-turns mismatch: seed {dialogues[1]['seed']}, turn 0" in out
    assert "field user" in out
    assert out.strip().splitlines()[-1].startswith("parity: goal 3/3, init 3/3, user-turns ")


def test_limit(trace_paths, context):
    tallies = replay.replay(str(trace_paths[0]), limit=5, ctx=context)
    assert tallies["goal"].checked == 5


@pytest.mark.parametrize(("name", "content"), [
    ("missing.jsonl.gz", None),
    ("garbage.jsonl.gz", b"this is not gzip"),
    ("bad.jsonl", b"{not json}\n"),
    ("empty.jsonl", b""),
    ("fields.jsonl", b'{"seed": 1}\n'),
    ("list.jsonl", b"[1, 2]\n"),
])
def test_unreadable_input_exits_two_with_one_line(tmp_path, capsys, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert replay.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_gzip_with_bad_record_exits_two(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write('{"seed": 0, "turns": []}\n')
    assert replay.main([str(path)]) == 2
