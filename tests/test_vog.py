"""VOG (alr_core.lnl.vog): the closed-form last-layer gradient against autograd, the ring buffer
against a direct computation, and the class normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alr_core.lnl.vog import VogBuffer, head_gradient, last_layer_gradient, normalize_by_class

# ----------------------------------------------------------------------------- gradient


@pytest.mark.parametrize("num_samples, dim, num_classes", [(16, 5, 4), (9, 1, 2), (7, 12, 10)])
def test_last_layer_gradient_matches_autograd(num_samples, dim, num_classes):
    gen = torch.Generator().manual_seed(num_samples * 100 + dim)
    features = torch.randn(num_samples, dim, generator=gen, dtype=torch.float64) * 2.0
    labels = torch.randint(0, num_classes, (num_samples,), generator=gen)
    head = torch.nn.Linear(dim, num_classes).double()
    with torch.no_grad():
        head.weight.copy_(torch.randn(num_classes, dim, generator=gen, dtype=torch.float64))
        head.bias.copy_(torch.randn(num_classes, generator=gen, dtype=torch.float64))

    expected = []
    for i in range(num_samples):
        loss = F.cross_entropy(head(features[i : i + 1]), labels[i : i + 1])
        grad_w, grad_b = torch.autograd.grad(loss, (head.weight, head.bias))
        row = labels[i]
        expected.append(torch.cat([grad_w[row], grad_b[row : row + 1]]))
    expected = torch.stack(expected)

    with torch.no_grad():
        probs = head(features).softmax(dim=1)
    closed = last_layer_gradient(probs, features, labels)
    assert closed.shape == (num_samples, dim + 1)
    assert closed.dtype == torch.float64
    assert torch.allclose(closed, expected, atol=1e-6, rtol=0)
    # the gradient points away from the label: every bias coordinate is p − 1 ≤ 0
    assert (closed[:, -1] <= 0).all()


def test_last_layer_gradient_uses_the_given_label():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    features = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    labels = torch.tensor([1, 2])
    expected = torch.tensor([[-0.8, 1.6, -0.8], [-0.6, -0.1, -0.2]])
    assert torch.allclose(last_layer_gradient(probs, features, labels), expected)


def test_head_gradient_of_a_training_forward_ignores_its_dropout():
    """lnl.vog_source: train snapshots G from the training forward, whose logits went through
    dropout: G is the gradient at the features without it, whatever the masks drew."""
    from alr_core.nn.models import ModelSpec, build_model

    torch.manual_seed(0)
    model = build_model(ModelSpec(arch="small_cnn", in_channels=1, num_classes=3, image_size=8, dropout=0.9)).double()
    model.train()
    images, labels = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    features, logits = model(images)
    features = features.detach()
    gradients = head_gradient(model.head, features, labels)
    assert not torch.allclose(logits.softmax(1), model.head(features).softmax(1))  # the masks did change them
    expected = []
    for i in range(len(labels)):
        loss = F.cross_entropy(model.head(features[i : i + 1]), labels[i : i + 1])
        grad_w, grad_b = torch.autograd.grad(loss, (model.head.weight, model.head.bias))
        expected.append(torch.cat([grad_w[labels[i]], grad_b[labels[i] : labels[i] + 1]]))
    assert torch.allclose(gradients, torch.stack(expected), atol=1e-9, rtol=0)
    assert not gradients.requires_grad


# ----------------------------------------------------------------------------- ring buffer


def direct_vog(snapshots: list[np.ndarray], window: int) -> np.ndarray:
    stack = np.stack(snapshots[-window:]).astype(np.float64)  # (W, N, D + 1)
    return stack.std(axis=0, ddof=0).mean(axis=1)


@pytest.mark.parametrize("window", [2, 3, 5])
def test_buffer_matches_direct_computation(window):
    rng = np.random.default_rng(window)
    num_samples, dim = 11, 6
    buffer = VogBuffer(num_samples, dim, window)
    snapshots = []
    for step in range(window + 2):
        snap = rng.normal(scale=1.0 + step, size=(num_samples, dim)).astype(np.float32)
        snapshots.append(snap)
        buffer.add(torch.from_numpy(snap))
        assert buffer.count == step + 1
        assert buffer.ready == (step + 1 >= window)
        if buffer.ready:
            vog = buffer.vog()
            assert vog.shape == (num_samples,)
            np.testing.assert_allclose(vog.numpy(), direct_vog(snapshots, window), rtol=1e-5, atol=1e-6)


def test_buffer_forgets_snapshots_older_than_the_window():
    buffer = VogBuffer(2, 1, window=2)
    buffer.add(torch.tensor([[100.0], [-100.0]]))  # huge spread, must drop out of the window
    buffer.add(torch.tensor([[1.0], [1.0]]))
    buffer.add(torch.tensor([[3.0], [1.0]]))
    assert torch.allclose(buffer.vog(), torch.tensor([1.0, 0.0]))


def test_buffer_not_ready_raises():
    buffer = VogBuffer(4, 3, window=3)
    with pytest.raises(RuntimeError, match="3 snapshots"):
        buffer.vog()
    buffer.add(torch.zeros(4, 3))
    buffer.add(torch.zeros(4, 3))
    assert not buffer.ready
    with pytest.raises(RuntimeError):
        buffer.vog()
    buffer.add(torch.zeros(4, 3))
    assert buffer.ready
    assert torch.equal(buffer.vog(), torch.zeros(4))


def test_write_commit_equals_add():
    rng = np.random.default_rng(7)
    num_samples, dim, window = 13, 4, 3
    by_add = VogBuffer(num_samples, dim, window)
    by_write = VogBuffer(num_samples, dim, window)
    gen = torch.Generator().manual_seed(0)
    for _ in range(window + 2):
        snap = torch.from_numpy(rng.normal(size=(num_samples, dim)).astype(np.float32))
        by_add.add(snap)
        # rows arrive in shuffled batches of uneven size, as during training
        order = torch.randperm(num_samples, generator=gen)
        for batch in torch.split(order, 5):
            assert by_write.count == by_add.count - 1  # the snapshot in progress is not counted
            by_write.write(batch, snap[batch])
        by_write.commit()
        assert by_write.count == by_add.count
        assert by_write.ready == by_add.ready
        if by_add.ready:
            assert torch.equal(by_write.vog(), by_add.vog())


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 10, 1000])
def test_chunked_equals_unchunked(chunk_rows):
    rng = np.random.default_rng(11)
    num_samples, dim, window = 10, 5, 4
    buffer = VogBuffer(num_samples, dim, window)
    snapshots = []
    for _ in range(window + 1):
        snap = rng.normal(size=(num_samples, dim)).astype(np.float32)
        snapshots.append(snap)
        buffer.add(torch.from_numpy(snap))
    whole = buffer.vog(chunk_rows=num_samples)
    assert torch.equal(buffer.vog(chunk_rows=chunk_rows), whole)
    np.testing.assert_allclose(whole.numpy(), direct_vog(snapshots, window), rtol=1e-5, atol=1e-6)


def test_buffer_vog_from_closed_form_gradients():
    """End to end: snapshots of G = (p_ỹ − 1)·[h, 1] from changing predictions."""
    gen = torch.Generator().manual_seed(5)
    num_samples, dim, num_classes, window = 8, 3, 4, 3
    labels = torch.randint(0, num_classes, (num_samples,), generator=gen)
    buffer = VogBuffer(num_samples, dim + 1, window)
    grads = []
    for _ in range(window):
        probs = torch.softmax(torch.randn(num_samples, num_classes, generator=gen), dim=1)
        features = torch.randn(num_samples, dim, generator=gen)
        g = last_layer_gradient(probs, features, labels)
        grads.append(g.numpy())
        buffer.add(g)
    np.testing.assert_allclose(buffer.vog().numpy(), direct_vog(grads, window), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- class normalisation


def test_normalize_by_class_zero_mean_unit_std():
    gen = torch.Generator().manual_seed(9)
    labels = torch.tensor([0] * 10 + [2] * 6 + [3] * 1)  # class 1 absent, class 3 a singleton
    labels = labels[torch.randperm(len(labels), generator=gen)]
    vog = torch.rand(len(labels), generator=gen, dtype=torch.float64) * torch.where(labels == 2, 50.0, 1.0)
    out = normalize_by_class(vog, labels, num_classes=4)
    assert out.shape == vog.shape
    assert torch.isfinite(out).all()
    for cls in (0, 2):
        members = out[labels == cls]
        assert members.mean().item() == pytest.approx(0.0, abs=1e-9)
        assert members.std(correction=0).item() == pytest.approx(1.0, abs=1e-6)
        # order within the class is kept (a monotone transform)
        original = vog[labels == cls]
        assert torch.equal(torch.argsort(members), torch.argsort(original))
    assert out[labels == 3].item() == 0.0  # a single sample: zero, not NaN


def test_normalize_by_class_constant_class_gives_zeros():
    vog = torch.tensor([0.5, 0.5, 0.5, 1.0, 3.0])
    labels = torch.tensor([0, 0, 0, 1, 1])
    out = normalize_by_class(vog, labels, num_classes=2)
    assert torch.equal(out[:3], torch.zeros(3))
    assert torch.allclose(out[3:], torch.tensor([-1.0, 1.0]))
