"""experiments.report on a results store built here: the expected cells, table, CSV and plots."""

from __future__ import annotations

import csv
import math

import pytest

from experiments import plots, report
from experiments.store import ResultStore, TrialRecord
from vrb.algorithms import make_config
from vrb.logger import RunLogger
from vrb.stats import t_quantile_975

SUCCESS = {  # (algo, simulator, noise) -> per-seed papers' success
    ("vrb", "agenda", 0.0): [0.8, 0.9, 1.0],
    ("vrb", "agenda", 0.2): [0.5, 0.6, 0.7],
    ("ppo", "agenda", 0.0): [0.4, 0.6, 0.5],
    ("vrb", "vhus", 0.0): [0.3, 0.3, 0.3],
}
TURNS = [10.0, 12.0, 14.0]


def half_width(sd: float, n: int = 3) -> float:
    """The 95% Student-t interval's half-width over n seeds of standard deviation sd."""
    return t_quantile_975(n - 1) * sd / math.sqrt(n)


def _record(algo: str, simulator: str, noise: float, seed: int, success: float, status: str = "finished"):
    config = make_config(algo=algo, simulator=simulator, seed=seed, user_noise=noise).to_dict()
    metrics = (
        {
            "paper_success": success,
            "success": success / 2,
            "paper_turns": TURNS[seed],
            "turns": 2 * TURNS[seed],
            "paper_match": 1.0,
            "book_rate": 1.0,
            "paper_inform_f1": 0.5,
            "inform_f1": 0.25,
        }
        if status == "finished"
        else {}
    )
    return TrialRecord(
        trial_id=f"{algo}-{simulator}-s{seed}-noise{noise}",
        status=status,
        attempts=1,
        axes={"algo": algo, "simulator": simulator, "seed": seed, "user_noise": noise},
        config=config,
        metrics=metrics,
        versions={"code": {"git": "abc123"}},
        error="" if status == "finished" else "Traceback ...\nRuntimeError: out of memory",
    )


@pytest.fixture
def sweep_dir(tmp_path):
    store = ResultStore(tmp_path)
    store.append(
        _record("vrb", "agenda", 0.0, 0, 0.0, status="failed")
    )  # later finished: not reported failed
    for (algo, simulator, noise), values in SUCCESS.items():
        for seed, success in enumerate(values):
            store.append(_record(algo, simulator, noise, seed, success))
    store.append(_record("ppo", "vhus", 0.0, 0, 0.0, status="failed"))
    for seed, success in enumerate(SUCCESS["vrb", "agenda", 0.0]):
        logger = RunLogger(tmp_path / "trials" / f"vrb-agenda-s{seed}-noise0.0")
        for epoch in range(3):
            logger.scalars(
                "eval",
                {"paper_success": success * epoch / 2, "paper_inform_f1": 0.5, "paper_turns": 8.0 - epoch},
                epoch,
            )
        logger.close()
    return tmp_path


def test_store_is_append_only(sweep_dir):
    import sqlite3

    store = ResultStore(sweep_dir)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE trials SET status = 'failed'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), sqlite3.connect(store.path) as conn:
        conn.execute("DELETE FROM trials")
    assert len(store.records()) == 14
    assert "vrb-agenda-s0-noise0.0" in store.finished_ids()
    assert "ppo-vhus-s0-noise0.0" not in store.finished_ids()


def test_cells_have_mean_ci_and_n(sweep_dir):
    cells = report.build_cells(ResultStore(sweep_dir).finished().values())
    keys = [(c.key["algo"], c.key["simulator"], c.key["user_noise"], c.key["ic"]) for c in cells]
    assert keys == [
        ("vrb", "agenda", 0.0, 0.5),
        ("vrb", "agenda", 0.2, 0.5),
        ("vrb", "vhus", 0.0, 0.5),
        ("ppo", "agenda", 0.0, None),
    ]
    mean, ci, n = cells[0].stats("paper_success")
    assert (mean, n) == (pytest.approx(0.9), 3)
    assert ci == pytest.approx(4.303 * 0.1 / math.sqrt(3))  # t_0.975 with 2 degrees of freedom, not 1.96


def test_report_files(sweep_dir):
    path = report.write_report(sweep_dir)
    text = path.read_text()
    out = sweep_dir / "report"
    assert "| policy | agenda turns | agenda match | agenda inform | agenda success | vhus turns |" in text
    turns = f"12.00 ± {half_width(2.0):.2f}"  # 4.97
    agenda = f"100.0 ± 0.0 | 50.0 ± 0.0 | 90.0 ± {100 * half_width(0.1):.1f}"  # 24.8
    vhus = "100.0 ± 0.0 | 50.0 ± 0.0 | 30.0 ± 0.0"
    assert "Mean ± 95% Student-t interval over seeds" in text
    assert f"| vrb (I_c 0.5) | {turns} | {agenda} | {turns} | {vhus} | 3/3 |" in text
    assert "| ppo | " in text and " | — | — | — | — | 3/0 |" in text
    assert f"| vrb | agenda | 0.2 | 0.5 | 3 | 0.600 ± {half_width(0.1):.3f} |" in text  # 0.248
    assert "`ppo-vhus-s0-noise0.0` after 1 attempt(s): RuntimeError: out of memory" in text
    assert "vrb-agenda-s0-noise0.0` after" not in text
    with open(out / "cells.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert float(rows[1]["paper_success_mean"]) == pytest.approx(0.6)
    assert rows[1]["paper_success_n"] == "3" and rows[3]["ic"] == ""
    with open(out / "trials.csv") as f:
        assert len(list(csv.DictReader(f))) == 13  # 12 finished + 1 failed
    for name in (
        "success_vs_noise.png",
        "learning_success.png",
        "learning_inform_f1.png",
        "learning_turns.png",
    ):
        assert (out / name).stat().st_size > 1000, name
    assert not (out / "success_vs_ic.png").exists()  # one I_c only: nothing to plot


def test_learning_curve_reads_event_files(sweep_dir):
    curve = plots.learning_curve(sweep_dir / "trials" / "vrb-agenda-s2-noise0.0", "eval/paper_success")
    assert curve == {0: 0.0, 1: pytest.approx(0.5), 2: pytest.approx(1.0)}


def test_cli_on_a_folder_without_store(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    assert "a sweep folder written by experiments.sweep" in capsys.readouterr().err


def test_labels_in_words_and_the_last_checkpoint_table():
    """A grid axis only some trials have labels their rows in words; the last.pt table reads last_* metrics."""
    records = []
    for seed in range(2):
        for env_reward, last_success in (("user", 0.6), ("none", 0.2)):
            record = _record("vrb", "agenda", 0.0, seed, 0.9)
            axes = dict(record.axes) | ({"env_reward": env_reward} if env_reward == "none" else {})
            metrics = dict(record.metrics) | {f"last_{k}": v for k, v in record.metrics.items()}
            metrics["last_paper_success"] = last_success
            records.append(
                TrialRecord(
                    **{
                        **record.__dict__,
                        "trial_id": f"{env_reward}-{seed}",
                        "axes": axes,
                        "metrics": metrics,
                    }
                )
            )
    cells = report.build_cells(records)
    assert [cell.label for cell in cells] == ["vrb (I_c 0.5, learned reward only)", "vrb (I_c 0.5)"]
    last = report.paper_table(cells, checkpoint="last")
    assert "| vrb (I_c 0.5, learned reward only) |" in last and "| 20.0 ± 0.0 | 2 |" in last
    assert "| 60.0 ± 0.0 | 2 |" in last and "90.0" not in last


def test_the_drop_under_noise_is_a_welch_interval_of_two_groups_of_seeds():
    from vrb.stats import difference_ci

    drop, ci = difference_ci([0.8, 0.9, 1.0], [0.5, 0.6, 0.7])
    assert drop == pytest.approx(0.3) and ci == pytest.approx(t_quantile_975(4) * math.sqrt(2 * 0.01 / 3))
    assert difference_ci([0.5, 0.5], [0.5, 0.5]) == (0.0, 0.0)
    cells = report.build_cells(
        _record(algo, simulator, noise, seed, success)
        for (algo, simulator, noise), values in SUCCESS.items()
        if (algo, simulator) == ("vrb", "agenda")
        for seed, success in enumerate(values)
    )
    table = report.noise_drop_table(cells, "paper_success", high=0.2)
    assert f"| agenda | vrb (I_c 0.5) | 90.0 ± {100 * half_width(0.1):.1f} | " in table
    assert f"| 30.0 ± {100 * t_quantile_975(4) * math.sqrt(2 * 0.01 / 3):.1f} |" in table
    assert report.noise_drop_table(cells, "paper_success", high=0.3) == ""  # no cell at p = 0.3


def test_the_kl_plot_draws_each_variants_kl_against_its_bound(tmp_path):
    records = []
    for seed in range(2):
        record = _record("vrb", "agenda", 0.0, seed, 0.9)
        records.append(record)
        logger = RunLogger(tmp_path / "trials" / record.trial_id)
        for epoch in range(1, 4):
            logger.scalars("diagnostics", {"kl": 0.5 + 0.1 * seed + epoch / 10}, epoch)
        logger.close()
    cells = report.build_cells(records)
    assert plots.plot_kl_against_ic(cells, tmp_path, tmp_path / "kl.png")
    assert (tmp_path / "kl.png").stat().st_size > 1000
    assert not plots.plot_kl_against_ic(report.build_cells([_record("ppo", "agenda", 0.0, 0, 0.5)]),
                                        tmp_path, tmp_path / "none.png")  # fmt: skip
