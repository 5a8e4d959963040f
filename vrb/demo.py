"""Watch a trained agent talk: ``python -m vrb.demo --checkpoint RUN_OR_CHECKPOINT [--vs-rule]``.

Plays seeded dialogues with the policy a checkpoint holds (a run folder means its ``best.pt``), acting as its run
did (its decoder; ``--decoder`` overrides), on the simulator it was trained on, and prints each as readable text:
the user's goal, every turn in template English with its dialogue acts beneath, the outcome and the metrics in
both definitions. With ``--vs-rule`` the handcrafted rule policy then plays the same seed — the same user goal —
and a last table sets the two side by side.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import numpy as np
import torch

from envs.cli import MAX_SEED, ArgumentParser, command, seed_type
from envs.dialogue_env import DialogueEnv
from envs.multiwoz.data import DataError
from envs.multiwoz.demo import run_dialogue
from envs.multiwoz.evaluator import DialogueMetrics
from vrb.acting import Agent
from vrb.config import SIMULATORS
from vrb.errors import VrbError
from vrb.evaluate import load_agent
from vrb.policy import DECODERS
from vrb.runs import checkpoint_path, pretrained_path


class Watched:
    """A trained agent behind the demo's interface (``reset(seed)``, ``act(env, observation)``)."""

    def __init__(self, agent: Agent):
        self.agent = agent

    def reset(self, seed: int) -> None:
        self.agent.reset()

    def act(self, env: DialogueEnv, observation: np.ndarray) -> np.ndarray | list:
        return self.agent.act(env, observation)


def comparison(rows: dict[str, DialogueMetrics]) -> list[str]:
    lines = [f"{'':<24} {'rounds':>7} {'success':>8} {'inform F1':>10} {'match':>7}"]
    for name, m in rows.items():
        f1 = "n/a" if m.inform_f1 is None else f"{m.inform_f1:.2f}"
        match = "n/a" if not m.book_scores else f"{sum(m.book_scores) / len(m.book_scores):.2f}"
        lines.append(f"{name:<24} {m.rounds:>7} {m.paper_success:>8} {f1:>10} {match:>7}")
    return lines


@command(VrbError, DataError)
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m vrb.demo", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint, or a run folder (its best.pt)")
    source.add_argument("--pretrained", metavar="NAME", help="a policy shipped under pretrained/ (vrb, ppo)")
    parser.add_argument(
        "--seed", type=seed_type, default=0, help=f"first dialogue seed, 0..{MAX_SEED} (default: 0)"
    )
    parser.add_argument("--dialogues", type=int, default=1, help="dialogues to play (default: 1)")
    parser.add_argument("--vs-rule", action="store_true", help="then the rule policy on the same seeds")
    parser.add_argument(
        "--simulator", choices=SIMULATORS, help="the user (default: the one the run trained on)"
    )
    parser.add_argument(
        "--decoder", choices=sorted(DECODERS), help="acts from probabilities (default: the run's)"
    )
    parser.add_argument(
        "--data-dir", help="data folder (default: $VRB_DATA_DIR, ../shared/multiwoz, the cache)"
    )
    args = parser.parse_args(argv)
    if args.dialogues < 1 or args.seed + args.dialogues - 1 > MAX_SEED:
        parser.error(f"--dialogues must be >= 1, and the dialogue seeds within 0..{MAX_SEED}")
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    path = pretrained_path(args.pretrained) if args.pretrained else checkpoint_path(args.checkpoint)
    agent, config = load_agent(path, args.decoder)
    simulator = args.simulator or config.get("simulator", "agenda")
    for dialogue_seed in range(args.seed, args.seed + args.dialogues):
        name = f"{config.get('algo')} ({path})"
        lines, trained = run_dialogue(dialogue_seed, Watched(agent), args.data_dir, simulator, name=name)
        print("\n".join(lines))
        if args.vs_rule:
            lines, rule = run_dialogue(dialogue_seed, "rule", args.data_dir, simulator)
            print("\n" + "\n".join(lines))
            print(f"\nseed {dialogue_seed}, the same user goal:")
            print("\n".join(comparison({f"{config.get('algo')} (trained)": trained, "rule policy": rule})))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
