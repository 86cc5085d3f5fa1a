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
  let storageFailed = false;  // the browser keeps no answers (storage blocked by policy, or full): say so

  function keyFor(i) { return i < 9 ? String(i + 1) : (i === 9 ? "0" : null); }
  function labelOf(answer) { return answer === SKIP ? SKIP : NAMES[answer]; }
  function answeredCount() { return ITEMS.filter((it) => it.item_id in answers).length; }
  function nextOpen(from) {  // the first unanswered item after `from`, wrapping around; -1 when none is left
    for (let step = 1; step <= ITEMS.length; step++) {
      const i = (from + step) % ITEMS.length;
      if (!(ITEMS[i].item_id in answers)) return i;
    }
    return -1;
  }

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
  // the note under the bar: a warning, unless `calm` (answers loaded: what was left out is for reading, not alarm)
  function say(text, calm = false) {
    $("save-note").textContent = text;
    $("save-note").classList.toggle("calm", calm);
  }
  function isDirty() { return answeredCount() > 0 && csvText() !== savedCsv; }

  function storageKey() { return TEAM ? DATA.storage_key + ":annotator:" + annotator : DATA.storage_key; }
  function nameMissing() { return TEAM && annotator === ""; }

  function stored() {  // this page's (this name's) stored record, or null; throws when storage is blocked
    const text = localStorage.getItem(storageKey());
    let record = null;
    try { record = JSON.parse(text || "null"); } catch (error) { /* corrupt: written over by the next answer */ }
    return record && typeof record === "object" ? record : null;
  }
  function validAnswers(map) {  // the stored answers that name a queried item and a class (or SKIP)
    const known = new Set(ITEMS.map((it) => it.item_id));
    return Object.fromEntries(Object.entries(map && typeof map === "object" ? map : {}).filter(([id, value]) =>
      known.has(id) && (value === SKIP || (Number.isInteger(value) && value >= 0 && value < NAMES.length))));
  }
  function load() {
    answers = {};
    savedCsv = null;
    if (nameMissing()) return;
    try {
      const record = stored();
      if (record === null) return;
      answers = validAnswers(record.answers);
      if (typeof record.saved_csv === "string") savedCsv = record.saved_csv;
    } catch (error) { storageFailed = true; }
  }
  // `changed`: the items this tab just answered. The other answers are taken from storage first:
  // another tab of this page (the file opened twice) may have answered since, and writing this tab's
  // whole set would erase those.
  function persist(changed) {
    try {
      const record = stored();
      if (record !== null) {
        const mine = storageFailed ? answers : Object.fromEntries(changed.map((id) => [id, answers[id]]));
        answers = Object.assign(validAnswers(record.answers), mine);
      }
      localStorage.setItem(storageKey(), JSON.stringify({ answers: answers, saved_csv: savedCsv }));
      storageFailed = false;
    } catch (error) { storageFailed = true; }
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
    } else if (storageFailed && isDirty()) {
      status.textContent = "this browser is NOT keeping your answers (storage blocked or full): save often";
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
    showInOverview(overviewButtons[index]);
  }
  function showInOverview(button) {  // scrolls the list alone: scrollIntoView would move the page off the buttons
    const list = $("overview").parentElement;
    const shown = list.getBoundingClientRect(), place = button.getBoundingClientRect();
    if (place.top < shown.top) list.scrollTop -= shown.top - place.top;
    else if (place.bottom > shown.bottom) list.scrollTop += place.bottom - shown.bottom;
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
    const wasOpen = !(ITEMS[index].item_id in answers);
    answers[ITEMS[index].item_id] = value;
    persist([ITEMS[index].item_id]);
    say("");  // it spoke of the last save or load
    // an answer to an open image goes on to the next open one (past answers loaded from a file); a changed
    // answer, to the next image, which is being checked too; after the last image, back to one left open
    const open = nextOpen(index);
    go(open !== -1 && (wasOpen || index === ITEMS.length - 1) ? open : index + 1);
  }
  function save() {
    if (nameMissing()) { askForName(); return; }
    persist([]);  // with what another tab of this page answered
    const open = ITEMS.length - answeredCount();
    if (open === ITEMS.length) {
      say("Nothing to save yet: answer an image first.");
      render();
      return;
    }
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
    persist([]);
    render();
    say((open ? open + " of " + ITEMS.length + " images have no answer and are not in the file (u goes to the next " +
      "one). " : "") + "Each save downloads a new file: keep the newest one, which your browser may have named " +
      DATA.filename.replace(/\.csv$/, " (1).csv") + " or the like.");
  }

  // --- loading an answers file: this round answered on another computer, or for an earlier query of the round
  function csvRows(text) {  // RFC 4180, as alr reads the file: a quoted field may hold commas, "" and line breaks
    const rows = [];
    let row = [], field = "", quoted = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"' && field === "") quoted = true;
      else if (c === ",") { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field); rows.push(row); row = []; field = "";
      } else field += c;
    }
    if (field !== "" || row.length) { row.push(field); rows.push(row); }
    return rows.filter((r) => r.some((f) => f.trim() !== ""));
  }
  function answerOf(label) {  // as alr reads a label: skip, a class name (either Unicode form), else a class index
    const text = label.trim().normalize("NFC");
    if (text.toLowerCase() === SKIP) return SKIP;
    const named = NAMES.findIndex((name) => name.normalize("NFC") === text);
    if (named !== -1) return named;
    return /^[0-9]+$/.test(text) && Number(text) < NAMES.length ? Number(text) : null;
  }
  function counted(count, noun) { return count + " " + noun + (count === 1 ? "" : "s"); }
  // The file's answers fill the images not answered here; an answer given here is newer than a file, so it stays.
  // Returns what the expert should know: how many were loaded, and every row that was not.
  function loadAnswers(text, fileName) {
    const rows = csvRows(text);  // TextDecoder took off a byte order mark
    const columns = rows.length ? rows[0].map((c) => c.trim()) : [];
    const idAt = columns.indexOf("item_id"), labelAt = columns.indexOf("label"), byAt = columns.indexOf("annotator");
    if (idAt === -1 || labelAt === -1) {
      const semicolons = columns.length === 1 && columns[0].includes(";");  // Excel's CSV where ',' is the decimal mark
      return "Nothing loaded: " + fileName + " is not a file saved from an annotation page (its first line " +
        "should be item_id,label" + (TEAM ? ",annotator" : "") + (semicolons ? ", separated by commas, not " +
        "semicolons" : "") + ").";
    }
    const onPage = new Set(ITEMS.map((it) => it.item_id));
    const found = {}, contradicted = new Set();
    let notOnPage = 0, notClasses = 0, othersAnswers = 0;
    for (const row of rows.slice(1)) {
      if (TEAM && byAt !== -1 && (row[byAt] || "").trim() !== annotator) { othersAnswers++; continue; }
      const id = (row[idAt] || "").trim(), value = answerOf(row[labelAt] || "");
      if (!onPage.has(id)) { notOnPage++; continue; }
      if (value === null) { notClasses++; continue; }
      if (id in found && found[id] !== value) contradicted.add(id);
      found[id] = value;
    }
    contradicted.forEach((id) => delete found[id]);
    persist([]);  // first what another tab of this page answered (a frozen tab missed its storage events): it stays
    const loaded = [];
    let differing = 0, already = 0;
    for (const [id, value] of Object.entries(found)) {
      if (!(id in answers)) { answers[id] = value; loaded.push(id); }
      else if (answers[id] !== value) differing++;
      else already++;
    }
    persist(loaded);
    const open = ITEMS.length - answeredCount();
    const left = [];
    if (already) left.push(counted(already, "answer") + " given here already");
    if (rows.length === 1) left.push("the file holds no answers, only its first line");
    if (notOnPage) {
      left.push(counted(notOnPage, "answer") + " to images not on this page (another round's, or an earlier query " +
        "of this round's: the file you save leaves them out)");
    }
    if (differing) {
      left.push(counted(differing, "answer") + " at odds with an answer given here (the one given here stays)");
    }
    if (contradicted.size) left.push(counted(contradicted.size, "image") + " answered twice, differently");
    if (notClasses) left.push(counted(notClasses, "label") + " naming no class");
    if (othersAnswers) {
      left.push(counted(othersAnswers, "answer") + " of other experts (this page loads " + annotator + "'s)");
    }
    const head = loaded.length ? "Loaded " + counted(loaded.length, "answer") + " from " : "Nothing loaded from ";
    return head + fileName + (open ? ", " + counted(open, "image") + " still to answer." : ", every image answered.") +
      (left.length ? " Not loaded: " + left.join("; ") + "." : "") +
      (loaded.length ? " Save to write them into " + DATA.filename + "." : "");
  }
  function chooseFile() {
    if (nameMissing()) { askForName(); return; }
    $("load-file").click();
  }
  async function fileChosen(event) {
    const file = event.target.files[0];
    event.target.value = "";  // the same file can be chosen again
    if (!file || nameMissing()) return;
    let text;
    try { text = new TextDecoder("utf-8", { fatal: true }).decode(await file.arrayBuffer()); }
    catch (error) {  // Excel's "CSV" on Windows: cp1252, whose accented class names would read as no class
      say("Nothing loaded: " + file.name + " is not UTF-8 text; save it as \"CSV UTF-8\" (or load the file the " +
        "page saved).");
      return;
    }
    const before = answeredCount();
    const note = loadAnswers(text, file.name);
    const firstOpen = ITEMS.findIndex((it) => !(it.item_id in answers));
    go(firstOpen === -1 ? index : firstOpen);
    say(note, answeredCount() > before);
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const key = event.key;
    if (event.repeat && /^[0-9sS]$/.test(key)) { event.preventDefault(); return; }  // a held key answers one image
    if (/^[0-9]$/.test(key)) {
      const i = key === "0" ? 9 : Number(key) - 1;
      if (i < NAMES.length) { event.preventDefault(); answer(i); }
      return;
    }
    if (key === "s" || key === "S") { event.preventDefault(); answer(SKIP); }
    else if ((key === "u" || key === "U") && nextOpen(index) !== -1) { event.preventDefault(); go(nextOpen(index)); }
    else if (key === "ArrowRight" || key === "n" || key === "N") { event.preventDefault(); go(index + 1); }
    else if (key === "ArrowLeft" || key === "p" || key === "P") { event.preventDefault(); go(index - 1); }
  });
  $("skip").addEventListener("click", () => answer(SKIP));
  $("prev").addEventListener("click", () => go(index - 1));
  $("next").addEventListener("click", () => go(index + 1));
  $("save").addEventListener("click", save);
  $("load").addEventListener("click", chooseFile);
  $("load-file").addEventListener("change", fileChosen);
  $("image").addEventListener("load", fitImage);
  window.addEventListener("storage", (event) => {  // another tab of this page answered: show it here too
    if (event.key === storageKey() && !nameMissing()) { load(); render(); }
  });
  window.addEventListener("beforeunload", (event) => {
    if (isDirty()) { event.preventDefault(); event.returnValue = ""; }
  });

  function startAnswering() {  // this name's answers (the page's, alone), at the first unanswered item
    load();
    say("");  // it spoke of another name's save
    const firstOpen = ITEMS.findIndex((it) => !(it.item_id in answers));
    index = firstOpen === -1 ? 0 : firstOpen;
    render();
  }
  if (TEAM) {
    $("name-box").hidden = false;
    $("team-help").hidden = false;
    $("annotator").addEventListener("change", (event) => {
      const name = event.target.value.trim();
      if (annotator !== "" && name !== annotator && isDirty() && !window.confirm(
        "Switch from " + annotator + " to " + name + "? " + annotator + (storageFailed
          ? "'s unsaved answers are LOST: this browser is not keeping answers; cancel and save them first."
          : "'s unsaved answers stay in this browser, shown again when " + annotator + " is typed."))) {
        event.target.value = annotator;
        return;
      }
      annotator = name;
      event.target.blur();  // the answer keys work at once
      startAnswering();
    });
  }
  startAnswering();
})();
