import pytest
import torch

from vrb.expert import ExpertSampler
from vrb.learners import VRBOptions
from vrb.learners.gdpl import AIRLEstimator, LearnedReward, pretrain_estimator
from vrb.learners.vrb import VRBEstimator, gaussian_kl
from vrb.rollout import Transitions

STATE_DIM, ACTION_DIM = 16, 8


def expert_action(states: torch.Tensor) -> torch.Tensor:
    """The 'expert' acts by a fixed rule of the state (sparser than random acts, like real system turns)."""
    return states[:, :ACTION_DIM] * states[:, ACTION_DIM : 2 * ACTION_DIM]


def synthetic(n: int, gen: torch.Generator, expert: bool) -> Transitions:
    states = torch.bernoulli(torch.full((n, STATE_DIM), 0.5), generator=gen)
    next_states = torch.bernoulli(torch.full((n, STATE_DIM), 0.5), generator=gen)
    if expert:
        actions = expert_action(states)
    else:
        actions = torch.bernoulli(torch.full((n, ACTION_DIM), 0.5), generator=gen)
    return Transitions(states, actions, next_states)


def vrb(generator: torch.Generator, **overrides) -> VRBEstimator:
    settings = {
        "hidden": 32,
        "z_dim": 8,
        "gamma": 0.99,
        "lr": 1e-3,
        "batch_size": 32,
        "ic": 0.5,
        "alpha_phi": 1e-5,
        "phi0": 0.0,
    } | overrides
    return VRBEstimator(STATE_DIM, ACTION_DIM, generator=generator, **settings)


def airl(generator: torch.Generator) -> AIRLEstimator:
    return AIRLEstimator(
        STATE_DIM,
        ACTION_DIM,
        hidden=50,
        gamma=0.99,
        lr=1e-3,
        batch_size=32,
        weight_clip=0.02,
        generator=generator,
    )


def test_gaussian_kl_matches_closed_form():
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    log_var = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    var = log_var.exp()
    closed_form = 0.5 * (mean**2 + var - 1 - var.log()).sum(-1)
    torch.testing.assert_close(gaussian_kl(mean, log_var), closed_form)
    posterior = torch.distributions.Normal(mean, var.sqrt())
    prior = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    torch.testing.assert_close(
        gaussian_kl(mean, log_var), torch.distributions.kl_divergence(posterior, prior).sum(-1)
    )


def test_vrb_kl_is_the_sum_over_the_three_latents_and_rewards_use_means():
    est = vrb(torch.Generator().manual_seed(0))
    batch = synthetic(5, torch.Generator().manual_seed(1), expert=False)
    net = est.net
    f, kl = net(batch.states, batch.actions, batch.next_states, sample=False)
    expected_kl = (
        gaussian_kl(*net.encode_g(torch.cat([batch.states, batch.actions], -1)))
        + gaussian_kl(*net.encode_h(batch.states))
        + gaussian_kl(*net.encode_h(batch.next_states))
    )
    torch.testing.assert_close(kl, expected_kl)
    mean_g = net.encode_g.mean(net.encode_g.body(torch.cat([batch.states, batch.actions], -1)))
    mean_h, mean_next = (net.encode_h.mean(net.encode_h.body(x)) for x in (batch.states, batch.next_states))
    by_hand = (net.decode_g(mean_g) + 0.99 * net.decode_h(mean_next) - net.decode_h(mean_h)).squeeze(-1)
    torch.testing.assert_close(f, by_hand)
    log_probs = torch.linspace(-3, -1, 5)
    torch.testing.assert_close(
        est.reward(batch.states, batch.actions, batch.next_states, log_probs), f - log_probs
    )
    again = est.reward(batch.states, batch.actions, batch.next_states, log_probs)
    torch.testing.assert_close(again, f - log_probs)  # deterministic: no sampling in rewards


def test_phi_rises_above_the_information_budget_and_clamps_at_zero_below_it():
    est = vrb(torch.Generator().manual_seed(0), ic=0.5, alpha_phi=0.1)
    assert est.update_phi(2.5) == pytest.approx(0.2)
    assert est.update_phi(1.5) == pytest.approx(0.3)
    assert est.update_phi(0.0) == pytest.approx(0.25)
    for _ in range(10):
        est.update_phi(0.0)
    assert est.phi == 0.0


def test_phi_follows_the_measured_kl_during_updates():
    gen = torch.Generator().manual_seed(0)
    expert, policy = synthetic(128, gen, expert=True), synthetic(128, gen, expert=False)
    tight = vrb(gen, ic=0.0, alpha_phi=1.0)  # any KL exceeds a zero budget
    stats = tight.update(expert, policy)
    assert tight.phi > 0 and stats["kl"] > 0
    assert set(stats) == {"loss", "adversarial_loss", "kl", "ic", "phi", "f_expert", "f_policy"}
    loose = vrb(gen, ic=1e6, alpha_phi=1.0, phi0=3.0)  # far under budget: phi driven to zero
    loose.update(expert, policy)
    assert loose.phi == 0.0


# after this brief training: AUC ~0.82 for GDPL's weight-clipped critic, ~0.90 for the bottleneck estimator
@pytest.mark.parametrize(("make", "min_auc"), [(airl, 0.75), (vrb, 0.85)], ids=["airl", "vrb"])
def test_estimator_scores_expert_above_random_after_brief_training(make, min_auc):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    est = make(gen)
    sampler = ExpertSampler(synthetic(2048, gen, expert=True), gen)
    for _ in range(15):
        est.update(sampler.sample(512), synthetic(512, gen, expert=False))
    held_out = torch.Generator().manual_seed(99)
    expert, random_actions = synthetic(1000, held_out, expert=True), synthetic(1000, held_out, expert=False)
    f_expert = est.score(expert.states, expert.actions, expert.next_states)
    f_random = est.score(random_actions.states, random_actions.actions, random_actions.next_states)
    assert f_expert.mean() > f_random.mean()
    assert (f_expert[:, None] > f_random[None, :]).float().mean() > min_auc  # ranking quality (AUC)


def test_airl_weights_stay_clipped_and_reward_subtracts_log_pi():
    gen = torch.Generator().manual_seed(0)
    est = airl(gen)
    stats = est.update(synthetic(256, gen, expert=True), synthetic(256, gen, expert=False))
    assert set(stats) == {"loss", "f_expert", "f_policy"}
    assert stats["loss"] == pytest.approx(stats["f_policy"] - stats["f_expert"])
    assert all(p.abs().max() <= 0.02 for p in est.net.parameters())
    batch = synthetic(4, gen, expert=False)
    log_probs = torch.tensor([-1.0, -2.0, -3.0, -4.0])
    f = est.net(batch.states, batch.actions, batch.next_states)
    torch.testing.assert_close(
        est.reward(batch.states, batch.actions, batch.next_states, log_probs), f - log_probs
    )


def test_expert_sampler_visits_every_transition_once_per_pass():
    expert = Transitions(torch.arange(10.0)[:, None], torch.zeros(10, 1), torch.zeros(10, 1))
    gen = torch.Generator().manual_seed(0)
    sampler = ExpertSampler(expert, gen)
    first = torch.cat([sampler.sample(4).states, sampler.sample(6).states])[:, 0]
    assert sorted(first.tolist()) == list(range(10))
    state, gen_state = sampler.state_dict(), gen.get_state()  # a resume restores both
    a = sampler.sample(7).states
    sampler.load_state_dict(state)
    gen.set_state(gen_state)
    assert torch.equal(sampler.sample(7).states, a)
    with pytest.raises(ValueError, match="empty"):
        ExpertSampler(Transitions(torch.zeros(0, 1), torch.zeros(0, 1), torch.zeros(0, 1)))


def vrb_estimator(phi0: float, generator: torch.Generator | None = None) -> VRBEstimator:
    return VRBEstimator(
        STATE_DIM,
        ACTION_DIM,
        hidden=8,
        z_dim=4,
        gamma=0.99,
        lr=1e-3,
        batch_size=8,
        ic=0.5,
        alpha_phi=1e-3,
        phi0=phi0,
        generator=generator,
    )


def test_the_vrb_estimator_state_round_trips_with_its_multiplier():
    est = vrb_estimator(0.25, torch.Generator().manual_seed(0))
    assert est.phi == 0.25
    est.phi = 0.7
    clone = vrb_estimator(0.0)
    clone.load_state_dict(est.state_dict())
    assert clone.phi == 0.7
    for a, b in zip(est.net.state_dict().values(), clone.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_pretrain_estimator_runs_one_update_per_epoch():
    gen = torch.Generator().manual_seed(0)
    est = airl(gen)
    sampler = ExpertSampler(synthetic(256, gen, expert=True), gen)
    history = pretrain_estimator(est, sampler, lambda: synthetic(64, gen, expert=False), epochs=3)
    assert len(history) == 3 and all("loss" in h for h in history)


class FakeBuffer:
    """What LearnedReward reads of a RolloutBuffer: transitions, their log-probabilities, and env rewards."""

    def __init__(self, batch: Transitions, env_rewards: torch.Tensor):
        self.batch, self.rewards = batch, env_rewards.clone()
        self.log_probs = torch.full((len(batch),), -2.0)

    def transitions(self) -> Transitions:
        return self.batch

    def flat_log_probs(self) -> torch.Tensor:
        return self.log_probs

    def set_rewards(self, rewards: torch.Tensor) -> None:
        self.rewards = rewards


def learned_reward(gen: torch.Generator, **config) -> LearnedReward:
    env_reward = config.pop("env_reward", "user")
    expert = ExpertSampler(synthetic(512, gen, expert=True), gen)
    random_acts = lambda states: torch.bernoulli(torch.full((len(states), ACTION_DIM), 0.5), generator=gen)  # noqa: E731
    return LearnedReward(vrb(gen), expert, VRBOptions(**config), env_reward, random_acts)


@pytest.mark.parametrize(("negatives", "size"), [("rollout", 64), ("matched", 64), ("both", 128)])
def test_negatives_are_rollouts_policy_acts_at_expert_states_or_both(negatives, size):
    gen = torch.Generator().manual_seed(0)
    step = learned_reward(gen, estimator_negatives=negatives)
    rollout = synthetic(64, gen, expert=False)
    batch = step.negatives(rollout)
    assert len(batch) == size
    if negatives != "rollout":  # matched negatives sit at expert states with the expert's s'
        matched = batch.index(torch.arange(size - 64, size))
        assert not torch.equal(matched.actions, expert_action(matched.states))


def test_mixed_reward_adds_the_standardised_learned_reward_to_the_env_reward():
    gen = torch.Generator().manual_seed(0)
    env = torch.arange(64.0)
    mixed = learned_reward(gen, env_reward="user", learned_reward_coef=2.0)
    buffer = FakeBuffer(synthetic(64, gen, expert=False), env)
    stats = mixed.relabel(buffer)
    learned = (buffer.rewards - env) / 2.0
    assert abs(learned.mean()) < 1e-5 and learned.std().item() == pytest.approx(1.0, abs=1e-4)
    assert 0.0 < stats["reward_logpi_share"] < 1.0
    pure = learned_reward(torch.Generator().manual_seed(0), env_reward="none")
    buffer = FakeBuffer(synthetic(64, torch.Generator().manual_seed(0), expert=False), env)
    pure.relabel(buffer)
    assert abs(buffer.rewards.mean()) < 1e-5  # the env's rewards are ignored


def test_replayed_rollouts_join_the_negatives_and_survive_a_checkpoint():
    gen = torch.Generator().manual_seed(0)
    step = learned_reward(gen, estimator_replay_epochs=2)
    for _ in range(3):
        step.relabel(FakeBuffer(synthetic(32, gen, expert=False), torch.zeros(32)))
    assert len(step.replay) == 2 and len(step.negatives(synthetic(32, gen, expert=False))) == 96
    clone = learned_reward(torch.Generator().manual_seed(1), estimator_replay_epochs=2)
    clone.load_state_dict(step.state_dict())
    for a, b in zip(clone.replay, step.replay, strict=True):
        assert torch.equal(a.states, b.states) and torch.equal(a.actions, b.actions)


def test_airl_logit_subtracts_the_policy_log_probability():
    gen = torch.Generator().manual_seed(0)
    calls = []

    def log_prob(states, actions):
        calls.append(len(states))
        return torch.full((len(states),), -3.0)

    est = vrb(gen, policy_log_prob=log_prob)
    expert, policy = synthetic(32, gen, expert=True), synthetic(32, gen, expert=False)
    est.generator = torch.Generator().manual_seed(7)
    adversarial = est.loss(expert, policy)[1]["adversarial_loss"]
    assert calls == [32, 32]
    noise = torch.Generator().manual_seed(7)  # the same latent draws, expert batch first
    with torch.no_grad():
        f_e, _ = est.net(expert.states, expert.actions, expert.next_states, sample=True, generator=noise)
        f_p, _ = est.net(policy.states, policy.actions, policy.next_states, sample=True, generator=noise)
    softplus = torch.nn.functional.softplus
    assert adversarial == pytest.approx(
        (softplus(-(f_e + 3)).mean() + softplus(f_p + 3).mean()).item(), rel=1e-5
    )
