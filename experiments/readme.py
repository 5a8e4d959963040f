"""Regenerate every result table of the README from the committed results: ``python -m experiments.readme``.

The README marks each generated table with ``<!-- generated: NAME -->`` ... ``<!-- end: NAME -->``; this command
rewrites what stands between them from the source below, so no number in those tables is typed by hand.
``--check`` only compares (exit 1 when the README is stale; the test suite runs it).

| NAME | source |
|---|---|
| ``learning`` | ``experiments/results/learning/grids/*/summary.json`` (``experiments.grid``) |
| ``paper-table`` | ``experiments/results/paper_table/results.sqlite`` (``experiments.sweep``) |
| ``robustness`` | ``experiments/results/robustness/results.sqlite`` |
| ``cross`` | ``experiments/results/cross/cross.json`` (``experiments.cross``) |
| ``benchmarks`` | ``benchmarks/results/*.json`` |

Every interval over seeds is the 95% Student-t interval (``vrb.stats.mean_ci``); the caption line above each
table says so.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from envs.cli import ArgumentParser
from envs.fileio import atomic_write_text
from experiments import cross, frontier, report
from experiments.store import ResultStore
from vrb.config import SIMULATORS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
CAPTION = "Mean ± 95% Student-t interval over seeds (n seeds per cell); papers' definitions."


LEARNER_ORDER = ("mle", "ppo", "vrb", "gdpl")


def learning_table() -> str:
    """MLE, then PPO, VRB and GDPL; the defaults before the pure learned reward, best.pt before last.pt."""
    rows = frontier.load_rows(sorted((RESULTS / "learning" / "grids").iterdir()))
    order = ("mle", "best", "last")

    def key(row: dict) -> tuple:
        algo = "mle" if row["checkpoint"] == "mle" else row["algo"]
        return LEARNER_ORDER.index(algo), row["variant"] != "", row["variant"], order.index(row["checkpoint"])

    return frontier.table(sorted(rows, key=key))


REFERENCE_ROWS = {  # the table's rows that train nothing: one run each, file per simulator
    "rule policy": {"agenda": "rule-agenda.json", "vhus": "rule-vhus.json"},
    "human (corpus test split)": {"agenda": "human-test.json"},
}


def reference_row(label: str, files: dict[str, str], simulators: list[str]) -> str:
    """One run scored once: value [95% bootstrap interval over its dialogues]."""
    entries = []
    for simulator in simulators:
        if simulator not in files:
            entries += ["—"] * len(report.DEFINITIONS["papers"])
            continue
        scored = json.loads((RESULTS / "paper_table" / "reference" / files[simulator]).read_text())
        for name, metric in report.DEFINITIONS["papers"].items():
            scale, digits = (1.0, 2) if name == "turns" else (100.0, 1)
            low, high = scored["intervals"][metric]
            value = scored["summary"][metric]
            entries.append(
                f"{value * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"
            )
    return "| " + " | ".join([label, *entries, "1 run"]) + " |"


def paper_table() -> str:
    """best.pt, then last.pt; the rule policy and the corpus below the learners."""
    store = ResultStore.open_existing(RESULTS / "paper_table")
    cells = report.build_cells(store.finished().values())
    simulators = [s for s in SIMULATORS if any(c.key["simulator"] == s for c in cells)]
    best = report.paper_table(cells, "papers")
    references = [reference_row(label, files, simulators) for label, files in REFERENCE_ROWS.items()]
    return (
        "Match, inform F1 and success in %; n = seeds on agenda/VHUS; learners: mean ± 95% Student-t "
        "interval over seeds; rule and human: one run, [95% bootstrap interval over its 1000 dialogues].\n\n"
        "**best.pt** (the epoch with the best validation success)\n\n"
        + "\n".join([best, *references])
        + "\n\n**last.pt** (the policy each run ended with; MLE keeps one checkpoint)\n\n"
        + report.paper_table(cells, "papers", "last")
    )


def robustness_table() -> str:
    """Papers' success: a row per noise level, a column per algorithm (and I_c)."""
    store = ResultStore.open_existing(RESULTS / "robustness")
    cells = report.build_cells(store.finished().values())
    labels = list(dict.fromkeys(cell.label for cell in cells))
    noises = sorted({cell.key["user_noise"] for cell in cells})
    by_key = {(cell.label, cell.key["user_noise"]): cell for cell in cells}
    lines = ["| p | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for noise in noises:
        entries = []
        for label in labels:
            cell = by_key.get((label, noise))
            entries.append("—" if cell is None else report.format_mean_ci(*cell.stats("paper_success")[:2]))
        lines.append(f"| {noise} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


def cross_table() -> str:
    runs = json.loads((RESULTS / "cross" / "cross.json").read_text())
    return cross.table(runs, ("agenda", "vhus")).rstrip()


def _bench(name: str) -> dict:
    return json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text())


def benchmarks_table() -> str:
    """Speeds against issue 14's targets: the env's step, the sampler's workers, the default run."""
    env, sampler, train = _bench("bench_env"), _bench("bench_sampler"), _bench("bench_train")
    big = _bench("bench_sampler_16core")
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
    for bench, where in ((sampler, "this 2-core machine"), (big, "the 16-core lent machine")):
        for run in bench["runs"]:
            if run["workers"] == 1 or run.get("oversubscribed"):
                continue
            paired = {p["workers"]: p["speedup"] for p in bench.get("paired", [])}.get(run["workers"])
            target = {2: "≥ 1.7×", 16: "≥ 12×"}.get(run["workers"], "—")
            both = f"{run['speedup']:.2f}×" + (f" (paired {paired:.2f}×)" if paired else "")
            lines.append(f"| sampler, {run['workers']} workers against 1, {where} | {both} | {target} |")
    one = train["one_worker"]
    lines.append(
        f"| the default run in `bench_train.py` (200 epochs, {train['workers']} workers), this 2-core machine | "
        f"{train['minutes']:.2f} min | ≤ 3 min |"
    )
    lines.append(
        f"| the same run with `--workers 1` | {one['minutes']:.2f} min"
        f"{' (same results)' if one['same_results'] else ' (RESULTS DIFFER)'} | — |"
    )
    best, final = train["best_validation"], train["final_validation"]
    lines += [
        "",
        f"The timed run's validation: best (epoch {best['epoch'] + 1}) success {best['paper_success']:.3f}, "
        f"inform F1 {best['paper_inform_f1']:.3f}; final success {final['paper_success']:.3f}, inform F1 "
        f"{final['paper_inform_f1']:.3f}.",
    ]
    return "\n".join(lines)


SECTIONS: dict[str, Callable[[], str]] = {
    "learning": learning_table,
    "paper-table": paper_table,
    "robustness": robustness_table,
    "cross": cross_table,
    "benchmarks": benchmarks_table,
}


def regenerate(text: str) -> str:
    """``text`` with every marked table rebuilt; a marker whose source is unknown is refused."""

    def rebuild(match: re.Match) -> str:
        name = match.group(1)
        if name not in SECTIONS:
            raise KeyError(f"README marker names unknown table {name!r}; expected one of {sorted(SECTIONS)}")
        caption = "" if name == "benchmarks" else f"{CAPTION}\n\n"
        return f"{match.group(0).split(chr(10))[0]}\n{caption}{SECTIONS[name]()}\n<!-- end: {name} -->"

    return re.sub(r"<!-- generated: ([\w-]+) -->\n.*?<!-- end: \1 -->", rebuild, text, flags=re.S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md", help="the README to rewrite")
    parser.add_argument("--check", action="store_true", help="only compare: exit 1 when the README is stale")
    args = parser.parse_args(argv)
    try:
        text = args.readme.read_text()
        fresh = regenerate(text)
    except (OSError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = fresh != text
        print(f"{args.readme}: {'stale: run python -m experiments.readme' if stale else 'up to date'}")
        return 1 if stale else 0
    atomic_write_text(args.readme, fresh)
    print(f"wrote {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
