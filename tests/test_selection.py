"""Co-teaching's selection rules (alr_core.lnl.selection): the forget-rate schedule, the keep count,
the L ∪ V rule, global and class-aware selection, and the exchange of kept sets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from alr_core.lnl.selection import balance_weights, forget_rate_schedule, kept_mask, masked_exchange_losses, num_to_keep


def as_list(mask: torch.Tensor) -> list[int]:
    """The kept positions of a bool mask, in order."""
    assert mask.dtype == torch.bool
    return torch.nonzero(mask).squeeze(1).tolist()


def reference_loss_vog(losses, vog, n: int, mix: float) -> list[int]:
    """The L ∪ V rule as docs/method.md states it, one group, written for reading: the n − ⌊m·n⌋
    smallest losses, then the ⌊m·n⌋ smallest VOG of the rest (ties: loss order)."""
    n_vog = math.floor(mix * n + 1e-9) if vog is not None else 0
    order = torch.argsort(losses, stable=True).tolist()
    by_loss, rest = order[: n - n_vog], order[n - n_vog :]
    by_vog = sorted(rest, key=lambda i: (float(vog[i]), rest.index(i)))[:n_vog] if n_vog else []
    return by_loss + by_vog


def reference_kept(losses, labels, rate: float, vog=None, mix: float = 0.0, class_aware: bool = False) -> list[int]:
    """:func:`kept_mask`'s kept positions by a per-group loop, sorted."""
    groups = [torch.nonzero(labels == c).squeeze(1) for c in torch.unique(labels)] if class_aware else [
        torch.arange(len(losses))]  # fmt: skip
    kept = []
    for members in groups:
        within = reference_loss_vog(losses[members], vog[members] if vog is not None else None,
                                    num_to_keep(len(members), rate), mix)  # fmt: skip
        kept += members[within].tolist()
    return sorted(kept)


def one_group(losses, vog, n: int, mix: float) -> list[int]:
    """kept_mask on a single group with a rate that keeps exactly n of its len(losses) samples."""
    size = len(losses)
    rate = 1.0 - n / size
    assert num_to_keep(size, rate) == n
    return as_list(kept_mask(losses, torch.zeros(size, dtype=torch.int64), rate, vog, mix))


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
    assert one_group(LOSSES, VOG, 4, 0.5) == sorted([1, 3, 2, 5])


def test_loss_vog_with_mix_0_2():
    # n = 5, ⌊0.2·5⌋ = 1: L = 4 smallest losses {1, 3, 4, 0}; V = smallest VOG of {2, 5} = 2.
    assert one_group(LOSSES, VOG, 5, 0.2) == sorted([1, 3, 4, 0, 2])


def test_loss_ties_broken_by_position():
    losses = torch.tensor([0.3, 0.2, 0.2, 0.2, 0.1])
    assert one_group(losses, None, 1, 0.0) == sorted([4])
    assert one_group(losses, None, 2, 0.0) == sorted([4, 1])
    assert one_group(losses, None, 3, 0.0) == sorted([4, 1, 2])
    assert one_group(losses, None, 4, 0.0) == sorted([4, 1, 2, 3])


def test_vog_ties_broken_by_position():
    losses = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    vog = torch.tensor([0.0, 0.7, 0.5, 0.5, 0.5, 0.9])
    # n = 2, m = 0.5: L = {0}; among 1..5 the smallest VOG is 0.5 at 2, 3 and 4 -> 2.
    assert one_group(losses, vog, 2, 0.5) == sorted([0, 2])
    # m = 1: the 3 smallest VOG overall: 0 (0.0), then the 0.5 ties in position order.
    assert one_group(losses, vog, 3, 1.0) == sorted([0, 2, 3])


def test_mix_zero_is_plain_small_loss():
    gen = torch.Generator().manual_seed(0)
    losses = torch.rand(50, generator=gen)
    vog = torch.rand(50, generator=gen)
    for n in (1, 7, 25, 50):
        expected = sorted(torch.argsort(losses, stable=True)[:n].tolist())
        assert one_group(losses, vog, n, 0.0) == expected
        assert one_group(losses, None, n, 0.0) == expected
        # without VOG the mix is ignored: plain small-loss
        assert one_group(losses, None, n, 0.5) == expected


def test_mix_one_picks_only_by_vog():
    gen = torch.Generator().manual_seed(1)
    losses = torch.rand(40, generator=gen)
    vog = torch.rand(40, generator=gen)
    for n in (1, 3, 20, 40):
        assert one_group(losses, vog, n, 1.0) == sorted(torch.argsort(vog, stable=True)[:n].tolist())


def test_n_one_keeps_exactly_one():
    # ⌊0.5·1⌋ = 0 -> the smallest loss
    assert one_group(LOSSES, VOG, 1, 0.5) == sorted([1])
    # ⌊0.99·1⌋ = 0 -> still the smallest loss (the paper's two floors, docs/method.md would keep none)
    assert one_group(LOSSES, VOG, 1, 0.99) == sorted([1])
    # m = 1 -> the smallest VOG
    assert one_group(LOSSES, VOG, 1, 1.0) == sorted([2])


def test_rate_zero_keeps_everything():
    for vog, mix in ((VOG, 0.5), (None, 0.0)):
        assert as_list(kept_mask(LOSSES, torch.zeros(6, dtype=torch.int64), 0.0, vog, mix)) == list(range(6))


def test_batch_of_one():
    losses, vog = torch.tensor([2.5]), torch.tensor([0.3])
    for mix in (0.0, 0.2, 1.0):
        assert one_group(losses, vog, 1, mix) == [0]
    assert as_list(kept_mask(losses, torch.tensor([3]), 0.9, vog, 0.5)) == [0]
    assert as_list(kept_mask(losses, torch.tensor([3]), 0.9, vog, 0.5, class_aware=True)) == [0]


@pytest.mark.parametrize("mix", [0.0, 0.1, 0.2, 0.25, 0.5, 0.7, 0.9, 1.0])
def test_size_is_n_and_v_never_overlaps_l(mix):
    gen = torch.Generator().manual_seed(2)
    for size in (1, 2, 3, 5, 17, 64):
        losses = torch.rand(size, generator=gen)
        # ties on purpose
        vog = torch.randint(0, 3, (size,), generator=gen).float()
        for n in range(1, size + 1):
            kept = one_group(losses, vog, n, mix)
            n_vog = math.floor(mix * n + 1e-9)
            assert len(kept) == n
            by_loss = torch.argsort(losses, stable=True)[: n - n_vog].tolist()
            assert set(by_loss) <= set(kept)  # L: the smallest losses
            # every V member has a VOG no larger than any non-kept sample
            by_vog, rest = set(kept) - set(by_loss), sorted(set(range(size)) - set(kept))
            if by_vog and rest:
                assert vog[sorted(by_vog)].max() <= vog[rest].min()


@pytest.mark.parametrize("class_aware", [False, True])
def test_kept_mask_matches_the_per_group_loop(class_aware):
    """The sort-based mask against the rule written as a loop over groups, with ties in both
    the losses and VOG, absent classes, and every rate and mix of a grid."""
    gen = torch.Generator().manual_seed(5)
    for size in (2, 3, 9, 64, 130):
        labels = torch.randint(0, 6, (size,), generator=gen) * 2  # odd class ids absent
        losses = torch.randint(0, 8, (size,), generator=gen).float() / 8  # ties on purpose
        vog = torch.randint(0, 4, (size,), generator=gen).float()
        for rate in (0.0, 0.1, 0.33, 0.5, 0.8, 0.95):
            for vog_arg, mix in ((None, 0.0), (vog, 0.0), (vog, 0.2), (vog, 0.5), (vog, 1.0)):
                mask = kept_mask(losses, labels, rate, vog_arg, mix, class_aware)
                expected = reference_kept(losses, labels, rate, vog_arg, mix, class_aware)
                assert as_list(mask) == expected, (size, rate, mix)


# ----------------------------------------------------------------------------- global vs class-aware


def test_kept_mask_global_vs_class_aware():
    losses = torch.tensor([0.1, 0.2, 0.3, 0.4, 5.0, 6.0])
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    # global: n = ⌊0.5·6⌋ = 3 -> the three smallest losses, all of class 0
    assert as_list(kept_mask(losses, labels, 0.5)) == [0, 1, 2]
    # class-aware: class 0 keeps ⌊0.5·4⌋ = 2, class 1 keeps ⌊0.5·2⌋ = 1
    assert as_list(kept_mask(losses, labels, 0.5, class_aware=True)) == [0, 1, 4]


def test_kept_mask_class_aware_with_vog():
    labels = torch.tensor([1, 0, 1, 0, 1, 0])
    losses = torch.tensor([0.1, 0.5, 0.2, 0.05, 0.3, 0.6])
    vog = torch.tensor([0.9, 0.3, 0.8, 0.7, 0.1, 0.2])
    # per class n = ⌊(2/3)·3⌋ = 2, |V| = 1.
    # class 1 = {0, 2, 4}: L = {0}; V = smaller VOG of {2: 0.8, 4: 0.1} = 4.
    # class 0 = {1, 3, 5}: L = {3}; V = smaller VOG of {1: 0.3, 5: 0.2} = 5.
    assert as_list(kept_mask(losses, labels, 1 / 3, vog, 0.5, class_aware=True)) == [0, 3, 4, 5]
    # global: n = 4, |V| = 2: L = {3, 0}; outside L by VOG: 4 (0.1), 5 (0.2)
    assert as_list(kept_mask(losses, labels, 1 / 3, vog, 0.5)) == [0, 3, 4, 5]


def test_kept_mask_class_aware_with_vog_on_adjacent_class_ids():
    # classes 0 and 1 side by side: class 0's L sample has the smallest VOG of all, and must not
    # take the place of class 1's V sample (each class ranks VOG among its own samples outside L)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    losses = torch.tensor([0.1, 0.5, 0.6, 0.2, 0.7, 0.8])
    vog = torch.tensor([0.0, 0.5, 0.4, 0.9, 0.3, 0.6])
    # per class n = ⌊(2/3)·3⌋ = 2, |V| = 1: class 0: L = {0}, V = {2}; class 1: L = {3}, V = {4}
    assert as_list(kept_mask(losses, labels, 1 / 3, vog, 0.5, class_aware=True)) == [0, 2, 3, 4]


def test_class_aware_keeps_at_least_one_per_class_present():
    gen = torch.Generator().manual_seed(3)
    labels = torch.tensor([0] * 40 + [1] * 3 + [2] * 1 + [4] * 2)  # class 3 absent
    losses = torch.rand(len(labels), generator=gen)
    losses[40:] += 10.0  # the rare classes have the largest losses
    vog = torch.rand(len(labels), generator=gen)
    for rate in (0.0, 0.4, 0.8, 0.95):
        for vog_arg, mix in ((None, 0.0), (vog, 0.3)):
            kept = kept_mask(losses, labels, rate, vog_arg, mix, class_aware=True)
            counts = torch.bincount(labels[kept], minlength=5).tolist()
            assert counts == [num_to_keep(40, rate), num_to_keep(3, rate), 1, 0, num_to_keep(2, rate)]
    # the global rule at 0.4 drops every sample of the rare classes
    kept = kept_mask(losses, labels, 0.4)
    assert set(labels[kept].tolist()) == {0}


def test_kept_mask_global_size():
    gen = torch.Generator().manual_seed(4)
    for size in (1, 2, 5, 33):
        losses = torch.rand(size, generator=gen)
        labels = torch.randint(0, 3, (size,), generator=gen)
        vog = torch.rand(size, generator=gen)
        for rate in (0.0, 0.2, 0.5, 0.9):
            assert int(kept_mask(losses, labels, rate, vog, 0.2).sum()) == num_to_keep(size, rate)


# ----------------------------------------------------------------------------- exchange


def test_exchange_losses_values():
    losses_f = torch.tensor([1.0, 2.0, 3.0, 4.0])
    losses_g = torch.tensor([10.0, 20.0, 30.0, 40.0])
    kept_f = torch.tensor([True, True, False, False])
    kept_g = torch.tensor([False, True, True, True])
    loss_f, loss_g = masked_exchange_losses(losses_f, losses_g, kept_f.float(), kept_g.float())
    assert loss_f.item() == pytest.approx((3.0 + 4.0 + 2.0) / 3)  # f on g's kept set
    assert loss_g.item() == pytest.approx((10.0 + 20.0) / 2)  # g on f's kept set


def test_exchange_losses_gradients_reach_only_the_right_tensors():
    losses_f = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    losses_g = torch.tensor([5.0, 6.0, 7.0, 8.0], requires_grad=True)
    kept_f, kept_g = torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 1.0, 1.0])
    loss_f, loss_g = masked_exchange_losses(losses_f, losses_g, kept_f, kept_g)

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
    kept_f = kept_mask(losses_f.detach(), y, 0.5)
    kept_g = kept_mask(losses_g.detach(), y, 0.5)
    assert int(kept_f.sum()) == int(kept_g.sum()) == 6
    loss_f, loss_g = masked_exchange_losses(losses_f, losses_g, kept_f.double(), kept_g.double())
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
    assert not torch.equal(kept_f, kept_g)


def test_exchange_losses_with_weights():
    losses_f = torch.tensor([1.0, 2.0, 3.0, 4.0])
    losses_g = torch.tensor([10.0, 20.0, 30.0, 40.0])
    weights = torch.tensor([1.0, 3.0, 0.5, 2.0])
    kept_f, kept_g = torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0, 1.0])
    loss_f, loss_g = masked_exchange_losses(losses_f, losses_g, kept_f * weights, kept_g * weights)
    assert loss_f.item() == pytest.approx((3.0 * 0.5 + 4.0 * 2.0) / 2)
    assert loss_g.item() == pytest.approx((10.0 * 1.0 + 20.0 * 3.0) / 2)


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
