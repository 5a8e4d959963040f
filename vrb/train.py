"""Train a dialogue policy: ``python -m vrb.train --simulator agenda [--algo vrb|gdpl|ppo|mle]``.

The run, top to bottom:
1. behaviour cloning (MLE) of the policy on corpus (s, a) pairs — the warm start of every RL learner;
2. for vrb/gdpl: reward-estimator pretraining against the MLE policy;
3. per epoch: sample ``steps_per_epoch`` steps from fresh dialogues → (vrb/gdpl) update the estimator on
   expert vs policy transitions and replace the rewards by r = f(s, a, s') − log π(a|s) → PPO update →
   every ``eval_every`` epochs a greedy evaluation on fixed validation dialogues → TensorBoard → checkpoint.

Outputs in ``--out`` (default ``runs/ALGO-SIMULATOR-sSEED``): TensorBoard events, ``config.json``,
``last.pt`` (every epoch; ``--resume`` continues from it), ``best.pt`` (best validation success), ``mle.pt``,
``results.json``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import itertools
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from envs.dialogue_env import DialogueEnv
from envs.multiwoz import data as mw_data
from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.checkpoint import Checkpoint, CheckpointError, load_checkpoint, restore_rng_states, save_checkpoint
from vrb.config import BASELINE_ALGOS, TrainConfig
from vrb.diagnostics import decoding_stats, probe_auc
from vrb.evaluate import Agent, NeuralAgent, run_dialogues
from vrb.expert import ExpertData, load_expert
from vrb.logger import RunLogger
from vrb.mle import act_scores, behaviour_cloning_from_config
from vrb.policy import MultiLabelPolicy, ValueNet
from vrb.ppo import PPO, RolloutBuffer
from vrb.reward import ExpertSampler, LearnedReward, make_estimator, pretrain_estimator
from vrb.sampling import collect, epoch_seeds, make_vector_env

logger = logging.getLogger("vrb.train")

VALIDATION_SEED_BASE = 1_000_000  # validation dialogues never share seeds with vrb.evaluate's defaults
VALIDATION_WIDTH = 8  # validation dialogues played side by side (one policy forward pass for all)
MLE_HOLDOUT_FRACTION = 0.1  # of the training split's dialogues, for choosing the MLE epoch


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit code 2."""


class RewardLearner(Protocol):
    """A learned reward a baseline plugs into ``train``: it relabels each epoch's rollouts before PPO.

    ``relabel`` may update itself on the buffer first (a discriminator, say); it returns statistics for the
    TensorBoard panel ``panel``. Its state is saved in every checkpoint and restored on ``--resume``.
    """

    panel: str

    def relabel(self, buffer: RolloutBuffer) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# -- the stages ---------------------------------------------------------------------------------------------


def clone_behaviour(
    policy: MultiLabelPolicy,
    expert: ExpertData,
    test: ExpertData,
    cfg: TrainConfig,
    gen: torch.Generator,
    tb: RunLogger,
) -> dict[str, float]:
    """MLE on the training split (a dialogue-level hold-out picks the epoch); act scores on the test split."""
    holdout = np.asarray(expert.dialogue_index) % round(1 / MLE_HOLDOUT_FRACTION) == 0
    history = behaviour_cloning_from_config(
        policy,
        expert.states[~holdout],
        expert.actions[~holdout],
        expert.states[holdout],
        expert.actions[holdout],
        cfg,
        gen,
    )
    for record in history:
        tb.scalars("mle", {k: v for k, v in record.items() if k != "epoch"}, record["epoch"])
    with torch.no_grad():
        scores = act_scores(policy.greedy(torch.as_tensor(test.states)), torch.as_tensor(test.actions))
    result = {"test_precision": scores.precision, "test_recall": scores.recall, "test_f1": scores.f1}
    tb.scalars("mle", result, len(history))
    logger.info("MLE on %s: test act precision %.3f recall %.3f F1 %.3f", expert.split, *result.values())
    return result


def validate(agent: Agent, env: DialogueEnv | list[DialogueEnv], dialogues: int) -> dict[str, Any]:
    """The agent on the fixed validation dialogues (model selection never sees vrb.evaluate's seeds)."""
    seeds = range(VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + dialogues)
    return run_dialogues(agent, env, seeds).summary


def resume_checkpoint(cfg: TrainConfig, out: Path) -> Checkpoint:
    """``out/last.pt``, refused when it belongs to another algorithm, simulator or seed."""
    path = out / "last.pt"
    checkpoint = load_checkpoint(path)
    saved = checkpoint.train_config()
    if (saved.algo, saved.simulator, saved.seed) != (cfg.algo, cfg.simulator, cfg.seed):
        raise UsageError(
            f"{path} is a {saved.algo}/{saved.simulator}/seed {saved.seed} run; "
            f"cannot resume it as {cfg.algo}/{cfg.simulator}/seed {cfg.seed}"
        )
    logger.info("resuming %s at epoch %d", path, checkpoint.epoch + 1)
    return checkpoint


class RunTracker:
    """Bookkeeping every learner's epoch loop shares: the progress bar, ``perf/`` scalars, validation every
    ``eval_every`` epochs, ``best.pt`` on a new best of the validation metric ``select_metric``, ``last.pt``
    every epoch, the patience stop (``stop``), and at the end HParams and ``results.json``. ``agent`` acts with
    the learner's current policy (validation); ``learner_state`` returns what a checkpoint must hold besides
    the run's record.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        out: Path,
        tb: RunLogger,
        eval_env: DialogueEnv | list[DialogueEnv],
        *,
        agent: Agent,
        learner_state: Callable[[], dict[str, Any]],
        rngs: dict[str, Any],
        checksums: dict[str, str],
        best: dict[str, Any],
        record: dict[str, Any],
    ):
        self.cfg, self.out, self.tb, self.eval_env, self.agent = cfg, out, tb, eval_env, agent
        self.learner_state, self.rngs, self.checksums = learner_state, rngs, checksums
        self.best, self.record = best, record
        self.metric = cfg.select_metric
        self.stop = False

    def _score(self, scores: dict[str, Any]) -> float:
        value = scores.get(self.metric)
        return -1.0 if value is None else float(value)

    def save(self, name: str, epoch: int) -> None:
        state = self.learner_state() | {"best": self.best, "record": self.record}
        save_checkpoint(
            self.out / name,
            config=self.cfg,
            epoch=epoch,
            state=state,
            rngs=self.rngs,
            data_checksums=self.checksums,
        )

    def start(self) -> None:
        """Score the starting policy; it is the first best."""
        self.best = {"epoch": -1, **validate(self.agent, self.eval_env, self.cfg.eval_dialogues)}
        self.record["start"] = self.best
        self.tb.scalars("eval", self.best, 0)
        logger.info("start policy: validation %s", _headline(self.best))
        self.save("best.pt", -1)

    def epochs(self, start_epoch: int) -> tqdm:
        self.progress = tqdm(
            range(start_epoch, self.cfg.epochs),
            desc=f"{self.cfg.algo} on {self.cfg.simulator}",
            initial=start_epoch,
            total=self.cfg.epochs,
        )
        return self.progress

    def end_epoch(self, epoch: int, started: float, sampled: float) -> None:
        cfg, step = self.cfg, epoch + 1
        elapsed = time.perf_counter() - started
        self.tb.scalars(
            "perf",
            {
                "steps_per_s": cfg.steps_per_epoch / elapsed,
                "sampling_steps_per_s": cfg.steps_per_epoch / (sampled - started),
            },
            step,
        )
        if step % cfg.eval_every == 0 or step == cfg.epochs:
            scores = validate(self.agent, self.eval_env, cfg.eval_dialogues)
            self.tb.scalars("eval", scores, step)
            if self._score(scores) > self._score(self.best):
                self.best = {"epoch": epoch, **scores}
                self.save("best.pt", epoch)
            elif cfg.patience and (epoch - self.best["epoch"]) >= cfg.patience * cfg.eval_every:
                self.stop = True
            self.progress.set_postfix(
                {self.metric: f"{self._score(scores):.3f}", "best": f"{self._score(self.best):.3f}"}
            )
        self.save("last.pt", epoch)

    def finish(self) -> dict[str, Any]:
        self.record["best"] = self.best
        self.record["final"] = validate(self.agent, self.eval_env, self.cfg.eval_dialogues)
        self.tb.hparams(self.cfg.hparams(), {f"best_{k}": v for k, v in self.best.items()})
        self.tb.close()
        results = self.out / "results.json"
        results.write_text(json.dumps(self.record, indent=1, default=float))
        logger.info(
            "best validation (epoch %d, by %s): %s; final: %s; results in %s",
            self.best["epoch"] + 1,
            self.metric,
            _headline(self.best),
            _headline(self.record["final"]),
            results,
        )
        return self.record


def _headline(scores: dict[str, Any]) -> str:
    """Success, inform F1, match and turns under the papers' definitions (the tables' columns)."""
    return "success {:.3f}, inform F1 {:.3f}, match {:.3f}, turns {:.2f}".format(
        *(scores.get(k) or 0.0 for k in ("paper_success", "paper_inform_f1", "paper_match", "paper_turns"))
    )


# -- the run ------------------------------------------------------------------------------------------------


def train(
    cfg: TrainConfig, out: Path, resume: bool = False, reward_learner: RewardLearner | None = None
) -> dict[str, Any]:
    """The run above; a baseline may pass ``reward_learner`` to train its policy here with its own reward."""
    if cfg.algo in BASELINE_ALGOS and reward_learner is None:  # found by name: vrb never imports baselines
        return importlib.import_module(f"baselines.{cfg.algo}").train(cfg, out, resume)
    torch.set_num_threads(cfg.torch_threads)
    torch.set_flush_denormal(cfg.flush_denormal)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = mw_data.load(cfg.data_dir or None)
    checksums = mw_data.verify(data.root)
    expert = load_expert(data, data.training_split(), states=cfg.expert_states)
    test = load_expert(data, "test", states=cfg.expert_states)
    logger.info(
        "expert data: %d transitions from the %s split (test: %d)",
        len(expert.states),
        expert.split,
        len(test.states),
    )

    policy = MultiLabelPolicy(STATE_DIM, ACTION_DIM, cfg.policy_hidden).to(cfg.device)
    value = ValueNet(STATE_DIM, cfg.value_hidden).to(cfg.device)
    act = functools.partial(policy.act, decoder=cfg.rollout_decoding, fallback=cfg.empty_fallback)
    expert_sampler = ExpertSampler(expert.to_transitions(cfg.device), gen)
    ppo = PPO.from_config(policy, value, cfg, gen, expert_sampler)
    estimator = None
    if cfg.learns_reward:
        estimator = make_estimator(cfg, STATE_DIM, ACTION_DIM, gen, policy_log_prob=policy.log_prob)
        reward_learner = LearnedReward(estimator, expert_sampler, cfg, lambda states: act(states, gen)[0])
    eval_env = [
        DialogueEnv(simulator=cfg.simulator, data_dir=cfg.data_dir or None, user_noise=cfg.user_noise)
        for _ in range(VALIDATION_WIDTH)
    ]

    start_epoch, best, record = 0, {"epoch": -1}, {"training_split": expert.split}
    if resume:
        checkpoint = resume_checkpoint(cfg, out)
        policy.load_state_dict(checkpoint.state["policy"])
        value.load_state_dict(checkpoint.state["value"])
        ppo.load_state_dict(checkpoint.state["ppo"])
        expert_sampler.load_state_dict(checkpoint.state["expert_sampler"])
        if reward_learner is not None:
            reward_learner.load_state_dict(checkpoint.state["reward_learner"])
        restore_rng_states({"torch": gen}, checkpoint.rng_states)
        start_epoch, best, record = checkpoint.epoch + 1, checkpoint.state["best"], checkpoint.state["record"]
    tb = RunLogger(out, purge_step=start_epoch + 1 if resume else None)

    def learner_state() -> dict[str, Any]:
        state = {
            "policy": policy.state_dict(),
            "value": value.state_dict(),
            "ppo": ppo.state_dict(),
            "expert_sampler": expert_sampler.state_dict(),
        }
        if reward_learner is not None:
            state["reward_learner"] = reward_learner.state_dict()
        return state

    run = RunTracker(
        cfg,
        out,
        tb,
        eval_env,
        agent=NeuralAgent(policy, cfg.decoder, cfg.empty_fallback, cfg.seed),
        learner_state=learner_state,
        rngs={"torch": gen},
        checksums=checksums,
        best=best,
        record=record,
    )
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        if cfg.pretrained_policy:
            policy.load_state_dict(load_checkpoint(cfg.pretrained_policy).state["policy"])
            logger.info("policy starts from %s", cfg.pretrained_policy)
        else:
            record["mle"] = clone_behaviour(policy, expert, test, cfg, gen, tb)
        run.save("mle.pt", -1)
        run.start()

    if cfg.algo != "mle":
        vec_env = make_vector_env(
            cfg.simulator,
            cfg.num_envs,
            reward_mode=cfg.env_reward,
            data_dir=cfg.data_dir or None,
            user_noise=cfg.user_noise,
        )
        buffer = RolloutBuffer(cfg.steps_per_env, cfg.num_envs, STATE_DIM, ACTION_DIM, cfg.device)
        if estimator is not None and not resume and cfg.estimator_pretrain_epochs:
            pretrain_rounds = itertools.count(1)

            def sample_start_policy() -> Any:
                seeds = epoch_seeds(cfg.seed, -next(pretrain_rounds), cfg.num_envs)
                collect(vec_env, act, buffer, seeds, gen)
                return buffer.transitions()

            for i, stats in enumerate(
                pretrain_estimator(
                    estimator, expert_sampler, sample_start_policy, cfg.estimator_pretrain_epochs
                )
            ):
                tb.scalars("estimator_pretrain", stats, i)
        for epoch in run.epochs(start_epoch):
            started = time.perf_counter()
            episodes = collect(vec_env, act, buffer, epoch_seeds(cfg.seed, epoch, cfg.num_envs), gen)
            sampled = time.perf_counter()
            diagnostics = decoding_stats(policy, buffer.transitions().states)
            if reward_learner is not None:
                stats = reward_learner.relabel(buffer)
                diagnostics |= {k: stats.pop(k) for k in DIAGNOSTIC_KEYS if k in stats}
                tb.scalars(reward_learner.panel, stats, epoch + 1)
            if (epoch + 1) % cfg.eval_every == 0:
                diagnostics["probe_auc"] = state_probe(expert, buffer, cfg.seed * 10_007 + epoch)
            if estimator is not None and "kl" in diagnostics:
                diagnostics["ic"] = cfg.ic
            tb.scalars("diagnostics", diagnostics, epoch + 1)
            tb.scalars("ppo", ppo.update(buffer), epoch + 1)
            tb.scalars("rollout", episodes.summary(), epoch + 1)
            run.end_epoch(epoch, started, sampled)
            if run.stop:
                logger.info("no new best in %d validations: stopping after epoch %d", cfg.patience, epoch + 1)
                break
        vec_env.close()

    return run.finish()


# Estimator statistics shown under diagnostics/ (the rest stay under the estimator's own panel).
DIAGNOSTIC_KEYS = (
    "f_expert",
    "f_policy",
    "kl",
    "phi",
    "reward_f_mean",
    "reward_logpi_term_mean",
    "reward_logpi_share",
)


def state_probe(expert: ExpertData, buffer: RolloutBuffer, seed: int) -> float:
    """``diagnostics.probe_auc`` on this epoch's states against as many expert states (its own generator, so
    the diagnostic never moves the training's random streams)."""
    generator = torch.Generator().manual_seed(seed)
    policy_states = buffer.transitions().states.cpu()
    rows = torch.randperm(len(expert.states), generator=generator)[: len(policy_states)]
    return probe_auc(torch.as_tensor(expert.states[rows.numpy()]), policy_states, generator)


# -- command line -------------------------------------------------------------------------------------------


def parse_config(argv: Sequence[str] | None) -> tuple[TrainConfig, Path, bool]:
    parser = argparse.ArgumentParser(prog="python -m vrb.train", description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", default="agenda", help="agenda or vhus")
    parser.add_argument(
        "--algo", default="vrb", help="vrb, gdpl, ppo, mle, or a baseline: acer, aldm, gp_mbcm"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--steps-per-epoch", type=int)
    parser.add_argument("--num-envs", type=int)
    parser.add_argument("--ic", type=float, help="VRB's information bound I_c")
    parser.add_argument("--out", help="run folder (default runs/ALGO-SIMULATOR-sSEED)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any TrainConfig field, e.g. --set eval_every=10 (JSON values)",
    )
    args = parser.parse_args(argv)
    values: dict[str, Any] = {"simulator": args.simulator, "algo": args.algo, "seed": args.seed}
    for flag, field in (
        ("epochs", "epochs"),
        ("steps_per_epoch", "steps_per_epoch"),
        ("num_envs", "num_envs"),
        ("ic", "ic"),
        ("data_dir", "data_dir"),
    ):
        if getattr(args, flag) is not None:
            values[field] = getattr(args, flag)
    for item in args.set:
        name, sep, raw = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    cfg = TrainConfig.from_dict(values)
    out = Path(args.out or f"runs/{cfg.algo}-{cfg.simulator}-s{cfg.seed}")
    if args.resume and not (out / "last.pt").is_file():
        raise UsageError(f"--resume: {out / 'last.pt'} does not exist (nothing to resume)")
    if not args.resume and (out / "last.pt").is_file():
        raise UsageError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    return cfg.replace(out_dir=str(out)), out, args.resume


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg, out, resume = parse_config(argv)
        train(cfg, out, resume)
    except (UsageError, ValueError, CheckpointError, mw_data.DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
