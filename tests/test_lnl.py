"""Phase 1 end to end on a tiny synthetic data set (alr_core.lnl.phase1.train_phase1): every method and
option, the shape of its outputs, determinism, and the reliability rules (a tiny class still
trains, a last batch of one, divergence stops with a message)."""

from __future__ import annotations

import dataclasses
import io
import math
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from builders import class_images

import alr_core.lnl.phase1 as lnl_module
from alr_core.common.errors import AlrError
from alr_core.common.params import CLASS_RULES, Params, parse_params
from alr_core.data.datasets import PipelineData, SplitData, load_pipeline_data, model_inputs
from alr_core.evaluation.metrics import selection_metrics
from alr_core.lnl.class_rules import class_gmm
from alr_core.lnl.phase1 import train_phase1
from alr_core.lnl.selection import balance_weights, forget_rate_schedule, kept_mask, masked_loss, num_to_keep
from alr_core.nn.models import ModelSpec, load_checkpoint, save_checkpoint

CLASS_NAMES = ["square_tl", "square_br", "bar"]
TRAIN_COUNTS = (60, 58, 3)  # observed class sizes; class 2 is tiny
NUM_TRAIN = sum(TRAIN_COUNTS)  # 121
BATCH_SIZE = 20  # 121 % 20 == 1: the last batch would hold one sample
EPOCHS = 6
NOISE_RATE = 0.2


def make_data(seed: int = 0, with_truth: bool = True) -> PipelineData:
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(3), TRAIN_COUNTS)
    observed = truth.copy()
    # flip 10 of class 0 to 1 and 10 of class 1 to 0 (observed sizes unchanged), and one of the
    # three samples of the tiny class is flipped in from class 0
    flip_0 = rng.choice(np.arange(0, 60), 11, replace=False)
    flip_1 = rng.choice(np.arange(60, 118), 10, replace=False)
    observed[flip_0[:10]] = 1
    observed[flip_1] = 0
    truth[118] = 0  # observed 2, truly 0: a flipped-in sample of the tiny class
    images = class_images(truth, rng)
    order = rng.permutation(NUM_TRAIN)
    train = SplitData(
        sample_ids=np.array([f"s{i:04d}" for i in range(NUM_TRAIN)])[order],
        images=images[order],
        labels=observed[order].astype(np.int64),
        truth=truth[order].astype(np.int64) if with_truth else None,
    )

    def clean_split(prefix: str, per_class: int) -> SplitData:
        labels = np.repeat(np.arange(3), per_class).astype(np.int64)
        return SplitData(np.array([f"{prefix}{i}" for i in range(len(labels))]), class_images(labels, rng), labels)

    return PipelineData(train=train, val=clean_split("v", 10), test=clean_split("t", 10), class_names=CLASS_NAMES)


def make_params(**lnl_overrides):
    train_overrides = lnl_overrides.pop("train", {})
    raw = {
        "seed": 3,
        "noise": {"type": "symmetric", "rate": NOISE_RATE},
        "model": {"arch": "small_cnn", "dropout": 0.1},
        "train": {"device": "cpu", "batch_size": BATCH_SIZE, "lr": 0.05, "eval_batch_size": 50,
                  "augment": {"crop_padding": 1}, **train_overrides},  # fmt: skip
        # the per-batch global cut, and per-class rules without the above-chance guard, unless a test
        # names them (params.yaml's default is a per-class rule with the guard in C)
        "lnl": {"epochs": EPOCHS, "num_gradual": 2, "vog_window": 2, "vog_mix": 0.25, "selection": "global",
                "keep_above_chance": "never", **lnl_overrides},
    }
    return parse_params(raw)


@pytest.fixture(scope="module")
def data() -> PipelineData:
    return make_data()


pytestmark = pytest.mark.usefixtures("torch_state")


def test_synthetic_data_is_as_described(data):
    assert len(data.train.labels) == NUM_TRAIN and NUM_TRAIN % BATCH_SIZE == 1
    assert np.bincount(data.train.labels).tolist() == list(TRAIN_COUNTS)
    assert (data.train.labels != data.train.truth).sum() == 21
    assert data.train.images.dtype == np.uint8 and data.train.images.shape == (NUM_TRAIN, 8, 8, 1)


RUNS = {
    "ce": dict(method="ce"),
    "coteaching": dict(method="coteaching"),
    "vog_eval": dict(method="coteaching_vog", vog_source="eval"),
    "vog_train": dict(method="coteaching_vog", vog_source="train"),
    "vog_class_aware": dict(method="coteaching_vog", selection="class_aware", vog_normalize="class"),
    "coteaching_class_aware": dict(method="coteaching", selection="class_aware"),
    "class_gmm": dict(method="coteaching", selection="class_gmm"),
    "class_gmm_above_chance_in_c": dict(method="coteaching", selection="class_gmm", keep_above_chance="clean_guess"),
    "vog_class_gmm_balanced": dict(method="coteaching_vog", selection="class_gmm", class_balance="loss"),
    "prototype": dict(method="coteaching", selection="prototype"),
    "noise_quota": dict(method="coteaching", selection="noise_quota"),
    "confident_learning": dict(method="coteaching", selection="confident_learning"),
}

_results: dict = {}


def run(name: str, data: PipelineData):
    """Each configuration trains once per test session."""
    if name not in _results:
        params = make_params(**RUNS[name])
        _results[name] = (params, train_phase1(data, params, progress=False))
    return _results[name]


def check_classification(scores: dict):
    assert set(scores) >= {"accuracy", "balanced_accuracy", "macro_f1", "macro_auroc", "mcc",
                           "recall_per_class", "precision_per_class", "confusion_matrix"}  # fmt: skip
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auroc"):
        assert 0.0 <= scores[key] <= 1.0, key
    assert -1.0 <= scores["mcc"] <= 1.0
    assert list(scores["recall_per_class"]) == CLASS_NAMES
    assert np.array(scores["confusion_matrix"]).sum() == 30


def test_plain_ce_weights_its_loss_by_class_under_class_balance_loss(data, monkeypatch):
    # lnl.class_balance: loss used to reach Co-teaching's exchange and the feature rules' C only:
    # plain CE trained bit-identically to class_balance: none
    weights = []

    def spy(losses, batch_weights):
        weights.append(batch_weights.detach().clone())
        return masked_loss(losses, batch_weights)

    monkeypatch.setattr(lnl_module, "masked_loss", spy)
    weighted = train_phase1(data, make_params(method="ce", class_balance="loss", epochs=1), progress=False)
    labels = torch.as_tensor(data.train.labels)
    expected = balance_weights(torch.bincount(labels, minlength=3))[labels]
    assert torch.equal(torch.cat(weights).sort().values, expected.sort().values)  # every sample once, its class's
    assert expected.max() > 10 * expected.min()  # the 3-sample class weighs far more than the 60-sample one
    plain = train_phase1(data, make_params(method="ce", class_balance="none", epochs=1), progress=False)
    assert len(weights) == math.ceil(NUM_TRAIN / BATCH_SIZE) - 1  # no further calls: none trains unweighted
    assert not all(torch.equal(a, b) for a, b in zip(weighted.model.state_dict().values(),
                                                     plain.model.state_dict().values()))  # fmt: skip


def test_mask_weights_balance_the_classes_of_the_kept_set_not_of_the_split():
    # 3 samples of each class; the mask keeps all of class 0 and one of class 1: kept counts
    # (3, 1), weights n / (K' · n_c) = 4 / 6 and 4 / 2 (the whole split's (3, 3) would give 1 and 1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    truth = torch.tensor([0, 0, 1, 1, 1, 1])
    mask = np.array([True, True, True, True, False, False])
    weights, (kept, clean) = lnl_module._mask_weights([mask, mask], labels, truth, 3, "loss")
    for weight in weights:
        torch.testing.assert_close(weight, torch.tensor([2 / 3, 2 / 3, 2 / 3, 2.0, 0.0, 0.0]))
    assert (kept, clean) == (4, 3)  # sample 2 is kept but truly class 1
    plain, _ = lnl_module._mask_weights([mask], labels, None, 3, "none")
    assert plain[0].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("name", list(RUNS))
def test_phase1_outputs(name, data):
    params, result = run(name, data)
    lnl = params.lnl
    coteaching = lnl.method != "ce"
    table = result.selection

    # ---- selection table: one row per train sample, in label-table order
    base = ["sample_id", "observed_label", "loss", "vog", "prediction", "clean_guess"]
    peer = ["peer_loss", "peer_vog", "peer_prediction", "peer_clean_guess", "networks_agree"]
    assert list(table.columns) == base + (peer if coteaching else [])
    assert len(table) == NUM_TRAIN
    assert table["sample_id"].tolist() == data.train.sample_ids.tolist()
    assert table["observed_label"].tolist() == data.train.labels.tolist()
    assert table["clean_guess"].dtype == bool
    assert np.isfinite(table["loss"]).all() and (table["loss"] >= 0).all()
    assert table["prediction"].between(0, 2).all()

    final_rate = forget_rate_schedule(EPOCHS - 1, NOISE_RATE if coteaching else 0.0, 2, 1.0)
    assert result.metrics["final_forget_rate"] == pytest.approx(final_rate)
    if not coteaching:
        assert table["clean_guess"].all()
        assert table["vog"].isna().all()
    else:
        assert final_rate == pytest.approx(NOISE_RATE)
        uses_vog = lnl.method == "coteaching_vog"
        for prefix in ("", "peer_"):
            vog_column = table[f"{prefix}vog"]
            assert (np.isfinite(vog_column).all() if uses_vog else vog_column.isna().all())
            if lnl.selection in CLASS_RULES:
                kept_classes = set(table.loc[table[f"{prefix}clean_guess"], "observed_label"])
                assert kept_classes == {0, 1, 2}  # every observed class keeps a sample
                if lnl.selection == "class_gmm":  # the rule on the table's own loss (and VOG)
                    expected, _ = class_gmm(table[f"{prefix}loss"].to_numpy(), table["observed_label"].to_numpy(),
                                            vog_column.to_numpy() if uses_vog else None)  # fmt: skip
                    assert table[f"{prefix}clean_guess"].tolist() == expected.tolist()
                continue
            # the clean guess is the selection rule applied to the table's own loss and VOG
            expected = kept_mask(
                torch.tensor(table[f"{prefix}loss"].to_numpy()),
                torch.tensor(table["observed_label"].to_numpy()),
                final_rate,
                torch.tensor(vog_column.to_numpy()) if uses_vog else None,
                lnl.vog_mix,
                lnl.selection == "class_aware",
            )
            assert table[f"{prefix}clean_guess"].tolist() == expected.tolist()
        if lnl.selection == "global":
            assert table["clean_guess"].sum() == num_to_keep(NUM_TRAIN, final_rate) == 96
        elif lnl.selection in CLASS_RULES:
            kept_whole = result.metrics["classes_kept_whole"]
            assert set(kept_whole) <= set(CLASS_NAMES)
            if lnl.selection in ("class_gmm", "prototype"):  # 3 samples: too few for a mixture
                assert "bar" in kept_whole
        else:
            kept_per_class = table[table["clean_guess"]]["observed_label"].value_counts()
            for cls, size in enumerate(TRAIN_COUNTS):
                assert kept_per_class.get(cls, 0) == num_to_keep(size, final_rate)
            assert kept_per_class[2] >= 1  # the tiny class keeps a sample
        assert (table["networks_agree"] == (table["prediction"] == table["peer_prediction"])).all()
        if lnl.vog_normalize == "class":
            for cls in range(3):
                values = table.loc[table["observed_label"] == cls, "vog"]
                assert values.mean() == pytest.approx(0.0, abs=1e-4)

    # ---- metrics
    metrics = result.metrics
    assert set(metrics) >= {"method", "arch", "device", "final_forget_rate", "best_epoch", "val", "test",
                            "selection", "selection_rule", "classes_kept_whole"}  # fmt: skip
    # wall-clock numbers stay out of the tracked metrics (identical runs must diff to nothing)
    assert not {"seconds", "train_images_per_second_per_network", "epoch_seconds"} & set(metrics)
    assert set(result.timing) == {"seconds", "train_images_per_second_per_network", "epoch_seconds"}
    assert metrics["method"] == lnl.method and metrics["arch"] == "small_cnn" and metrics["device"] == "cpu"
    assert metrics["selection_rule"] == (lnl.selection if coteaching else None)
    assert 0 <= metrics["best_epoch"] < EPOCHS
    check_classification(metrics["val"])
    check_classification(metrics["test"])
    assert result.timing["train_images_per_second_per_network"] > 0
    selection = metrics["selection"]
    assert selection == selection_metrics(table["clean_guess"].to_numpy(), data.train.labels, data.train.truth,
                                          CLASS_NAMES)  # fmt: skip
    assert selection["kept"] == table["clean_guess"].sum()
    for key in ("precision", "recall", "worst_class_recall", "kept_share"):
        assert 0.0 <= selection[key] <= 1.0

    # ---- per-epoch table
    epochs = result.epochs
    assert len(epochs) == EPOCHS
    assert epochs["epoch"].tolist() == list(range(EPOCHS))
    tau = NOISE_RATE if coteaching else 0.0
    np.testing.assert_allclose(epochs["forget_rate"], [forget_rate_schedule(e, tau, 2, 1.0) for e in range(EPOCHS)])
    # the learning rate each epoch trained with: cosine from train.lr, 0.05 at epoch 0
    np.testing.assert_allclose(epochs["lr"], [0.05 * (1 + math.cos(math.pi * e / EPOCHS)) / 2 for e in range(EPOCHS)])
    assert np.isfinite(epochs["train_loss_f"]).all()
    seconds = result.timing["epoch_seconds"]  # wall clock: in the timing record, not the plotted series
    assert "seconds" not in epochs and len(seconds) == EPOCHS and min(seconds) > 0
    assert sum(seconds) >= sum(result.timing["seconds"].values()) - 0.01
    if coteaching:
        assert np.isfinite(epochs["train_loss_g"]).all()
        assert epochs["kept_size_f"].iloc[0] == NUM_TRAIN  # R(0) = 0 keeps everything
        if lnl.selection == "global":
            # batches of 20 and a last one of 21 (the sample left over joins the batch before)
            sizes = [BATCH_SIZE] * (NUM_TRAIN // BATCH_SIZE - 1) + [BATCH_SIZE + 1]
            expected = [sum(num_to_keep(s, r) for s in sizes) for r in epochs["forget_rate"]]
            assert epochs["kept_size_f"].tolist() == expected
        assert epochs["kept_precision_f"].between(0, 1).all()
    else:
        # the columns are there for dvc.yaml's plots, empty
        assert epochs[["kept_size_f", "kept_precision_f", "train_loss_g", "val_macro_f1_g"]].isna().all().all()

    # ---- networks
    assert (result.peer is not None) == coteaching
    assert result.spec.num_classes == 3 and result.spec.in_channels == 1 and result.spec.image_size == 8


def test_networks_learn_the_easy_task(data):
    """The classes differ by a bright patch; even six epochs on noisy labels learn the two
    large classes (the three-sample class is too small to learn here)."""
    for name in ("ce", "coteaching"):
        _, result = run(name, data)
        recall = result.metrics["val"]["recall_per_class"]
        assert recall["square_tl"] >= 0.8 and recall["square_br"] >= 0.8, (name, recall)
    _, result = run("coteaching", data)
    assert result.metrics["selection"]["precision"] > 1 - 21 / NUM_TRAIN  # better than keeping at random


def test_mixed_precision_is_recorded_and_off_on_the_cpu(data):
    """train.mixed_precision only acts on CUDA: on the CPU the run is the float32 run."""
    params, plain = run("vog_eval", data)
    mixed = train_phase1(data, make_params(**RUNS["vog_eval"], train={"mixed_precision": True}), progress=False)
    assert plain.metrics["precision"] == mixed.metrics["precision"] == "float32"
    assert plain.metrics["data_on_device"] is True
    pd.testing.assert_frame_equal(plain.selection, mixed.selection)


def test_f_and_g_start_differently(data):
    _, result = run("coteaching", data)
    assert not torch.equal(result.model.head.weight, result.peer.head.weight)


def test_checkpoint_of_the_result_round_trips(data, tmp_path):
    _, result = run("coteaching", data)
    path = tmp_path / "model.pt"
    save_checkpoint(path, result.spec, result.model, data.class_names, result.normalization, peer=result.peer)
    spec, model, checkpoint = load_checkpoint(path, expected_class_names=CLASS_NAMES)
    assert spec == result.spec and checkpoint["normalization"] == result.normalization
    x = torch.randn(4, 1, 8, 8).contiguous(memory_format=torch.channels_last)
    result.model.eval()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[1], result.model(x)[1])


@pytest.mark.parametrize("name", ["vog_eval", "class_gmm"])
def test_same_seed_same_result(name, data):
    params, first = run(name, data)
    second = train_phase1(data, params, progress=False)
    pd.testing.assert_frame_equal(first.selection, second.selection)
    pd.testing.assert_frame_equal(first.epochs, second.epochs)
    assert first.metrics == second.metrics  # the timings live in result.timing


@pytest.mark.parametrize("keep_above_chance", ["clean_guess", "always"])
def test_class_rule_masks_drive_training_after_the_warm_up(data, monkeypatch, keep_above_chance):
    """A per-class rule is applied to each network's eval pass after every epoch from T_k − 1 on,
    and from epoch T_k on each network trains on the samples its peer's mask keeps;
    ``lnl.keep_above_chance`` reaches the rule for C only (clean_guess) or for every mask (always)."""
    calls = []

    def only_class_0(rule, labels, losses, probs, features, vog=None, keep_above_chance=False):
        calls.append((rule, labels.shape, losses.shape, probs.shape, features.shape[0], vog, keep_above_chance))
        return labels == 0, []

    monkeypatch.setattr(lnl_module, "class_keep", only_class_0)
    params = make_params(method="coteaching", selection="prototype", keep_above_chance=keep_above_chance)
    result = train_phase1(data, params, progress=False)
    # after epochs T_k − 1 = 1 … E − 2 for both networks, then once per network for C
    assert len(calls) == 2 * (EPOCHS - 2) + 2
    in_training = keep_above_chance == "always"
    assert set(calls[:-2]) == {("prototype", (NUM_TRAIN,), (NUM_TRAIN,), (NUM_TRAIN, 3), NUM_TRAIN, None, in_training)}
    assert set(calls[-2:]) == {("prototype", (NUM_TRAIN,), (NUM_TRAIN,), (NUM_TRAIN, 3), NUM_TRAIN, None, True)}
    epochs = result.epochs
    observed_0 = data.train.labels == 0
    clean_share = (data.train.truth[observed_0] == 0).mean()
    # epochs 0, 1: the per-batch warm-up (R(0) = 0 keeps all); from epoch 2 the mask: class 0 only
    assert epochs["kept_size_f"].iloc[0] == NUM_TRAIN
    assert epochs["kept_size_f"].iloc[2:].tolist() == [observed_0.sum()] * (EPOCHS - 2)
    np.testing.assert_allclose(epochs["kept_precision_f"].iloc[2:], clean_share)
    assert result.selection["clean_guess"].tolist() == observed_0.tolist()


def test_keep_above_chance_in_c_only_trains_alike_and_adds_to_c(data):
    _, plain = run("class_gmm", data)
    _, guarded = run("class_gmm_above_chance_in_c", data)
    pd.testing.assert_frame_equal(plain.epochs, guarded.epochs)
    np.testing.assert_allclose(plain.selection["loss"], guarded.selection["loss"])
    # C is the rule's C plus the samples f gives more than 1/K for their label (loss < log K);
    # which samples those are is tested on hand arrays in test_class_rules.py
    above = (guarded.selection["loss"] < np.log(len(CLASS_NAMES))).to_numpy()
    expected = plain.selection["clean_guess"].to_numpy() | above
    assert guarded.selection["clean_guess"].tolist() == expected.tolist()


def test_other_seed_other_networks(data):
    params, first = run("coteaching", data)
    other = parse_params({**_raw_of(params), "seed": 4})
    second = train_phase1(data, other, progress=False)
    assert not np.allclose(first.selection["loss"], second.selection["loss"])


def _raw_of(params) -> dict:
    return dataclasses.asdict(params)


def test_without_truth_the_selection_metrics_count_what_c_keeps():
    data = make_data(with_truth=False)
    params = make_params(method="coteaching", epochs=2)
    result = train_phase1(data, params, progress=False)
    kept = result.selection["clean_guess"].to_numpy()
    assert result.metrics["selection"] == selection_metrics(kept, data.train.labels, None, data.class_names)
    assert result.metrics["selection"]["kept"] == kept.sum() < NUM_TRAIN
    assert result.metrics["selection"]["precision"] is None
    assert result.epochs["kept_precision_f"].isna().all()
    assert result.selection["clean_guess"].sum() == num_to_keep(NUM_TRAIN, forget_rate_schedule(1, NOISE_RATE, 2, 1))


def test_vog_counts_from_the_first_epoch_params_allow():
    """VOG needs the warm-up (num_gradual 2) and vog_window (2) snapshots: with 3 epochs it is
    there for the clean guess; with 2 it would never be, and the params refuse the run."""
    with pytest.raises(AlrError, match="'lnl.epochs' is 2, so the run would be plain Co-teaching"):
        make_params(method="coteaching_vog", epochs=2)
    result = train_phase1(make_data(), make_params(method="coteaching_vog", epochs=3), progress=False)
    assert result.selection["vog"].notna().all()


def test_empty_val_split_is_an_alr_error(data):
    empty = SplitData(np.array([], dtype=str), np.zeros((0, 8, 8, 1), np.uint8), np.zeros(0, np.int64))
    broken = PipelineData(data.train, empty, data.test, CLASS_NAMES)
    with pytest.raises(AlrError, match="val split is empty"):
        train_phase1(broken, make_params(method="ce", epochs=1), progress=False)


def test_nan_loss_names_epoch_and_batch(data, monkeypatch):
    real = lnl_module.per_sample_loss
    calls = {"n": 0}

    def poisoned(logits, labels):
        calls["n"] += 1
        loss = real(logits, labels)
        # coteaching: two calls per batch, 6 batches per epoch; calls 17 and 18 are epoch 1, batch 2
        return loss * float("nan") if calls["n"] == 17 else loss

    monkeypatch.setattr(lnl_module, "per_sample_loss", poisoned)
    with pytest.raises(AlrError) as caught:
        train_phase1(data, make_params(method="coteaching", epochs=3), progress=False)
    message = str(caught.value)
    assert "epoch 1, batch 2" in message
    assert "nan" in message


def test_huge_learning_rate_stops_with_a_message(data):
    params = make_params(method="ce", epochs=3, train={"lr": 1e30})
    with pytest.raises(AlrError) as caught:
        train_phase1(data, params, progress=False)
    message = str(caught.value)
    assert "diverged" in message and "epoch" in message and "batch" in message and "; lower train.lr or" in message


def test_weights_file_that_fits_nothing_stops_phase1(data, tmp_path):
    """model.init names a file: it is loaded before training, and one that fits nothing stops
    with a message."""
    path = tmp_path / "w.pt"
    torch.save({"unrelated.weight": torch.zeros(2)}, path)
    params = parse_params({**_raw_of(make_params(method="ce", epochs=1)),
                           "model": {"arch": "resnet18", "init": str(path), "dropout": 0.0}})  # fmt: skip
    with pytest.raises(AlrError, match="fits 0 of the .* backbone tensors"):
        train_phase1(data, params, progress=False)


def with_embeddings(data: PipelineData, spread: float = 0.6, seed: int = 0) -> PipelineData:
    """``data`` with 8-D "pretrain" embeddings that separate the TRUE classes (one-hot × 3 plus
    Gaussian noise of std ``spread``): what a good label-free representation gives."""
    rng = np.random.default_rng(seed)

    def embed(split: SplitData) -> SplitData:
        truth = split.truth if split.truth is not None else split.labels
        vectors = np.zeros((len(truth), 8))
        vectors[np.arange(len(truth)), truth] = 3.0
        vectors = (vectors + rng.normal(0, spread, vectors.shape)).astype(np.float32)
        return dataclasses.replace(split, embeddings=vectors)

    return dataclasses.replace(data, train=embed(data.train), val=embed(data.val), test=embed(data.test))


def ssl_params(**lnl_overrides) -> Params:
    raw = _raw_of(make_params(**lnl_overrides))
    return parse_params({**raw, "pretrain": {**raw["pretrain"], "method": "simclr"},
                         "model": {**raw["model"], "init": "ssl", "freeze": "backbone"}})  # fmt: skip


def test_frozen_backbone_trains_a_head_on_the_embeddings(data):
    """model.freeze: backbone — the inputs are the embeddings, the model a linear head on them:
    on embeddings that separate the true classes it learns them despite the noisy labels."""
    frozen = model_inputs(with_embeddings(data), frozen=True)
    assert frozen.train.images.shape == (NUM_TRAIN, 8)
    result = train_phase1(frozen, ssl_params(method="coteaching", epochs=6), progress=False)
    assert result.spec == ModelSpec("linear", 3, 8, 0, 0.1)
    assert len(result.normalization["mean"]) == 8
    assert result.metrics["freeze"] == "backbone" and result.metrics["init"] == {"init": "ssl"}
    assert result.metrics["test"]["balanced_accuracy"] >= 0.9
    with pytest.raises(AlrError, match="none were loaded"):
        model_inputs(data, frozen=True)


@pytest.mark.parametrize("method", ["ce", "coteaching"])
def test_feature_rule_decides_c_once_before_training(data, method):
    """lnl.selection knn_vote: C is the rule's keep mask on the train embeddings, fixed before
    training (kept size the same every epoch), and every network trains on it alone."""
    from alr_core.lnl.feature_rules import FOLD_SEED, feature_keep

    embedded = with_embeddings(data)
    params = make_params(method=method, selection="knn_vote", knn_k=5, epochs=3)
    result = train_phase1(embedded, params, progress=False)
    expected, _ = feature_keep("knn_vote", embedded.train.embeddings, data.train.labels, 3, 5, 5, FOLD_SEED)
    assert result.selection["clean_guess"].to_numpy().tolist() == expected.tolist()
    assert (result.epochs["kept_size_f"] == expected.sum()).all()
    assert result.metrics["selection_rule"] == "knn_vote"
    clean = data.train.labels == data.train.truth
    assert result.metrics["selection"]["precision"] == pytest.approx(clean[expected].mean())
    with pytest.raises(AlrError, match="reads the pretrain stage's embeddings"):
        train_phase1(data, params, progress=False)


def test_conformal_rule_calibrates_c_on_the_validation_embeddings(data):
    """lnl.selection conformal_kfold: C is the rule's keep mask with the validation split's
    embeddings and labels as calibration rows and lnl.clean_recall as the share; without
    validation embeddings phase 1 stops with a message."""
    from alr_core.lnl.feature_rules import FOLD_SEED, feature_keep

    embedded = with_embeddings(data)
    params = make_params(method="ce", selection="conformal_kfold", clean_recall=0.7, cv_folds=3, epochs=2)
    result = train_phase1(embedded, params, progress=False)
    expected, _ = feature_keep("conformal_kfold", embedded.train.embeddings, data.train.labels, 3, 10, 3, FOLD_SEED,
                               embedded.val.embeddings, data.val.labels, 0.7)  # fmt: skip
    assert result.selection["clean_guess"].to_numpy().tolist() == expected.tolist()
    assert 0 < expected.sum() < len(expected)
    assert result.metrics["selection_rule"] == "conformal_kfold"
    with pytest.raises(AlrError, match="none were loaded with the train and validation splits"):
        train_phase1(dataclasses.replace(embedded, val=dataclasses.replace(embedded.val, embeddings=None)), params,
                     progress=False)  # fmt: skip


def test_tiny_class_trains_with_global_selection(data):
    """Three samples in a class: training runs, and every batch keeps at least one sample."""
    _, result = run("vog_eval", data)
    assert (result.epochs["kept_size_f"] >= math.ceil(NUM_TRAIN / (BATCH_SIZE + 1))).all()


# ----------------------------------------------------------------------------- loading the data


def write_prepared(tmp_path):
    """A prepared images array and samples table: 4 train, 2 val, 2 test images; image i has
    every pixel equal to 10·i so a test can tell which image went where."""
    images = (np.arange(8, dtype=np.uint8) * 10)[:, None, None, None] * np.ones((1, 3, 3, 1), np.uint8)
    samples = pd.DataFrame({
        "sample_id": [f"id{i}" for i in range(8)],
        "split": ["train", "val", "train", "test", "train", "val", "test", "train"],
        "label": [0, 1, 1, 0, 2, 2, 1, 0],
        "class_name": ["a", "b", "b", "a", "c", "c", "b", "a"],
    })  # fmt: skip
    np.save(tmp_path / "images.npy", images)
    samples.to_parquet(tmp_path / "samples.parquet", index=False)
    return tmp_path / "images.npy", tmp_path / "samples.parquet"


def test_load_pipeline_data_follows_the_label_table(tmp_path):
    images_path, samples_path = write_prepared(tmp_path)
    labels = pd.DataFrame({"sample_id": ["id7", "id0", "id4", "id2"], "observed_label": [2, 0, 2, 0],
                           "true_label": [0, 0, 2, 1]})  # fmt: skip
    data = load_pipeline_data(images_path, samples_path, labels)
    assert data.class_names == ["a", "b", "c"]
    assert data.train.sample_ids.tolist() == ["id7", "id0", "id4", "id2"]
    assert data.train.images[:, 0, 0, 0].tolist() == [70, 0, 40, 20]
    assert data.train.labels.tolist() == [2, 0, 2, 0] and data.train.labels.dtype == np.int64
    assert data.train.truth.tolist() == [0, 0, 2, 1]
    assert data.val.sample_ids.tolist() == ["id1", "id5"] and data.val.labels.tolist() == [1, 2]
    assert data.val.images[:, 0, 0, 0].tolist() == [10, 50]
    assert data.test.sample_ids.tolist() == ["id3", "id6"] and data.test.labels.tolist() == [0, 1]
    assert data.val.truth is None
    # another label column, and no truth when true_label has gaps
    labels["working"] = [1, 1, 1, 1]
    labels["true_label"] = [0.0, np.nan, 2.0, 1.0]
    data = load_pipeline_data(images_path, samples_path, labels, label_column="working")
    assert data.train.labels.tolist() == [1, 1, 1, 1]
    assert data.train.truth is None


def test_load_pipeline_data_errors(tmp_path):
    images_path, samples_path = write_prepared(tmp_path)
    with pytest.raises(AlrError, match="'nope'"):
        load_pipeline_data(images_path, samples_path, pd.DataFrame({"sample_id": ["id0", "nope"],
                                                                    "observed_label": [0, 1]}))  # fmt: skip
    np.save(images_path, np.zeros((5, 3, 3, 1), np.uint8))
    with pytest.raises(AlrError, match="8 rows"):
        load_pipeline_data(images_path, samples_path, pd.DataFrame({"sample_id": ["id0"], "observed_label": [0]}))


# ----------------------------------------------------------------------------- the safety net


VAL_LABELS = np.repeat([0, 1], 100)


def right_on(count: int) -> np.ndarray:
    """Validation predictions right on the first ``count`` samples of each class of VAL_LABELS."""
    right = np.tile(np.arange(100) < count, 2)
    return np.where(right, VAL_LABELS, 1 - VAL_LABELS)


class FakeRun:
    """What train_phase1 returns: validation predictions right on ``right`` samples per class."""

    def __init__(self, method: str, right: int, selection_rule: str | None = None):
        self.method = method
        self.val_predictions = right_on(right)
        val = right / 100
        self.metrics = {"method": method, "selection_rule": selection_rule, "val": {"balanced_accuracy": val},
                        "test": {"balanced_accuracy": val - 0.1}}
        self.timing = {"seconds": {"train": 1.0}}


@pytest.mark.parametrize("mode, method_right, ce_right, used, calls", [
    ("off", 50, 90, "coteaching", 1),
    ("check", 50, 90, "coteaching", 2),  # reported, not acted on
    ("pick", 50, 90, "ce", 2),
    ("pick", 70, 70, "coteaching", 2),  # a tie keeps the method
    ("pick", 70, 72, "ce", 2),  # CE right on 4 more of 200 samples, none fewer: picked, though p = 1/16
    ("pick", 80, 60, "coteaching", 2),
])  # fmt: skip
def test_safety_net_compares_with_plain_ce_on_validation(monkeypatch, mode, method_right, ce_right, used, calls):
    import types

    import alr_core.lnl.safety_net as safety

    seen = []

    def fake_train(data, params, progress, encoder_path):
        seen.append((params.lnl.method, params.lnl.selection, params.seed))
        plain_ce = (params.lnl.method, params.lnl.selection) == ("ce", "global")
        return FakeRun(params.lnl.method, ce_right if plain_ce else method_right,
                       None if plain_ce else params.lnl.selection)

    monkeypatch.setattr(safety, "train_phase1", fake_train)
    data = types.SimpleNamespace(val=types.SimpleNamespace(labels=VAL_LABELS))
    params = make_params(method="coteaching", selection="class_gmm", safety_net=mode)
    result = safety.train_with_safety_net(data, params)
    assert len(seen) == calls and result.method == used
    if calls == 2:
        assert seen[1] == ("ce", "global", params.seed)  # same seed: the same initialisation
        net = result.metrics["safety_net"]
        lead = net.pop("ce_lead")
        assert lead["diff"] == pytest.approx((ce_right - method_right) / 100)
        assert lead["significant"] == (lead["p_value"] < 0.05) and (ce_right - method_right > 10) == lead["significant"]
        assert net == {
            "mode": mode, "method_val_balanced_accuracy": method_right / 100,
            "ce_val_balanced_accuracy": ce_right / 100, "ce_is_better": ce_right > method_right, "used": used,
            "method_test_balanced_accuracy": method_right / 100 - 0.1,
            "ce_test_balanced_accuracy": ce_right / 100 - 0.1}
    else:
        assert "safety_net" not in result.metrics
    plain = make_params(method="ce", safety_net="pick")
    seen.clear()
    assert "safety_net" not in safety.train_with_safety_net(data, plain).metrics and len(seen) == 1
    # plain CE with a feature rule: its run is named after the rule, so "ce" always means the net's CE
    seen.clear()
    feature = safety.train_with_safety_net(data, make_params(method="ce", selection="cleanlab_kfold",
                                                             safety_net=mode))  # fmt: skip
    if mode != "off":
        assert feature.metrics["safety_net"]["used"] == ("ce + cleanlab_kfold" if used != "ce" else "ce")


@pytest.mark.parametrize("mode, used", [("check", "coteaching"), ("pick", "ce")])
def test_safety_net_seconds_are_the_time_plain_ce_took(monkeypatch, mode, used):
    import types

    import alr_core.lnl.safety_net as safety

    def fake_train(data, params, progress, encoder_path):
        plain_ce = (params.lnl.method, params.lnl.selection) == ("ce", "global")
        run = FakeRun(params.lnl.method, 90 if plain_ce else 50, None if plain_ce else params.lnl.selection)
        run.timing = {"seconds": {"train": 3.0, "evaluate": 0.25} if plain_ce else {"train": 7.0}}
        return run

    monkeypatch.setattr(safety, "train_phase1", fake_train)
    data = types.SimpleNamespace(val=types.SimpleNamespace(labels=VAL_LABELS))
    result = safety.train_with_safety_net(data, make_params(method="coteaching", selection="class_gmm",
                                                            safety_net=mode))  # fmt: skip
    assert result.method == used and result.timing["safety_net_seconds"] == 3.25


def test_safety_net_trains_plain_ce_from_the_same_start(data):
    """A real run on embeddings: the record holds both runs' validation scores and CE's lead,
    and `pick` returns the run whose score is higher."""
    from sklearn.metrics import balanced_accuracy_score

    from alr_core.lnl.safety_net import train_with_safety_net

    frozen = model_inputs(with_embeddings(data), frozen=True)
    params = ssl_params(method="coteaching", selection="class_gmm", epochs=4, safety_net="pick")
    result = train_with_safety_net(frozen, params, progress=False)
    net = result.metrics["safety_net"]
    ce = train_phase1(frozen, dataclasses.replace(params, lnl=dataclasses.replace(params.lnl, method="ce",
                                                                                 selection="global")), progress=False)
    assert net["ce_val_balanced_accuracy"] == ce.metrics["val"]["balanced_accuracy"]
    val_gap = net["ce_val_balanced_accuracy"] - net["method_val_balanced_accuracy"]
    assert net["ce_lead"]["diff"] == pytest.approx(val_gap)
    best = max(net["ce_val_balanced_accuracy"], net["method_val_balanced_accuracy"])
    assert result.metrics["val"]["balanced_accuracy"] == best
    assert result.metrics["method"] == net["used"]
    # the predictions behind the lead are the handed-on model's on the validation split
    assert balanced_accuracy_score(frozen.val.labels, result.val_predictions) == pytest.approx(best)


@pytest.mark.parametrize("net, method", [
    ({"used": "ce"}, ("ce", "global")),
    ({"used": "coteaching_vog"}, ("coteaching_vog", "class_gmm")),
    (None, ("coteaching_vog", "class_gmm")),  # lnl.safety_net: off records nothing
])  # fmt: skip
def test_the_rounds_go_on_with_the_method_the_safety_net_handed_on(net, method):
    from alr_core.lnl.safety_net import method_handed_on

    params = make_params(method="coteaching_vog", selection="class_gmm")
    handed_on = method_handed_on(params, {"method": "coteaching_vog"} | ({"safety_net": net} if net else {}))
    assert (handed_on.lnl.method, handed_on.lnl.selection) == method
    assert dataclasses.replace(handed_on, lnl=params.lnl) == params  # nothing else changes


def test_the_progress_bars_tell_the_rule_run_from_the_safety_nets_ce(data, monkeypatch):
    from alr_core.lnl.safety_net import train_with_safety_net

    class Terminal(io.StringIO):  # bars are drawn on a terminal only
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    frozen = model_inputs(with_embeddings(data), frozen=True)
    train_with_safety_net(frozen, ssl_params(method="ce", selection="cleanlab_kfold", epochs=1, safety_net="pick"))
    bars = {line.split(":")[0] for line in sys.stderr.getvalue().replace("\r", "\n").splitlines() if line}
    assert bars == {"lnl_train ce + cleanlab_kfold", "lnl_train ce"}, bars


@pytest.mark.parametrize("selection, per_class", [("global", False), ("class_aware", True), ("class_gmm", True)])
def test_the_per_batch_cut_is_per_class_for_class_aware_and_the_class_rules_warm_up(data, monkeypatch, selection,
                                                                                      per_class):
    seen = set()
    real = lnl_module.kept_mask

    def spy(loss, labels, rate, vog, mix, class_aware, *args, **kwargs):
        seen.add(class_aware)
        return real(loss, labels, rate, vog, mix, class_aware, *args, **kwargs)

    monkeypatch.setattr(lnl_module, "kept_mask", spy)
    train_phase1(data, make_params(method="coteaching", selection=selection, epochs=1), progress=False)
    assert seen == {per_class}
