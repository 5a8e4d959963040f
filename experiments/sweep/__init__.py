"""Run a grid of training runs as Ray Tune trials: ``python -m experiments.sweep CONFIG.yaml``.

    python -m experiments.sweep experiments/configs/smoke.yaml --max-concurrent 2     # into runs/smoke
    python -m experiments.sweep experiments/configs/quick.yaml --engine processes --epochs 30 --out runs/quick-30
    python -m experiments.sweep experiments/configs/robustness.yaml --out runs/robustness
    python -m experiments.sweep experiments/configs/paper_table.yaml --address auto   # on a Ray head node
    python -m experiments.sweep experiments/configs/paper_table.yaml --engine processes  # one machine, no Ray

A trial is one ``vrb.train.run`` run in ``SWEEP_DIR/trials/TRIAL_ID`` followed by a greedy evaluation of its
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

The sweep folder is ``runs/NAME`` (the config's ``name``) unless ``--out`` names one. ``--set FIELD=VALUE``
(repeatable, read as ``python -m vrb.train --set`` reads it), ``--epochs N`` and ``--seeds S ...`` change the
config file's settings for this command (``experiments.sweep.overrides``): a changed setting changes the trial
ids as an edit of the file would, and ``commands.log`` and each store row name the overrides. The report pools
every finished trial of a folder into its cells by algorithm, simulator, noise and axes, not by epochs: give a
run with other settings its own ``--out``.
``--trials PATTERN ...`` runs only the trials whose id matches one of the shell patterns (``'vrb-vhus-*'``),
under the ids they have in the whole sweep: one config split over machines, each running its share into its own
``--out``, which ``python -m experiments.merge`` gathers into one folder.

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
``trial.log``, appended by every attempt and stamped with the attempt's number and pid. On Linux the children
die with the driver, even a ``kill -9``-ed one.

Nothing mixes: a driver holds ``SWEEP_DIR/sweep.lock`` (a second driver on the folder is refused, naming the
first's pid), and an attempt holds its trial folder's ``run.lock`` from before its first write to its last, so
a re-run's attempt waits for an earlier attempt still running there (a child orphaned on a platform without
the parent-death signal, a Ray worker not yet reaped) instead of writing beside it.

The package, one module per part, each importing only the ones above it:

- ``spec``: the config file (parsing, validation) and the trials it expands to;
- ``overrides``: the command line's ``--set``, ``--epochs`` and ``--seeds``, applied to a spec;
- ``trial``: one attempt of one trial (train, evaluate ``best.pt``, the record it reports);
- ``ray_engine``, ``processes``: the two ways of running the pending trials;
- ``driver``: which trials to run, the caches, the store rows (``run_sweep``); ``cli``: the command line.
"""

from experiments.sweep.cli import main
from experiments.sweep.driver import ENGINES, SweepOutcome, run_sweep, warm_caches
from experiments.sweep.overrides import apply_overrides, parse_sets
from experiments.sweep.processes import PAYLOAD_FILE, run_trial_process
from experiments.sweep.ray_engine import PAYLOAD_KEY, run_trial
from experiments.sweep.recorder import Recorder
from experiments.sweep.spec import (
    AXIS_LABELS,
    EVALUATION_DEFAULTS,
    SPEC_KEYS,
    TRIAL_DEFAULTS,
    SpecError,
    SweepSpec,
    Trial,
    _trial_id,
    load_spec,
)
from experiments.sweep.trial import ATTEMPTS_FILE, ERROR_FILE, EVALUATION_FILE, LOG_FILE, train_and_evaluate

__all__ = [
    "ATTEMPTS_FILE",
    "AXIS_LABELS",
    "ENGINES",
    "ERROR_FILE",
    "EVALUATION_FILE",
    "EVALUATION_DEFAULTS",
    "LOG_FILE",
    "PAYLOAD_FILE",
    "PAYLOAD_KEY",
    "SPEC_KEYS",
    "TRIAL_DEFAULTS",
    "Recorder",
    "SpecError",
    "SweepOutcome",
    "SweepSpec",
    "Trial",
    "_trial_id",
    "apply_overrides",
    "load_spec",
    "main",
    "parse_sets",
    "run_sweep",
    "run_trial",
    "run_trial_process",
    "train_and_evaluate",
    "warm_caches",
]
