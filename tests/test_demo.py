"""The demo: one readable dialogue per system policy, with both metric definitions; bad input exits 2."""

import re

import pytest

from envs.multiwoz import demo
from envs.multiwoz.parity.traces import read_traces


@pytest.mark.parametrize("policy", sorted(demo.POLICIES))
def test_prints_goal_dialogue_and_metrics(policy, capsys):
    assert demo.main(["--policy", policy, "--seed", "3"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"dialogue seed 3, system {policy!r}, agenda user"
    assert lines[1].startswith("user goal (domains in order hotel, restaurant)")
    users = [i for i, line in enumerate(lines) if line.startswith("  user:   ")]
    systems = [i for i, line in enumerate(lines) if line.startswith("  system: ")]
    assert users and systems and len(users) == len(systems) + 1
    # text first, then the acts beneath it
    assert re.fullmatch(r" {10}\w+\(\w+.*\)", lines[users[0] + 1])
    assert re.fullmatch(r" {10}\w+\(\w+.*\)", lines[systems[0] + 1])
    assert re.search(
        r"^end: (the user ended the dialogue|truncated at 40 rounds) after \d+ rounds$", out, re.M
    )
    assert re.search(r"^metrics +ConvLab-2 +papers$", out, re.M)
    for label in ("success", "book rate / match", "inform precision", "inform recall", "inform F1", "turns"):
        assert re.search(rf"^  {re.escape(label)} +\S+ +\S+$", out, re.M), label


def test_rule_policy_succeeds_on_seed_3(capsys):
    assert demo.main(["--policy", "rule", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  success +1 +1$", out, re.M)
    assert "end: the user ended the dialogue after 5 rounds" in out


def test_random_policy_replays_the_recorded_random_dialogue(trace_paths):
    path = next(p for p in trace_paths if p.name.startswith("random"))
    recorded = next(d for d in read_traces(path, limit=4) if d["seed"] == 3)
    lines, metrics = demo.run_dialogue(3, "random")
    rounds = sum(line.startswith("  user:   ") for line in lines)
    assert rounds == len(recorded["turns"])
    assert f"          {demo.format_act(recorded['turns'][-1]['user'][0])}" in lines


@pytest.mark.parametrize(
    "argv", [["--policy", "nope"], ["--seed", "-1"], ["--seed", "x"], ["--seed", str(2**32)]]
)
def test_bad_input_exits_two(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_missing_data_exits_two(tmp_path, capsys):
    assert demo.main(["--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error:")
