"""One dialogue at a time, fast: the trained VHUS's inference path in numpy.

The environment asks for one user turn at a time, with batch size one, where a framework's per-call
overhead dominates; this path precomputes each GRU's input projection per token and runs the same
arithmetic as ``VHUS`` (``tests/test_vhus.py`` checks it against the batched torch decoding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from envs.vhus.corpus import EOS, PAD, SOS
from envs.vhus.model import VHUS


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class GRUWeights:
    """A one-layer GRU with its input already projected (per token, or per call for vector inputs)."""

    w_ih: np.ndarray  # [3H, D]
    b_ih: np.ndarray  # [3H]
    w_hh: np.ndarray  # [3H, H]
    b_hh: np.ndarray  # [3H]

    @classmethod
    def of(cls, rnn: torch.nn.GRU) -> GRUWeights:
        return cls(
            _array(rnn.weight_ih_l0), _array(rnn.bias_ih_l0), _array(rnn.weight_hh_l0), _array(rnn.bias_hh_l0)
        )

    def token_table(self, embedding: torch.nn.Embedding) -> np.ndarray:
        """Input projection of every token: [V, 3H]."""
        return _array(embedding.weight) @ self.w_ih.T + self.b_ih

    def step(self, projected: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """torch.nn.GRU's update (gates in r, z, n order) for an already projected input."""
        size = hidden.shape[-1]
        recurrent = self.w_hh @ hidden + self.b_hh
        reset = _sigmoid(projected[:size] + recurrent[:size])
        update = _sigmoid(projected[size : 2 * size] + recurrent[size : 2 * size])
        new = np.tanh(projected[2 * size :] + reset * recurrent[2 * size :])
        return (1.0 - update) * new + update * hidden


@dataclass
class Session:
    """One dialogue's state between user turns."""

    goal_outputs: np.ndarray  # [G, H]
    goal_slot_mask: np.ndarray  # [G]
    context: np.ndarray  # [H] dialogue state before the coming system turn
    remaining: np.ndarray  # [G] goal still to be said (goal regulariser)


class FastVHUS:
    """``start`` a dialogue, then ``respond`` to each system turn (token ids in, user token ids out)."""

    def __init__(self, model: VHUS):
        model = model.eval()
        self.model = model
        self.config = model.config
        self.sys_rnn = GRUWeights.of(model.sys_encoder.rnn)
        self.sys_table = self.sys_rnn.token_table(model.sys_encoder.embedding)
        self.context_rnn = GRUWeights.of(model.context_encoder)
        self.decoder_rnn = GRUWeights.of(model.decoder)
        self.usr_table = self.decoder_rnn.token_table(model.usr_embedding)
        linear = {
            name: (_array(layer.weight), _array(layer.bias))
            for name, layer in {
                "mu": model.latent_previous.mu,
                "logvar": model.latent_previous.logvar,
                "merge": model.merge,
                "term_hidden": model.terminate_head[0],
                "term_out": model.terminate_head[2],
                "out": model.out,
            }.items()
        }
        if self.config.goal_regularizer:
            linear["gate"] = (_array(model.goal_gate.weight)[0], _array(model.goal_gate.bias))
            linear["summary"] = (_array(model.goal_summary.weight), _array(model.goal_summary.bias))
        self.linear = linear

    def _apply(self, name: str, x: np.ndarray) -> np.ndarray:
        weight, bias = self.linear[name]
        return weight @ x + bias

    def start(self, goal_ids: list[int], goal_slot_mask: list[float]) -> Session:
        with torch.no_grad():
            goal = torch.tensor([goal_ids or [PAD]], dtype=torch.long)
            outputs, state = self.model.goal_encoder(goal, torch.tensor([goal.size(1)]))
        mask = np.asarray(goal_slot_mask or [0.0], dtype=np.float32)
        return Session(_array(outputs[0]), mask, _array(state[0]), np.ones_like(mask))

    def respond(
        self, session: Session, system_ids: list[int], *, rng: np.random.Generator | None = None
    ) -> tuple[list[int], bool]:
        """(user token ids without <SOS>/<EOS>, whether the user ends the dialogue); greedy with the latent at
        its mean, or sampled (latent and tokens) from ``rng``. Updates ``session``."""
        sentence = np.zeros_like(session.context)
        for token in system_ids or [PAD]:
            sentence = self.sys_rnn.step(self.sys_table[token], sentence)
        previous = session.context
        context = self.context_rnn.step(self.context_rnn.w_ih @ sentence + self.context_rnn.b_ih, previous)
        z = self._apply("mu", previous)
        if rng is not None:
            z = z + rng.standard_normal(z.shape, dtype=np.float32) * np.exp(
                0.5 * self._apply("logvar", previous)
            )
        hidden = self._apply("merge", np.concatenate([context, z]))
        if self.config.goal_regularizer:
            weights = session.remaining * session.goal_slot_mask
            summary = weights @ session.goal_outputs / max(float(session.goal_slot_mask.sum()), 1.0)
            hidden = hidden + self._apply("summary", summary)
            gate_weight, gate_bias = self.linear["gate"]
            size = context.shape[0]
            gates = _sigmoid(
                gate_weight[:size] @ context + session.goal_outputs @ gate_weight[size:] + gate_bias
            )
            session.remaining = session.remaining * gates
        tokens = self._decode(hidden, rng)
        terminate = self._apply("term_out", np.maximum(self._apply("term_hidden", context), 0.0))
        session.context = context
        return tokens, bool(terminate[0] >= 0.0)

    def _decode(self, hidden: np.ndarray, rng: np.random.Generator | None) -> list[int]:
        token, tokens = SOS, []
        for step in range(self.config.max_user_tokens):
            hidden = self.decoder_rnn.step(self.usr_table[token], hidden)
            logits = self._apply("out", hidden)
            if step == 0:  # a turn is never empty (as in ConvLab-2)
                logits[EOS] = -np.inf
            if rng is None:
                token = int(logits.argmax())
            else:
                weights = np.exp(logits - logits.max())
                token = int(np.searchsorted(np.cumsum(weights), rng.random() * weights.sum(), side="right"))
                token = min(token, len(weights) - 1)
            if token == EOS:
                break
            tokens.append(token)
        return tokens
