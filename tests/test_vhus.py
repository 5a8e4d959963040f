"""VHUS: token encoding, model shapes and learning, deterministic decoding, and the environment contract."""

import logging
import random

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from envs.dialogue_env import DialogueEnv, build_world
from envs.vhus import cache
from envs.vhus.corpus import (
    Vocabs,
    dialogue_turns,
    encode_corpus,
    group_corpus_acts,
    parse_user_tokens,
    user_tokens,
)
from envs.vhus.inference import FastVHUS
from envs.vhus.model import VHUS, VHUSConfig
from envs.vhus.simulator import VHUSUser
from envs.vhus.train import collate, evaluate

TINY = {"embed_dim": 8, "hidden_dim": 12, "max_user_tokens": 8}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and several threads crawl on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vocabs(mwdata):
    return Vocabs.from_data(mwdata)


@pytest.fixture(scope="module")
def tiny_dialogues(mwdata, vocabs):
    corpus = mwdata.corpus("val")
    first = dict(list(corpus.items())[:12])
    return encode_corpus(first, vocabs)[:4]


def tiny_model(vocabs, seed=0, **overrides):
    torch.manual_seed(seed)
    config = VHUSConfig(
        goal_vocab=len(vocabs.goal),
        sys_vocab=len(vocabs.sys),
        usr_vocab=len(vocabs.usr),
        **(TINY | overrides),
    )
    return VHUS(config)


def test_user_acts_round_trip_through_tokens(mwdata):
    dialogue = next(d for d in mwdata.corpus("val").values() if dialogue_turns(d))
    goal = dialogue["goal"]
    user_acts = group_corpus_acts(dialogue["log"][0]["dialog_act"])
    acts = parse_user_tokens(user_tokens(user_acts, goal), goal)
    expected = {
        (key.split("-")[1], key.split("-")[0], slot, value)
        for key, pairs in user_acts.items()
        for slot, value in pairs
    }
    assert {(i.lower(), d.lower(), s.lower(), v) for i, d, s, v in acts} == expected


def test_corpus_encodes_without_unknown_tokens(tiny_dialogues):
    for dialogue in tiny_dialogues:
        assert dialogue.system[0] == []
        assert len(dialogue.system) == len(dialogue.user)
        assert all(1 not in turn for turn in dialogue.user + dialogue.system)


@pytest.mark.parametrize("goal_regularizer", [False, True])
def test_shapes(vocabs, tiny_dialogues, goal_regularizer):
    model = tiny_model(vocabs, goal_regularizer=goal_regularizer)
    batch = collate(tiny_dialogues, vocabs)
    out = model(batch)
    turns = int(batch.turn_mask.sum())
    assert out.logits.shape == (turns, batch.user.size(2) - 1, len(vocabs.usr))
    assert out.terminate.shape == batch.turn_mask.shape
    assert all(t.shape == (*batch.turn_mask.shape, TINY["hidden_dim"]) for t in out.latent)
    assert (out.gates is not None) == goal_regularizer
    losses = model.losses(batch)
    assert losses.total.dim() == 0 and torch.isfinite(losses.total)


@pytest.mark.parametrize("goal_regularizer", [False, True])
def test_loss_falls_on_a_tiny_batch(vocabs, tiny_dialogues, goal_regularizer):
    model = tiny_model(vocabs, goal_regularizer=goal_regularizer)
    batch = collate(tiny_dialogues, vocabs)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    first = model.losses(batch).total.item()
    for _ in range(40):
        loss = model.losses(batch).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model.losses(batch).act.item() < 0.5 * first


@pytest.mark.parametrize("goal_regularizer", [False, True])
def test_turn_by_turn_inference_matches_batched_greedy_decoding(vocabs, tiny_dialogues, goal_regularizer):
    model = tiny_model(vocabs, goal_regularizer=goal_regularizer, max_user_tokens=20)
    batch = collate(tiny_dialogues, vocabs)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(10):  # away from the near-uniform logits of a fresh model
        loss = model.losses(batch).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    decoded, terminate = model.greedy_batch(batch)
    engine = FastVHUS(model)
    row = 0
    for b, dialogue in enumerate(tiny_dialogues):
        session = engine.start(dialogue.goal, vocabs.goal_slot_flags(dialogue.goal))
        for t, system in enumerate(dialogue.system):
            tokens, ends = engine.respond(session, system)
            assert tokens == decoded[row]
            assert ends == bool(terminate[b, t] >= 0)
            row += 1


def test_evaluate_scores_are_rates(vocabs, tiny_dialogues):
    scores = evaluate(tiny_model(vocabs), tiny_dialogues, vocabs)
    assert 0.0 <= scores.act_f1 <= 1.0 and 0.0 <= scores.termination_accuracy <= 1.0
    assert scores.turns == sum(len(d.user) for d in tiny_dialogues)


def _dialogue(user: VHUSUser, seed: int, system_turns):
    goal = build_world().goals.sample(random.Random(seed), np.random.RandomState(seed))
    user.start(goal, random.Random(seed))
    said = [user.respond([])]
    for acts in system_turns:
        if user.terminated:
            break
        said.append(user.respond(acts))
    return said


SYSTEM_TURNS = [
    [["Request", "Hotel", "Area", "?"]],
    [["Inform", "Hotel", "Choice", "3"], ["Request", "Hotel", "Price", "?"]],
    [["Book", "Booking", "Ref", "ABC123"]],
    [["reqmore", "general", "none", "none"]],
]


@pytest.mark.parametrize("sample", [False, True])
def test_decoding_is_a_function_of_the_seed(mwdata, vocabs, sample):
    model = tiny_model(vocabs)
    first = _dialogue(VHUSUser(model, vocabs, mwdata.value_set, sample=sample), 3, SYSTEM_TURNS)
    second = _dialogue(VHUSUser(model, vocabs, mwdata.value_set, sample=sample), 3, SYSTEM_TURNS)
    assert first == second


def test_goal_tracking_fills_requests_and_bookings(mwdata, vocabs):
    user = VHUSUser(tiny_model(vocabs), vocabs, mwdata.value_set)
    goal = {
        "hotel": {
            "info": {"area": "east"},
            "reqt": ["phone"],
            "book": {"people": "2", "day": "monday", "stay": "1"},
        },
        "domain_ordering": ("hotel",),
    }
    user.start(goal, random.Random(0))
    user.respond([])
    assert user.reward == -1.0 or user.terminated
    user._terminated = False
    user.respond([["Inform", "Hotel", "Phone", "01223 123456"], ["Book", "Booking", "Ref", "XYZ"]])
    assert user.domain_goals["hotel"]["reqt"]["phone"] == "01223 123456"
    assert user.domain_goals["hotel"]["booked"] == "yes"
    assert user.goal_complete and user.reward == 80.0


def test_check_env_with_a_tiny_vhus(mwdata, vocabs):
    user = VHUSUser(tiny_model(vocabs), vocabs, mwdata.value_set)
    env = DialogueEnv(simulator="vhus", user=user)
    check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=5)
    for _ in range(5):
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(observation)
        if terminated or truncated:
            break


MALFORMED = [
    ["(", "addr", ")", "food=InInfo"],  # slots before any act
    ["hotel-inform", "(", "area=Nowhere", "name=Unknow", "type", ")"],  # unresolvable sources, bare slot
    ["booking-inform", "(", "day=InBook", ")", "bogus-act", "<UNK>", "<PAD>"],
    ["hotel-request", "(", "phone=InInfo", "nonsense", ")"],
    [],
]


@pytest.mark.parametrize("tokens", MALFORMED)
def test_malformed_token_sequences_are_dropped(tokens, caplog):
    goal = {"hotel": {"info": {"area": "east"}, "reqt": ["phone"]}}
    with caplog.at_level(logging.DEBUG, logger="envs.vhus.corpus"):
        acts = parse_user_tokens(tokens, goal)
    assert all(len(act) == 4 and all(isinstance(part, str) for part in act) for act in acts)
    assert all(act[2] != "Area" or act[3] == "east" for act in acts)
    if tokens:
        assert "dropped" in caplog.text


def test_environment_survives_garbage_decodings(mwdata, vocabs, monkeypatch):
    model = tiny_model(vocabs)
    draws = random.Random(1)

    def garbage(session, system_ids, **kwargs):
        return [draws.randrange(len(vocabs.usr)) for _ in range(draws.randrange(0, 12))], False

    user = VHUSUser(model, vocabs, mwdata.value_set)
    monkeypatch.setattr(user.engine, "respond", garbage)
    env = DialogueEnv(simulator="vhus", user=user, max_rounds=15)
    for seed in range(3):
        env.reset(seed=seed)
        truncated = terminated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())


def test_checkpoint_round_trip(vocabs, tmp_path, monkeypatch, mwdata):
    model = tiny_model(vocabs, goal_regularizer=True)
    path = tmp_path / "model.pt"
    cache.save_checkpoint(path, model, {"split": "val"})
    loaded, extra = cache.load_checkpoint(path)
    assert extra == {"split": "val"} and loaded.config == model.config
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    )
    monkeypatch.setenv(cache.CACHE_ENV_VAR, str(tmp_path / "cache"))
    assert cache.model_path(mwdata).is_relative_to(tmp_path / "cache" / "vhus")
    assert cache.model_path(mwdata) != cache.model_path(mwdata, goal_regularizer=True)
    user = VHUSUser.from_data(mwdata, model_path=path)
    assert user.model.config == model.config


def test_first_use_trains_into_the_cache(mwdata, vocabs, tmp_path, monkeypatch, caplog):
    from envs.vhus import train

    calls = []

    def fake_train(data, out, settings, log_dir=None):
        calls.append(out)
        cache.save_checkpoint(out, tiny_model(vocabs), {"split": data.training_split()})

    monkeypatch.setenv(cache.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(train, "train", fake_train)
    with caplog.at_level(logging.WARNING, logger="envs.vhus.simulator"):
        VHUSUser.from_data(mwdata)
        VHUSUser.from_data(mwdata)
    assert calls == [cache.model_path(mwdata)]
    assert "training one now" in caplog.text
