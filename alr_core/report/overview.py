"""The short summary a user reads first (``python -m stages.summary``): phase 1 and each
finished round in one table, and whether the pipeline finished, waits for expert answers or
has no results yet. Read-only; imports no torch and no matplotlib.

Which rounds are current comes from metrics/report.json's ``status`` (written by the report
stage and by a round that stops for answers): metrics/rounds/ may still hold later rounds
of an earlier run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from alr_core.common import paths
from alr_core.common.errors import AlrError
from alr_core.common.text import counted, safety_net_sentence
from alr_core.report.flag_notes import validation_notes
from alr_core.report.summary import (TEXT_LEGEND, classes_without_test_images, label_issues_summary, rounds_table,
                                     summary, table_text)

NO_RESULTS = f"no results yet: {paths.LNL_METRICS} does not exist; run `dvc repro` first (from the project root)"
LNL_KEYS = ("method", "test")
ROUND_KEYS = ("round", "budget_used", "test", "cleaning")
LABEL_ISSUE_KEYS = ("num_train", "flagged")
WIDTH = 80  # characters per line: fits a default terminal
# metrics every run writes on its way to phase 1, by stage: DVC removes a stage's outputs before
# running it, so one missing beside phase 1's means the last `dvc repro` failed or stopped there
WRITTEN_BEFORE_PHASE1 = {paths.DATA_METRICS: "prepare", paths.NOISE_METRICS: "inject_noise"}
# the data files of the stages between prepare and lnl_train, which a clone without the DVC
# cache lacks too: read only beside phase 1's outputs, or when phase 1 has none
DATA_BEFORE_PHASE1 = {paths.PRETRAIN_EMBEDDINGS: "pretrain", paths.LABEL_ISSUES_CSV: "label_issues"}
# and each round's files, by stage, in the order the stages run (the round's metrics file, the
# retrain stage's, is missing then too, and the summary reads it first)
ROUND_OUTPUTS = {paths.SCORES: "score_samples", paths.QUERY: "query", paths.WORKING_LABELS: "oracle_relabel",
                 paths.MODEL: "retrain"}


def read_metrics(path: Path, keys: tuple[str, ...] = ()) -> dict | None:
    """The JSON object in ``path`` (None when the file does not exist), which must hold ``keys``;
    anything unreadable is an :class:`AlrError` naming the file."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AlrError(f"{path}: cannot read it ({exc}); `dvc repro` writes it again") from None
    missing = [key for key in keys if key not in payload] if isinstance(payload, dict) else ["a JSON object"]
    if missing:
        raise AlrError(f"{path}: lacks {', '.join(map(repr, missing))}; it is not an alr metrics file of this "
                       "version: `dvc repro` writes it again")  # fmt: skip
    return payload


def results_overview() -> str:
    """Read the metrics files and return :func:`overview_text` (or :func:`no_results_text`, then
    :func:`label_issues_text` when metrics/label_issues.json exists)."""
    label_issues = label_issues_summary(read_metrics(paths.LABEL_ISSUES_METRICS, LABEL_ISSUE_KEYS))
    lnl_metrics = read_metrics(paths.LNL_METRICS, LNL_KEYS)
    if lnl_metrics is None:  # the label-issue report needs no phase 1: it may be all there is
        text = no_results_text()
        return text if label_issues is None else f"{text}\n\n{label_issues_text(label_issues)}"
    report = read_metrics(paths.REPORT_METRICS)
    if report is None:  # the report stage has not run: list the round files there are
        status, count = None, 0
        while paths.round_metrics(count + 1).is_file():
            count += 1
    else:  # a report.json without a status block is from before the status existed: complete
        status = report.get("status") or {"finished_rounds": report.get("rounds", 0), "waiting_round": None}
        count = status["finished_rounds"]
    round_metrics = []
    for k in range(1, count + 1):
        metrics = read_metrics(paths.round_metrics(k), ROUND_KEYS)
        if metrics is None:
            raise AlrError(f"{paths.round_metrics(k)} does not exist, but {paths.REPORT_METRICS} lists "
                           f"{count} finished rounds: a later run stopped before round {k} finished; "
                           "run `dvc repro`")  # fmt: skip
        round_metrics.append(metrics)
    return overview_text(lnl_metrics, round_metrics, read_metrics(paths.NOISE_METRICS), status, label_issues,
                         (report or {}).get("labels"), read_metrics(paths.DATA_METRICS), stopped_in(count))


def no_results_text() -> str:
    """Why there is no phase-1 result: :data:`NO_RESULTS` before any run, else the stage the last
    `dvc repro` has not finished (the first of phase 1's stages whose output is missing, lnl_train
    when only its own are), wrapped to :data:`WIDTH`."""
    if not paths.DATA_METRICS.is_file():
        return NO_RESULTS
    earlier = WRITTEN_BEFORE_PHASE1 | DATA_BEFORE_PHASE1
    stage = next((stage for path, stage in earlier.items() if not path.is_file()), "lnl_train")
    text = (f"no phase-1 results yet: {paths.LNL_METRICS} does not exist but {paths.DATA_METRICS} does, so "
            f"`dvc repro` has not run {stage} yet, or failed or was stopped in it; fix what it reported, "
            "if anything, then run `dvc repro`")  # fmt: skip
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def stopped_in(finished_rounds: int) -> tuple[Path, str] | None:
    """The first missing output of a stage that every run writes before phase 1 (its metrics, then
    pretrain's and label_issues' data files) or of a finished round's stages, and that stage
    (``score_samples@2``); None when all are there. DVC removes a stage's outputs before running
    it, so a missing one means the last `dvc repro` failed or was stopped there (or runs it now).
    Data files count only beside phase 1's, which a clone without the DVC cache lacks too."""
    for path, stage in WRITTEN_BEFORE_PHASE1.items():
        if not path.is_file():
            return path, stage
    if not paths.LNL_WORKING_LABELS.is_file():
        return None
    for path, stage in DATA_BEFORE_PHASE1.items():
        if not path.is_file():
            return path, stage
    for number in range(1, finished_rounds + 1):
        for name, stage in ROUND_OUTPUTS.items():
            if not (paths.round_dir(number) / name).is_file():
                return paths.round_dir(number) / name, f"{stage}@{number}"
    return None


def label_issues_text(label_issues: dict) -> str:
    """Where the label-issue report is, how many train samples it flags and what the validation
    split says about the flags (:func:`~alr_core.report.flag_notes.validation_notes`), wrapped to
    :data:`WIDTH`; ``label_issues``: :func:`~alr_core.report.summary.label_issues_summary`'s."""
    shown = label_issues.get("num_in_gallery")
    gallery = ("no images (label_issues.gallery_size: 0)" if shown == 0 else
               f"the top {'' if shown is None else f'{shown} '}as images in {label_issues['gallery']}")
    text = (f"label issues: {label_issues['num_flagged']} of {counted(label_issues['num_train'], 'train sample')} "
            f"flagged by a rule; every sample ranked in {label_issues['csv']}, {gallery}")  # fmt: skip
    if label_issues.get("num_in_map"):  # none drawn (label_issues.map_size 0), or metrics from before the map
        text += f", {label_issues['num_in_map']} on a map of the embeddings in {label_issues['map']}"
    notes = validation_notes(label_issues)
    if notes:
        text += "; " + notes
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def labels_text(labels: dict, finished_rounds: int) -> str:
    """How many labels the finished rounds changed and answers vouch for, and where every train
    sample's given and current label is, wrapped to :data:`WIDTH`; ``labels``:
    :func:`~alr_core.report.final_labels.labels_summary`'s."""
    after = f"round {finished_rounds}" if finished_rounds else "phase 1"
    free = labels.get("paper_protocol", 0)  # absent from a report written before it was counted
    vouched = f"{labels['checked'] - free} vouched for by an answer"
    if free:
        vouched += f" and {free} given their true label by al.paper_protocol"
    text = (f"labels after {after}: {labels['changed']} of {counted(labels['num_train'], 'train label')} changed, "
            f"{vouched}; every train sample's given and current label in {labels['csv']}")  # fmt: skip
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def evaluation_overlap_text(data_metrics: dict | None) -> str | None:
    """The warning when the source's own splits put validation or test images beside train
    images they are identical to or share a group with (``data.csv.group_column``): the scores
    above are then optimistic. None without such images, or without metrics/data.json's
    ``identical_images`` and ``groups`` blocks (absent before prepare wrote them)."""
    data_metrics = data_metrics or {}
    copies = (data_metrics.get("identical_images") or {}).get("evaluation_images_in_train", 0)
    grouped = (data_metrics.get("groups") or {}).get("evaluation_images_in_train_groups", 0)
    overlaps = []
    if copies:
        overlaps.append(f"{counted(copies, 'validation or test image')} identical to a train image")
    if grouped:
        overlaps.append(f"{counted(grouped, 'validation or test image')} sharing a group (data.csv.group_column) "
                        "with train images")
    if not overlaps:
        return None
    text = (f"optimistic scores: the source's own splits hold {' and '.join(overlaps)}, so the validation and test "
            f"scores above flatter the model (counts in {paths.DATA_METRICS}); alr keeps them apart only where "
            "it draws the splits itself")
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def unscored_classes_text(data_metrics: dict | None) -> str | None:
    """The warning when the test split holds no image of some class
    (:func:`~alr_core.report.summary.classes_without_test_images`): the scores above leave it
    out. None without such a class or without metrics/data.json."""
    missing = classes_without_test_images(data_metrics) if data_metrics else []
    if not missing:
        return None
    one = len(missing) == 1
    text = (f"unscored {'class' if one else 'classes'}: the test split holds no image of "
            f"{', '.join(map(repr, missing))}, so the test scores above average the other classes only and say "
            f"nothing of how the model finds {'it' if one else 'them'}; add test images (data.test_fraction, or "
            "the source's split)")
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def overview_text(lnl_metrics: dict, round_metrics: list[dict], noise_metrics: dict | None,
                  status: dict | None, label_issues: dict | None = None, labels: dict | None = None,
                  data_metrics: dict | None = None, stopped_at: tuple[Path, str] | None = None) -> str:
    """The summary: a headline, :func:`~alr_core.report.summary.table_text` with its legend, the
    scores over the rounds shown, the classes they leave out (:func:`unscored_classes_text`) and
    whether the source's splits make them optimistic (:func:`evaluation_overlap_text`;
    ``data_metrics``: metrics/data.json's), the labels after them (:func:`labels_text`;
    ``labels``: report.json's, None without one), the label-issue
    report's files (:func:`label_issues_text`; ``label_issues``:
    :func:`~alr_core.report.summary.label_issues_summary`, None when that stage has not run) and
    where the pipeline stands. ``status``: report.json's (see
    :func:`alr_core.report.outputs.report_status`), None when there is no report.json;
    ``stopped_at``: :func:`stopped_in`'s missing file and stage, if any."""
    table = rounds_table(lnl_metrics, round_metrics, noise_metrics)
    totals = summary(table, lnl_metrics, round_metrics)
    planned = (status or {}).get("planned_rounds")
    shown = f"{len(round_metrics)} of {counted(planned, 'round')}" if planned else counted(len(round_metrics), "round")
    strategy = f", strategy {totals['strategy']}" if totals["strategy"] else ""
    lines = [f"alr: phase 1 ({totals['phase1_method']}) and {shown}{strategy}", "", table_text(table), "", TEXT_LEGEND]
    overall = []
    if round_metrics and totals["cleaning_efficiency"] is not None:
        ceiling = totals["cleaning_efficiency_ceiling"]
        overall.append(f"cleaning efficiency {totals['cleaning_efficiency']:.2f}"
                       + (f" (perfect queries: {ceiling:.2f})" if ceiling is not None else ""))
    if round_metrics and totals["learning_curve_area"] is not None:
        overall.append(f"learning-curve area {totals['learning_curve_area']:.3f}")
    if overall:
        lines += textwrap.wrap(f"over the rounds above: {', '.join(overall)}", WIDTH, break_on_hyphens=False)
    if round_metrics and totals["fixes_already_predicted"] is not None:
        lines += textwrap.wrap(
            f"of the labels the queries fixed, the model already predicted {totals['fixes_already_predicted']:.0%} "
            f"and {totals['fixes_in_trusted']:.0%} were in C or re-labelled before (what al.train_on: selected "
            "trains on): a fix the model already predicted, of a label it did not train on, teaches it little "
            "(docs/method.md)", WIDTH)
    for warning in (unscored_classes_text(data_metrics), evaluation_overlap_text(data_metrics)):
        if warning:
            lines += ["", warning]
    if (totals["phase1_safety_net"] or {}).get("ce_is_better"):
        lines += ["", textwrap.fill(safety_net_sentence(totals["phase1_safety_net"]), WIDTH, break_long_words=False,
                                    break_on_hyphens=False)]
    if labels is not None:
        lines += ["", labels_text(labels, len(round_metrics))]
    if label_issues is not None:
        lines += ["", label_issues_text(label_issues)]
    lines += ["", textwrap.fill(_where(status, stopped_at), WIDTH, break_long_words=False, break_on_hyphens=False)]
    return "\n".join(lines)


def _where(status: dict | None, stopped_at: tuple[Path, str] | None) -> str:
    if stopped_at is not None:
        return (f"stopped: {stopped_at[0]} is missing, so the last `dvc repro` failed or was stopped in "
                f"{stopped_at[1]} (or is running it now), and the results above are from an "
                "earlier run; fix what it reported, then run `dvc repro`")  # fmt: skip
    if status is None:
        return (f"{paths.REPORT_METRICS} does not exist: the report stage has not run, and the rounds above "
                f"are the {paths.round_metrics('<r>')} files found, maybe from an earlier run; "
                "`dvc repro` brings everything up to date")  # fmt: skip
    failed = status.get("failed")  # absent from a report.json written before failures were recorded
    if failed:
        last = failed["round"] - 1
        before = "phase 1" + ("" if last == 0 else " and round 1" if last == 1 else f" and rounds 1–{last}")
        return (f"stopped: {failed['stage']} failed ({failed['error']}); the table shows {before}, and "
                f"{paths.REPORT_LABELS} the labels after {'it' if last == 0 else 'them'}; fix what it reported, "
                "then run `dvc repro`")
    waiting = status["waiting_round"]
    if waiting is None:
        return ("finished: every round ran (`dvc repro fingerprint && dvc status` lists the stages whose inputs "
                "changed since, your data files included)")
    page = paths.round_dir(waiting) / paths.ANNOTATION_PAGE
    return (f"paused: round {waiting} waits for expert answers in {status['answers_file']}: answer {page}, "
            "save the file there, then run `dvc repro`")
