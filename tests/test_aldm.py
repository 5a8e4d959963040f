import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from baselines import aldm
from vrb.algorithms import make_config
from vrb.checkpoint import load_checkpoint
from vrb.evaluate import load_agent
from vrb.expert import ExpertData
from vrb.rollout import RolloutBuffer
from vrb.train import run

STATE_DIM, ACTION_DIM = 6, 3


def toy_sessions(n: int, follows_rule: bool, gen: torch.Generator) -> list[torch.Tensor]:
    """Sessions of 2-6 binary turns; under the rule each action repeats the first state bits, else it is random."""
    sessions = []
    for _ in range(n):
        length = int(torch.randint(2, 7, (1,), generator=gen))
        states = torch.randint(0, 2, (length, STATE_DIM), generator=gen).float()
        actions = (
            states[:, :ACTION_DIM]
            if follows_rule
            else torch.randint(0, 2, (length, ACTION_DIM), generator=gen).float()
        )
        sessions.append(torch.cat([states, actions], dim=1))
    return sessions


def make_reward(expert: list[torch.Tensor], seed: int = 0, pretrain_epochs: int = 0) -> aldm.SessionReward:
    torch.manual_seed(seed)
    return aldm.SessionReward(
        aldm.SessionDiscriminator(STATE_DIM + ACTION_DIM, turn_dim=16, lstm_hidden=16),
        expert,
        lr=1e-2,
        batch_sessions=16,
        disc_epochs=1,
        pretrain_epochs=pretrain_epochs,
        generator=torch.Generator().manual_seed(seed),
        state_features=slice(None),
    )


def test_discriminator_separates_rule_sessions_from_random_ones():
    gen = torch.Generator().manual_seed(0)
    reward = make_reward(toy_sessions(64, True, gen))
    first = reward.update(toy_sessions(64, False, gen), passes=1)
    last = reward.update(toy_sessions(64, False, gen), passes=15)
    assert last["loss"] < first["loss"]
    rule, noise = reward.score(toy_sessions(50, True, gen)), reward.score(toy_sessions(50, False, gen))
    accuracy = ((rule > 0).float().mean() + (noise < 0).float().mean()) / 2
    assert accuracy > 0.9, f"held-out accuracy {accuracy:.2f}"


def test_padding_does_not_change_a_session_score():
    gen = torch.Generator().manual_seed(1)
    reward = make_reward(toy_sessions(4, True, gen))
    short, long = toy_sessions(1, True, gen)[0][:2], toy_sessions(1, True, gen)[0]
    long = torch.cat([long, long])  # at least 4 turns, so that ``short`` gets padded
    alone, together = reward.score([short]), reward.score([short, long])
    torch.testing.assert_close(alone[0], together[0])


def test_finished_sessions_and_their_rewards():
    terminated = torch.zeros(5, 2)
    truncated = torch.zeros(5, 2)
    terminated[1, 0] = truncated[4, 0] = terminated[2, 1] = 1  # env 1's steps 3-4: a dialogue still running
    sessions = aldm.finished_sessions(terminated, truncated)
    assert sessions == [(0, 0, 2), (0, 2, 5), (1, 0, 3)]
    rewards = aldm.session_rewards((5, 2), sessions, torch.tensor([1.0, 2.0, 3.0]))
    expected = torch.zeros(5, 2)
    expected[1, 0], expected[4, 0], expected[2, 1] = 1.0, 2.0, 3.0
    torch.testing.assert_close(rewards, expected)


def test_relabel_puts_each_session_score_at_its_last_step():
    gen = torch.Generator().manual_seed(2)
    reward = make_reward(toy_sessions(16, True, gen), pretrain_epochs=2)
    buffer = RolloutBuffer(6, 2, STATE_DIM, ACTION_DIM)
    done_at = {(2, 0), (5, 0), (3, 1)}
    for t in range(6):
        buffer.add(
            torch.randint(0, 2, (2, STATE_DIM), generator=gen),
            torch.randint(0, 2, (2, ACTION_DIM), generator=gen),
            torch.zeros(2, STATE_DIM),
            torch.zeros(2),
            torch.full((2,), 7.0),
            torch.tensor([float((t, e) in done_at) for e in range(2)]),
            torch.zeros(2),
        )
    stats = reward.relabel(buffer)
    assert stats["sessions"] == 3 and 0 <= stats["accuracy"] <= 1 and reward.updates == 1
    turns = [
        torch.cat([buffer.states[a:b, e], buffer.actions[a:b, e]], 1)
        for e, a, b in [(0, 0, 3), (0, 3, 6), (1, 0, 4)]
    ]
    scores = reward.score(turns)
    expected = torch.zeros(6, 2)
    expected[2, 0], expected[5, 0], expected[3, 1] = scores
    torch.testing.assert_close(buffer.rewards, expected)


def test_turn_features_default_to_the_user_acts_and_the_action():
    states, actions = torch.arange(340.0).expand(2, 340), torch.ones(2, 209)
    features = aldm.turn_features(states, actions)
    assert features.shape == (2, 78 + 209) and features[0, 77] == 77 and features[0, 78] == 1


def test_expert_sessions_group_by_dialogue_without_the_goodbye_turn():
    states = np.zeros((5, STATE_DIM), np.float32)
    states[[2, 4], -1] = 1  # each dialogue's last system turn answers the user's goodbye
    states[:, 0] = np.arange(5)
    expert = ExpertData(
        split="val",
        states=states,
        actions=np.ones((5, ACTION_DIM), np.float32),
        next_states=states,
        dialogue_index=np.array([0, 0, 0, 1, 1], np.int32),
        turn_index=np.array([1, 3, 5, 1, 3], np.int32),
        dialogue_ids=("a", "b"),
    )
    sessions = aldm.expert_sessions(expert, state_features=slice(None))
    assert [s[:, 0].tolist() for s in sessions] == [[0.0, 1.0], [3.0]]
    assert sessions[0].shape == (2, STATE_DIM + ACTION_DIM)


@pytest.mark.slow
def test_tiny_aldm_run_writes_loadable_checkpoints_and_resumes(tmp_path):
    cfg = make_config(
        algo="aldm",
        epochs=1,
        steps_per_epoch=64,
        num_envs=2,
        mle_epochs=1,
        eval_dialogues=2,
        eval_every=1,
        policy_hidden=(16,),
        value_hidden=(8,),
        aldm_turn_dim=8,
        aldm_lstm_hidden=8,
        aldm_pretrain_epochs=1,
    )
    record = run(cfg, tmp_path)  # the registered algorithm named aldm
    assert "best" in record and (tmp_path / "results.json").is_file()
    agent, config = load_agent(tmp_path / "best.pt")
    assert config["algo"] == "aldm" and agent.policy.net[0].out_features == 16
    assert load_checkpoint(tmp_path / "last.pt").state["reward_learner"]["updates"] == 1

    run(cfg.replace(epochs=2), tmp_path, resume=True)
    assert load_checkpoint(tmp_path / "last.pt").state["reward_learner"]["updates"] == 2
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert {"discriminator/loss", "discriminator/accuracy", "eval/success"} <= set(events.Tags()["scalars"])
