"""The MultiWOZ data folder: where it is, whether it is intact, and typed loaders for its files.

The folder is resolved as ``--data-dir`` > ``$VRB_DATA_DIR`` > ``../shared/multiwoz`` beside the repository >
the user cache folder (``$XDG_CACHE_HOME/vrb/multiwoz``). Every file is checked against ``SHA256SUMS`` by its
content, once per process and folder: hashing the whole folder takes about 10 ms (25 files, 3.5 MB; the train
split adds about 20 ms), so no result is remembered across processes — an edit that keeps a file's size and
modification time is caught like any other. ``SHA256SUMS`` must list every file the loaders read
(``REQUIRED_FILES``; an empty or partial list does not turn checking off), one ``DIGEST  NAME`` a line, and every
optional file present (``OPTIONAL_FILES``: the train split, which training switches to when it exists). Checksums
do not say a file holds what its loader needs: each loader checks the shape it reads (a database is a list of
records, a dialogue a mapping with a ``goal`` and a ``log`` of turns) and refuses it in one line naming the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DATA_ENV_VAR = "VRB_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parents[2]
DOMAIN_DB_NAMES = ("attraction", "hospital", "hotel", "police", "restaurant", "taxi", "train")
# every file the loaders below read, each of which SHA256SUMS must list (train.json.zip and trainListFile are
# optional: a folder without the train split trains on val)
REQUIRED_FILES = (
    *(f"db/{name}_db.json" for name in DOMAIN_DB_NAMES),
    "goal_model.json",
    "sys_da_voc.txt",
    "usr_da_voc.txt",
    "value_set.json",
    "value_dict.json",
    "ontology.json",
    "trackable_intent.json",
    "vhus_vocab.json",
    "templates/manual_system_template_nlg.json",
    "templates/manual_user_template_nlg.json",
    "valListFile",
    "testListFile",
    "val.json.zip",
    "test.json.zip",
)
OPTIONAL_FILES = ("train.json.zip", "trainListFile")  # read when present, so then listed like the others
_SUM_LINE = re.compile(r"([0-9a-fA-F]{64})\s+\*?(\S.*)")
HOW_TO_GET = (
    "get the data with `python -m vrb.data download --dest DIR` and point --data-dir or "
    f"${DATA_ENV_VAR} at DIR (or place it at ../shared/multiwoz beside the repository)"
)


class DataError(RuntimeError):
    """A data file is missing, corrupt or unreadable; the message says which and how to get it."""


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vrb"


def candidate_dirs(explicit: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Every place the data folder may be, in priority order, with the reason each is considered."""
    candidates: list[tuple[str, Path]] = []
    if explicit:
        candidates.append(("--data-dir", Path(explicit)))
    if os.environ.get(DATA_ENV_VAR):
        candidates.append((f"${DATA_ENV_VAR}", Path(os.environ[DATA_ENV_VAR])))
    candidates.append(("beside the repository", REPO_ROOT.parent / "shared" / "multiwoz"))
    candidates.append(("user cache", user_cache_dir() / "multiwoz"))
    return candidates


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The first existing candidate; an explicit choice that does not exist is an error, not a fallback."""
    for reason, path in candidate_dirs(explicit):
        if path.is_dir() and (path / "SHA256SUMS").is_file():
            return path.resolve()
        if reason in ("--data-dir", f"${DATA_ENV_VAR}"):
            raise DataError(
                f"data folder {path} (from {reason}) is missing or has no SHA256SUMS; {HOW_TO_GET}"
            )
    tried = ", ".join(str(p) for _, p in candidate_dirs(explicit))
    raise DataError(f"no MultiWOZ data folder found (tried {tried}); {HOW_TO_GET}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checksums(data_dir: Path) -> dict[str, str]:
    """``SHA256SUMS`` as {relative path: hex digest}; a malformed line is a DataError naming the line."""
    sums_path = data_dir / "SHA256SUMS"
    try:
        text = sums_path.read_text()
    except (OSError, ValueError) as exc:
        raise DataError(f"{sums_path} is unreadable ({exc}); {HOW_TO_GET}") from None
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _SUM_LINE.fullmatch(line.rstrip())
        name = match.group(2).removeprefix("./") if match else ""
        if not match or name.startswith("/") or ".." in Path(name).parts:
            raise DataError(
                f"{sums_path} line {number} is malformed ({line[:80]!r}; expected 'SHA256  RELATIVE/PATH'); "
                f"{HOW_TO_GET}"
            )
        sums[name] = match.group(1).lower()
    return sums


def verify(data_dir: Path) -> dict[str, str]:
    """Hash every file listed in SHA256SUMS (which must list ``REQUIRED_FILES``); raise DataError naming the first
    bad one. Returns the checksums."""
    expected = read_checksums(data_dir)
    if not expected:
        raise DataError(f"{data_dir / 'SHA256SUMS'} lists no files: nothing could be verified; {HOW_TO_GET}")
    unlisted = [name for name in REQUIRED_FILES if name not in expected]
    if unlisted:
        raise DataError(
            f"{data_dir / 'SHA256SUMS'} does not list {unlisted[0]} ({len(unlisted)} data files unlisted): "
            f"every data file must be checksummed; {HOW_TO_GET}"
        )
    present = [name for name in OPTIONAL_FILES if name not in expected and (data_dir / name).exists()]
    if present:
        raise DataError(
            f"data file {data_dir / present[0]} is not listed in SHA256SUMS: an unverified file is not used "
            f"(add its line to {data_dir / 'SHA256SUMS'}, or remove the file); {HOW_TO_GET}"
        )
    for name, digest in expected.items():
        path = data_dir / name
        if not path.is_file():
            raise DataError(f"data file {path} is missing; {HOW_TO_GET}")
        try:
            actual = sha256_of(path)
        except OSError as exc:
            raise DataError(f"data file {path} is unreadable ({exc.strerror or exc}); {HOW_TO_GET}") from None
        if actual != digest:
            raise DataError(f"data file {path} is corrupt (sha256 mismatch); {HOW_TO_GET}")
    return expected


def decode_pairs(node: Any) -> Any:
    """Undo the JSON form of the goal model: ``{"__pairs__": [[k, v], ...]}`` → dict with tuple keys, in order."""
    if isinstance(node, dict):
        if set(node) == {"__pairs__"}:
            return {_as_key(k): decode_pairs(v) for k, v in node["__pairs__"]}
        return {k: decode_pairs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [decode_pairs(v) for v in node]
    return node


def _as_key(key: Any) -> Any:
    return tuple(_as_key(k) for k in key) if isinstance(key, list) else key


@dataclass(frozen=True)
class GoalModel:
    """The statistics ConvLab-2's goal generator samples from (insertion order is significant)."""

    ind_slot_dist: dict
    ind_slot_value_dist: dict
    domain_ordering_dist: dict
    book_dist: dict
    slots_num_dist: dict
    slots_combination_dist: dict


class MultiWozData:
    """Lazy, cached access to one verified data folder."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, name: str) -> Path:
        path = self.root / name
        if not path.is_file():
            raise DataError(f"data file {path} is missing; {HOW_TO_GET}")
        return path

    def read_json(self, name: str, expect: type = dict) -> Any:
        """The JSON value of a data file, which must be a ``expect`` (a mapping unless said otherwise)."""
        path = self.path(name)
        try:
            with open(path) as f:
                value = json.load(f)
        except (OSError, ValueError) as exc:
            raise DataError(f"data file {path} is not readable JSON ({exc}); {HOW_TO_GET}") from exc
        if not isinstance(value, expect):
            raise DataError(
                f"data file {path} holds a JSON {type(value).__name__}, expected a {expect.__name__}; {HOW_TO_GET}"
            )
        return value

    def read_lines(self, name: str) -> list[str]:
        path = self.path(name)
        try:
            text = path.read_text()
        except (OSError, ValueError) as exc:
            raise DataError(f"data file {path} is unreadable ({exc}); {HOW_TO_GET}") from exc
        return [line.strip() for line in text.splitlines() if line.strip()]

    def _refuse(self, name: str, found: str, expected: str) -> DataError:
        return DataError(f"data file {self.root / name} {found}, expected {expected}; {HOW_TO_GET}")

    @functools.cached_property
    def databases(self) -> dict[str, Any]:
        databases = {}
        for domain in DOMAIN_DB_NAMES:
            name = f"db/{domain}_db.json"
            table = self.read_json(name, dict if domain == "taxi" else list)
            rows, kind, expected = (
                (table.values(), list, "a mapping of lists")
                if domain == "taxi"
                else (table, dict, "a list of records (JSON objects)")
            )
            odd = next((row for row in rows if not isinstance(row, kind)), None)
            if odd is not None:
                raise self._refuse(name, f"holds an entry {_short(odd)}", expected)
            databases[domain] = table
        return databases

    @functools.cached_property
    def goal_model(self) -> GoalModel:
        raw = decode_pairs(self.read_json("goal_model.json"))
        missing = [name for name in GoalModel.__dataclass_fields__ if not isinstance(raw.get(name), dict)]
        if missing:
            raise DataError(
                f"data file {self.root / 'goal_model.json'} has no mapping {missing[0]!r}; {HOW_TO_GET}"
            )
        return GoalModel(**{name: raw[name] for name in GoalModel.__dataclass_fields__})

    @functools.cached_property
    def sys_act_vocab(self) -> list[str]:
        return self.read_lines("sys_da_voc.txt")

    @functools.cached_property
    def usr_act_vocab(self) -> list[str]:
        return self.read_lines("usr_da_voc.txt")

    @functools.cached_property
    def value_set(self) -> dict[str, dict[str, list[str]]]:
        return self.read_json("value_set.json")

    @functools.cached_property
    def value_dict(self) -> dict[str, Any]:
        return self.read_json("value_dict.json")

    @functools.cached_property
    def ontology(self) -> dict[str, Any]:
        return self.read_json("ontology.json")

    @functools.cached_property
    def trackable_intent(self) -> dict[str, Any]:
        return self.read_json("trackable_intent.json")

    @functools.cached_property
    def vhus_vocab(self) -> dict[str, dict[str, int]]:
        return self.read_json("vhus_vocab.json")

    def templates(self, side: str) -> dict[str, Any]:
        if side not in ("system", "user"):
            raise ValueError(f"template side {side!r}: expected 'system' or 'user'")
        return self.read_json(f"templates/manual_{side}_template_nlg.json")

    def split_ids(self, split: str) -> list[str]:
        return self.read_lines(f"{split}ListFile")

    def has_split(self, split: str) -> bool:
        return (self.root / f"{split}.json.zip").is_file()

    def training_split(self) -> str:
        """``train`` when the folder has it, else ``val`` (the shipped folder lacks the train split)."""
        return "train" if self.has_split("train") else "val"

    def corpus(self, split: str) -> Mapping[str, Any]:
        """Dialogues of one split ({dialogue id: dialogue}); ``train`` exists only in a full data folder."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split {split!r}: expected 'train', 'val' or 'test'")
        path = self.path(f"{split}.json.zip")
        try:
            with zipfile.ZipFile(path) as archive:
                (member,) = [n for n in archive.namelist() if n.endswith(".json")]
                dialogues = json.loads(archive.read(member))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise DataError(f"data file {path} is unreadable ({exc}); {HOW_TO_GET}") from exc
        if not isinstance(dialogues, dict):
            raise DataError(f"data file {path} holds no mapping of dialogues; {HOW_TO_GET}")
        for dialogue_id, dialogue in dialogues.items():
            problem = _dialogue_problem(dialogue)
            if problem:
                raise self._refuse(
                    path.name,
                    f"dialogue {dialogue_id!r} {problem}",
                    "a 'goal' mapping and a 'log' list of turns",
                )
        return dialogues


def _dialogue_problem(dialogue: Any) -> str:
    """What is wrong with a dialogue's shape ('' when nothing): a mapping with a ``goal`` mapping and a ``log``
    list of turns (mappings)."""
    if not isinstance(dialogue, dict):
        return f"is a JSON {type(dialogue).__name__}"
    if not isinstance(dialogue.get("goal"), dict):
        return f"has 'goal' = {_short(dialogue.get('goal'))}"
    log = dialogue.get("log")
    if not isinstance(log, list):
        return f"has 'log' = {_short(log)}"
    odd = next((turn for turn in log if not isinstance(turn, dict)), None)
    return "" if odd is None else f"has a turn {_short(odd)} in its 'log'"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


@functools.lru_cache(maxsize=8)
def _load_verified(root: Path) -> MultiWozData:
    verify(root)
    return MultiWozData(root)


def load(data_dir: str | os.PathLike | None = None) -> MultiWozData:
    """Resolve, verify (once) and open the data folder."""
    return _load_verified(resolve_data_dir(data_dir))
