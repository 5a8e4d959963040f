"""Fault injection (issue 16: nothing lost, nothing mixed): each test first produces the fault — a training cut
short, a damaged cache or data file, a second process on a folder, a killed driver or writer, a hostile or
ill-typed checkpoint, a bad setting — then asserts the outcome: the damage is refused in one line naming the
file or field (exit code 2 on a command line), or rebuilt, or cleaned, and nothing of two processes mixes.

Caches and data folders that a test damages are private copies (``tmp_path``); the shared caches are only read.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from envs.fileio import LockHeld, atomic_writer, hold_lock
from envs.multiwoz import data as mw_data
from envs.vhus import cache as vhus_cache
from envs.vhus import train as vhus_train
from envs.vhus.corpus import Vocabs, encode_corpus
from envs.vhus.model import VHUS, VHUSConfig
from envs.vhus.simulator import VHUSUser
from experiments.sweep import cli as sweep_cli
from experiments.sweep import driver as sweep_driver
from experiments.sweep import trial as sweep_trial
from vrb import train as vrb_train
from vrb.algorithms import make_config
from vrb.checkpoint import FORMAT_VERSION, MAGIC, CheckpointError, load_checkpoint, save_checkpoint
from vrb.data import main as data_main
from vrb.errors import ConfigError, UsageError
from vrb.evaluate import main as evaluate_main

pytestmark = pytest.mark.faults

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TQDM_DISABLE": "1"}
TINY_VHUS = {"embed_dim": 8, "hidden_dim": 12, "max_user_tokens": 8}
TINY_RUN = ["--epochs", "1", "--steps-per-epoch", "16", "--num-envs", "2", "--set", "mle_epochs=1"]


# -- helpers ---------------------------------------------------------------------------------------------------


def one_line_error(err: str, *names: str) -> str:
    """The error of a command line: its last stderr line, which must name ``names``; no traceback anywhere."""
    assert "Traceback" not in err, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert "error:" in line, err[-3000:]
    for name in names:
        assert str(name) in line, line
    return line


def python(code: str, **kwargs) -> subprocess.Popen:
    """A Python process running ``code`` in this repository, its stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def holding(path: Path, seconds: float) -> subprocess.Popen:
    """Another process holding ``hold_lock(path)`` for ``seconds`` (it prints 'held' once it does)."""
    process = python(
        f"""
        import time
        from envs.fileio import hold_lock
        with hold_lock({str(path)!r}):
            print("held", flush=True)
            time.sleep({seconds})
        """
    )
    assert process.stdout.readline().strip() == "held"
    return process


def dead(pid: int) -> bool:
    """Gone, or a zombie no one has reaped yet (a container's pid 1 may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def data_copy(mwdata, tmp_path) -> Path:
    """A private, writable copy of the data folder, safe to damage."""
    return Path(shutil.copytree(mwdata.root, tmp_path / "multiwoz"))


def resum(folder: Path) -> None:
    """Rewrite SHA256SUMS to match the folder as it is now: a data folder whose checksums agree with its damage."""
    names = mw_data.read_checksums(folder)
    lines = [f"{mw_data.sha256_of(folder / name)}  {name}" for name in names if (folder / name).is_file()]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def write_raw_checkpoint(path: Path, payload) -> None:
    """A file with a valid vrb checkpoint header and digest around any payload (what another writer could make)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    digest = hashlib.sha256(body).hexdigest().encode()
    path.write_bytes(b"%s %d %s\n" % (MAGIC, FORMAT_VERSION, digest) + body)


def saved_payload(tmp_path: Path) -> dict:
    """A checkpoint payload as save_checkpoint writes it (a ppo config, no learner state)."""
    path = save_checkpoint(tmp_path / "source.pt", config=make_config(algo="ppo"), epoch=0, state={})
    return torch.load(io.BytesIO(path.read_bytes().split(b"\n", 1)[1]), weights_only=True)


# -- 1. VHUS: a training cut short, a damaged cache -------------------------------------------------------------


@pytest.fixture
def tiny_vhus_data(mwdata, monkeypatch):
    """VHUS training on 24 dialogues of each split with a tiny network: a few seconds, same code path."""
    real = encode_corpus
    monkeypatch.setattr(
        vhus_train, "encode_corpus", lambda corpus, vocabs: real(dict(list(corpus.items())[:24]), vocabs)
    )
    return mwdata


def tiny_model(vocabs: Vocabs) -> VHUS:
    torch.manual_seed(0)
    sizes = {"goal_vocab": len(vocabs.goal), "sys_vocab": len(vocabs.sys), "usr_vocab": len(vocabs.usr)}
    return VHUS(VHUSConfig(**sizes, **TINY_VHUS))


def test_a_vhus_training_cut_short_leaves_nothing_in_the_cache(tiny_vhus_data, tmp_path, monkeypatch):
    out = tmp_path / "vhus" / "model.pt"
    calls = []

    def killed_in_the_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # epoch 1's best is known by now: the old code had written it to `out`
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    real_evaluate = vhus_train.evaluate
    monkeypatch.setattr(vhus_train, "evaluate", killed_in_the_second_epoch)
    settings = vhus_train.TrainSettings(epochs=5, threads=1)
    with pytest.raises(KeyboardInterrupt):
        vhus_train.train(tiny_vhus_data, out, settings, config_overrides=TINY_VHUS)
    assert not out.parent.exists() or not list(out.parent.iterdir())  # no model, no temporary file

    monkeypatch.setattr(vhus_train, "evaluate", real_evaluate)
    _, summary = vhus_train.train(
        tiny_vhus_data, out, settings.__class__(epochs=2), config_overrides=TINY_VHUS
    )
    model, extra = vhus_cache.load_checkpoint(out)  # written once, at the end, complete
    assert extra["test"] == summary["test"] and extra["epoch"] == summary["epoch"]
    assert vhus_cache.unusable(out) is None


def legacy_best_so_far(path: Path, model: VHUS) -> None:
    """What the old training wrote after each improving epoch: no digest, no final test scores."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": vhus_cache.CHECKPOINT_FORMAT,
            "config": model.config.to_dict(),
            "state_dict": model.state_dict(),
            "epoch": 1,
            "split": "val",
            "held_out": {"act_f1": 0.1},
        },
        path,
    )


class RunsCommand:
    def __init__(self, argument: str):
        self.argument = argument

    def __reduce__(self):
        return os.system, (self.argument,)


def damage(path: Path, how: str, marker: Path) -> None:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "not a checkpoint":
        path.write_bytes(b"\x00garbage" * 100)
    elif how == "weights flipped":  # the zip still loads: only the digest of the weights tells
        pattern = torch.full((1,), 0.123456, dtype=torch.float32).numpy().tobytes()
        assert pattern in raw
        path.write_bytes(raw.replace(pattern, torch.full((1,), 9.0).numpy().tobytes(), 1))
    elif how == "hostile pickle":
        torch.save({"format": 1, "config": RunsCommand(f"touch {marker}")}, path)
    elif how == "cut short by the old code":
        pass  # written as such by the caller


@pytest.mark.parametrize(
    "how", ["truncated", "not a checkpoint", "weights flipped", "hostile pickle", "cut short by the old code"]
)
def test_an_unusable_cached_vhus_is_moved_aside_and_trained_again(mwdata, tmp_path, monkeypatch, caplog, how):
    monkeypatch.setenv(vhus_cache.CACHE_ENV_VAR, str(tmp_path / "cache"))
    vocabs = Vocabs.from_data(mwdata)
    path = vhus_cache.model_path(mwdata)
    model = tiny_model(vocabs)
    with torch.no_grad():
        next(iter(model.parameters())).view(-1)[0] = 0.123456
    if how == "cut short by the old code":
        legacy_best_so_far(path, model)
    else:
        vhus_cache.save_checkpoint(path, model, {"split": "val", "test": {"act_f1": 0.5}})
    marker = tmp_path / "pwned"
    damage(path, how, marker)
    if how == "cut short by the old code":  # it loads: only its missing final scores and digest tell
        assert "cut short" in vhus_cache.unusable(path)
    else:  # given as an explicit path it is refused in one line (was: torch's traceback, or silent use)
        with pytest.raises(vhus_cache.CacheError) as refused:
            vhus_cache.load_checkpoint(path)
        assert str(path) in str(refused.value) and "\n" not in str(refused.value)
        assert "weights_only" not in str(refused.value)

    trained = []

    def fake_train(data, out, settings, log_dir=None):
        trained.append(out)
        vhus_cache.save_checkpoint(out, tiny_model(vocabs), {"split": "val", "test": {"act_f1": 0.5}})

    monkeypatch.setattr(vhus_train, "train", fake_train)
    with caplog.at_level(logging.WARNING):
        user = VHUSUser.from_data(mwdata)  # was: a traceback, or the damaged model used silently
    assert trained == [path] and user.model is not None
    assert path.with_name("model.pt.corrupt").is_file() and "unusable" in caplog.text
    VHUSUser.from_data(mwdata)
    assert trained == [path]  # the rebuilt model is used from then on
    assert not marker.exists()


# -- 2. locks: one run per folder, one attempt per trial folder, one driver per sweep ----------------------------


def test_a_second_training_on_a_run_folder_is_refused_and_a_dead_holder_frees_it(tmp_path):
    out = tmp_path / "run"
    common = ["--algo", "ppo", "--out", str(out), "--steps-per-epoch", "16", "--num-envs", "2"]
    common += ["--set", "mle_epochs=1", "--set", "eval_every=1000", "--set", "eval_dialogues=2"]
    first = subprocess.Popen(
        [sys.executable, "-m", "vrb.train", *common, "--epochs", "2000", "--seed", "0"],
        cwd=REPO_ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock = out / vrb_train.RUN_LOCK
        wait_for(lambda: lock.is_file() and lock.read_text().startswith("pid"), 120, "the first run's lock")
        wait_for(lambda: (out / "config.json").is_file(), 120, "the first run's config.json")
        second = subprocess.run(
            [sys.executable, "-m", "vrb.train", *common, "--epochs", "2000", "--seed", "1"],
            cwd=REPO_ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2  # was: both ran to exit 0 and left one folder of two runs
        one_line_error(second.stderr, out, f"pid {first.pid}")
        assert json.loads((out / "config.json").read_text())["seed"] == 0
        assert len(list(out.glob("events.out.tfevents.*"))) <= 1  # the refused run wrote nothing
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with hold_lock(lock):  # the kernel released the killed run's lock: no stale lock to clear
        assert lock.read_text().startswith(f"pid {os.getpid()} ")


def test_a_trial_attempt_waits_while_an_earlier_attempt_holds_its_folder(tmp_path, caplog):
    out = tmp_path / "trial"
    out.mkdir()
    orphan = holding(out / sweep_trial.TRIAL_LOCK, 1.5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="experiments.sweep"), sweep_trial.hold_trial(out):
        waited = time.monotonic() - started
    orphan.wait()
    assert waited > 0.8 and f"in use by pid {orphan.pid}" in caplog.text
    assert sweep_trial.TRIAL_LOCK == vrb_train.RUN_LOCK  # the run inside the attempt takes the same lock


def test_a_killed_driver_takes_its_trial_children_with_it(tmp_path):
    spec = tmp_path / "long.yaml"
    spec.write_text(
        "name: long\nbase: {epochs: 2000, steps_per_epoch: 16, num_envs: 2, mle_epochs: 1, eval_every: 1000,"
        " eval_dialogues: 2}\ngrid: [{algo: [ppo]}]\nevaluation: {dialogues: 2}\ntrials: {max_retries: 0}\n"
    )
    out = tmp_path / "sweep"
    driver = subprocess.Popen(
        [sys.executable, "-m", "experiments.sweep", str(spec), "--out", str(out), "--engine", "processes"],
        cwd=REPO_ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (trial,) = sweep_cli.load_spec(spec).trials()
        attempts = out / "trials" / trial.trial_id / sweep_trial.ATTEMPTS_FILE
        child = wait_for(
            lambda: attempts.is_file() and attempts.read_text().strip(), 120, "the trial's child"
        )
        child_pid = json.loads(child.splitlines()[0])["pid"]
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        wait_for(lambda: dead(child_pid), 20, "the orphaned child to die")  # was: it kept training
    finally:
        driver.kill()
        driver.wait()
    with hold_lock(out / "trials" / trial.trial_id / sweep_trial.TRIAL_LOCK):
        pass  # free at once for the re-run's attempt


def test_a_second_driver_on_one_sweep_folder_is_refused(tmp_path, capsys):
    spec = tmp_path / "one.yaml"
    spec.write_text("name: one\ngrid: [{algo: [ppo]}]\n")
    out = tmp_path / "sweep"
    out.mkdir()
    first = holding(out / sweep_driver.SWEEP_LOCK, 30)
    try:
        code = sweep_cli.main([str(spec), "--out", str(out), "--engine", "processes"])
    finally:
        first.kill()
        first.wait()
    assert code == 2
    one_line_error(capsys.readouterr().err, out, f"pid {first.pid}")
    assert not (out / sweep_driver.COMMANDS_LOG).exists()  # the refused command wrote nothing there


# -- 3. the processes engine keeps every attempt's log ------------------------------------------------------------


def test_the_processes_engine_keeps_each_attempts_log_stamped(tmp_path):
    spec_path = tmp_path / "crash.yaml"
    spec_path.write_text(
        "name: crash\nbase: {epochs: 1, steps_per_epoch: 8, num_envs: 2, pretrained_policy: /nonexistent.pt}"
        "\ngrid: [{algo: [ppo]}]\nevaluation: {dialogues: 2}\ntrials: {max_retries: 1}\n"
    )
    spec = sweep_cli.load_spec(spec_path)
    outcome = sweep_driver.run_sweep(spec, tmp_path / "sweep", max_concurrent=1, engine="processes")
    (trial,) = spec.trials()
    assert outcome.failed == [trial.trial_id]
    folder = tmp_path / "sweep" / "trials" / trial.trial_id
    log = (folder / sweep_trial.LOG_FILE).read_text()
    attempts = [json.loads(line) for line in (folder / sweep_trial.ATTEMPTS_FILE).read_text().splitlines()]
    assert len(attempts) == 2
    for number, attempt in enumerate(attempts, 1):  # both attempts' output, each stamped
        assert f"attempt {number}: pid {attempt['pid']}" in log
    assert log.index("attempt 1:") < log.index("attempt 2:")
    assert log.count("checkpoint /nonexistent.pt does not exist") >= 2


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
