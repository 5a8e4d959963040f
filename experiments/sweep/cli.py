"""Run a grid of training runs as trials (Ray Tune, or child processes): python -m experiments.sweep CONFIG.yaml

The command line of ``experiments.sweep`` (whose docstring describes the sweep, its config file and engines).
"""

from __future__ import annotations

import fnmatch
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from envs.cli import ArgumentParser, command
from envs.multiwoz.data import DataError
from experiments.store import STORE_NAME, ResultStore
from experiments.sweep.driver import ENGINES, run_sweep
from experiments.sweep.overrides import apply_overrides, parse_sets
from experiments.sweep.spec import SpecError, Trial, load_spec
from experiments.sweep.trial import LOG_FORMAT
from vrb.errors import UsageError


@command(SpecError, DataError, UsageError, interrupted="the same command resumes the sweep")
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="sweep config (YAML), e.g. experiments/configs/smoke.yaml")
    parser.add_argument(
        "--address",
        help="an existing Ray cluster ('auto', HOST:PORT or ray://HOST:PORT); default: start a local Ray",
    )
    parser.add_argument("--max-concurrent", type=int, help="trials running at once (default: as many as fit)")
    parser.add_argument("--max-retries", type=int, help="restarts of a crashed trial (default: the config's)")
    parser.add_argument("--out", help="sweep folder (default runs/NAME, NAME being the config's name)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a config field for every trial, like the config's base (JSON values, as python -m vrb.train "
        "--set reads them); a grid axis of that name becomes this one value; repeatable",
    )
    parser.add_argument(
        "--epochs", type=int, metavar="N", help="learning epochs of every trial: short for --set epochs=N"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="the seeds of every grid block, in place of the config's (e.g. --seeds 0 1)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="ray",
        help="ray (default: a local Ray, or the cluster at --address) or processes (this machine, no Ray)",
    )
    parser.add_argument(
        "--skip-failed", action="store_true", help="do not retry trials the store has as failed"
    )
    parser.add_argument(
        "--trials",
        nargs="+",
        metavar="PATTERN",
        help="only the trials whose id matches one of these shell patterns (e.g. 'vrb-vhus-*'): a sweep split "
        "over machines, each running its share under the same ids",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the trials and whether they are done")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        parser.error(f"--max-concurrent {args.max_concurrent}: expected a positive number")
    if args.max_retries is not None and args.max_retries < 0:
        parser.error(f"--max-retries {args.max_retries}: expected 0 or more")
    if args.address and args.engine != "ray":
        parser.error(f"--address {args.address}: a Ray cluster needs --engine ray")
    spec = apply_overrides(load_spec(args.config), parse_sets(args.set, args.epochs), args.seeds)
    sweep_dir = Path(args.out or f"runs/{spec.name}")
    selected = _select(spec.trials(), args.trials or [], spec.name)
    if args.dry_run:
        done = ResultStore(sweep_dir).finished_ids() if (sweep_dir / STORE_NAME).is_file() else set()
        for trial in selected:
            print(f"{'done' if trial.trial_id in done else 'todo'}  {trial.trial_id}")
        return 0
    command_line = shlex.join(
        ["python", "-m", "experiments.sweep", *(argv if argv is not None else sys.argv[1:])]
    )
    # bad data or a busy sweep folder is found before any trial starts: one line, exit code 2
    outcome = run_sweep(
        spec,
        sweep_dir,
        command=command_line,
        address=args.address,
        max_concurrent=args.max_concurrent,
        max_retries=args.max_retries,
        skip_failed=args.skip_failed,
        engine=args.engine,
        trial_ids=[trial.trial_id for trial in selected] if args.trials else None,
    )
    print(
        f"sweep {spec.name}: {outcome.total} trials; skipped {len(outcome.skipped)} already finished; "
        f"ran {len(outcome.ran)}; failed {len(outcome.failed)}; store {sweep_dir / STORE_NAME}"
    )
    for trial_id in outcome.failed:
        print(
            f"failed: {trial_id} (see its row in the store and {sweep_dir / 'trials' / trial_id}); "
            "run the same command again to retry"
        )
    return 1 if outcome.failed else 0


def _select(trials: list[Trial], patterns: Sequence[str], name: str) -> list[Trial]:
    """The trials whose id matches one of ``patterns`` (all of them without patterns), in the config's order."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(trial.trial_id, pattern) for trial in trials):
            raise UsageError(
                f"--trials {pattern!r}: matches none of the {len(trials)} trial ids of sweep {name!r} "
                "(--dry-run lists them)"
            )
    if not patterns:
        return trials
    return [t for t in trials if any(fnmatch.fnmatchcase(t.trial_id, pattern) for pattern in patterns)]
