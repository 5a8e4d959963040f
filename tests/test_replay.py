"""Parity with the golden ConvLab-2 traces: goal, user start, user turns, DST, vector and evaluator."""

import gzip
import json
import re
import subprocess
import sys

import pytest

from envs.multiwoz.data import REPO_ROOT
from envs.multiwoz.parity import replay
from envs.multiwoz.parity.system import FINAL_FIELDS
from envs.multiwoz.parity.traces import read_traces

SUMMARY = re.compile(
    r"parity: goal (\d+)/(\d+), init (\d+)/(\d+), user-turns (\d+)/(\d+), "
    r"dst (\d+)/(\d+), vector (\d+)/(\d+), eval (\d+)/(\d+)"
)


@pytest.fixture(scope="module")
def context():
    return replay.ReplayContext()


def test_every_trace_replays_exactly(trace_paths, context):
    assert len(trace_paths) == 2
    for path in trace_paths:
        tallies = replay.replay(str(path), ctx=context)
        assert list(tallies) == ["goal", "init", "user-turns", "dst", "vector", "eval"]
        rounds = sum(len(d["turns"]) for d in read_traces(path))
        assert tallies["goal"].checked == tallies["init"].checked == 200
        assert tallies["user-turns"].checked == tallies["dst"].checked == tallies["vector"].checked == rounds
        assert tallies["eval"].checked == rounds + len(FINAL_FIELDS) * 200
        assert replay.all_match(tallies), replay.format_report(tallies)


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1])
def test_cli_reports_parity_and_exits_zero(trace_paths, which):
    result = subprocess.run(
        [sys.executable, "-m", "envs.multiwoz.parity.replay", str(trace_paths[which])],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    match = SUMMARY.fullmatch(last)
    assert match, last
    goal, dialogues, init, _, user, rounds, dst, _, vector, _, evaluated, checks = map(int, match.groups())
    assert goal == dialogues == init == 200
    assert user == dst == vector == rounds > 0
    assert evaluated == checks == rounds + len(FINAL_FIELDS) * dialogues
    assert all(int(n) == int(d) for n, d in zip(match.groups()[::2], match.groups()[1::2], strict=True))


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


def _corrupt_round(dialogue, field, value):
    dialogue["turns"][1][field] = value
    return dialogue["turns"][1]["t"]


def _corrupt_final(dialogue, field, value):
    dialogue["final"][field] = value
    return None


@pytest.mark.parametrize(
    ("component", "corrupt", "field", "value"),
    [
        ("dst", _corrupt_round, "request_state", {"hotel": {"phone": 0}}),
        ("vector", _corrupt_round, "state_vec_nz", [0]),
        ("vector", _corrupt_round, "sys_act_vec_nz", [208]),
        ("eval", _corrupt_round, "reward_eval", 1234),
        ("eval", _corrupt_final, "inform_f1", 0.123),
    ],
)
def test_corrupted_system_side_line_exits_one_and_names_it(
    trace_paths, tmp_path, capsys, component, corrupt, field, value
):
    dialogues = [d for d in read_traces(trace_paths[0], limit=6) if len(d["turns"]) > 1][:3]
    turn = corrupt(dialogues[2], field, value)
    path = tmp_path / "corrupted.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in dialogues))
    assert replay.main([str(path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    where = f"seed {dialogues[2]['seed']}" + ("" if turn is None else f", turn {turn}")
    assert f"first {component} mismatch: {where}" in lines
    assert f"  field {field}" in lines
    match = SUMMARY.fullmatch(lines[-1])
    assert match, lines[-1]
    results = dict(
        zip(
            ["goal", "init", "user-turns", "dst", "vector", "eval"],
            zip(map(int, match.groups()[::2]), map(int, match.groups()[1::2]), strict=True),
            strict=True,
        )
    )
    for name, (matched, checked) in results.items():
        assert matched == checked - (name == component), (name, matched, checked)


def test_limit(trace_paths, context):
    tallies = replay.replay(str(trace_paths[0]), limit=5, ctx=context)
    assert tallies["goal"].checked == 5


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("missing.jsonl.gz", None),
        ("garbage.jsonl.gz", b"this is not gzip"),
        ("bad.jsonl", b"{not json}\n"),
        ("empty.jsonl", b""),
        ("fields.jsonl", b'{"seed": 1}\n'),
        ("list.jsonl", b"[1, 2]\n"),
    ],
)
def test_unreadable_input_exits_two_with_one_line(tmp_path, capsys, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert replay.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_structurally_wrong_values_exit_two(trace_paths, tmp_path, capsys):
    dialogues = list(read_traces(trace_paths[0], limit=2))
    dialogues[1]["turns"][0]["belief_state"] = {}
    path = tmp_path / "wrong.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in dialogues))
    assert replay.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: seed {dialogues[1]['seed']}: the ") and "\n" not in err


def test_gzip_with_bad_record_exits_two(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write('{"seed": 0, "turns": []}\n')
    assert replay.main([str(path)]) == 2
