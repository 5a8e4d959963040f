"""Build a MultiWOZ data folder from ConvLab-2's repository: fetch, verify, convert pickles, write SHA256SUMS.

Every upstream file is checked against a pinned sha256 before it is used. The two pickles are opened with an
unpickler that only rebuilds plain containers, so a tampered file cannot run code; they are stored as JSON
(the form ``envs.multiwoz.data`` reads). The folder is assembled in a staging folder beside the destination
and moved into place only when complete, so a failed download leaves nothing behind.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import logging
import os
import pickle
import secrets
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.fileio import atomic_write_bytes

logger = logging.getLogger(__name__)

UPSTREAM_REPO = "thu-coai/ConvLab-2"
UPSTREAM_COMMIT = "b014b81fcb1ff74f54681917eee39c14c87af3e5"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{UPSTREAM_REPO}/{UPSTREAM_COMMIT}"
TRAIN_SPLIT_PATH = ("train.json.zip", "data/multiwoz/train.json.zip")
TRAIN_SPLIT_GIT_BLOB = "ab9c65bb433f0a344494d28874f31e4916ab0efd"  # its sha256 is not published upstream
DOWNLOAD_TIMEOUT_S = 60
CHUNK_BYTES = 1 << 20

GOAL_MODEL_FIELDS = (
    "ind_slot_dist",
    "ind_slot_value_dist",
    "domain_ordering_dist",
    "book_dist",
    "slots_num_dist",
    "slots_combination_dist",
)
VHUS_VOCAB_FIELDS = ("goal", "usr", "sys")
GOAL_MODEL_NOTE = (
    "JSON form of ConvLab-2 data/multiwoz/goal/new_goal_model.pkl (a 6-tuple). Mappings whose keys are "
    "tuples or ints, and every Counter, are stored as {'__pairs__': [[key, value], ...]} in their original "
    "iteration order (tuple keys become lists). Plain string-keyed dicts keep their key order."
)
VHUS_VOCAB_NOTE = (
    "JSON form of ConvLab-2 data/multiwoz/goal/vocab.pkl: token->index maps for goal, user-act and "
    "system-act sequences used by VHUS."
)


class DownloadError(RuntimeError):
    """A file could not be fetched, failed its checksum or could not be converted; the message names it."""


class UnsafePickleError(DownloadError):
    """A pickle asked for something other than plain containers."""


@dataclass(frozen=True)
class UpstreamFile:
    """One file of the data folder: where it lives upstream and the sha256 it must have there."""

    local: str
    upstream: str
    sha256: str


# (file in the data folder, path in ConvLab-2 at UPSTREAM_COMMIT, sha256 of the upstream bytes)
UPSTREAM_FILES: tuple[UpstreamFile, ...] = tuple(
    UpstreamFile(*row)
    for row in (
        ("val.json.zip", "data/multiwoz/val.json.zip",
         "25ddfd4d0b01304012b54e2d98caa038c91d95295c4b519cc721b9b616f506dc"),
        ("test.json.zip", "data/multiwoz/test.json.zip",
         "438deb6ff5402cef5ff29cc0d5a10db818c1e9142727c1d631e71b563c66a5b4"),
        ("sys_da_voc.txt", "data/multiwoz/sys_da_voc.txt",
         "a0b76da8a191fec890dd946ff9e312a067b423e5d73a12755e9e9363208294dc"),
        ("usr_da_voc.txt", "data/multiwoz/usr_da_voc.txt",
         "8081b096974dcfcd9bd131336178e579f685c36dc076017e2c7c0a7c92ebd4a7"),
        ("trackable_intent.json", "data/multiwoz/trackable_intent.json",
         "e400e41a5d8ade69fff97b359b5ee3889dfd649e543a2c0a2d92358d145bef43"),
        ("value_dict.json", "data/multiwoz/value_dict.json",
         "3f9dec7c4f249c515f7843980b0ca1849b03188f1a0368d4d707f682e45e8557"),
        ("value_set.json", "data/multiwoz/value_set.json",
         "18faef14273e30bf688dca8bcae0497e6128e0117216162683c3cc62c1220a7b"),
        ("ontology.json", "data/multiwoz/ontology.json",
         "e3046a9c5edd37bd9a705753e715d87dfd7ae33a2f12dd39cf0669b9088d7167"),
        ("trainListFile", "data/multiwoz/trainListFile",
         "a3e53af2da24d728f69849bcf4aacd25e72dc12bfa4f38fd40b3a3d40890c594"),
        ("valListFile", "data/multiwoz/valListFile",
         "94980a8563da8bc02047cf994aa5b8001b4df083f3fbe284c64be1dfcfb264b6"),
        ("testListFile", "data/multiwoz/testListFile",
         "7051d16cb64f620ecb341f8a1708635cd914c2613b2497c23209498ac5e4e033"),
        ("goal_model.json", "data/multiwoz/goal/new_goal_model.pkl",
         "ae8c398bcff6864a2d28c93e30a9cb17a84b6f4ef9f4c9dd101d1fd89e170fa2"),
        ("vhus_vocab.json", "data/multiwoz/goal/vocab.pkl",
         "4fecf132542176def62ed4b559cc792e4040905b793fd443fa905c88cfb1ab3a"),
        ("templates/manual_system_template_nlg.json",
         "convlab2/nlg/template/multiwoz/manual_system_template_nlg.json",
         "8f3d55194cc7a9ffba1010859ecb2e9d887ed56497ee2d1167f2a70bf7a4f124"),
        ("templates/manual_user_template_nlg.json",
         "convlab2/nlg/template/multiwoz/manual_user_template_nlg.json",
         "e78c138cc522050659187da9794c53378ae115b4b527489300954adae2f54085"),
        ("db/attraction_db.json", "data/multiwoz/db/attraction_db.json",
         "ac2486936c373917fd9ed1aa46d0e63f7dc6fae4667c80e62b643ac6051e9848"),
        ("db/hospital_db.json", "data/multiwoz/db/hospital_db.json",
         "6b1c867e54fa1ca92b58036945819168ec4ac981da28a09d9dec0ed9d6185937"),
        ("db/hotel_db.json", "data/multiwoz/db/hotel_db.json",
         "972bbd65beada7c64f0b87322c694fd9173b46cf8e61ca3bbe951717ac1d1662"),
        ("db/police_db.json", "data/multiwoz/db/police_db.json",
         "5282b151240e9e31682172c806722ee117da9e7a9fe701b00b77b98ae118bf6f"),
        ("db/restaurant_db.json", "data/multiwoz/db/restaurant_db.json",
         "7864b4e36027af0907d6afe9ed962fecd6c6966cd626b8ae9341708a04ea201a"),
        ("db/taxi_db.json", "data/multiwoz/db/taxi_db.json",
         "4305d9410d8674313ea1e227c3f9bfa5f15ff0bb2a4976d9ab8d656aa558ee23"),
        ("db/train_db.json", "data/multiwoz/db/train_db.json",
         "4818e735bae20690f6d0d06bb2ae8eec1981c0b680258a970dc01c9073f3fec9"),
        ("licenses/ConvLab-2.LICENSE.txt", "LICENSE",
         "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4"),
        ("licenses/ConvLab-2.NOTICE.txt", "NOTICE",
         "fcad1f17ea3d35b66d1459d65f56948cf1ac1ea190028e17d0fb57d5a9b85ac1"),
    )
)  # fmt: skip


class PlainContainerUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, tuples, sets, Counters, strings and numbers; refuses every other global.

    Plain containers and scalars have their own opcodes; the only class these pickles name is ``Counter``.
    """

    ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = {("collections", "Counter"): collections.Counter}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"pickle refers to {module}.{name}; only plain containers and collections.Counter are allowed"
            ) from None


def load_plain_pickle(payload: bytes) -> Any:
    """Unpickle data made only of plain containers (never executes code from the pickle)."""
    try:
        return PlainContainerUnpickler(io.BytesIO(payload)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # a damaged stream can fail with many exception types
        raise DownloadError(f"unreadable pickle ({type(exc).__name__}: {exc})") from exc


def to_json_tree(node: Any) -> Any:
    """JSON form of the goal model: Counters and non-string-keyed mappings become ordered ``__pairs__``."""
    if isinstance(node, collections.Counter) or (
        isinstance(node, dict) and not all(isinstance(key, str) for key in node)
    ):
        return {"__pairs__": [[_json_key(key), to_json_tree(value)] for key, value in node.items()]}
    if isinstance(node, dict):
        return {key: to_json_tree(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [to_json_tree(value) for value in node]
    if node is None or isinstance(node, str | int | float):
        return node
    raise DownloadError(f"cannot store a {type(node).__name__} in JSON (expected containers and scalars)")


def _json_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return [_json_key(part) for part in key]
    if key is None or isinstance(key, str | int | float):
        return key
    raise DownloadError(f"cannot store a {type(key).__name__} mapping key in JSON")


def _named_fields(pickled: Any, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(pickled, tuple) or len(pickled) != len(fields):
        raise DownloadError(f"{what}: expected a {len(fields)}-tuple, got {type(pickled).__name__}")
    return dict(zip(fields, pickled, strict=True))


def goal_model_json(payload: bytes) -> bytes:
    """``new_goal_model.pkl`` → ``goal_model.json`` (same bytes as the shipped data folder)."""
    fields = _named_fields(load_plain_pickle(payload), GOAL_MODEL_FIELDS, "new_goal_model.pkl")
    document = {"format": "multiwoz-goal-model/1", "note": GOAL_MODEL_NOTE}
    document.update({name: to_json_tree(value) for name, value in fields.items()})
    return json.dumps(document, indent=1).encode()


def vhus_vocab_json(payload: bytes) -> bytes:
    """``vocab.pkl`` (goal, user-act, system-act token maps) → ``vhus_vocab.json``."""
    fields = _named_fields(load_plain_pickle(payload), VHUS_VOCAB_FIELDS, "vocab.pkl")
    for name, vocab in fields.items():
        if not isinstance(vocab, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in vocab.items()
        ):
            raise DownloadError(f"vocab.pkl: the {name!r} vocabulary is not a token -> index mapping")
    document = {"format": "vhus-vocab/1", "note": VHUS_VOCAB_NOTE, **fields}
    return json.dumps(document, indent=1).encode()


CONVERTERS: Mapping[str, Callable[[bytes], bytes]] = {
    "goal_model.json": goal_model_json,
    "vhus_vocab.json": vhus_vocab_json,
}


def git_blob_sha1(path: Path) -> str:
    """The id git gives a file's content (``git hash-object``)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, target: Path) -> str:
    """Stream ``url`` into ``target``; returns the sha256 of what arrived."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(target, "wb") as out:
            for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                digest.update(block)
                out.write(block)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"download of {url} failed: {reason}") from exc
    return digest.hexdigest()


def _fetch_verified(item: UpstreamFile, base_url: str, staging: Path) -> None:
    url = f"{base_url.rstrip('/')}/{item.upstream}"
    target = staging / item.local
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    logger.info("fetching %s", url)
    digest = fetch(url, partial)
    if digest != item.sha256:
        raise DownloadError(f"{item.upstream} from {url} has sha256 {digest}; expected {item.sha256}")
    if item.local in CONVERTERS:
        try:
            converted = CONVERTERS[item.local](partial.read_bytes())
        except DownloadError as exc:
            raise DownloadError(f"{item.upstream} from {url}: {exc}") from exc
        partial.unlink()
        atomic_write_bytes(target, converted)
    else:
        partial.replace(target)


def _fetch_train_split(base_url: str, staging: Path) -> None:
    local, upstream = TRAIN_SPLIT_PATH
    url = f"{base_url.rstrip('/')}/{upstream}"
    target = staging / local
    partial = target.with_name(target.name + ".partial")
    logger.info("fetching %s", url)
    fetch(url, partial)
    blob = git_blob_sha1(partial)
    if blob != TRAIN_SPLIT_GIT_BLOB:
        raise DownloadError(f"{upstream} from {url} has git blob id {blob}; expected {TRAIN_SPLIT_GIT_BLOB}")
    partial.replace(target)


def write_checksums(folder: Path) -> None:
    """``SHA256SUMS`` listing every file below ``folder`` (sorted, ``sha256sum -c`` compatible)."""
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(folder).as_posix()}\n")
    atomic_write_bytes(folder / "SHA256SUMS", "".join(lines).encode())


def download(
    dest: str | os.PathLike,
    *,
    base_url: str = DEFAULT_BASE_URL,
    with_train: bool = False,
) -> Path:
    """Fetch and verify every file into ``dest`` (which must not exist yet, or be empty).

    Returns the finished folder. On any error nothing is left at ``dest``; the error names the file.
    """
    dest = Path(dest).absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DownloadError(f"destination {dest} already exists and is not an empty folder; pick a new one")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.download-{secrets.token_hex(4)}"
    staging.mkdir()  # unlike mkdtemp, keeps the user's umask for the finished folder
    try:
        for item in UPSTREAM_FILES:
            _fetch_verified(item, base_url, staging)
        if with_train:
            _fetch_train_split(base_url, staging)
        write_checksums(staging)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("data folder ready at %s", dest)
    return dest
