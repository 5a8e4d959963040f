"""``vrb``: PPO on the variational reward estimator bottleneck (Park et al. 2020), GDPL's learned reward with
its inputs passed through Gaussian bottleneck encoders.

``VRBEstimator`` (Park et al. 2020) puts a Gaussian bottleneck between the inputs and g, h (encoders
E_g(z|s,a), E_h(z|s) shared by s and s', linear decoders D_g, D_h) and bounds the information through it with
a Lagrange multiplier phi (VDB, Peng et al. 2019). Its adversarial part is the logistic (binary
cross-entropy) loss on f as a logit, the loss VDB constrains; the bottleneck replaces GDPL's weight clipping,
which would also pin the encoders near zero and make the KL constraint vacuous. Rewards use the encoder
means (no sampling).

The estimator's training and the relabelling of each epoch are GDPL's (``vrb.learners.gdpl``); what differs is
the estimator: the bottleneck, the logistic loss and the multiplier phi's dual ascent, all below.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.learners import VRBOptions
from vrb.learners.gdpl import LearnedRewardLearner, LogProbFn, RewardEstimator
from vrb.loop import RunContext
from vrb.policy import draw_device
from vrb.rollout import Transitions


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


class VRBLearner(LearnedRewardLearner):
    """``vrb``: the learned reward of the bottleneck estimator, its logit f or AIRL's f - log pi under the
    current policy (``estimator_logit``)."""

    def make_estimator(self, options: VRBOptions, ctx: RunContext) -> RewardEstimator:
        return VRBEstimator(
            STATE_DIM,
            ACTION_DIM,
            hidden=options.estimator_hidden,
            z_dim=options.z_dim,
            gamma=ctx.cfg.gamma,
            lr=options.estimator_lr,
            batch_size=options.estimator_batch_size,
            ic=options.ic,
            alpha_phi=options.alpha_phi,
            phi0=options.phi0,
            policy_log_prob=self.policy.log_prob if options.estimator_logit == "airl" else None,
            generator=ctx.generator,
            device=ctx.cfg.device,
        )
