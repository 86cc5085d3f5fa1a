"""Label Studio round trip, from its documented JSON formats (no server, no SDK).

query@r writes ``labelstudio_tasks.json`` (Label Studio's task import format: one task per
queried image, ``data`` holding the image and the opaque item_id (never the sample id, which
for an image folder is a path naming the class), and a ``predictions`` entry with the model's
suggestion and confidence as a pre-annotation) and ``labelstudio_config.xml`` (the labelling
interface: the item id, the image and one Choices control listing the class names).
oracle_relabel@r reads the project's JSON export (a list of tasks, each with its
``annotations``: ``completed_by``, ``was_cancelled`` and a ``result`` list whose ``choices``
item holds the chosen class name) saved as ``annotations/round_<r>.json``.

Why not label-studio-sdk: 2.x pulls in opencv, nltk, lxml, pydantic and a code generator
for what is here a list of dicts; the formats are documented and stable.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import pandas as pd

from alr_core.common.errors import AlrError
from alr_core.common.text import shortened
from alr_core.data.images import png_data_uri
from alr_core.human.annotation import DEFAULT_ANNOTATOR, LABELSTUDIO_CSV, SKIP, is_labelstudio_csv

CONTROL = "label"  # the Choices control's name: from_name of every answer
OBJECT = "image"  # the Image object's name (to_name) and the task data key it shows


def labeling_config(class_names: list[str]) -> str:
    """The labelling interface XML: the item id as a header, the image, one required single choice."""
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in class_names)
    return (
        "<View>\n"
        '  <Header value="$item_id"/>\n'
        f'  <Image name="{OBJECT}" value="${OBJECT}" zoom="true"/>\n'
        f'  <Choices name="{CONTROL}" toName="{OBJECT}" choice="single-radio" required="true" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def tasks(package: pd.DataFrame, items: list[dict], class_names: list[str], round_number: int,
          image_url_prefix: str | None, images_dir: Path) -> list[dict]:
    """One import task per queried sample, in query order.

    ``package``: :func:`alr_core.human.annotation.package_table`; ``items``: the matching
    :func:`alr_core.human.annotation.page_items` (their PNG is embedded as a data URI).
    With ``image_url_prefix`` set, each image is referenced instead as the prefix followed by
    the URL-quoted path of its exported copy, ``<images_dir>/<item_id>.png``
    (:func:`alr_core.human.annotation.item_images`): never the source path, which names the class."""
    result = []
    for row, item in zip(package.itertuples(), items):
        if image_url_prefix is not None:
            image = image_url_prefix + quote(f"{images_dir.as_posix()}/{row.item_id}.png")
        else:
            image = png_data_uri(item["image_png"])
        suggestion = class_names[int(row.suggested_label)]
        result.append({
            "data": {OBJECT: image, "item_id": row.item_id, "round": round_number, "rank": int(row.rank),
                     "current_class": row.current_class},
            "predictions": [{
                "model_version": f"alr round {round_number}",
                "score": float(row.confidence),
                "result": [{"id": f"r{round_number}-{int(row.rank)}", "from_name": CONTROL, "to_name": OBJECT,
                            "type": "choices", "value": {"choices": [suggestion]}}],
            }],
        })  # fmt: skip
    return result


def parse_export(path: Path) -> list[tuple[str, str, str, str]]:
    """The answers in a Label Studio JSON export: (place, item_id, annotator, label text)
    per annotation, place naming the task and annotation ids. A cancelled (skipped)
    annotation is a ``skip``; the annotator is ``completed_by`` (its email when the export
    gives a user object, else the user id)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        exported = json.loads(text)
    except UnicodeDecodeError as exc:
        raise AlrError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the export as UTF-8") from None
    except json.JSONDecodeError as exc:
        try:  # the first line alone: a compact export's one line may hold an image larger than csv's field limit
            header = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
        except csv.Error:
            header = []
        if is_labelstudio_csv(header):  # the CSV export saved under .json
            raise AlrError(f"{path}: {LABELSTUDIO_CSV}") from None
        raise AlrError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); save Label Studio's "
            "JSON export unchanged"
        ) from None
    except (RecursionError, ValueError) as exc:  # nested thousands deep; an integer of thousands of digits
        raise AlrError(f"{path}: cannot read as Label Studio's JSON export ({type(exc).__name__}: "
                       f"{shortened(str(exc))}); save Label Studio's JSON export unchanged") from None
    if not isinstance(exported, list):
        raise AlrError(
            f"{path}: expected Label Studio's JSON export, a list of tasks, got a JSON {type(exported).__name__}"
        )
    if not exported:
        raise AlrError(f"{path}: the export holds no tasks; annotate the tasks in Label Studio, then export again")
    records = []
    for position, task in enumerate(exported, start=1):
        if not isinstance(task, dict):
            raise AlrError(f"{path}: item {position} is not a task object")
        place = f"task {_id_text(task.get('id', f'#{position}'))}"
        if not isinstance(task.get("annotations"), list):
            raise AlrError(
                f"{path}: {place} has no 'annotations' list; export the project in Label Studio's "
                "'JSON' format (not JSON_MIN, CSV or another format)"
            )
        data = task.get("data")
        item_id = data.get("item_id") if isinstance(data, dict) else None
        if not isinstance(item_id, str) or not item_id:
            raise AlrError(
                f"{path}: {place} has no data.item_id; import the tasks from the round's "
                "labelstudio_tasks.json, which carries it, rather than the images alone"
            )
        for annotation in task["annotations"]:
            if not isinstance(annotation, dict):
                raise AlrError(f"{path}: {place}: an annotation is not an object")
            where = f"{place}, annotation {_id_text(annotation.get('id', '?'))}"
            annotator = _annotator(annotation.get("completed_by"))
            records.append((where, item_id, annotator, SKIP if annotation.get("was_cancelled") else
                            _choice(annotation, path, where)))  # fmt: skip
    return records


def _id_text(value) -> str:
    """A task or annotation id as an error message shows it: as it is when printable, else its
    repr (an id must not send escape codes to the terminal), shortened."""
    text = str(value)
    return shortened(text if text.isprintable() else repr(text))


def _choice(annotation: dict, path: Path, where: str) -> str:
    results = annotation.get("result") or []
    values = [item.get("value") for item in (results if isinstance(results, list) else [results])
              if isinstance(item, dict) and item.get("from_name") == CONTROL and item.get("type") == "choices"]
    # Label Studio writes {"choices": [<class>]}; anything else is a hand-edited or foreign export
    malformed = [value for value in values if not (isinstance(value, dict) and isinstance(value.get("choices"), list))]
    if malformed:
        raise AlrError(f"{path}: {where}: the '{CONTROL}' choice's value is {malformed[0]!r}, not "
                       "{'choices': [<class name>]} as Label Studio exports it (a hand-edited export?)")
    chosen = [choice for value in values for choice in value["choices"]]
    if len(chosen) != 1 or not isinstance(chosen[0], str):
        raise AlrError(
            f"{path}: {where}: expected one chosen class in the '{CONTROL}' choices, got {chosen!r} "
            "(was the project set up with the round's labelstudio_config.xml?)"
        )
    return chosen[0]


def _annotator(completed_by) -> str:
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    return DEFAULT_ANNOTATOR if completed_by is None else str(completed_by)
