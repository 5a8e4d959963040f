"""ACER (Wang et al. 2017) for the MultiWOZ system policy, as Weisz et al. (2018) used it for dialogue.

Action space: a softmax over summary actions, the ``acer_num_actions`` most frequent act combinations of the
corpus (``baselines.common.SummaryActions``), not the factorised 209 Bernoullis. ACER needs, per state, Q(s,
a) and pi(a|s) for every action (for V(s) = E_pi Q(s, .) and the bias-correction sum) and a per-action ratio
pi(a|s) / mu(a|s). Over 2^209 act sets the sum is intractable unless Q is forced to be additive over acts,
and the ratio of a product of 209 factors is almost always either truncated or near zero, so neither the
Retrace target nor the truncation would do what the paper intends. Weisz et al. also ran ACER on summary
actions. The price: the policy can only say what the corpus says often. The default 200 cover 59% of the
corpus turns exactly; it matters: warm-started with 100 (50%) the policy starts at 12% validation success,
with 200 at 46%.

One update on a stored segment of time-major steps [T, num_envs], the paper's discrete algorithm box:

    Q_ret <- 0 after a step that ended the dialogue, V(s') after a cut one (turn limit, end of the segment)
    for t = T-1 ... 0:
        Q_ret <- r_t + gamma Q_ret
        rho_t(a) = pi(a|s_t) / mu(a|s_t);  V(s_t) = sum_a pi(a|s_t) Q(s_t, a)
        g_t = min(c, rho_t(a_t)) grad log pi(a_t|s_t) (Q_ret - V(s_t))
              + sum_a [1 - c / rho_t(a)]_+ pi(a|s_t) grad log pi(a|s_t) (Q(s_t, a) - V(s_t))  (bias corr.)
              + entropy bonus
        trust region (optional), on the logits phi: k = grad_phi KL(pi_avg || pi_phi) = pi - pi_avg,
            z* = g - max(0, (k.g - delta) / |k|^2) k, backpropagated instead of g
        Q loss 1/2 (Q_ret - Q(s_t, a_t))^2
        Q_ret <- min(1, rho_t(a_t)) (Q_ret - Q(s_t, a_t)) + V(s_t)                  (Retrace, lambda = 1)
    theta_avg <- alpha theta_avg + (1 - alpha) theta

Per epoch: ``steps_per_epoch`` on-policy steps from ``vrb.rollout.roll_out`` (evaluator rewards), one update
on them, store them, then ``acer_replay_ratio`` updates on stored epochs drawn uniformly. mu(.|s) is
recomputed from the stored states right after sampling: the policy does not change while it samples, so this
is exactly the behaviour distribution. The policy is warm-started like every learner here, by behaviour
cloning (cross-entropy on corpus turns labelled with their nearest summary action). Policy and Q are
separate networks (hidden sizes ``policy_hidden``, ``value_hidden``), so that large early Q errors cannot
overwrite the warm-started features.

Registered as ``acer`` through the entry point in ``pyproject.toml``; ``load_agent`` rebuilds the greedy policy
from a checkpoint. The replay memory is not checkpointed (tens of MB, every epoch): a resumed run refills it.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import SummaryActions, SummaryPolicy, clone_summary_behaviour
from envs.multiwoz.vector import STATE_DIM
from vrb.acting import NeuralAgent
from vrb.algorithms import Algorithm
from vrb.checkpoint import Checkpoint
from vrb.clone_cache import Records, code_digest, entry_for, reuse_or_clone
from vrb.config import AlgoOptions, TrainConfig, boolean, integer, layer_sizes, number, param
from vrb.errors import ConfigError
from vrb.loop import RunContext
from vrb.policy import mlp
from vrb.rollout import RolloutBuffer, clipped_step, shuffled_indices
from vrb.sampling import EpochSampler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ACEROptions(AlgoOptions):
    """``acer``: its own fields (the run's shared fields are in ``vrb.config.TrainConfig``)."""

    policy_hidden: tuple[int, ...] = param(
        (100, 100), layer_sizes, "hidden layer sizes of the policy network"
    )
    value_hidden: tuple[int, ...] = param((50, 50), layer_sizes, "hidden layer sizes of the Q network")
    mle_epochs: int = param(40, integer(1), "epochs of the summary-action behaviour cloning")
    mle_lr: float = param(1e-3, number(strict=True), "behaviour cloning's RMSprop learning rate")
    mle_weight_decay: float = param(1e-5, number(), "behaviour cloning's weight decay")
    mle_batch_size: int = param(32, integer(1), "behaviour cloning's minibatch size")
    max_grad_norm: float = param(10.0, number(strict=True), "gradient-norm clip of every update")
    acer_num_actions: int = param(
        200, integer(1), "summary actions: the most frequent corpus act combinations"
    )
    acer_replay_size: int = param(
        32_768, integer(1), "transitions kept for off-policy updates (whole epochs)"
    )
    acer_replay_ratio: int = param(4, integer(1), "off-policy updates per on-policy one")
    acer_truncation: float = param(10.0, number(strict=True), "c: importance weights truncated at c")
    acer_trust_region: bool = param(True, boolean, "use the trust region around the average policy")
    acer_trust_region_delta: float = param(1.0, number(strict=True), "the trust region's delta")
    acer_average_decay: float = param(0.99, number(0, 1), "alpha of the average policy network")
    acer_policy_lr: float = param(1e-4, number(strict=True), "the policy's RMSprop learning rate")
    acer_q_lr: float = param(1e-3, number(strict=True), "the Q network's Adam learning rate")
    acer_ent_coef: float = param(1e-3, number(), "entropy bonus of the policy objective")
    clone_cache: bool = param(
        True, boolean, "reuse the cloned start of an identical earlier cloning ($VRB_CACHE_DIR/clone)"
    )


# What the summary-action cloning reads of the options (the cache key's fields, vrb.clone_cache).
SUMMARY_CLONING_FIELDS = (
    "policy_hidden",
    "mle_epochs",
    "mle_lr",
    "mle_weight_decay",
    "mle_batch_size",
    "acer_num_actions",
)


# -- the algorithm's pieces ---------------------------------------------------------------------------------


def retrace_targets(
    rewards: torch.Tensor,
    q_taken: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    ratios: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Q_ret over time-major [T, ...] steps. A step that ends a dialogue restarts the recursion: from 0 when
    the user ended it, from V(s') when it was cut; the last stored step counts as cut."""
    targets = torch.empty_like(rewards)
    done = torch.maximum(terminated, truncated)
    carry = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        cut = done[t] if t < rewards.shape[0] - 1 else torch.ones_like(done[t])
        carry = torch.where(cut > 0, next_values[t] * (1.0 - terminated[t]), carry)
        targets[t] = rewards[t] + gamma * carry
        carry = ratios[t].clamp(max=1.0) * (targets[t] - q_taken[t]) + values[t]
    return targets


def policy_gradient_terms(
    log_probs: torch.Tensor,
    behaviour_probs: torch.Tensor,
    actions: torch.Tensor,
    q: torch.Tensor,
    q_ret: torch.Tensor,
    truncation: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step surrogates whose gradients (through ``log_probs`` [B, K] only) are ACER's two policy terms:
    min(c, rho) log pi(a_t) (Q_ret - V) and sum_a [1 - c/rho(a)]_+ pi(a) log pi(a) (Q(a) - V).
    [1 - c/rho(a)]_+ pi(a) is computed as [pi(a) - c mu(a)]_+, which needs no division by pi."""
    probs = log_probs.detach().exp()
    values = (probs * q).sum(-1)
    taken = actions.unsqueeze(-1)
    rho = probs.gather(-1, taken).squeeze(-1) / behaviour_probs.gather(-1, taken).squeeze(-1)
    truncated = rho.clamp(max=truncation) * log_probs.gather(-1, taken).squeeze(-1) * (q_ret - values)
    correction_weights = (probs - truncation * behaviour_probs).clamp(min=0.0)
    correction = (correction_weights * log_probs * (q - values.unsqueeze(-1))).sum(-1)
    return truncated, correction


def trust_region_step(gradient: torch.Tensor, kl_gradient: torch.Tensor, delta: float) -> torch.Tensor:
    """z* = g - max(0, (k.g - delta) / |k|^2) k per row: the closest step to g that keeps the linearised KL
    to the average policy below delta."""
    excess = ((kl_gradient * gradient).sum(-1) - delta).clamp(min=0.0)
    scale = excess / (kl_gradient * kl_gradient).sum(-1).clamp(min=1e-12)
    return gradient - scale.unsqueeze(-1) * kl_gradient


@dataclass(frozen=True)
class Segment:
    """One epoch of time-major steps [T, num_envs] with everything an off-policy update needs."""

    states: torch.Tensor  # uint8 0/1
    actions: torch.Tensor  # summary-action index, long
    rewards: torch.Tensor
    behaviour_probs: torch.Tensor  # [T, N, K] mu(.|s) of the policy that sampled the step
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_states: torch.Tensor  # uint8 0/1

    @classmethod
    @torch.no_grad()
    def from_buffer(cls, buffer: RolloutBuffer, summary: SummaryActions, policy: SummaryPolicy) -> Segment:
        return cls(
            states=buffer.states.to(torch.uint8),
            actions=summary.index_of(buffer.actions),
            rewards=buffer.rewards.clone(),
            behaviour_probs=torch.softmax(policy(buffer.states), -1),
            terminated=buffer.terminated.clone(),
            truncated=buffer.truncated.clone(),
            next_states=buffer.next_states.to(torch.uint8),
        )


class ReplayMemory:
    """The last ``capacity`` segments; sampled uniformly with the run's generator."""

    def __init__(self, capacity: int, generator: torch.Generator):
        self.capacity, self.generator = capacity, generator
        self.segments: list[Segment] = []

    def add(self, segment: Segment) -> None:
        self.segments.append(segment)
        del self.segments[: -self.capacity]

    def sample(self) -> Segment:
        return self.segments[int(torch.randint(len(self.segments), (1,), generator=self.generator))]


class ACER:
    def __init__(
        self,
        policy: SummaryPolicy,
        q_net: nn.Module,
        *,
        policy_lr: float,
        q_lr: float,
        gamma: float,
        truncation: float,
        trust_region: bool,
        trust_region_delta: float,
        average_decay: float,
        ent_coef: float,
        max_grad_norm: float,
    ):
        self.policy, self.q_net = policy, q_net
        self.average_policy = copy.deepcopy(policy).requires_grad_(False)
        self.policy_optimizer = torch.optim.RMSprop(policy.parameters(), lr=policy_lr)
        self.q_optimizer = torch.optim.Adam(q_net.parameters(), lr=q_lr)
        self.gamma, self.truncation = gamma, truncation
        self.trust_region, self.delta = trust_region, trust_region_delta
        self.average_decay, self.ent_coef, self.max_grad_norm = average_decay, ent_coef, max_grad_norm

    @classmethod
    def from_options(
        cls, policy: SummaryPolicy, q_net: nn.Module, options: ACEROptions, gamma: float
    ) -> ACER:
        return cls(
            policy,
            q_net,
            policy_lr=options.acer_policy_lr,
            q_lr=options.acer_q_lr,
            gamma=gamma,
            truncation=options.acer_truncation,
            trust_region=options.acer_trust_region,
            trust_region_delta=options.acer_trust_region_delta,
            average_decay=options.acer_average_decay,
            ent_coef=options.acer_ent_coef,
            max_grad_norm=options.max_grad_norm,
        )

    def update(self, segment: Segment) -> dict[str, float]:
        states, next_states = segment.states.float(), segment.next_states.float()
        logits = self.policy(states)
        log_probs = torch.log_softmax(logits, -1)
        q = self.q_net(states)
        taken = segment.actions.unsqueeze(-1)
        with torch.no_grad():
            probs = log_probs.exp()
            values = (probs * q).sum(-1)
            next_values = (torch.softmax(self.policy(next_states), -1) * self.q_net(next_states)).sum(-1)
            ratios = probs.gather(-1, taken).squeeze(-1) / segment.behaviour_probs.gather(-1, taken).squeeze(
                -1
            )
            q_ret = retrace_targets(
                segment.rewards,
                q.gather(-1, taken).squeeze(-1),
                values,
                next_values,
                ratios,
                segment.terminated,
                segment.truncated,
                self.gamma,
            )

        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        truncated, correction = policy_gradient_terms(
            flat(log_probs),
            flat(segment.behaviour_probs),
            flat(segment.actions),
            flat(q.detach()),
            flat(q_ret),
            self.truncation,
        )
        entropy = -(flat(log_probs).exp() * flat(log_probs)).sum(-1)
        objective = truncated + correction + self.ent_coef * entropy
        with torch.no_grad():
            average_probs = torch.softmax(self.average_policy(flat(states)), -1)
        stats = {
            "objective": objective.mean().item(),
            "entropy": entropy.mean().item(),
            "kl_to_average": F.kl_div(flat(log_probs).detach(), average_probs, reduction="batchmean").item(),
            "rho_mean": ratios.mean().item(),
            "truncated_fraction": (ratios > self.truncation).float().mean().item(),
        }
        if self.trust_region:
            gradient = torch.autograd.grad(objective.sum(), logits, retain_graph=True)[0]
            step = trust_region_step(flat(gradient), flat(probs) - average_probs, self.delta)
            stats["trust_region_active"] = (step != flat(gradient)).any(-1).float().mean().item()
            policy_loss = -(flat(logits) * step).sum() / objective.shape[0]
        else:
            policy_loss = -objective.mean()
        clipped_step(self.policy_optimizer, self.policy, policy_loss, self.max_grad_norm)

        q_loss = 0.5 * (q.gather(-1, taken).squeeze(-1) - q_ret).pow(2).mean()
        clipped_step(self.q_optimizer, self.q_net, q_loss, self.max_grad_norm)
        with torch.no_grad():
            for average, current in zip(
                self.average_policy.parameters(), self.policy.parameters(), strict=True
            ):
                average.lerp_(current, 1.0 - self.average_decay)
        return stats | {"q_loss": q_loss.item(), "q_ret_mean": q_ret.mean().item()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "average_policy": self.average_policy.state_dict(),
            "policy_optimizer": self.policy_optimizer.state_dict(),
            "q_optimizer": self.q_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average_policy.load_state_dict(state["average_policy"])
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        self.q_optimizer.load_state_dict(state["q_optimizer"])


# -- the run ------------------------------------------------------------------------------------------------


def load_agent(
    checkpoint: Checkpoint, cfg: TrainConfig, decoder: str | None, sample_seed: int
) -> NeuralAgent:
    """The greedy summary-action policy of an ACER checkpoint (what ``vrb.evaluate --checkpoint`` runs)."""
    state = checkpoint.state["policy"]
    policy = SummaryPolicy(state["vectors"], hidden_sizes=cfg.options.policy_hidden)
    policy.load_state_dict(state)
    return NeuralAgent(policy)


class ACERLearner:
    """Per epoch: on-policy steps, one update on them, store them, then ``acer_replay_ratio`` replayed updates.
    The replay memory is not checkpointed (tens of MB): a resumed run refills it."""

    online = True

    def __init__(self, ctx: RunContext):
        cfg, options = ctx.cfg, ctx.cfg.options
        self.ctx = ctx
        self.summary = SummaryActions.from_corpus(ctx.expert.actions, options.acer_num_actions)
        self.policy = SummaryPolicy(self.summary.vectors, STATE_DIM, options.policy_hidden).to(cfg.device)
        self.q_net = mlp([STATE_DIM, *options.value_hidden, len(self.summary)]).to(cfg.device)
        self.acer = ACER.from_options(self.policy, self.q_net, options, cfg.gamma)
        self.replay = ReplayMemory(options.acer_replay_size // cfg.steps_per_epoch, ctx.generator)
        self.agent = NeuralAgent(self.policy)
        self.sampler = EpochSampler(cfg)
        self.buffer = self.sampler.buffer

    def start(self) -> dict[str, Any]:
        """Summary-action behaviour cloning, reused from the clone cache when an identical one was done
        (``vrb.clone_cache``); the average policy starts from its weights."""
        ctx = self.ctx
        options = ctx.cfg.options

        def clone() -> tuple[Records, dict[str, float]]:
            return clone_summary_behaviour(
                self.policy,
                ctx.expert,
                self.summary,
                ctx.generator,
                epochs=options.mle_epochs,
                lr=options.mle_lr,
                weight_decay=options.mle_weight_decay,
                batch_size=options.mle_batch_size,
            )

        entry = None
        if options.clone_cache:
            fields = {name: getattr(options, name) for name in SUMMARY_CLONING_FIELDS}
            code = code_digest(clone_summary_behaviour, SummaryPolicy, SummaryActions, mlp, shuffled_indices)
            split = ctx.expert.split
            entry = entry_for("summary", ctx.cfg, ctx.data, split, fields, code, self.policy, ctx.generator)
        start = reuse_or_clone(entry, self.policy, ctx.generator, clone)
        for step, scalars in start.records:
            ctx.tb.scalars("mle", scalars, step)
        logger.info(
            "summary-action MLE: held-out loss %.3f, accuracy %.3f",
            start.result["val_loss"],
            start.result["val_accuracy"],
        )
        self.acer.average_policy.load_state_dict(self.policy.state_dict())
        return {"summary_actions": len(self.summary), "mle": start.result}

    def learn_epoch(self, epoch: int) -> dict[str, dict[str, float]]:
        options = self.ctx.cfg.options
        episodes, perf = self.sampler.sample(self.policy.act, epoch, self.ctx.generator)
        segment = Segment.from_buffer(self.buffer, self.summary, self.policy)
        on_policy = self.acer.update(segment)
        self.replay.add(segment)
        replayed = [self.acer.update(self.replay.sample()) for _ in range(options.acer_replay_ratio)]
        return {
            "perf": perf,
            "acer": on_policy,
            "acer_replay": {k: float(np.mean([s[k] for s in replayed])) for k in replayed[0]},
            "rollout": episodes.summary(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "q": self.q_net.state_dict(),
            "acer": self.acer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.q_net.load_state_dict(state["q"])
        self.acer.load_state_dict(state["acer"])
        logger.info("the replay memory starts empty after a resume")

    def close(self) -> None:
        self.sampler.close()


def check_replay(cfg: TrainConfig) -> None:
    """The replay memory holds whole epochs: at least one."""
    if cfg.options.acer_replay_size < cfg.steps_per_epoch:
        raise ConfigError(
            f"config field 'acer_replay_size' = {cfg.options.acer_replay_size}: expected at least "
            f"steps_per_epoch ({cfg.steps_per_epoch})"
        )


ALGORITHM = Algorithm(
    "acer",
    "ACER on summary actions (Wang et al. 2017; Weisz et al. 2018)",
    ACEROptions,
    ACERLearner,
    load_agent,
    decodes=False,
    check=check_replay,
)
