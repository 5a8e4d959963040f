"""The variational hierarchical user simulator (VHUS, Gür et al. 2018) with ConvLab-2's architecture.

A GRU encodes the goal's tokens; another GRU encodes each system turn's tokens; a dialogue-level GRU, started
from the goal encoding, runs over the system turns so that its state before user turn ``t`` has seen the
system turns ``0..t-1`` (turn 0 sees an empty "start" turn). As in ConvLab-2, a Gaussian latent is drawn from
a head on the *previous* dialogue state (the goal encoding at turn 0) and pulled by a KL term (weight 0.01)
towards a second head on the current state; the current state and the latent initialise a GRU decoder of the
user turn's tokens (at most 20) and feed a termination head.

Goal regulariser (``goal_regularizer=True``, off by default; ConvLab-2 leaves it out): our reading of the
paper's "penalise divergence of user responses from the initial user goal", after the semantically
conditioned LSTM it builds on. Each goal slot token carries a "still to be said" weight that starts at 1 and
is multiplied, turn by turn, by a gate computed from the dialogue state and that token's encoding; the
weighted goal encoding conditions the decoder (so it knows what is left to say), and the weight still left
at the dialogue's last turn is penalised (L1, per goal token), so that a dialogue ends having expressed
its goal.

Training runs one dialogue per batch row and all its turns at once (the dialogue GRU is causal), instead of
ConvLab-2's copies of every dialogue prefix. The environment's turn-by-turn inference is
``envs.vhus.inference.FastVHUS`` (the same arithmetic in numpy, keeping the dialogue state between turns).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from envs.vhus.corpus import EOS, PAD, SOS


@dataclass(frozen=True)
class VHUSConfig:
    goal_vocab: int
    sys_vocab: int
    usr_vocab: int
    embed_dim: int = 150
    hidden_dim: int = 200
    max_user_tokens: int = 20
    kl_weight: float = 0.01
    goal_regularizer: bool = False
    goal_reg_weight: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Batch:
    """Padded dialogues: ``B`` dialogues, ``T`` turns; lengths are at least 1 (an empty turn is one ``<PAD>``)."""

    goals: torch.Tensor  # [B, G]
    goal_lengths: torch.Tensor  # [B]
    goal_slot_mask: torch.Tensor  # [B, G] 1 for slot tokens (what the goal regulariser tracks)
    system: torch.Tensor  # [B, T, P]
    system_lengths: torch.Tensor  # [B, T]
    user: torch.Tensor  # [B, T, R] <SOS> ... <EOS> <PAD>...
    turn_mask: torch.Tensor  # [B, T] bool
    terminated: torch.Tensor  # [B, T] float, 1 at each dialogue's last turn


@dataclass
class Outputs:
    logits: torch.Tensor  # [N, R-1, V] user-token logits for the N real turns, teacher-forced
    terminate: torch.Tensor  # [B, T] termination logits
    latent: tuple[
        torch.Tensor, ...
    ]  # (mu, logvar) of the previous-state head, then of the current-state head
    gates: torch.Tensor | None  # [B, T, G] goal-regulariser gates, None without it


@dataclass
class Losses:
    total: torch.Tensor
    act: torch.Tensor
    terminate: torch.Tensor
    kl: torch.Tensor
    goal: torch.Tensor


def _last_valid(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``outputs[..., length-1, :]`` for [N, L, H] outputs and [N] lengths."""
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, outputs.size(-1))
    return outputs.gather(1, index).squeeze(1)


class SequenceEncoder(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = nn.GRU(embed_dim, hidden_dim, batch_first=True)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(every step's output [N, L, H], the output at each sequence's last token [N, H])."""
        outputs, _ = self.rnn(self.embedding(tokens))
        return outputs, _last_valid(outputs, lengths)


class GaussianHead(nn.Module):
    def __init__(self, hidden_dim: int):
        super().__init__()
        self.mu = nn.Linear(hidden_dim, hidden_dim)
        self.logvar = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(state), self.logvar(state)


def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, summed over the last dimension."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)


class VHUS(nn.Module):
    def __init__(self, config: VHUSConfig):
        super().__init__()
        self.config = config
        hidden = config.hidden_dim
        self.goal_encoder = SequenceEncoder(config.goal_vocab, config.embed_dim, hidden)
        self.sys_encoder = SequenceEncoder(config.sys_vocab, config.embed_dim, hidden)
        self.context_encoder = nn.GRU(hidden, hidden, batch_first=True)
        self.latent_previous = GaussianHead(hidden)  # the latent is drawn from this one
        self.latent_current = GaussianHead(hidden)  # the KL term pulls the drawn latent towards this one
        self.merge = nn.Linear(2 * hidden, hidden)
        self.terminate_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.usr_embedding = nn.Embedding(config.usr_vocab, config.embed_dim)
        self.decoder = nn.GRU(config.embed_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, config.usr_vocab)
        if config.goal_regularizer:
            self.goal_gate = nn.Linear(2 * hidden, 1)
            self.goal_summary = nn.Linear(hidden, hidden)

    # -- shared pieces ----------------------------------------------------------------------------------------

    def _decoder_start(self, context, z, goal_outputs, goal_slot_mask, remaining):
        """Initial decoder state from the dialogue state [..., H], the latent and what the goal has left."""
        start = self.merge(torch.cat([context, z], dim=-1))
        if self.config.goal_regularizer:
            weights = remaining * goal_slot_mask  # [B, T, G] or [1, G]
            norm = goal_slot_mask.sum(-1, keepdim=True).clamp(min=1)
            if weights.dim() == 3:
                summary = torch.einsum("btg,bgh->bth", weights, goal_outputs)
            else:
                summary = weights @ goal_outputs[0]
            start = start + self.goal_summary(summary / norm)
        return start

    def _goal_gates(self, contexts: torch.Tensor, goal_outputs: torch.Tensor) -> torch.Tensor:
        """How much of each goal token is still unsaid after a turn: [B, T, G] in (0, 1)."""
        pairs = torch.cat(
            [
                contexts.unsqueeze(2).expand(-1, -1, goal_outputs.size(1), -1),
                goal_outputs.unsqueeze(1).expand(-1, contexts.size(1), -1, -1),
            ],
            dim=-1,
        )
        return torch.sigmoid(self.goal_gate(pairs).squeeze(-1))

    # -- training ---------------------------------------------------------------------------------------------

    def forward(self, batch: Batch) -> Outputs:
        """Teacher-forced outputs for every real turn of the batch."""
        B, T, P = batch.system.shape
        goal_outputs, goal_state = self.goal_encoder(batch.goals, batch.goal_lengths)
        _, sentences = self.sys_encoder(batch.system.view(B * T, P), batch.system_lengths.view(-1))
        contexts, _ = self.context_encoder(sentences.view(B, T, -1), goal_state.unsqueeze(0).contiguous())
        previous = torch.cat([goal_state.unsqueeze(1), contexts[:, :-1]], dim=1)
        mu_prev, logvar_prev = self.latent_previous(previous)
        mu_cur, logvar_cur = self.latent_current(contexts)
        z = mu_prev + torch.randn_like(mu_prev) * (0.5 * logvar_prev).exp()
        remaining = gates = None
        if self.config.goal_regularizer:
            gates = self._goal_gates(contexts, goal_outputs)
            # what is left *before* each turn is said: ones, then the running product of earlier gates
            remaining = torch.cat([torch.ones_like(gates[:, :1]), gates[:, :-1].cumprod(dim=1)], dim=1)
        start = self._decoder_start(contexts, z, goal_outputs, batch.goal_slot_mask.unsqueeze(1), remaining)
        mask = batch.turn_mask
        inputs = batch.user[mask][:, :-1]  # [N, R-1]
        outputs, _ = self.decoder(self.usr_embedding(inputs), start[mask].unsqueeze(0).contiguous())
        logits = self.out(outputs)
        terminate = self.terminate_head(contexts).squeeze(-1)
        return Outputs(logits, terminate, (mu_prev, logvar_prev, mu_cur, logvar_cur), gates)

    def losses(self, batch: Batch) -> Losses:
        outputs = self(batch)
        logits, terminate = outputs.logits, outputs.terminate
        mu_prev, logvar_prev, mu_cur, logvar_cur = outputs.latent
        mask = batch.turn_mask
        targets = batch.user[mask][:, 1:]
        act = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=PAD)
        terminate_loss = F.binary_cross_entropy_with_logits(terminate[mask], batch.terminated[mask])
        kl = gaussian_kl(mu_prev[mask], logvar_prev[mask], mu_cur[mask], logvar_cur[mask]).mean()
        goal = torch.zeros((), device=logits.device)
        if self.config.goal_regularizer:
            left = outputs.gates.cumprod(dim=1) * batch.goal_slot_mask.unsqueeze(1)  # after each turn
            last = batch.turn_mask.sum(1) - 1
            final = left[torch.arange(left.size(0)), last]  # [B, G]
            goal = (final.sum(-1) / batch.goal_slot_mask.sum(-1).clamp(min=1)).mean()
        total = act + self.config.kl_weight * kl + terminate_loss + self.config.goal_reg_weight * goal
        return Losses(total=total, act=act, terminate=terminate_loss, kl=kl, goal=goal)

    # -- evaluation ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def greedy_batch(self, batch: Batch) -> tuple[list[list[int]], torch.Tensor]:
        """Free-running greedy decoding of every real turn of a batch (latent at its mean): token id lists in
        turn order (dialogue by dialogue), and termination logits [B, T]."""
        B, T, P = batch.system.shape
        goal_outputs, goal_state = self.goal_encoder(batch.goals, batch.goal_lengths)
        _, sentences = self.sys_encoder(batch.system.view(B * T, P), batch.system_lengths.view(-1))
        contexts, _ = self.context_encoder(sentences.view(B, T, -1), goal_state.unsqueeze(0).contiguous())
        previous = torch.cat([goal_state.unsqueeze(1), contexts[:, :-1]], dim=1)
        z, _ = self.latent_previous(previous)
        remaining = None
        if self.config.goal_regularizer:
            gates = self._goal_gates(contexts, goal_outputs)
            remaining = torch.cat([torch.ones_like(gates[:, :1]), gates[:, :-1].cumprod(dim=1)], dim=1)
        start = self._decoder_start(contexts, z, goal_outputs, batch.goal_slot_mask.unsqueeze(1), remaining)
        hidden = start[batch.turn_mask].unsqueeze(0).contiguous()
        rows = hidden.size(1)
        token = torch.full((rows, 1), SOS, dtype=torch.long)
        done = torch.zeros(rows, dtype=torch.bool)
        steps = []
        for step in range(self.config.max_user_tokens):
            output, hidden = self.decoder(self.usr_embedding(token), hidden)
            logits = self.out(output[:, 0])
            if step == 0:
                logits[:, EOS] = float("-inf")
            choice = logits.argmax(-1)
            choice = torch.where(done, torch.full_like(choice, EOS), choice)
            steps.append(choice)
            done |= choice == EOS
            if bool(done.all()):
                break
            token = choice.unsqueeze(1)
        ids = torch.stack(steps, dim=1).tolist()
        decoded = [row[: row.index(EOS)] if EOS in row else row for row in ids]
        return decoded, self.terminate_head(contexts).squeeze(-1)
