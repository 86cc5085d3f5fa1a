"""The human oracle's side of a round: the annotation package an expert answers, and the
checks on the answers file the expert saves.

Answers file: UTF-8 CSV, comma-separated, header ``sample_id,label``; ``label`` is a class
name, a class index, or ``skip`` (unsure: the current label stays, the budget is spent).
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
from alr_core.common.paths import ANSWERS_DIR, PREPARED_IMAGES
from alr_core.human.page import MAX_IMAGE_WIDTH_PX, SKIP


def answers_path(round_number: int) -> Path:
    return ANSWERS_DIR / f"round_{round_number}.csv"


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
    """Validated answers: ``labels`` (class index by sample_id) and the ``skipped`` ids."""

    labels: pd.Series
    skipped: list[str]


def read_answers(path: Path, query: pd.DataFrame, known_ids: pd.Series, class_names: list[str],
                 allow_partial: bool, page: Path) -> Answers:
    """Read and check an expert's answers file against the round's query.

    Errors name the file, the row (line numbers count the header as line 1) and the problem:
    a missing file (with what to do), wrong encoding or delimiter, an empty or truncated file,
    an unknown or not-queried sample_id, conflicting duplicates, a label that is not a class,
    and — unless ``allow_partial`` — queried samples without an answer."""
    queried = list(query["sample_id"])
    if not path.is_file():
        raise AlrError(
            f"round needs {len(queried)} expert answers and {path} does not exist: open {page} in a "
            f"browser, answer every image, save the file as {path} (the page offers that name), "
            "then run `dvc repro` again"
        )
    rows = _parse(path)
    index_of = {name: k for k, name in enumerate(class_names)}
    known = set(known_ids)
    wanted = set(queried)
    labels: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for line, (sample_id, label) in rows:
        if sample_id not in known:
            raise AlrError(f"{path}: line {line}: unknown sample_id {sample_id!r}")
        if sample_id not in wanted:
            raise AlrError(f"{path}: line {line}: sample {sample_id!r} was not queried in this round")
        answer = _class_index(label, index_of, len(class_names))
        if answer is None:
            raise AlrError(
                f"{path}: line {line}: label {label!r} is not a class; use a class name "
                f"({', '.join(class_names)}), an index 0..{len(class_names) - 1}, or '{SKIP}'"
            )
        if sample_id in labels or sample_id in skipped:
            previous = labels.get(sample_id, SKIP)
            if previous != answer:
                raise AlrError(
                    f"{path}: line {line}: sample {sample_id!r} is answered twice with different "
                    f"labels ({_shown(previous, class_names)} and {_shown(answer, class_names)})"
                )
            continue
        if answer == SKIP:
            skipped[sample_id] = line
        else:
            labels[sample_id] = answer
    missing = [s for s in queried if s not in labels and s not in skipped]
    if missing and not allow_partial:
        raise AlrError(
            f"{path}: {len(missing)} of {len(queried)} queried samples have no answer: "
            f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}; answer them (or 'skip'), "
            "or set al.allow_partial: true to accept a partial file"
        )
    return Answers(pd.Series(labels, dtype="int64"), list(skipped))


def _parse(path: Path) -> list[tuple[int, tuple[str, str]]]:
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
    if columns != ["sample_id", "label"]:
        raise AlrError(f"{path}: line 1 is {header!r}; expected the header 'sample_id,label'")
    rows = []
    for line, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise AlrError(
                f"{path}: line {line}: expected 2 non-empty fields 'sample_id,label', got {fields!r} "
                "(a truncated or hand-edited file?)"
            )
        rows.append((line, (fields[0].strip(), fields[1].strip())))
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
