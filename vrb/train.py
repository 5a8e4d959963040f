"""Train a dialogue policy: ``python -m vrb.train --simulator agenda [--algo vrb|gdpl|ppo|mle|...]``.

One run, whatever the algorithm (``run``):
1. load the data and the expert transitions (``vrb.expert``), build the algorithm's learner;
2. a fresh run: the learner's warm start (behaviour cloning for the multi-label policies), then the starting
   policy is validated; a resumed run restores the learner, the generator and the record from ``last.pt``;
3. per epoch: the learner's own epoch (sampling, reward, update: its file reads like its algorithm box) →
   TensorBoard → every ``eval_every`` epochs a validation on fixed dialogues → ``best.pt`` / ``last.pt``.

Outputs in ``--out`` (default ``runs/ALGO-SIMULATOR-sSEED``): TensorBoard events, ``config.json``,
``last.pt`` (every epoch; ``--resume`` continues from it), ``best.pt`` (best validation ``select_metric``),
``mle.pt`` (the cloned start), ``results.json``, and ``run.lock``.

One run per folder (``run_folder``): the run holds an exclusive lock on ``run.lock`` for its whole life (the
kernel drops it when the process dies, ``kill -9`` included), and a second run in the same folder is refused,
naming the holder's pid. A fresh run never writes into a folder that holds a run (``last.pt``: resume it;
``results.json``: finished). What a fresh run killed before its first ``last.pt`` left (it cannot be resumed)
is cleared by the next fresh run in that folder, and a fresh run that fails before its first ``last.pt``
removes what it wrote. ``--resume`` continues the run as it was configured: a command asking for other
settings (any field but ``RESUME_MAY_CHANGE``) or other data is refused, naming the fields or files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch

from envs.cli import ArgumentParser, command
from envs.fileio import LockHeld, hold_lock, write_json
from envs.multiwoz import data as mw_data
from vrb import algorithms, runs
from vrb.checkpoint import Checkpoint, CheckpointError, load_checkpoint, restore_rng_states
from vrb.config import SIMULATORS, TrainConfig, fields_help
from vrb.errors import ConfigError, UsageError, VrbError
from vrb.expert import load_expert
from vrb.learners import VRBOptions, suspicious_settings
from vrb.logger import RunLogger
from vrb.loop import Learner, RunContext, RunTracker

logger = logging.getLogger("vrb.train")


RUN_LOCK = "run.lock"  # held by the run using the folder (envs.fileio.hold_lock); never removed while held
RUN_FILES = ("config.json", "mle.pt", "best.pt", "last.pt", "results.json")  # besides TensorBoard's events
EVENTS_GLOB = "events.out.tfevents.*"
# fields a resumed run may set anew: how long it runs and where, not what it learns
RESUME_MAY_CHANGE = ("epochs", "patience", "out_dir", "data_dir", "device", "torch_threads", "workers")


def _differences(saved: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    return [
        f"{name} {saved.get(name)!r} (this command: {value!r})"
        for name, value in asked.items()
        if name not in RESUME_MAY_CHANGE and saved.get(name) != value
    ]


def resume_checkpoint(cfg: TrainConfig, out: Path, checksums: dict[str, str]) -> Checkpoint:
    """``out/last.pt``, refused when it belongs to another algorithm, simulator or seed, when the command asks
    for other settings than the run's (``RESUME_MAY_CHANGE`` aside), or when the data files differ."""
    path = out / "last.pt"
    checkpoint = load_checkpoint(path)
    saved = algorithms.config_of(checkpoint)
    if (saved.algo, saved.simulator, saved.seed) != (cfg.algo, cfg.simulator, cfg.seed):
        raise UsageError(
            f"{path} is a {saved.algo}/{saved.simulator}/seed {saved.seed} run; "
            f"cannot resume it as {cfg.algo}/{cfg.simulator}/seed {cfg.seed}"
        )
    differences = _differences(saved.to_dict(), cfg.to_dict())
    if differences:
        raise UsageError(
            f"--resume: {path} was trained with {'; '.join(differences)}; resume it with its own config "
            "(vrb.algorithms.config_of) or start a new run"
        )
    changed = sorted(
        name
        for name in {*checkpoint.data_checksums, *checksums}
        if checkpoint.data_checksums.get(name) != checksums.get(name)
    )
    if checkpoint.data_checksums and changed:
        raise UsageError(
            f"--resume: {path} was trained on other data: {', '.join(changed[:3])} differ "
            f"({len(changed)} files); resume it with the data folder it used"
        )
    logger.info("resuming %s at epoch %d", path, checkpoint.epoch + 1)
    return checkpoint


def _clear_unfinished(out: Path) -> list[str]:
    """Remove what a run that never wrote ``last.pt`` left in ``out`` (its files and TensorBoard events; any
    other file stays): such a run cannot be resumed, and its leftovers must not mix with the next run's."""
    removed = []
    for name in RUN_FILES:
        if (out / name).is_file():
            (out / name).unlink()
            removed.append(name)
    for events in sorted(out.rglob(EVENTS_GLOB)):
        events.unlink()
        removed.append(events.relative_to(out).as_posix())
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):  # deepest first
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


@contextmanager
def run_folder(out: Path, resume: bool) -> Iterator[None]:
    """Hold the run folder for the run (module docstring): its lock, the refusals, the clean-up."""
    created = not out.exists()
    with ExitStack() as held:
        try:
            out.mkdir(parents=True, exist_ok=True)
            held.enter_context(hold_lock(out / RUN_LOCK))
        except LockHeld as exc:
            raise UsageError(
                f"run folder {out} is in use by {exc.holder or 'another run'}: wait for it to end, "
                "or choose another --out"
            ) from None
        except OSError as exc:
            raise UsageError(f"run folder {out} cannot be used: {exc.strerror or exc}") from None
        if not resume:
            for name, state in (("last.pt", "a run"), ("results.json", "a finished run")):
                if (out / name).is_file():
                    raise UsageError(
                        f"{out} already holds {state} ({name}): pass --resume to continue a run, "
                        "or choose another --out"
                    )
            removed = _clear_unfinished(out)
            if removed:
                logger.warning("%s: removed what a run killed before its first epoch left: %s", out, removed)
        try:
            yield
        except BaseException:
            if not resume and not (out / "last.pt").is_file():
                _clear_unfinished(out)
                if created and [p.name for p in out.iterdir()] == [RUN_LOCK]:
                    shutil.rmtree(out)  # the lock file goes with it: nothing of this run is left
            raise


def run(cfg: TrainConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    """The run above, for any registered algorithm; returns the run's record (also ``results.json``)."""
    cfg = algorithms.make_config(cfg.to_dict())  # the algorithm's own options class, validated
    for message in suspicious_settings(cfg):
        logger.warning("suspicious setting: %s", message)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config field 'device' = {cfg.device!r}: this torch build sees no CUDA device")
    with run_folder(out, resume):
        return _run(cfg, out, resume)


def restore(
    learner: Learner, checkpoint: Checkpoint, generator: torch.Generator, cfg: TrainConfig
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Put the learner and the generator back where ``checkpoint`` left them: (best, record). A state that does
    not fit the run's own networks (a file not written by this run) is a CheckpointError naming the file."""
    try:
        learner.load_state_dict(checkpoint.state)
        restore_rng_states({"torch": generator}, checkpoint.rng_states)
        return checkpoint.state["best"], checkpoint.state["record"]
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        logger.debug("restoring %s failed", checkpoint.path, exc_info=True)
        reason = " ".join(str(exc).split())
        raise CheckpointError(
            f"checkpoint {checkpoint.path} does not fit a {cfg.algo} run of its own config "
            f"({type(exc).__name__}: {reason[:240]})"
        ) from exc


def _run(cfg: TrainConfig, out: Path, resume: bool) -> dict[str, Any]:
    if not resume:
        write_json(out / "config.json", cfg.to_dict())
    torch.set_num_threads(cfg.torch_threads)
    torch.set_flush_denormal(cfg.flush_denormal)
    torch.manual_seed(cfg.seed)  # the networks' initial weights
    generator = torch.Generator().manual_seed(cfg.seed)
    data = mw_data.load(cfg.data_dir)
    checksums = mw_data.verify(data.root)
    checkpoint = resume_checkpoint(cfg, out, checksums) if resume else None
    expert = load_expert(data, data.training_split(), states=cfg.expert_states)
    test = load_expert(data, "test", states=cfg.expert_states)
    logger.info(
        "expert data: %d transitions from the %s split (test: %d)", len(expert), expert.split, len(test)
    )

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
    learner = algorithms.get(cfg.algo).make_learner(ctx)
    try:
        best: dict[str, Any] = {"epoch": 0}
        record: dict[str, Any] = {"training_split": expert.split}
        if checkpoint is not None:
            best, record = restore(learner, checkpoint, generator, cfg)
        tracker = RunTracker(ctx, learner.agent, learner.state_dict, checksums, best, record)
        if checkpoint is None:
            record |= learner.start()
            if "mle" in record:
                tracker.save("mle.pt", -1)
            tracker.start()

        if learner.online:
            for epoch in tracker.epochs(start_epoch):
                started = time.perf_counter()
                tracker.end_epoch(epoch, started, learner.learn_epoch(epoch))
                if tracker.stop:
                    logger.info(
                        "no new best in %d validations: stopping after epoch %d", cfg.patience, epoch + 1
                    )
                    break
    except BaseException:
        ctx.tb.close()  # a failed run's events are complete up to here (a fresh one removes them)
        raise
    finally:
        learner.close()  # sampling workers included, whatever happened
    return tracker.finish()


# -- command line -------------------------------------------------------------------------------------------

# config fields with a flag of their own (--steps-per-epoch for steps_per_epoch); their type, default and help
# come from the fields' declarations (vrb.config, vrb.learners); every other field is reached with --set
FLAGS = ("algo", "simulator", "seed", "epochs", "steps_per_epoch", "num_envs", "workers", "ic", "data_dir")


def _add_field_flags(parser: argparse.ArgumentParser) -> None:
    declared = {name: (default, meaning) for name, default, meaning in fields_help(VRBOptions)}
    choices = {"algo": algorithms.names(), "simulator": list(SIMULATORS)}
    for name in FLAGS:
        default, meaning = declared[name]
        kind = type(default) if isinstance(default, int | float) and not isinstance(default, bool) else str
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            choices=choices.get(name),
            help=f"{meaning}" + ("" if default is None else f" (default: {default})"),
        )


def build_parser() -> argparse.ArgumentParser:
    names = algorithms.registered()
    parser = ArgumentParser(
        prog="python -m vrb.train",
        description=__doc__.splitlines()[0],
        epilog="registered algorithms:\n"
        + "\n".join(f"  {n:<8} {a.summary}" for n, a in sorted(names.items()))
        + f"\n\npresets (--config): {', '.join(runs.preset_names())}; every field: --show-config [--algo A]",
    )
    _add_field_flags(parser)
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
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue a run from its last.pt with its own settings: RUN_DIR, else --out, else the newest run "
        f"of this algorithm, simulator and seed; only {', '.join(RESUME_MAY_CHANGE)} may be set anew",
    )
    parser.add_argument("--show-config", action="store_true", help="print every field of the run and exit")
    return parser


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The run's fields: a preset, then the flags, then ``--set`` (later ones win)."""
    values: dict[str, Any] = {}
    flags = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
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
        with contextlib.suppress(BrokenPipeError):  # | head closed the pipe: nothing more to say
            print(show_config(cfg), flush=True)
        return None
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a run folder")
    if args.resume:
        out = resume_folder(args, cfg)
        return resumed_config(out, config_values(args)), out, True
    out = args.out or runs.new_run_folder(args.runs, cfg)
    return cfg.replace(out_dir=out), out, False


def resume_folder(args: argparse.Namespace, cfg: TrainConfig) -> Path:
    """The run ``--resume`` continues: ``--resume RUN_DIR``, else ``--out``, else the newest of the name."""
    if args.config:
        raise UsageError(f"--config {args.config} with --resume: a resumed run keeps its own settings")
    named = None if args.resume is True else Path(args.resume)
    if named is not None and args.out is not None and named != args.out:
        raise UsageError(f"--resume {named} and --out {args.out}: name the run folder once")
    out = named or args.out or runs.latest_run(args.runs, cfg)
    if not (out / "last.pt").is_file():
        raise UsageError(f"--resume: {out / 'last.pt'} does not exist (nothing to resume)")
    return out


def resumed_config(out: Path, asked: dict[str, Any]) -> TrainConfig:
    """The run's own config from ``out/last.pt``, with the fields a resume may change set anew; a command that
    asks for another value of any other field is refused, naming it."""
    path = out / "last.pt"
    saved = algorithms.config_of(load_checkpoint(path)).to_dict()
    if asked.get("algo", saved["algo"]) != saved["algo"]:
        raise UsageError(f"--resume: {path} is a {saved['algo']} run, not {asked['algo']}")
    cfg = algorithms.make_config({**saved, **asked})
    differences = _differences(saved, cfg.to_dict())
    if differences:
        raise UsageError(
            f"--resume: {path} was trained with {'; '.join(differences)}; only "
            f"{', '.join(RESUME_MAY_CHANGE)} may change when a run resumes"
        )
    return cfg.replace(out_dir=out)


@command(VrbError, mw_data.DataError, interrupted="a run with a last.pt continues with --resume")
def main(argv: Sequence[str] | None = None) -> int:
    """The command line; its errors, Ctrl-C and a closed pipe end as ``envs.cli.command`` says."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parsed = parse_config(argv)
    if parsed is not None:
        run(*parsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
