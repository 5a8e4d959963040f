"""One dialogue at a time, fast: the trained VHUS's inference path in numpy.

The environment asks for one user turn at a time, with batch size one, where a framework's per-call
overhead dominates; this path precomputes each GRU's input projection per token and runs the same
arithmetic as ``VHUS`` (``tests/test_vhus.py`` checks it against the batched torch decoding).

Encodings of token sequences are cached in prefix trees: the goal encoder's state after each goal-token prefix
and the system encoder's state after each system-token prefix (with the dialogue GRU's projection of a whole
system turn). A GRU step is a function of the previous state and the token alone, so a cached state is exactly
the state the steps would compute again: the cache saves time and changes no number. Goal and system token
sequences are built from slot names, not values (``envs.vhus.corpus``), so they share long prefixes and a few
thousand nodes cover most turns; a tree that outgrows ``PREFIX_CACHE_LIMIT`` nodes starts afresh. The
environments of a process that load the same trained model share one engine (``FastVHUS.shared``), caches
included.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import ClassVar, cast

import numpy as np
import torch

from envs.vhus.corpus import EOS, PAD, SOS
from envs.vhus.model import VHUS

PREFIX_CACHE_LIMIT = 30_000  # nodes per prefix tree (a node: a state vector, a projection at most)


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class GRUWeights:
    """A one-layer GRU with its input already projected (per token, or per call for vector inputs)."""

    def __init__(self, w_ih: np.ndarray, b_ih: np.ndarray, w_hh: np.ndarray, b_hh: np.ndarray):
        self.w_ih = w_ih  # [3H, D]
        self.b_ih = b_ih  # [3H]
        self.w_hh = w_hh  # [3H, H]
        self.b_hh = b_hh  # [3H]
        self.size = w_hh.shape[1]
        self._ones = np.ones(2 * self.size, dtype=np.float32)  # array operands: faster than a scalar 1.0

    @classmethod
    def of(cls, rnn: torch.nn.GRU) -> GRUWeights:
        # registered parameters: torch types such module attributes as ``Tensor | Module``
        weights = (
            cast(torch.Tensor, getattr(rnn, name))
            for name in ("weight_ih_l0", "bias_ih_l0", "weight_hh_l0", "bias_hh_l0")
        )
        return cls(*map(_array, weights))

    def token_table(self, embedding: torch.nn.Embedding) -> np.ndarray:
        """Input projection of every token: [V, 3H]."""
        return _array(embedding.weight) @ self.w_ih.T + self.b_ih

    def step(self, projected: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """torch.nn.GRU's update (gates in r, z, n order) for an already projected input; a new array.

        Element for element the arithmetic of ``r = sigmoid(x_r + h_r)``, ``z = sigmoid(x_z + h_z)``,
        ``n = tanh(x_n + r * h_n)``, ``(1 - z) * n + z * hidden`` (with ``h = w_hh @ hidden + b_hh``), written
        with fewer temporaries: r and z in one pass, results in place.
        """
        size, ones = self.size, self._ones
        recurrent = self.w_hh @ hidden
        recurrent += self.b_hh
        gates = projected[: 2 * size] + recurrent[: 2 * size]
        np.negative(gates, out=gates)
        np.exp(gates, out=gates)
        gates += ones
        np.divide(ones, gates, out=gates)
        new = gates[:size] * recurrent[2 * size :]
        new += projected[2 * size :]
        np.tanh(new, out=new)
        update = gates[size:]
        out = ones[:size] - update
        out *= new
        update *= hidden
        out += update
        return out


class _Prefix:
    """A node of a prefix tree: the GRU state after a token prefix, and the prefixes one token longer."""

    __slots__ = ("state", "children", "projected")

    def __init__(self, state: np.ndarray):
        self.state = state
        self.children: dict[int, _Prefix] = {}
        self.projected: np.ndarray | None = None  # system turns: the dialogue GRU's input projection of state


class PrefixEncoder:
    """A GRU encoder over token sequences (from a zero state) whose every prefix's state is cached."""

    def __init__(self, rnn: GRUWeights, table: np.ndarray):
        self.rnn, self.table = rnn, table
        self.nodes = 0
        self.root = _Prefix(np.zeros(rnn.size, dtype=np.float32))

    def path(self, tokens: list[int]) -> list[_Prefix]:
        """The nodes of ``tokens``' prefixes, shortest first (encoding the ones not seen yet)."""
        if self.nodes + len(tokens) > PREFIX_CACHE_LIMIT:
            self.nodes = 0
            self.root = _Prefix(self.root.state)
        node, nodes = self.root, []
        for token in tokens:
            child = node.children.get(token)
            if child is None:
                child = node.children[token] = _Prefix(self.rnn.step(self.table[token], node.state))
                self.nodes += 1
            nodes.append(child)
            node = child
        return nodes


@dataclass
class Session:
    """One dialogue's state between user turns (its arrays are never written in place: caches share them)."""

    goal_outputs: np.ndarray  # [G, H]
    goal_slot_mask: np.ndarray  # [G]
    context: np.ndarray  # [H] dialogue state before the coming system turn
    remaining: np.ndarray  # [G] goal still to be said (goal regulariser)


class FastVHUS:
    """``start`` a dialogue, then ``respond`` to each system turn (token ids in, user token ids out)."""

    _shared: ClassVar[weakref.WeakValueDictionary[str, FastVHUS]] = weakref.WeakValueDictionary()

    @classmethod
    def shared(cls, model: VHUS) -> FastVHUS:
        """The engine of a model with these weights, made once per process while some user holds it."""
        digest = hashlib.sha256(repr(model.config).encode())
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        key = digest.hexdigest()
        engine = cls._shared.get(key)
        if engine is None:
            engine = cls._shared[key] = cls(model)
        return engine

    def __init__(self, model: VHUS):
        model = model.eval()
        self.model = model
        self.config = model.config
        goal_rnn = GRUWeights.of(model.goal_encoder.rnn)
        self.goal_encoder = PrefixEncoder(goal_rnn, goal_rnn.token_table(model.goal_encoder.embedding))
        self.sys_rnn = GRUWeights.of(model.sys_encoder.rnn)
        self.sys_table = self.sys_rnn.token_table(model.sys_encoder.embedding)
        self.sys_encoder = PrefixEncoder(self.sys_rnn, self.sys_table)
        self.context_rnn = GRUWeights.of(model.context_encoder)
        self.decoder_rnn = GRUWeights.of(model.decoder)
        self.usr_table = self.decoder_rnn.token_table(model.usr_embedding)
        layers: dict[str, torch.nn.Linear] = {
            "mu": model.latent_previous.mu,
            "logvar": model.latent_previous.logvar,
            "merge": model.merge,
            "term_hidden": cast(torch.nn.Linear, model.terminate_head[0]),
            "term_out": cast(torch.nn.Linear, model.terminate_head[2]),
            "out": model.out,
        }
        linear = {name: (_array(layer.weight), _array(layer.bias)) for name, layer in layers.items()}
        if self.config.goal_regularizer:
            linear["gate"] = (_array(model.goal_gate.weight)[0], _array(model.goal_gate.bias))
            linear["summary"] = (_array(model.goal_summary.weight), _array(model.goal_summary.bias))
        self.linear = linear
        (self._mu_w, self._mu_b), (self._merge_w, self._merge_b) = linear["mu"], linear["merge"]
        (self._term_w, self._term_b), (self._term_out_w, self._term_out_b) = (
            linear["term_hidden"],
            linear["term_out"],
        )

    def _apply(self, name: str, x: np.ndarray) -> np.ndarray:
        weight, bias = self.linear[name]
        return weight @ x + bias

    def start(self, goal_ids: list[int], goal_slot_mask: list[float]) -> Session:
        """A dialogue with this goal: the goal encoder's outputs, its last state as the first dialogue state."""
        nodes = self.goal_encoder.path(goal_ids or [PAD])
        outputs = np.stack([node.state for node in nodes])
        mask = np.asarray(goal_slot_mask or [0.0], dtype=np.float32)
        return Session(outputs, mask, nodes[-1].state, np.ones_like(mask))

    def respond(
        self, session: Session, system_ids: list[int], *, rng: np.random.Generator | None = None
    ) -> tuple[list[int], bool]:
        """(user token ids without <SOS>/<EOS>, whether the user ends the dialogue); greedy with the latent at
        its mean, or sampled (latent and tokens) from ``rng``. Updates ``session``."""
        sentence = self.sys_encoder.path(system_ids or [PAD])[-1]
        if sentence.projected is None:
            sentence.projected = self.context_rnn.w_ih @ sentence.state + self.context_rnn.b_ih
        previous = session.context
        context = self.context_rnn.step(sentence.projected, previous)
        z = self._mu_w @ previous + self._mu_b
        if rng is not None:
            z = z + rng.standard_normal(z.shape, dtype=np.float32) * np.exp(
                0.5 * self._apply("logvar", previous)
            )
        hidden = self._merge_w @ np.concatenate([context, z]) + self._merge_b
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
        terminate = (
            self._term_out_w @ np.maximum(self._term_w @ context + self._term_b, 0.0) + self._term_out_b
        )
        session.context = context
        return tokens, bool(terminate[0] >= 0.0)

    def _decode(self, hidden: np.ndarray, rng: np.random.Generator | None) -> list[int]:
        step_rnn, table = self.decoder_rnn.step, self.usr_table
        out_weight, out_bias = self.linear["out"]
        token, tokens = SOS, []
        for step in range(self.config.max_user_tokens):
            hidden = step_rnn(table[token], hidden)
            logits = out_weight @ hidden
            logits += out_bias
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
