"""Fault injection, inputs and rules: damaged data files and SHA256SUMS, ill-typed or hostile
checkpoints, resumes with other settings, bad run and sweep settings, killed writers' temporary files. Each test
produces the fault first, then asserts that it ends in one line naming the file or field (exit code 2 on a command
line) or is cleaned, and that a failed run leaves no half-made folder. Data folders a test damages are private
copies (``data_copy``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from faults_support import (
    ENV,
    REPO_ROOT,
    TINY_RUN,
    RunsCommand,
    holding,
    one_line_error,
    python,
    resum,
    saved_payload,
    write_raw_checkpoint,
)

from envs.fileio import LockHeld, atomic_writer, hold_lock
from envs.multiwoz import data as mw_data
from experiments.sweep import cli as sweep_cli
from vrb import train as vrb_train
from vrb.algorithms import make_config
from vrb.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vrb.data import main as data_main
from vrb.errors import ConfigError, UsageError
from vrb.evaluate import main as evaluate_main

pytestmark = pytest.mark.faults

# -- 4. one line and exit code 2, naming the file or field ---------------------------------------------------------


def damaged_db(folder: Path) -> Path:
    path = folder / "db" / "hotel_db.json"
    path.write_bytes(path.read_bytes()[:1000])
    return path


def damaged_zip(folder: Path) -> Path:
    path = folder / "test.json.zip"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    return path


def missing_goal_model(folder: Path) -> Path:
    (folder / "goal_model.json").unlink()
    return folder / "goal_model.json"


def non_json_ontology(folder: Path) -> Path:
    (folder / "ontology.json").write_text("{not json")
    return folder / "ontology.json"


def missing_sums(folder: Path) -> Path:
    (folder / "SHA256SUMS").unlink()
    return folder


def malformed_sums(folder: Path) -> Path:
    with open(folder / "SHA256SUMS", "a") as f:
        f.write("garbage\n")
    return folder / "SHA256SUMS"


DATA_FAULTS = [damaged_db, damaged_zip, missing_goal_model, non_json_ontology, missing_sums, malformed_sums]


@pytest.mark.parametrize("fault", DATA_FAULTS, ids=lambda f: f.__name__)
def test_every_data_fault_is_one_line_and_exit_2(data_copy, capsys, fault):
    named = fault(data_copy)
    for command in (
        lambda: evaluate_main(["--policy", "rule", "--dialogues", "2", "--data-dir", str(data_copy)]),
        lambda: data_main(["verify", "--data-dir", str(data_copy)]),
        lambda: data_main(["info", "--data-dir", str(data_copy)]),
    ):
        assert command() == 2
        one_line_error(capsys.readouterr().err, named)


@pytest.mark.parametrize(
    "name, damage_to",
    [
        ("db/hotel_db.json", lambda p: p.write_bytes(p.read_bytes()[:1000])),
        ("db/hotel_db.json", lambda p: p.write_text('{"a": 1}')),
        ("test.json.zip", lambda p: p.write_bytes(p.read_bytes()[:100_000])),
        ("ontology.json", lambda p: p.write_text("{not json")),
        ("goal_model.json", lambda p: p.write_text("{}")),
    ],
)
def test_a_data_file_whose_checksums_agree_with_its_damage_is_refused_by_its_loader(
    data_copy, name, damage_to
):
    damage_to(data_copy / name)
    resum(data_copy)
    folder = mw_data.MultiWozData(data_copy)
    mw_data.verify(data_copy)  # the checksums agree: the loader must still refuse what it cannot use
    load = {
        "db/hotel_db.json": lambda: folder.databases,
        "test.json.zip": lambda: folder.corpus("test"),
        "ontology.json": lambda: folder.ontology,
        "goal_model.json": lambda: folder.goal_model,
    }[name]
    with pytest.raises(mw_data.DataError, match=name.replace(".", r"\.")) as refused:
        load()
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("epoch", "x"),
        ("config", [1, 2]),
        ("state", [1]),
        ("rng_states", {}),
        ("data_checksums", {"a": 1}),
        ("code_version", [1]),
    ],
)
def test_a_checkpoint_with_wrong_field_types_is_one_line_and_exit_2(tmp_path, capsys, field, value):
    path = tmp_path / "odd.pt"
    write_raw_checkpoint(path, saved_payload(tmp_path) | {field: value})
    assert evaluate_main(["--checkpoint", str(path), "--dialogues", "2"]) == 2  # was: tracebacks / ran on
    one_line_error(capsys.readouterr().err, path, repr(field))
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(path, run / "last.pt")
    assert vrb_train.main(["--algo", "ppo", "--out", str(run), "--resume", *TINY_RUN]) == 2
    one_line_error(capsys.readouterr().err, run / "last.pt", repr(field))


def test_resume_with_another_network_size_names_the_field(tmp_path, capsys):
    run = tmp_path / "run"
    save_checkpoint(run / "last.pt", config=make_config(algo="ppo", out_dir=str(run)), epoch=0, state={})
    argv = ["--algo", "ppo", "--out", str(run), "--resume", "--set", "policy_hidden=[50]"]
    assert vrb_train.main(argv) == 2  # was: load_state_dict's size-mismatch RuntimeError, 24 lines
    one_line_error(capsys.readouterr().err, run / "last.pt", "policy_hidden", "[100, 100]")


def test_resume_on_other_data_names_the_files(tmp_path, capsys, mwdata):
    run = tmp_path / "run"
    sums = mw_data.read_checksums(mwdata.root) | {"val.json.zip": "0" * 64}
    save_checkpoint(
        run / "last.pt",
        config=make_config(algo="ppo", out_dir=str(run)),
        epoch=0,
        state={},
        data_checksums=sums,
    )
    assert vrb_train.main(["--algo", "ppo", "--out", str(run), "--resume"]) == 2  # was: resumed on other data
    one_line_error(capsys.readouterr().err, run / "last.pt", "val.json.zip")


def test_a_checkpoint_whose_state_does_not_fit_its_networks_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = make_config(algo="ppo", out_dir=str(run))
    state = {"policy": {"net.0.weight": torch.zeros(3, 3)}, "best": {}, "record": {}}
    save_checkpoint(run / "last.pt", config=cfg, epoch=0, state=state)
    assert vrb_train.main(["--algo", "ppo", "--out", str(run), "--resume"]) == 2
    one_line_error(capsys.readouterr().err, run / "last.pt", "does not fit")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch build sees a CUDA device")
def test_device_cuda_on_a_cpu_build_is_one_line(tmp_path, capsys):
    assert vrb_train.main(["--out", str(tmp_path / "run"), "--set", "device=cuda"]) == 2
    one_line_error(capsys.readouterr().err, "'device'")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_out_naming_a_file_is_one_line(tmp_path, capsys, where):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    out = afile if where == "a file" else afile / "run"
    assert vrb_train.main(["--out", str(out), *TINY_RUN]) == 2  # was: FileExistsError, 34 lines
    one_line_error(capsys.readouterr().err, out)
    assert afile.read_text() == "mine"


@pytest.mark.slow
def test_the_command_lines_exit_2_in_one_line_for_real(data_copy):
    """The same refusals through real processes: exit code 2, one line, no traceback."""
    malformed_sums(data_copy)
    for module, args in (
        ("vrb.data", ["verify", "--data-dir", str(data_copy)]),
        ("vrb.evaluate", ["--policy", "rule", "--dialogues", "2", "--data-dir", str(data_copy)]),
    ):
        done = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=REPO_ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr[-2000:]
        one_line_error(done.stderr, data_copy / "SHA256SUMS", "line")


# -- 5. integrity rules --------------------------------------------------------------------------------------------


def test_an_empty_or_partial_sha256sums_does_not_turn_verification_off(data_copy, capsys):
    (data_copy / "SHA256SUMS").write_text("")
    assert data_main(["verify", "--data-dir", str(data_copy)]) == 2  # was: "OK: 0 files ... match"
    one_line_error(capsys.readouterr().err, "SHA256SUMS", "lists no files")
    # a list that leaves files out would check nothing of them
    (data_copy / "SHA256SUMS").write_text(
        f"{mw_data.sha256_of(data_copy / 'ontology.json')}  ontology.json\n"
    )
    with pytest.raises(mw_data.DataError, match="does not list db/attraction_db.json"):
        mw_data.verify(data_copy)


def test_a_same_size_edit_with_its_mtime_restored_is_caught(data_copy):
    mw_data.verify(data_copy)
    target = data_copy / "db" / "police_db.json"
    stat = target.stat()
    target.write_bytes(target.read_bytes().replace(b"a", b"b", 1))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_size == stat.st_size
    with pytest.raises(mw_data.DataError, match=r"police_db\.json is corrupt"):  # was: loaded as verified
        mw_data.verify(data_copy)


def test_a_hostile_checkpoint_is_refused_by_what_it_is_not_how_to_load_it(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.pt"
    write_raw_checkpoint(path, saved_payload(tmp_path) | {"epoch": RunsCommand(f"touch {marker}")})
    assert evaluate_main(["--checkpoint", str(path)]) == 2
    line = one_line_error(capsys.readouterr().err, path, "pickled objects", "system")
    assert (
        "weights_only" not in line and "trusted source" not in line
    )  # was: torch's advice to load it anyway
    assert not marker.exists()


@pytest.mark.slow
def test_temporary_files_of_a_killed_writer_go_on_the_next_write_and_a_live_writers_stay(tmp_path):
    target = tmp_path / "last.pt"
    killed = python(
        f"""
        import os, signal
        from envs.fileio import atomic_writer
        with atomic_writer({str(target)!r}) as f:
            f.write(b"half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed.wait()
    (stale,) = tmp_path.glob(".last.pt.*.tmp")  # what kill -9 during a write leaves
    live = python(
        f"""
        import sys, time
        from envs.fileio import atomic_writer
        with atomic_writer({str(target)!r}) as f:
            f.write(b"the live writer's")
            print("writing", flush=True)
            time.sleep(2)
        """
    )
    assert live.stdout.readline().strip() == "writing"
    (writing,) = set(tmp_path.glob(".last.pt.*.tmp")) - {stale}
    save_checkpoint(target, config=make_config(algo="ppo"), epoch=3, state={})
    assert not stale.exists() and writing.exists()  # the dead writer's is gone, the live one's kept
    assert load_checkpoint(target).epoch == 3
    live.wait()
    assert target.read_bytes() == b"the live writer's" and not list(tmp_path.glob(".*.tmp"))


def test_a_lock_refusal_names_the_holder(tmp_path):
    holder = holding(tmp_path / "x.lock", 30)
    try:
        with pytest.raises(LockHeld, match=f"pid {holder.pid} on "), hold_lock(tmp_path / "x.lock"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with atomic_writer(tmp_path / "y") as f:  # nested holds in one process are free
        f.write(b"y")
    with hold_lock(tmp_path / "x.lock"), hold_lock(tmp_path / "x.lock"):
        pass


# -- 6. validation: one layer of rules, and no half-made run folders -----------------------------------------------


@pytest.mark.parametrize("fields", [{"eval_dialogues": 0}, {"algo": "vrb", "ic": float("inf")}])
def test_run_fields_are_checked_by_their_rules(fields):
    with pytest.raises(ConfigError, match=next(iter(set(fields) - {"algo"}))):
        make_config(fields)


@pytest.mark.parametrize(
    "section, message",
    [
        ("trials: {cpus: 0}", "'trials.cpus' = 0"),
        ("trials: {cpus: abc}", "'trials.cpus' = 'abc'"),
        ("trials: {max_retries: true}", "'trials.max_retries' = True"),
        ("evaluation: {first_seed: -1}", "'evaluation.first_seed' = -1"),
        ("evaluation: {dialogues: 0}", "'evaluation.dialogues' = 0"),
    ],
)
def test_sweep_settings_are_checked_by_the_same_rules(tmp_path, capsys, section, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: t\ngrid: [{{algo: [ppo]}}]\n{section}\n")
    assert sweep_cli.main([str(spec), "--dry-run", "--out", str(tmp_path / "sweep")]) == 2  # was: accepted
    one_line_error(capsys.readouterr().err, spec, message)


def failing_run(out: Path) -> None:
    cfg = make_config(
        algo="ppo", epochs=1, steps_per_epoch=16, num_envs=2, pretrained_policy="/nonexistent.pt"
    )
    with pytest.raises(CheckpointError, match="/nonexistent.pt does not exist"):
        vrb_train.run(cfg, out)


def test_a_run_that_fails_early_leaves_no_partial_folder(tmp_path, caplog):
    fresh = tmp_path / "fresh"
    failing_run(fresh)
    assert not fresh.exists()  # was: config.json and an events file

    kept = tmp_path / "kept"  # a folder the run did not create: only what the run wrote goes
    (kept / "mle").mkdir(parents=True)
    (kept / "notes.txt").write_text("mine")
    for name in (
        "config.json",
        "mle.pt",
        "events.out.tfevents.1.host.1.0",
        "mle/events.out.tfevents.2.host.1.1",
    ):
        (kept / name).write_text("left by a run killed before its first epoch")
    with caplog.at_level(logging.WARNING, logger="vrb.train"):
        failing_run(kept)
    assert "removed what a run killed before its first epoch left" in caplog.text
    assert sorted(p.name for p in kept.iterdir()) == sorted(["notes.txt", vrb_train.RUN_LOCK])


def test_a_fresh_run_never_writes_into_a_folder_holding_a_run(tmp_path):
    for name in ("last.pt", "results.json"):
        out = tmp_path / name
        out.mkdir()
        (out / name).write_text("x")
        with pytest.raises(UsageError, match=f"already holds .*{name}"):
            vrb_train.run(make_config(algo="ppo"), out)
        assert (out / name).read_text() == "x"
