"""Run a grid of training runs as Ray Tune trials: ``python -m experiments.sweep CONFIG.yaml``.

    python -m experiments.sweep experiments/configs/smoke.yaml --out sweeps/smoke --max-concurrent 2
    python -m experiments.sweep experiments/configs/robustness.yaml --out experiments/results/robustness
    python -m experiments.sweep experiments/configs/paper_table.yaml --address auto   # on a Ray head node
    python -m experiments.sweep experiments/configs/paper_table.yaml --engine processes  # one machine, no Ray

A trial is one ``vrb.train.train`` run in ``SWEEP_DIR/trials/TRIAL_ID`` followed by a greedy evaluation of its
``best.pt`` on ``evaluation.dialogues`` seeded dialogues under the trial's own simulator and user noise. The
driver appends one row per trial to ``SWEEP_DIR/results.sqlite`` (``experiments.store``) as soon as the
trial ends: ``finished`` with its metrics, or ``failed`` once ``max_retries`` restarts are spent. A killed
attempt is restarted by Ray Tune and continues from the trial's ``last.pt``; the other trials never notice.

Re-running the same command skips every trial the store has as finished and runs the rest (failed ones
again, unless ``--skip-failed``). A trial's id carries a digest of the settings the config file gives it
(base, grid point, evaluation), so editing the file makes new trials instead of reusing stale results, while
a code change that adds or retunes TrainConfig defaults does not orphan finished ones (each row records its
code version, and the report lists them). A local sweep first builds the corpus
expert data and (when a trial uses VHUS) the trained VHUS user once, so concurrent trials only load them.

The config file (see ``experiments/configs/``)::

    base: {TrainConfig field: value, ...}   # shared by every trial
    grid:            # blocks; each block's lists multiply out, the sweep is the union of the blocks
      - {algo: [vrb], simulator: [agenda], seed: [0, 1], ic: [0.1, 0.5], user_noise: [0.0, 0.2]}
    evaluation: {dialogues: 1000, first_seed: 0}
    trials: {max_retries: 2, cpus: 1}

On a cluster, run this command on the head node with ``--address auto`` (or through ``ray job submit``): the
driver writes the store. Every node needs this project installed and the MultiWOZ data folder, and ``--out``
must be on a file system all nodes share (trials write their folders there).

``--engine processes`` runs the same trials without Ray, one child process per attempt on this machine, for
a machine where Ray cannot be installed. The store, the trial folders, the retries (a killed child is
restarted from ``last.pt``) and the skip-on-re-run behave as under Ray; each trial's log is its
``trial.log``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import itertools
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import platform
import shlex
import shutil
import socket
import sys
import time
import traceback
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from envs.multiwoz.data import DataError
from experiments.store import STORE_NAME, ResultStore, TrialRecord
from vrb.config import TrainConfig

logger = logging.getLogger("experiments.sweep")

SPEC_KEYS = ("name", "base", "grid", "evaluation", "trials")
EVALUATION_DEFAULTS = {"dialogues": 1000, "first_seed": 0}
TRIAL_DEFAULTS = {"max_retries": 2, "cpus": 1}
# how each axis is spelt in a trial id, in this order (other axes follow by name)
AXIS_LABELS = {"algo": "", "simulator": "", "seed": "s", "ic": "ic", "user_noise": "noise"}
# a finished trial's metrics and versions travel to the driver as one string under this key
PAYLOAD_KEY = "trial_record_json"
ERROR_FILE = "error.txt"  # the last attempt's traceback, written by the trial itself
ATTEMPTS_FILE = "attempts.jsonl"  # one line per attempt: pid, host, start time (who to kill, who ran it)
PAYLOAD_FILE = "trial_record.json"  # a finished trial's metrics and versions (the processes engine's channel)
LOG_FILE = "trial.log"  # a child process's stdout and stderr under the processes engine
ENGINES = ("ray", "processes")


class SpecError(ValueError):
    """A sweep config that cannot run; the message names the file and the bad entry."""


@dataclasses.dataclass(frozen=True)
class Trial:
    trial_id: str
    axes: dict[str, Any]
    config: TrainConfig

    def params(self, sweep_dir: Path, evaluation: Mapping[str, int]) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "axes": self.axes,
            "config": self.config.to_dict(),
            "out": str(sweep_dir / "trials" / self.trial_id),
            "evaluation": dict(evaluation),
        }


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    name: str
    base: dict[str, Any]
    grid: list[dict[str, list[Any]]]
    evaluation: dict[str, int]
    max_retries: int
    cpus: float

    def trials(self) -> list[Trial]:
        """Every grid point once, in config order; equal configs from two blocks are one trial."""
        trials: dict[str, Trial] = {}
        for block in self.grid:
            names = list(block)
            for values in itertools.product(*(block[name] for name in names)):
                axes = dict(zip(names, values, strict=True))
                try:
                    config = TrainConfig.from_dict({**self.base, **axes})
                except (TypeError, ValueError) as exc:
                    raise SpecError(f"sweep {self.name!r}, grid point {axes}: {exc}") from exc
                explicit = {*self.base, *axes}
                trial = Trial(_trial_id(axes, config, explicit, self.evaluation), axes, config)
                trials.setdefault(trial.trial_id, trial)
        return list(trials.values())


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"sweep config {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"sweep config {path}: expected a mapping with keys {SPEC_KEYS}")
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise SpecError(f"sweep config {path}: unknown key {unknown[0]!r}; expected some of {SPEC_KEYS}")
    base = raw.get("base") or {}
    grid = raw.get("grid")
    if isinstance(grid, dict):
        grid = [grid]
    if (
        not isinstance(base, dict)
        or not isinstance(grid, list)
        or not grid
        or not all(isinstance(b, dict) for b in grid)
    ):
        raise SpecError(
            f"sweep config {path}: 'base' must be a mapping and 'grid' a non-empty list of mappings"
        )
    blocks = [
        {name: values if isinstance(values, list) else [values] for name, values in block.items()}
        for block in grid
    ]
    for block in blocks:
        for name, values in block.items():
            if not values:
                raise SpecError(f"sweep config {path}: grid axis {name!r} has no values")
    evaluation = _section(path, raw, "evaluation", EVALUATION_DEFAULTS)
    trials = _section(path, raw, "trials", TRIAL_DEFAULTS)
    if not isinstance(evaluation["dialogues"], int) or evaluation["dialogues"] < 1:
        raise SpecError(
            f"sweep config {path}: evaluation.dialogues = {evaluation['dialogues']!r}, expected >= 1"
        )
    if not isinstance(trials["max_retries"], int) or trials["max_retries"] < 0:
        raise SpecError(f"sweep config {path}: trials.max_retries = {trials['max_retries']!r}, expected >= 0")
    spec = SweepSpec(
        name=str(raw.get("name") or path.stem),
        base=base,
        grid=blocks,
        evaluation=evaluation,
        max_retries=trials["max_retries"],
        cpus=float(trials["cpus"]),
    )
    spec.trials()  # every grid point must be a valid TrainConfig before anything starts
    return spec


def _section(path: Path, raw: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    values = raw.get(key) or {}
    unknown = sorted(set(values) - set(defaults)) if isinstance(values, dict) else [values]
    if unknown:
        raise SpecError(
            f"sweep config {path}: {key}.{unknown[0]} is unknown; expected some of {sorted(defaults)}"
        )
    return {**defaults, **values}


def _trial_id(
    axes: Mapping[str, Any],
    config: TrainConfig,
    explicit_fields: Iterable[str],
    evaluation: Mapping[str, int],
) -> str:
    """A readable label of the grid point plus a digest of every setting the config file names."""
    ordered = [name for name in AXIS_LABELS if name in axes] + sorted(set(axes) - set(AXIS_LABELS))
    label = "-".join(f"{AXIS_LABELS.get(name, name)}{axes[name]}" for name in ordered)
    explicit = {name: value for name, value in config.to_dict().items() if name in explicit_fields}
    identity = {**explicit, "evaluation": dict(evaluation)}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{label}-{digest}".replace("/", "_").replace(" ", "_")


# -- inside a Ray worker ------------------------------------------------------------------------------------


def run_trial(trial_config: Mapping[str, Any], table: Mapping[str, Mapping[str, Any]]) -> None:
    """Train (resuming a killed attempt from ``last.pt``), evaluate ``best.pt``, report the record to Tune."""
    from ray import tune

    params = table[trial_config["trial_id"]]
    os.environ["TQDM_DISABLE"] = "1"  # progress bars of many trials interleave into noise on the driver
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = Path(params["out"])
    try:
        payload = train_and_evaluate(TrainConfig.from_dict(params["config"]), out, **params["evaluation"])
    except Exception:
        # Ray's own error file can still be unwritten when the driver hears of the failure; this one is not.
        out.mkdir(parents=True, exist_ok=True)
        (out / ERROR_FILE).write_text(traceback.format_exc())
        raise
    tune.report({"success": payload["metrics"]["success"], PAYLOAD_KEY: json.dumps(payload)})


def train_and_evaluate(
    cfg: TrainConfig, out: Path, *, dialogues: int, first_seed: int, engine: str = "ray"
) -> dict[str, Any]:
    import torch

    from envs.dialogue_env import DialogueEnv
    from envs.multiwoz import data as mw_data
    from vrb.checkpoint import code_version
    from vrb.evaluate import confidence_interval, load_agent, run_dialogues
    from vrb.train import train

    resume = (out / "last.pt").is_file()
    if not resume and out.exists():  # a dead attempt that never reached an epoch: start clean, no mixed logs
        for stale in out.iterdir():
            if stale.name != ATTEMPTS_FILE:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    attempt = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "resume": resume,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with open(out / ATTEMPTS_FILE, "a") as f:
        f.write(json.dumps(attempt) + "\n")
    record = train(cfg.replace(out_dir=str(out)), out, resume)

    agent, _ = load_agent(out / "best.pt")
    env = DialogueEnv(simulator=cfg.simulator, data_dir=cfg.data_dir or None, user_noise=cfg.user_noise)
    result = run_dialogues(agent, env, range(first_seed, first_seed + dialogues))
    metrics = dict(result.summary)
    for key in ("success", "paper_success"):
        metrics[f"{key}_ci95"] = confidence_interval([d[key] for d in result.dialogues])
    metrics |= {
        "best_epoch": record.get("best", {}).get("epoch"),
        "best_validation_success": record.get("best", {}).get("success"),
        "training_split": record.get("training_split"),
        "wall_s": time.time() - started,
    }
    tmp = out / "evaluation.json.tmp"
    tmp.write_text(json.dumps({"summary": metrics, "dialogues": result.dialogues}, default=float))
    tmp.replace(out / "evaluation.json")

    data = mw_data.load(cfg.data_dir or None)
    versions = {
        "code": code_version(),
        "data_dir": str(data.root),
        "data_checksums": mw_data.verify(data.root),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "engine": engine,
        "host": socket.gethostname(),
    }
    if engine == "ray":
        import ray

        versions["ray"] = ray.__version__
    return {"metrics": metrics, "versions": versions}


# -- the processes engine: one child per attempt ------------------------------------------------------------


def run_trial_process(params: Mapping[str, Any]) -> None:
    """A child's whole life: its output to ``trial.log``, the record to ``trial_record.json`` on success."""
    out = Path(params["out"])
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOG_FILE, "a") as log:  # the duplicated descriptors outlive this handle
        os.dup2(log.fileno(), sys.stdout.fileno())
        os.dup2(log.fileno(), sys.stderr.fileno())
    os.environ["TQDM_DISABLE"] = "1"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        payload = train_and_evaluate(
            TrainConfig.from_dict(params["config"]), out, engine="processes", **params["evaluation"]
        )
    except BaseException:
        (out / ERROR_FILE).write_text(traceback.format_exc())
        raise
    tmp = out / f"{PAYLOAD_FILE}.tmp"
    tmp.write_text(json.dumps(payload, default=float))
    tmp.replace(out / PAYLOAD_FILE)


def _run_in_processes(
    spec: SweepSpec,
    sweep_dir: Path,
    pending: Sequence[Trial],
    record: _Recorder,
    max_concurrent: int | None,
    retries: int,
) -> None:
    """Keep up to ``max_concurrent`` trials running; a child that dies is restarted until its retries are spent."""
    # spawn, not fork: the driver holds torch state that a fork would copy mid-flight
    context = multiprocessing.get_context("spawn")
    slots = max_concurrent or max(1, int((os.cpu_count() or 1) // max(spec.cpus, 1)))
    queue = deque(pending)
    failures: Counter[str] = Counter()
    running: dict[int, tuple[multiprocessing.process.BaseProcess, Trial, Path]] = {}
    try:
        while queue or running:
            while queue and len(running) < slots:
                trial = queue.popleft()
                params = trial.params(sweep_dir, spec.evaluation)
                out = Path(params["out"])
                # what an earlier attempt left says nothing of this one
                for stale in (PAYLOAD_FILE, ERROR_FILE):
                    (out / stale).unlink(missing_ok=True)
                child = context.Process(target=run_trial_process, args=(params,), name=trial.trial_id)
                child.start()
                running[child.sentinel] = (child, trial, out)
            for sentinel in multiprocessing.connection.wait(list(running)):
                child, trial, out = running.pop(sentinel)
                child.join()
                payload_path = out / PAYLOAD_FILE
                if child.exitcode == 0 and payload_path.is_file():
                    record(
                        trial,
                        "finished",
                        failures[trial.trial_id] + 1,
                        json.loads(payload_path.read_text()),
                        "",
                    )
                    continue
                failures[trial.trial_id] += 1
                error_path = out / ERROR_FILE
                error = error_path.read_text() if error_path.is_file() else ""
                if failures[trial.trial_id] <= retries:
                    logger.warning(
                        "trial %s: attempt %d ended with exit code %s; restarting it from its last.pt",
                        trial.trial_id,
                        failures[trial.trial_id],
                        child.exitcode,
                    )
                    queue.appendleft(trial)
                else:
                    reason = error[-4000:] or f"the trial's process died (exit code {child.exitcode})"
                    record(trial, "failed", failures[trial.trial_id], {}, reason)
    finally:  # an interrupted driver leaves no orphans; their trials resume from last.pt on the next run
        for child, _, _ in running.values():
            child.terminate()
        for child, _, _ in running.values():
            child.join()


# -- the Ray engine ------------------------------------------------------------------------------------------


def _recorder(record: _Recorder):
    from ray import tune

    class Recorder(tune.Callback):
        """Appends each ended trial to the store from the driver (the one writer, wherever trials ran)."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            known = trial.config["trial_id"]
            raw = (trial.last_result or {}).get(PAYLOAD_KEY)
            if raw is None:
                record(
                    known,
                    "failed",
                    trial.num_failures,
                    {},
                    "the trial ended without reporting its evaluation",
                )
            else:
                record(known, "finished", trial.num_failures + 1, json.loads(raw), "")

        def on_trial_error(self, iteration, trials, trial, **info):
            try:
                error = str(trial.get_error() or "")
            except Exception as exc:  # the error file may be unreadable; the failure itself is what matters
                error = f"(error text unavailable: {exc})"
            known = trial.config["trial_id"]
            if not error:
                written = record.sweep_dir / "trials" / known / ERROR_FILE
                error = written.read_text() if written.is_file() else ""
            record(known, "failed", trial.num_failures, {}, error[-4000:] or "the trial's process died")

    return Recorder()


def _run_on_ray(
    spec: SweepSpec,
    sweep_dir: Path,
    pending: Sequence[Trial],
    record: _Recorder,
    max_concurrent: int | None,
    retries: int,
    address: str | None,
) -> None:
    import ray
    from ray import tune

    started_ray = not ray.is_initialized()
    if started_ray and address:
        ray.init(address=address)
    elif started_ray:
        ray.init(include_dashboard=False, configure_logging=False)
    try:
        table = {trial.trial_id: trial.params(sweep_dir, spec.evaluation) for trial in pending}
        trainable = tune.with_resources(tune.with_parameters(run_trial, table=table), {"cpu": spec.cpus})
        tuner = tune.Tuner(
            trainable,
            param_space={"trial_id": tune.grid_search(list(table))},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=False),
            run_config=tune.RunConfig(
                name=f"{spec.name}-{datetime.now(UTC):%Y%m%dT%H%M%S}",
                storage_path=str(sweep_dir / "ray"),
                failure_config=tune.FailureConfig(max_failures=retries),
                callbacks=[_recorder(record)],
            ),
        )
        tuner.fit()
    finally:
        if started_ray:
            ray.shutdown()


# -- the driver ---------------------------------------------------------------------------------------------


class _Recorder:
    """Appends an ended trial to the store (the driver is its one writer) and keeps the failed ones' ids."""

    def __init__(self, store: ResultStore, trials: Sequence[Trial], evaluation: Mapping[str, int]):
        self.store = store
        self.sweep_dir = store.path.parent
        self.trials = {trial.trial_id: trial for trial in trials}
        self.evaluation = dict(evaluation)
        self.failed: list[str] = []

    def __call__(
        self, trial: Trial | str, status: str, attempts: int, payload: Mapping[str, Any], error: str
    ) -> None:
        known = self.trials[trial if isinstance(trial, str) else trial.trial_id]
        row = self.store.append(
            TrialRecord(
                trial_id=known.trial_id,
                status=status,
                attempts=attempts,
                axes=known.axes,
                config={**known.config.to_dict(), "evaluation": self.evaluation},
                metrics=payload.get("metrics", {}),
                versions=payload.get("versions", {}),
                error=error,
            )
        )
        logger.info(
            "trial %s %s after %d attempt(s) (store row %d)", known.trial_id, status, attempts, row.row
        )
        if status == "failed":
            self.failed.append(known.trial_id)


def warm_caches(trials: Sequence[Trial]) -> None:
    """Build the corpus expert data and the trained VHUS once here, not in every concurrent first trial."""
    from envs.dialogue_env import build_world, make_user
    from vrb.expert import load_expert

    for data_dir in sorted({t.config.data_dir for t in trials}):
        world = build_world(data_dir or None)
        for split in (world.data.training_split(), "test"):
            load_expert(world.data, split)
        if any(t.config.simulator == "vhus" and t.config.data_dir == data_dir for t in trials):
            make_user("vhus", world)


@dataclasses.dataclass
class SweepOutcome:
    total: int
    skipped: list[str]
    ran: list[str]
    failed: list[str]


def run_sweep(
    spec: SweepSpec,
    sweep_dir: Path,
    *,
    address: str | None = None,
    max_concurrent: int | None = None,
    max_retries: int | None = None,
    skip_failed: bool = False,
    engine: str = "ray",
) -> SweepOutcome:
    """Run every trial of ``spec`` the store in ``sweep_dir`` does not have as finished."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: expected one of {ENGINES}")
    if engine == "processes" and address:
        raise ValueError("--address names a Ray cluster; it needs --engine ray")
    sweep_dir = sweep_dir.resolve()
    store = ResultStore(sweep_dir)
    trials = spec.trials()
    done = store.finished_ids()
    if skip_failed:
        done |= {record.trial_id for record in store.records("failed")}
    pending = [trial for trial in trials if trial.trial_id not in done]
    skipped = [trial.trial_id for trial in trials if trial.trial_id in done]
    logger.info(
        "sweep %s: %d trials, %d already in the store, %d to run (engine: %s)",
        spec.name,
        len(trials),
        len(skipped),
        len(pending),
        engine,
    )
    record = _Recorder(store, pending, spec.evaluation)
    outcome = SweepOutcome(
        total=len(trials), skipped=skipped, ran=[t.trial_id for t in pending], failed=record.failed
    )
    if not pending:
        return outcome

    if address is None:
        warm_caches(pending)
    else:
        logger.warning(
            "on a cluster, a node without the expert-data and VHUS caches builds them in each "
            "trial; run `python -m envs.vhus.train` on every node first when the sweep uses VHUS"
        )
    retries = spec.max_retries if max_retries is None else max_retries
    if engine == "ray":
        _run_on_ray(spec, sweep_dir, pending, record, max_concurrent, retries, address)
    else:
        _run_in_processes(spec, sweep_dir, pending, record, max_concurrent, retries)
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="sweep config (YAML), e.g. experiments/configs/smoke.yaml")
    parser.add_argument(
        "--address",
        help="an existing Ray cluster ('auto', HOST:PORT or ray://HOST:PORT); default: start a local Ray",
    )
    parser.add_argument("--max-concurrent", type=int, help="trials running at once (default: as many as fit)")
    parser.add_argument("--max-retries", type=int, help="restarts of a crashed trial (default: the config's)")
    parser.add_argument("--out", help="sweep folder (default sweeps/NAME)")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="ray",
        help="ray (default: a local Ray, or the cluster at --address) or processes (this machine, no Ray)",
    )
    parser.add_argument(
        "--skip-failed", action="store_true", help="do not retry trials the store has as failed"
    )
    parser.add_argument("--dry-run", action="store_true", help="list the trials and whether they are done")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        parser.error(f"--max-concurrent {args.max_concurrent}: expected a positive number")
    if args.max_retries is not None and args.max_retries < 0:
        parser.error(f"--max-retries {args.max_retries}: expected 0 or more")
    if args.address and args.engine != "ray":
        parser.error(f"--address {args.address}: a Ray cluster needs --engine ray")
    try:
        spec = load_spec(args.config)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sweep_dir = Path(args.out or f"sweeps/{spec.name}")
    if args.dry_run:
        done = ResultStore(sweep_dir).finished_ids() if (sweep_dir / STORE_NAME).is_file() else set()
        for trial in spec.trials():
            print(f"{'done' if trial.trial_id in done else 'todo'}  {trial.trial_id}")
        return 0
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(
        sweep_dir / "commands.log", "a"
    ) as f:  # the results are committed with the commands behind them
        command = shlex.join(
            ["python", "-m", "experiments.sweep", *(argv if argv is not None else sys.argv[1:])]
        )
        f.write(f"{datetime.now(UTC).isoformat(timespec='seconds')}  {command}\n")
    try:
        outcome = run_sweep(
            spec,
            sweep_dir,
            address=args.address,
            max_concurrent=args.max_concurrent,
            max_retries=args.max_retries,
            skip_failed=args.skip_failed,
            engine=args.engine,
        )
    except DataError as exc:  # found while preparing the caches, before any trial starts
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"sweep {spec.name}: {outcome.total} trials; skipped {len(outcome.skipped)} already finished; "
        f"ran {len(outcome.ran)}; failed {len(outcome.failed)}; store {sweep_dir / 'results.sqlite'}"
    )
    for trial_id in outcome.failed:
        print(
            f"failed: {trial_id} (see its row in the store and {sweep_dir / 'trials' / trial_id}); "
            "run the same command again to retry"
        )
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy, so Ray workers import run_trial by name.
    sys.exit(importlib.import_module("experiments.sweep").main())
