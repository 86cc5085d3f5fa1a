"""The human oracle's side of a round: the annotation package an expert answers, and the
checks on the answers file the expert saves.

Answers file: UTF-8 CSV, comma-separated, header ``sample_id,label``; ``label`` is a class
name, a class index, or ``skip`` (unsure: the current label stays, the budget is spent). An
optional ``annotator`` column lets several annotators answer the same sample (one row each).
Or Label Studio's JSON export, ``annotations/round_<r>.json`` (:mod:`alr_core.human.labelstudio`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from alr_core.common.errors import AlrError
from alr_core.common.paths import ANSWERS_DIR, LABELSTUDIO_TASKS, PREPARED_IMAGES
from alr_core.human.page import MAX_IMAGE_WIDTH_PX, SKIP

SKIP_LABEL = -1  # a skip in the validated answers table
DEFAULT_ANNOTATOR = "expert"  # the one annotator of a CSV without an annotator column


def answers_path(round_number: int) -> Path:
    return ANSWERS_DIR / f"round_{round_number}.csv"


def labelstudio_export_path(round_number: int) -> Path:
    return ANSWERS_DIR / f"round_{round_number}.json"


def package_table(query: pd.DataFrame, samples: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """The CSV of the queried samples: ids, current label and the model's suggestion (index and
    class name), confidence, and the image reference (source path, or the prepared array row)."""
    rows = samples.reset_index(drop=True).reset_index(names="image_row").set_index("sample_id")
    found = rows.reindex(query["sample_id"])
    names = np.asarray(class_names, dtype=object)
    source = found["source_path"].astype(object).to_numpy()
    reference = [path if isinstance(path, str) else f"{PREPARED_IMAGES.as_posix()}[{row}]"
                 for path, row in zip(source, found["image_row"])]  # fmt: skip
    return pd.DataFrame({
        "rank": query["rank"].to_numpy(),
        "sample_id": query["sample_id"].to_numpy(),
        "current_label": query["current_label"].to_numpy(),
        "current_class": names[query["current_label"].to_numpy()],
        "suggested_label": query["predicted_label"].to_numpy(),
        "suggested_class": names[query["predicted_label"].to_numpy()],
        "confidence": query["confidence"].to_numpy(),
        "image": reference,
        "image_row": found["image_row"].to_numpy(),
    })  # fmt: skip


def page_items(package: pd.DataFrame, images: np.ndarray) -> list[dict]:
    """Items for :func:`alr_core.human.page.render_page`, each with a PNG of the image:
    the source file when there is one (more detail than the prepared array), else the array."""
    items = []
    for row in package.itertuples():
        source = Path(row.image)
        if source.is_file():
            with Image.open(source) as image:
                picture = image.convert("RGB")
                picture.thumbnail((MAX_IMAGE_WIDTH_PX, MAX_IMAGE_WIDTH_PX))
        else:
            array = images[row.image_row]
            picture = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        png = io.BytesIO()
        picture.save(png, format="PNG")
        items.append({"sample_id": row.sample_id, "current_label": int(row.current_label),
                      "suggested_label": int(row.suggested_label), "confidence": float(row.confidence),
                      "image_png": png.getvalue()})  # fmt: skip
    return items


@dataclass
class Answers:
    """Validated answers, one row per answer: ``sample_id``, ``annotator`` and ``label`` (the
    class index, or ``SKIP_LABEL`` for a skip). Agreeing repeats of one annotator's answer
    are kept once."""

    table: pd.DataFrame


def find_answers(round_number: int) -> Path:
    """The round's answers file: the CSV, or the Label Studio export; both at once is an error."""
    csv_path, export_path = answers_path(round_number), labelstudio_export_path(round_number)
    if csv_path.is_file() and export_path.is_file():
        raise AlrError(
            f"round {round_number} has two answers files, {csv_path} and {export_path}; it is not clear "
            "which one holds the answers: keep one of them (move the other out of annotations/)"
        )
    return export_path if export_path.is_file() else csv_path


def read_answers(path: Path, query: pd.DataFrame, known_ids: pd.Series, class_names: list[str],
                 allow_partial: bool, page: Path) -> Answers:
    """Read and check an answers file against the round's query: the CSV (``.csv``) or Label
    Studio's JSON export (``.json``, see :mod:`alr_core.human.labelstudio`).

    Errors name the file, the place (CSV: the line, counting the header as line 1; Label
    Studio: the task id) and the problem: a missing file (with what to do), wrong encoding or
    format, an empty or truncated file, an unknown or not-queried sample_id, one annotator
    answering a sample twice with different labels, a label that is not a class, and — unless
    ``allow_partial`` — queried samples without an answer."""
    queried = list(query["sample_id"])
    if not path.is_file():
        tasks = page.with_name(LABELSTUDIO_TASKS)
        raise AlrError(
            f"round needs {len(queried)} expert answers and {path} does not exist: open {page} in a "
            f"browser, answer every image, save the file as {path} (the page offers that name), "
            f"then run `dvc repro` again; or import {tasks} into Label Studio and save its JSON export "
            f"as {path.with_suffix('.json')}"
        )
    if path.suffix == ".json":
        from alr_core.human.labelstudio import parse_export

        records = parse_export(path)
    else:
        records = _parse(path)
    return check_answers(records, path, queried, set(known_ids), class_names, allow_partial)


def check_answers(records: list[tuple[str, str, str, str]], path: Path, queried: list[str], known: set,
                  class_names: list[str], allow_partial: bool) -> Answers:
    """``records``: (place, sample_id, annotator, label text) per answer, as a reader found them."""
    index_of = {name: k for k, name in enumerate(class_names)}
    wanted = set(queried)
    given: dict[tuple[str, str], tuple[int, str]] = {}
    for place, sample_id, annotator, label in records:
        if sample_id not in known:
            raise AlrError(f"{path}: {place}: unknown sample_id {sample_id!r}")
        if sample_id not in wanted:
            raise AlrError(f"{path}: {place}: sample {sample_id!r} was not queried in this round")
        answer = _class_index(label, index_of, len(class_names))
        if answer is None:
            raise AlrError(
                f"{path}: {place}: label {label!r} is not a class; use a class name "
                f"({', '.join(class_names)}), an index 0..{len(class_names) - 1}, or '{SKIP}'"
            )
        key = (sample_id, annotator)
        if key in given:
            previous, where = given[key]
            if previous != answer:
                by = f" by annotator {annotator!r}" if annotator != DEFAULT_ANNOTATOR else ""
                raise AlrError(
                    f"{path}: {place}: sample {sample_id!r} is answered twice{by} with different "
                    f"labels ({_shown(previous, class_names)} and {_shown(answer, class_names)}) — the first at {where}"
                )
            continue
        given[key] = (answer, place)
    answered = {sample_id for sample_id, _ in given}
    missing = [s for s in queried if s not in answered]
    if missing and not allow_partial:
        raise AlrError(
            f"{path}: {len(missing)} of {len(queried)} queried samples have no answer: "
            f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}; answer them (or 'skip'), "
            "or set al.allow_partial: true to accept a partial file"
        )
    return Answers(pd.DataFrame({
        "sample_id": pd.Series([s for s, _ in given], dtype=object),
        "annotator": pd.Series([a for _, a in given], dtype=object),
        "label": pd.Series([SKIP_LABEL if v == SKIP else v for v, _ in given.values()], dtype=np.int64),
    }))  # fmt: skip


def _parse(path: Path) -> list[tuple[str, str, str, str]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AlrError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8") from None
    if not text.strip():
        raise AlrError(f"{path}: the file is empty; expected a header 'sample_id,label' and one row per answer")
    lines = text.splitlines()
    header = lines[0]
    for delimiter, name in ((";", "semicolons"), ("\t", "tabs")):
        if delimiter in header and "," not in header:
            raise AlrError(f"{path}: line 1 is separated by {name}; expected commas: 'sample_id,label'")
    reader = csv.reader(io.StringIO(text))
    columns = [c.strip() for c in next(reader)]
    if sorted(columns) not in (["label", "sample_id"], ["annotator", "label", "sample_id"]):
        raise AlrError(
            f"{path}: line 1 is {header!r}; expected the header 'sample_id,label' "
            "(or 'sample_id,label,annotator' when several annotators answer)"
        )
    sample_at, label_at = columns.index("sample_id"), columns.index("label")
    annotator_at = columns.index("annotator") if "annotator" in columns else None
    rows = []
    for line, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(columns) or not all(f.strip() for f in fields):
            raise AlrError(
                f"{path}: line {line}: expected {len(columns)} non-empty fields {','.join(columns)!r}, got "
                f"{fields!r} (a truncated or hand-edited file?)"
            )
        annotator = fields[annotator_at].strip() if annotator_at is not None else DEFAULT_ANNOTATOR
        rows.append((f"line {line}", fields[sample_at].strip(), annotator, fields[label_at].strip()))
    if not rows:
        raise AlrError(f"{path}: the file has a header but no answers")
    return rows


def _class_index(label: str, index_of: dict[str, int], num_classes: int):
    if label.lower() == SKIP:
        return SKIP
    if label in index_of:
        return index_of[label]
    if label.isdigit() and int(label) < num_classes:
        return int(label)
    return None


def _shown(answer, class_names) -> str:
    return SKIP if answer == SKIP else repr(class_names[answer])
