"""Co-teaching's selection rules (alr_core.lnl.selection): the forget-rate schedule, the keep count,
the L ∪ V rule, global and class-aware selection, and the exchange of kept sets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from alr_core.lnl.selection import (
    balance_weights,
    exchange_losses,
    masked_exchange_losses,
    forget_rate_schedule,
    num_to_keep,
    select_kept,
    select_loss_vog,
)


def as_list(indices: torch.Tensor) -> list[int]:
    assert indices.dtype == torch.int64
    return indices.tolist()


# ----------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    "epoch, expected",
    [(0, 0.0), (1, 0.04), (5, 0.2), (9, 0.36), (10, 0.4), (11, 0.4), (100, 0.4)],
)
def test_forget_rate_linear_ramp(epoch, expected):
    assert forget_rate_schedule(epoch, tau=0.4, num_gradual=10, exponent=1.0) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "epoch, expected",
    [(0, 0.0), (2, 0.4 * 0.2**2), (5, 0.1), (8, 0.4 * 0.8**2), (10, 0.4), (30, 0.4)],
)
def test_forget_rate_quadratic_ramp(epoch, expected):
    assert forget_rate_schedule(epoch, tau=0.4, num_gradual=10, exponent=2.0) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("epoch", [0, 1, 7])
def test_forget_rate_without_warmup_is_tau_from_the_start(epoch):
    assert forget_rate_schedule(epoch, tau=0.6, num_gradual=0, exponent=1.0) == 0.6
    assert forget_rate_schedule(epoch, tau=0.6, num_gradual=0, exponent=3.0) == 0.6


def test_forget_rate_is_monotone_and_bounded_by_tau():
    rates = [forget_rate_schedule(e, 0.35, 7, 1.5) for e in range(20)]
    assert rates == sorted(rates)
    assert rates[0] == 0.0 and max(rates) == pytest.approx(0.35)
    assert all(r == pytest.approx(0.35) for r in rates[7:])


# ----------------------------------------------------------------------------- keep count


@pytest.mark.parametrize(
    "batch, rate, expected",
    [
        (10, 0.4, 6),
        (10, 0.0, 10),
        (1, 0.9, 1),
        (1, 0.0, 1),
        (3, 0.5, 1),
        (3, 0.99, 1),
        (10, 0.3, 7),  # (1 - 0.3) * 10 = 7.000000000000001 in floats
        (20, 0.9, 2),  # (1 - 0.9) * 20 = 1.9999999999999996 in floats: still 2
        (30, 0.9, 3),  # 2.9999999999999996 in floats
        (64, 0.4, 38),  # floor(38.4)
        (121, 0.2, 96),  # floor(96.8)
        (7, 0.5, 3),  # floor(3.5)
    ],
)
def test_num_to_keep(batch, rate, expected):
    assert num_to_keep(batch, rate) == expected


def test_num_to_keep_matches_floor_formula_on_a_grid():
    for batch in range(1, 70):
        for percent in range(0, 100):
            # exact rational arithmetic: floor((100 - percent) * batch / 100)
            exact = ((100 - percent) * batch) // 100
            assert num_to_keep(batch, percent / 100) == max(1, exact), (batch, percent)


# ----------------------------------------------------------------------------- L ∪ V

LOSSES = torch.tensor([0.5, 0.1, 0.9, 0.1, 0.3, 0.7])
VOG = torch.tensor([0.2, 0.9, 0.05, 0.4, 0.8, 0.1])


def test_loss_vog_hand_example():
    # n = 4, m = 0.5: |V| = 2, |L| = 2.
    # L: the two smallest losses, 0.1 at 1 and 0.1 at 3 (tie broken by position).
    # Outside L, by VOG: 2 (0.05), 5 (0.1), 0 (0.2), 4 (0.8) -> V = {2, 5}.
    assert as_list(select_loss_vog(LOSSES, VOG, 4, 0.5)) == [1, 3, 2, 5]


def test_loss_vog_with_mix_0_2():
    # n = 5, ⌊0.2·5⌋ = 1: L = 4 smallest losses {1, 3, 4, 0}; V = smallest VOG of {2, 5} = 2.
    assert as_list(select_loss_vog(LOSSES, VOG, 5, 0.2)) == [1, 3, 4, 0, 2]


def test_loss_ties_broken_by_position():
    losses = torch.tensor([0.3, 0.2, 0.2, 0.2, 0.1])
    assert as_list(select_loss_vog(losses, None, 1, 0.0)) == [4]
    assert as_list(select_loss_vog(losses, None, 2, 0.0)) == [4, 1]
    assert as_list(select_loss_vog(losses, None, 3, 0.0)) == [4, 1, 2]
    assert as_list(select_loss_vog(losses, None, 4, 0.0)) == [4, 1, 2, 3]


def test_vog_ties_broken_by_position():
    losses = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    vog = torch.tensor([0.0, 0.7, 0.5, 0.5, 0.5, 0.9])
    # n = 2, m = 0.5: L = {0}; among 1..5 the smallest VOG is 0.5 at 2, 3 and 4 -> 2.
    assert as_list(select_loss_vog(losses, vog, 2, 0.5)) == [0, 2]
    # m = 1: the 3 smallest VOG overall: 0 (0.0), then the 0.5 ties in position order.
    assert as_list(select_loss_vog(losses, vog, 3, 1.0)) == [0, 2, 3]


def test_mix_zero_is_plain_small_loss():
    gen = torch.Generator().manual_seed(0)
    losses = torch.rand(50, generator=gen)
    vog = torch.rand(50, generator=gen)
    for n in (1, 7, 25, 50):
        expected = torch.argsort(losses, stable=True)[:n]
        assert torch.equal(select_loss_vog(losses, vog, n, 0.0), expected)
        assert torch.equal(select_loss_vog(losses, None, n, 0.0), expected)
        # without VOG the mix is ignored: plain small-loss
        assert torch.equal(select_loss_vog(losses, None, n, 0.5), expected)


def test_mix_one_picks_only_by_vog():
    gen = torch.Generator().manual_seed(1)
    losses = torch.rand(40, generator=gen)
    vog = torch.rand(40, generator=gen)
    for n in (1, 3, 20, 40):
        kept = select_loss_vog(losses, vog, n, 1.0)
        assert torch.equal(kept, torch.argsort(vog, stable=True)[:n])


def test_n_one_keeps_exactly_one():
    # ⌊0.5·1⌋ = 0 -> the smallest loss
    assert as_list(select_loss_vog(LOSSES, VOG, 1, 0.5)) == [1]
    # ⌊0.99·1⌋ = 0 -> still the smallest loss (the paper's two floors, docs/method.md would keep none)
    assert as_list(select_loss_vog(LOSSES, VOG, 1, 0.99)) == [1]
    # m = 1 -> the smallest VOG
    assert as_list(select_loss_vog(LOSSES, VOG, 1, 1.0)) == [2]


def test_n_larger_than_batch_keeps_everything_once():
    kept = select_loss_vog(LOSSES, VOG, 100, 0.5)
    assert sorted(as_list(kept)) == list(range(6))
    kept = select_loss_vog(LOSSES, None, 100, 0.0)
    assert as_list(kept) == [1, 3, 4, 0, 5, 2]


def test_batch_of_one():
    losses, vog = torch.tensor([2.5]), torch.tensor([0.3])
    for mix in (0.0, 0.2, 1.0):
        assert as_list(select_loss_vog(losses, vog, 1, mix)) == [0]
    assert as_list(select_kept(losses, torch.tensor([3]), 0.9, vog, 0.5)) == [0]
    assert as_list(select_kept(losses, torch.tensor([3]), 0.9, vog, 0.5, class_aware=True)) == [0]


@pytest.mark.parametrize("mix", [0.0, 0.1, 0.2, 0.25, 0.5, 0.7, 0.9, 1.0])
def test_size_is_n_and_v_never_overlaps_l(mix):
    gen = torch.Generator().manual_seed(2)
    for size in (1, 2, 3, 5, 17, 64):
        losses = torch.rand(size, generator=gen)
        # ties on purpose
        vog = torch.randint(0, 3, (size,), generator=gen).float()
        for n in range(1, size + 1):
            kept = select_loss_vog(losses, vog, n, mix)
            n_vog = math.floor(mix * n + 1e-9)
            assert len(kept) == n
            assert len(set(kept.tolist())) == n  # no sample twice: V ∩ L = ∅
            by_loss = kept[: n - n_vog]
            assert torch.equal(by_loss, torch.argsort(losses, stable=True)[: n - n_vog])
            # every V member has a VOG no larger than any non-kept sample outside L
            rest = sorted(set(range(size)) - set(kept.tolist()))
            if n_vog and rest:
                assert vog[kept[n - n_vog :]].max() <= vog[rest].min()


# ----------------------------------------------------------------------------- global vs class-aware


def test_select_kept_global_vs_class_aware():
    losses = torch.tensor([0.1, 0.2, 0.3, 0.4, 5.0, 6.0])
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    # global: n = ⌊0.5·6⌋ = 3 -> the three smallest losses, all of class 0
    assert as_list(select_kept(losses, labels, 0.5)) == [0, 1, 2]
    # class-aware: class 0 keeps ⌊0.5·4⌋ = 2, class 1 keeps ⌊0.5·2⌋ = 1
    assert as_list(select_kept(losses, labels, 0.5, class_aware=True)) == [0, 1, 4]


def test_select_kept_class_aware_with_vog():
    labels = torch.tensor([1, 0, 1, 0, 1, 0])
    losses = torch.tensor([0.1, 0.5, 0.2, 0.05, 0.3, 0.6])
    vog = torch.tensor([0.9, 0.3, 0.8, 0.7, 0.1, 0.2])
    # per class n = ⌊(2/3)·3⌋ = 2, |V| = 1.
    # class 1 = {0, 2, 4}: L = {0}; V = smaller VOG of {2: 0.8, 4: 0.1} = 4.
    # class 0 = {1, 3, 5}: L = {3}; V = smaller VOG of {1: 0.3, 5: 0.2} = 5.
    assert as_list(select_kept(losses, labels, 1 / 3, vog, 0.5, class_aware=True)) == [0, 3, 4, 5]
    # global: n = 4, |V| = 2: L = {3, 0}; outside L by VOG: 4 (0.1), 5 (0.2)
    assert as_list(select_kept(losses, labels, 1 / 3, vog, 0.5)) == [3, 0, 4, 5]


def test_class_aware_keeps_at_least_one_per_class_present():
    gen = torch.Generator().manual_seed(3)
    labels = torch.tensor([0] * 40 + [1] * 3 + [2] * 1 + [4] * 2)  # class 3 absent
    losses = torch.rand(len(labels), generator=gen)
    losses[40:] += 10.0  # the rare classes have the largest losses
    vog = torch.rand(len(labels), generator=gen)
    for rate in (0.0, 0.4, 0.8, 0.95):
        for vog_arg, mix in ((None, 0.0), (vog, 0.3)):
            kept = select_kept(losses, labels, rate, vog_arg, mix, class_aware=True)
            counts = torch.bincount(labels[kept], minlength=5).tolist()
            assert counts == [num_to_keep(40, rate), num_to_keep(3, rate), 1, 0, num_to_keep(2, rate)]
            assert torch.equal(kept, torch.sort(kept).values)
            assert len(set(kept.tolist())) == len(kept)
    # the global rule at 0.4 drops every sample of the rare classes
    kept = select_kept(losses, labels, 0.4)
    assert set(labels[kept].tolist()) == {0}


def test_select_kept_global_size():
    gen = torch.Generator().manual_seed(4)
    for size in (1, 2, 5, 33):
        losses = torch.rand(size, generator=gen)
        labels = torch.randint(0, 3, (size,), generator=gen)
        vog = torch.rand(size, generator=gen)
        for rate in (0.0, 0.2, 0.5, 0.9):
            assert len(select_kept(losses, labels, rate, vog, 0.2)) == num_to_keep(size, rate)


# ----------------------------------------------------------------------------- exchange


def test_exchange_losses_values():
    losses_f = torch.tensor([1.0, 2.0, 3.0, 4.0])
    losses_g = torch.tensor([10.0, 20.0, 30.0, 40.0])
    kept_f = torch.tensor([0, 1])
    kept_g = torch.tensor([2, 3, 1])
    loss_f, loss_g = exchange_losses(losses_f, losses_g, kept_f, kept_g)
    assert loss_f.item() == pytest.approx((3.0 + 4.0 + 2.0) / 3)  # f on g's kept set
    assert loss_g.item() == pytest.approx((10.0 + 20.0) / 2)  # g on f's kept set


def test_exchange_losses_gradients_reach_only_the_right_tensors():
    losses_f = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    losses_g = torch.tensor([5.0, 6.0, 7.0, 8.0], requires_grad=True)
    kept_f, kept_g = torch.tensor([0, 1]), torch.tensor([1, 2, 3])
    loss_f, loss_g = exchange_losses(losses_f, losses_g, kept_f, kept_g)

    grad_f, grad_g = torch.autograd.grad(loss_f, (losses_f, losses_g), allow_unused=True)
    assert torch.allclose(grad_f, torch.tensor([0.0, 1 / 3, 1 / 3, 1 / 3]))
    assert grad_g is None  # f's loss does not depend on g's losses
    grad_f, grad_g = torch.autograd.grad(loss_g, (losses_f, losses_g), allow_unused=True)
    assert grad_f is None
    assert torch.allclose(grad_g, torch.tensor([0.5, 0.5, 0.0, 0.0]))


def test_exchange_updates_each_network_on_its_peers_selection():
    """Two linear networks: after the exchange, f's gradient is the gradient of f's mean CE
    over g's kept set, g's over f's kept set, and neither gets gradient from the other."""
    torch.manual_seed(0)
    x = torch.randn(12, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (12,))
    f = torch.nn.Linear(5, 3).double()
    g = torch.nn.Linear(5, 3).double()
    losses_f = F.cross_entropy(f(x), y, reduction="none")
    losses_g = F.cross_entropy(g(x), y, reduction="none")
    kept_f = select_kept(losses_f.detach(), y, 0.5)
    kept_g = select_kept(losses_g.detach(), y, 0.5)
    assert len(kept_f) == len(kept_g) == 6
    loss_f, loss_g = exchange_losses(losses_f, losses_g, kept_f, kept_g)
    (loss_f + loss_g).backward()

    f_ref, g_ref = torch.nn.Linear(5, 3).double(), torch.nn.Linear(5, 3).double()
    f_ref.load_state_dict(f.state_dict())
    g_ref.load_state_dict(g.state_dict())
    F.cross_entropy(f_ref(x[kept_g]), y[kept_g]).backward()
    F.cross_entropy(g_ref(x[kept_f]), y[kept_f]).backward()
    for net, ref in ((f, f_ref), (g, g_ref)):
        for p, p_ref in zip(net.parameters(), ref.parameters()):
            assert torch.allclose(p.grad, p_ref.grad, atol=1e-12)
    # the kept sets differ here, so training on one's own selection would give other gradients
    assert set(kept_f.tolist()) != set(kept_g.tolist())


def test_exchange_losses_with_weights():
    losses_f = torch.tensor([1.0, 2.0, 3.0, 4.0])
    losses_g = torch.tensor([10.0, 20.0, 30.0, 40.0])
    weights = torch.tensor([1.0, 3.0, 0.5, 2.0])
    loss_f, loss_g = exchange_losses(losses_f, losses_g, torch.tensor([0, 1]), torch.tensor([2, 3]), weights)
    assert loss_f.item() == pytest.approx((3.0 * 0.5 + 4.0 * 2.0) / 2)
    assert loss_g.item() == pytest.approx((10.0 * 1.0 + 20.0 * 3.0) / 2)


def test_masked_exchange_equals_the_index_exchange():
    losses_f = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    losses_g = torch.tensor([10.0, 20.0, 30.0, 40.0], requires_grad=True)
    mask_f = torch.tensor([1.0, 1.0, 0.0, 0.0])
    mask_g = torch.tensor([0.0, 1.0, 1.0, 1.0])
    masked = masked_exchange_losses(losses_f, losses_g, mask_f, mask_g)
    indexed = exchange_losses(losses_f, losses_g, torch.tensor([0, 1]), torch.tensor([1, 2, 3]))
    for a, b in zip(masked, indexed):
        assert a.item() == pytest.approx(b.item())
    grad_f, grad_g = torch.autograd.grad(masked[0], (losses_f, losses_g), allow_unused=True)
    assert torch.allclose(grad_f, torch.tensor([0.0, 1 / 3, 1 / 3, 1 / 3])) and grad_g is None


def test_masked_exchange_with_class_weights_and_an_empty_mask():
    losses = torch.tensor([1.0, 2.0, 3.0])
    # f's mask keeps sample 0 with weight 3 and sample 2 with weight 0.5; g keeps nothing
    weights_f = torch.tensor([3.0, 0.0, 0.5])
    loss_f, loss_g = masked_exchange_losses(losses, losses, weights_f, torch.zeros(3))
    assert loss_f.item() == 0.0  # g kept nothing in this batch: f gets no gradient from it
    assert loss_g.item() == pytest.approx((1.0 * 3.0 + 3.0 * 0.5) / 2)


def test_balance_weights_are_inverse_frequency_and_average_one():
    counts = torch.tensor([90, 0, 10])
    weights = balance_weights(counts)
    assert torch.allclose(weights, torch.tensor([100 / (2 * 90), 0.0, 100 / (2 * 10)]))
    assert (weights * counts).sum().item() == pytest.approx(counts.sum().item())
