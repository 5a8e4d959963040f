import torch

from vrb.diagnostics import decoding_stats, probe_auc, reward_parts, roc_auc
from vrb.policy import MultiLabelPolicy


def test_roc_auc_hand_cases():
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert roc_auc(torch.tensor([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert roc_auc(torch.tensor([0.1, 0.2, 0.9, 0.8]), labels) == 0.0
    assert roc_auc(torch.tensor([0.5, 0.5, 0.5, 0.5]), labels) == 0.5


def test_probe_tells_separable_states_apart_and_not_identical_ones():
    gen = torch.Generator().manual_seed(0)
    expert = torch.bernoulli(torch.full((400, 20), 0.5), generator=gen)
    expert[:, 3] = 0.0
    shifted = expert.clone()
    shifted[:, 3] = 1.0  # one feature gives the source away
    assert probe_auc(expert, shifted, torch.Generator().manual_seed(1)) > 0.95
    same = torch.bernoulli(torch.full((400, 20), 0.5), generator=gen)
    same[:, 3] = 0.0
    assert abs(probe_auc(expert, same, torch.Generator().manual_seed(1)) - 0.5) < 0.1


def test_decoding_stats_count_greedy_acts_empty_turns_and_entropy():
    policy = MultiLabelPolicy(3, 4, (5,))
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
        policy.net[-1].bias.copy_(torch.tensor([2.0, 1.0, -1.0, -2.0]))
        policy.net[0].weight[0, 0] = 1.0  # state feature 0 switches every act off through the hidden unit
        policy.net[-1].weight[:, 0] = -10.0
    stats = decoding_stats(policy, torch.tensor([[0.0, 0, 0], [1.0, 0, 0]]))
    assert stats["greedy_acts_per_turn"] == 1.0  # two acts, then none
    assert stats["empty_greedy_rate"] == 0.5
    assert stats["entropy"] > 0


def test_reward_parts_share_of_the_log_pi_term():
    parts = reward_parts(torch.tensor([1.0, -1.0]), torch.tensor([-3.0, -3.0]), 1.0)
    assert parts["reward_logpi_share"] == 0.75
    assert parts["reward_f_mean"] == 0.0 and parts["reward_logpi_term_mean"] == 3.0
    assert reward_parts(torch.tensor([1.0]), torch.tensor([-3.0]), 0.0)["reward_logpi_share"] == 0.0
