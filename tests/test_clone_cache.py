"""The cloned start is computed once (``vrb.clone_cache``): a run from the cache is the run that clones, bit for
bit; runs of different algorithms at one seed share the entry; a changed cloning field misses; a corrupt entry
is moved aside and cloned again; a cloning cut short leaves nothing; two processes needing one start clone it
once. Every test's cache is a folder of its own (``default_cache_dir`` patched; the expert cache stays put)."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vrb import clone_cache
from vrb.algorithms import make_config
from vrb.checkpoint import load_checkpoint
from vrb.expert import cache_root
from vrb.learners import mle as learners
from vrb.policy import MultiLabelPolicy
from vrb.train import run

TINY = {"seed": 3, "epochs": 1, "steps_per_epoch": 16, "num_envs": 2, "eval_dialogues": 4, "workers": 1}
CLONING = {"mle_epochs": 2}


@pytest.fixture
def clone_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "clone"
    monkeypatch.setattr(clone_cache, "default_cache_dir", lambda: folder)
    return folder


@pytest.fixture
def clonings(monkeypatch) -> list[int]:
    """Counts the clonings that really ran (a start from the cache runs none)."""
    calls: list[int] = []
    real = learners.behaviour_cloning_from_options

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(learners, "behaviour_cloning_from_options", counted)
    return calls


def tiny(algo: str, out: Path, **fields) -> dict:
    return run(make_config(algo=algo, **TINY, **CLONING, **fields), out)


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pt"))


def assert_same_tensors(a, b, where: str = "") -> None:
    """Equal nested states: every tensor ``torch.equal`` (dtype and shape included), every other value ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def mle_scalars(out: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(out / "mle"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_run_from_the_cache_is_the_run_that_clones_bit_for_bit(tmp_path, clone_dir, clonings):
    fresh = tiny("vrb", tmp_path / "fresh", clone_cache=False)
    assert not clone_dir.exists() and len(clonings) == 1
    tiny("vrb", tmp_path / "cold")  # clones and writes the entry
    assert len(entries(clone_dir)) == 1 and len(clonings) == 2
    cached = tiny("vrb", tmp_path / "warm")
    assert len(clonings) == 2  # the third run did not clone
    assert json.loads(json.dumps(cached)) == json.loads(json.dumps(fresh))
    for name in ("cold", "warm"):
        assert (tmp_path / name / "results.json").read_text() == (
            tmp_path / "fresh" / "results.json"
        ).read_text()
        assert mle_scalars(tmp_path / name) == mle_scalars(tmp_path / "fresh")
        for checkpoint in ("mle.pt", "best.pt", "last.pt"):  # mle.pt: the generators right after the start
            a, b = (
                load_checkpoint(tmp_path / "fresh" / checkpoint),
                load_checkpoint(tmp_path / name / checkpoint),
            )
            assert_same_tensors(a.state, b.state, checkpoint)
            assert_same_tensors(a.rng_states, b.rng_states, checkpoint)


def test_runs_of_different_algorithms_at_one_seed_share_the_entry(tmp_path, clone_dir, clonings):
    tiny("mle", tmp_path / "mle")
    (entry,) = entries(clone_dir)
    for algo in ("ppo", "aldm"):  # aldm draws its discriminator first and reseeds: the same start
        tiny(algo, tmp_path / algo, **({"aldm_pretrain_epochs": 0} if algo == "aldm" else {}))
    assert entries(clone_dir) == [entry] and len(clonings) == 1


def test_a_changed_cloning_field_misses(tmp_path, clone_dir, clonings):
    tiny("mle", tmp_path / "a")
    tiny("mle", tmp_path / "b", mle_lr=2e-3)
    assert len(entries(clone_dir)) == 2 and len(clonings) == 2


def _key(mwdata, algo: str = "ppo", seed: int = 3, **fields) -> str:
    """The entry key a run of these settings would look up (its policy and generator as a run makes them)."""
    cfg = make_config(algo=algo, seed=seed, **fields)
    torch.manual_seed(cfg.seed)
    policy = MultiLabelPolicy(hidden_sizes=cfg.options.policy_hidden)
    expert = SimpleNamespace(split=mwdata.training_split())
    ctx = SimpleNamespace(
        cfg=cfg, data=mwdata, expert=expert, generator=torch.Generator().manual_seed(cfg.seed)
    )
    return learners.clone_entry(policy, ctx, cfg.options).key


def test_the_key_holds_the_cloning_fields_and_nothing_algorithm_specific(mwdata, monkeypatch):
    base = _key(mwdata)
    shared = {"epochs": 7, "decoder": "greedy", "bc_coef": 0.0, "clone_cache": False, "num_envs": 4}
    assert _key(mwdata, "gdpl", estimator_lr=0.5, **shared) == base == _key(mwdata, "mle")
    changed = {
        "policy_hidden": [64, 64],
        "mle_epochs": 41,
        "mle_lr": 2e-3,
        "mle_weight_decay": 0.0,
        "mle_pos_weight": 5.0,
        "mle_batch_size": 64,
    }
    assert set(changed) == set(learners.CLONING_FIELDS)
    keys = {_key(mwdata, **{name: value}) for name, value in changed.items()}
    keys |= {_key(mwdata, seed=4), _key(mwdata, expert_states="corpus"), _key(mwdata, flush_denormal=False)}
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # other kernels, other roundings
    keys.add(_key(mwdata))
    assert base not in keys and len(keys) == len(changed) + 4


@pytest.mark.parametrize("damage", ["truncated", "tampered"])
def test_a_corrupt_entry_is_moved_aside_and_cloned_again(tmp_path, clone_dir, clonings, damage):
    first = tiny("mle", tmp_path / "first")
    (entry,) = entries(clone_dir)
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    else:  # loads, but its weights no longer match its sha256
        saved = torch.load(entry, weights_only=True)
        saved["policy"]["net.0.bias"][0] += 1.0
        torch.save(saved, entry)
    again = tiny("mle", tmp_path / "again")
    assert again == first and len(clonings) == 2
    assert entry.with_name(entry.name + clone_cache.CORRUPT_SUFFIX).is_file()
    key = torch.load(entry, weights_only=True)["key"]
    assert clone_cache.read_entry(clone_cache.Entry(entry, key))[0] is not None  # the new entry is whole
    assert clone_cache.read_entry(clone_cache.Entry(entry, "another key")) == (
        None,
        "not a format-1 entry of this key",
    )


def test_an_interrupted_cloning_leaves_no_entry(tmp_path, clone_dir, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(learners, "behaviour_cloning_from_options", interrupted)
        with pytest.raises(KeyboardInterrupt):
            tiny("ppo", tmp_path / "cut")
    assert entries(clone_dir) == [] and not list(clone_dir.glob(".*.tmp"))
    tiny("ppo", tmp_path / "whole")
    assert len(entries(clone_dir)) == 1


def test_the_cache_lives_beside_the_expert_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VRB_CACHE_DIR", str(tmp_path))
    assert clone_cache.default_cache_dir() == cache_root() / "clone" == tmp_path / "clone"


# -- two processes ----------------------------------------------------------------------------------------


def _clone_in_process(folder: str, name: str) -> None:
    """A process needing the start of one entry: it says it started, then asks the cache; its cloning (when it
    runs) waits until both processes have started, so the other one meets the lock, and counts itself."""
    folder_path = Path(folder)
    (folder_path / f"started-{name}").touch()
    torch.manual_seed(0)
    policy = MultiLabelPolicy(hidden_sizes=(8,))
    generator = torch.Generator().manual_seed(0)

    def clone():
        while len(list(folder_path.glob("started-*"))) < 2:
            time.sleep(0.05)
        time.sleep(0.5)  # the other process is past its first look by now, waiting on the lock
        with open(folder_path / "clonings", "a") as f:
            f.write(f"{name}\n")
        with torch.no_grad():
            for parameter in policy.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=generator))
        return [(0, {"loss": 1.0})], {"test_f1": 0.5}

    entry = clone_cache.Entry(folder_path / "start.pt", "key")
    start = clone_cache.reuse_or_clone(entry, policy, generator, clone)
    torch.save(
        {"policy": policy.state_dict(), "generator": generator.get_state(), "result": start.result},
        folder_path / f"result-{name}.pt",
    )


@pytest.mark.slow
def test_two_processes_needing_one_start_clone_it_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_clone_in_process, args=(str(tmp_path), n)) for n in "ab"]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    assert len((tmp_path / "clonings").read_text().split()) == 1
    a, b = (torch.load(tmp_path / f"result-{n}.pt", weights_only=True) for n in "ab")
    assert_same_tensors(a, b)


def test_a_cloning_that_moves_another_generator_is_not_cached(tmp_path):
    """A start is the same only if everything the cloning moved is restored; torch's global generator is not
    in an entry, so a cloning that draws from it is used but not cached."""
    policy = MultiLabelPolicy(hidden_sizes=(8,))
    entry = clone_cache.Entry(tmp_path / "start.pt", "key")

    def draws_from_the_global_generator():
        torch.rand(1)
        return [], {"test_f1": 0.0}

    start = clone_cache.reuse_or_clone(entry, policy, torch.Generator(), draws_from_the_global_generator)
    assert start.result == {"test_f1": 0.0} and not entry.path.exists()
