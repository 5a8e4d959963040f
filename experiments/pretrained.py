"""Ship a trained policy under ``pretrained/NAME/``: ``python -m experiments.pretrained CHECKPOINT NAME``.

Writes ``policy.pt`` (the policy's weights with the run's config and code version, nothing else of the training
state; see ``vrb.checkpoint.save_policy_only``) and ``evaluation.json`` (``vrb.evaluate`` on the test dialogues,
seeds 0-999 of the user the policy trained on: both metric definitions, bootstrap intervals; per-dialogue
records left out). ``python -m vrb.evaluate --pretrained NAME`` and ``python -m vrb.demo --pretrained NAME`` then
use it.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from envs.cli import ArgumentParser, command
from envs.fileio import write_json
from envs.multiwoz.data import DataError
from vrb.checkpoint import load_checkpoint, save_policy_only
from vrb.errors import UsageError, VrbError
from vrb.evaluate import evaluate
from vrb.runs import PRETRAINED_DIR, checkpoint_path


def ship(source: Path, name: str, dialogues: int = 1000, root: Path = PRETRAINED_DIR) -> Path:
    """``root/name/policy.pt`` from ``source`` (a checkpoint or a run folder), with its evaluation beside it.
    Both are made in a temporary folder beside it first: a failure leaves no half-shipped policy."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise UsageError(f"name {name!r}: expected one plain folder name (letters, digits, _ and -)")
    if dialogues < 1:
        raise UsageError(f"--dialogues {dialogues}: expected a positive number")
    checkpoint = load_checkpoint(checkpoint_path(source))
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as staging:
        policy = save_policy_only(checkpoint, Path(staging) / "policy.pt")
        scored = evaluate(policy, dialogues=dialogues)
        report = scored.to_json()
        report.pop("dialogues")
        trained = load_checkpoint(policy)
        report["source"] = {
            "checkpoint": f"pretrained/{name}/policy.pt",
            "trained": {key: trained.config[key] for key in ("algo", "simulator", "seed", "env_reward")},
            "epoch": trained.epoch + 1,  # the policy after this many epochs, as the log counts them
            "code": trained.code_version,
        }
        write_json(Path(staging) / "evaluation.json", report)
        folder = root / name
        if folder.exists():
            shutil.rmtree(folder)
        Path(staging).rename(folder)
        Path(staging).mkdir()  # for the context manager's clean-up
    return folder


@command(VrbError, DataError)
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.pretrained", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoint written by vrb.train, or its run folder")
    parser.add_argument("name", help="the folder under pretrained/ (vrb, ppo, ...)")
    parser.add_argument("--dialogues", type=int, default=1000, help="test dialogues to score it on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    folder = ship(args.checkpoint, args.name, args.dialogues)
    print(f"wrote {folder}/policy.pt and {folder}/evaluation.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
