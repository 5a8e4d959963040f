"""Regenerate the README's and docs/' result tables from the committed results: python -m experiments.readme.

A document marks each generated table with ``<!-- generated: NAME -->`` ... ``<!-- end: NAME -->``; this command
rewrites what stands between them from the source below, so no number in those tables is typed by hand.
``--check`` only compares (exit 1 when a document is stale; the test suite runs it). Without ``--readme`` it
covers every document of ``DOCUMENTS``.

| NAME | document | source |
|---|---|---|
| ``paper-table`` | ``README.md`` | ``experiments/results/paper_table/`` (``results.sqlite`` of ``experiments.sweep``, ``reference/``) |
| ``claims`` | ``README.md`` | the stores under ``experiments/results/`` (``experiments.claims``) |
| ``learning`` | ``docs/experiments.md`` | ``experiments/results/learning/grids/*/summary.json`` (``experiments.grid``) |
| ``robustness`` | ``docs/experiments.md`` | ``experiments/results/robustness/results.sqlite`` (``experiments.studies``) |
| ``ablation`` | ``docs/experiments.md`` | ``experiments/results/ablation/results.sqlite`` (``experiments.studies``) |
| ``cross`` | ``docs/experiments.md`` | ``experiments/results/cross/cross.json`` (``experiments.cross``) |
| ``benchmarks`` | ``docs/benchmarks.md`` | ``benchmarks/results/*.json`` |

Every interval over seeds is the 95% Student-t interval (``vrb.stats.mean_ci``); each table's caption says so.
"""

from __future__ import annotations

import json
import math
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

from envs.cli import ArgumentParser
from envs.fileio import atomic_write_text
from experiments import claims, frontier, report, studies
from experiments.store import ResultStore
from vrb.config import SIMULATORS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
CAPTION = "Mean ± 95% Student-t interval over seeds (n seeds per cell); papers' definitions, in %."

# -- the README's results table ----------------------------------------------------------------------------

# The agenda-user success of each learner as Park et al. (the VRB paper) report it; the human corpus's below.
PAPER_SUCCESS = {"vrb": 90.4, "gdpl": 86.5, "aldm": 61.2, "ppo": 59.1, "acer": 50.8, "gp_mbcm": 28.9}
PAPER_HUMAN_SUCCESS = 75.0
# The papers' own setting of a learner, where it is not the defaults: VRB and GDPL learn from their learned
# reward alone, the papers' PPO from the evaluator's handcrafted reward. Their paper number stands on that row.
PAPER_ENV_REWARD = {"vrb": "none", "gdpl": "none", "ppo": "evaluator"}
SIMULATOR_NAMES = {"agenda": "agenda", "vhus": "VHUS"}
RESULT_COLUMNS = {  # column -> papers' metric key; turns in rounds, the rest in %
    "success": "paper_success",
    "inform F1": "paper_inform_f1",
    "match": "paper_match",
    "turns": "paper_turns",
}
REFERENCE_ROWS = {  # the table's rows that train nothing: one run each, file per simulator
    "Rule policy": {"agenda": "rule-agenda.json", "vhus": "rule-vhus.json"},
    "Human (corpus test split)": {"agenda": "human-test.json"},
}


def _row_label(cell: report.Cell, single_ic: bool) -> str:
    """The report's label with the learner's name as the papers write it (and no I_c when the store has one)."""
    label = report.papers_label(cell)
    if single_ic and cell.key["ic"] is not None:
        ic = f"I_c {cell.key['ic']}"
        label = label.replace(f" ({ic})", "").replace(f"({ic}, ", "(")
    return label


def _paper_rows(cells: Sequence[report.Cell]) -> dict[int, float]:
    """id(cell) -> the paper's success, for each learner's agenda row of the papers' setting (else its defaults)."""
    rows: dict[int, float] = {}
    for algo, success in PAPER_SUCCESS.items():
        agenda = [c for c in cells if c.key["algo"] == algo and c.key["simulator"] == "agenda"]
        wanted = PAPER_ENV_REWARD.get(algo)
        match = [c for c in agenda if c.key.get("env_reward") == wanted] or [
            c for c in agenda if c.key.get("env_reward") is None
        ]
        if match:
            rows[id(match[0])] = success
    return rows


def _reference_row(label: str, files: dict[str, str]) -> list[str]:
    """One run scored once: value [95% bootstrap interval over its dialogues], a row per simulator."""
    lines = []
    for simulator in SIMULATORS:
        if simulator not in files:
            continue
        scored = json.loads((RESULTS / "paper_table" / "reference" / files[simulator]).read_text())
        entries = []
        for metric in RESULT_COLUMNS.values():
            scale, digits = report.display_scale(metric)
            low, high = scored["intervals"][metric]
            value = scored["summary"][metric]
            entries.append(
                f"{value * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"
            )
        paper = f"{PAPER_HUMAN_SUCCESS:.1f}" if label.startswith("Human") and simulator == "agenda" else ""
        lines.append(
            f"| {label} | {SIMULATOR_NAMES[simulator]} | " + " | ".join([*entries, "1 run", paper]) + " |"
        )
    return lines


def paper_table() -> str:
    """The papers' table from the paper_table store: best.pt of every learner on both users, the paper beside."""
    store = ResultStore.open_existing(RESULTS / "paper_table")
    records = list(store.finished().values())
    cells = [c for c in report.build_cells(records) if c.key["user_noise"] == 0.0]
    single_ic = len({c.key["ic"] for c in cells if c.key["ic"] is not None}) <= 1
    paper = _paper_rows(cells)
    algo_order = [*report.ALGO_ORDER, *sorted({c.key["algo"] for c in cells} - set(report.ALGO_ORDER))]

    def order(cell: report.Cell) -> tuple:  # by learner, its defaults first, each setting on agenda then VHUS
        label = _row_label(cell, single_ic)
        return algo_order.index(cell.key["algo"]), label != frontier.ALGO_NAMES.get(cell.key["algo"]), label

    lines = [
        "| policy | user | " + " | ".join(RESULT_COLUMNS) + " | n | paper's success |",
        "|---|---|" + "---:|" * (len(RESULT_COLUMNS) + 2),
    ]
    seen = set()
    for cell in sorted(cells, key=lambda c: (*order(c), SIMULATORS.index(c.key["simulator"]))):
        entries = []
        for metric in RESULT_COLUMNS.values():
            mean, ci, _ = cell.stats(metric)
            entries.append(report.format_mean_ci(mean, ci, *report.display_scale(metric)))
        seen.add(cell.key["algo"])
        reported = f"{paper[id(cell)]:.1f}" if id(cell) in paper else ""
        user = SIMULATOR_NAMES.get(cell.key["simulator"], cell.key["simulator"])
        lines.append(
            f"| {_row_label(cell, single_ic)} | {user} | "
            + " | ".join([*entries, str(len(cell.trials)), reported])
            + " |"
        )
    for algo, success in PAPER_SUCCESS.items():  # a learner of the paper that this store has no trial of
        if algo not in seen:
            dashes = " | ".join(["—"] * len(RESULT_COLUMNS))
            lines.append(f"| {frontier.ALGO_NAMES.get(algo, algo)} | agenda | {dashes} | 0 | {success:.1f} |")
    for label, files in REFERENCE_ROWS.items():
        lines += _reference_row(label, files)

    evaluation = records[0].config.get("evaluation", {}) if records else {}
    dialogues, first = evaluation.get("dialogues", 1000), evaluation.get("first_seed", 0)
    counts = {len(c.trials) for c in cells}
    seeds = f"{counts.pop()} seeds" if len(counts) == 1 else "n seeds"
    ics = sorted({c.key["ic"] for c in cells if c.key["ic"] is not None})
    caption = (
        f"Papers' definitions ([docs/metrics.md](docs/metrics.md)): success, inform F1 and match in %, turns in "
        f"rounds. A learner's row: `best.pt` of {seeds} × {dialogues} test dialogues (seeds "
        f"{first}–{first + dialogues - 1}) of the user it trained on; mean ± 95% Student-t interval over the "
        "seeds (n − 1 degrees of freedom). Rule policy and human corpus: one run, [95% bootstrap interval over "
        "its dialogues]. VRB and GDPL learn by default from the user's reward plus their learned reward; "
        "*learned reward only* is the papers' setting"
        + (f"; VRB's I_c is {ics[0]}" if len(ics) == 1 else "")
        + ". *paper's success*: Park et al. on the agenda user, beside the row of their setting (VRB and GDPL: "
        "learned reward only; PPO: the evaluator's reward, else the defaults). `last.pt`, every metric and how "
        "the trials ran: [experiments/results/paper_table/](experiments/results/paper_table/README.md)."
    )
    return (
        "\n".join(lines)
        + "\n\n"
        + textwrap.fill(caption, 114, break_long_words=False, break_on_hyphens=False)
    )


# -- docs/experiments.md: the learning table ---------------------------------------------------------------

LEARNER_ORDER = ("mle", "ppo", "vrb", "gdpl")


def learning_table() -> str:
    """MLE, then PPO, VRB and GDPL; the defaults before the pure learned reward, best.pt before last.pt; in %."""
    rows = frontier.load_rows(sorted((RESULTS / "learning" / "grids").iterdir()))
    order = ("mle", "best", "last")

    def key(row: dict) -> tuple:
        algo = "mle" if row["checkpoint"] == "mle" else row["algo"]
        return LEARNER_ORDER.index(algo), row["variant"] != "", row["variant"], order.index(row["checkpoint"])

    lines = [
        "| learner | checkpoint | n | " + " | ".join(name for name, _, _ in frontier.TABLE_COLUMNS) + " |",
        "|---|---|---|" + "---:|" * len(frontier.TABLE_COLUMNS),
    ]
    for row in sorted(rows, key=key):
        entries = []
        for _, metric, digits in frontier.TABLE_COLUMNS:
            cell = row.get(metric, {"mean": math.nan, "ci95": math.nan})
            scale, digits = (1.0, digits) if metric in ("paper_turns", "acts_per_turn") else (100.0, 1)
            entries.append(report.format_mean_ci(cell["mean"], cell["ci95"], scale, digits))
        checkpoint = frontier.CHECKPOINT_LABELS[row["checkpoint"]]
        lines.append(f"| {frontier.label(row)} | {checkpoint} | {row['n']} | " + " | ".join(entries) + " |")
    return CAPTION + " Turns in rounds.\n\n" + "\n".join(lines)


# -- docs/benchmarks.md -----------------------------------------------------------------------------------


def _bench(name: str) -> dict | None:
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def benchmarks_table() -> str:
    """Speeds against their targets: the env's step, the sampler's workers, a default run, sweep trials."""
    env, sampler, train = _bench("bench_env"), _bench("bench_sampler"), _bench("bench_train")
    if env is None or sampler is None or train is None:
        raise FileNotFoundError(
            "benchmarks/results/: bench_env.json, bench_sampler.json, bench_train.json needed"
        )
    rows = {(r["simulator"], r["policy"]): r for r in env["single_process"]}
    lines = ["| measurement | measured | target |", "|---|---:|---:|"]
    for (simulator, policy), target in (
        (("agenda", "random"), f"≥ {env['target_steps_per_s']:,}"),
        (("agenda", "rule"), "—"),
        (("vhus", "random"), f"≥ {env['vhus_target_steps_per_s']:,}"),
    ):
        row = rows[(simulator, policy)]
        lines.append(
            f"| one process, {simulator} user, {policy} policy: steps/s ({env['cpu_count']} cores) | "
            f"{row['steps_per_s']:,.0f} | {target} |"
        )
    big = _bench("bench_sampler_16core")
    for bench in (sampler, big):
        if bench is None:
            continue
        for run in bench["runs"]:
            if run["workers"] == 1 or run.get("oversubscribed"):
                continue
            paired = {p["workers"]: p["speedup"] for p in bench.get("paired", [])}.get(run["workers"])
            target = {2: "≥ 1.7×", 16: "≥ 12×"}.get(run["workers"], "—")
            both = f"{run['speedup']:.2f}×" + (f" (paired {paired:.2f}×)" if paired else "")
            where = f"a {bench['cpu_count']}-core machine"
            lines.append(f"| sampler, {run['workers']} workers against 1, {where} | {both} | {target} |")
    one = train["one_worker"]
    lines.append(
        f"| the default run (`bench_train.py`: 200 epochs, {train['workers']} workers), a "
        f"{train['machine']['cpus']}-core machine | {train['minutes']:.2f} min | ≤ 3 min |"
    )
    lines.append(
        f"| the same run with `--workers 1` | {one['minutes']:.2f} min"
        f"{' (same results)' if one['same_results'] else ' (RESULTS DIFFER)'} | — |"
    )
    trials = _bench("bench_trials_16core")
    if trials is not None:
        for algo in ("vrb", "ppo"):
            seconds, target = trials["mean_seconds"][f"{algo} new"], trials["targets"].get(f"{algo} new")
            lines.append(
                f"| one {algo.upper()} trial (200 epochs, single-threaded), {trials['cpu_count']} side by side "
                f"on a {trials['cpu_count']}-core machine | {seconds:.0f} s | "
                + (f"≤ {target} s" if target else "—")
                + " |"
            )
    gp = _bench("bench_gp_mbcm")
    if gp is not None:
        lines.append(
            f"| one GP-MBCM run ({gp['epochs']} epochs, single-threaded), a {gp['machine']['cpus']}-core machine "
            f"| {gp['minutes']:.2f} min | — |"
        )
    best, final = train["best_validation"], train["final_validation"]
    lines += [
        "",
        f"The timed default run's validation (papers' definitions): best success {best['paper_success']:.1%}, "
        f"inform F1 {best['paper_inform_f1']:.1%}; final success {final['paper_success']:.1%}, inform F1 "
        f"{final['paper_inform_f1']:.1%}.",
    ]
    return "\n".join(lines)


def claims_table() -> str:
    table = claims.claims_table(RESULTS)
    caption, rows = table.split("\n\n", 1)
    return textwrap.fill(caption, 114, break_long_words=False, break_on_hyphens=False) + "\n\n" + rows


SECTIONS: dict[str, Callable[[], str]] = {
    "paper-table": paper_table,
    "claims": claims_table,
    "learning": learning_table,
    "benchmarks": benchmarks_table,
    "robustness": lambda: studies.robustness_table(RESULTS / "robustness"),
    "ablation": lambda: studies.ablation_table(RESULTS / "ablation"),
    "cross": lambda: studies.cross_table(RESULTS / "cross"),
}
DOCUMENTS: dict[str, tuple[str, ...]] = {  # document (from the repository root) -> the tables it holds
    "README.md": ("paper-table", "claims"),
    "docs/experiments.md": ("learning", "robustness", "ablation", "cross"),
    "docs/benchmarks.md": ("benchmarks",),
}


def regenerate(text: str) -> str:
    """``text`` with every marked table rebuilt; a marker whose source is unknown is refused."""

    def rebuild(match: re.Match) -> str:
        name = match.group(1)
        if name not in SECTIONS:
            raise KeyError(f"marker names unknown table {name!r}; expected one of {sorted(SECTIONS)}")
        return f"<!-- generated: {name} -->\n{SECTIONS[name]()}\n<!-- end: {name} -->"

    return re.sub(r"<!-- generated: ([\w-]+) -->\n.*?<!-- end: \1 -->", rebuild, text, flags=re.S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.readme", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--readme",
        type=Path,
        action="append",
        help=f"a document to rewrite, repeatable (default: {', '.join(DOCUMENTS)})",
    )
    parser.add_argument("--check", action="store_true", help="only compare: exit 1 when a document is stale")
    args = parser.parse_args(argv)
    stale = []
    for path in args.readme or [ROOT / name for name in DOCUMENTS]:
        try:
            text = path.read_text()
            fresh = regenerate(text)
        except (OSError, KeyError) as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 2
        if fresh == text:
            print(f"{path}: up to date")
        elif args.check:
            print(f"{path}: stale: run python -m experiments.readme")
            stale.append(path)
        else:
            atomic_write_text(path, fresh)
            print(f"wrote {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
