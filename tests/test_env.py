"""The Gymnasium contract of the dialogue environments: spaces, seeding, vector envs, bad input, fuzzing."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs
from envs.dialogue_env import DialogueEnv
from envs.multiwoz.evaluator import DialogueMetrics
from envs.multiwoz.vector import ACTION_DIM, STATE_DIM


@pytest.fixture(scope="module")
def env():
    return DialogueEnv()


def random_action(rng: np.random.Generator) -> np.ndarray:
    action = np.zeros(ACTION_DIM, dtype=np.int8)
    action[rng.choice(ACTION_DIM, size=rng.integers(1, 4), replace=False)] = 1
    return action


def play(env: DialogueEnv, seed: int, actions_seed: int = 0) -> list:
    rng = np.random.default_rng(actions_seed)
    observation, info = env.reset(seed=seed)
    history = [(observation.tobytes(), info["user_acts"])]
    done = False
    while not done:
        observation, reward, terminated, truncated, info = env.step(random_action(rng))
        history.append((observation.tobytes(), info["user_acts"], info["sys_acts"], reward))
        done = terminated or truncated
    return history


def test_registered_ids_make_the_environment():
    env = gym.make(envs.ENV_IDS["agenda"])
    assert isinstance(env.unwrapped, DialogueEnv)
    assert env.observation_space == gym.spaces.MultiBinary(STATE_DIM)
    assert env.action_space == gym.spaces.MultiBinary(ACTION_DIM)


def test_passes_gymnasium_env_checker():
    check_env(DialogueEnv(), skip_render_check=True)


def test_dialogue_depends_only_on_its_seed(env):
    first = play(env, seed=11)
    play(env, seed=12)
    assert play(env, seed=11) == first
    assert play(DialogueEnv(), seed=11) == first


def test_reset_without_seed_draws_reproducible_dialogue_seeds():
    a, b = DialogueEnv(), DialogueEnv()
    a.reset(seed=5)
    b.reset(seed=5)
    seeds_a = [a.reset()[1]["dialogue_seed"] for _ in range(3)]
    seeds_b = [b.reset()[1]["dialogue_seed"] for _ in range(3)]
    assert seeds_a == seeds_b and len(set(seeds_a)) == 3


@pytest.mark.parametrize("mode,allowed", [("evaluator", {40, 5, -1}), ("user", {80, -40, -1}), ("none", {0})])
def test_reward_modes(mode, allowed):
    env = DialogueEnv(reward_mode=mode)
    rewards = set()
    for seed in range(5):
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(random_action(rng))
            rewards.add(reward)
            done = terminated or truncated
    assert rewards <= allowed


def test_reward_mode_does_not_change_the_dialogue():
    assert play(DialogueEnv(reward_mode="none"), 3)[0] == play(DialogueEnv(reward_mode="user"), 3)[0]
    strip = lambda history: [entry[:3] for entry in history]  # noqa: E731
    assert strip(play(DialogueEnv(reward_mode="none"), 3)) == strip(play(DialogueEnv(reward_mode="user"), 3))


def test_truncated_after_max_rounds_with_metrics_in_info():
    env = DialogueEnv(max_rounds=2)
    env.reset(seed=0)
    silent = np.zeros(ACTION_DIM, dtype=np.int8)
    _, _, terminated, truncated, info = env.step(silent)
    assert (terminated, truncated) == (False, True)
    assert info["metrics"].rounds == 2 and info["metrics"].success in (0, 1)


def test_episode_end_reports_metrics(env):
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    info, done = {}, False
    while not done:
        _, _, terminated, truncated, info = env.step(random_action(rng))
        done = terminated or truncated
        assert ("metrics" in info) == done
    assert (
        isinstance(info["metrics"], DialogueMetrics) and info["metrics"].turns == 2 * info["metrics"].rounds
    )


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(ACTION_DIM + 1, dtype=np.int8),
        np.zeros((1, ACTION_DIM), dtype=np.int8),
        np.zeros(ACTION_DIM, dtype=np.float32),
        np.full(ACTION_DIM, 2, dtype=np.int64),
    ],
)
def test_bad_action_raises_value_error_naming_the_space(env, bad):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="MultiBinary"):
        env.step(bad)


def test_step_after_the_end_needs_reset():
    env = DialogueEnv(max_rounds=1)
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(ACTION_DIM, dtype=np.int8))
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step(np.zeros(ACTION_DIM, dtype=np.int8))
    assert terminated or truncated
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(ACTION_DIM, dtype=np.int8))


@pytest.mark.parametrize("vector_cls", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_vector_envs_autoreset(vector_cls):
    vec = vector_cls([lambda: DialogueEnv() for _ in range(2)])
    try:
        observations, infos = vec.reset(seed=[0, 1])
        assert observations.shape == (2, STATE_DIM)
        rng = np.random.default_rng(0)
        finished = 0
        for _ in range(60):
            actions = np.stack([random_action(rng) for _ in range(2)])
            observations, rewards, terminated, truncated, infos = vec.step(actions)
            finished += int(np.sum(terminated | truncated))
        assert finished >= 2
    finally:
        vec.close()


def test_render_ansi_shows_the_transcript():
    env = DialogueEnv(render_mode="ansi")
    env.reset(seed=2)
    assert "user:" in env.render()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 2), actions_seed=st.integers(0, 2**16))
def test_random_dialogues_never_crash_and_end_within_the_round_limit(env, seed, actions_seed):
    history = play(env, seed, actions_seed)
    assert len(history) <= env.max_rounds


@pytest.mark.slow
def test_two_thousand_random_dialogues_end_within_the_round_limit():
    env = DialogueEnv()
    rounds = [len(play(env, seed, actions_seed=seed)) for seed in range(2000)]
    assert max(rounds) <= env.max_rounds and min(rounds) >= 1
