"""Learned rewards: GDPL's AIRL estimator and the VRB variational-bottleneck estimator, behind one interface.

Both score a transition with the AIRL form f(s, a, s') = g(s, a) + gamma * h(s') - h(s) and give the policy
r = f(s, a, s') - log pi(a|s) (AIRL's entropy-regularised reward, with log pi summed over the 209 acts).

What ConvLab-2's GDPL estimator (policy/gdpl/estimator.py) actually does, reproduced by ``AIRLEstimator``:
- g: (s, a) -> 50 -> 1 and h: s -> 50 -> 1, ReLU MLPs; RMSprop, lr 1e-3.
- The loss is NOT AIRL's logistic discriminator loss: log pi never enters it. It is the critic loss
  mean f(policy) - mean f(expert), made well-posed by clipping every estimator weight to [-0.02, 0.02] after
  each step (a WGAN critic). Its BCE loss object and KL/annealing helpers are unused leftovers.
- One update: the epoch's policy samples are cut into len // 32 chunks (in rollout order; here shuffled),
  each paired with the next batch of 32 from a reshuffled expert loader (``ExpertSampler`` draws alike).
- Expert s' for the last turn of a dialogue is s itself (its loader's rule; the expert builder's concern).
- The reward is f - log pi_old with log pi computed before the PPO update, with the estimator already updated
  on this epoch's samples.

``VRBEstimator`` (Park et al. 2020) puts a Gaussian bottleneck between the inputs and g, h (encoders
E_g(z|s,a), E_h(z|s) shared by s and s', linear decoders D_g, D_h) and bounds the information through it with
a Lagrange multiplier phi (VDB, Peng et al. 2019). Its adversarial part is the logistic (binary
cross-entropy) loss on f as a logit, the loss VDB constrains; the bottleneck replaces GDPL's weight clipping,
which would also pin the encoders near zero and make the KL constraint vacuous. Rewards use the encoder
means (no sampling).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypedDict, cast

import torch
import torch.nn.functional as F
from torch import nn

from vrb.expert import ExpertSampler
from vrb.options import GDPLOptions, VRBOptions
from vrb.policy import draw_device, mlp
from vrb.rollout import Transitions, shuffled_indices

LogProbFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (states, actions) -> log pi(a|s) [batch]


class RewardEstimator(ABC):
    """Trained adversarially on expert vs policy transitions; turns policy transitions into rewards."""

    def __init__(
        self,
        net: nn.Module,
        *,
        lr: float,
        batch_size: int,
        generator: torch.Generator | None,
        device: torch.device | str = "cpu",
    ):
        self.net = net.to(device)  # before the optimiser takes its parameters
        self.optimizer = torch.optim.RMSprop(net.parameters(), lr=lr, foreach=True)
        self.batch_size = batch_size
        self.generator = generator

    def update(self, expert: Transitions, policy: Transitions) -> dict[str, float]:
        """One pass over the policy batch in minibatches, each against an equally sized expert minibatch."""
        steps = max(1, min(len(policy), len(expert)) // self.batch_size)
        policy_order = shuffled_indices(len(policy), self.generator, policy.states.device)
        expert_order = shuffled_indices(len(expert), self.generator, expert.states.device)
        totals: dict[str, float] = {}
        self.net.train()
        for policy_idx, expert_idx in zip(
            policy_order.tensor_split(steps), expert_order.tensor_split(steps), strict=True
        ):
            loss, stats = self.loss(expert.index(expert_idx), policy.index(policy_idx))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.after_step(stats)
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value
        self.net.eval()
        return {key: total / steps for key, total in totals.items()}

    @torch.no_grad()
    def reward(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        next_states: torch.Tensor,
        log_probs: torch.Tensor,
        logpi_coef: float = 1.0,
    ) -> torch.Tensor:
        """r = f(s, a, s') - c log pi(a|s), shape [batch]; c = 1 is AIRL's reward (GDPL, VRB)."""
        return self.score(states, actions, next_states) - logpi_coef * log_probs

    @abstractmethod
    def score(self, states: torch.Tensor, actions: torch.Tensor, next_states: torch.Tensor) -> torch.Tensor:
        """Deterministic f(s, a, s'), shape [batch]."""

    @abstractmethod
    def loss(self, expert: Transitions, policy: Transitions) -> tuple[torch.Tensor, dict[str, float]]:
        """The minibatch loss to minimise and the statistics to log."""

    def after_step(self, stats: dict[str, float]) -> None:  # noqa: B027 - optional hook
        """Runs after every optimiser step (weight clipping, multiplier update)."""

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


class AIRLRewardNet(nn.Module):
    """f(s, a, s') = g(s, a) + gamma * h(s') - h(s) with one-hidden-layer ReLU MLPs."""

    def __init__(self, state_dim: int, action_dim: int, hidden: int, gamma: float):
        super().__init__()
        self.gamma = gamma
        self.g = mlp([state_dim + action_dim, hidden, 1])
        self.h = mlp([state_dim, hidden, 1])

    def forward(self, states: torch.Tensor, actions: torch.Tensor, next_states: torch.Tensor) -> torch.Tensor:
        g = self.g(torch.cat([states, actions], -1))
        return (g + self.gamma * self.h(next_states) - self.h(states)).squeeze(-1)


class AIRLEstimator(RewardEstimator):
    """GDPL's estimator: critic loss mean f(policy) - mean f(expert) with weight clipping."""

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        *,
        hidden: int,
        gamma: float,
        lr: float,
        batch_size: int,
        weight_clip: float,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ):
        super().__init__(
            AIRLRewardNet(state_dim, action_dim, hidden, gamma),
            lr=lr,
            batch_size=batch_size,
            generator=generator,
            device=device,
        )
        self.weight_clip = weight_clip

    def score(self, states: torch.Tensor, actions: torch.Tensor, next_states: torch.Tensor) -> torch.Tensor:
        return self.net(states, actions, next_states)

    def loss(self, expert: Transitions, policy: Transitions) -> tuple[torch.Tensor, dict[str, float]]:
        f_expert = self.net(expert.states, expert.actions, expert.next_states).mean()
        f_policy = self.net(policy.states, policy.actions, policy.next_states).mean()
        loss = f_policy - f_expert
        return loss, {"loss": loss.item(), "f_expert": f_expert.item(), "f_policy": f_policy.item()}

    @torch.no_grad()
    def after_step(self, stats: dict[str, float]) -> None:
        if not self.weight_clip:  # 0 reproduces ConvLab-2 and the original GDPL, whose clip loop never runs
            return
        for p in self.net.parameters():
            p.clamp_(-self.weight_clip, self.weight_clip)


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag(exp(log_var))) || N(0, I)) per row: 0.5 * sum(mean^2 + var - 1 - log var)."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)


class GaussianEncoder(nn.Module):
    """x -> hidden (ReLU) -> mean and log-variance of a diagonal Gaussian over z."""

    def __init__(self, in_dim: int, hidden: int, z_dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, z_dim)
        self.log_var = nn.Linear(hidden, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mean(h), self.log_var(h)


class VRBRewardNet(nn.Module):
    """f = D_g(z_g) + gamma * D_h(z'_h) - D_h(z_h), z_g ~ E_g(z|s,a), z_h ~ E_h(z|s), z'_h ~ E_h(z|s')."""

    def __init__(self, state_dim: int, action_dim: int, hidden: int, z_dim: int, gamma: float):
        super().__init__()
        self.gamma = gamma
        self.encode_g = GaussianEncoder(state_dim + action_dim, hidden, z_dim)
        self.encode_h = GaussianEncoder(state_dim, hidden, z_dim)
        self.decode_g = nn.Linear(z_dim, 1)
        self.decode_h = nn.Linear(z_dim, 1)

    def forward(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        next_states: torch.Tensor,
        *,
        sample: bool,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, KL) per row; KL is that of the joint posterior over (z_g, z_h, z'_h), the sum of the three."""
        posteriors = (
            self.encode_g(torch.cat([states, actions], -1)),
            self.encode_h(states),
            self.encode_h(next_states),
        )
        z_g, z_h, z_next = (
            _reparameterise(mean, log_var, generator) if sample else mean for mean, log_var in posteriors
        )
        f = self.decode_g(z_g) + self.gamma * self.decode_h(z_next) - self.decode_h(z_h)
        # sum() starts from 0: typed int | Tensor
        kl = cast(torch.Tensor, sum(gaussian_kl(mean, log_var) for mean, log_var in posteriors))
        return f.squeeze(-1), kl


def _reparameterise(
    mean: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    where = draw_device(generator, mean.device)
    noise = torch.randn(mean.shape, generator=generator, device=where, dtype=mean.dtype).to(mean.device)
    return mean + (0.5 * log_var).exp() * noise


class VRBEstimator(RewardEstimator):
    """Logistic adversarial loss + phi (E[KL] - I_c); each step phi <- max(0, phi + alpha_phi (KL - I_c)).

    The discriminator's logit is f itself (Park et al.), or with ``policy_log_prob`` AIRL's f - log pi(a|s)
    under the current policy, so that f need not also learn what the policy already says.
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        *,
        hidden: int,
        z_dim: int,
        gamma: float,
        lr: float,
        batch_size: int,
        ic: float,
        alpha_phi: float,
        phi0: float,
        policy_log_prob: LogProbFn | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ):
        super().__init__(
            VRBRewardNet(state_dim, action_dim, hidden, z_dim, gamma),
            lr=lr,
            batch_size=batch_size,
            generator=generator,
            device=device,
        )
        self.ic, self.alpha_phi, self.phi = ic, alpha_phi, phi0
        self.policy_log_prob = policy_log_prob

    def score(self, states: torch.Tensor, actions: torch.Tensor, next_states: torch.Tensor) -> torch.Tensor:
        return self.net(states, actions, next_states, sample=False)[0]

    def loss(self, expert: Transitions, policy: Transitions) -> tuple[torch.Tensor, dict[str, float]]:
        f_expert, kl_expert = self.net(
            expert.states, expert.actions, expert.next_states, sample=True, generator=self.generator
        )
        f_policy, kl_policy = self.net(
            policy.states, policy.actions, policy.next_states, sample=True, generator=self.generator
        )
        logit_expert, logit_policy = f_expert, f_policy
        if (
            self.policy_log_prob is not None
        ):  # AIRL's discriminator: D = exp f / (exp f + pi), logit f - log pi
            with torch.no_grad():
                logit_expert = f_expert - self.policy_log_prob(expert.states, expert.actions)
                logit_policy = f_policy - self.policy_log_prob(policy.states, policy.actions)
        # expert labelled 1, policy 0: -log sigmoid(logit_expert) - log(1 - sigmoid(logit_policy))
        adversarial = F.softplus(-logit_expert).mean() + F.softplus(logit_policy).mean()
        kl = torch.cat([kl_expert, kl_policy]).mean()
        loss = adversarial + self.phi * (kl - self.ic)
        return loss, {
            "loss": loss.item(),
            "adversarial_loss": adversarial.item(),
            "kl": kl.item(),
            "ic": self.ic,  # the bound beside the KL it holds (diagnostics/)
            "phi": self.phi,
            "f_expert": f_expert.mean().item(),
            "f_policy": f_policy.mean().item(),
        }

    def after_step(self, stats: dict[str, float]) -> None:
        self.update_phi(stats["kl"])

    def update_phi(self, kl: float) -> float:
        """Dual ascent on the information constraint E[KL] <= I_c."""
        self.phi = max(0.0, self.phi + self.alpha_phi * (kl - self.ic))
        return self.phi

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "phi": self.phi}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.phi = float(state["phi"])


class _EstimatorArgs(TypedDict):
    """The keyword arguments both estimators take."""

    hidden: int
    gamma: float
    lr: float
    batch_size: int
    generator: torch.Generator | None
    device: torch.device | str


def make_estimator(
    options: GDPLOptions | VRBOptions,
    gamma: float,
    state_dim: int,
    action_dim: int,
    generator: torch.Generator | None = None,
    policy_log_prob: LogProbFn | None = None,
    device: torch.device | str = "cpu",
) -> RewardEstimator:
    """GDPL's estimator for ``GDPLOptions``, VRB's for ``VRBOptions``, on ``device``; ``policy_log_prob`` serves
    VRB's AIRL logit."""
    if not isinstance(options, GDPLOptions | VRBOptions):
        raise TypeError(
            f"{type(options).__name__} describes no reward estimator; expected GDPL or VRB options"
        )
    common: _EstimatorArgs = {
        "hidden": options.estimator_hidden,
        "gamma": gamma,
        "lr": options.estimator_lr,
        "batch_size": options.estimator_batch_size,
        "generator": generator,
        "device": device,
    }
    if isinstance(options, GDPLOptions):
        return AIRLEstimator(state_dim, action_dim, weight_clip=options.estimator_weight_clip, **common)
    return VRBEstimator(
        state_dim,
        action_dim,
        z_dim=options.z_dim,
        ic=options.ic,
        alpha_phi=options.alpha_phi,
        phi0=options.phi0,
        policy_log_prob=policy_log_prob if options.estimator_logit == "airl" else None,
        **common,
    )


def pretrain_estimator(
    estimator: RewardEstimator,
    expert: ExpertSampler,
    sample_policy: Callable[[], Transitions],
    epochs: int,
) -> list[dict[str, float]]:
    """Fit the estimator to a fixed policy before RL (original GDPL pretrained it against the MLE policy).

    ``sample_policy`` returns a fresh batch of that policy's transitions for every epoch.
    """
    history = []
    for _ in range(epochs):
        policy = sample_policy()
        history.append(estimator.update(expert.sample(len(policy)), policy))
    return history
