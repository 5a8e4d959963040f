"""Train a dialogue policy: ``python -m vrb.train --simulator agenda [--algo vrb|gdpl|ppo|mle|...]``.

One run, whatever the algorithm (``run``):
1. load the data and the expert transitions (``vrb.expert``), build the algorithm's learner;
2. a fresh run: the learner's warm start (behaviour cloning for the multi-label policies), then the starting
   policy is validated; a resumed run restores the learner, the generator and the record from ``last.pt``;
3. per epoch: the learner's own epoch (sampling, reward, update: its file reads like its algorithm box) →
   TensorBoard → every ``eval_every`` epochs a validation on fixed dialogues → ``best.pt`` / ``last.pt``.

Outputs in ``--out`` (default ``runs/ALGO-SIMULATOR-sSEED``): TensorBoard events, ``config.json``,
``last.pt`` (every epoch; ``--resume`` continues from it), ``best.pt`` (best validation ``select_metric``),
``mle.pt`` (the cloned start), ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from envs.cli import ArgumentParser
from envs.fileio import write_json
from envs.multiwoz import data as mw_data
from vrb import algorithms, runs
from vrb.checkpoint import Checkpoint, load_checkpoint, restore_rng_states
from vrb.config import SIMULATORS, TrainConfig, fields_help
from vrb.errors import ConfigError, UsageError, VrbError
from vrb.expert import load_expert
from vrb.learner import RunContext, RunTracker
from vrb.logger import RunLogger

logger = logging.getLogger("vrb.train")


def resume_checkpoint(cfg: TrainConfig, out: Path) -> Checkpoint:
    """``out/last.pt``, refused when it belongs to another algorithm, simulator or seed."""
    path = out / "last.pt"
    checkpoint = load_checkpoint(path)
    saved = algorithms.config_of(checkpoint)
    if (saved.algo, saved.simulator, saved.seed) != (cfg.algo, cfg.simulator, cfg.seed):
        raise UsageError(
            f"{path} is a {saved.algo}/{saved.simulator}/seed {saved.seed} run; "
            f"cannot resume it as {cfg.algo}/{cfg.simulator}/seed {cfg.seed}"
        )
    logger.info("resuming %s at epoch %d", path, checkpoint.epoch + 1)
    return checkpoint


def run(cfg: TrainConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    """The run above, for any registered algorithm; returns the run's record (also ``results.json``)."""
    cfg = algorithms.make_config(cfg.to_dict())  # the algorithm's own options class, validated
    algorithm = algorithms.get(cfg.algo)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config field 'device' = {cfg.device!r}: this torch build sees no CUDA device")
    torch.set_num_threads(cfg.torch_threads)
    torch.set_flush_denormal(cfg.flush_denormal)
    torch.manual_seed(cfg.seed)  # the networks' initial weights
    generator = torch.Generator().manual_seed(cfg.seed)
    data = mw_data.load(cfg.data_dir)
    checksums = mw_data.verify(data.root)
    expert = load_expert(data, data.training_split(), states=cfg.expert_states)
    test = load_expert(data, "test", states=cfg.expert_states)
    logger.info(
        "expert data: %d transitions from the %s split (test: %d)", len(expert), expert.split, len(test)
    )

    checkpoint = resume_checkpoint(cfg, out) if resume else None
    start_epoch = checkpoint.epoch + 1 if checkpoint else 0
    ctx = RunContext(
        cfg,
        out,
        data,
        expert,
        test,
        generator,
        RunLogger(out, purge_step=start_epoch + 1 if resume else None),
    )
    learner = algorithm.make_learner(ctx)
    best: dict[str, Any] = {"epoch": -1}
    record: dict[str, Any] = {"training_split": expert.split}
    if checkpoint is not None:
        learner.load_state_dict(checkpoint.state)
        restore_rng_states({"torch": generator}, checkpoint.rng_states)
        best, record = checkpoint.state["best"], checkpoint.state["record"]
    tracker = RunTracker(ctx, learner.agent, learner.state_dict, checksums, best, record)
    if checkpoint is None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", cfg.to_dict())
        record |= learner.start()
        if "mle" in record:
            tracker.save("mle.pt", -1)
        tracker.start()

    if learner.online:
        for epoch in tracker.epochs(start_epoch):
            started = time.perf_counter()
            tracker.end_epoch(epoch, started, learner.learn(epoch))
            if tracker.stop:
                logger.info("no new best in %d validations: stopping after epoch %d", cfg.patience, epoch + 1)
                break
    learner.close()
    return tracker.finish()


# -- command line -------------------------------------------------------------------------------------------

FLAGS = {  # command-line flag -> config field (None: the field's default)
    "algo": "algo",
    "simulator": "simulator",
    "seed": "seed",
    "epochs": "epochs",
    "steps_per_epoch": "steps_per_epoch",
    "num_envs": "num_envs",
    "ic": "ic",
    "data_dir": "data_dir",
}


def build_parser() -> argparse.ArgumentParser:
    names = algorithms.registered()
    parser = ArgumentParser(
        prog="python -m vrb.train",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="registered algorithms:\n"
        + "\n".join(f"  {n:<8} {a.summary}" for n, a in sorted(names.items()))
        + f"\n\npresets (--config): {', '.join(runs.preset_names())}; every field: --show-config [--algo A]",
    )
    parser.add_argument("--algo", choices=sorted(names), help="the algorithm (default: vrb)")
    parser.add_argument("--simulator", choices=SIMULATORS, help="the simulated user (default: agenda)")
    parser.add_argument("--seed", type=int, help="the run's seed (default: 0)")
    parser.add_argument("--epochs", type=int, help="learning epochs (default: 200)")
    parser.add_argument("--steps-per-epoch", type=int, help="environment steps per epoch (default: 1024)")
    parser.add_argument("--num-envs", type=int, help="dialogues stepped side by side (default: 8)")
    parser.add_argument("--ic", type=float, help="VRB's information bound I_c (default: 0.5)")
    parser.add_argument(
        "--data-dir", help="data folder (default: $VRB_DATA_DIR, ../shared/multiwoz, the cache)"
    )
    parser.add_argument(
        "--config",
        metavar="PRESET|FILE",
        help=f"start from a preset ({', '.join(runs.preset_names())}) or YAML file",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any config field (JSON values); repeatable",
    )
    parser.add_argument("--out", type=Path, help="the run folder (default: a new RUNS/ALGO-SIM-sSEED-TIME)")
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="where new run folders go (default: runs)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from last.pt: of --out, else of the newest run of this name",
    )
    parser.add_argument("--show-config", action="store_true", help="print every field of the run and exit")
    return parser


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The run's fields: a preset, then the flags, then ``--set`` (later ones win)."""
    values: dict[str, Any] = {}
    flags = {field: getattr(args, flag) for flag, field in FLAGS.items() if getattr(args, flag) is not None}
    for item in args.set:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    chosen = {**flags, **values}
    if args.config:
        preset = runs.load_preset(args.config)
        algo = algorithms.get(chosen.get("algo", preset.get("algo", TrainConfig.algo)))
        every_field = {name for a in algorithms.registered().values() for name in a.options.field_names()}
        chosen = runs.fields_for(preset, algo.options, every_field) | chosen
    return chosen


def show_config(cfg: TrainConfig) -> str:
    rows = fields_help(type(cfg.options))
    width = max(len(name) for name, _, _ in rows)
    values = cfg.to_dict()
    return "\n".join(f"{name:<{width}}  {values[name]!s:<14} {meaning}" for name, _, meaning in rows)


def parse_config(argv: Sequence[str] | None) -> tuple[TrainConfig, Path, bool] | None:
    """The run's config, folder and whether it resumes; None when the command only printed something."""
    args = build_parser().parse_args(argv)
    cfg = algorithms.make_config(config_values(args))
    if args.show_config:
        print(show_config(cfg))
        return None
    if args.resume:
        out = args.out or runs.latest_run(args.runs, cfg)
        if not (out / "last.pt").is_file():
            raise UsageError(f"--resume: {out / 'last.pt'} does not exist (nothing to resume)")
    else:
        out = args.out or runs.new_run_folder(args.runs, cfg)
        if (out / "last.pt").is_file():
            raise UsageError(
                f"{out} already holds a run: pass --resume to continue it, or choose another --out"
            )
    return cfg.replace(out_dir=out), out, args.resume


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        parsed = parse_config(argv)
        if parsed is not None:
            run(*parsed)
    except (VrbError, mw_data.DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
