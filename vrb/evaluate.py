"""Score a dialogue policy on seeded simulated dialogues: ``python -m vrb.evaluate``.

Both metric definitions are reported (see ``envs.multiwoz.evaluator``): ConvLab-2's (success with the final
database check, per-dialogue means) and the GDPL/VRB papers' (success = match 1 and inform recall 1, pooled
inform F1, match over bookable domains, turns = rounds).

    python -m vrb.evaluate --checkpoint runs/vrb-agenda-s0/best.pt --simulator agenda --dialogues 1000
    python -m vrb.evaluate --policy rule --dialogues 500

From Python: ``vrb.evaluate.evaluate(checkpoint, dialogues=...)`` returns an ``Evaluation`` (docs/api.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from envs.cli import MAX_SEED, ArgumentParser, command, seed_type
from envs.dialogue_env import DialogueEnv
from envs.fileio import unwritable, write_json
from envs.multiwoz import data as mw_data
from envs.multiwoz.data import DataError
from envs.multiwoz.nlg import TemplateNLG
from vrb import algorithms
from vrb.acting import Agent, RuleAgent, run_dialogues
from vrb.checkpoint import load_checkpoint
from vrb.config import SIMULATORS
from vrb.errors import UsageError, VrbError
from vrb.policy import DECODERS
from vrb.runs import checkpoint_path, pretrained_path
from vrb.stats import headline_intervals, mean_ci

logger = logging.getLogger(__name__)

TABLE_ROWS = (  # (label, ConvLab-2 key, papers' key)
    ("turns", "turns", "paper_turns"),
    ("match (book rate)", "book_rate", "paper_match"),
    ("inform precision", "inform_precision", "paper_inform_precision"),
    ("inform recall", "inform_recall", "paper_inform_recall"),
    ("inform F1", "inform_f1", "paper_inform_f1"),
    ("success", "success", "paper_success"),
)


def format_table(summary: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return "  n/a" if value is None else f"{value:7.3f}"

    lines = [f"{'metric':<20} {'ConvLab-2':>10} {'papers':>10}"]
    lines += [
        f"{label:<20} {cell(summary[ours]):>10} {cell(summary[paper]):>10}"
        for label, ours, paper in TABLE_ROWS
    ]
    return "\n".join(lines)


def render_transcript(transcript: list[tuple[str, list]], nlg: dict[str, TemplateNLG]) -> str:
    lines = []
    for speaker, acts in transcript:
        side = "user" if speaker == "user" else "system"
        lines.append(f"{speaker:>4}: {nlg[side].generate(acts)}")
        lines.append(f"      {acts}")
    return "\n".join(lines)


def load_agent(path: str | Path, decoder: str | None = None, sample_seed: int = 0) -> tuple[Agent, dict]:
    """The agent a checkpoint holds (rebuilt by its registered algorithm) and the checkpoint's config,
    decoding as its run did unless ``decoder`` says otherwise."""
    checkpoint = load_checkpoint(path)
    return algorithms.load_agent(checkpoint, decoder, sample_seed), checkpoint.config


def ci95(values: Sequence[float]) -> float:
    """Half-width of the 95% interval of a per-dialogue mean (Student t; n = dialogues)."""
    return mean_ci(values)[1]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m vrb.evaluate",
        description=__doc__.splitlines()[0],
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint", help="a checkpoint written by vrb.train, or a run folder (its best.pt)"
    )
    source.add_argument("--policy", choices=["rule"], help="a built-in policy instead of a checkpoint")
    source.add_argument(
        "--pretrained",
        metavar="NAME",
        help="a policy shipped under pretrained/ (vrb, ppo), trained with the defaults",
    )
    parser.add_argument(
        "--simulator",
        choices=SIMULATORS,
        help="the simulated user (default: the one the checkpoint trained on)",
    )
    parser.add_argument(
        "--user-noise",
        type=float,
        metavar="P",
        help="corrupt each user act on its way to the tracker with probability P (default: the run's own, 0 "
        "for a built-in policy)",
    )
    parser.add_argument("--dialogues", type=int, default=1000, help="dialogues to play")
    parser.add_argument(
        "--seed",
        type=seed_type,
        default=0,
        help=f"first dialogue seed (dialogues use seed, seed+1, ... <= {MAX_SEED})",
    )
    parser.add_argument("--transcripts", type=int, default=3, help="readable transcripts to print")
    parser.add_argument(
        "--decoder",
        choices=sorted(DECODERS),
        help="acts from the policy's probabilities (default: the run's own)",
    )
    parser.add_argument("--out", help="JSON file for the summary and per-dialogue metrics")
    parser.add_argument(
        "--data-dir", help="data folder (default: $VRB_DATA_DIR, ../shared/multiwoz, the cache)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (one dialogue at a time needs one)"
    )
    return parser


@command(VrbError, DataError)
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dialogues <= 0:
        parser.error(f"--dialogues {args.dialogues}: expected a positive number")
    if args.user_noise is not None and not 0.0 <= args.user_noise <= 1.0:
        parser.error(f"--user-noise {args.user_noise}: expected a probability in [0, 1]")
    if args.seed + args.dialogues - 1 > MAX_SEED:
        parser.error(
            f"--seed {args.seed} --dialogues {args.dialogues}: dialogue seeds must lie in 0..{MAX_SEED} "
            f"(the last would be {args.seed + args.dialogues - 1})"
        )
    if args.out and Path(args.out).is_dir():
        parser.error(f"--out {args.out}: is a folder; expected a JSON file name")
    reason = unwritable(args.out) if args.out else None
    if reason:  # found now, not after every dialogue has been played
        parser.error(
            f"--out {args.out}: cannot be written: {reason}; expected a JSON file in a writable folder"
        )
    torch.set_num_threads(max(1, args.threads))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return report(args)


@dataclass
class Evaluation:
    """A policy scored on seeded dialogues: the summary under both definitions (``docs/metrics.md``) with the
    success intervals, bootstrap intervals of the papers' headline, and every dialogue's metrics."""

    source: dict[str, Any]  # the checkpoint and its config, or the built-in policy
    simulator: str
    seeds: range
    summary: dict[str, Any]
    intervals: dict[str, list[float]]  # metric -> [low, high]
    dialogues: list[dict[str, Any]]
    transcripts: list[list[tuple[str, list]]]
    user_noise: float = 0.0  # the probability that a user act reaches the tracker corrupted

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "simulator": self.simulator,
            "user_noise": self.user_noise,
            "seeds": [self.seeds[0], self.seeds[-1]],
            "summary": self.summary,
            "intervals": {
                "method": "bootstrap over dialogues, 1000 resamples, 95% percentile",
                **self.intervals,
            },
            "dialogues": self.dialogues,
        }


def evaluate(
    checkpoint: str | Path | None = None,
    *,
    policy: str | None = None,
    simulator: str | None = None,
    user_noise: float | None = None,
    dialogues: int = 1000,
    seed: int = 0,
    decoder: str | None = None,
    data_dir: str | Path | None = None,
    transcripts: int = 0,
    progress: bool = False,
) -> Evaluation:
    """Score a trained policy (``checkpoint``: a checkpoint file, a run folder, or a ``pretrained/`` name) or a
    built-in one (``policy="rule"``) on the dialogues of seeds ``seed .. seed + dialogues - 1``, on the user it
    trained with unless ``simulator`` names another, and under its user noise unless ``user_noise`` says."""
    if (checkpoint is None) == (policy is None):
        raise UsageError("evaluate: give a checkpoint or a built-in policy, not both or neither")
    if dialogues < 1:
        raise UsageError(f"evaluate: dialogues {dialogues}: expected a positive number")
    if checkpoint is not None:
        path = checkpoint_path(checkpoint)
        agent, config = load_agent(path, decoder, seed)
        simulator = simulator or config.get("simulator", "agenda")
        if user_noise is None:  # the user it trained with
            user_noise = config.get("user_noise") or 0.0
        source = {"checkpoint": str(path), "config": config, "decoder": decoder}
        env = DialogueEnv(simulator=simulator, data_dir=data_dir, user_noise=user_noise)
    else:
        simulator, user_noise = simulator or "agenda", user_noise or 0.0
        env = DialogueEnv(simulator=simulator, data_dir=data_dir, user_noise=user_noise)
        agent, source = RuleAgent(env), {"policy": policy}
    seeds = range(seed, seed + dialogues)
    result = run_dialogues(agent, env, seeds, keep_transcripts=transcripts, progress=progress)
    summary = result.summary | {
        "success_ci95": ci95([d["success"] for d in result.dialogues]),
        "paper_success_ci95": ci95([d["paper_success"] for d in result.dialogues]),
    }
    return Evaluation(
        source,
        simulator,
        seeds,
        summary,
        headline_intervals(result.dialogues),
        result.dialogues,
        result.transcripts,
        user_noise,
    )


def report(args: argparse.Namespace) -> int:
    """The command line's output: transcripts, the table, the intervals; ``--out`` the whole evaluation."""
    scored = evaluate(
        pretrained_path(args.pretrained) if args.pretrained else args.checkpoint,
        policy=args.policy,
        simulator=args.simulator,
        user_noise=args.user_noise,
        dialogues=args.dialogues,
        seed=args.seed,
        decoder=args.decoder,
        data_dir=args.data_dir,
        transcripts=args.transcripts,
        progress=True,
    )
    summary, seeds = scored.summary, scored.seeds
    if scored.transcripts:  # the templates come from the data folder: read only when a transcript is shown
        data = mw_data.load(args.data_dir)
        nlg = {side: TemplateNLG(data, side=side) for side in ("user", "system")}
    for i, transcript in enumerate(scored.transcripts):
        print(f"--- dialogue seed {args.seed + i} ---")
        print(render_transcript(transcript, nlg))
    noise = f" (user noise p = {scored.user_noise})" if scored.user_noise else ""
    print(
        f"\n{args.dialogues} dialogues on the {scored.simulator} simulator{noise}, seeds {seeds[0]}..{seeds[-1]}"
    )
    print(format_table(summary))
    print(
        f"acts per system turn {summary['acts_per_turn']:.2f}, turns without an act {summary['empty_turn_rate']:.1%}"
    )
    print("papers' definitions, 95% bootstrap interval over the dialogues (1000 resamples):")
    for key, (low, high) in scored.intervals.items():
        value = "n/a" if summary[key] is None else f"{summary[key]:.3f}"
        print(f"  {key:<16} {value:>5}  [{low:.3f}, {high:.3f}]")
    if args.out:
        write_json(args.out, scored.to_json())
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
