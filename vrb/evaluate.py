"""Score a dialogue policy on seeded simulated dialogues: ``python -m vrb.evaluate``.

Both metric definitions are reported (see ``envs.multiwoz.evaluator``): ConvLab-2's (success with the final
database check, per-dialogue means) and the GDPL/VRB papers' (success = match 1 and inform recall 1, pooled
inform F1, match over bookable domains, turns = rounds).

    python -m vrb.evaluate --checkpoint runs/vrb-agenda-s0/best.pt --simulator agenda --dialogues 1000
    python -m vrb.evaluate --policy rule --dialogues 500
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from envs.dialogue_env import DialogueEnv
from envs.multiwoz.evaluator import DialogueMetrics, summarize
from envs.multiwoz.nlg import TemplateNLG
from envs.multiwoz.rule_policy import RulePolicy
from vrb.checkpoint import CheckpointError, load_checkpoint
from vrb.config import BASELINE_ALGOS
from vrb.policy import DECODERS, MultiLabelPolicy

logger = logging.getLogger(__name__)

TABLE_ROWS = (  # (label, ConvLab-2 key, papers' key)
    ("turns", "turns", "paper_turns"),
    ("match (book rate)", "book_rate", "paper_match"),
    ("inform precision", "inform_precision", "paper_inform_precision"),
    ("inform recall", "inform_recall", "paper_inform_recall"),
    ("inform F1", "inform_f1", "paper_inform_f1"),
    ("success", "success", "paper_success"),
)


class Agent(Protocol):
    """A system policy: a 209-act 0/1 vector (neural policies) or lexicalised acts (rule policy)."""

    def reset(self) -> None: ...

    def act(self, env: DialogueEnv, observation: np.ndarray) -> np.ndarray | list[list[str]]: ...


class NeuralAgent:
    """A policy acting through a decoder (``vrb.policy.DECODERS``; greedy with the empty-action fallback by
    default). A sampling decoder draws from a generator reseeded for each dialogue with ``sample_seed`` + the
    dialogue seed, so a dialogue's result does not depend on which dialogues came before."""

    def __init__(
        self, policy: MultiLabelPolicy, decoder: str = "greedy", fallback: bool = True, sample_seed: int = 0
    ):
        self.policy = policy.eval()
        self.decoder, self.fallback, self.sample_seed = decoder, fallback, sample_seed
        self.generator = torch.Generator()

    def reset(self) -> None:
        pass

    def act(self, env: DialogueEnv, observation: np.ndarray) -> np.ndarray:
        state = torch.as_tensor(observation, dtype=torch.float32).unsqueeze(0)
        if env.rounds == 1:  # the dialogue's first system turn
            self.generator.manual_seed(self.sample_seed + int(env.dialogue_seed))
        action, _ = self.policy.act(state, self.generator, self.decoder, self.fallback)
        return action[0].to(torch.int8).numpy()

    def act_many(self, envs: Sequence[DialogueEnv], observations: Sequence[np.ndarray]) -> np.ndarray:
        """One forward pass for many dialogues (a sampling decoder keeps each dialogue's own generator)."""
        if self.decoder == "sample":
            return np.stack([self.act(env, obs) for env, obs in zip(envs, observations, strict=True)])
        states = torch.as_tensor(np.stack(observations), dtype=torch.float32)
        actions, _ = self.policy.act(states, None, self.decoder, self.fallback)
        return actions.to(torch.int8).numpy()


class RuleAgent:
    """ConvLab-2's handcrafted system policy; it shares the dialogue's random stream, as in ConvLab-2."""

    def __init__(self, env: DialogueEnv):
        self.policy = RulePolicy(env.world.db)

    def reset(self) -> None:
        self.policy.reset()

    def act(self, env: DialogueEnv, observation: np.ndarray) -> list[list[str]]:
        return self.policy.act(env.state, env.rng)


@dataclasses.dataclass
class EvalResult:
    summary: dict[str, Any]
    dialogues: list[dict[str, Any]]
    transcripts: list[list[tuple[str, list]]]


def run_dialogues(
    agent: Agent,
    env: DialogueEnv | Sequence[DialogueEnv],
    seeds: Sequence[int],
    *,
    keep_transcripts: int = 0,
    progress: bool = False,
) -> EvalResult:
    """One dialogue per seed; the evaluator's metrics of each and their summary.

    Given several environments and an agent that acts on many states at once (``act_many``: a stateless
    policy), the dialogues run side by side, one policy forward pass for all of them; each dialogue still
    depends only on its seed, and results come back in seed order.
    """
    envs = [env] if isinstance(env, DialogueEnv) else list(env)
    metrics: list[DialogueMetrics | None] = [None] * len(seeds)
    transcripts: dict[int, list[tuple[str, list]]] = {}
    acts_said: list[int] = []  # per system turn: how many acts it said (behaviour, beside the metrics)
    pending = iter(enumerate(tqdm(seeds, desc="evaluate", disable=not progress, leave=False)))
    running: dict[int, tuple[int, np.ndarray]] = {}  # env slot -> (dialogue index, observation)

    def start(slot: int) -> None:
        if (nxt := next(pending, None)) is not None:
            running[slot] = (nxt[0], envs[slot].reset(seed=int(nxt[1]))[0])
            agent.reset()

    for slot in range(len(envs) if hasattr(agent, "act_many") else 1):
        start(slot)
    while running:
        slots = list(running)
        if len(slots) > 1:
            actions = agent.act_many([envs[k] for k in slots], [running[k][1] for k in slots])
        else:
            actions = [agent.act(envs[slots[0]], running[slots[0]][1])]
        for slot, action in zip(slots, actions, strict=True):
            current = envs[slot]
            step = current.step_acts if isinstance(action, list) else current.step
            observation, _, terminated, truncated, info = step(action)
            acts_said.append(len(current.sys_acts))
            index = running[slot][0]
            if terminated or truncated:
                metrics[index] = info["metrics"]
                if index < keep_transcripts:
                    transcripts[index] = list(current.transcript)
                del running[slot]
                start(slot)
            else:
                running[slot] = (index, observation)
    per_dialogue = [
        {"seed": int(seed), **dataclasses.asdict(m)} for seed, m in zip(seeds, metrics, strict=True)
    ]
    behaviour = {
        "acts_per_turn": float(np.mean(acts_said)) if acts_said else 0.0,
        "empty_turn_rate": float(np.mean([n == 0 for n in acts_said])) if acts_said else 0.0,
    }
    ordered = [transcripts[i] for i in sorted(transcripts)]
    return EvalResult(summarize(metrics) | behaviour, per_dialogue, ordered)


def confidence_interval(values: Sequence[float]) -> float:
    """Half-width of the normal-approximation 95% interval of the mean."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return float("nan")
    return 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values))


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


def load_policy(path: str | Path) -> tuple[MultiLabelPolicy, dict]:
    checkpoint = load_checkpoint(path)
    config = checkpoint.train_config()
    policy = MultiLabelPolicy(hidden_sizes=config.policy_hidden)
    if "policy" not in checkpoint.state:
        raise CheckpointError(f"checkpoint {path} holds no policy weights")
    policy.load_state_dict(checkpoint.state["policy"])
    return policy, checkpoint.config


def load_agent(path: str | Path, decoder: str | None = None, sample_seed: int = 0) -> tuple[Agent, dict]:
    """The agent a checkpoint holds, decoding as its run did unless ``decoder`` says otherwise: a multi-label
    policy, or the agent of the baseline the checkpoint names in ``state["agent_kind"]`` (``baselines/KIND.py``
    rebuilds it; vrb finds baselines by name only)."""
    checkpoint = load_checkpoint(path)
    kind = checkpoint.state.get("agent_kind")
    if kind is None:
        policy, config = load_policy(path)
        cfg = checkpoint.train_config()
        return NeuralAgent(policy, decoder or cfg.decoder, cfg.empty_fallback, sample_seed), config
    if decoder is not None:
        raise CheckpointError(
            f"--decoder: checkpoint {path} holds a {kind} agent, which acts by its own rule"
        )
    if kind not in BASELINE_ALGOS:
        raise CheckpointError(
            f"checkpoint {path} names agent kind {kind!r}; expected one of {BASELINE_ALGOS}"
        )
    return importlib.import_module(f"baselines.{kind}").agent_from_checkpoint(checkpoint), checkpoint.config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vrb.evaluate", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint written by vrb.train")
    source.add_argument("--policy", choices=["rule"], help="a built-in policy instead of a checkpoint")
    parser.add_argument("--simulator", default="agenda", choices=["agenda", "vhus"])
    parser.add_argument("--dialogues", type=int, default=1000)
    parser.add_argument(
        "--seed", type=int, default=0, help="first dialogue seed (dialogues use seed, seed+1, ...)"
    )
    parser.add_argument("--transcripts", type=int, default=3, help="readable transcripts to print")
    parser.add_argument(
        "--decoder",
        choices=sorted(DECODERS),
        help="how the policy's act probabilities become acts (default: the checkpoint's own)",
    )
    parser.add_argument("--out", help="JSON file for the summary and per-dialogue metrics")
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (one dialogue at a time gains nothing from more; default 1)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.dialogues <= 0:
        parser.error(f"--dialogues {args.dialogues}: expected a positive number")
    try:
        env = DialogueEnv(simulator=args.simulator, data_dir=args.data_dir)
        if args.checkpoint:
            agent, config = load_agent(args.checkpoint, args.decoder, args.seed)
            source = {"checkpoint": str(args.checkpoint), "config": config, "decoder": args.decoder}
        else:
            agent, source = RuleAgent(env), {"policy": args.policy}
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seeds = range(args.seed, args.seed + args.dialogues)
    result = run_dialogues(agent, env, seeds, keep_transcripts=args.transcripts, progress=True)
    summary = result.summary | {
        "success_ci95": confidence_interval([d["success"] for d in result.dialogues]),
        "paper_success_ci95": confidence_interval([d["paper_success"] for d in result.dialogues]),
    }
    nlg = {side: TemplateNLG(env.world.data, side=side) for side in ("user", "system")}
    for i, transcript in enumerate(result.transcripts):
        print(f"--- dialogue seed {args.seed + i} ---")
        print(render_transcript(transcript, nlg))
    print(f"\n{args.dialogues} dialogues on the {args.simulator} simulator, seeds {args.seed}..{seeds[-1]}")
    print(format_table(summary))
    print(
        f"success 95% CI: ±{summary['success_ci95']:.3f} (ConvLab-2), ±{summary['paper_success_ci95']:.3f} (papers)"
    )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "source": source,
            "simulator": args.simulator,
            "seeds": [args.seed, seeds[-1]],
            "summary": summary,
            "dialogues": result.dialogues,
        }
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1, default=_jsonable))
        tmp.replace(out)
        print(f"wrote {out}")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


if __name__ == "__main__":
    sys.exit(main())
