"""docs/api.md's example runs as written, and its algorithm example registers and trains."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def code_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.slow
def test_the_api_example_trains_and_evaluates(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VRB_CACHE_DIR", str(tmp_path / "cache"))
    exec(compile(code_blocks()[0], str(DOC), "exec"), {})
    printed = capsys.readouterr().out
    assert re.search(r"best validation: \d+ [01]\.\d+", printed), printed
    assert re.search(r"test success [01]\.\d+ 95% interval \[", printed), printed
    assert (tmp_path / "runs" / "api-example" / "best.pt").is_file()


def test_the_algorithm_example_makes_a_config_of_its_own(monkeypatch):
    from vrb import algorithms

    namespace: dict = {}
    exec(compile(code_blocks()[1], str(DOC), "exec"), namespace)
    monkeypatch.setitem(algorithms._REGISTRY, "wide_ppo", namespace["ALGORITHM"])
    cfg = algorithms.make_config(algo="wide_ppo", minibatch_size=64)
    assert cfg.options.policy_hidden == (256, 256) and cfg.options.minibatch_size == 64
    assert algorithms.resolve(namespace["ALGORITHM"].learner).__name__ == "PPOLearner"
