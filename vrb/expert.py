"""Expert (s, a, s') of the system side, from MultiWOZ corpus dialogues.

Each system turn of a dialogue (odd position in ``log``) gives one transition; its action is the turn's own
acts. Its state comes from one of two sources (``EXPERT_STATES``):

- ``replayed`` (the default): the dialogue's annotated user and system acts are replayed through the
  environment's own rule DST and vectoriser, exactly as ``DialogueEnv`` tracks a simulated dialogue: the
  tracker reads the user turn just before (with the previous system turn as the acts it answered), and the
  state shows those user acts, the previous system acts (none on the first turn), the tracked belief and
  database buckets, and ``terminated`` = 0, since the env never asks the policy to act in a terminal state.
  The expert and the policy then live in one state space: a policy cloned from these states is scored on the
  states it will see.
- ``corpus``: the corpus *annotation* belief state of the turn (``metadata``), as ConvLab-2's MLE and GDPL
  loaders built it, kept to reproduce their behaviour. Its quirks are kept too: a belief slot holding
  ``"not mentioned"`` counts as filled, booked flags come from the annotation, and ``terminated`` = 1 on the
  last system turn (no user turn follows a later system turn). A probe tells these states from simulated
  ones by the state alone (AUC 0.997).

s' is the next system turn's state in the same dialogue, so chaining never crosses dialogues. On the last turn
it is, for ``replayed``, the state the env shows when the user ends the dialogue after the system's last acts
(no user acts, ``terminated`` = 1), and for ``corpus`` s itself (GDPL's estimator loader).

Acts outside the vocabularies are dropped by the vectoriser. Turns whose annotations are malformed (no belief
state, unreadable acts) are skipped and counted instead of crashing; a transition that would lean on a skipped
turn is skipped too (a replay stops at the first such turn: the tracker cannot follow past it), and the last
kept transition of a dialogue whose later turns were skipped takes its terminal s'.

Built arrays are cached as ``.npz`` keyed by the state source, the data files they derive from and
``EXPERT_VERSION``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import torch

from envs.acts import Act
from envs.fileio import atomic_writer
from envs.multiwoz.data import MultiWozData, read_checksums, sha256_of, user_cache_dir
from envs.multiwoz.db import Database
from envs.multiwoz.dst import RuleDST
from envs.multiwoz.vector import ACTION_DIM, BELIEF_SLOTS, DB_DOMAINS, STATE_DIM, Vectoriser
from vrb.rollout import Transitions, shuffled_indices

logger = logging.getLogger(__name__)

# Bump whenever the arrays built from the same data would differ (vectoriser layout, turn rules, skipping).
EXPERT_VERSION = "2"
EXPERT_STATES = ("replayed", "corpus")  # where the expert states come from (module docstring)
CACHE_ENV_VAR = "VRB_CACHE_DIR"
SPLITS = ("train", "val", "test")
# The data files the vectors depend on, besides the split's own dialogues.
VECTOR_DATA_FILES = ("sys_da_voc.txt", "usr_da_voc.txt", "trackable_intent.json")
DB_FILE_PREFIX = "db/"
BELIEF_DOMAINS = tuple(
    dict.fromkeys([domain for domain, _ in BELIEF_SLOTS] + [d.lower() for d in DB_DOMAINS])
)


@dataclass(frozen=True, eq=False)
class ExpertData:
    """Expert transitions of one corpus split; row i of every array belongs to transition i."""

    split: str
    states: np.ndarray  # [N, 340] float32
    actions: np.ndarray  # [N, 209] float32
    next_states: np.ndarray  # [N, 340] float32
    dialogue_index: np.ndarray  # [N] int32, position in ``dialogue_ids``
    turn_index: np.ndarray  # [N] int32, position of the system turn in its dialogue's ``log``
    dialogue_ids: tuple[str, ...]  # every dialogue of the split, in corpus order
    skipped_turns: int = 0

    def __len__(self) -> int:
        return self.states.shape[0]

    @property
    def terminated(self) -> np.ndarray:
        return self.states[:, -1] == 1

    def to_transitions(self, device: torch.device | str = "cpu") -> Transitions:
        return Transitions(
            torch.as_tensor(self.states, device=device),
            torch.as_tensor(self.actions, device=device),
            torch.as_tensor(self.next_states, device=device),
        )

    def summary(self) -> dict[str, float]:
        acts = self.actions.sum(axis=1)
        return {
            "transitions": len(self),
            "dialogues": len(self.dialogue_ids),
            "skipped_turns": self.skipped_turns,
            "mean_acts_per_action": float(acts.mean()) if len(self) else 0.0,
            "empty_action_fraction": float((acts == 0).mean()) if len(self) else 0.0,
        }


def turn_acts(turn: Mapping[str, Any]) -> list[Act] | None:
    """A turn's ``dialog_act`` as [intent, domain, slot, value] lists, slot-sorted within each domain-intent
    (ConvLab-2's ``da2tuples``); None when the annotation is unreadable. ``{}`` is a valid, empty act list."""
    dialog_act = turn.get("dialog_act")
    if not isinstance(dialog_act, Mapping):
        return None
    acts: list[Act] = []
    for domain_intent, pairs in dialog_act.items():
        parts = domain_intent.split("-") if isinstance(domain_intent, str) else ()
        if len(parts) != 2 or not isinstance(pairs, list):
            return None
        if not all(isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            return None
        domain, intent = parts
        acts.extend([intent, domain, slot, value] for slot, value in sorted(pairs, key=lambda p: p[0]))
    return acts


def is_belief_state(metadata: Any) -> TypeGuard[Mapping[str, Mapping[str, Mapping[str, Any]]]]:
    """Whether ``metadata`` has every domain the state vector reads, with ``semi`` and ``book.booked``."""
    if not isinstance(metadata, Mapping):
        return False
    for domain in BELIEF_DOMAINS:
        slots = metadata.get(domain)
        if not (
            isinstance(slots, Mapping)
            and isinstance(slots.get("semi"), Mapping)
            and isinstance(slots.get("book"), Mapping)
            and "booked" in slots["book"]
        ):
            return False
    return True


def build_expert(
    corpus: Mapping[str, Mapping[str, Any]],
    vectoriser: Vectoriser,
    split: str,
    tracker: RuleDST | None = None,
) -> ExpertData:
    """Vectorise every system turn of ``corpus`` ({dialogue id: dialogue}) into expert transitions.

    With ``tracker`` the states are replayed through it (``replayed``); without, read from the annotation
    (``corpus``). See the module docstring for both.
    """
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    next_states: list[np.ndarray] = []
    dialogue_index: list[int] = []
    turn_index: list[int] = []
    skipped = 0
    for d, dialogue in enumerate(corpus.values()):
        log = dialogue.get("log") if isinstance(dialogue, Mapping) else None
        if not isinstance(log, Sequence):
            skipped += 1
            continue
        first = len(states)
        terminal_next: np.ndarray | None = None
        user_acts: list[Act] | None = []
        previous_system_acts: list[Act] | None = []
        if tracker is not None:
            tracker.reset()
        for i, turn in enumerate(log):
            acts = turn_acts(turn) if isinstance(turn, Mapping) else None
            if i % 2 == 0:
                user_acts = acts
                continue
            if tracker is not None:
                state = _replayed_state(tracker, vectoriser, user_acts, previous_system_acts, acts)
                if state is None:
                    skipped += (len(log) - i + 1) // 2  # this system turn and every later one
                    break
                assert acts is not None  # a state: every act list it needs was readable
                terminal_next = vectoriser.state_vector(tracker.state.belief_state, [], acts, terminated=True)
            else:
                state = _annotated_state(
                    turn, vectoriser, user_acts, previous_system_acts, acts, i + 2 >= len(log)
                )
                if state is None:
                    skipped += 1
                    previous_system_acts = acts
                    continue
                assert acts is not None  # a state: every act list it needs was readable
                terminal_next = state
            states.append(state)
            actions.append(vectoriser.acts_to_action(acts))
            dialogue_index.append(d)
            turn_index.append(i)
            previous_system_acts = acts
        # s' chains to the next kept turn of this dialogue; the last one takes its terminal s'.
        next_states.extend(states[first + 1 :])
        if len(states) > first:
            assert terminal_next is not None  # set with every kept turn
            next_states.append(terminal_next)
    if skipped:
        logger.warning("expert data (%s): skipped %d malformed system turns or dialogues", split, skipped)

    def stacked(rows: list[np.ndarray], dim: int) -> np.ndarray:
        return np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, dim), np.float32)

    return ExpertData(
        split=split,
        states=stacked(states, STATE_DIM),
        actions=stacked(actions, ACTION_DIM),
        next_states=stacked(next_states, STATE_DIM),
        dialogue_index=np.asarray(dialogue_index, dtype=np.int32),
        turn_index=np.asarray(turn_index, dtype=np.int32),
        dialogue_ids=tuple(corpus),
        skipped_turns=skipped,
    )


def _replayed_state(
    tracker: RuleDST,
    vectoriser: Vectoriser,
    user_acts: list[Act] | None,
    previous_system_acts: list[Act] | None,
    system_acts: list[Act] | None,
) -> np.ndarray | None:
    """The env's state before ``system_acts``: the tracker reads the user turn, then the vectoriser."""
    if user_acts is None or previous_system_acts is None or system_acts is None:
        return None
    try:
        state = tracker.update(user_acts, previous_system_acts)
    except ValueError:  # a user act naming a domain the tracker does not know
        return None
    return vectoriser.state_vector(state.belief_state, user_acts, previous_system_acts, terminated=False)


def _annotated_state(
    turn: Mapping[str, Any],
    vectoriser: Vectoriser,
    user_acts: list[Act] | None,
    previous_system_acts: list[Act] | None,
    system_acts: list[Act] | None,
    terminated: bool,
) -> np.ndarray | None:
    """ConvLab-2's state of a system turn: the annotated belief state (``metadata``) of the turn itself."""
    metadata = turn.get("metadata")
    if (
        system_acts is None
        or user_acts is None
        or previous_system_acts is None
        or not is_belief_state(metadata)
    ):
        return None
    return vectoriser.state_vector(metadata, user_acts, previous_system_acts, terminated)


# ---- cache ---------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$VRB_CACHE_DIR``, else ``$XDG_CACHE_HOME/vrb``: the folder of every vrb cache (expert transitions here,
    cloned starts in ``vrb.clone_cache``, the VHUS models in ``envs.vhus.cache``)."""
    explicit = os.environ.get(CACHE_ENV_VAR)
    return Path(explicit) if explicit else user_cache_dir()


def default_cache_dir() -> Path:
    """``$VRB_CACHE_DIR/expert``, else ``$XDG_CACHE_HOME/vrb/expert`` (the VHUS cache sits beside it)."""
    return cache_root() / "expert"


def cache_key(data: MultiWozData, split: str, states: str = "replayed") -> str:
    """Digest of ``EXPERT_VERSION``, the split, the state source and the checksums of every data file the
    arrays derive from."""
    checksums = read_checksums(data.root)
    names = [f"{split}.json.zip", *VECTOR_DATA_FILES]
    names += sorted(name for name in checksums if name.startswith(DB_FILE_PREFIX))
    # A split added to the folder by hand may be missing from SHA256SUMS: hash it here rather than go stale.
    files = {name: checksums.get(name) or sha256_of(data.path(name)) for name in names}
    payload = json.dumps(
        {"version": EXPERT_VERSION, "split": split, "states": states, "files": files}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_path(cache_dir: Path, split: str, key: str, states: str = "replayed") -> Path:
    return cache_dir / f"expert-{split}-{states}-{key[:20]}.npz"


def save_expert(expert: ExpertData, path: Path, key: str) -> None:
    """Write ``path`` whole or not at all (``envs.fileio.atomic_writer``)."""
    with atomic_writer(path) as f:
        np.savez(
            f,
            key=np.array(key),
            split=np.array(expert.split),
            states=expert.states,
            actions=expert.actions,
            next_states=expert.next_states,
            dialogue_index=expert.dialogue_index,
            turn_index=expert.turn_index,
            dialogue_ids=np.array(expert.dialogue_ids, dtype=str),
            skipped_turns=np.array(expert.skipped_turns),
        )


def read_cached(path: Path, key: str) -> ExpertData | None:
    """The cached arrays at ``path`` if they exist, are readable and carry ``key``; else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                return None
            return ExpertData(
                split=str(f["split"]),
                states=f["states"],
                actions=f["actions"],
                next_states=f["next_states"],
                dialogue_index=f["dialogue_index"],
                turn_index=f["turn_index"],
                dialogue_ids=tuple(str(x) for x in f["dialogue_ids"]),
                skipped_turns=int(f["skipped_turns"]),
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        logger.warning("expert cache %s is unreadable (%s); rebuilding it", path, exc)
        return None


def load_expert(
    data: MultiWozData,
    split: str,
    *,
    states: str = "replayed",
    cache_dir: str | os.PathLike | None = None,
    vectoriser: Vectoriser | None = None,
) -> ExpertData:
    """Expert transitions of ``split`` ('train', 'val' or 'test'), from the cache or built and cached.

    Train on ``data.training_split()`` ('train' when the folder has it, else 'val'); keep 'test' held out.
    ``states`` is the state source, one of ``EXPERT_STATES``.
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {SPLITS}")
    if states not in EXPERT_STATES:
        raise ValueError(f"expert states {states!r}: expected one of {EXPERT_STATES}")
    key = cache_key(data, split, states)
    path = cache_path(Path(cache_dir) if cache_dir is not None else default_cache_dir(), split, key, states)
    expert = read_cached(path, key)
    if expert is not None:
        source = f"loaded from {path}"
    else:
        vectoriser = vectoriser or Vectoriser(data, Database.from_data(data))
        tracker = RuleDST.from_data(data) if states == "replayed" else None
        expert = build_expert(data.corpus(split), vectoriser, split, tracker)
        try:
            save_expert(expert, path, key)
            source = f"built and cached at {path}"
        except OSError as exc:  # a read-only cache only costs a rebuild next time
            source = f"built (not cached: {exc})"
    stats = expert.summary()
    logger.info(
        "expert data: split %s (%s states) %s: %d transitions from %d dialogues (%d turns skipped), "
        "%.2f acts per action, %.1f%% empty actions",
        split,
        states,
        source,
        stats["transitions"],
        stats["dialogues"],
        stats["skipped_turns"],
        stats["mean_acts_per_action"],
        100 * stats["empty_action_fraction"],
    )
    return expert


class ExpertSampler:
    """Expert transitions without replacement, reshuffled after each full pass (a shuffling DataLoader)."""

    def __init__(self, expert: Transitions, generator: torch.Generator | None = None):
        if len(expert) == 0:
            raise ValueError("expert transitions are empty; build them from the corpus first")
        self.expert, self.generator = expert, generator
        self._order = torch.empty(0, dtype=torch.long)
        self._cursor = 0

    @property
    def device(self) -> torch.device:
        """Where the transitions (and every batch drawn from them) live: the run's device."""
        return self.expert.states.device

    def sample(self, n: int) -> Transitions:
        parts = []
        while n > 0:
            if self._cursor == len(self._order):
                self._order = shuffled_indices(len(self.expert), self.generator, "cpu")
                self._cursor = 0
            take = min(n, len(self._order) - self._cursor)
            parts.append(self._order[self._cursor : self._cursor + take])
            self._cursor += take
            n -= take
        return self.expert.index(torch.cat(parts).to(self.device))

    def state_dict(self) -> dict[str, Any]:
        return {"order": self._order.clone(), "cursor": self._cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._order, self._cursor = state["order"].clone(), state["cursor"]
