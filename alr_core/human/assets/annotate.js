// Only textContent and DOM properties carry data into the page: never innerHTML.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("alr-data").textContent);
  const ITEMS = DATA.items;
  const NAMES = DATA.class_names;
  const SKIP = DATA.skip;
  const TEAM = DATA.annotators > 1;  // then each expert types a name, and answers are kept per name
  const $ = (id) => document.getElementById(id);
  let answers = {};      // item_id -> class index (number) or SKIP
  let savedCsv = null;   // the CSV text last downloaded
  let index = 0;
  let annotator = "";    // TEAM: the name typed; answers wait for it

  function keyFor(i) { return i < 9 ? String(i + 1) : (i === 9 ? "0" : null); }
  function labelOf(answer) { return answer === SKIP ? SKIP : NAMES[answer]; }
  function answeredCount() { return ITEMS.filter((it) => it.item_id in answers).length; }

  function csvField(text) {
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }
  function csvText() {
    const lines = [TEAM ? "item_id,label,annotator" : "item_id,label"];
    for (const item of ITEMS) {
      if (item.item_id in answers) {
        lines.push(csvField(item.item_id) + "," + csvField(labelOf(answers[item.item_id])) +
                   (TEAM ? "," + csvField(annotator) : ""));
      }
    }
    return lines.join("\n") + "\n";
  }
  function isDirty() { return answeredCount() > 0 && csvText() !== savedCsv; }

  function storageKey() { return TEAM ? DATA.storage_key + ":annotator:" + annotator : DATA.storage_key; }
  function nameMissing() { return TEAM && annotator === ""; }

  function load() {
    answers = {};
    savedCsv = null;
    if (nameMissing()) return;
    try {
      const stored = JSON.parse(localStorage.getItem(storageKey()) || "null");
      if (!stored || typeof stored !== "object") return;
      const known = new Set(ITEMS.map((it) => it.item_id));
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
      localStorage.setItem(storageKey(), JSON.stringify({ answers: answers, saved_csv: savedCsv }));
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
    const id = document.createElement("span");
    id.className = "item-id";
    id.textContent = (i + 1) + ". " + item.item_id;
    const state = document.createElement("span");
    state.className = "state";
    button.append(id, state);
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
    if (nameMissing()) {
      status.textContent = "type your name to start";
      status.className = "unsaved";
    } else if (isDirty()) {
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
      const given = answers[item.item_id];
      state.textContent = given === undefined ? "\u2014" : labelOf(given);
      state.className = "state" + (given === undefined ? "" : (given === SKIP ? " skipped" : " answered"));
      button.setAttribute("aria-label", "Image " + (i + 1) + ", " + item.item_id + ": " +
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
    image.alt = "Queried image " + (index + 1) + " of " + ITEMS.length + ", item " + item.item_id;
    $("item-id").textContent = item.item_id;
    $("current-label").textContent = NAMES[item.current_label];
    $("suggestion").textContent = NAMES[item.suggested_label] + " (" + (100 * item.confidence).toFixed(1) + "% confident)";
    const given = answers[item.item_id];
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
  function askForName() {
    render();
    $("annotator").focus();
  }
  function answer(value) {
    if (ITEMS.length === 0) return;
    if (nameMissing()) { askForName(); return; }
    answers[ITEMS[index].item_id] = value;
    persist();
    go(index + 1);
  }
  function save() {
    if (nameMissing()) { askForName(); return; }
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

  function startAnswering() {  // this name's answers (the page's, alone), at the first unanswered item
    load();
    const firstOpen = ITEMS.findIndex((it) => !(it.item_id in answers));
    index = firstOpen === -1 ? 0 : firstOpen;
    render();
  }
  if (TEAM) {
    $("name-box").hidden = false;
    $("team-help").hidden = false;
    $("annotator").addEventListener("change", (event) => {
      annotator = event.target.value.trim();
      event.target.blur();  // the answer keys work at once
      startAnswering();
    });
  }
  startAnswering();
})();
