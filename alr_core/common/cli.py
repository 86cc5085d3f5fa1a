"""Entry-point helpers shared by the stage scripts."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from alr_core.common import paths
from alr_core.common.errors import AlrError, AwaitingAnswers
from alr_core.common.params import load_params

# the variables torchrun sets for each process it starts
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def run_stage(main: Callable[[], None], training: bool = False,
              on_error: Optional[Callable[[Exception], None]] = None) -> None:
    """Run a stage's ``main``; a bad input becomes one ``error:`` line and exit status 1, any
    other exception its traceback and exit status 1. Under DVC either failure is followed by
    :func:`restore_hint`; a pause for expert answers (:class:`AwaitingAnswers`) is not.
    ``on_error(exc)`` runs first, in the stage's own process (oracle_relabel rewrites the report
    for the rounds before its own).

    A ``training`` stage (pretrain, lnl_train, retrain) runs data-parallel when
    ``train.processes`` is above 1: it starts itself again under torchrun
    (:func:`launch_processes`) and waits; a stage already under torchrun (one that this
    started, or a user's multi-node launch) runs ``main`` as one rank of it, where ``main``
    joins the process group (alr_core.nn.distributed.join). Only rank 0 prints; any rank
    prints its own error, naming itself."""
    worker = torchrun_rank() if training else None
    # SIGTERM (a scheduler, `kill`) unwinds like Ctrl-C, so that no temporary file stays behind;
    # not in a torchrun rank, whose launcher tells a rank it stopped by the signal's exit status
    previous_handler = signal.getsignal(signal.SIGTERM)
    if worker is None:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    params_before = _read_params_file()
    try:
        if worker is not None:
            with _only_rank_zero_prints(worker[0]):
                main()
            _leave_process_group()
        elif training and (train := load_params(paths.PARAMS).train).processes > 1:
            launch_processes(train.processes, train.device)
        else:
            main()
        if worker is None and _read_params_file() != params_before:
            # DVC records params.yaml as it is after the stage: its lock would claim values not used
            raise AlrError(f"{paths.PARAMS} changed while the stage ran (an edit, or `dvc exp run -S` started "
                           "meanwhile), so its outputs follow the old values; run `dvc repro` again")  # fmt: skip
    except AlrError as exc:
        if on_error is not None and worker is None:
            on_error(exc)
        print(f"error: {_rank_prefix(worker)}{exc}", file=sys.stderr)
        # a rank's launcher, the stage's own process, prints the hint once for all ranks
        if not isinstance(exc, AwaitingAnswers) and worker is None:
            _print_restore_hint()
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"error: {_rank_prefix(worker)}interrupted", file=sys.stderr)
        if worker is None:
            _print_restore_hint()
        sys.exit(130)
    except BrokenPipeError:  # `python -m stages.summary | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        sys.exit(0)
    except Exception as exc:
        if on_error is not None and worker is None:
            on_error(exc)
        if worker is not None and _is_lost_peer(exc):
            print(f"error: {_rank_prefix(worker)}lost contact with the other processes ({str(exc).splitlines()[0]}); "
                  "one of them failed first: the launcher names it", file=sys.stderr)  # fmt: skip
        else:
            if worker is not None:
                print(f"error: {_rank_prefix(worker)}failed:", file=sys.stderr)
            traceback.print_exc()
        if worker is None:
            _print_restore_hint()
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def progress_bar(iterable: Iterable, description: str, show: bool = True, **options) -> Iterable:
    """``iterable`` with a tqdm bar labelled ``description``, drawn on a terminal only (not when
    ``show`` is false): a log file (CI, `dvc queue logs`, a redirected run) would keep every
    redraw, 24 of a default `dvc repro` log's 30 KB. ``options`` go to tqdm (``total``, ``unit``)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=description, disable=None if show else True, **options)


def _read_params_file() -> Optional[bytes]:
    try:
        return Path(paths.PARAMS).read_bytes()
    except OSError:
        return None


def torchrun_rank() -> Optional[tuple[int, int]]:
    """(rank, world size) of a process that torchrun started, None for any other."""
    if not all(name in os.environ for name in TORCHRUN_ENV):
        return None
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


def launch_processes(processes: int, device_name: str) -> None:
    """Run this stage again, with its arguments, as ``torchrun --standalone
    --nproc-per-node=<processes>`` (torch's launcher, in this process) and wait for it, once
    the machine has a GPU (``device_name`` resolving to CUDA) or a CPU core per process. A
    failed process becomes an :class:`AlrError` naming its rank; torchrun stops the others."""
    import torch
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    on_gpus = device_name != "cpu" and torch.cuda.is_available()
    available = torch.cuda.device_count() if on_gpus else os.cpu_count() or 1
    if processes > available:
        raise AlrError(
            f"train.processes is {processes}, but this machine has {available} {'GPUs' if on_gpus else 'CPU cores'} "
            f"(one per process); set train.processes to at most {available}, or start several machines with "
            "torchrun --nnodes (docs/distributed.md)"
        )

    spec = getattr(sys.modules["__main__"], "__spec__", None)
    target = ["-m", spec.name] if spec is not None else [sys.argv[0]]  # python -m stages.x, or a script path
    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={processes}", *target, *sys.argv[1:]])
    try:
        run(args)
    except ChildFailedError as exc:
        raise AlrError(failed_processes_message(exc.failures, processes)) from None
    except SignalException:  # torchrun's own SIGTERM/SIGINT handler, once it has stopped the ranks
        raise KeyboardInterrupt from None


def failed_processes_message(failures: dict, processes: int) -> str:
    """One line from torchrun's failures (global rank → ProcessFailure, whose ``exitcode`` is
    negative for a process killed by a signal). The likely first failure comes first: a rank
    killed by a signal (the others then lose contact with it), then one that exited with an
    error, then those torchrun itself stopped with SIGTERM; within each, by time and rank."""

    def order(rank: int):
        code = failures[rank].exitcode
        kind = 2 if code == -signal.SIGTERM else 0 if code < 0 else 1
        return kind, failures[rank].timestamp, rank

    described = []
    for rank in sorted(failures, key=order):
        code = failures[rank].exitcode
        if code == -signal.SIGTERM:
            how = "was stopped (SIGTERM)"
        elif code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
            how = f"was killed by {name}" + (" (often: out of memory)" if -code == signal.SIGKILL else "")
        else:
            how = f"exited with status {code} (its error is printed above)"
        described.append(f"rank {rank} {how}")
    return (f"train.processes is {processes} and the stage failed: {'; '.join(described)}; torchrun "
            "stopped the other processes (only rank 0 writes outputs, once every rank has finished training)")


def _rank_prefix(worker: Optional[tuple[int, int]]) -> str:
    return f"rank {worker[0]} of {worker[1]}: " if worker is not None else ""


@contextlib.contextmanager
def _only_rank_zero_prints(rank: int) -> Iterator[None]:
    """Progress bars and summaries of ranks above 0 go nowhere (they repeat rank 0's); the
    streams are back before an error is printed."""
    if rank == 0:
        yield
        return
    saved = sys.stdout, sys.stderr
    with open(os.devnull, "w") as devnull:
        sys.stdout = sys.stderr = devnull
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved


def _is_lost_peer(exc: Exception) -> bool:
    """An error raised inside torch.distributed, as a collective raises when another process
    has gone away (Gloo raises a plain RuntimeError, NCCL a DistError)."""
    innermost = exc.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    module = innermost.tb_frame.f_globals.get("__name__", "") if innermost is not None else ""
    return module.startswith("torch.distributed")


def _leave_process_group() -> None:
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def restore_hint(stage: str) -> str:
    """How to get back the outputs DVC removed before running ``stage`` (its address, e.g.
    ``lnl_train`` or ``retrain@3``): the cached ones from the last successful run's dvc.lock
    entry; outputs with ``cache: false`` never entered the cache."""
    return (
        f"hint: DVC deleted the outputs of {stage} before running it: `dvc checkout {stage}` brings back "
        "those of its last successful run; its metrics and plots (cache: false) only git can bring back, "
        "if they were committed"
    )


def _print_restore_hint() -> None:
    # DVC sets DVC_STAGE for every stage command it runs (dvc/stage/run.py); by hand nothing
    # was removed, so there is nothing to restore, nor for a stage that never succeeded
    stage = os.environ.get("DVC_STAGE")
    if stage and _succeeded_before(stage):
        print(restore_hint(stage), file=sys.stderr)


def _succeeded_before(stage: str) -> bool:
    """Whether dvc.lock (DVC runs a stage from the project root) holds an entry for ``stage``:
    the record of a successful run, whose cached outputs `dvc checkout` can bring back."""
    import yaml

    try:
        lock = yaml.safe_load(Path("dvc.lock").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(lock, dict) and stage in (lock.get("stages") or {})


def no_arguments(description: str) -> None:
    """The command line of a stage that takes no argument: ``--help`` prints ``description``
    (the stage's docstring) and exits, and any argument is an error, before the stage does any
    work (an ignored ``--help`` would run it: hours of pretraining on a large set)."""
    stage_parser(description).parse_args()


def round_argument(description: str) -> str:
    """The ``--round`` argument of a per-round stage (a key of params ``rounds``); ``--help``
    prints ``description``, as :func:`no_arguments` does."""
    parser = stage_parser(description)
    parser.add_argument("--round", required=True, help="round number, a key of params 'rounds'")
    return parser.parse_args().round


def stage_parser(description: str) -> argparse.ArgumentParser:
    """A stage's argument parser: usage as the stage is run (``python -m stages.<name>``), and
    ``description`` (its docstring) as written, so that its lists and commands keep their lines."""
    script = Path(sys.argv[0])
    prog = f"python -m {script.parent.name}.{script.stem}" if script.parent.name == "stages" else None
    return argparse.ArgumentParser(prog=prog, description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
