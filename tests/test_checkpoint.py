import random

import numpy as np
import pytest
import torch

from vrb.algorithms import config_of, make_config
from vrb.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    code_version,
    load_checkpoint,
    restore_rng_states,
    save_checkpoint,
    source_digest,
)
from vrb.config import TrainConfig
from vrb.learners import PPOOptions
from vrb.learners.ppo import PPO
from vrb.learners.vrb import VRBEstimator
from vrb.policy import MultiLabelPolicy, ValueNet
from vrb.rollout import RolloutBuffer, Transitions


def trained_components(seed: int):
    """Small nets with non-trivial optimiser state, as train.py would hold them mid-run."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    policy, value = MultiLabelPolicy(6, 4, (8,)), ValueNet(6, (8,))
    ppo = PPO.from_options(policy, value, PPOOptions(bc_coef=0), 0.99, gen)
    buffer = RolloutBuffer(4, 2, 6, 4)
    while not buffer.full:
        states = torch.rand(2, 6, generator=gen)
        actions, log_probs = policy.act(states, gen)
        buffer.add(states, actions, states, log_probs, torch.ones(2), torch.zeros(2), torch.zeros(2))
    ppo.update(buffer)
    estimator = VRBEstimator(
        6,
        4,
        hidden=8,
        z_dim=3,
        gamma=0.99,
        lr=1e-3,
        batch_size=4,
        ic=0.0,
        alpha_phi=0.1,
        phi0=0.0,
        generator=gen,
    )
    batch = buffer.transitions()
    estimator.update(Transitions(batch.states, 1 - batch.actions, batch.next_states), batch)
    return {"policy": policy, "value": value, "ppo": ppo, "estimator": estimator}


def full_state(components) -> dict:
    return {name: part.state_dict() for name, part in components.items()}


def assert_identical(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_identical(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_identical(x, y)
    else:
        assert a == b


def make_rngs(seed: int):
    return {
        "env": random.Random(seed),
        "np_legacy": np.random.RandomState(seed),
        "np": np.random.default_rng(seed),
        "torch": torch.Generator().manual_seed(seed),
    }


def draw(rngs) -> list:
    return [
        rngs["env"].random(),
        rngs["np_legacy"].rand(),
        rngs["np"].random(),
        torch.rand(1, generator=rngs["torch"]).item(),
        torch.rand(1).item(),
    ]


def test_round_trip_restores_tensors_bit_identically_and_rng_positions(tmp_path):
    components = trained_components(0)
    assert components["estimator"].phi > 0
    config = make_config(algo="vrb", seed=3)
    rngs = make_rngs(5)
    draw(rngs)  # move every generator off its seed position
    path = save_checkpoint(
        tmp_path / "run" / "epoch_7.pt",
        config=config,
        epoch=7,
        state=full_state(components),
        rngs=rngs,
        data_checksums={"db/hotel_db.json": "ab" * 32},
    )
    expected_draws = draw(rngs)

    checkpoint = load_checkpoint(path)
    assert checkpoint.epoch == 7 and config_of(checkpoint) == config
    assert checkpoint.data_checksums == {"db/hotel_db.json": "ab" * 32}
    assert checkpoint.code_version == code_version() and checkpoint.code_version["package"]
    assert_identical(checkpoint.state, full_state(components))

    fresh = trained_components(1)
    for name, part in fresh.items():
        part.load_state_dict(checkpoint.state[name])
    assert_identical(full_state(fresh), full_state(components))
    assert fresh["estimator"].phi == components["estimator"].phi

    fresh_rngs = make_rngs(123)
    restore_rng_states(fresh_rngs, checkpoint.rng_states)
    assert draw(fresh_rngs) == expected_draws
    assert list((tmp_path / "run").iterdir()) == [path]  # no temporary file left behind


def test_overwrite_is_atomic_replacement(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, config=TrainConfig(), epoch=1, state={})
    save_checkpoint(path, config=TrainConfig(), epoch=2, state={})
    assert load_checkpoint(path).epoch == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("damage", ["flip_byte", "truncate"])
def test_damaged_file_raises_checkpoint_error(tmp_path, damage):
    path = save_checkpoint(
        tmp_path / "c.pt",
        config=TrainConfig(),
        epoch=0,
        state={"policy": MultiLabelPolicy(6, 4).state_dict()},
    )
    data = bytearray(path.read_bytes())
    if damage == "flip_byte":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[-100:]
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_missing_foreign_and_future_files_raise_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a vrb checkpoint"):
        load_checkpoint(foreign)
    path = save_checkpoint(tmp_path / "c.pt", config=TrainConfig(), epoch=0, state={})
    data = path.read_bytes()
    path.write_bytes(data.replace(b"VRBCKPT %d " % FORMAT_VERSION, b"VRBCKPT 99 ", 1))
    with pytest.raises(CheckpointError, match="uses format 99") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_incompatible_config_and_mismatched_rng_are_reported(tmp_path):
    path = save_checkpoint(
        tmp_path / "c.pt", config=TrainConfig(), epoch=0, state={}, rngs={"env": random.Random(0)}
    )
    checkpoint = load_checkpoint(path)
    object.__setattr__(checkpoint, "config", {**checkpoint.config, "retired_field": 1})
    with pytest.raises(CheckpointError, match="retired_field"):
        config_of(checkpoint)
    with pytest.raises(CheckpointError, match="no state for rng 'np'"):
        restore_rng_states({"np": np.random.default_rng(0)}, checkpoint.rng_states)
    with pytest.raises(CheckpointError, match="saved a python state"):
        restore_rng_states({"env": np.random.default_rng(0)}, checkpoint.rng_states)


def test_the_source_digest_names_the_code_that_ran(tmp_path):
    for package in ("vrb", "envs"):
        (tmp_path / package / "sub").mkdir(parents=True)
        (tmp_path / package / "sub" / "m.py").write_text("x = 1\n")
    (tmp_path / "vrb" / "notes.txt").write_text("not code")
    before = source_digest(tmp_path)
    (tmp_path / "vrb" / "notes.txt").write_text("still not code")
    assert source_digest(tmp_path) == before
    (tmp_path / "envs" / "sub" / "m.py").write_text("x = 2\n")
    changed = source_digest(tmp_path)
    assert changed != before and len(changed) == 16
    (tmp_path / "envs" / "sub" / "m.py").rename(tmp_path / "envs" / "sub" / "n.py")  # same bytes, new name
    assert source_digest(tmp_path) not in (before, changed)
    assert code_version()["source"] == source_digest()


def test_a_policy_only_checkpoint_acts_like_the_run_and_keeps_its_provenance(tmp_path):
    from vrb.algorithms import load_agent
    from vrb.checkpoint import save_policy_only

    cfg = make_config(algo="ppo", out_dir=str(tmp_path / "run"), data_dir=str(tmp_path / "data"))
    policy = MultiLabelPolicy()
    full = save_checkpoint(
        tmp_path / "best.pt",
        config=cfg,
        epoch=7,
        state={
            "policy": policy.state_dict(),
            "value": ValueNet(340).state_dict(),
            "ppo": {"big": torch.zeros(10**5)},
        },
        rngs={"torch": torch.Generator().manual_seed(1)},
        data_checksums={"val.json.zip": "ab" * 32},
    )
    small = save_policy_only(load_checkpoint(full), tmp_path / "policy.pt")
    loaded = load_checkpoint(small)
    assert set(loaded.state) == {"policy"} and small.stat().st_size < full.stat().st_size / 2
    assert (loaded.epoch, loaded.data_checksums) == (7, {"val.json.zip": "ab" * 32})
    assert loaded.config == cfg.to_dict() | {"out_dir": None, "data_dir": None}  # no place of the trainer's
    assert loaded.code_version == load_checkpoint(full).code_version
    states = torch.rand(4, 340)
    acted = load_agent(loaded).policy.greedy(states)
    assert torch.equal(acted, policy.greedy(states))
