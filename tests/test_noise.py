"""The noisy user channel: identity at p = 0, corrupting at p = 1, seed-determined, never breaking the env."""

from __future__ import annotations

import numpy as np
import pytest

from envs.dialogue_env import DialogueEnv
from envs.noise import NoisyUser, corruption_tables
from vrb.config import TrainConfig
from vrb.errors import ConfigError

SEEDS = range(12)


def _play(env: DialogueEnv, seed: int, policy_seed: int = 0) -> tuple[list, object]:
    """A dialogue under a random sparse policy; its transcript and the evaluator's metrics."""
    rng = np.random.RandomState(policy_seed + seed)
    _, info = env.reset(seed=seed)
    done = False
    while not done:
        action = (rng.rand(env.action_space.n) < 0.03).astype(np.int8)
        _, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return list(env.transcript), info["metrics"]


@pytest.fixture(scope="module")
def clean_env(mwdata):
    return DialogueEnv()


def test_zero_noise_is_the_identity(clean_env):
    wrapped = DialogueEnv(user=NoisyUser(DialogueEnv().user, 0.0, clean_env.world.data))
    for seed in SEEDS:
        assert _play(wrapped, seed) == _play(clean_env, seed)


def test_full_drop_leaves_only_general_acts(clean_env):
    env = DialogueEnv(user_noise=1.0)
    for seed in SEEDS:
        env.reset(seed=seed)
        assert any(act[1] != "general" for act in env.user.clean_acts)  # the opening turn informs
        transcript, _ = _play(env, seed)
        user_turns = [acts for speaker, acts in transcript if speaker == "user"]
        assert all(act[1] == "general" for acts in user_turns for act in acts)


def test_intent_and_value_corruption_stay_in_the_vocabulary(clean_env):
    data = clean_env.world.data
    tables = corruption_tables(data)
    vocabulary = {tuple(entry.split("-")[:3]) for entry in data.usr_act_vocab}
    env = DialogueEnv(user=NoisyUser(DialogueEnv().user, 1.0, data, drop_p=0.0))
    changed = 0
    for seed in SEEDS:
        env.reset(seed=seed)
        clean, noisy = env.user.clean_acts, env.user_acts
        assert len(clean) == len(noisy)
        for (c_intent, c_domain, c_slot, c_value), act in zip(clean, noisy, strict=True):
            intent, domain, slot, value = act
            assert (domain, slot) == (c_domain, c_slot)
            if (c_intent, c_domain, c_slot) in tables.flippable:
                assert intent != c_intent and (domain, intent, slot) in vocabulary
                assert value == "?" if intent == "Request" else value in tables.values[domain, slot]
                changed += 1
            elif c_intent == "Inform" and (c_domain, c_slot) in tables.values:
                assert value != c_value and value in tables.values[domain, slot]
                changed += 1
            else:
                assert act == [c_intent, c_domain, c_slot, c_value]
    assert changed > 0


@pytest.mark.parametrize("p", [0.1, 0.3, 1.0])
def test_noisy_dialogues_run_and_depend_only_on_the_seed(clean_env, p):
    first, second = DialogueEnv(user_noise=p), DialogueEnv(user_noise=p)
    corrupted = 0
    for seed in SEEDS:
        transcript, metrics = _play(first, seed)
        assert (transcript, metrics) == _play(second, seed)
        # the true goal is what the evaluator scores: the noisy run samples the same goal as the clean one
        clean_env.reset(seed=seed)
        assert first.goal == clean_env.goal
        assert first.user.domain_goals.keys() == clean_env.user.domain_goals.keys()
        corrupted += transcript != _play(clean_env, seed)[0]
    assert corrupted > 0


def test_noise_does_not_consume_the_dialogue_stream(clean_env):
    """The user's own first turn (drawn from the dialogue's stream) is what it says without noise."""
    noisy = DialogueEnv(user_noise=0.5)
    for seed in SEEDS:
        clean_env.reset(seed=seed)
        noisy.reset(seed=seed)
        assert noisy.user.clean_acts == clean_env.user_acts
        assert noisy.rng.getstate() == clean_env.rng.getstate()


def test_bad_probability_is_a_clear_error(clean_env):
    with pytest.raises(ValueError, match=r"user noise p = 1.5: expected a probability in \[0, 1\]"):
        DialogueEnv(user_noise=1.5)
    with pytest.raises(ConfigError, match="user_noise"):
        TrainConfig(user_noise=-0.1)
