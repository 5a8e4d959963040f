"""Train VHUS on corpus dialogues: ``python -m envs.vhus.train [--data-dir] [--epochs] [--out] [--seed]
[--goal-regularizer]``.

Trains on the ``train`` split when the data folder has it, else on ``val`` (the shipped folder), holding out a
seeded 10% of it for early stopping on user-act F1; ``test`` is never trained or stopped on and is scored at
the end. By default the best model is written to the simulator cache (``envs.vhus.cache``), where
``VHUSUser.from_data`` finds it. TensorBoard logs go to ``<out folder>/tb``. The best model so far is kept in
memory and the checkpoint is written once, atomically, when training has finished: a training cut short (a
killed sweep driver, Ctrl-C) leaves no model behind for later users to load as if it were complete.

Metrics (held-out and test): *act F1* is the micro F1 over the items ``domain-intent-slot=source`` (or the bare
act) of each user turn, decoded free-running and greedily, as the simulator speaks; *termination accuracy*
is over user turns (the label is 1 at each dialogue's last user turn).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from envs.cli import ArgumentParser
from envs.multiwoz import data as mw_data
from envs.vhus import cache
from envs.vhus.corpus import SPECIAL_TOKENS, EncodedDialogue, Vocabs, act_items, encode_corpus, split_off
from envs.vhus.model import VHUS, Batch, VHUSConfig

logger = logging.getLogger(__name__)

HELD_OUT_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    epochs: int = 60
    patience: int = 8
    batch_size: int = 16
    learning_rate: float = 1e-3
    grad_clip: float = 5.0
    seed: int = 0
    threads: int = 1  # measured faster than 2 on two idle cores, and 2 threads crawl on a busy machine
    goal_regularizer: bool = False


@dataclasses.dataclass(frozen=True)
class Scores:
    act_f1: float
    act_precision: float
    act_recall: float
    termination_accuracy: float
    turns: int


def collate(dialogues: Sequence[EncodedDialogue], vocabs: Vocabs) -> Batch:
    """Pad a list of dialogues into a ``Batch`` (an empty system turn is a single ``<PAD>``)."""
    B = len(dialogues)
    T = max(len(d.user) for d in dialogues)
    G = max(max(len(d.goal), 1) for d in dialogues)
    P = max(max(len(s) for s in d.system) for d in dialogues) or 1
    R = max(len(u) for d in dialogues for u in d.user)
    goals = torch.zeros(B, G, dtype=torch.long)
    goal_lengths = torch.ones(B, dtype=torch.long)
    goal_slot_mask = torch.zeros(B, G)
    system = torch.zeros(B, T, P, dtype=torch.long)
    system_lengths = torch.ones(B, T, dtype=torch.long)
    user = torch.zeros(B, T, R, dtype=torch.long)
    turn_mask = torch.zeros(B, T, dtype=torch.bool)
    terminated = torch.zeros(B, T)
    for b, dialogue in enumerate(dialogues):
        if dialogue.goal:
            goals[b, : len(dialogue.goal)] = torch.tensor(dialogue.goal)
            goal_lengths[b] = len(dialogue.goal)
            goal_slot_mask[b, : len(dialogue.goal)] = torch.tensor(vocabs.goal_slot_flags(dialogue.goal))
        for t, (sys_ids, usr_ids) in enumerate(zip(dialogue.system, dialogue.user, strict=True)):
            if sys_ids:
                system[b, t, : len(sys_ids)] = torch.tensor(sys_ids)
                system_lengths[b, t] = len(sys_ids)
            user[b, t, : len(usr_ids)] = torch.tensor(usr_ids)
        turns = len(dialogue.user)
        turn_mask[b, :turns] = True
        terminated[b, turns - 1] = 1.0
    return Batch(goals, goal_lengths, goal_slot_mask, system, system_lengths, user, turn_mask, terminated)


def batches(
    dialogues: Sequence[EncodedDialogue], vocabs: Vocabs, size: int, rng: random.Random | None = None
):
    order = list(range(len(dialogues)))
    if rng is not None:
        rng.shuffle(order)
    for start in range(0, len(order), size):
        yield collate([dialogues[i] for i in order[start : start + size]], vocabs)


def f1_counts(predicted: set[str], target: set[str]) -> tuple[int, int, int]:
    true_positive = len(predicted & target)
    return true_positive, len(predicted) - true_positive, len(target) - true_positive


def evaluate(
    model: VHUS, dialogues: Sequence[EncodedDialogue], vocabs: Vocabs, batch_size: int = 64
) -> Scores:
    """Free-running greedy act F1 and termination accuracy over every user turn of ``dialogues``."""
    model.eval()
    tp = fp = fn = correct = turns = 0
    for batch in batches(dialogues, vocabs, batch_size):
        decoded, terminate = model.greedy_batch(batch)
        targets = batch.user[batch.turn_mask].tolist()
        for predicted_ids, target_ids in zip(decoded, targets, strict=True):
            target_ids = [i for i in target_ids if i >= len(SPECIAL_TOKENS)]  # no <SOS>, <EOS>, padding
            counts = f1_counts(
                act_items(vocabs.usr.decode(predicted_ids)), act_items(vocabs.usr.decode(target_ids))
            )
            tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
        mask = batch.turn_mask
        correct += int(((terminate[mask] >= 0).float() == batch.terminated[mask]).sum())
        turns += int(mask.sum())
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return Scores(f1, precision, recall, correct / max(turns, 1), turns)


def train(
    data: mw_data.MultiWozData,
    out: Path,
    settings: TrainSettings = TrainSettings(),
    config_overrides: dict | None = None,
    log_dir: Path | None = None,
) -> tuple[VHUS, dict]:
    """Train, keep the best held-out act-F1 model (written atomically to ``out``) and score it on ``test``."""
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    vocabs = Vocabs.from_data(data)
    split = data.training_split()
    dialogues = encode_corpus(data.corpus(split), vocabs)
    train_set, held_out = split_off(dialogues, HELD_OUT_FRACTION, rng)
    test_set = encode_corpus(data.corpus("test"), vocabs)
    logger.info(
        "VHUS: training on the %r split (%d dialogues; %d held out for early stopping), testing on "
        "'test' (%d dialogues)",
        split,
        len(train_set),
        len(held_out),
        len(test_set),
    )
    config = VHUSConfig(
        goal_vocab=len(vocabs.goal),
        sys_vocab=len(vocabs.sys),
        usr_vocab=len(vocabs.usr),
        goal_regularizer=settings.goal_regularizer,
        **(config_overrides or {}),
    )
    model = VHUS(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    writer = None
    if log_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(log_dir))
    best_f1, best_epoch, step = -1.0, -1, 0
    best_state: dict[str, torch.Tensor] = {}
    best_held_out: dict[str, float] = {}
    started = time.monotonic()
    for epoch in range(settings.epochs):
        model.train()
        totals = np.zeros(5)
        count = 0
        for batch in batches(train_set, vocabs, settings.batch_size, rng):
            losses = model.losses(batch)
            optimizer.zero_grad()
            losses.total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            values = [
                losses.total.item(),
                losses.act.item(),
                losses.terminate.item(),
                losses.kl.item(),
                losses.goal.item(),
            ]
            totals += values
            count += 1
            step += 1
            if writer is not None:
                for name, value in zip(("total", "act", "terminate", "kl", "goal"), values, strict=True):
                    writer.add_scalar(f"loss/{name}", value, step)
        scores = evaluate(model, held_out, vocabs)
        mean = totals / max(count, 1)
        logger.info(
            "epoch %d: loss %.3f (act %.3f, terminate %.3f, kl %.3f, goal %.3f); held-out act F1 %.4f, "
            "termination accuracy %.4f [%.0fs]",
            epoch + 1,
            *mean,
            scores.act_f1,
            scores.termination_accuracy,
            time.monotonic() - started,
        )
        if writer is not None:
            writer.add_scalar("held_out/act_f1", scores.act_f1, epoch + 1)
            writer.add_scalar("held_out/termination_accuracy", scores.termination_accuracy, epoch + 1)
        if scores.act_f1 > best_f1:  # kept in memory: only a finished training writes ``out``
            best_f1, best_epoch = scores.act_f1, epoch + 1
            best_state = {name: value.detach().clone() for name, value in model.state_dict().items()}
            best_held_out = dataclasses.asdict(scores)
        elif epoch + 1 - best_epoch >= settings.patience:
            logger.info("VHUS: no held-out improvement for %d epochs; stopping", settings.patience)
            break
    best = VHUS(config)
    best.load_state_dict(best_state)
    best.eval()
    test_scores = evaluate(best, test_set, vocabs)
    seconds = time.monotonic() - started
    summary = {
        "epoch": best_epoch,
        "split": split,
        "held_out": best_held_out,
        "test": dataclasses.asdict(test_scores),
        "train_seconds": round(seconds, 1),
        "settings": dataclasses.asdict(settings),
    }
    cache.save_checkpoint(out, best, {k: v for k, v in summary.items() if k != "settings"})
    if writer is not None:
        writer.add_scalar("test/act_f1", test_scores.act_f1, best_epoch)
        writer.add_scalar("test/termination_accuracy", test_scores.termination_accuracy, best_epoch)
        writer.close()
    logger.info(
        "VHUS: best epoch %d; test act F1 %.4f (P %.4f, R %.4f), termination accuracy %.4f over %d "
        "turns; %.0fs; saved %s",
        best_epoch,
        test_scores.act_f1,
        test_scores.act_precision,
        test_scores.act_recall,
        test_scores.termination_accuracy,
        test_scores.turns,
        seconds,
        out,
    )
    return best, summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m envs.vhus.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="MultiWOZ data folder (default: the usual lookup)")
    parser.add_argument(
        "--epochs", type=int, default=TrainSettings.epochs, help="most epochs (early stopping)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="checkpoint path (default: the simulator cache, where the environment loads it)",
    )
    parser.add_argument("--seed", type=int, default=TrainSettings.seed)
    parser.add_argument("--goal-regularizer", action="store_true", help="add the goal regulariser")
    parser.add_argument("--threads", type=int, default=TrainSettings.threads, help="torch CPU threads")
    args = parser.parse_args(argv)
    for flag, value in (("--epochs", args.epochs), ("--threads", args.threads)):
        if value < 1:
            parser.error(f"{flag} {value}: expected a positive number")
    if args.out is not None and args.out.is_dir():
        parser.error(f"--out {args.out} is a folder; expected the checkpoint file to write")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = TrainSettings(
        epochs=args.epochs, seed=args.seed, threads=args.threads, goal_regularizer=args.goal_regularizer
    )
    try:
        data = mw_data.load(args.data_dir)
        if args.out is not None:
            out = args.out
            _, summary = train(data, out, settings, log_dir=out.parent / "tb")
        else:
            out = cache.model_path(data, args.goal_regularizer)
            with cache.training_lock(out):  # a simulator training the same entry waits, then loads this one
                _, summary = train(data, out, settings, log_dir=out.parent / "tb")
    except (mw_data.DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"trained on split {summary['split']!r}; best epoch {summary['epoch']}; "
        f"test act F1 {summary['test']['act_f1']:.4f}, termination accuracy "
        f"{summary['test']['termination_accuracy']:.4f}; {summary['train_seconds']:.0f}s; saved {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
