"""Refactoring must not change what a seed learns: tiny runs of every algorithm reproduce pinned numbers.

What is pinned, per algorithm (``tests/data/pinned_validation.json``, recorded with
``python tests/test_pinned_behaviour.py --record``): the validation numbers of the starting, best and final
policy, and a SHA-256 digest of the final learner state (weights, optimiser moments); beside them, digests of the expert transitions (what
behaviour cloning and the estimators learn from). A digest of the weights is the strictest check there is: a
changed learning rate, decoder, epoch count, sampling order or loss term changes it, while a refactor that keeps
the arithmetic keeps it (``test_the_guard_sees_a_change_of_behaviour`` proves the first half on every run).

Why exact numbers can be compared across machines. Float32 arithmetic differs from one x86-64 CPU to the next
only through the kernels each library chooses for the CPU it finds: ATen's vectorised kernels (AVX-512, AVX2 or
the baseline build), MKL's GEMM code path, oneDNN's instruction set, OpenBLAS's core type (numpy's linear
algebra) and numpy's own SIMD loops. Each path sums in its own order; a tiny run turns those last bits into a
different sampled action within a few updates (a pinned ACER success of 0.0 came out 0.167 on an AVX2-only
machine). The tiny runs therefore run in a child process whose environment selects the baseline path of every
one of them, a path every x86-64 CPU executes the same way:

* ``ATEN_CPU_CAPABILITY=default`` — ATen's scalar/baseline kernels instead of AVX2/AVX-512 ones;
* ``MKL_CBWR=COMPATIBLE`` — MKL's conditional numerical reproducibility mode (one code path on any x86 CPU);
* ``ONEDNN_MAX_CPU_ISA=SSE41`` — oneDNN capped at the baseline instruction set;
* ``OPENBLAS_CORETYPE=Prescott`` and ``NPY_DISABLE_CPU_FEATURES`` — numpy's BLAS and SIMD loops likewise;
* ``GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4`` — glibc picks its ``exp``/``log``/``pow`` by the CPU too
  (the FMA variants round differently in the last bit), so the baseline variants;
* one thread everywhere (OpenMP, MKL, torch), so no reduction is split by the core count.

Checked on this project's machine type by emulating other CPUs in the parent process (``ATEN_CPU_CAPABILITY``
avx2 / avx512, ``MKL_ENABLE_INSTRUCTIONS=AVX2``, ``OMP_NUM_THREADS`` 1 / 2, ``taskset -c 0``): without the child's
pins the numbers move with those settings, exactly as they did between machines; with them they do not. No
tolerance is needed on top: the same instructions on the same inputs give the same bits.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PINNED = Path(__file__).parent / "data" / "pinned_validation.json"
ALGOS = ("mle", "ppo", "gdpl", "vrb", "acer", "aldm", "gp_mbcm")
TINY = {"epochs": 2, "steps_per_epoch": 32, "num_envs": 2, "eval_every": 1, "eval_dialogues": 6}
OWN = {  # each algorithm's own fields; ACER and GP-MBCM were pinned on the evaluator's reward
    "mle": {"mle_epochs": 3},
    "ppo": {"mle_epochs": 3},
    "gdpl": {"mle_epochs": 3},
    "vrb": {"mle_epochs": 3},
    "acer": {"mle_epochs": 3, "env_reward": "evaluator"},
    "aldm": {"mle_epochs": 3, "aldm_pretrain_epochs": 1},
    "gp_mbcm": {"gp_num_actions": 5, "env_reward": "evaluator"},
}
KEYS = ("start", "best", "final")
pytestmark = pytest.mark.slow  # one child process of ten tiny runs, ~30 s: the full suite only
# Behaviour changes the guard must see (the first-half proof): name -> (algorithm, fields on top of TINY/OWN).
CHANGED = {
    "learning rate": ("ppo", {"policy_lr": 3e-4}),
    "decoder": ("ppo", {"decoder": "greedy"}),
    "one more epoch": ("ppo", {"epochs": TINY["epochs"] + 1}),
}
NUMPY_SIMD = "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"  # numpy >= 2.4's dispatch groups above its baseline
PINS = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "OPENBLAS_CORETYPE": "Prescott",
    "NPY_DISABLE_CPU_FEATURES": NUMPY_SIMD,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4",  # libm's exp/log/pow: the non-FMA variants
}


def weights_digest(state) -> str:
    """SHA-256 over every tensor and array in a (nested) learner state, in key order: equal digests mean
    bit-identical weights, optimiser moments and buffers."""
    import numpy as np
    import torch

    digest = hashlib.sha256()

    def walk(path: str, value) -> None:
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                walk(f"{path}/{key}", value[key])
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(f"{path}/{i}", item)
        elif isinstance(value, torch.Tensor | np.ndarray):
            array = value.detach().cpu().contiguous().numpy() if isinstance(value, torch.Tensor) else value
            digest.update(path.encode())
            digest.update(np.ascontiguousarray(array).tobytes())

    walk("", state)
    return digest.hexdigest()


def tiny_run(algo: str, out: Path, changed: dict | None = None) -> dict:
    """One tiny run: its validation numbers and the digest of its final learner state (``last.pt``, or the
    cloned start ``mle.pt`` for behaviour cloning alone)."""
    from vrb.algorithms import make_config
    from vrb.checkpoint import load_checkpoint
    from vrb.train import run

    record = run(make_config(algo=algo, seed=3, **{**TINY, **OWN[algo], **(changed or {})}), out)
    result = {key: record[key] for key in KEYS if key in record}
    final = out / "last.pt" if (out / "last.pt").is_file() else out / "mle.pt"
    result["state_digest"] = weights_digest(
        {k: v for k, v in load_checkpoint(final).state.items() if k not in ("best", "record")}
    )
    return json.loads(json.dumps(result, default=float))


def expert_digests() -> dict:
    """Digests of the transitions learning starts from (val split, trained on; test split, scored on)."""
    from envs.multiwoz import data as mw_data
    from vrb.expert import load_expert

    data = mw_data.load()
    digests = {}
    for split in (data.training_split(), "test"):
        expert = load_expert(data, split, states="replayed")
        digest = hashlib.sha256()
        for array in (expert.states, expert.actions, expert.next_states):
            digest.update(array.tobytes())
        digests[split] = digest.hexdigest()
    return digests


def child_main(out: Path) -> dict:
    """What the child process computes (under ``PINS``): every pinned run, the changed runs, the digests."""
    import torch

    runs = {algo: tiny_run(algo, out / algo) for algo in ALGOS}
    changed = {
        name: tiny_run(algo, out / f"changed-{i}", fields)
        for i, (name, (algo, fields)) in enumerate(CHANGED.items())
    }
    return {
        "runs": runs,
        "changed": changed,
        "expert": expert_digests(),
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
    }


def pinned_child() -> dict:
    """Run ``child_main`` in a fresh interpreter under ``PINS``; its JSON result."""
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        done = subprocess.run(
            [sys.executable, __file__, "--child", folder],
            env=os.environ | PINS,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            raise AssertionError(f"the pinned child failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return json.loads(result.read_text())


@pytest.fixture(scope="module")
def child() -> dict:
    return pinned_child()


def test_the_child_runs_on_the_baseline_kernels(child):
    assert child["aten_capability"] == "DEFAULT"


def test_the_expert_transitions_are_the_pinned_ones(child):
    assert child["expert"] == json.loads(PINNED.read_text())["expert"]


@pytest.mark.parametrize("algo", ALGOS)
def test_a_seed_reproduces_its_pinned_numbers_and_weights(child, algo):
    assert child["runs"][algo] == json.loads(PINNED.read_text())["runs"][algo]


@pytest.mark.parametrize("change", CHANGED)
def test_the_guard_sees_a_change_of_behaviour(child, change):
    """A guard that cannot fail is worse than none: each change of behaviour must break PPO's pinned entry."""
    algo = CHANGED[change][0]
    pinned = json.loads(PINNED.read_text())["runs"][algo]
    assert child["changed"][change]["state_digest"] != pinned["state_digest"]
    assert child["changed"][change] != pinned


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        folder = Path(sys.argv[2])
        (folder / "result.json").write_text(json.dumps(child_main(folder / "runs")))
    elif sys.argv[1:] == ["--record"]:
        found = pinned_child()
        PINNED.write_text(json.dumps({"expert": found["expert"], "runs": found["runs"]}, indent=1) + "\n")
        print(f"wrote {PINNED}")
    elif sys.argv[1:] == ["--show"]:  # what this machine computes now, for a diff against the pinned file
        print(json.dumps(pinned_child(), indent=1))
    else:
        sys.exit("usage: python tests/test_pinned_behaviour.py --record | --show")
