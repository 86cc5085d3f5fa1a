"""The human oracle's side of a round: the annotation package an expert answers, and the
checks on the answers file the expert saves.

Each queried sample has an opaque ``item_id`` (:func:`item_ids`). The page, the Label Studio
tasks and the images exported for them show the expert that id only, never the sample id: for
an image folder the sample id is the file's path, whose folder is the class — the true class
when noise was injected. ``annotate.csv`` maps item ids to sample ids and image paths; it is the
data team's mapping file, not something to show the expert.

Answers file: UTF-8 CSV, comma-separated, header ``item_id,label`` (what the page saves) or
``sample_id,label`` (for data teams that write answers with their own tools); ``label`` is a
class name, a class index, or ``skip`` (unsure: the current label stays, the budget is spent);
a class name that is also another class's index is the class of that name. An optional
``annotator`` column lets several annotators answer the same sample (one row each).
Or Label Studio's JSON export, ``annotations/round_<r>.json`` (:mod:`alr_core.human.labelstudio`).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from alr_core.common.errors import AlrError, AwaitingAnswers
from alr_core.common.paths import ANNOTATION_CSV, ANSWERS_DIR, LABELSTUDIO_TASKS, PREPARED_IMAGES
from alr_core.common.text import composed, counted, did_you_mean, shortened
from alr_core.data.images import array_picture, png_bytes, read_viewable
from alr_core.human.page import MAX_IMAGE_WIDTH_PX, SKIP

SKIP_LABEL = -1  # a skip in the validated answers table
DEFAULT_ANNOTATOR = "expert"  # the one annotator of a CSV without an annotator column
ID_COLUMNS = ("item_id", "sample_id")  # what an answers CSV may name samples by
ITEM_ID_DIGITS = 10  # 40 bits: two ids of a 10,000-item round coincide with probability ~5e-5
IMAGES_NOTE = "README.txt"  # the images folder's one file when the tasks embed the images


def answers_path(round_number: int) -> Path:
    return ANSWERS_DIR / f"round_{round_number}.csv"


def labelstudio_export_path(round_number: int) -> Path:
    return ANSWERS_DIR / f"round_{round_number}.json"


def team_hint(annotators: int) -> str:
    """What experts must know when ``al.annotators`` asks several answers per image ("" for one)."""
    if annotators < 2:
        return ""
    return (f"; al.annotators is {annotators}, so every image wants {annotators} answers: each expert types their "
            "name in the page and saves their own file (it names them in an `annotator` column), and the files "
            "joined are the one file read (docs/annotation_teams.md), or each expert submits their own annotation "
            f"in Label Studio, whose project overlap (maximum_annotations) must then be {annotators}")


# cutting it down to item_id,label,annotator would lose the skips silently: say what it is
LABELSTUDIO_CSV = ("this is Label Studio's CSV export, which leaves out skipped (cancelled) annotations; export the "
                   "project in Label Studio's 'JSON' format instead and save it unchanged as "
                   "annotations/round_<r>.json")


def is_labelstudio_csv(columns: list[str]) -> bool:
    """Whether a CSV header's ``columns`` are those of Label Studio's CSV export of alr's tasks."""
    return {"annotation_id", "annotator", "item_id", "label"} <= set(columns)


def unread_answer_files(round_number: int, read: Path) -> list[Path]:
    """Files beside ``read`` (annotations/) named like round ``round_number``'s answers but not
    ``read`` (a browser's ``round_1 (1).csv``, one expert's ``round_1_ana.csv``): the stage reads
    one file."""
    pattern = re.compile(rf"round_{round_number}(?!\d)")
    if not read.parent.is_dir():
        return []
    return sorted(path for path in read.parent.iterdir()
                  if path.is_file() and pattern.match(path.name) and path.name != read.name)  # fmt: skip


def answers_notes(answers: pd.DataFrame, queried: int, annotators: int, path: Path, round_number: int) -> list[str]:
    """Notes for a human round: fewer answers than ``al.annotators`` plans for the ``queried``
    samples (``budget_used`` counts the planned ones), and answer files the stage does not read."""
    notes = []
    if annotators > 1 and len(answers) < annotators * queried:
        people = answers["annotator"].nunique()
        notes.append(f"note: {path}: {counted(len(answers), 'answer')} from {counted(people, 'annotator')} for "
                     f"{counted(queried, 'queried sample')}, where al.annotators plans {annotators} per sample "
                     f"({annotators * queried}, which budget_used counts); one file with an `annotator` column "
                     "holds every expert's answers (docs/annotation_teams.md)")  # fmt: skip
    unread = unread_answer_files(round_number, path)
    if unread:
        notes.append(f"note: {', '.join(map(str, unread))} {'is' if len(unread) == 1 else 'are'} not read: round "
                     f"{round_number}'s answers are {path} alone; merge the answers into it (with an `annotator` "
                     "column for several experts) and move the other files out of annotations/")  # fmt: skip
    return notes


def item_ids(sample_ids: Sequence[str], round_number: int, seed: int) -> list[str]:
    """The opaque id of each of a round's (distinct) queried ``sample_ids``, ``r<round>-<hex>``:
    HMAC-SHA256 of the round and sample id under the key ``seed``, cut to ``ITEM_ID_DIGITS``
    hex digits (to more, for the whole round, should two ids coincide).

    A digest of the sample rather than its place in the query: the same query gives the same
    ids (answers saved from a reloaded page still match), and an answers file written for an
    earlier query of the round names ids the new query lacks, so it is refused instead of
    answering the images that took the same places. The path cannot be read back from an id;
    recomputing ids takes the project's seed and sample list, whose holder has annotate.csv
    anyway: the id blinds the expert, it is not a secret."""
    digests = [_digest(sample_id, round_number, seed) for sample_id in sample_ids]
    width = next(w for w in range(ITEM_ID_DIGITS, 65) if len({d[:w] for d in digests}) == len(digests))
    return [f"r{round_number}-{digest[:width]}" for digest in digests]


def _digest(sample_id: str, round_number: int, seed: int) -> str:
    return hmac.new(str(seed).encode(), f"{round_number}/{sample_id}".encode(), hashlib.sha256).hexdigest()


def _query_changed(id_column: str, page: Path, still_asked: int, answers: int, path: Path) -> str:
    """What makes an answers file written for a round's earlier query no longer fit it, and what
    to do. ``still_asked`` of the file's ``answers`` name samples the query still holds: a file
    saved from the page (``id_column`` item_id) gives those to the new page's Load answers."""
    changed = ("the round's query changed since the answers were given (budget, the number of rounds and "
               "al.annotators set how many samples a round queries; al.strategy and its settings, al.pool, an earlier "
               "round's answers and the models decide which, and the models change with seed, the data and any "
               "setting of the stages before: noise.*, pretrain.*, lnl.*, model.*, train.*; or alr was upgraded: "
               "docs/experiments.md, 'Rounds experts have answered'); the answers file is left as it is: put back "
               "the params and data of the query it answers (`git log -p params.yaml`), or ")
    if id_column == "item_id" and path.suffix == ".json":  # Label Studio's export: the page loads page files only
        return changed + (f"import the round's new tasks {page.with_name(LABELSTUDIO_TASKS)} into Label Studio and "
                          f"answer them ({still_asked} of the export's {counted(answers, 'answer')} are to images "
                          "still asked)")
    if id_column == "item_id" and still_asked == 0:  # Load answers would fill in nothing
        return changed + f"answer the round's new page {page}: none of the file's answers is to an image it asks"
    if id_column == "item_id":
        return changed + (f"open the round's new page {page}, click 'Load answers' and choose this file, which fills "
                          f"in its answers to the images still asked ({still_asked} of its "
                          f"{counted(answers, 'answer')}), then answer the rest and save")
    return changed + f"answer the samples of the new query ({page.with_name(ANNOTATION_CSV)} lists them)"


def package_table(query: pd.DataFrame, samples: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """The data team's CSV of the queried samples: item and sample ids, current label and the
    model's suggestion (index and class name), confidence, and the image reference (source path,
    or the prepared array row). ``query`` needs rank, item_id, sample_id, current_label,
    predicted_label and confidence."""
    rows = samples.reset_index(drop=True).reset_index(names="image_row").set_index("sample_id")
    found = rows.reindex(query["sample_id"])
    names = np.asarray(class_names, dtype=object)
    source = found["source_path"].astype(object).to_numpy()
    reference = [path if isinstance(path, str) else f"{PREPARED_IMAGES.as_posix()}[{row}]"
                 for path, row in zip(source, found["image_row"])]  # fmt: skip
    return pd.DataFrame({
        "rank": query["rank"].to_numpy(),
        "item_id": query["item_id"].to_numpy(),
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
    """Items for :func:`alr_core.human.page.render_page`, keyed by item id, each with a PNG
    preview of the image (at most ``MAX_IMAGE_WIDTH_PX`` wide and high)."""
    items = []
    for row in package.itertuples():
        picture = _picture(row, images)
        picture.thumbnail((MAX_IMAGE_WIDTH_PX, MAX_IMAGE_WIDTH_PX))
        items.append({"item_id": row.item_id, "current_label": int(row.current_label),
                      "suggested_label": int(row.suggested_label), "confidence": float(row.confidence),
                      "image_png": png_bytes(picture)})  # fmt: skip
    return items


def item_images(package: pd.DataFrame, images: np.ndarray,
                image_url_prefix: str | None) -> Iterator[tuple[str, bytes]]:  # fmt: skip
    """The files of a round's ``images`` folder, as (file name, content) pairs.

    With an ``image_url_prefix`` the tasks reference image files: ``<item_id>.png``, full-size
    PNG, per queried image (the name says nothing of the source path, and re-encoding drops the
    source's metadata). Without one the tasks embed the images and copies would only fill the
    DVC cache; the folder, a DVC output, then holds ``IMAGES_NOTE`` alone, which says so (and
    spares every run DVC's warning about an empty output folder)."""
    if image_url_prefix is None:
        yield IMAGES_NOTE, ("No image files here: the annotation page and labelstudio_tasks.json embed each queried\n"
                            "image. Set al.image_url_prefix to have each one written here as <item_id>.png and\n"
                            "referenced from the tasks by that prefix (docs/annotation_teams.md).\n").encode()
        return
    for row in package.itertuples():
        yield f"{row.item_id}.png", png_bytes(_picture(row, images))


def _picture(row, images: np.ndarray) -> Image.Image:
    """A package row's image: the source file when there is one (more detail than the
    prepared array), else the array."""
    source = Path(row.image)
    if source.is_file():
        return read_viewable(source).convert("RGB")
    return array_picture(images[row.image_row])


@dataclass
class Answers:
    """Validated answers, one row per answer: ``sample_id``, ``annotator`` and ``label`` (the
    class index, or ``SKIP_LABEL`` for a skip). Agreeing repeats of one annotator's answer
    are kept once. Rows are sorted by sample id, then annotator: the file's row order is no
    answer, and must not make DVC retrain a round whose answers are the same.
    ``note``: what the stage should print about how the file was read, or None."""

    table: pd.DataFrame
    note: Optional[str] = None

    @classmethod
    def of(cls, given: dict[tuple[str, str], int], note: Optional[str] = None) -> "Answers":
        """From {(sample_id, annotator): class index or SKIP}; {} for a round that queried nothing."""
        return cls(pd.DataFrame({
            "sample_id": pd.Series([s for s, _ in given], dtype=object),
            "annotator": pd.Series([a for _, a in given], dtype=object),
            "label": pd.Series([SKIP_LABEL if v == SKIP else v for v in given.values()], dtype=np.int64),
        }).sort_values(["sample_id", "annotator"], ignore_index=True), note)  # fmt: skip


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
                 allow_partial: bool, page: Path, round_number: int, annotators: int = 1,
                 seed: Optional[int] = None, splits: Optional[dict[str, str]] = None) -> Answers:
    """Read and check round ``round_number``'s answers file against its query (``item_id`` and
    ``sample_id`` per queried sample): the CSV (``.csv``) or Label Studio's JSON export
    (``.json``, see :mod:`alr_core.human.labelstudio`). ``page``: the round's annotation page;
    ``known_ids``: the train samples' ids; ``splits``: every sample's split, to say when an
    answered sample left train (the splits changed since the answers were given).

    Errors name the file, the place (CSV: the line, counting the header as line 1; Label
    Studio: the task id) and the problem: a missing file (with what to do), wrong encoding or
    format, an empty or truncated file, an unknown item_id, an unknown or not-queried
    sample_id, one annotator answering a sample twice with different labels, a label that is
    not a class, and — unless ``allow_partial`` — queried samples without an answer. The note
    adds :func:`answers_notes` (``annotators``: ``al.annotators``)."""
    if not path.is_file():
        similar = unread_answer_files(round_number, path)
        if similar:  # a browser saves `round_1 (1).csv` when its downloads hold a round_1.csv already
            raise AlrError(f"round {round_number}: {path} does not exist, but annotations/ holds "
                           f"{', '.join(map(str, similar))}: rename the file that holds the round's answers "
                           f"to {path.name}{team_hint(annotators)}")  # fmt: skip
        raise AwaitingAnswers(
            f"round {round_number} waits for expert answers on {counted(len(query), 'queried image')}: "
            f"{path} does not exist; open {page} in a browser, answer every image, save the file as {path} "
            f"(the page offers that name), then run `dvc repro` again; or import "
            f"{page.with_name(LABELSTUDIO_TASKS)} into Label Studio and save its JSON export as "
            f"{path.with_suffix('.json')}{team_hint(annotators)}"
        )
    if path.suffix == ".json":
        from alr_core.human.labelstudio import parse_export

        id_column, records = "item_id", parse_export(path)
    else:
        id_column, records = _parse(path)
    read = check_answers(records, id_column, path, query, set(known_ids), class_names, allow_partial, page,
                         round_number, seed, splits)
    notes = [read.note] if read.note else []
    notes += answers_notes(read.table, len(query), annotators, path, round_number)
    return Answers(read.table, "\n".join(notes) or None)


def check_answers(records: list[tuple[str, str, str, str]], id_column: str, path: Path, query: pd.DataFrame,
                  known: set, class_names: list[str], allow_partial: bool, page: Path,
                  round_number: Optional[int] = None, seed: Optional[int] = None,
                  splits: Optional[dict[str, str]] = None) -> Answers:
    """``records``: (place, id, annotator, label text) per answer, as a reader found them, the
    id being an item id or a sample id as ``id_column`` says; ``known``: every train sample id;
    ``splits``: every sample's split (or None).

    A label that is a class name is read as that class even when it is also the index of
    another (class names "1".."5" are indices 0..4): the returned note then says so."""
    index_of = {composed(name): k for k, name in enumerate(class_names)}  # 'é' typed either way is one name
    sample_of = dict(zip(query[id_column], query["sample_id"]))
    noun = "item" if id_column == "item_id" else "sample"
    given: dict[tuple[str, str], tuple[int, str]] = {}
    read_as_names: list[str] = []  # labels both a class name and the index of another class
    for place, given_id, annotator, label in records:
        label = composed(label)
        if given_id not in sample_of:
            changed = _query_changed(id_column, page, sum(r[1] in sample_of for r in records), len(records), path)
            why = _unknown(given_id, id_column, known, len(query), page, changed, round_number, seed,
                           set(sample_of.values()), splits)
            raise AlrError(f"{path}: {place}: {why}")
        answer = _class_index(label, index_of, len(class_names))
        if label in index_of and _is_index(label) and int(label) < len(class_names) and int(label) != answer:
            read_as_names.append(label)
        if answer is None:
            raise AlrError(
                f"{path}: {place}: label {shortened(repr(label))} is not a class{did_you_mean(label, class_names)}; "
                f"use a class name ({', '.join(class_names)}), an index 0..{len(class_names) - 1}, or '{SKIP}'"
            )
        key = (sample_of[given_id], annotator)
        if key in given:
            previous, where = given[key]
            if previous != answer:
                by = f" by annotator {annotator!r}" if annotator != DEFAULT_ANNOTATOR else ""
                raise AlrError(
                    f"{path}: {place}: {noun} {given_id!r} is answered twice{by} with different "
                    f"labels ({_shown(previous, class_names)} and {_shown(answer, class_names)}) — the first at {where}"
                )
            continue
        given[key] = (answer, place)
    answered = {sample_id for sample_id, _ in given}
    missing = [shown for shown, sample_id in zip(query[id_column], query["sample_id"])
               if sample_id not in answered]  # fmt: skip
    if missing and not allow_partial:
        raise AlrError(
            f"{path}: {len(missing)} of {counted(len(query), f'queried {noun}')} "
            f"{'has' if len(missing) == 1 else 'have'} no answer: "
            f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}; answer them (or 'skip'), "
            "or set al.allow_partial: true to accept a partial file"
            + (f"; if the file answered every image of the page when it was saved, "
               f"{_query_changed(id_column, page, len(records), len(records), path)}"
               if given else "")
        )
    note = None
    if read_as_names:
        example = read_as_names[0]
        note = (f"note: {path}: {counted(len(read_as_names), 'label')} such as {example!r} name a class and are also "
                f"the index of another; they are read as class names ({example!r} is class index "
                f"{index_of[example]}, not class {class_names[int(example)]!r}); if you wrote indices, write class "
                "names instead, as annotate.html saves them")  # fmt: skip
    return Answers.of({key: answer for key, (answer, _) in given.items()}, note)


def _unknown(given_id: str, id_column: str, known: set, queried: int, page: Path, changed: str,
             round_number: Optional[int] = None, seed: Optional[int] = None, queried_ids: set = frozenset(),
             splits: Optional[dict[str, str]] = None) -> str:
    """Why an id that names no queried sample is refused. An unknown item id points the expert
    at the page, which lists the round's ids, not at annotate.csv, which shows the paths; with
    the round and the seed it also says why the id is not there: an id of another round, a
    sample this query no longer holds, a sample that left train (``splits``: every sample's
    split), or no sample of the data under this seed."""
    if id_column == "item_id":
        unknown = (f"unknown item_id {given_id!r}: not one of the {counted(queried, 'item')} on this round's "
                   f"page {page}")  # fmt: skip
        found = re.fullmatch(r"r(\d+)-([0-9a-f]+)", given_id)
        if round_number is None or seed is None or found is None:
            return f"{unknown} (answers for another round, or for an earlier query of this one?)"
        if int(found.group(1)) != round_number:
            return (f"{unknown}: it is an item of round {int(found.group(1))}'s page, so the file holds another "
                    f"round's answers; save round {round_number}'s answers as {answers_path(round_number)}")
        if len(found.group(2)) < ITEM_ID_DIGITS:  # a prefix this short names no item: cut off, not a query change
            return (f"{unknown} (cut short? an item id has at least {ITEM_ID_DIGITS} hex digits after "
                    f"'r{round_number}-')")
        every = known | (splits or {}).keys()  # the train samples, and those of val and test when given
        sample = next((s for s in sorted(every) if _digest(s, round_number, seed).startswith(found.group(2))), None)
        if sample in queried_ids:  # the item of a sample the query still holds, under another width
            return (f"{unknown}: it looks like a cut or altered copy of sample {sample!r}'s item id; copy it from "
                    "the page")
        if sample is not None and sample not in known:
            return f"{unknown}: it is sample {sample!r}, {_split_changed(sample, splits)}; {changed}"
        if sample is None:
            return (f"{unknown}: no sample of the data has this id under seed {seed} (seed changed, or the sample "
                    f"left the data); {changed}")  # fmt: skip
        return f"{unknown}: it is sample {sample!r}, which this round's query no longer holds; {changed}"
    if splits and given_id in splits and given_id not in known:
        return f"sample {given_id!r} was not queried in this round: it is {_split_changed(given_id, splits)}; {changed}"
    if given_id not in known:
        return f"unknown sample_id {given_id!r}"
    return f"sample {given_id!r} was not queried in this round; {changed}"


def _split_changed(sample_id: str, splits: dict[str, str]) -> str:
    return (f"now in the {splits[sample_id]} split, not train: the splits changed since the answers were given "
            "(data.split_order: `shuffle` keeps the splits of an alr whose params.yaml had no data.split_order; or "
            "data.split_seed, the split fractions, the data)")


def _parse(path: Path) -> tuple[str, list[tuple[str, str, str, str]]]:
    """The id column the CSV names samples by (``item_id`` or ``sample_id``), and its answers
    as :func:`check_answers` takes them."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AlrError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8") from None
    if not text.strip():
        raise AlrError(f"{path}: the file is empty; expected a header 'item_id,label' and one row per answer")
    lines = text.splitlines()
    header = lines[0]
    for delimiter, name in ((";", "semicolons"), ("\t", "tabs")):
        if delimiter in header and "," not in header:
            raise AlrError(f"{path}: line 1 is separated by {name}; expected commas: 'item_id,label'")
    reader = csv.reader(io.StringIO(text))
    columns = [c.strip() for c in next(reader)]
    if is_labelstudio_csv(columns):
        raise AlrError(f"{path}: {LABELSTUDIO_CSV}")
    headers = [sorted(names) for id_column in ID_COLUMNS
               for names in ([id_column, "label"], [id_column, "label", "annotator"])]  # fmt: skip
    if sorted(columns) not in headers:
        raise AlrError(
            f"{path}: line 1 is {header!r}; expected the header 'item_id,label' (as the annotation page "
            "saves it) or 'sample_id,label', with an 'annotator' column when several annotators answer"
        )
    id_column = next(c for c in ID_COLUMNS if c in columns)
    id_at, label_at = columns.index(id_column), columns.index("label")
    annotator_at = columns.index("annotator") if "annotator" in columns else None
    rows = []
    try:
        for fields in reader:
            line = reader.line_num  # the record's last line: a quoted field may span several
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) != len(columns) or not all(f.strip() for f in fields):
                raise AlrError(
                    f"{path}: line {line}: expected {len(columns)} non-empty fields {','.join(columns)!r}, got "
                    f"{shortened(repr(fields))} (a truncated or hand-edited file?)"
                )
            annotator = fields[annotator_at].strip() if annotator_at is not None else DEFAULT_ANNOTATOR
            rows.append((f"line {line}", fields[id_at].strip(), annotator, fields[label_at].strip()))
    except csv.Error as exc:  # a field over csv's size limit: a stray double quote took in the rest of the file
        raise AlrError(f"{path}: line {reader.line_num}: cannot read as CSV ({exc}); is a double quote (\") "
                       "on or before this line left open? (a hand-edited file?)") from None  # fmt: skip
    if not rows:
        raise AlrError(f"{path}: the file has a header but no answers")
    return id_column, rows


def _class_index(label: str, index_of: dict[str, int], num_classes: int):
    if label.lower() == SKIP:
        return SKIP
    if label in index_of:
        return index_of[label]
    if _is_index(label) and int(label) < num_classes:
        return int(label)
    return None


def _is_index(label: str) -> bool:
    """ASCII digits only, as the annotation page reads them: isdigit() passes "²", which int()
    refuses, and isdecimal() the full-width "３", which the page would call no class."""
    return label.isascii() and label.isdecimal()


def _shown(answer, class_names) -> str:
    return SKIP if answer == SKIP else repr(class_names[answer])
