import numpy as np
import pytest

from baselines.common import SummaryActions, request_answers
from baselines.gp_mbcm import (
    Committee,
    GPOptions,
    SparseGP,
    bcm_combine,
    discounted_returns,
    padded_width,
    state_kernel,
    turn_members,
)
from envs.dialogue_env import DialogueEnv
from vrb.acting import run_dialogues
from vrb.algorithms import make_config
from vrb.evaluate import load_agent
from vrb.train import run

LENGTH, SIGNAL, NOISE, GAMMA = 1.5, 4.0, 0.5, 0.9
STATES = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 1]], dtype=np.float64)
QUERIES = np.array([[1, 0, 0, 0], [0, 1, 1, 1]], dtype=np.float64)


def gp(ald_threshold: float = 1e-9, max_dictionary: int = 100) -> SparseGP:
    return SparseGP(
        4,
        length_scale=LENGTH,
        signal_var=SIGNAL,
        noise_var=NOISE,
        ald_threshold=ald_threshold,
        max_dictionary=max_dictionary,
    )


def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return SIGNAL * np.exp(-squared / (2 * LENGTH**2))


def fitted(points: np.ndarray, targets: np.ndarray, **kwargs) -> SparseGP:
    model = gp(**kwargs)
    for point, target in zip(points, targets, strict=True):
        model.add(point, target)
    model.refresh()
    return model


def test_kernel_is_a_gaussian_of_the_hamming_distance():
    assert state_kernel(STATES, QUERIES, LENGTH, SIGNAL) == pytest.approx(kernel(STATES, QUERIES))


def test_posterior_matches_the_closed_form_gp_regression():
    targets = np.array([1.0, -2.0, 0.5])
    mean, var = fitted(STATES, targets).predict(QUERIES)
    gram = kernel(STATES, STATES) + NOISE * np.eye(3)
    cross = kernel(QUERIES, STATES)
    assert mean == pytest.approx(cross @ np.linalg.solve(gram, targets))
    assert var == pytest.approx(SIGNAL - np.einsum("qi,iq->q", cross, np.linalg.solve(gram, cross.T)))


def test_gp_sarsa_with_monte_carlo_noise_equals_regression_on_returns():
    """Engel's GP-SARSA posterior with noise covariance s^2 H H^T over one complete episode."""
    rewards = np.array([-1.0, -1.0, 40.0])
    h = np.eye(3) - GAMMA * np.eye(3, k=1)  # r_t = Q_t - gamma Q_{t+1}; the episode ends after t=2
    k, cross = kernel(STATES, STATES), kernel(QUERIES, STATES)
    solve = np.linalg.solve(h @ k @ h.T + NOISE * h @ h.T, np.column_stack([rewards, h @ cross.T]))
    returns, complete = discounted_returns(rewards[:, None], np.array([[0], [0], [1]], dtype=bool), GAMMA)
    assert complete.all() and returns[:, 0] == pytest.approx([-1 - 0.9 + 0.81 * 40, -1 + 0.9 * 40, 40])
    mean, var = fitted(STATES, returns[:, 0]).predict(QUERIES)
    assert mean == pytest.approx(cross @ h.T @ solve[:, 0])
    assert var == pytest.approx(SIGNAL - np.einsum("qi,iq->q", cross @ h.T, solve[:, 1:]))


def test_ald_keeps_a_repeated_state_out_of_the_dictionary_without_changing_the_posterior():
    points, targets = np.vstack([STATES, STATES[:1]]), np.array([1.0, -2.0, 0.5, 3.0])
    sparse = fitted(points, targets, ald_threshold=0.05)
    assert len(sparse) == 3
    gram = kernel(points, points) + NOISE * np.eye(4)
    cross = kernel(QUERIES, points)
    mean, var = sparse.predict(QUERIES)
    assert mean == pytest.approx(cross @ np.linalg.solve(gram, targets))
    assert var == pytest.approx(SIGNAL - np.einsum("qi,iq->q", cross, np.linalg.solve(gram, cross.T)))


def test_dictionary_stops_growing_at_its_cap():
    assert len(fitted(STATES, np.zeros(3), max_dictionary=2)) == 2


def random_states(count: int, dim: int, seed: int = 0) -> np.ndarray:
    """Distinct-enough sparse 0/1 states, like the belief states (a few ones among ``dim``)."""
    return (np.random.default_rng(seed).random((count, dim)) < 0.1).astype(np.float64)


def gp_numbers(model: SparseGP) -> dict[str, tuple[int, ...]]:
    """The shape of everything a GP keeps between calls (its arrays; a list of points would show here too)."""
    return {name: np.shape(value) for name, value in vars(model).items() if np.ndim(value) > 0}


def test_gp_state_stops_growing_at_the_dictionary_cap():
    """GP-SARSA's budget: past the cap, more data change the numbers a GP keeps, never how many."""
    cap, dim = 12, 60
    states = random_states(1200, dim)
    returns = np.random.default_rng(1).normal(size=1200)
    model = SparseGP(
        dim, length_scale=2.0, signal_var=SIGNAL, noise_var=NOISE, ald_threshold=0.01, max_dictionary=cap
    )
    for state, ret in zip(states[:300], returns[:300], strict=True):
        model.add(state, ret)
    model.refresh()
    shapes = gp_numbers(model)
    assert len(model) == cap
    assert all(np.prod(shape) <= cap * max(cap, dim) for shape in shapes.values()), shapes
    for state, ret in zip(states[300:], returns[300:], strict=True):
        model.add(state, ret)
    model.refresh()
    assert len(model) == cap and gp_numbers(model) == shapes
    assert sum(t.numel() for t in model.state_dict().values()) == cap * dim + 2 * cap * cap + cap


def test_padded_width_is_the_next_power_of_two_up_to_the_cap():
    assert [padded_width(m, 100) for m in (1, 2, 3, 5, 64, 65, 100)] == [1, 2, 4, 8, 64, 100, 100]


def filled_committee(sizes: dict[tuple[int, int], int], cap: int) -> Committee:
    """A committee (2 members, 3 summary actions) whose GP (member, action) holds ``sizes`` points."""
    summary = SummaryActions(np.eye(2, dtype=np.float32), coverage=1.0)
    cfg = GPOptions(gp_length_scale=2.0, gp_ald_threshold=1e-6, gp_max_dictionary=cap)
    committee = Committee(("general", "hotel"), summary, np.full(78, -1), cfg)
    states = random_states(sum(sizes.values()) * 3, 340, seed=2)
    returns = iter(np.random.default_rng(3).normal(-10, 20, len(states)))
    rows = iter(states)
    for (member, action), size in sizes.items():
        while len(committee.gps[member][action]) < size:
            committee.add(member, action, next(rows), next(returns))
    committee.refresh()
    return committee


def test_committee_stacks_cost_each_gp_about_its_own_size():
    """One full GP must not make every GP cost as much as it (q_values' padded products)."""
    cap = 40
    sizes = {(0, 0): cap, (0, 1): 1, (0, 2): 3, (1, 0): 5, (1, 2): 2}
    committee = filled_committee(sizes, cap)
    assert committee.dictionary_size() == sum(sizes.values()) == len(committee.all_points)
    padded = sum(covariances.size for _, _, _, covariances in committee.stacks)
    assert padded <= 4 * sum(m * m for m in sizes.values()) < len(sizes) * cap * cap
    slots = sorted(tuple(slot) for stack in committee.stacks for slot in stack[0])
    assert slots == sorted(sizes)


def test_committee_q_values_across_stacks_are_the_bcm_of_its_gps():
    committee = filled_committee({(0, 0): 9, (0, 1): 1, (1, 0): 3, (1, 1): 16, (1, 2): 2}, cap=16)
    queries = random_states(6, 340, seed=4)
    mean, var = committee.q_values(queries)
    per_gp = [[gp.predict(queries) for gp in member] for member in committee.gps]
    for action in range(committee.num_actions):
        expected = bcm_combine(
            np.stack([per_gp[m][action][0] for m in range(2)]),
            np.stack([per_gp[m][action][1] for m in range(2)]),
            committee.signal_var,
        )
        assert mean[:, action] == pytest.approx(expected[0] + committee.prior_mean, rel=1e-4, abs=1e-3)
        assert var[:, action] == pytest.approx(expected[1], rel=1e-4)


def test_committee_state_is_bounded_by_members_actions_and_cap():
    cap = 6
    committee = filled_committee({(m, a): cap for m in range(2) for a in range(3)}, cap)
    rng = np.random.default_rng(5)
    for state in random_states(500, 340, seed=6):
        committee.add(int(rng.integers(2)), int(rng.integers(3)), state, float(rng.normal()))
    committee.refresh()
    assert committee.dictionary_size() == 2 * 3 * cap
    assert all(len(gp) == cap for member in committee.gps for gp in member)
    assert sum(covariances.size for *_, covariances in committee.stacks) == 2 * 3 * cap * cap


def test_bcm_combination_of_two_gps():
    first, second = fitted(STATES[:2], np.array([1.0, 2.0])), fitted(STATES[1:], np.array([-1.0, 0.5]))
    (m1, v1), (m2, v2) = first.predict(QUERIES), second.predict(QUERIES)
    mean, var = bcm_combine(np.stack([m1, m2]), np.stack([v1, v2]), SIGNAL)
    expected_var = 1 / (1 / v1 + 1 / v2 - 1 / SIGNAL)
    assert var == pytest.approx(expected_var)
    assert mean == pytest.approx(expected_var * (m1 / v1 + m2 / v2))
    # a member that saw nothing returns the prior and leaves the other's estimate unchanged
    alone_mean, alone_var = bcm_combine(
        np.stack([m1, np.zeros(2)]), np.stack([v1, np.full(2, SIGNAL)]), SIGNAL
    )
    assert alone_mean == pytest.approx(m1) and alone_var == pytest.approx(v1)


def test_committee_q_values_are_the_bcm_of_its_gps():
    summary = SummaryActions(np.eye(2, dtype=np.float32), coverage=1.0)
    cfg = GPOptions(gp_length_scale=LENGTH, gp_signal_var=SIGNAL, gp_noise_var=NOISE, gp_ald_threshold=1e-9)
    committee = Committee(("general", "hotel"), summary, np.full(78, -1), cfg)
    states = np.pad(STATES, ((0, 0), (0, 336)))
    queries = np.pad(QUERIES, ((0, 0), (0, 336)))
    for member, action, row, ret in ((0, 0, 0, 1.0), (0, 0, 1, 2.0), (1, 0, 2, -1.0), (1, 1, 0, 4.0)):
        committee.add(member, action, states[row], ret + cfg.gp_prior_mean)  # the GPs see ret
    committee.refresh()
    mean, var = committee.q_values(queries)
    per_gp = [[gp.predict(queries) for gp in member] for member in committee.gps]
    for action in range(2):
        expected = bcm_combine(
            np.stack([per_gp[m][action][0] for m in range(2)]),
            np.stack([per_gp[m][action][1] for m in range(2)]),
            SIGNAL,
        )
        assert mean[:, action] == pytest.approx(expected[0] + cfg.gp_prior_mean, rel=1e-4)
        assert var[:, action] == pytest.approx(expected[1], rel=1e-4)


def test_returns_only_for_dialogues_that_ended_in_the_segment():
    rewards = np.array([[1.0], [2.0], [3.0], [4.0]])
    done = np.array([[0], [1], [0], [0]], dtype=bool)
    returns, complete = discounted_returns(rewards, done, 0.5)
    assert complete[:, 0].tolist() == [True, True, False, False]
    assert returns[:2, 0].tolist() == pytest.approx([1 + 0.5 * 2, 2])


def test_turn_members_carry_the_domain_until_the_dialogue_ends():
    act_member = np.zeros(78, dtype=np.int64)
    act_member[1:3] = [1, 2]  # user act 0 is general, 1 hotel, 2 train
    user_acts = np.array([[0, 0, 0], [1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 0, 0]], dtype=np.float64)
    states = np.pad(user_acts, ((0, 0), (0, 337)))[:, None, :]
    done = np.array([0, 0, 1, 1, 0], dtype=bool)[:, None]
    assert turn_members(states, done, act_member, 3)[:, 0].tolist() == [0, 1, 1, 1, 0]


@pytest.mark.slow
def test_tiny_run_writes_loadable_checkpoints_and_resumes(tmp_path):
    cfg = make_config(
        algo="gp_mbcm",
        epochs=2,
        steps_per_epoch=64,
        num_envs=2,
        eval_every=1,
        eval_dialogues=2,
        gp_num_actions=5,
        gp_max_dictionary=10,
    )
    record = run(cfg, tmp_path)
    assert (tmp_path / "results.json").is_file() and (tmp_path / "best.pt").is_file()
    agent, _ = load_agent(tmp_path / "last.pt")
    assert agent.committee.dictionary_size() > 0
    assert len(run_dialogues(agent, DialogueEnv(), [0]).dialogues) == 1
    resumed = run(cfg.replace(epochs=3), tmp_path, resume=True)
    assert resumed["best"]["success"] >= record["best"]["success"]


def test_answer_the_requests_action_informs_every_requested_slot():
    answers = request_answers(
        ["Hotel-Request-Addr-?", "Hotel-Request-Ref-?", "general-bye-none-none"],
        ["general-bye-none-none", "Hotel-Inform-Addr-1"],
    )
    assert answers.tolist() == [1, -1, -1]
    summary = SummaryActions(np.array([[1.0, 0.0]], dtype=np.float32), coverage=1.0)
    committee = Committee(("general",), summary, np.pad(answers, (0, 75), constant_values=-1), GPOptions())
    states = np.zeros((2, 340))
    states[0, [0, 1]] = 1  # the user asked for the address and the reference
    assert committee.action_vectors(states, np.array([1, 0])).tolist() == [[0.0, 1.0], [1.0, 0.0]]
