"""GP-MBCM (Gasic et al. 2015): GP-SARSA Q-functions per domain, combined by a Bayesian committee machine.

Summary actions: the ``gp_num_actions`` most frequent act combinations of the corpus
(``baselines.common.SummaryActions``); summary action k is the 209-act vector ``vectors[k]``, lexicalised by the
environment like any neural policy's action. The default 30 (35% of the corpus turns exactly) range from
{general-bye} and {Booking-Book-Ref-1, general-reqmore} to {Taxi-Inform-Car-1, Taxi-Inform-Phone-1}. One more
summary action (the last index) is state-dependent, like Gasic et al.'s heuristic summary actions: "answer the
requests" sends Domain-Inform-Slot-1 for every Domain-Request-Slot of the user's last turn (where the system
vocabulary has that act). The fixed combinations alone cannot answer most requests: without it the default run
stayed below 10% validation success, with it it passes 70%.

Kernel on (belief state, summary action): k((b, a), (b', a')) = s2 exp(-|b - b'|^2 / (2 l^2)) * delta(a, a') on
the 340-dim 0/1 state (|b - b'|^2 is the Hamming distance), s2 = ``gp_signal_var``, l = ``gp_length_scale``;
the delta kernel makes it one independent GP over b per summary action, which is how it is stored.

GP-SARSA with Engel et al.'s Monte-Carlo noise model (covariance s_n^2 H H^T for an episode's band matrix H of
(1, -gamma)): H is invertible for a complete dialogue, so the posterior is exactly GP regression of the
discounted returns-to-go G_t on (b_t, a_t) with i.i.d. noise s_n^2 (``tests/test_gp_mbcm.py`` checks this
against the H form). Sparse as in GP-SARSA: a point joins the dictionary D only when approximate linear
dependence fails, delta = k(x, x) - k_D(x)^T K_D^{-1} k_D(x) > ``gp_ald_threshold`` * s2 (and D holds fewer
than ``gp_max_dictionary`` points); every point is represented by a = K_D^{-1} k_D(x), and only S = A^T A and
g = A^T G are kept. Posterior at x with k = k_D(x):

    mean = k^T (S K_D + s_n^2 I)^{-1} g,    variance = k(x, x) - k^T (S K_D + s_n^2 I)^{-1} S k.

Committee: one member per domain of the user-act vocabulary plus ``general``; a turn trains the member of the
domain the user is talking about (the domain of the most user acts in the state, carried over when the user
names none). Every member estimates Q(b, a) everywhere; the BCM (Tresp 2000) combines M estimates with prior
variance k(x, x): var^-1 = sum_i var_i^-1 - (M - 1) / k(x, x), mean = var * sum_i mean_i / var_i. The GPs model
Q - m0 with a constant prior mean m0 = ``gp_prior_mean`` (about the return of a failed dialogue), so that an
untried summary action looks poor rather than best. Acting: Thompson sampling while learning, argmax of the
mean for evaluation. Learning is online per epoch: sample ``steps_per_epoch`` steps (the env's reward
``env_reward``), add the completed dialogues (one still running has no return yet and is dropped), recompute
the posteriors. No warm start: Gasic et al. learn from scratch.

Budget, as in GP-SARSA: only the ALD dictionaries grow, to c = ``gp_max_dictionary`` points per GP, and only S
and g are kept of the data: a GP holds O(c d + c^2) numbers however much it has seen; an ``add`` costs O(c d +
c^2), a refresh O(c^3), Q at a state O(nnz P + sum m^2) for P points (each GP padded to a power of two, not to
the widest). Every product and solve runs on torch's ``torch_threads`` (numpy's BLAS would take every core).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from baselines.common import SummaryActions, request_answers
from envs.dialogue_env import DialogueEnv
from envs.multiwoz.vector import STATE_DIM, USER_ACT_DIM, USER_OFFSET
from vrb.algorithms import Algorithm
from vrb.checkpoint import Checkpoint
from vrb.config import AlgoOptions, TrainConfig, integer, number, param
from vrb.loop import RunContext
from vrb.policy import draw_device
from vrb.rollout import RolloutBuffer
from vrb.sampling import EpochSampler

GENERAL = "general"


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` by torch, on the run's ``torch_threads`` (numpy's BLAS would take every core)."""
    dtype = np.result_type(a, b)
    return (torch.from_numpy(np.asarray(a, dtype)) @ torch.from_numpy(np.asarray(b, dtype))).numpy()


def state_kernel(a: np.ndarray, b: np.ndarray, length_scale: float, signal_var: float) -> np.ndarray:
    """s2 exp(-|a_i - b_j|^2 / (2 l^2)) between the rows of ``a`` [n, d] and ``b`` [m, d]."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * matmul(a, b.T)
    return signal_var * np.exp(-np.maximum(squared, 0.0) / (2.0 * length_scale**2))


def bcm_combine(means: np.ndarray, variances: np.ndarray, prior_var: float) -> tuple[np.ndarray, np.ndarray]:
    """Bayesian committee machine over the leading axis (members): combined mean and variance."""
    variances = np.clip(variances, 1e-9 * prior_var, prior_var)
    precision = (1.0 / variances).sum(0) - (means.shape[0] - 1) / prior_var
    combined_var = 1.0 / precision
    return combined_var * (means / variances).sum(0), combined_var


def discounted_returns(rewards: np.ndarray, done: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Returns-to-go G_t over time-major [T, N] steps, and which steps belong to a dialogue that ended in them
    (the others have no return yet)."""
    returns = np.zeros_like(rewards, dtype=np.float64)
    complete = np.zeros(rewards.shape, dtype=bool)
    running = np.zeros(rewards.shape[1])
    ended = np.zeros(rewards.shape[1], dtype=bool)
    for t in reversed(range(rewards.shape[0])):
        ended |= done[t]
        running = np.where(done[t], 0.0, running) * gamma + rewards[t]
        returns[t], complete[t] = running, ended
    return returns, complete


@dataclass(frozen=True)
class GPOptions(AlgoOptions):
    """``gp_mbcm``: its own fields (the run's shared fields are in ``vrb.config.TrainConfig``)."""

    gp_num_actions: int = param(30, integer(1), "summary actions: the most frequent corpus act combinations")
    gp_length_scale: float = param(3.0, number(strict=True), "l of the kernel exp(-hamming(b, b') / (2 l^2))")
    gp_prior_mean: float = param(
        -20.0, number(-math.inf), "prior mean of Q: about the return of a failed dialogue"
    )
    gp_signal_var: float = param(100.0, number(strict=True), "prior variance of Q")
    gp_noise_var: float = param(100.0, number(strict=True), "sigma^2 of GP-SARSA's noise model")
    gp_ald_threshold: float = param(0.1, number(0, 1), "approximate linear dependence, relative to the prior")
    gp_max_dictionary: int = param(100, integer(1), "points per committee member and summary action")


class SparseGP:
    """GP regression of returns on states for one (member, summary action), with an ALD-sparse dictionary."""

    def __init__(
        self,
        state_dim: int,
        *,
        length_scale: float,
        signal_var: float,
        noise_var: float,
        ald_threshold: float,
        max_dictionary: int,
    ):
        self.length_scale, self.signal_var, self.noise_var = length_scale, signal_var, noise_var
        self.ald_threshold, self.max_dictionary = ald_threshold, max_dictionary
        self.dictionary = np.zeros((0, state_dim))
        self.kernel_inverse = np.zeros((0, 0))
        self.projection_gram = np.zeros((0, 0))  # S = A^T A
        self.projected_returns = np.zeros(0)  # g = A^T G
        self.alpha = np.zeros(0)
        self.covariance_factor = np.zeros((0, 0))  # C = (S K + s_n^2 I)^{-1} S
        self.stale = False  # data were added since the last refresh

    def __len__(self) -> int:
        return self.dictionary.shape[0]

    def kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return state_kernel(a, b, self.length_scale, self.signal_var)

    def add(self, state: np.ndarray, ret: float) -> None:
        """One observed (state, return): grow the dictionary if ALD fails, then update S and g."""
        k = self.kernel(self.dictionary, state[None])[:, 0]
        coefficients = matmul(self.kernel_inverse, k)
        residual = self.signal_var - float(k @ coefficients)  # a dot product of <= c numbers: one thread
        if len(self) < self.max_dictionary and residual > self.ald_threshold * self.signal_var:
            m = len(self)
            inverse = np.empty((m + 1, m + 1))
            inverse[:m, :m] = self.kernel_inverse + np.outer(coefficients, coefficients) / residual
            inverse[:m, m] = inverse[m, :m] = -coefficients / residual
            inverse[m, m] = 1.0 / residual
            self.kernel_inverse = inverse
            self.dictionary = np.vstack([self.dictionary, state])
            self.projection_gram = np.pad(self.projection_gram, ((0, 1), (0, 1)))
            self.projected_returns = np.pad(self.projected_returns, (0, 1))
            coefficients = np.zeros(m + 1)
            coefficients[m] = 1.0
        self.projection_gram += np.outer(coefficients, coefficients)
        self.projected_returns += coefficients * ret
        self.stale = True

    def refresh(self) -> None:
        """Recompute alpha and C from S and g (after a batch of ``add``)."""
        if not self.stale:
            return
        self.stale = False
        system = matmul(self.projection_gram, self.kernel(self.dictionary, self.dictionary))
        system += self.noise_var * np.eye(len(self))
        targets = np.column_stack([self.projected_returns, self.projection_gram])
        solved = torch.linalg.solve(torch.from_numpy(system), torch.from_numpy(targets)).numpy()
        self.alpha, self.covariance_factor = solved[:, 0], solved[:, 1:]

    def predict(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance at each row of ``states``."""
        if not len(self):
            return np.zeros(len(states)), np.full(len(states), self.signal_var)
        k = self.kernel(states, self.dictionary)
        variance = self.signal_var - np.einsum("bi,ij,bj->b", k, self.covariance_factor, k)
        return matmul(k, self.alpha), variance

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "dictionary": torch.as_tensor(self.dictionary),
            "kernel_inverse": torch.as_tensor(self.kernel_inverse),
            "projection_gram": torch.as_tensor(self.projection_gram),
            "projected_returns": torch.as_tensor(self.projected_returns),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in state.items():
            setattr(self, name, value.numpy().astype(np.float64))
        self.stale = True
        self.refresh()


def padded_width(size: int, cap: int) -> int:
    """A GP of ``size`` points is padded to the next power of two, at most ``cap``: within 4x of its m^2."""
    return min(1 << (size - 1).bit_length(), max(cap, size))


class Committee:
    """One SparseGP per (member domain, summary action); Q(b, .) is their BCM combination over members."""

    def __init__(
        self, members: tuple[str, ...], summary: SummaryActions, answers: np.ndarray, cfg: GPOptions
    ):
        self.members, self.vectors, self.answers = members, summary.vectors, answers
        self.num_actions = len(summary) + 1  # the fixed combinations, then "answer the requests"
        self.prior_mean, self.signal_var = cfg.gp_prior_mean, cfg.gp_signal_var
        gp = functools.partial(
            SparseGP,
            STATE_DIM,
            length_scale=cfg.gp_length_scale,
            signal_var=cfg.gp_signal_var,
            noise_var=cfg.gp_noise_var,
            ald_threshold=cfg.gp_ald_threshold,
            max_dictionary=cfg.gp_max_dictionary,
        )
        self.gps = [[gp() for _ in range(self.num_actions)] for _ in members]
        self.length_scale, self.max_dictionary = cfg.gp_length_scale, cfg.gp_max_dictionary
        self.refresh()

    def q_values(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BCM mean and variance of Q(b, a), shape [B, K]: one kernel evaluation against every dictionary,
        then the GPs' means and variances a stack (``refresh``'s) at a time."""
        states = np.asarray(states, dtype=np.float32)
        means = np.zeros((len(self.members), len(states), self.num_actions))
        variances = np.full_like(means, self.signal_var)
        if self.stacks:
            # states are sparse 0/1 vectors: a dot product is a sum of the dictionary's columns they select
            dots = np.stack([self.points_by_feature[np.flatnonzero(state)].sum(0) for state in states])
            squared = (states * states).sum(1)[:, None] + self.point_norms - 2.0 * dots
            k = self.signal_var * np.exp(-np.maximum(squared, 0.0) / (2.0 * self.length_scale**2))
            k = np.pad(k, ((0, 0), (0, 1)))  # the extra zero column that pads read
        for slots, gather, alphas, covariances in self.stacks:
            padded = k[:, gather].transpose(1, 0, 2)  # [G, B, w]
            members, actions = slots.T
            means[members, :, actions] = (padded * alphas[:, None, :]).sum(-1)
            variances[members, :, actions] -= (matmul(padded, covariances) * padded).sum(-1)
        mean, variance = bcm_combine(means, variances, self.signal_var)
        return mean + self.prior_mean, variance

    def action_vectors(self, states: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """The 209-act vector of each chosen summary action in its state."""
        vectors = self.vectors[np.minimum(chosen, len(self.vectors) - 1)].copy()
        for row in np.flatnonzero(chosen == len(self.vectors)):
            answers = self.answers[np.flatnonzero(states[row, USER_OFFSET : USER_OFFSET + USER_ACT_DIM])]
            vectors[row] = 0.0
            vectors[row, answers[answers >= 0]] = 1.0
        return vectors

    def add(self, member: int, action: int, state: np.ndarray, ret: float) -> None:
        self.gps[member][action].add(np.asarray(state, dtype=np.float64), ret - self.prior_mean)

    def refresh(self) -> None:
        """Recompute every posterior and ``q_values``' stacks: the non-empty GPs by ``padded_width``, each stack
        their (member, action) slots [G, 2], their points' columns [G, w] (pads: the zero one), alpha, C."""
        filled = [(m, a, gp) for m, gps in enumerate(self.gps) for a, gp in enumerate(gps) if len(gp)]
        for _, _, gp in filled:
            gp.refresh()
        self.all_points = np.vstack([np.zeros((0, STATE_DIM))] + [gp.dictionary for *_, gp in filled]).astype(
            np.float32
        )
        self.point_norms = (self.all_points * self.all_points).sum(1)
        self.points_by_feature = np.ascontiguousarray(self.all_points.T)
        starts = np.cumsum([0] + [len(gp) for _, _, gp in filled])
        widths = np.array([padded_width(len(gp), self.max_dictionary) for _, _, gp in filled], dtype=np.int64)
        self.stacks: list[tuple[np.ndarray, ...]] = []
        for width in np.unique(widths):
            chosen = np.flatnonzero(widths == width)
            gather = np.full((len(chosen), width), len(self.all_points))  # the extra zero column
            alphas = np.zeros((len(chosen), width), dtype=np.float32)
            covariances = np.zeros((len(chosen), width, width), dtype=np.float32)
            for row, g in enumerate(chosen):
                gp, m = filled[g][2], len(filled[g][2])
                gather[row, :m] = np.arange(starts[g], starts[g] + m)
                alphas[row, :m], covariances[row, :m, :m] = gp.alpha, gp.covariance_factor
            slots = np.array([filled[g][:2] for g in chosen], dtype=np.int64)
            self.stacks.append((slots, gather, alphas, covariances))

    def dictionary_size(self) -> int:
        return sum(len(gp) for member in self.gps for gp in member)

    def state_dict(self) -> dict[str, Any]:
        return {
            "members": list(self.members),
            "vectors": torch.as_tensor(self.vectors),
            "answers": torch.as_tensor(self.answers),
            "gps": [[gp.state_dict() for gp in member] for member in self.gps],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shape, own = (list(state["members"]), len(state["gps"][0])), (list(self.members), self.num_actions)
        if shape != own:
            raise ValueError(f"committee of {shape[0]} x {shape[1]} actions does not fit {own[0]} x {own[1]}")
        self.vectors, self.answers = state["vectors"].numpy(), state["answers"].numpy()
        for member, saved in zip(self.gps, state["gps"], strict=True):
            for gp, gp_state in zip(member, saved, strict=True):
                gp.load_state_dict(gp_state)
        self.refresh()


class ThompsonActor:
    """Drives vrb.sampling.collect: each summary action's Q is drawn from its BCM posterior, the best is sent.
    The chosen summary-action indices are kept in ``taken`` (one row per call), since a state-dependent
    action's 209-act vector does not identify it."""

    def __init__(self, committee: Committee):
        self.committee = committee
        self.taken: list[np.ndarray] = []

    def act(
        self, states: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device, states = states.device, states.cpu().numpy()  # the committee computes on the CPU
        mean, var = self.committee.q_values(states)
        where = draw_device(generator, "cpu")
        noise = torch.randn(mean.shape, generator=generator, dtype=torch.float64, device=where).cpu().numpy()
        chosen = (mean + np.sqrt(var) * noise).argmax(1)
        self.taken.append(chosen)
        vectors = torch.as_tensor(self.committee.action_vectors(states, chosen), device=device)
        return vectors, torch.zeros(len(chosen), device=device)


class GreedyAgent:
    """The committee's greedy policy (argmax of the BCM mean) as a ``vrb.acting.Agent``."""

    def __init__(self, committee: Committee):
        self.committee = committee

    def reset(self) -> None:  # no memory between dialogues
        return None

    def act(self, env: DialogueEnv, observation: np.ndarray) -> np.ndarray:
        mean, _ = self.committee.q_values(observation[None])
        return self.committee.action_vectors(observation[None], mean.argmax(1))[0].astype(np.int8)


def committee_members(user_act_vocab: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Member names (``general`` first, then the vocabulary's domains) and each user act's member index."""
    domains = [act.split("-")[0].lower() for act in user_act_vocab]
    members = (GENERAL, *sorted(set(domains) - {GENERAL}))
    return members, np.array([members.index(d) for d in domains])


def turn_members(states: np.ndarray, done: np.ndarray, act_member: np.ndarray, n_members: int) -> np.ndarray:
    """Member index of every time-major step [T, N]: the domain with the most user acts in the state, else the
    previous turn's of the same dialogue, else ``general``."""
    user_acts = states[..., USER_OFFSET : USER_OFFSET + USER_ACT_DIM]
    counts = np.zeros((*states.shape[:2], n_members))
    for member in range(1, n_members):  # member 0 (general) never wins over a named domain
        counts[..., member] = user_acts[..., act_member == member].sum(-1)
    named, strongest = counts.max(-1) > 0, counts.argmax(-1)
    members = np.zeros(states.shape[:2], dtype=np.int64)
    current = np.zeros(states.shape[1], dtype=np.int64)
    for t in range(states.shape[0]):
        current = np.where(named[t], strongest[t], current)
        members[t] = current
        current = np.where(done[t], 0, current)
    return members


def learn_from(
    committee: Committee, buffer: RolloutBuffer, actions: np.ndarray, act_member: np.ndarray, gamma: float
) -> dict[str, float]:
    """Add the buffer's completed dialogues (summary actions ``actions`` [T, N]) to the committee and refresh
    the posteriors."""
    done = (buffer.terminated + buffer.truncated).cpu().numpy() > 0
    states = buffer.states.cpu().numpy()
    returns, complete = discounted_returns(buffer.rewards.cpu().numpy(), done, gamma)
    members = turn_members(states, done, act_member, len(committee.members))
    for t, env in zip(*np.nonzero(complete), strict=True):
        committee.add(members[t, env], actions[t, env], states[t, env], returns[t, env])
    committee.refresh()
    return {
        "transitions_used": float(complete.sum()),
        "return_mean": float(returns[complete].mean()),
        "dictionary_size": float(committee.dictionary_size()),
    }


def load_agent(
    checkpoint: Checkpoint, cfg: TrainConfig, decoder: str | None, sample_seed: int
) -> GreedyAgent:
    """The greedy committee policy of a GP-MBCM checkpoint (what ``vrb.evaluate --checkpoint`` runs)."""
    state = checkpoint.state["committee"]
    summary = SummaryActions(state["vectors"].numpy(), coverage=float("nan"))
    committee = Committee(tuple(state["members"]), summary, state["answers"].numpy(), cfg.options)
    committee.load_state_dict(state)
    return GreedyAgent(committee)


class GPLearner:
    """Per epoch: Thompson-sampled dialogues, their returns added to the committee, posteriors recomputed."""

    online = True

    def __init__(self, ctx: RunContext):
        cfg, options, data = ctx.cfg, ctx.cfg.options, ctx.data
        self.ctx = ctx
        self.summary = SummaryActions.from_corpus(ctx.expert.actions, options.gp_num_actions)
        self.members, self.act_member = committee_members(list(data.usr_act_vocab))
        answers = request_answers(list(data.usr_act_vocab), list(data.sys_act_vocab))
        self.committee = Committee(self.members, self.summary, answers, options)
        self.agent = GreedyAgent(self.committee)
        self.actor = ThompsonActor(self.committee)
        self.sampler = EpochSampler(cfg)
        self.buffer = self.sampler.buffer

    def start(self) -> dict[str, Any]:
        """No warm start: Gasic et al. learn from scratch."""
        return {
            "summary_actions": len(self.summary),
            "summary_coverage": self.summary.coverage,
            "members": list(self.members),
        }

    def learn_epoch(self, epoch: int) -> dict[str, dict[str, float]]:
        cfg = self.ctx.cfg
        episodes, perf = self.sampler.sample(self.actor.act, epoch, self.ctx.generator)
        taken, self.actor.taken = np.stack(self.actor.taken), []
        return {
            "perf": perf,
            "gp": learn_from(self.committee, self.buffer, taken, self.act_member, cfg.gamma),
            "rollout": episodes.summary(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"committee": self.committee.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.committee.load_state_dict(state["committee"])

    def close(self) -> None:
        self.sampler.close()


ALGORITHM = Algorithm(
    "gp_mbcm",
    "GP-SARSA per domain combined by a Bayesian committee machine (Gasic et al. 2015)",
    GPOptions,
    GPLearner,
    load_agent,
    decodes=False,
    devices=("cpu",),  # its committee computes on the CPU: a GPU would hold only the rollout buffer
)
