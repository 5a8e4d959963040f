"""Gathering a sweep run in shares: rows and trial folders that the target lacks, once; conflicts named."""

import multiprocessing
from pathlib import Path

from envs.fileio import hold_lock
from experiments import merge
from experiments.store import ResultStore, TrialRecord
from experiments.sweep.driver import COMMANDS_LOG, SWEEP_LOCK
from tests.faults_support import one_line_error


def _share(folder: Path, trials: dict[str, float], failed: tuple[str, ...] = (), command: str = "") -> Path:
    store = ResultStore(folder)
    for trial_id in failed:
        store.append(
            TrialRecord(trial_id, "failed", 3, {"seed": 0}, {}, error="killed", recorded_at="2026-01-01")
        )
    for k, (trial_id, success) in enumerate(trials.items()):
        store.append(TrialRecord(trial_id, "finished", 1, {"seed": k}, {"seed": k}, {"paper_success": success},
                                 recorded_at=f"2026-01-0{k + 2}"))  # fmt: skip
        (folder / "trials" / trial_id).mkdir(parents=True)
        (folder / "trials" / trial_id / "results.json").write_text(str(success))
        (folder / "trials" / trial_id / "run.lock").write_text("pid 1 on another host")
    if command:
        (folder / COMMANDS_LOG).write_text(command + "\n")
    return folder


def test_shares_gather_into_one_store_with_their_folders_and_commands_once(tmp_path):
    a = _share(tmp_path / "a", {"vrb-s0": 0.9, "vrb-s1": 0.8}, command="t1  sweep --trials 'vrb-*'")
    b = _share(
        tmp_path / "b",
        {"ppo-s0": 0.7, "vrb-s1": 0.8},
        failed=("ppo-s0",),
        command="t2  sweep --trials 'ppo-*'",
    )
    into = tmp_path / "all"
    first = merge.merge(into, [a, b])
    assert (first.rows, first.folders, first.already, first.conflicts) == (4, 3, 1, [])  # b's vrb-s1: a's row
    store = ResultStore(into)
    assert {t: r.metrics["paper_success"] for t, r in store.finished().items()} == {
        "vrb-s0": 0.9, "vrb-s1": 0.8, "ppo-s0": 0.7
    }  # fmt: skip
    assert [r.status for r in store.records() if r.trial_id == "ppo-s0"] == ["failed", "finished"]
    assert store.finished()["vrb-s0"].recorded_at == "2026-01-02"  # each row keeps when it was recorded
    assert (into / "trials" / "ppo-s0" / "results.json").read_text() == "0.7"
    assert not (into / "trials" / "ppo-s0" / "run.lock").exists()
    assert (into / COMMANDS_LOG).read_text().splitlines() == [
        "t1  sweep --trials 'vrb-*'",
        "t2  sweep --trials 'ppo-*'",
    ]
    again = merge.merge(into, [a, b])
    assert (again.rows, again.folders, again.conflicts) == (0, 0, []) and len(store.records()) == 4
    assert len((into / COMMANDS_LOG).read_text().splitlines()) == 2


def test_a_trial_finished_in_two_folders_with_other_metrics_keeps_the_targets_row(tmp_path, capsys, caplog):
    into = _share(tmp_path / "into", {"vrb-s0": 0.9})
    other = _share(tmp_path / "other", {"vrb-s0": 0.5, "ppo-s0": 0.7})
    assert merge.main([str(into), str(other)]) == 0
    assert "1 rows and 1 trial folders added, 0 already there, 1 conflicting; 2 finished trials" in (
        capsys.readouterr().out
    )
    assert "vrb-s0" in caplog.text and str(other) in caplog.text and "other metrics" in caplog.text
    assert (into / COMMANDS_LOG).read_text().endswith(f"python -m experiments.merge {into} {other}\n")
    assert ResultStore(into).finished()["vrb-s0"].metrics == {"paper_success": 0.9}
    assert (into / "trials" / "vrb-s0" / "results.json").read_text() == "0.9"


def test_bad_folders_are_one_line_and_exit_2(tmp_path, capsys):
    share = _share(tmp_path / "share", {"vrb-s0": 0.9})
    assert merge.main([str(tmp_path / "into"), str(tmp_path / "nothing")]) == 2
    one_line_error(capsys.readouterr().err, "nothing", "results.sqlite", "experiments.sweep")
    assert merge.main([str(share), str(share)]) == 2
    one_line_error(capsys.readouterr().err, "the folder merged into")


def test_a_folder_a_sweep_is_running_in_is_refused(tmp_path, capsys):
    share, into = _share(tmp_path / "share", {"vrb-s0": 0.9}), tmp_path / "into"
    into.mkdir()
    ready, done = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.get_context("fork").Process(target=_hold, args=(into / SWEEP_LOCK, ready, done))
    holder.start()
    try:
        assert ready.wait(10)
        assert merge.main([str(into), str(share)]) == 2
        one_line_error(capsys.readouterr().err, str(into), "in use", "once that sweep has ended")
    finally:
        done.set()
        holder.join(10)
    assert not ResultStore(into).records()  # nothing written while the driver held the folder


def _hold(path, ready, done):
    """A stand-in for a sweep driver: it holds the folder's lock until told to stop."""
    with hold_lock(path):
        ready.set()
        done.wait(10)
