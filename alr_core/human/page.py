"""The page a human oracle answers re-label queries in: one self-contained HTML file.

``render_page`` returns the page's text. Everything it needs is inside it: the images as
``data:image/png;base64`` URLs, the CSS and a small vanilla-JS script inline, and a
Content-Security-Policy that forbids any network access, so it works opened from ``file://``
on a machine without internet.

The expert sees one queried image at a time with its sample id, its current label and the
model's suggestion, and answers with a button per class (or digit keys: 1 = first class, ...,
9, 0 = tenth) or "unsure / skip" (``s``). "Save answers" downloads ``answers_filename``:

    sample_id,label
    train/000123,neutrophil
    train/000456,skip

UTF-8 without a byte-order mark, ``\\n`` line endings, one row per answered item in item order
(unanswered items are left out), ``label`` being the class *name* or ``skip``; a field that
holds a comma, a double quote, CR or LF is quoted and its quotes doubled (RFC 4180). Answers are
also kept in the browser's localStorage (key: round, file name and a fingerprint of the items)
so that a reload loses nothing.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import operator
import re
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SKIP = "skip"  # the label the page writes for an item the expert skipped
ITEM_KEYS = ("sample_id", "current_label", "suggested_label", "confidence", "image_png")
MIN_IMAGE_WIDTH_PX = 320  # smaller images are scaled up (pixelated) to this width
MAX_IMAGE_WIDTH_PX = 512  # larger ones are scaled down to this width


def render_page(items: list[dict], class_names: list[str], round_number: int,
                answers_filename: str) -> str:
    """The full HTML text of the annotation page for one round's queried samples.

    ``items``, in the order the expert should see them, are dicts with the keys
    ``sample_id`` (str, unique, non-empty), ``current_label`` and ``suggested_label`` (int
    class indices into ``class_names``), ``confidence`` (float in [0, 1]: the model's
    probability for its suggestion, shown as a percentage) and ``image_png`` (bytes of a PNG
    file). Extra keys are ignored. ``class_names``: the class names in label order (unique,
    non-empty, none equal to ``"skip"``). ``answers_filename``: a bare file name such as
    ``round_1.csv``; the page downloads its answers under this name and tells the expert to
    save it as ``annotations/<answers_filename>`` in the project folder.

    The page writes ``sample_id,label`` CSV (see the module docstring): one row per answered
    item, ``label`` being a class name or ``skip``. Raises ``ValueError`` on invalid input.
    """
    names = _check_class_names(class_names)
    round_number = _check_int(round_number, "round_number")
    filename = _check_filename(answers_filename)
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"items must be a list of dicts, got {type(items).__name__}")
    page_items = [_page_item(item, position, len(names)) for position, item in enumerate(items)]
    seen: dict[str, int] = {}
    for position, item in enumerate(page_items):
        if item["sample_id"] in seen:
            raise ValueError(
                f"items[{position}]: sample_id {item['sample_id']!r} repeats items[{seen[item['sample_id']]}]"
            )
        seen[item["sample_id"]] = position

    fingerprint = hashlib.sha256(
        json.dumps([[i["sample_id"] for i in page_items], names]).encode("utf-8")
    ).hexdigest()[:12]
    data = {
        "round": round_number,
        "filename": filename,
        "storage_key": f"alr-annotation:round-{round_number}:{filename}:{fingerprint}",
        "class_names": names,
        "skip": SKIP,
        "min_width": MIN_IMAGE_WIDTH_PX,
        "max_width": MAX_IMAGE_WIDTH_PX,
        "items": page_items,
    }
    target = f"annotations/{filename}"
    replacements = {
        "__TITLE__": f"alr &middot; round {round_number} &middot; re-label queries",
        "__ROUND__": html.escape(str(round_number)),
        "__FILENAME__": html.escape(filename),
        "__TARGET__": html.escape(target),
        "__COUNT__": str(len(page_items)),
        "__DATA__": _script_json(data),
        "__STYLE__": _STYLE,
        "__SCRIPT__": _SCRIPT,
    }
    # one pass over the template, so that no value's text is ever taken for a marker
    return re.sub(r"__[A-Z]+__", lambda match: replacements[match.group(0)], _TEMPLATE)


def _script_json(value: Any) -> str:
    """JSON that is inert inside a <script> element: no '<', '>' or '&' characters at all (so
    neither '</script' nor '<!--' can occur) and no raw U+2028/U+2029 (ensure_ascii)."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _check_class_names(class_names: list[str]) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, (list, tuple)) or not class_names:
        raise ValueError(f"class_names must be a non-empty list of strings, got {class_names!r}")
    names = []
    for position, name in enumerate(class_names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class_names[{position}] must be a non-empty string, got {name!r}")
        if name == SKIP:
            raise ValueError(f"class_names[{position}] is {SKIP!r}, which the page writes for skipped items")
        if name in names:
            raise ValueError(f"class_names[{position}] {name!r} repeats class_names[{names.index(name)}]")
        names.append(name)
    return names


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
    sample_id = item["sample_id"]
    if not isinstance(sample_id, str) or not sample_id:
        raise ValueError(f"{where}: sample_id must be a non-empty string, got {sample_id!r}")
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
        "sample_id": sample_id,
        "current_label": labels["current_label"],
        "suggested_label": labels["suggested_label"],
        "confidence": confidence,
        "image": "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii"),
    }


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<header class="bar">
  <h1>Round __ROUND__ &middot; re-label queries</h1>
  <div class="progress-box">
    <span id="progress" aria-live="polite">0 / __COUNT__ answered</span>
    <progress id="progress-bar" max="__COUNT__" value="0"></progress>
  </div>
  <div class="save-box">
    <button type="button" id="save" class="primary">Save answers</button>
    <span id="save-status" role="status" aria-live="polite"></span>
  </div>
</header>
<section class="help" aria-labelledby="help-title">
  <h2 id="help-title" class="visually-hidden">Instructions</h2>
  <p>For each image, pick the class you see: click its button or press its key
  (<kbd>1</kbd> = first class &hellip; <kbd>9</kbd>, <kbd>0</kbd> = tenth). Not sure? Press
  <kbd>s</kbd> (unsure / skip). Answering moves to the next image; go back with
  <kbd>&larr;</kbd> / <kbd>p</kbd> and forward with <kbd>&rarr;</kbd> / <kbd>n</kbd> to check or change an answer.</p>
  <p><strong>When done, click &ldquo;Save answers&rdquo;</strong>: your browser downloads
  <code>__FILENAME__</code> (usually into your Downloads folder).
  <strong>Save the file as <code>__TARGET__</code> in the project folder, then run <code>dvc repro</code>.</strong>
  If the browser renamed it (e.g. <code>&hellip; (1).csv</code>), rename it back. Unanswered images are left out of the
  file; your answers are also kept in this browser, so you can close the page and come back.</p>
</section>
<noscript><p class="warning">This page needs JavaScript to record answers.</p></noscript>
<main class="layout">
  <section id="card" class="card" aria-labelledby="item-title">
    <h2 id="item-title">Image <span id="position">1</span> of __COUNT__</h2>
    <div class="item">
      <figure class="figure">
        <img id="image" alt="" width="320" height="320">
      </figure>
      <div class="details">
        <dl class="facts">
          <dt>Sample</dt><dd><code id="sample-id"></code></dd>
          <dt>Current label</dt><dd id="current-label"></dd>
          <dt>Model suggests</dt><dd id="suggestion"></dd>
          <dt>Your answer</dt><dd id="answer" class="answer">not answered</dd>
        </dl>
        <div id="classes" class="classes" role="group" aria-label="Classes"></div>
        <div class="nav">
          <button type="button" id="prev">&larr; Previous <kbd>p</kbd></button>
          <button type="button" id="skip" class="skip">Unsure / skip <kbd>s</kbd></button>
          <button type="button" id="next">Next &rarr; <kbd>n</kbd></button>
        </div>
      </div>
    </div>
  </section>
  <nav class="overview" aria-labelledby="overview-title">
    <h2 id="overview-title">All images</h2>
    <ol id="overview"></ol>
  </nav>
</main>
<script type="application/json" id="alr-data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""

_STYLE = """
:root { --accent: #1f5fa8; --answered: #1d7a3a; --skipped: #9a6700; --border: #c9ced6; --muted: #5b6470; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24; background: #f4f6f8; }
h1 { font-size: 1.2rem; margin: 0; }
h2 { font-size: 1rem; margin: 0 0 .6rem; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .92em; }
kbd { display: inline-block; min-width: 1.4em; padding: 0 .3em; border: 1px solid #9aa3ad; border-bottom-width: 2px;
      border-radius: 4px; background: #fff; font: 600 .8rem/1.3 ui-monospace, Menlo, Consolas, monospace; text-align: center; color: #1b1f24; }
.bar { display: flex; align-items: center; gap: 1.5rem; flex-wrap: wrap; padding: .7rem 1.2rem; background: #fff; border-bottom: 1px solid var(--border); }
.progress-box { display: flex; align-items: center; gap: .6rem; font-weight: 600; }
progress { width: 160px; height: .8rem; }
.save-box { margin-left: auto; display: flex; align-items: center; gap: .8rem; }
#save-status { color: var(--muted); font-size: .9rem; }
#save-status.unsaved { color: #a1260d; font-weight: 600; }
.help { margin: .8rem 1.2rem 0; padding: .5rem 1rem; background: #eef3fb; border: 1px solid #c8d7ee; border-radius: 6px; font-size: .9rem; }
.help p { margin: .35rem 0; }
.layout { display: flex; gap: 1rem; align-items: flex-start; padding: .8rem 1.2rem 1.2rem; }
.card { flex: 1 1 auto; min-width: 0; background: #fff; border: 1px solid var(--border); border-radius: 6px; padding: .9rem 1rem; }
.item { display: flex; gap: 1.2rem; flex-wrap: wrap; }
.figure { margin: 0; flex: 0 0 auto; }
#image { display: block; width: 320px; height: auto; max-width: 100%; image-rendering: pixelated; border: 1px solid var(--border); background: #000; }
.details { flex: 1 1 280px; min-width: 0; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem .9rem; margin: 0 0 .8rem; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.answer.answered { color: var(--answered); }
.answer.skipped { color: var(--skipped); }
.classes { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: .4rem; margin-bottom: .8rem; }
button { font: inherit; color: inherit; cursor: pointer; border: 1px solid #9aa3ad; border-radius: 5px; background: #fff; padding: .4rem .7rem; }
button:hover { background: #eef3fb; }
button:focus-visible { outline: 3px solid #f0b400; outline-offset: 2px; }
button:disabled { opacity: .45; cursor: default; }
button:disabled:hover { background: #fff; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; font-weight: 600; }
button.primary:hover { background: #174b86; }
.class-button { display: flex; align-items: center; gap: .5rem; text-align: left; }
.class-button .name { flex: 1 1 auto; overflow-wrap: anywhere; }
.class-button .tag { font-size: .72rem; color: var(--muted); border: 1px solid var(--border); border-radius: 3px; padding: 0 .25rem; white-space: nowrap; }
.class-button[aria-pressed="true"], .skip[aria-pressed="true"] { background: var(--answered); border-color: var(--answered); color: #fff; }
.skip[aria-pressed="true"] { background: var(--skipped); border-color: var(--skipped); }
.class-button[aria-pressed="true"] .tag { color: #fff; border-color: #fff; }
.nav { display: flex; gap: .5rem; flex-wrap: wrap; }
.overview { flex: 0 0 270px; background: #fff; border: 1px solid var(--border); border-radius: 6px; padding: .9rem .8rem; max-height: 70vh; overflow: auto; }
.overview ol { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: .25rem; }
.overview button { width: 100%; display: flex; justify-content: space-between; gap: .5rem; text-align: left; padding: .3rem .5rem; font-size: .85rem; }
.overview button[aria-current="true"] { border: 2px solid var(--accent); background: #eef3fb; }
.overview .sid { overflow-wrap: anywhere; font-family: ui-monospace, Menlo, Consolas, monospace; }
.overview .state { color: var(--muted); text-align: right; }
.overview .state.answered { color: var(--answered); font-weight: 600; }
.overview .state.skipped { color: var(--skipped); font-weight: 600; }
.warning { margin: 1rem 1.2rem; color: #a1260d; font-weight: 600; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
"""

# Only textContent and DOM properties carry data into the page: never innerHTML.
_SCRIPT = r"""
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("alr-data").textContent);
  const ITEMS = DATA.items;
  const NAMES = DATA.class_names;
  const SKIP = DATA.skip;
  const $ = (id) => document.getElementById(id);
  let answers = {};      // sample_id -> class index (number) or SKIP
  let savedCsv = null;   // the CSV text last downloaded
  let index = 0;

  function keyFor(i) { return i < 9 ? String(i + 1) : (i === 9 ? "0" : null); }
  function labelOf(answer) { return answer === SKIP ? SKIP : NAMES[answer]; }
  function answeredCount() { return ITEMS.filter((it) => it.sample_id in answers).length; }

  function csvField(text) {
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }
  function csvText() {
    const lines = ["sample_id,label"];
    for (const item of ITEMS) {
      if (item.sample_id in answers) {
        lines.push(csvField(item.sample_id) + "," + csvField(labelOf(answers[item.sample_id])));
      }
    }
    return lines.join("\n") + "\n";
  }
  function isDirty() { return answeredCount() > 0 && csvText() !== savedCsv; }

  function load() {
    try {
      const stored = JSON.parse(localStorage.getItem(DATA.storage_key) || "null");
      if (!stored || typeof stored !== "object") return;
      const known = new Set(ITEMS.map((it) => it.sample_id));
      for (const [id, value] of Object.entries(stored.answers || {})) {
        if (known.has(id) && (value === SKIP || (Number.isInteger(value) && value >= 0 && value < NAMES.length))) {
          answers[id] = value;
        }
      }
      if (typeof stored.saved_csv === "string") savedCsv = stored.saved_csv;
    } catch (error) { /* storage unavailable or corrupt: start empty */ }
  }
  function persist() {
    try {
      localStorage.setItem(DATA.storage_key, JSON.stringify({ answers: answers, saved_csv: savedCsv }));
    } catch (error) { /* storage unavailable: answers live until the page closes */ }
  }

  // --- static parts: class buttons and the overview list
  const classButtons = NAMES.map((name, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "class-button";
    button.dataset.classIndex = String(i);
    const key = keyFor(i);
    if (key !== null) {
      const kbd = document.createElement("kbd");
      kbd.textContent = key;
      button.appendChild(kbd);
      button.setAttribute("aria-keyshortcuts", key);
    }
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    button.appendChild(label);
    const tags = document.createElement("span");
    tags.className = "tags";
    button.appendChild(tags);
    button.addEventListener("click", () => answer(i));
    $("classes").appendChild(button);
    return button;
  });
  $("skip").setAttribute("aria-keyshortcuts", "S");
  $("prev").setAttribute("aria-keyshortcuts", "ArrowLeft P");
  $("next").setAttribute("aria-keyshortcuts", "ArrowRight N");

  const overviewButtons = ITEMS.map((item, i) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    const sid = document.createElement("span");
    sid.className = "sid";
    sid.textContent = (i + 1) + ". " + item.sample_id;
    const state = document.createElement("span");
    state.className = "state";
    button.append(sid, state);
    button.addEventListener("click", () => go(i));
    li.appendChild(button);
    $("overview").appendChild(li);
    return button;
  });

  function tag(text) {
    const span = document.createElement("span");
    span.className = "tag";
    span.textContent = text;
    return span;
  }

  // --- rendering
  function render() {
    const done = answeredCount();
    $("progress").textContent = done + " / " + ITEMS.length + " answered";
    $("progress-bar").value = done;
    const status = $("save-status");
    if (isDirty()) {
      status.textContent = done === ITEMS.length ? "all answered \u2014 unsaved" : "unsaved answers";
      status.className = "unsaved";
    } else if (savedCsv !== null) {
      status.textContent = "saved as " + DATA.filename;
      status.className = "";
    } else {
      status.textContent = "";
      status.className = "";
    }
    overviewButtons.forEach((button, i) => {
      const item = ITEMS[i];
      const state = button.querySelector(".state");
      const given = answers[item.sample_id];
      state.textContent = given === undefined ? "\u2014" : labelOf(given);
      state.className = "state" + (given === undefined ? "" : (given === SKIP ? " skipped" : " answered"));
      button.setAttribute("aria-label", "Image " + (i + 1) + ", " + item.sample_id + ": " +
        (given === undefined ? "not answered" : labelOf(given)));
      if (i === index) button.setAttribute("aria-current", "true"); else button.removeAttribute("aria-current");
    });
    if (ITEMS.length === 0) {
      $("card").textContent = "No images were queried in this round.";
      return;
    }
    const item = ITEMS[index];
    $("position").textContent = String(index + 1);
    const image = $("image");
    if (image.getAttribute("src") !== item.image) image.src = item.image;
    image.alt = "Queried image " + (index + 1) + " of " + ITEMS.length + ", sample " + item.sample_id;
    $("sample-id").textContent = item.sample_id;
    $("current-label").textContent = NAMES[item.current_label];
    $("suggestion").textContent = NAMES[item.suggested_label] + " (" + (100 * item.confidence).toFixed(1) + "% confident)";
    const given = answers[item.sample_id];
    const answerBox = $("answer");
    answerBox.textContent = given === undefined ? "not answered" : (given === SKIP ? "unsure / skip" : NAMES[given]);
    answerBox.className = "answer" + (given === undefined ? "" : (given === SKIP ? " skipped" : " answered"));
    classButtons.forEach((button, i) => {
      button.setAttribute("aria-pressed", String(given === i));
      const tags = button.querySelector(".tags");
      tags.replaceChildren();
      if (i === item.current_label) tags.appendChild(tag("current"));
      if (i === item.suggested_label) tags.appendChild(tag("model"));
    });
    $("skip").setAttribute("aria-pressed", String(given === SKIP));
    $("prev").disabled = index === 0;
    $("next").disabled = index === ITEMS.length - 1;
    overviewButtons[index].scrollIntoView({ block: "nearest" });
  }

  function fitImage() {
    const image = $("image");
    const natural = image.naturalWidth;
    if (!natural) return;
    const width = Math.max(DATA.min_width, Math.min(natural, DATA.max_width));
    image.style.width = width + "px";
    image.style.imageRendering = natural < width ? "pixelated" : "auto";
  }

  // --- actions
  function go(i) {
    if (ITEMS.length === 0) return;
    index = Math.max(0, Math.min(ITEMS.length - 1, i));
    render();
  }
  function answer(value) {
    if (ITEMS.length === 0) return;
    answers[ITEMS[index].sample_id] = value;
    persist();
    go(index + 1);
  }
  function save() {
    const text = csvText();
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = DATA.filename;
    link.style.display = "none";
    document.body.appendChild(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(url); link.remove(); }, 2000);
    savedCsv = text;
    persist();
    render();
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const key = event.key;
    if (/^[0-9]$/.test(key)) {
      const i = key === "0" ? 9 : Number(key) - 1;
      if (i < NAMES.length) { event.preventDefault(); answer(i); }
      return;
    }
    if (key === "s" || key === "S") { event.preventDefault(); answer(SKIP); }
    else if (key === "ArrowRight" || key === "n" || key === "N") { event.preventDefault(); go(index + 1); }
    else if (key === "ArrowLeft" || key === "p" || key === "P") { event.preventDefault(); go(index - 1); }
  });
  $("skip").addEventListener("click", () => answer(SKIP));
  $("prev").addEventListener("click", () => go(index - 1));
  $("next").addEventListener("click", () => go(index + 1));
  $("save").addEventListener("click", save);
  $("image").addEventListener("load", fitImage);
  window.addEventListener("beforeunload", (event) => {
    if (isDirty()) { event.preventDefault(); event.returnValue = ""; }
  });

  load();
  const firstOpen = ITEMS.findIndex((it) => !(it.sample_id in answers));
  index = firstOpen === -1 ? 0 : firstOpen;
  render();
})();
"""
