"""ALDM (Liu & Lane 2018): a dialogue policy trained against a discriminator of whole dialogues.

``python -m vrb.train --algo aldm [--simulator agenda]``

Per epoch, as in the paper's algorithm box:
1. sample dialogues with the current policy (the shared vector-env sampler; fresh dialogues every epoch);
2. update the session discriminator D on the finished policy dialogues (label 0) against as many corpus
   dialogues (label 1), with binary cross-entropy;
3. reward every finished policy dialogue with D's logit ``log D(d) - log(1 - D(d))``, placed at its last step,
   and update the policy by policy gradient.

Choices, and why:
- The policy is the shared ``MultiLabelPolicy`` warm-started by MLE, and step 3 uses the shared PPO update
  (GAE spreads the session reward back over the turns with gamma, lambda) instead of the paper's REINFORCE:
  the same optimiser as the PPO/GDPL/VRB rows, so the rows differ only in their reward. The learner is
  ``vrb.learners.ppo.PPOLearner`` with a ``RewardLearner`` plugged in (``SessionReward``): MLE, sampling,
  evaluation, checkpoints and TensorBoard are the shared ones.
- The reward is the session's logit rather than the paper's probability D(d): both rank dialogues alike, but
  the probability saturates once D is confident and then no longer tells better dialogues from worse ones.
  Dialogues still running when the epoch's buffer fills get no reward; PPO bootstraps them from V(s').
- D (``SessionDiscriminator``): a turn is what the user said and what the system answered — the user-act
  part of the state (its first 78 entries) and the 209-act action; it goes through a linear layer with ReLU,
  a BiLSTM reads the turns, and max pooling over them feeds a logistic unit. The rest of the state is left
  out on purpose: corpus belief states are annotations (a slot holding "not mentioned" counts as
  filled) while simulated ones come from the rule tracker, so with the whole state D separates corpus from
  simulation at 100% accuracy from the first epochs, whatever the policy does, and its reward carries no
  signal about the actions (measured: validation success fell from 0.33 to 0.21 in 47 epochs).
- Corpus sessions are the expert transitions of each dialogue (``vrb.expert``) without its final system turn:
  that turn answers the user's goodbye, where the simulated dialogue has already ended and the policy is never
  asked to act, so only corpus sessions would have it.
- Before the first reward D is trained for ``aldm_pretrain_epochs`` extra passes against the MLE policy's
  dialogues, so that the first policy updates do not follow an untrained discriminator.
TensorBoard panel ``discriminator/``: loss, accuracy, mean D on corpus and policy sessions, mean reward.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

from envs.multiwoz.vector import ACTION_DIM, USER_ACT_DIM
from vrb.algorithms import Algorithm
from vrb.config import TrainConfig, integer, number, param
from vrb.expert import ExpertData
from vrb.learners import PPOOptions
from vrb.learners.ppo import PPOLearner
from vrb.loop import RunContext
from vrb.rollout import RolloutBuffer, shuffled_indices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ALDMOptions(PPOOptions):
    """``aldm``: PPO's fields and the session discriminator's."""

    aldm_turn_dim: int = param(64, integer(1), "per-turn embedding of (user acts, system action)")
    aldm_lstm_hidden: int = param(64, integer(1), "the BiLSTM's hidden units per direction")
    aldm_lr: float = param(1e-3, number(strict=True), "the discriminator's Adam learning rate")
    aldm_batch_sessions: int = param(
        32, integer(1), "policy sessions per step, paired with as many expert ones"
    )
    aldm_disc_epochs: int = param(1, integer(1), "passes over each epoch's finished policy sessions")
    aldm_pretrain_epochs: int = param(
        20, integer(0), "extra passes before the first reward (the cloned policy's)"
    )


Session = tuple[int, int, int]  # (env, first step, one past the last step) of a finished dialogue in a buffer
USER_ACTS = slice(0, USER_ACT_DIM)  # the state entries D sees: the user acts of the turn


class SessionDiscriminator(nn.Module):
    """Logit that a whole dialogue, given as its turns' feature vectors (``turn_features``), is from the corpus."""

    def __init__(self, input_dim: int, turn_dim: int, lstm_hidden: int):
        super().__init__()
        self.turn = nn.Sequential(nn.Linear(input_dim, turn_dim), nn.ReLU())
        self.lstm = nn.LSTM(turn_dim, lstm_hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * lstm_hidden, 1)

    def forward(self, turns: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``turns`` [B, L, input_dim] padded after each session's ``lengths`` [B] turns -> logits [B]."""
        packed = pack_padded_sequence(self.turn(turns), lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, padding_value=float("-inf"))
        return self.out(outputs.max(dim=1).values).squeeze(-1)


def turn_features(
    states: torch.Tensor, actions: torch.Tensor, state_features: slice = USER_ACTS
) -> torch.Tensor:
    """What D reads of each turn: the chosen state entries and the action, concatenated."""
    return torch.cat([states[..., state_features], actions], dim=-1)


def pad_sessions(sessions: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sessions of shape [L_i, D] -> (padded [B, max L_i, D], lengths [B])."""
    lengths = torch.tensor([len(s) for s in sessions], dtype=torch.long)
    return pad_sequence(list(sessions), batch_first=True), lengths


def finished_sessions(terminated: torch.Tensor, truncated: torch.Tensor) -> list[Session]:
    """The dialogues of a [T, num_envs] buffer that end inside it (every buffer starts fresh dialogues)."""
    done = ((terminated + truncated) > 0).cpu().numpy()
    sessions = []
    for env in range(done.shape[1]):
        start = 0
        for last in np.flatnonzero(done[:, env]):
            sessions.append((env, start, int(last) + 1))
            start = int(last) + 1
    return sessions


def session_rewards(
    shape: tuple[int, int], sessions: Sequence[Session], scores: torch.Tensor
) -> torch.Tensor:
    """Rewards [T, num_envs]: each session's score at its last step, zero everywhere else."""
    rewards = torch.zeros(shape, dtype=scores.dtype, device=scores.device)
    for (env, _, stop), score in zip(sessions, scores, strict=True):
        rewards[stop - 1, env] = score
    return rewards


def expert_sessions(expert: ExpertData, state_features: slice = USER_ACTS) -> list[torch.Tensor]:
    """Per corpus dialogue, its turns' features in order, without the turn that answers the user's goodbye."""
    keep = ~expert.terminated
    turns = turn_features(torch.as_tensor(expert.states), torch.as_tensor(expert.actions), state_features)
    turns = turns.numpy()[keep]
    dialogues = expert.dialogue_index[keep]
    order = np.argsort(dialogues, kind="stable")  # transitions are stored dialogue by dialogue, in turn order
    boundaries = np.flatnonzero(np.diff(dialogues[order])) + 1
    return [torch.as_tensor(chunk) for chunk in np.split(turns[order], boundaries) if len(chunk)]


class SessionReward:
    """ALDM's learned reward as a ``vrb.learners.ppo.RewardLearner``: trains D, then scores each finished session."""

    panel = "discriminator"

    def __init__(
        self,
        discriminator: SessionDiscriminator,
        expert: Sequence[torch.Tensor],
        *,
        lr: float,
        batch_sessions: int,
        disc_epochs: int,
        pretrain_epochs: int,
        generator: torch.Generator,
        state_features: slice = USER_ACTS,
    ):
        if not expert:
            raise ValueError("no expert sessions: build them from the corpus with expert_sessions() first")
        self.discriminator, self.expert = discriminator, list(expert)
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr)
        self.batch_sessions, self.disc_epochs, self.pretrain_epochs = (
            batch_sessions,
            disc_epochs,
            pretrain_epochs,
        )
        self.generator, self.state_features = generator, state_features
        self.updates = 0
        self._expert_order = torch.empty(0, dtype=torch.long)
        self._expert_cursor = 0

    @classmethod
    def from_config(cls, cfg: TrainConfig, expert: ExpertData) -> SessionReward:
        options = cfg.options
        discriminator = SessionDiscriminator(
            USER_ACT_DIM + ACTION_DIM, options.aldm_turn_dim, options.aldm_lstm_hidden
        )
        sessions = [s.to(cfg.device) for s in expert_sessions(expert)]
        return cls(
            discriminator.to(cfg.device),
            sessions,
            lr=options.aldm_lr,
            batch_sessions=options.aldm_batch_sessions,
            disc_epochs=options.aldm_disc_epochs,
            pretrain_epochs=options.aldm_pretrain_epochs,
            generator=torch.Generator().manual_seed(cfg.seed),
        )

    def relabel(self, buffer: RolloutBuffer) -> dict[str, float]:
        sessions = finished_sessions(buffer.terminated, buffer.truncated)
        if not sessions:
            buffer.set_rewards(torch.zeros_like(buffer.rewards))
            return {"sessions": 0.0}
        turns = [
            turn_features(buffer.states[a:b, env], buffer.actions[a:b, env], self.state_features)
            for env, a, b in sessions
        ]
        passes = self.disc_epochs + (self.pretrain_epochs if self.updates == 0 else 0)
        stats = self.update(turns, passes)
        scores = self.score(turns)
        buffer.set_rewards(session_rewards(tuple(buffer.rewards.shape), sessions, scores))
        return stats | {
            "sessions": float(len(sessions)),
            "reward_mean": scores.mean().item(),
            "session_turns": float(np.mean([b - a for _, a, b in sessions])),
        }

    def update(self, policy: Sequence[torch.Tensor], passes: int) -> dict[str, float]:
        """``passes`` shuffled passes over the policy sessions, each batch against as many expert sessions."""
        self.discriminator.train()
        totals = dict.fromkeys(("loss", "accuracy", "d_expert", "d_policy"), 0.0)
        steps = 0
        for _ in range(passes):
            for idx in shuffled_indices(len(policy), self.generator, "cpu").split(self.batch_sessions):
                for key, value in self._step(
                    [policy[i] for i in idx.tolist()], self._sample_expert(len(idx))
                ).items():
                    totals[key] += value
                steps += 1
        self.updates += 1
        return {key: value / max(steps, 1) for key, value in totals.items()}

    def _step(self, policy: list[torch.Tensor], expert: list[torch.Tensor]) -> dict[str, float]:
        logits = self.discriminator(*pad_sessions(expert + policy))
        labels = torch.cat([torch.ones(len(expert)), torch.zeros(len(policy))]).to(logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            probs = torch.sigmoid(logits)
            accuracy = ((logits > 0).float() == labels).float().mean()
        return {
            "loss": loss.item(),
            "accuracy": accuracy.item(),
            "d_expert": probs[: len(expert)].mean().item(),
            "d_policy": probs[len(expert) :].mean().item(),
        }

    @torch.no_grad()
    def score(self, sessions: Sequence[torch.Tensor]) -> torch.Tensor:
        """D's logit per session."""
        self.discriminator.eval()
        return self.discriminator(*pad_sessions(sessions))

    def _sample_expert(self, n: int) -> list[torch.Tensor]:
        """Expert sessions without replacement, reshuffled after each full pass."""
        picked: list[int] = []
        while len(picked) < n:
            if self._expert_cursor == len(self._expert_order):
                self._expert_order = shuffled_indices(len(self.expert), self.generator, "cpu")
                self._expert_cursor = 0
            take = min(n - len(picked), len(self._expert_order) - self._expert_cursor)
            picked += self._expert_order[self._expert_cursor : self._expert_cursor + take].tolist()
            self._expert_cursor += take
        return [self.expert[i] for i in picked]

    def state_dict(self) -> dict[str, Any]:
        return {
            "discriminator": self.discriminator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
            "expert_order": self._expert_order,
            "expert_cursor": self._expert_cursor,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
        self._expert_order, self._expert_cursor = state["expert_order"], int(state["expert_cursor"])


def make_learner(ctx: RunContext) -> PPOLearner:
    """The shared PPO learner with the session discriminator's reward. D draws its initial weights first; the
    policy then starts from the same weights as every other learner of this seed."""
    reward = SessionReward.from_config(ctx.cfg, ctx.expert)
    logger.info("ALDM: %d expert sessions for the discriminator", len(reward.expert))
    torch.manual_seed(ctx.cfg.seed)
    return PPOLearner(ctx, reward)


ALGORITHM = Algorithm(
    "aldm",
    "PPO on a BiLSTM discriminator of whole dialogues (Liu & Lane 2018)",
    ALDMOptions,
    make_learner,
    learns_reward=True,
)
