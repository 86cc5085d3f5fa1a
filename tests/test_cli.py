"""run_stage (alr_core.common.cli): how a failing stage ends, and the hint on restoring the
outputs DVC removed before running it; progress bars; every stage's command line."""

from __future__ import annotations

import importlib
import io
import sys

import pytest
from builders import REPO_ROOT

from alr_core.common import cli
from alr_core.common.cli import restore_hint, run_stage
from alr_core.common.errors import AlrError, AwaitingAnswers

HINT_RETRAIN = (
    "hint: DVC deleted the outputs of retrain@3 before running it: `dvc checkout retrain@3` brings back those "
    "of its last successful run; its metrics and plots (cache: false) only git can bring back, if they were "
    "committed"
)


def raising(exc: Exception):
    def main() -> None:
        raise exc

    return main


def stderr_of(main, capsys) -> list[str]:
    with pytest.raises(SystemExit) as exit_info:
        run_stage(main)
    assert exit_info.value.code == 1
    return capsys.readouterr().err.splitlines()


def test_restore_hint_names_the_stage():
    assert restore_hint("retrain@3") == HINT_RETRAIN
    assert "`dvc checkout lnl_train`" in restore_hint("lnl_train")


@pytest.fixture
def ran_before(tmp_path, monkeypatch):
    """A project folder whose dvc.lock records successful runs of lnl_train and retrain@3."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  lnl_train:\n    cmd: python -m stages.lnl_train\n"
                                       "  retrain@3:\n    cmd: python -m stages.retrain --round 3\n")
    return tmp_path


def test_a_bad_input_under_dvc_is_one_error_line_and_the_hint(capsys, monkeypatch, ran_before):
    monkeypatch.setenv("DVC_STAGE", "retrain@3")  # what DVC sets for every stage command
    assert stderr_of(raising(AlrError("params.yaml: 'budget' is -1")), capsys) == [
        "error: params.yaml: 'budget' is -1",
        HINT_RETRAIN,
    ]


def test_a_stage_that_never_succeeded_has_nothing_to_restore(capsys, monkeypatch, ran_before):
    """A first run with a user's own data failing in prepare: `dvc checkout prepare` would fail."""
    monkeypatch.setenv("DVC_STAGE", "prepare")
    assert stderr_of(raising(AlrError("bad image")), capsys) == ["error: bad image"]
    (ran_before / "dvc.lock").unlink()  # no run has finished yet
    monkeypatch.setenv("DVC_STAGE", "lnl_train")
    assert stderr_of(raising(AlrError("bad")), capsys) == ["error: bad"]


def test_an_unexpected_exception_under_dvc_keeps_its_traceback_and_gets_the_hint(capsys, monkeypatch, ran_before):
    monkeypatch.setenv("DVC_STAGE", "lnl_train")
    lines = stderr_of(raising(ZeroDivisionError("division by zero")), capsys)
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2] == "ZeroDivisionError: division by zero"
    assert lines[-1] == restore_hint("lnl_train")


def test_waiting_for_answers_is_no_failure_and_gets_no_hint(capsys, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "oracle_relabel@2")
    assert stderr_of(raising(AwaitingAnswers("round 2 waits for expert answers")), capsys) == [
        "error: round 2 waits for expert answers",
    ]


def test_run_by_hand_nothing_was_removed_so_no_hint(capsys, monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert stderr_of(raising(AlrError("bad")), capsys) == ["error: bad"]
    lines = stderr_of(raising(KeyError("x")), capsys)
    assert lines[-1] == "KeyError: 'x'"


def test_success_exits_normally(capsys):
    run_stage(lambda: print("done"))
    assert capsys.readouterr().out == "done\n"


def test_params_changed_while_the_stage_ran_fails_it(tmp_path, monkeypatch, capsys):
    """DVC records params.yaml as it is after a stage: an edit (or `dvc exp run -S`) meanwhile
    would put values in dvc.lock that the outputs were not made with."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("lnl:\n  epochs: 7\n")

    def edited_meanwhile() -> None:
        (tmp_path / "params.yaml").write_text("lnl:\n  epochs: 12\n")

    assert stderr_of(edited_meanwhile, capsys) == [
        "error: params.yaml changed while the stage ran (an edit, or `dvc exp run -S` started meanwhile), so its "
        "outputs follow the old values; run `dvc repro` again"]
    run_stage(lambda: None)  # unchanged: no complaint


def test_sigterm_ends_the_stage_like_ctrl_c_with_the_hint_and_no_temporary_file(tmp_path, monkeypatch, capsys,
                                                                                ran_before):
    import os
    import signal

    from alr_core.common import artifacts

    monkeypatch.setenv("DVC_STAGE", "lnl_train")

    def killed_while_writing() -> None:
        with artifacts.atomic_path(tmp_path / "model.pt") as tmp:
            tmp.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)

    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_info:
        run_stage(killed_while_writing)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.splitlines() == ["error: interrupted", restore_hint("lnl_train")]
    assert not list(tmp_path.glob("*.tmp")) + list(tmp_path.glob(".*.tmp")) and not (tmp_path / "model.pt").exists()
    assert signal.getsignal(signal.SIGTERM) is handler  # the caller's handler is back


def test_a_temporary_file_a_killed_writer_left_is_removed_by_the_next_write(tmp_path):
    from alr_core.common import artifacts

    (tmp_path / ".model.pt.k1ll3d.tmp").write_bytes(b"half")  # SIGKILL runs no cleanup
    (tmp_path / ".other.pt.k1ll3d.tmp").write_bytes(b"another file's")
    artifacts.write_text(tmp_path / "model.pt", "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.k1ll3d.tmp", "model.pt"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal, show, drawn", [(True, True, True), (True, False, False), (False, True, False)])
def test_progress_bars_are_drawn_on_a_terminal_only(terminal, show, drawn):
    stream = Terminal() if terminal else io.StringIO()  # a log file: no bar redrawn into it
    assert list(cli.progress_bar(range(3), "decode images", show, file=stream)) == [0, 1, 2]
    assert ("decode images: 100%" in stream.getvalue()) is drawn and (stream.getvalue() == "") is not drawn


def test_a_delayed_bar_stays_hidden_for_work_that_ends_sooner():  # fingerprint's bar on a no-op run
    stream = Terminal()
    assert list(cli.progress_bar(range(3), "hash source files", file=stream, delay=60)) == [0, 1, 2]
    assert stream.getvalue() == ""


STAGE_MODULES = sorted(path.stem for path in (REPO_ROOT / "stages").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("name", STAGE_MODULES)
def test_every_stage_answers_help_and_refuses_an_unknown_argument_before_any_work(name, tmp_path, monkeypatch,
                                                                                  capsys):  # fmt: skip
    """`--help` was ignored by the stages without arguments: `python -m stages.pretrain --help`
    pretrained. Run in an empty folder, a stage that went on would fail there (no params.yaml)
    or write something."""
    module = importlib.import_module(f"stages.{name}")
    monkeypatch.chdir(tmp_path)
    for argument, status in (("--help", 0), ("--no-such-option", 2)):
        monkeypatch.setattr(sys, "argv", [str(REPO_ROOT / "stages" / f"{name}.py"), argument])
        with pytest.raises(SystemExit) as exit_info:
            module.main()
        assert exit_info.value.code == status, argument
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: python -m stages.{name} [-h]")
    assert module.__doc__.splitlines()[0] in out  # the docstring, its lines as written
    assert err.startswith(f"usage: python -m stages.{name} [-h]") and f"stages.{name}: error: " in err
    assert list(tmp_path.iterdir()) == []


ROUND_STAGES = ("score_samples", "query", "oracle_relabel", "retrain")


@pytest.mark.parametrize("name", ROUND_STAGES)
def test_a_round_stage_without_round_stops_at_its_command_line(name, tmp_path, monkeypatch, capsys):
    """`--round` is required: without it a per-round stage would go on with round None and fail
    later (or worse, in a folder with params.yaml, read some other round's files)."""
    module = importlib.import_module(f"stages.{name}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(REPO_ROOT / "stages" / f"{name}.py")])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 2
    assert "the following arguments are required: --round" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
