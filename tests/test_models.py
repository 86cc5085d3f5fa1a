"""Models and checkpoints (alr_core.nn.models): shapes, checkpoint round trip, and clear errors for
checkpoints and weight files that do not fit."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import timm
import torch

from alr_core.common.errors import AlrError
from alr_core.nn.models import (
    ModelSpec,
    ResNet18,
    SmallCNN,
    LinearHead,
    TimmNet,
    build_model,
    init_sentence,
    initialise,
    load_checkpoint,
    load_state_checked,
    resolve_arch,
    save_checkpoint,
)

NORMALIZATION = {"mean": [0.5], "std": [0.25]}


pytestmark = pytest.mark.usefixtures("torch_state")


def spec(arch="small_cnn", num_classes=3, in_channels=1, image_size=12, dropout=0.3):
    return ModelSpec(arch, num_classes, in_channels, image_size, dropout)


def inputs(batch, channels, size, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size, generator=gen)
    return x.contiguous(memory_format=torch.channels_last)


def trained_a_little(model, x):
    """One forward in train mode, so BatchNorm running statistics differ from their defaults."""
    model.train()
    model(x)
    model.eval()
    return model


def test_resolve_arch():
    assert resolve_arch("auto", 28) == "small_cnn"
    assert resolve_arch("auto", 64) == "small_cnn"
    assert resolve_arch("auto", 65) == "resnet18"
    assert resolve_arch("resnet18", 28) == "resnet18"
    assert resolve_arch("small_cnn", 224) == "small_cnn"


@pytest.mark.parametrize(
    "arch, channels, size, dim",
    [("small_cnn", 1, 8, 128), ("small_cnn", 3, 12, 128), ("resnet18", 1, 16, 512), ("resnet18", 3, 16, 512),
     ("resnet18", 1, 72, 512)],
)  # fmt: skip
def test_forward_returns_features_and_logits(arch, channels, size, dim):
    torch.manual_seed(0)
    model = build_model(spec(arch, num_classes=5, in_channels=channels, image_size=size)).eval()
    with torch.no_grad():
        features, logits = model(inputs(3, channels, size))
    assert features.shape == (3, dim)
    assert logits.shape == (3, 5)
    assert model.feature_dim == dim
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()
    # in eval mode the logits are the head applied to the features
    assert torch.allclose(logits, model.head(features), atol=1e-5)


def test_resnet_stem_depends_on_image_size():
    small = build_model(spec("resnet18", in_channels=1, image_size=32))
    assert small.backbone.conv1.kernel_size == (3, 3) and small.backbone.conv1.stride == (1, 1)
    assert isinstance(small.backbone.maxpool, torch.nn.Identity)
    large_gray = build_model(spec("resnet18", in_channels=1, image_size=128))
    assert large_gray.backbone.conv1.kernel_size == (7, 7) and large_gray.backbone.conv1.in_channels == 1
    large_rgb = build_model(spec("resnet18", in_channels=3, image_size=128))
    assert large_rgb.backbone.conv1.in_channels == 3
    assert isinstance(large_rgb.backbone.maxpool, torch.nn.MaxPool2d)


def test_unknown_arch_is_an_alr_error():
    with pytest.raises(AlrError, match="vit"):
        build_model(spec("vit"))


def test_small_batch_of_two_trains(tmp_path):
    """A batch of two (the smallest shuffled_batches yields) passes through BatchNorm in train mode."""
    torch.manual_seed(0)
    model = build_model(spec()).train()
    features, logits = model(inputs(2, 1, 12))
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("arch, channels, size", [("small_cnn", 1, 12), ("resnet18", 3, 16)])
def test_checkpoint_round_trip(tmp_path, arch, channels, size):
    torch.manual_seed(1)
    the_spec = spec(arch, num_classes=4, in_channels=channels, image_size=size)
    model = build_model(the_spec)
    peer = build_model(the_spec) if arch == "small_cnn" else None  # one ResNet file is enough
    x = inputs(4, channels, size, seed=1)
    trained_a_little(model, x)
    path = tmp_path / "sub" / "model.pt"
    names = ["w", "x", "y", "z"]
    save_checkpoint(path, the_spec, model, names, NORMALIZATION, peer=peer)

    loaded_spec, loaded, checkpoint = load_checkpoint(path, expected_class_names=names)
    assert loaded_spec == the_spec
    assert checkpoint["class_names"] == names
    assert checkpoint["normalization"] == NORMALIZATION
    loaded.eval()
    with torch.no_grad():
        expected, got = model(x), loaded(x)
    assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    if peer is None:
        assert checkpoint["peer_state_dict"] is None
    else:
        for key, value in peer.state_dict().items():
            assert torch.equal(checkpoint["peer_state_dict"][key], value), key


def test_checkpoint_with_other_class_names_is_an_alr_error(tmp_path):
    the_spec = spec()
    save_checkpoint(tmp_path / "m.pt", the_spec, build_model(the_spec), ["a", "b", "c"], NORMALIZATION)
    with pytest.raises(AlrError) as caught:
        load_checkpoint(tmp_path / "m.pt", expected_class_names=["a", "b", "d"])
    message = str(caught.value)
    assert "['a', 'b', 'c']" in message and "['a', 'b', 'd']" in message
    with pytest.raises(AlrError, match="classes"):
        load_checkpoint(tmp_path / "m.pt", expected_class_names=["a", "b"])


def test_missing_checkpoint_is_an_alr_error(tmp_path):
    with pytest.raises(AlrError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_corrupt_checkpoint_is_an_alr_error(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(AlrError, match="cannot load"):
        load_checkpoint(path)


def test_plain_state_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "state.pt"
    torch.save(build_model(spec()).state_dict(), path)
    with pytest.raises(AlrError, match="not an alr checkpoint"):
        load_checkpoint(path)


def test_checkpoint_of_a_tensor_is_an_alr_error(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(AlrError, match="not a state dict"):
        load_checkpoint(path)


def test_checkpoint_whose_weights_do_not_fit_its_spec(tmp_path):
    """A checkpoint edited by hand (spec says 4 classes, weights have 3): a clear error."""
    path = tmp_path / "m.pt"
    save_checkpoint(path, spec(num_classes=3), build_model(spec(num_classes=3)), ["a", "b", "c"], NORMALIZATION)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["spec"]["num_classes"] = 4
    torch.save(checkpoint, path)
    with pytest.raises(AlrError, match="head.weight"):
        load_checkpoint(path)


def test_state_from_other_class_count_is_an_alr_error():
    state = build_model(spec(num_classes=3)).state_dict()
    model = build_model(spec(num_classes=5))
    with pytest.raises(AlrError) as caught:
        load_state_checked(model, state, "old.pt")
    message = str(caught.value)
    assert not isinstance(caught.value, RuntimeError)
    assert "old.pt" in message and "SmallCNN" in message
    assert "head.weight (3, 128) vs (5, 128)" in message
    assert "head.bias" in message


def test_state_from_other_arch_is_an_alr_error():
    state = build_model(spec("resnet18", image_size=16)).state_dict()
    model = build_model(spec("small_cnn"))
    with pytest.raises(AlrError) as caught:
        load_state_checked(model, state, "resnet.pt")
    message = str(caught.value)
    assert "missing" in message and "unexpected" in message
    assert "body.0.weight" in message  # a SmallCNN key the state lacks
    assert "backbone." in message  # a ResNet key the model lacks


def test_state_with_other_channel_count_is_an_alr_error():
    state = build_model(spec(in_channels=3)).state_dict()
    with pytest.raises(AlrError, match=r"body\.0\.weight \(32, 3, 3, 3\) vs \(32, 1, 3, 3\)"):
        load_state_checked(build_model(spec(in_channels=1)), state, "rgb.pt")


def test_state_checked_loads_a_fitting_state():
    torch.manual_seed(2)
    source = trained_a_little(build_model(spec()), inputs(4, 1, 12))
    target = build_model(spec())
    load_state_checked(target, source.state_dict(), "x")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


# ----------------------------------------------------------------------------- backbone weights


@pytest.fixture(scope="module")
def imagenet_shaped(tmp_path_factory):
    """A file with torchvision's ResNet-18 state dict (ImageNet shapes: 3-channel 7×7 stem,
    1000-class fc), random weights."""
    from torchvision.models import resnet18

    torch.manual_seed(3)
    state = resnet18().state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18_imagenet.pt"
    torch.save(state, path)
    return path, state


def test_weights_file_small_stem(imagenet_shaped):
    """ImageNet ResNet-18 weights into a 32 px model: everything but the 7×7 stem and the
    1000-class fc loads."""
    path, state = imagenet_shaped
    model_spec = spec("resnet18", in_channels=3, image_size=32)
    model = build_model(model_spec)
    record = initialise(model, model_spec, str(path), encoder_path=None)
    assert record["skipped"] == ["conv1.weight", "fc.bias", "fc.weight"]
    assert record["loaded_tensors"] == len(state) - 3
    own = model.backbone.state_dict()
    for key in ("layer1.0.conv1.weight", "layer4.1.bn2.running_var", "bn1.weight"):
        assert torch.equal(own[key], state[key])
    assert not torch.equal(own["conv1.weight"][:, :, :3, :3], state["conv1.weight"][:, :, :3, :3])


def test_weights_file_large_rgb(imagenet_shaped):
    path, state = imagenet_shaped
    model_spec = spec("resnet18", in_channels=3, image_size=224)
    model = build_model(model_spec)
    assert initialise(model, model_spec, str(path), None)["skipped"] == ["fc.bias", "fc.weight"]
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])


def test_weights_file_large_grayscale(imagenet_shaped):
    """An RGB stem for grayscale images is summed over its input channels (timm's in_chans=1),
    not left random."""
    path, state = imagenet_shaped
    model_spec = spec("resnet18", in_channels=1, image_size=128)
    model = build_model(model_spec)
    record = initialise(model, model_spec, str(path), None)
    assert record["skipped"] == ["fc.bias", "fc.weight"] and record["random"] == []
    assert record["summed_to_one_channel"] == ["backbone.conv1.weight"]
    assert torch.allclose(model.backbone.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))


def test_weights_file_says_what_stays_random(imagenet_shaped):
    """The 3×3 stem of a 32 px model cannot take the 7×7 one: named, and said in one line."""
    path, _ = imagenet_shaped
    model_spec = spec("resnet18", in_channels=3, image_size=32)
    record = initialise(build_model(model_spec), model_spec, str(path), None)
    assert record["random"] == ["backbone.conv1.weight"]
    assert "1 of the backbone's left random" in init_sentence(record)


@pytest.mark.parametrize("layout", ["model_state_dict", "model.", "encoder.", "module.encoder_q.", "nested"])
def test_weights_file_common_checkpoint_layouts(tmp_path, imagenet_shaped, layout):
    """PyTorch's tutorial checkpoint (model_state_dict beside optimizer and epoch), Lightning's
    ``model.``, SimCLR's ``encoder.``, MoCo v2's ``module.encoder_q.`` beside ``encoder_k``: the
    backbone loads, from the query encoder for MoCo."""
    path, state = imagenet_shaped
    if layout == "model_state_dict":
        content = {"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": []}}
    elif layout == "nested":
        content = {"model": {"state_dict": state}}
    elif layout == "module.encoder_q.":
        content = {"state_dict": {f"module.encoder_{q}.{k}": v + (q == "k") for q in "qk" for k, v in state.items()
                                  if not k.startswith("fc.")}, "epoch": 200}  # fmt: skip
    else:
        content = {layout + k: v for k, v in state.items()}
    torch.save(content, tmp_path / "ckpt.pth.tar")
    model_spec = spec("resnet18", in_channels=3, image_size=224)
    model = build_model(model_spec)
    record = initialise(model, model_spec, str(tmp_path / "ckpt.pth.tar"), None)
    assert record["random"] == []
    assert torch.equal(model.backbone.layer3[1].conv2.weight,
                       state["layer3.1.conv2.weight"])


def test_weights_file_in_safetensors_format(tmp_path, imagenet_shaped):
    """timm's weights on the Hugging Face Hub come as model.safetensors: loaded like torch.save's
    file; a cut one is named as damaged, with both formats offered."""
    from safetensors.torch import save_file

    path, state = imagenet_shaped
    save_file(state, tmp_path / "model.safetensors")
    model_spec = spec("resnet18", in_channels=3, image_size=224)
    model = build_model(model_spec)
    record = initialise(model, model_spec, str(tmp_path / "model.safetensors"), None)
    assert record["random"] == [] and record["skipped"] == ["fc.bias", "fc.weight"]
    assert torch.equal(model.backbone.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"])
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((tmp_path / "model.safetensors").read_bytes()[:5000])
    with pytest.raises(AlrError) as info:
        initialise(build_model(model_spec), model_spec, str(cut), None)
    assert str(info.value) == (f"model.init: cannot load {cut} as a torch state dict (Error while deserializing "
                               "header: invalid header length): a damaged or foreign file; give a weights file saved "
                               "by torch.save or safetensors, or model.init: scratch | ssl")


def test_weights_file_beside_a_tensor_metric(tmp_path, imagenet_shaped):
    """pytorch/examples' ImageNet checkpoint: a tensor best_acc1 beside state_dict (DataParallel's
    module. keys); the weights load, not the one top-level tensor."""
    path, state = imagenet_shaped
    torch.save({"epoch": 90, "arch": "resnet18", "state_dict": {"module." + k: v for k, v in state.items()},
                "best_acc1": torch.tensor(69.76), "optimizer": {"state": {}, "param_groups": []}},
               tmp_path / "best.pth")
    model_spec = spec("resnet18", in_channels=3, image_size=224)
    model = build_model(model_spec)
    assert initialise(model, model_spec, str(tmp_path / "best.pth"), None)["random"] == []
    assert torch.equal(model.backbone.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])


def test_weights_file_with_a_pretrain_entry_that_is_not_alrs(tmp_path, imagenet_shaped):
    path, state = imagenet_shaped
    torch.save({"state_dict": state, "pretrain": "imagenet"}, tmp_path / "w.pt")
    model_spec = spec("resnet18", in_channels=3, image_size=224)
    assert initialise(build_model(model_spec), model_spec, str(tmp_path / "w.pt"), None)["random"] == []


def test_weights_file_of_a_deeper_resnet_is_refused(tmp_path):
    """ResNet-50 (RadImageNet, fc removed) with model.arch resnet18: 80 % of resnet18's tensors
    share a name and shape with bottleneck tensors, which were loaded into basic blocks; most of
    the file fits nothing, so it is refused."""
    path = tmp_path / "radimagenet_resnet50.pt"
    torch.save(timm.create_model("resnet50", pretrained=False, num_classes=0).state_dict(), path)
    model_spec = spec("resnet18", in_channels=3, image_size=96)
    with pytest.raises(AlrError, match=r"another architecture whose layers share names.*set model.arch"):
        initialise(build_model(model_spec), model_spec, str(path), None)


def test_weights_file_without_tensors_names_its_keys(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "weights_of_net": {"a": torch.zeros(1)}, "optimizer": {}}, path)
    with pytest.raises(AlrError, match=r"holds no tensors.*'epoch', 'weights_of_net', 'optimizer'"):
        initialise(build_model(spec()), spec(), str(path), None)


def test_weights_file_untrained_alr_encoder_is_refused(tmp_path):
    path = tmp_path / "encoder.pt"
    torch.save({"state_dict": build_model(spec()).state_dict(), "pretrain": {"method": "none"}}, path)
    with pytest.raises(AlrError, match="never trained"):
        initialise(build_model(spec()), spec(), str(path), None)


def test_weights_file_whole_module_gets_a_working_command(tmp_path):
    """A pickled nn.Module is refused; the command offered saves its weights (not c['state_dict'])."""
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3)), path)  # torch's own class: importable anywhere
    with pytest.raises(AlrError) as raised:
        initialise(build_model(spec()), spec(), str(path), None)
    command = re.search(r'python -c "(.+?)"', str(raised.value)).group(1)
    subprocess.run([sys.executable, "-c", command], cwd=tmp_path, check=True)
    assert isinstance(torch.load(tmp_path / "weights.pt", weights_only=True), dict)


def test_weights_file_leaves_the_head_alone(imagenet_shaped):
    path, _ = imagenet_shaped
    torch.manual_seed(4)
    model_spec = spec("resnet18", in_channels=3, image_size=32)
    model = build_model(model_spec)
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    initialise(model, model_spec, str(path), None)
    for key, value in model.head.state_dict().items():
        assert torch.equal(value, head[key])


def test_weights_file_from_an_earlier_alr_run(tmp_path):
    """An alr checkpoint of the same arch but other classes (DDP's "module." prefix too): the
    whole backbone loads, the head does not."""
    torch.manual_seed(5)
    earlier = build_model(spec("small_cnn", num_classes=7))
    path = tmp_path / "model.pt"
    save_checkpoint(path, spec("small_cnn", num_classes=7), earlier, list("abcdefg"), NORMALIZATION)
    model_spec = spec("small_cnn", num_classes=3)
    model = build_model(model_spec)
    record = initialise(model, model_spec, str(path), None)
    assert record["skipped"] == ["head.bias", "head.weight"]
    for key, value in model.body.state_dict().items():
        assert torch.equal(value, earlier.body.state_dict()[key])
    prefixed = tmp_path / "ddp.pt"
    torch.save({"model": {f"module.{k}": v for k, v in earlier.state_dict().items()}}, prefixed)
    again = build_model(model_spec)
    assert initialise(again, model_spec, str(prefixed), None)["loaded_tensors"] == record["loaded_tensors"]
    assert torch.equal(again.body[0].weight, earlier.body[0].weight)


@pytest.mark.parametrize("content", [
    {"encoder.weight": torch.zeros(3, 3), "conv1.weight": torch.zeros(2, 2)},  # unrelated
    "small_cnn",  # another architecture's weights
])  # fmt: skip
def test_weights_file_for_another_architecture(tmp_path, content):
    if content == "small_cnn":
        content = build_model(spec("small_cnn")).state_dict()
    path = tmp_path / "other.pt"
    torch.save(content, path)
    model_spec = spec("resnet18", image_size=16)
    with pytest.raises(AlrError, match=r"fits \d+ of the \d+ backbone tensors of ResNet18.*another architecture"):
        initialise(build_model(model_spec), model_spec, str(path), None)


def test_weights_file_from_timms_training_script(tmp_path):
    """timm's train.py saves its arguments (an argparse Namespace) beside the weights: loaded;
    another Python object is refused by name, with the way to save the weights alone."""
    import argparse

    import numpy as np

    torch.manual_seed(5)
    earlier = build_model(spec("small_cnn", num_classes=7))
    model_spec = spec("small_cnn", num_classes=3)
    path = tmp_path / "last.pth.tar"
    torch.save({"epoch": 9, "arch": "small_cnn", "state_dict": earlier.state_dict(),
                "args": argparse.Namespace(lr=0.1, model="small_cnn"), "version": 2}, path)  # fmt: skip
    model = build_model(model_spec)
    assert initialise(model, model_spec, str(path), None)["skipped"] == ["head.bias", "head.weight"]
    assert torch.equal(model.body[0].weight, earlier.body[0].weight)
    foreign = tmp_path / "numpy.pth"
    torch.save({"state_dict": earlier.state_dict(), "best_metric": np.float64(0.9)}, foreign)
    with pytest.raises(AlrError) as info:
        initialise(build_model(model_spec), model_spec, str(foreign), None)
    message = str(info.value)
    assert message.startswith(f"model.init: {foreign} holds a Python object of type numpy.")
    assert f"torch.load('{foreign}', weights_only=False)" in message and "\n" not in message


def test_a_file_that_is_no_checkpoint_is_named_without_torchs_advice(tmp_path):
    """A README or a truncated download as model.init: one line, and never torch's advice to load
    with weights_only=False (which could run code)."""
    model_spec = spec("small_cnn")
    text, damaged = tmp_path / "notweights.pt", tmp_path / "damaged.pt"
    text.write_text("# a README\nsome text\n")
    damaged.write_bytes(b"PK\x03\x04garbage")
    messages = {}
    for path in (text, damaged):
        with pytest.raises(AlrError) as info:
            initialise(build_model(model_spec), model_spec, str(path), None)
        messages[path] = str(info.value)
        assert "weights_only" not in messages[path] and "file an issue" not in messages[path]
        assert "\n" not in messages[path] and messages[path].endswith("or model.init: scratch | ssl")
    assert messages[text].startswith(f"model.init: {text} is not a PyTorch checkpoint (the zip or pickle file "
                                     "torch.save writes: Unsupported operand 35)")  # fmt: skip
    assert messages[damaged].startswith(f"model.init: cannot load {damaged} as a torch state dict "
                                        "(PytorchStreamReader failed reading zip archive: not a ZIP archive)")


def test_weights_file_missing(tmp_path):
    model_spec = spec("resnet18", image_size=16)
    for init, what in ((tmp_path / "absent.pt", "does not exist"), (tmp_path, "is a folder")):
        with pytest.raises(AlrError) as info:
            initialise(build_model(model_spec), model_spec, str(init), None)
        assert str(info.value) == f"model.init: {init} {what}; expected scratch | ssl | the path of a weights file"


def test_scratch_loads_nothing():
    torch.manual_seed(6)
    model = build_model(spec())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert initialise(model, spec(), "scratch", None) == {"init": "scratch"}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- ssl initialisation


def saved_encoder(path, method="simclr", arch="small_cnn", image_shape=(12, 12, 1)):
    from alr_core.ssl.encoder import build_encoder, encoder_spec, save_encoder

    enc_spec = encoder_spec(arch, image_shape)
    encoder = build_encoder(enc_spec)
    save_encoder(path, enc_spec, encoder, NORMALIZATION, {"method": method}, head=None)
    return encoder


def test_ssl_init_loads_the_whole_encoder(tmp_path):
    torch.manual_seed(7)
    encoder = saved_encoder(tmp_path / "encoder.pt")
    model_spec = spec("small_cnn", num_classes=4)
    model = build_model(model_spec)
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    record = initialise(model, model_spec, "ssl", tmp_path / "encoder.pt")
    assert record == {"init": "ssl", "loaded_tensors": len(encoder.state_dict())}
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in encoder.state_dict().items())
    assert all(torch.equal(model.head.state_dict()[k], v) for k, v in head.items())


def test_ssl_init_refuses_an_untrained_or_foreign_encoder(tmp_path):
    saved_encoder(tmp_path / "untrained.pt", method="none")
    with pytest.raises(AlrError, match="was not trained .*pretrain.method"):
        initialise(build_model(spec()), spec(), "ssl", tmp_path / "untrained.pt")
    saved_encoder(tmp_path / "rgb.pt", image_shape=(12, 12, 3))
    with pytest.raises(AlrError, match="re-run the pretrain stage"):
        initialise(build_model(spec()), spec(), "ssl", tmp_path / "rgb.pt")
    with pytest.raises(AlrError, match="does not exist"):
        initialise(build_model(spec()), spec(), "ssl", tmp_path / "absent.pt")


# ----------------------------------------------------------------------------- timm and the linear head


def test_timm_architecture():
    torch.manual_seed(8)
    model = build_model(spec("resnet10t", num_classes=4, in_channels=1, image_size=28))
    assert isinstance(model, TimmNet) and model.feature_dim == 512
    features, logits = model(inputs(2, 1, 28))
    assert features.shape == (2, 512) and logits.shape == (2, 4)


def test_timm_feature_width_is_what_the_backbone_outputs():
    """MobileNetV3's head has a hidden layer: its pooled features (num_features, 288 here) widen
    to head_hidden_size (1024) before the classifier, and the head must take those."""
    model = build_model(spec("mobilenetv3_small_050", num_classes=3, in_channels=1, image_size=32))
    assert model.feature_dim == 1024
    features, logits = model.eval()(inputs(2, 1, 32))
    assert features.shape == (2, 1024) and logits.shape == (2, 3)


def test_timm_errors_name_the_problem():
    with pytest.raises(AlrError, match=r"'resnet81'.*closest: \['resnet18'"):
        build_model(spec("resnet81"))
    with pytest.raises(AlrError, match=r"'Small_CNN'.*closest: \['small_cnn'"):
        build_model(spec("Small_CNN"))
    with pytest.raises(AlrError, match="'convnext_atto' cannot take 16 px images.*data.image_size"):
        build_model(spec("convnext_atto", image_size=16))


def test_linear_head_on_embeddings():
    torch.manual_seed(9)
    model = build_model(spec("linear", num_classes=3, in_channels=6, image_size=0))
    assert isinstance(model, LinearHead) and model.feature_dim == 6
    x = torch.randn(4, 6)
    features, logits = model.eval()(x)
    assert torch.equal(features, x)
    assert torch.allclose(logits, x @ model.head.weight.T + model.head.bias)


def test_model_classes():
    assert isinstance(build_model(spec("small_cnn")), SmallCNN)
    assert isinstance(build_model(spec("resnet18", image_size=16)), ResNet18)


# ----------------------------------------------------------------------------- boundaries (mutation audit)


def test_resnet_small_stem_up_to_64_px_inclusive():
    at_64 = build_model(spec("resnet18", in_channels=1, image_size=64))
    assert at_64.backbone.conv1.kernel_size == (3, 3) and isinstance(at_64.backbone.maxpool, torch.nn.Identity)
    at_65 = build_model(spec("resnet18", in_channels=1, image_size=65))
    assert at_65.backbone.conv1.kernel_size == (7, 7) and isinstance(at_65.backbone.maxpool, torch.nn.MaxPool2d)


def saved_state(tmp_path, state, name="w.pt"):
    torch.save(state, tmp_path / name)
    return str(tmp_path / name)


def test_weights_file_needs_half_of_the_backbone(tmp_path):
    """SmallCNN has 30 backbone tensors: 15 fitting load, 14 are refused."""
    torch.manual_seed(9)
    source = build_model(spec()).state_dict()
    backbone = [k for k in source if not k.startswith("head.")]
    assert len(backbone) == 30
    half = saved_state(tmp_path, {k: source[k] for k in backbone[:15]}, "half.pt")
    model = build_model(spec())
    record = initialise(model, spec(), half, None)
    assert record["loaded_tensors"] == 15
    assert torch.equal(model.state_dict()[backbone[0]], source[backbone[0]])
    fewer = saved_state(tmp_path, {k: source[k] for k in backbone[:14]}, "fewer.pt")
    with pytest.raises(AlrError, match=r"fits 14 of the 30 backbone tensors of SmallCNN"):
        initialise(build_model(spec()), spec(), fewer, None)


def test_weights_file_counts_a_summed_rgb_stem_as_fitting(tmp_path):
    """A 3-channel SmallCNN's file beside 30 unrelated tensors: 29 tensors fit by name and shape and
    the stem once summed, 30 of 60: enough for the file's half too."""
    torch.manual_seed(10)
    rgb = {k: v for k, v in build_model(spec(in_channels=3)).state_dict().items() if not k.startswith("head.")}
    extra = {f"extra.{i}": torch.zeros(2) for i in range(30)}
    model = build_model(spec(in_channels=1))
    record = initialise(model, spec(in_channels=1), saved_state(tmp_path, rgb | extra), None)
    assert record["summed_to_one_channel"] == ["body.0.weight"] and record["random"] == []
    assert torch.allclose(model.body[0].weight, rgb["body.0.weight"].sum(1, keepdim=True))


def test_weights_file_stem_of_four_channels_is_not_summed(tmp_path):
    """Only an RGB stem is summed for 1-channel images; an RGBA one stays random."""
    torch.manual_seed(11)
    rgba = build_model(spec(in_channels=4)).state_dict()
    record = initialise(build_model(spec(in_channels=1)), spec(in_channels=1), saved_state(tmp_path, rgba), None)
    assert "summed_to_one_channel" not in record
    assert record["random"] == ["body.0.weight"]
    assert "body.0.weight" in record["skipped"]


def test_weights_file_without_batch_counters_leaves_nothing_random(tmp_path):
    """Older weights lack BatchNorm's num_batches_tracked: that counter is not a tensor left random."""
    state = {k: v for k, v in build_model(spec()).state_dict().items() if not k.endswith("num_batches_tracked")}
    record = initialise(build_model(spec()), spec(), saved_state(tmp_path, state), None)
    assert record["random"] == []
    assert init_sentence(record) is None


def test_weights_file_prefix_counts_only_the_tensors_under_it(tmp_path):
    """A student/teacher checkpoint: the first prefix loads; the teacher's and other tensors are
    not counted against the file's share that fits."""
    torch.manual_seed(12)
    state = build_model(spec()).state_dict()
    content = ({f"model.{k}": v for k, v in state.items()} | {f"teacher.{k}": v + 1 for k, v in state.items()}
               | {f"proj.{i}": torch.zeros(2) for i in range(4)})  # fmt: skip
    model = build_model(spec())
    record = initialise(model, spec(), saved_state(tmp_path, content), None)
    assert record["prefix_removed"] == "model." and record["loaded_tensors"] == 30
    assert torch.equal(model.body[0].weight, state["body.0.weight"])


def test_weights_file_beside_a_dict_of_settings(tmp_path):
    """A plain state dict beside a "model" entry of settings: the tensors around it load."""
    torch.manual_seed(13)
    state = build_model(spec()).state_dict()
    model = build_model(spec())
    record = initialise(model, spec(), saved_state(tmp_path, state | {"model": {"arch": "small_cnn"}}), None)
    assert record["loaded_tensors"] == 30
    assert torch.equal(model.body[0].weight, state["body.0.weight"])


def test_state_with_an_extra_tensor_is_an_alr_error():
    state = build_model(spec()).state_dict() | {"extra.weight": torch.zeros(2)}
    with pytest.raises(AlrError, match=r"unexpected: \['extra.weight'\]"):
        load_state_checked(build_model(spec()), state, "extra.pt")


def test_linear_head_is_never_initialised():
    """model.freeze: backbone trains a head on cached embeddings: no encoder file is read."""
    model_spec = spec("linear", in_channels=128, image_size=0)
    assert initialise(build_model(model_spec), model_spec, "ssl", "absent/encoder.pt") == {"init": "ssl"}


def test_ssl_init_refuses_an_encoder_without_its_pretrain_record_or_of_another_size(tmp_path):
    saved_encoder(tmp_path / "encoder.pt")
    checkpoint = torch.load(tmp_path / "encoder.pt", weights_only=True)
    del checkpoint["pretrain"]
    torch.save(checkpoint, tmp_path / "no_record.pt")
    with pytest.raises(AlrError, match="was not trained"):
        initialise(build_model(spec()), spec(), "ssl", tmp_path / "no_record.pt")
    saved_encoder(tmp_path / "16px.pt", image_shape=(16, 16, 1))  # small_cnn's tensors fit any size
    with pytest.raises(AlrError, match="re-run the pretrain stage"):
        initialise(build_model(spec()), spec(), "ssl", tmp_path / "16px.pt")


def test_weights_file_rgb_7x7_stem_into_a_grayscale_3x3_stem_stays_random(imagenet_shaped):
    """Summing over channels fits a 7×7 RGB stem to a 7×7 grayscale one only: the 3×3 stem of a
    32 px grayscale ResNet-18 stays random."""
    path, _ = imagenet_shaped
    model_spec = spec("resnet18", in_channels=1, image_size=32)
    record = initialise(build_model(model_spec), model_spec, str(path), None)
    assert "summed_to_one_channel" not in record
    assert record["random"] == ["backbone.conv1.weight"]
