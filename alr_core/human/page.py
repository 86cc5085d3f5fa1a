"""The page a human oracle answers re-label queries in: one self-contained HTML file.

``render_page`` returns the page's text. Everything it needs is inside it: the images as
``data:image/png;base64`` URLs, the CSS and a small vanilla-JS script inline, and a
Content-Security-Policy that forbids any network access, so it works opened from ``file://``
on a machine without internet. The template, CSS and script are files in ``assets/``, inlined
at render time.

The expert sees one queried image at a time with its item id (opaque: never the sample id,
which for an image folder is a path naming the class), its current label and the model's
suggestion, and answers with a button per class (or digit keys: 1 = first class, ..., 9, 0 =
tenth) or "unsure / skip" (``s``). "Save answers" downloads ``answers_filename``:

    item_id,label
    r1-3fa91c07be,neutrophil
    r1-0c55e2a918,skip

UTF-8 without a byte-order mark, ``\\n`` line endings, one row per answered item in item order
(unanswered items are left out), ``label`` being the class *name* or ``skip``; a field that
holds a comma, a double quote, CR or LF is quoted and its quotes doubled (RFC 4180). Answers are
also kept in the browser's localStorage (key: round, file name and a fingerprint of the items)
so that a reload loses nothing. Where several annotators answer each image, the expert types
their name first, the key holds it too, and the file has a third column, ``annotator``.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import operator
import re
from importlib import resources
from typing import Any

from alr_core.common.errors import AlrError
from alr_core.common.params import SKIP_ANSWER, check_class_names
from alr_core.common.paths import ANSWERS_DIR
from alr_core.data.images import png_data_uri

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SKIP = SKIP_ANSWER  # the label the page writes for an item the expert skipped
ITEM_KEYS = ("item_id", "current_label", "suggested_label", "confidence", "image_png")
MIN_IMAGE_WIDTH_PX = 320  # smaller images are scaled up (pixelated) to this width
MAX_IMAGE_WIDTH_PX = 512  # larger ones are scaled down to this width


def render_page(items: list[dict], class_names: list[str], round_number: int,
                answers_filename: str, annotators: int = 1) -> str:
    """The full HTML text of the annotation page for one round's queried samples.

    ``items``, in the order the expert should see them, are dicts with the keys ``item_id``
    (str, unique, non-empty: shown to the expert and written to the answers, so nothing that
    reveals the class, such as a file path), ``current_label`` and ``suggested_label`` (int
    class indices into ``class_names``), ``confidence`` (float in [0, 1]: the model's
    probability for its suggestion, shown as a percentage) and ``image_png`` (bytes of a PNG
    file). Extra keys are ignored. ``class_names``: the class names in label order (unique,
    non-empty, none equal to ``"skip"``). ``answers_filename``: a bare file name such as
    ``round_1.csv``; the page downloads its answers under this name and tells the expert to
    save it as ``annotations/<answers_filename>`` in the project folder. ``annotators``:
    ``al.annotators``; above 1, each expert types their name first, the browser keeps each
    name's answers apart (several experts often share one reading-room computer), and the
    file gets an ``annotator`` column.

    The page writes ``item_id,label`` CSV (see the module docstring): one row per answered
    item, ``label`` being a class name or ``skip``. Raises ``ValueError`` on invalid input.
    """
    names = _check_class_names(class_names)
    round_number = _check_int(round_number, "round_number")
    filename = _check_filename(answers_filename)
    annotators = _check_int(annotators, "annotators")
    if annotators < 1:
        raise ValueError(f"annotators must be at least 1, got {annotators}")
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"items must be a list of dicts, got {type(items).__name__}")
    page_items = [_page_item(item, position, len(names)) for position, item in enumerate(items)]
    seen: dict[str, int] = {}
    for position, item in enumerate(page_items):
        if item["item_id"] in seen:
            raise ValueError(f"items[{position}]: item_id {item['item_id']!r} repeats items[{seen[item['item_id']]}]")
        seen[item["item_id"]] = position

    fingerprint = hashlib.sha256(
        json.dumps([[i["item_id"] for i in page_items], names]).encode("utf-8")
    ).hexdigest()[:12]
    data = {
        "round": round_number,
        "filename": filename,
        "storage_key": f"alr-annotation:round-{round_number}:{filename}:{fingerprint}",
        "class_names": names,
        "skip": SKIP,
        "annotators": annotators,
        "min_width": MIN_IMAGE_WIDTH_PX,
        "max_width": MAX_IMAGE_WIDTH_PX,
        "items": page_items,
    }
    target = f"{ANSWERS_DIR.as_posix()}/{filename}"
    replacements = {
        "__TITLE__": f"alr &middot; round {round_number} &middot; re-label queries",
        "__ROUND__": html.escape(str(round_number)),
        "__FILENAME__": html.escape(filename),
        "__TARGET__": html.escape(target),
        "__COUNT__": str(len(page_items)),
        "__DATA__": _script_json(data),
        "__STYLE__": _asset("annotate.css"),
        "__SCRIPT__": _asset("annotate.js"),
    }
    # one pass over the template, so that no value's text is ever taken for a marker
    return re.sub(r"__[A-Z]+__", lambda match: replacements[match.group(0)], _asset("annotate.html"))


def _asset(name: str) -> str:
    """The text of ``alr_core/human/assets/<name>``: the page's HTML template (with ``__NAME__``
    markers), its CSS and its script, kept as files so that they read and lint as what they are."""
    return resources.files("alr_core.human").joinpath("assets", name).read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON that is inert inside a <script> element: no '<', '>' or '&' characters at all (so
    neither '</script' nor '<!--' can occur) and no raw U+2028/U+2029 (ensure_ascii)."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _check_class_names(class_names: list[str]) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, (list, tuple)) or not class_names:
        raise ValueError(f"class_names must be a non-empty list of strings, got {class_names!r}")
    for position, name in enumerate(class_names):
        if not isinstance(name, str):
            raise ValueError(f"class_names[{position}] must be a string, got {name!r}")
        if name in class_names[:position]:
            raise ValueError(f"class_names[{position}] {name!r} repeats class_names[{class_names.index(name)}]")
    try:
        check_class_names(list(class_names), "class_names")
    except AlrError as exc:  # one rule for the names, as prepare applies it; a ValueError here
        raise ValueError(str(exc)) from None
    return list(class_names)


def _check_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {value!r}") from None


def _check_filename(name: Any) -> str:
    if (not isinstance(name, str) or not name.strip() or name in (".", "..")
            or any(c in name for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise ValueError(f"answers_filename must be a bare file name such as 'round_1.csv', got {name!r}")
    return name


def _page_item(item: Any, position: int, num_classes: int) -> dict:
    where = f"items[{position}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be a dict, got {type(item).__name__}")
    missing = [key for key in ITEM_KEYS if key not in item]
    if missing:
        raise ValueError(f"{where} lacks {missing}; an item has the keys {list(ITEM_KEYS)}")
    item_id = item["item_id"]
    if not isinstance(item_id, str) or not item_id:
        raise ValueError(f"{where}: item_id must be a non-empty string, got {item_id!r}")
    labels = {}
    for key in ("current_label", "suggested_label"):
        label = _check_int(item[key], f"{where}.{key}")
        if not 0 <= label < num_classes:
            raise ValueError(f"{where}.{key} is {label}; expected a class index in [0, {num_classes})")
        labels[key] = label
    try:
        confidence = float(item["confidence"])
    except (TypeError, ValueError):
        raise ValueError(f"{where}.confidence must be a number in [0, 1], got {item['confidence']!r}") from None
    if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
        raise ValueError(f"{where}.confidence must be a number in [0, 1], got {confidence!r}")
    png = item["image_png"]
    if not isinstance(png, (bytes, bytearray, memoryview)) or not bytes(png[:8]) == PNG_SIGNATURE:
        raise ValueError(f"{where}.image_png must be the bytes of a PNG file")
    return {
        "item_id": item_id,
        "current_label": labels["current_label"],
        "suggested_label": labels["suggested_label"],
        "confidence": confidence,
        "image": png_data_uri(png),
    }
