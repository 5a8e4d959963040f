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

Per epoch: ``steps_per_epoch`` on-policy steps from ``vrb.sampling.collect`` (evaluator rewards), one update
on them, store them, then ``acer_replay_ratio`` updates on stored epochs drawn uniformly. mu(.|s) is
recomputed from the stored states right after sampling: the policy does not change while it samples, so this
is exactly the behaviour distribution. The policy is warm-started like every learner here, by behaviour
cloning (cross-entropy on corpus turns labelled with their nearest summary action). Policy and Q are
separate networks (hidden sizes ``policy_hidden``, ``value_hidden``), so that large early Q errors cannot
overwrite the warm-started features.

Checkpoints name ``agent_kind = "acer"``; ``vrb.evaluate`` rebuilds the agent with ``agent_from_checkpoint``.
The replay memory is not checkpointed (tens of MB, every epoch): a resumed run refills it.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import SummaryActions, start_run_folder
from envs.dialogue_env import DialogueEnv
from envs.multiwoz import data as mw_data
from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.checkpoint import Checkpoint, restore_rng_states
from vrb.config import TrainConfig
from vrb.evaluate import NeuralAgent
from vrb.expert import ExpertData, load_expert
from vrb.logger import RunLogger
from vrb.policy import mlp
from vrb.ppo import RolloutBuffer, clipped_step, shuffled_indices
from vrb.sampling import collect, epoch_seeds, make_vector_env
from vrb.train import MLE_HOLDOUT_FRACTION, RunTracker, resume_checkpoint

logger = logging.getLogger(__name__)


class SummaryPolicy(nn.Module):
    """Softmax over summary actions that acts with their 209-act vectors, so vrb's sampling and NeuralAgent
    drive it like a MultiLabelPolicy (``act`` decodes: ``greedy`` takes the most probable, any other decoder
    samples; ``greedy()`` is the most probable)."""

    def __init__(
        self,
        vectors: np.ndarray | torch.Tensor,
        state_dim: int = STATE_DIM,
        hidden_sizes: tuple[int, ...] = (100, 100),
    ):
        super().__init__()
        self.register_buffer("vectors", torch.as_tensor(vectors, dtype=torch.float32))
        self.net = mlp([state_dim, *hidden_sizes, self.vectors.shape[0]])

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Logits over summary actions."""
        return self.net(states)

    @torch.no_grad()
    def act(
        self,
        states: torch.Tensor,
        generator: torch.Generator | None = None,
        decoder: str = "sample",
        fallback: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = torch.log_softmax(self(states), -1)
        if decoder == "greedy":
            index = log_probs.argmax(-1, keepdim=True)
        else:
            index = torch.multinomial(log_probs.exp(), 1, generator=generator)
        return self.vectors[index.squeeze(-1)], log_probs.gather(-1, index).squeeze(-1)

    @torch.no_grad()
    def greedy(self, states: torch.Tensor) -> torch.Tensor:
        return self.vectors[self(states).argmax(-1)]


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
    def from_config(cls, policy: SummaryPolicy, q_net: nn.Module, cfg: TrainConfig) -> ACER:
        return cls(
            policy,
            q_net,
            policy_lr=cfg.acer_policy_lr,
            q_lr=cfg.acer_q_lr,
            gamma=cfg.gamma,
            truncation=cfg.acer_truncation,
            trust_region=cfg.acer_trust_region,
            trust_region_delta=cfg.acer_trust_region_delta,
            average_decay=cfg.acer_average_decay,
            ent_coef=cfg.acer_ent_coef,
            max_grad_norm=cfg.max_grad_norm,
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


# -- warm start ---------------------------------------------------------------------------------------------


def clone_summary_behaviour(
    policy: SummaryPolicy,
    expert: ExpertData,
    summary: SummaryActions,
    cfg: TrainConfig,
    gen: torch.Generator,
    tb: RunLogger,
) -> dict[str, float]:
    """Cross-entropy on corpus turns labelled with their nearest summary action; a dialogue-level hold-out
    picks the epoch (as vrb.train's multi-label MLE does)."""
    labels = torch.as_tensor(summary.nearest(expert.actions))
    states = torch.as_tensor(expert.states)
    holdout = torch.as_tensor(np.asarray(expert.dialogue_index) % round(1 / MLE_HOLDOUT_FRACTION) == 0)
    train_s, train_y, val_s, val_y = states[~holdout], labels[~holdout], states[holdout], labels[holdout]
    optimizer = torch.optim.RMSprop(policy.parameters(), lr=cfg.mle_lr, weight_decay=cfg.mle_weight_decay)
    best_loss, best_state, result = float("inf"), None, {}
    for epoch in range(cfg.mle_epochs):
        for idx in shuffled_indices(len(train_s), gen, "cpu").split(cfg.mle_batch_size):
            loss = F.cross_entropy(policy(train_s[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            logits = policy(val_s)
            record = {
                "val_loss": F.cross_entropy(logits, val_y).item(),
                "val_accuracy": (logits.argmax(-1) == val_y).float().mean().item(),
            }
        tb.scalars("mle", record, epoch)
        if record["val_loss"] < best_loss:
            best_loss, best_state, result = record["val_loss"], copy.deepcopy(policy.state_dict()), record
    policy.load_state_dict(best_state)
    logger.info(
        "summary-action MLE: held-out loss %.3f, accuracy %.3f", result["val_loss"], result["val_accuracy"]
    )
    return result | {"summary_coverage": summary.coverage}


# -- the run ------------------------------------------------------------------------------------------------


def agent_from_checkpoint(checkpoint: Checkpoint) -> NeuralAgent:
    """The greedy summary-action policy of an ACER checkpoint (what ``vrb.evaluate --checkpoint`` runs)."""
    state = checkpoint.state["policy"]
    policy = SummaryPolicy(state["vectors"], hidden_sizes=checkpoint.train_config().policy_hidden)
    policy.load_state_dict(state)
    return NeuralAgent(policy)


def train(cfg: TrainConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    torch.set_num_threads(cfg.torch_threads)
    torch.set_flush_denormal(cfg.flush_denormal)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = mw_data.load(cfg.data_dir or None)
    checksums = mw_data.verify(data.root)
    expert = load_expert(data, data.training_split())
    summary = SummaryActions.from_corpus(expert.actions, cfg.acer_num_actions)
    policy = SummaryPolicy(summary.vectors, STATE_DIM, cfg.policy_hidden)
    q_net = mlp([STATE_DIM, *cfg.value_hidden, len(summary)])
    acer = ACER.from_config(policy, q_net, cfg)
    replay = ReplayMemory(cfg.acer_replay_size // cfg.steps_per_epoch, gen)
    eval_env = DialogueEnv(simulator=cfg.simulator, data_dir=cfg.data_dir or None, user_noise=cfg.user_noise)

    start_epoch, best = 0, {"success": -1.0}
    record: dict[str, Any] = {"training_split": expert.split, "summary_actions": len(summary)}
    if resume:
        checkpoint = resume_checkpoint(cfg, out)
        policy.load_state_dict(checkpoint.state["policy"])
        q_net.load_state_dict(checkpoint.state["q"])
        acer.load_state_dict(checkpoint.state["acer"])
        restore_rng_states({"torch": gen}, checkpoint.rng_states)
        start_epoch, best, record = checkpoint.epoch + 1, checkpoint.state["best"], checkpoint.state["record"]
        logger.info("the replay memory starts empty after a resume")
    tb = RunLogger(out, purge_step=start_epoch + 1 if resume else None)

    def learner_state() -> dict[str, Any]:
        return {
            "agent_kind": "acer",
            "policy": policy.state_dict(),
            "q": q_net.state_dict(),
            "acer": acer.state_dict(),
        }

    run = RunTracker(
        cfg,
        out,
        tb,
        eval_env,
        agent=NeuralAgent(policy),
        learner_state=learner_state,
        rngs={"torch": gen},
        checksums=checksums,
        best=best,
        record=record,
    )
    if not resume:
        start_run_folder(cfg, out)
        record["mle"] = clone_summary_behaviour(policy, expert, summary, cfg, gen, tb)
        acer.average_policy.load_state_dict(policy.state_dict())
        run.start()

    vec_env = make_vector_env(
        cfg.simulator,
        cfg.num_envs,
        reward_mode="evaluator",
        data_dir=cfg.data_dir or None,
        user_noise=cfg.user_noise,
    )
    buffer = RolloutBuffer(cfg.steps_per_env, cfg.num_envs, STATE_DIM, ACTION_DIM)
    for epoch in run.epochs(start_epoch):
        started = time.perf_counter()
        episodes = collect(vec_env, policy.act, buffer, epoch_seeds(cfg.seed, epoch, cfg.num_envs), gen)
        sampled = time.perf_counter()
        segment = Segment.from_buffer(buffer, summary, policy)
        tb.scalars("acer", acer.update(segment), epoch + 1)
        replay.add(segment)
        replayed = [acer.update(replay.sample()) for _ in range(cfg.acer_replay_ratio)]
        tb.scalars(
            "acer_replay", {k: float(np.mean([s[k] for s in replayed])) for k in replayed[0]}, epoch + 1
        )
        tb.scalars("rollout", episodes.summary(), epoch + 1)
        run.end_epoch(epoch, started, sampled)
    vec_env.close()
    return run.finish()
