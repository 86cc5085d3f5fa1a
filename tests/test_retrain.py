"""Phase-2 retraining (alr_core.active.retrain): where a round starts (al.retrain), what it
trains on (al.train_on, with expert-relabelled samples never dropped) and class balance
(al.class_balance), on test_lnl's tiny three-class data set."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import alr_core.active.retrain as retrain_module
import alr_core.lnl.phase1 as lnl_module
from alr_core.active.retrain import evaluation, retrain
from alr_core.common.errors import AlrError
from alr_core.common.params import parse_params
from alr_core.lnl.phase1 import model_spec, new_network, train_phase1
from alr_core.nn.training import (
    channel_stats,
    class_balanced_batches,
    epoch_batches,
    make_optimizer,
    seed_everything,
)
from test_lnl import EPOCHS, NUM_TRAIN, make_data, make_params

pytestmark = pytest.mark.usefixtures("torch_state")


@pytest.fixture(scope="module")
def data():
    return make_data()


def round_params(**al):
    params = make_params(method="coteaching", selection="class_gmm")
    raw = dataclasses.asdict(params)
    raw["al"] |= {"epochs": 3, "lr": 0.02} | al
    return parse_params(raw)


def flipped(data) -> np.ndarray:
    """The samples whose observed label is wrong, bool (N,): what an expert would relabel."""
    return data.train.labels != data.train.truth


def relabelled_data(data, rows: np.ndarray):
    """``data`` with the true label written into ``rows``, as oracle_relabel would."""
    labels = np.where(rows, data.train.truth, data.train.labels)
    return dataclasses.replace(data, train=dataclasses.replace(data.train, labels=labels))


def state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- pure helpers


def test_class_balanced_batches_draw_each_class_equally_often():
    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([torch.cat(class_balanced_batches(labels, 64, generator)) for _ in range(20)])
    assert len(draws) == 20 * len(labels)  # an epoch is N draws
    share = torch.bincount(labels[draws], minlength=3).double() / len(draws)
    np.testing.assert_allclose(share.numpy(), [1 / 3] * 3, atol=0.01)  # observed shares: 0.90, 0.09, 0.01
    again = class_balanced_batches(labels, 64, torch.Generator().manual_seed(0))
    first = class_balanced_batches(labels, 64, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_epoch_batches_shuffle_every_sample_once_unless_sampler():
    labels = torch.tensor([0] * 50 + [1] * 5)
    for balance in ("none", "loss"):
        order = torch.cat(epoch_batches(labels, 16, torch.Generator().manual_seed(1), balance))
        assert sorted(order.tolist()) == list(range(55))
    drawn = torch.cat(epoch_batches(labels, 16, torch.Generator().manual_seed(1), "sampler"))
    assert len(drawn) == 55 and len(set(drawn.tolist())) < 55  # with replacement


# ----------------------------------------------------------------------------- phase-1 loop with always-kept samples


def test_always_kept_samples_join_every_mask_and_the_clean_guess(data, monkeypatch):
    """A per-class rule that keeps only class 0: from T_k on the kept set is class 0 plus the
    relabelled samples, and so is the clean guess."""
    monkeypatch.setattr(lnl_module, "class_keep", lambda rule, labels, *args: (labels == 0, []))
    always = flipped(data)
    result = train_phase1(data, make_params(method="coteaching", selection="prototype"), progress=False,
                          always_keep=always)  # fmt: skip
    expected = (data.train.labels == 0) | always
    assert result.epochs["kept_size_f"].iloc[2:].tolist() == [expected.sum()] * (EPOCHS - 2)
    assert result.selection["clean_guess"].tolist() == expected.tolist()


@pytest.mark.parametrize("selection", ["global", "class_aware"])
def test_always_kept_samples_survive_the_per_batch_cut(data, selection):
    always = flipped(data)
    params = make_params(method="coteaching", selection=selection, forget_rate=0.9)
    result = train_phase1(data, params, progress=False, always_keep=always)
    assert result.selection["clean_guess"].to_numpy()[always].all()
    # the cut itself still drops 90 % of the rest
    assert result.selection["clean_guess"].to_numpy()[~always].mean() < 0.2
    assert (result.epochs["kept_size_f"].iloc[2:] >= always.sum()).all()


# ----------------------------------------------------------------------------- retrain


def phase1(data):
    params = make_params(method="coteaching", selection="class_gmm")
    return params, train_phase1(data, params, progress=False)


@pytest.mark.parametrize("mode, train_on", [("scratch", "selected"), ("finetune", "all")])
def test_only_finetune_depends_on_the_previous_model(data, mode, train_on):
    """The same round from two different previous networks: fine-tuning continues each (two
    outcomes), scratch ignores both (one outcome) and leaves the previous network untouched."""
    params = round_params(retrain=mode, train_on=train_on)
    spec = model_spec(params, data)
    outcomes = []
    for init_seed in (1, 2):
        seed_everything(init_seed)
        previous, _ = new_network(spec, params)
        before = state(previous)
        result = retrain(previous, None, spec, channel_stats(data.train.images), data, np.ones(NUM_TRAIN, dtype=bool),
                         flipped(data), params, seed=7, progress=False)  # fmt: skip
        assert result.peer is None and set(result.metrics) >= {"best_epoch", "val", "test"}
        if mode == "scratch":
            assert all(torch.equal(before[k], v) for k, v in state(previous).items())
        outcomes.append(state(result.model))
    same = all(torch.equal(outcomes[0][k], outcomes[1][k]) for k in outcomes[0])
    assert same is (mode == "scratch")


@pytest.mark.parametrize("balance", ["loss", "sampler"])
def test_class_balance_changes_training_deterministically(data, balance):
    spec = model_spec(round_params(), data)
    normalization = channel_stats(data.train.images)
    rows = np.ones(NUM_TRAIN, dtype=bool)

    def trained(class_balance):
        params = round_params(retrain="scratch", train_on="all", class_balance=class_balance)
        result = retrain(None, None, spec, normalization, data, rows, flipped(data), params, seed=7, progress=False)
        return state(result.model)

    balanced, again, plain = trained(balance), trained(balance), trained("none")
    assert all(torch.equal(balanced[k], again[k]) for k in balanced)
    assert not all(torch.equal(balanced[k], plain[k]) for k in balanced)


def test_train_on_lnl_continues_both_networks_and_keeps_the_relabelled(data):
    _, first = phase1(data)
    always = flipped(data)
    params = round_params(retrain="finetune", train_on="lnl")
    fixed = relabelled_data(data, always)
    spec = model_spec(params, data)
    result = retrain(first.model, first.peer, spec, first.normalization, fixed, np.ones(NUM_TRAIN, dtype=bool),
                     always, params, seed=7, progress=False)  # fmt: skip
    assert result.peer is not None
    selection = result.metrics["selection"]
    # every relabelled sample is now clean and kept: C's recall of them is complete
    assert selection["kept"] >= always.sum()
    assert set(result.metrics) >= {"best_epoch", "val", "test", "selection"}


def test_train_on_lnl_finetune_needs_the_peer(data):
    _, first = phase1(data)
    params = round_params(retrain="finetune", train_on="lnl")
    with pytest.raises(AlrError, match="holds a single network"):
        retrain(first.model, None, model_spec(params, data), first.normalization, data,
                np.ones(NUM_TRAIN, dtype=bool), flipped(data), params, seed=7, progress=False)


def test_train_on_lnl_from_scratch_trains_a_fresh_pair(data):
    params = round_params(retrain="scratch", train_on="lnl", epochs=EPOCHS)
    always = flipped(data)
    result = retrain(None, None, model_spec(params, data), channel_stats(data.train.images),
                     relabelled_data(data, always), np.ones(NUM_TRAIN, dtype=bool), always, params, seed=7,
                     progress=False)  # fmt: skip
    assert result.peer is not None and result.metrics["selection"]["kept"] >= always.sum()


# ----------------------------------------------------------------------------- the previous model competes


def wrong_labels_data(data):
    """Every train label moved to the next class: training on it can only unlearn."""
    labels = (data.train.truth + 1) % 3
    return dataclasses.replace(data, train=dataclasses.replace(data.train, labels=labels))


@pytest.mark.parametrize("train_on", ["all", "lnl"])
def test_a_round_that_validates_worse_hands_on_the_previous_model_unchanged(data, train_on):
    _, first = phase1(data)
    before, before_peer = state(first.model), state(first.peer)
    params = round_params(retrain="finetune", train_on=train_on, lr=0.2, epochs=4)
    spec = model_spec(params, data)
    result = retrain(first.model, first.peer, spec, first.normalization, wrong_labels_data(data),
                     np.ones(NUM_TRAIN, dtype=bool), np.zeros(NUM_TRAIN, dtype=bool), params, seed=7,
                     progress=False)  # fmt: skip
    assert result.metrics["kept_previous"] is True and result.metrics["best_epoch"] is None
    assert all(torch.equal(before[k], v) for k, v in state(result.model).items())
    assert all(torch.equal(before_peer[k], v) for k, v in state(result.peer).items())
    # its metrics are the previous model's own, on the clean validation and test splits
    again = evaluation(result.model, first.normalization, data, params)
    assert result.metrics["val"] == again["val"] and result.metrics["test"] == again["test"]
    assert first.metrics["val"]["macro_f1"] == pytest.approx(again["val"]["macro_f1"])
    assert result.metrics["trained_val_macro_f1"] <= result.metrics["val"]["macro_f1"]  # why it was not handed on


def test_a_round_that_validates_better_hands_on_the_trained_model(data):
    params = round_params(retrain="finetune", train_on="all", epochs=EPOCHS, lr=0.05)
    spec = model_spec(params, data)
    seed_everything(1)
    previous, _ = new_network(spec, params)  # untrained: chance on validation
    before = state(previous)
    previous_f1 = evaluation(previous, channel_stats(data.train.images), data, params, splits=("val",))["val"]
    result = retrain(previous, None, spec, channel_stats(data.train.images), relabelled_data(data, flipped(data)),
                     np.ones(NUM_TRAIN, dtype=bool), flipped(data), params, seed=7, progress=False)  # fmt: skip
    assert result.metrics["kept_previous"] is False and result.metrics["best_epoch"] is not None
    assert result.metrics["val"]["macro_f1"] > previous_f1["macro_f1"]
    assert result.metrics["trained_val_macro_f1"] == result.metrics["val"]["macro_f1"]
    assert not all(torch.equal(before[k], v) for k, v in state(result.model).items())


def test_model_backbone_lr_slows_all_but_the_heads_in_phase_1_and_the_rounds(data, monkeypatch):
    """``model.backbone_lr`` reaches both optimisers: Co-teaching's pair at train.lr, a round at
    al.lr, and in each the backbones learn at that share of the heads' rate."""
    seen = []

    def recording(networks, train, epochs, backbone_lr=1.0):
        optimizer, schedule = make_optimizer(networks, train, epochs, backbone_lr)
        heads = {id(p) for net in networks for p in net.head.parameters()}
        seen.append(sorted((all(id(p) in heads for p in group["params"]), round(group["lr"], 12), len(group["params"]))
                           for group in optimizer.param_groups))  # fmt: skip
        return optimizer, schedule

    monkeypatch.setattr(lnl_module, "make_optimizer", recording)
    monkeypatch.setattr(retrain_module, "make_optimizer", recording)
    raw = dataclasses.asdict(round_params(retrain="finetune", train_on="all", epochs=1))
    raw["model"]["backbone_lr"] = 0.1
    raw["lnl"]["epochs"] = 1
    params = parse_params(raw)
    phase1 = train_phase1(data, params, progress=False)
    retrain(phase1.model, None, phase1.spec, phase1.normalization, data, np.ones(NUM_TRAIN, dtype=bool),
            flipped(data), params, seed=7, progress=False)  # fmt: skip
    tensors = len(list(phase1.model.parameters()))  # a head is a weight and a bias
    assert seen == [[(False, 0.005, 2 * (tensors - 2)), (True, 0.05, 2 * 2)],
                    [(False, 0.002, tensors - 2), (True, 0.02, 2)]]  # fmt: skip


@pytest.mark.parametrize("train_on", ["selected", "lnl"])
def test_a_round_that_diverges_names_the_rounds_learning_rate(data, train_on):
    """A round trains at al.lr (or its own rounds.<r>.lr), not phase 1's train.lr."""
    params = round_params(retrain="scratch", train_on=train_on, lr=1e30)
    spec = model_spec(params, data)
    seed_everything(1)
    previous, _ = new_network(spec, params)
    with pytest.raises(AlrError, match=r"diverged: .*; lower al\.lr \(or the round's rounds\.<r>\.lr, where it sets"):
        retrain(previous, None, spec, channel_stats(data.train.images), data, np.ones(NUM_TRAIN, dtype=bool),
                flipped(data), params, seed=7, progress=False)  # fmt: skip


def test_a_round_that_only_ties_the_previous_model_hands_the_previous_one_on(data, monkeypatch):
    """Ties keep the previous model (docs/method.md): a trained model scoring exactly its macro-F1 is not handed on."""
    params = round_params(retrain="finetune", train_on="selected")
    spec = model_spec(params, data)
    normalization = channel_stats(data.train.images)
    seed_everything(1)
    previous, _ = new_network(spec, params)
    before = state(previous)
    tie = evaluation(previous, normalization, data, params, splits=("val",))["val"]["macro_f1"]
    seed_everything(2)
    other, _ = new_network(spec, params)
    monkeypatch.setattr(retrain_module, "fine_tune",
                        lambda *args, **kwargs: (other, {"best_epoch": 0, "val": {"macro_f1": tie}, "test": None}))
    result = retrain(previous, None, spec, normalization, data, np.ones(NUM_TRAIN, dtype=bool),
                     np.zeros(NUM_TRAIN, dtype=bool), params, seed=7, progress=False)  # fmt: skip
    assert result.metrics["kept_previous"] is True and result.metrics["trained_val_macro_f1"] == tie
    assert all(torch.equal(before[k], v) for k, v in state(result.model).items())


@pytest.mark.parametrize("train_on", ["selected", "all"])
def test_a_round_trains_on_the_given_rows_alone(data, monkeypatch, train_on):
    params = round_params(retrain="scratch", train_on=train_on)
    rows = np.arange(NUM_TRAIN) % 3 == 0  # what C ∪ relabelled would be under `selected`
    seen = []

    def fake_fine_tune(model, normalization, train, *args, **kwargs):
        seen.append(train)
        return model, {"best_epoch": 0, "val": {"macro_f1": 1.0}, "test": None}

    monkeypatch.setattr(retrain_module, "fine_tune", fake_fine_tune)
    retrain(None, None, model_spec(params, data), channel_stats(data.train.images), data, rows,
            np.zeros(NUM_TRAIN, dtype=bool), params, seed=7, progress=False)  # fmt: skip
    assert list(seen[0].sample_ids) == list(data.train.sample_ids[rows])
    assert np.array_equal(seen[0].labels, data.train.labels[rows]) and len(seen[0].images) == rows.sum()


def test_fine_tune_restores_the_epoch_of_best_validation_macro_f1(data, monkeypatch):
    """The per-epoch validation scores are scripted: macro-F1 peaks at epoch 1, balanced accuracy at
    epoch 2; the model handed back holds the weights it had when epoch 1 was scored."""
    params = round_params(retrain="scratch", train_on="all", epochs=3)
    seed_everything(1)
    model, _ = new_network(model_spec(params, data), params)
    scripted = iter([(0.2, 0.2), (0.6, 0.3), (0.5, 0.9)])  # (macro_f1, balanced_accuracy) per epoch
    scored, split_labels, real_evaluate = [], [], retrain_module.evaluate

    def fake_evaluate(net, images, *args, checkpoint_only=False, **kwargs):
        if not checkpoint_only:
            return real_evaluate(net, images, *args, **kwargs)
        scored.append(state(net))
        split_labels.append(images.labels.cpu().numpy())
        f1, balanced = next(scripted)
        return {"macro_f1": f1, "balanced_accuracy": balanced}

    monkeypatch.setattr(retrain_module, "evaluate", fake_evaluate)
    tuned, scores = retrain_module.fine_tune(model, channel_stats(data.train.images), data.train, data, params, seed=7,
                                             progress=False)  # fmt: skip
    assert scores["best_epoch"] == 1 and len(scored) == 3
    assert all(np.array_equal(labels, data.val.labels) for labels in split_labels)  # scored on validation
    assert not all(torch.equal(scored[1][k], scored[2][k]) for k in scored[1])  # epoch 2 did change the weights
    assert all(torch.equal(scored[1][k], v) for k, v in state(tuned).items())


def test_fine_tune_schedule_spans_the_rounds_epochs_at_the_rounds_lr(data, monkeypatch):
    params = round_params(retrain="scratch", train_on="all", epochs=2, lr=0.03)
    seed_everything(1)
    model, _ = new_network(model_spec(params, data), params)
    made, real_make_optimizer = [], retrain_module.make_optimizer
    monkeypatch.setattr(retrain_module, "make_optimizer", lambda *args: made.append(real_make_optimizer(*args))
                        or made[-1])  # fmt: skip
    retrain_module.fine_tune(model, channel_stats(data.train.images), data.train, data, params, seed=7, progress=False)
    optimizer, schedule = made[0]
    assert schedule.T_max == 2 and schedule.last_epoch == 2  # stepped once per epoch, over al.epochs
    assert schedule.base_lrs[0] == 0.03 and optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_fine_tune_trains_on_the_mean_loss_in_train_mode(data, monkeypatch):
    """Every sample's loss is 2 (a stand-in): the epoch's loss is their mean, 2, not their sum; and a
    model handed over in eval mode is trained in train mode (BatchNorm's batch statistics, dropout)."""
    params = round_params(retrain="scratch", train_on="all", epochs=2, class_balance="none")
    seed_everything(1)
    model, _ = new_network(model_spec(params, data), params)
    model.eval()
    means, modes = [], []
    real_means = retrain_module.EpochLosses.means
    monkeypatch.setattr(retrain_module.EpochLosses, "means", lambda self: means.append(real_means(self)) or means[-1])
    monkeypatch.setattr(retrain_module, "per_sample_loss", lambda logits, labels: logits.sum(1) * 0 + 2.0)
    model.register_forward_pre_hook(lambda net, inputs: modes.append(net.training) if torch.is_grad_enabled() else None)
    retrain_module.fine_tune(model, channel_stats(data.train.images), data.train, data, params, seed=7, progress=False)
    assert [float(m[0]) for m in means] == [2.0, 2.0]
    assert modes and all(modes)


@pytest.mark.parametrize("mode", ["scratch", "finetune"])
def test_train_on_lnl_hands_phase_1_the_rounds_settings_and_the_relabelled(data, monkeypatch, mode):
    """Networks that continue skip the warm-up (num_gradual 0); every relabelled sample is always kept."""
    params = round_params(retrain=mode, train_on="lnl", epochs=2, lr=0.03, class_balance="sampler")
    spec = model_spec(params, data)
    seed_everything(1)
    networks = [new_network(spec, params)[0] for _ in range(2)]
    relabelled = np.arange(NUM_TRAIN) % 4 == 0
    calls = []

    def fake_phase1(phase_data, round_params, progress, networks=None, always_keep=None, lr_key=None):
        calls.append((round_params, networks, always_keep))
        model = networks[0] if networks else new_network(spec, params)[0]
        return SimpleNamespace(model=model, peer=None, metrics={"best_epoch": 0, "val": {"macro_f1": 1.0}})

    monkeypatch.setattr(retrain_module, "train_phase1", fake_phase1)
    previous = networks if mode == "finetune" else (None, None)
    retrain(*previous, spec, channel_stats(data.train.images), data, np.ones(NUM_TRAIN, dtype=bool), relabelled,
            params, seed=7, progress=False)  # fmt: skip
    given, handed, always_keep = calls[0]
    assert params.lnl.num_gradual == 2 and given.lnl.num_gradual == (0 if mode == "finetune" else 2)
    assert (given.lnl.epochs, given.lnl.class_balance, given.train.lr, given.seed) == (2, "sampler", 0.03, 7)
    assert always_keep is relabelled
    assert (handed is None) is (mode == "scratch")
