"""The authors'-style comparison code (bench/authors_style.py) computes what ours computes:
same inputs, the same per-sample gradients by a backward pass as by the closed form, the same
VOG from files on disk as from the in-memory ring; and a tiny run goes through."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from alr_core.common.params import AugmentParams, parse_params
from alr_core.data.datasets import PipelineData, SplitData
from alr_core.lnl.vog import VogBuffer, last_layer_gradient
from alr_core.nn.models import ModelSpec, build_model
from alr_core.nn.training import InputPipeline, channel_stats
from bench.authors_style import PilImages, gradient_pass, image_transform, train_authors_style, vog_from_files

NUM_CLASSES = 3


def random_split(rng: np.random.Generator, n: int, size: int, channels: int, prefix: str) -> SplitData:
    labels = rng.integers(0, NUM_CLASSES, n)
    images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    return SplitData(np.array([f"{prefix}/{i}" for i in range(n)]), images, labels, labels.copy())


def test_unaugmented_pil_inputs_equal_ours():
    rng = np.random.default_rng(0)
    for channels in (1, 3):
        split = random_split(rng, 10, 8, channels, "train")
        stats = channel_stats(split.images)
        dataset = PilImages(split.images, split.labels, image_transform(stats, 8, AugmentParams(), train=False))
        theirs = torch.stack([dataset[i][0] for i in range(len(dataset))])
        ours = InputPipeline(stats, AugmentParams(), torch.device("cpu"), torch.Generator()).eval_input(
            torch.from_numpy(split.images))
        assert theirs.shape == (10, channels, 8, 8)
        assert torch.allclose(theirs, ours, atol=1e-5)
        assert [dataset[i][1:] for i in (0, 9)] == [(int(split.labels[0]), 0), (int(split.labels[9]), 9)]


def test_augmented_pil_inputs_are_padded_crops():
    rng = np.random.default_rng(1)
    split = random_split(rng, 4, 8, 1, "train")
    stats = {"mean": [0.0], "std": [1.0]}
    dataset = PilImages(split.images, split.labels, image_transform(stats, 8, AugmentParams(crop_padding=2), True))
    torch.manual_seed(0)
    for i in range(len(dataset)):
        crop = (dataset[i][0][0] * 255).round().to(torch.uint8).numpy()
        padded = np.pad(split.images[i, :, :, 0], 2)
        assert any((padded[r : r + 8, c : c + 8] == crop).all() for r in range(5) for c in range(5))


def test_backward_gradients_equal_the_closed_form():
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    split = random_split(rng, 37, 8, 1, "train")  # 37: the last batch is a short one
    stats = channel_stats(split.images)
    dataset = PilImages(split.images, split.labels, image_transform(stats, 8, AugmentParams(), train=False))
    net = build_model(ModelSpec("small_cnn", NUM_CLASSES, 1, 8, 0.3)).eval()
    loader = DataLoader(dataset, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))

    grads = gradient_pass(net, loader, len(dataset), torch.device("cpu"))

    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        features, logits = net(x)
    closed = last_layer_gradient(logits.softmax(1), features, torch.as_tensor(split.labels))
    assert grads.shape == (37, 129) and grads.dtype == np.float32
    np.testing.assert_allclose(grads, closed.numpy(), rtol=1e-4, atol=1e-6)
    # a full backward ran: the whole network, not only the head, got gradients
    assert net.body[0].weight.grad is not None and net.body[0].weight.grad.abs().sum() > 0


def test_vog_from_files_equals_the_ring_buffer(tmp_path):
    gen = torch.Generator().manual_seed(3)
    snapshots = [torch.randn(50, 9, generator=gen) for _ in range(4)]
    buffer = VogBuffer(50, 9, window=3)
    paths = []
    for epoch, snapshot in enumerate(snapshots):
        buffer.add(snapshot)
        paths.append(tmp_path / f"grads_f_epoch{epoch:03d}.npy")
        np.save(paths[-1], snapshot.numpy())
    from_files = vog_from_files(paths[-3:])
    assert from_files.shape == (50,)
    np.testing.assert_allclose(from_files, buffer.vog().numpy(), rtol=1e-5, atol=1e-7)
    assert not np.allclose(vog_from_files(paths[:3]), from_files)  # the window is the last 3 files


def test_tiny_run_writes_gradient_files_and_uses_vog(tmp_path):
    rng = np.random.default_rng(4)
    train = random_split(rng, 48, 8, 1, "train")
    data = PipelineData(train, random_split(rng, 12, 8, 1, "val"), random_split(rng, 6, 8, 1, "test"),
                        [str(k) for k in range(NUM_CLASSES)])  # fmt: skip
    params = parse_params({
        "noise": {"rate": 0.4},
        "model": {"arch": "small_cnn"},
        "train": {"device": "cpu", "batch_size": 16, "eval_batch_size": 16},
        "lnl": {"method": "coteaching_vog", "selection": "global", "epochs": 3, "num_gradual": 1, "vog_window": 2},
    })  # fmt: skip

    epochs = train_authors_style(data, params, tmp_path)

    assert list(epochs["epoch"]) == [0, 1, 2]
    assert list(epochs["vog_used"]) == [False, False, True]
    assert np.isfinite(epochs[["train_loss_f", "train_loss_g"]].to_numpy()).all()
    assert (epochs["seconds"] >= epochs[["vog_read", "train", "gradient_pass", "validate"]].sum(axis=1)).all()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"grads_{n}_epoch{e:03d}.npy" for n in "fg" for e in range(3)]
    grads = np.load(tmp_path / "grads_g_epoch002.npy")
    assert grads.shape == (48, 129) and np.isfinite(grads).all()
    assert (grads[:, -1] <= 0).all() and (grads[:, -1] < 0).any()  # bias coordinate p_ỹ − 1, every row written
