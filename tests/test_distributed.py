"""Data-parallel training (alr_core.nn.distributed) and its launch (alr_core.common.cli.run_stage).

In one process: the slices of a global batch, the helpers that degrade to one process, the CPU
synchronised BatchNorm's arithmetic, the dispatch on ``train.processes`` and the message that
names a failed rank. On 2 CPU processes with Gloo, started as a training stage starts
(tests/distributed_job.py, e2e): pretraining (SimCLR and VICReg), phase 1 and fine-tuning give what one process
gives with the same global batch, the checkpoint written loads in one process, and a killed
rank fails the stage with its rank named and no output. Two torchrun agents started as two
machines start them (``--nnodes 2``, a TCP rendezvous, here both on localhost) give the same.

The two-process results equal one process's up to float rounding (sums in another order: the
gradient all-reduce, the synchronised BatchNorm's statistics); measured differences are below
2e-6 after 1–3 epochs, the tolerance is 2e-5. Selections (kept sets, clean guesses) are equal.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from builders import REPO_ROOT, subprocess_env, write_params
from distributed_job import CLASS_NAMES, job_params, run_loops

from alr_core.common import cli
from alr_core.common.cli import TORCHRUN_ENV, failed_processes_message, run_stage
from alr_core.common.errors import AlrError
from alr_core.common.params import parse_params
from alr_core.nn import distributed
from alr_core.nn.models import ModelSpec, build_model, load_checkpoint

pytestmark = pytest.mark.usefixtures("torch_state")

TOLERANCE = 2e-5  # float rounding of sums taken in another order (module docstring)


# ----------------------------------------------------------------------------- one process


def test_slices_of_a_global_batch_cover_every_row_once():
    assert distributed.slice_bounds(25, 2) == [0, 12, 25]
    assert distributed.slice_bounds(10, 3) == [0, 3, 6, 10]
    assert distributed.slice_bounds(1, 2) == [0, 0, 1]  # fewer rows than ranks: a slice is empty
    for rows in range(12):
        for world in range(1, 5):
            bounds = distributed.slice_bounds(rows, world)
            sizes = np.diff(bounds)
            assert bounds[0] == 0 and bounds[-1] == rows and sizes.min() >= 0 and sizes.max() - sizes.min() <= 1


def test_in_one_process_every_helper_leaves_its_input_alone():
    local = torch.arange(6.0).reshape(3, 2).requires_grad_()
    model = build_model(ModelSpec("small_cnn", 3, 1, 8, 0.0))
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    assert distributed.is_main_process()
    assert distributed.local_rows(7) == slice(0, 7)
    assert distributed.gather_rows(local, 3) is local
    assert distributed.global_batch(local, 3) is local
    loss = local.sum()
    assert distributed.loss_for_backward(loss).item() == loss.item() == 15.0
    assert distributed.data_parallel(model) is model
    distributed.join("cpu")  # not under torchrun: nothing to join
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("shape", [(12, 4, 5, 5), (12, 4)], ids=["images", "features"])
def test_the_cpu_synchronised_batchnorm_computes_batchnorm(monkeypatch, shape):
    """Its arithmetic, in one process standing in for a group (whose all-reduce of one addend is
    that addend), against torch's BatchNorm in float64: outputs, every gradient and the running
    statistics after two steps."""
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "sum_over_ranks", lambda tensor: tensor)
    generator = torch.Generator().manual_seed(0)
    reference = (torch.nn.BatchNorm2d(4) if len(shape) == 4 else torch.nn.BatchNorm1d(4)).double()
    with torch.no_grad():
        reference.weight.copy_(torch.rand(4, generator=generator, dtype=torch.float64) + 0.5)
        reference.bias.copy_(torch.randn(4, generator=generator, dtype=torch.float64))
    synced = distributed.synchronise_batchnorm(copy.deepcopy(reference))
    assert isinstance(synced, distributed.CpuSyncBatchNorm)
    for step in range(2):
        x = (3 * torch.randn(shape, generator=generator, dtype=torch.float64) + step).requires_grad_()
        x_synced = x.detach().clone().requires_grad_()
        grad = torch.randn(shape, generator=generator, dtype=torch.float64)
        expected, got = reference(x), synced(x_synced)
        expected.backward(grad)
        got.backward(grad)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(x_synced.grad, x.grad)
    for name in ("weight", "bias"):
        torch.testing.assert_close(getattr(synced, name).grad, getattr(reference, name).grad)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(synced, name), getattr(reference, name))


def test_synchronised_batchnorm_keeps_the_parameters_and_the_checkpoint_format():
    spec = ModelSpec("small_cnn", 3, 1, 8, 0.0)
    model = build_model(spec)
    parameters, keys = [id(p) for p in model.parameters()], list(model.state_dict())
    assert distributed.synchronise_batchnorm(model) is model
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(layers) == 5 and all(isinstance(m, distributed.CpuSyncBatchNorm) for m in layers)
    assert [id(p) for p in model.parameters()] == parameters  # the optimiser's parameters are still the model's
    assert list(model.state_dict()) == keys
    plain = build_model(spec)
    plain.load_state_dict(model.state_dict())  # strict: a checkpoint loads into a plain network
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)  # outside a group, plain BatchNorm


def test_a_training_stage_starts_torchrun_only_above_one_process(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    launched, ran = [], []
    monkeypatch.setattr(cli, "launch_processes", lambda processes, device: launched.append(processes))

    def main():
        ran.append(os.environ.get("RANK"))
        print("summary")

    write_params(tmp_path, {"train": {"processes": 1}})
    run_stage(main, training=True)
    write_params(tmp_path, {"train": {"processes": 3}})
    run_stage(main, training=True)
    run_stage(main)  # not a training stage: train.processes is not read
    assert launched == [3] and ran == [None, None]
    # under torchrun the stage runs as one rank of it; only rank 0 prints
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "0")
    capsys.readouterr()
    for rank in ("0", "2"):
        monkeypatch.setenv("RANK", rank)
        run_stage(main, training=True)
    assert launched == [3] and ran == [None, None, "0", "2"]
    assert capsys.readouterr().out == "summary\n"


def test_more_processes_than_the_machine_has_cores_for_are_refused_before_torchrun_starts(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with pytest.raises(AlrError) as info:
        cli.launch_processes(1000000, "cpu")
    assert str(info.value) == ("train.processes is 1000000, but this machine has 2 CPU cores (one per process); set "
                               "train.processes to at most 2, or start several machines with torchrun --nnodes "
                               "(docs/distributed.md)")  # fmt: skip


def test_an_error_in_a_rank_names_the_rank(monkeypatch, capsys):
    for name, value in zip(TORCHRUN_ENV, ("1", "2", "1")):
        monkeypatch.setenv(name, value)

    def main():
        print("progress nobody needs twice", file=sys.stderr)
        raise AlrError("training diverged: loss is nan at epoch 3, batch 0")

    with pytest.raises(SystemExit) as exit_info:
        run_stage(main, training=True)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: rank 1 of 2: training diverged: loss is nan at epoch 3, batch 0\n"


def test_the_failure_message_names_the_first_failure_first(tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    def failure(rank: int, exitcode: int) -> ProcessFailure:
        return ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=exitcode, error_file=str(tmp_path / "none"))

    message = failed_processes_message({0: failure(0, -15), 1: failure(1, 1), 2: failure(2, -9)}, 3)
    assert message.startswith(
        "train.processes is 3 and the stage failed: rank 2 was killed by SIGKILL (often: out of memory); "
        "rank 1 exited with status 1 (its error is printed above); rank 0 was stopped (SIGTERM); "
    )


# ----------------------------------------------------------------------------- two processes


def test_timm_batchnorm_with_its_activation_stays_itself_when_synchronised():
    """timm's BatchNormAct2d (efficientnet, regnet, densenet) applies dropout and an activation
    after normalising: its synchronised copy must too, in training and in evaluation (the
    copy once normalised only, silently changing the network)."""
    from timm.layers import BatchNormAct2d

    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), BatchNormAct2d(4, act_layer=torch.nn.ReLU))
    reference = copy.deepcopy(model)
    synced = distributed.synchronise_batchnorm(model)
    assert isinstance(synced[1], distributed.CpuSyncBatchNormAct)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    for mode in (True, False):
        torch.testing.assert_close(synced.train(mode)(x), reference.train(mode)(x), rtol=0, atol=0)
    assert (synced(x) == 0).any()  # the ReLU, not a bare normalisation


def test_a_batchnorm_with_a_forward_of_its_own_is_refused_not_stripped():
    class ScaledBatchNorm(torch.nn.BatchNorm2d):
        def forward(self, input):
            return 2 * super().forward(input)

    with pytest.raises(AlrError, match="ScaledBatchNorm is a BatchNorm layer with a forward of its own, which "
                                       "train.processes > 1 cannot synchronise"):  # fmt: skip
        distributed.synchronise_batchnorm(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), ScaledBatchNorm(2)))


def run_job(folder, *arguments: str, processes: int = 2) -> subprocess.CompletedProcess:
    """tests/distributed_job.py as a stage is run (``python -m``), in ``folder`` with
    ``train.processes: <processes>``: above 1, run_stage starts it under torchrun."""
    write_params(folder, raw=job_params(processes))
    env = subprocess_env() | {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])}
    return subprocess.run([sys.executable, "-m", "distributed_job", str(folder / "out"), *arguments], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_processes")
    done = run_job(folder)
    assert done.returncode == 0, done.stderr
    return torch.load(folder / "out" / "results.pt", weights_only=False), folder / "out"


@pytest.fixture(scope="module")
def one_process(torch_state):
    results, _ = run_loops(parse_params(job_params(1)))
    return results


def assert_tables_close(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=TOLERANCE, atol=TOLERANCE)


def assert_weights_close(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=TOLERANCE, atol=TOLERANCE, err_msg=key)


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["", "vicreg_", "untrained_"], ids=["simclr", "vicreg", "none"])
def test_pretraining_on_two_processes_is_one_process_pretraining(one_process, two_processes, method):
    results, _ = two_processes
    assert_tables_close(results[f"{method}pretrain_epochs"], one_process[f"{method}pretrain_epochs"])
    embeddings, expected = results[f"{method}embeddings"], one_process[f"{method}embeddings"]
    assert embeddings.shape == expected.shape == (120, 128)  # every split, in order
    np.testing.assert_allclose(embeddings, expected, rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.e2e
@pytest.mark.parametrize("run", ["", "class_rule_"], ids=["per-batch small-loss", "per-class rule"])
def test_phase1_on_two_processes_selects_what_one_process_selects(one_process, two_processes, run):
    results, _ = two_processes
    got, expected = results[f"{run}selection"], one_process[f"{run}selection"]
    for column in ("clean_guess", "peer_clean_guess", "prediction", "sample_id", "observed_label"):
        pd.testing.assert_series_equal(got[column], expected[column])
    assert 0 < expected["clean_guess"].sum() < len(expected)  # a selection that drops samples
    assert_tables_close(got, expected)  # the per-sample losses and VOG scores
    epochs = results[f"{run}epochs" if run else "phase1_epochs"]
    expected_epochs = one_process[f"{run}epochs" if run else "phase1_epochs"]
    assert epochs["kept_size_f"].tolist() == expected_epochs["kept_size_f"].tolist()
    assert_tables_close(epochs, expected_epochs)
    if not run:
        assert_weights_close(results["phase1_model"], one_process["phase1_model"])


@pytest.mark.e2e
def test_fine_tuning_on_two_processes_is_one_process_fine_tuning(one_process, two_processes):
    results, _ = two_processes
    assert_weights_close(results["tuned_model"], one_process["tuned_model"])
    assert results["tuned_metrics"]["best_epoch"] == one_process["tuned_metrics"]["best_epoch"]
    for split in ("val", "test"):
        got, expected = results["tuned_metrics"][split], one_process["tuned_metrics"][split]
        assert got["confusion_matrix"] == expected["confusion_matrix"]


@pytest.mark.e2e
def test_the_checkpoint_of_two_processes_loads_in_one(two_processes):
    results, out = two_processes
    spec, model, checkpoint = load_checkpoint(out / "model.pt", CLASS_NAMES)
    assert not any(isinstance(m, distributed.CpuSyncBatchNorm) for m in model.modules())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), results["phase1_model"][key], err_msg=key)
    assert checkpoint["peer_state_dict"] is None and spec.arch == "small_cnn"


@pytest.mark.e2e
def test_a_killed_rank_fails_the_stage_naming_the_rank_and_writes_nothing(tmp_path):
    done = run_job(tmp_path, "kill")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    expected = "error: train.processes is 2 and the stage failed: rank 1 was killed by SIGKILL"
    assert last.startswith(expected), done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_a_stopped_launcher_stops_its_ranks_and_says_interrupted(tmp_path):
    """SIGTERM (or Ctrl-C) to the stage's process while its ranks train: torchrun stops them, and
    the stage ends as a one-process stage does, not with the launcher's traceback."""
    done = run_job(tmp_path, "interrupt")
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "SignalException" not in done.stderr, done.stderr
    assert "error: interrupted" in done.stderr.splitlines()
    assert not (tmp_path / "out").exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.e2e
def test_two_nodes_compute_what_one_process_computes(one_process, tmp_path):
    """docs/distributed.md, "Several machines": each node starts the stage under its own torchrun
    (``--nnodes 2 --node-rank K``, one process each, static rendezvous at node 0's address);
    the stage joins that process group, rank 0 (node 0) writes the outputs."""
    write_params(tmp_path, raw=job_params(1))  # under a torchrun of one's own, train.processes is not read
    env = subprocess_env() | {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])}
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [
        subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                          f"--node-rank={rank}", "--rdzv-backend=static", f"--rdzv-endpoint={endpoint}",
                          "-m", "distributed_job", str(tmp_path / "out")],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, stderr) in zip(nodes, outputs):
        assert node.returncode == 0, stderr
    results = torch.load(tmp_path / "out" / "results.pt", weights_only=False)
    got, expected = results["selection"], one_process["selection"]
    for column in ("clean_guess", "peer_clean_guess", "prediction"):
        pd.testing.assert_series_equal(got[column], expected[column])
    assert_tables_close(got, expected)
    assert_weights_close(results["phase1_model"], one_process["phase1_model"])
    assert_weights_close(results["tuned_model"], one_process["tuned_model"])
