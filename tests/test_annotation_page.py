"""The oracle's annotation page: what render_page embeds (no browser), and a headless-Chromium
run that answers with clicks and keys, saves, and checks the downloaded CSV byte for byte.

The browser is driven through chromedriver's W3C WebDriver HTTP API with urllib, so no client
library is needed. Without /usr/bin/chromium or /usr/bin/chromedriver (Debian packages
``chromium`` and ``chromium-driver``) the browser tests are skipped, unless the environment
variable CI is set: then they fail. ALR_SCREENSHOT=PATH also copies the screenshot to PATH.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from builders import in_ci
from PIL import Image, ImageDraw, ImageFilter

from alr_core.human.annotation import item_ids, read_answers
from alr_core.human.page import render_page

pytestmark = pytest.mark.e2e  # `pytest -m "not e2e"` skips the slow end-to-end runs

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element identifier
ARROW_LEFT, ARROW_RIGHT = "\ue012", "\ue014"  # WebDriver key codes

CLASS_NAMES = ["Basophil", 'Neutro,phil "N"', "Lymphocyte", "Monocyte"]
EVIL_ID = 'x</script><script>document.title="pwned"</script><!--'


def tiny_png(color: tuple[int, int, int], size: int = 8) -> bytes:
    image = Image.new("RGB", (size, size), color)
    image.putpixel((0, 0), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def item(item_id: str, current: int, suggested: int, confidence: float, png: bytes) -> dict:
    return {"item_id": item_id, "current_label": current, "suggested_label": suggested,
            "confidence": confidence, "image_png": png}


ITEMS = [
    item("cell/001", 0, 1, 0.875, tiny_png((200, 40, 40))),
    item(EVIL_ID, 2, 2, 0.5, tiny_png((40, 200, 40))),
    item("cell,003", 3, 0, 0.123, tiny_png((40, 40, 200))),
    item("cell/004", 1, 3, 0.99, tiny_png((120, 120, 120))),
]


class _Scripts(HTMLParser):
    """The <script> elements as a browser's tokenizer splits them: (attributes, text)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict, str]] = []
        self.attributes: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self._open = None

    def handle_starttag(self, tag, attrs):
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag == "script":
            self._open = (dict(attrs), [])

    def handle_data(self, data):
        if self._open is not None:
            self._open[1].append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._open is not None:
            self.scripts.append((self._open[0], "".join(self._open[1])))
            self._open = None


def parse(page: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(page)
    parser.close()
    return parser


# --- without a browser

def test_page_is_self_contained_and_embeds_the_items_safely():
    page = render_page(ITEMS[:3], CLASS_NAMES, 1, "round_1.csv")

    assert page.startswith("<!DOCTYPE html>")
    assert page.isascii()  # however the caller encodes it, the bytes are the same
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/|<link|@import", page, re.IGNORECASE)
    assert "url(" not in page  # no CSS url(): the only images are the data URLs the script sets
    assert "default-src 'none'" in page  # the CSP: no fetch, no external script, image, font
    for entry in ITEMS[:3]:
        assert "data:image/png;base64," + base64.b64encode(entry["image_png"]).decode() in page

    parsed = parse(page)
    assert len(parsed.scripts) == 2  # the data and the code: the item id opened none
    assert page.lower().count("<script") == 2 and page.lower().count("</script") == 2
    assert "<!--" not in page and "pwned" in page and EVIL_ID not in page
    (data_attrs, data_text), (code_attrs, _code) = parsed.scripts
    assert data_attrs == {"type": "application/json", "id": "alr-data"} and "src" not in code_attrs
    assert not any(name in ("src", "href") for _tag, name, _value in parsed.attributes)
    assert not re.search(r"[<>&]", data_text)

    data = json.loads(data_text)
    assert data["class_names"] == CLASS_NAMES
    assert data["round"] == 1 and data["filename"] == "round_1.csv"
    assert [i["item_id"] for i in data["items"]] == ["cell/001", EVIL_ID, "cell,003"]
    assert [(i["current_label"], i["suggested_label"], i["confidence"]) for i in data["items"]] == [
        (0, 1, 0.875), (2, 2, 0.5), (3, 0, 0.123)]
    assert data["storage_key"].startswith("alr-annotation:round-1:round_1.csv:")
    assert "annotations/round_1.csv" in page and "dvc repro" in page


def test_values_are_never_taken_for_template_markers():
    page = render_page([item("__SCRIPT__", 0, 0, 0.5, tiny_png((0, 0, 0)))], ["__DATA__", "b"], 2, "__STYLE__.csv")
    data_text = parse(page).scripts[0][1]
    assert json.loads(data_text)["items"][0]["item_id"] == "__SCRIPT__"
    assert json.loads(data_text)["class_names"] == ["__DATA__", "b"]


def test_storage_key_changes_with_the_items():
    key = lambda items: json.loads(parse(render_page(items, CLASS_NAMES, 1, "r.csv")).scripts[0][1])["storage_key"]  # noqa: E731
    assert key(ITEMS[:2]) == key(ITEMS[:2]) != key(ITEMS[:3])


@pytest.mark.parametrize("change, message", [
    (lambda items, names: (items + [dict(items[0])], names), "repeats"),
    (lambda items, names: ([{**items[0], "current_label": 4}], names), r"current_label is 4"),
    (lambda items, names: ([{**items[0], "suggested_label": -1}], names), "suggested_label"),
    (lambda items, names: ([{**items[0], "confidence": 1.5}], names), "confidence"),
    (lambda items, names: ([{**items[0], "image_png": b"GIF89a"}], names), "PNG"),
    (lambda items, names: ([{k: v for k, v in items[0].items() if k != "item_id"}], names), "lacks"),
    (lambda items, names: ([{**items[0], "item_id": ""}], names), "item_id"),
    (lambda items, names: (items, names + ["skip"]), "skip"),
    (lambda items, names: (items, names + ["Skip"]), "the answer experts give to skip a sample"),
    (lambda items, names: (items, names + [" zero"]), "with spaces around it"),
    (lambda items, names: (items, names + [names[0]]), "repeats"),
    (lambda items, names: (items, []), "class_names"),
])
def test_invalid_input_is_refused(change, message):
    items, names = change([dict(i) for i in ITEMS[:2]], list(CLASS_NAMES))
    with pytest.raises(ValueError, match=message):
        render_page(items, names, 1, "round_1.csv")


@pytest.mark.parametrize("filename", ["", "annotations/round_1.csv", "..", "a\\b.csv", "a\nb.csv"])
def test_answers_filename_must_be_a_bare_file_name(filename):
    with pytest.raises(ValueError, match="answers_filename"):
        render_page(ITEMS[:1], CLASS_NAMES, 1, filename)


@pytest.mark.parametrize("annotators", [0, 1.5, True])
def test_annotators_must_be_a_positive_integer(annotators):
    with pytest.raises(ValueError, match="annotators"):
        render_page(ITEMS[:1], CLASS_NAMES, 1, "round_1.csv", annotators)


def test_a_team_page_asks_for_names():
    data = lambda page: json.loads(parse(page).scripts[0][1])  # noqa: E731
    assert data(render_page(ITEMS[:1], CLASS_NAMES, 1, "round_1.csv"))["annotators"] == 1
    team = render_page(ITEMS[:1], CLASS_NAMES, 1, "round_1.csv", 3)
    assert data(team)["annotators"] == 3
    assert '<input id="annotator"' in team and "type your name first" in team


# --- in headless Chromium, through the W3C WebDriver HTTP API

class WebDriverError(RuntimeError):
    pass


class WebDriver:
    """The few W3C WebDriver commands the tests need, over plain HTTP."""

    _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost: no proxy

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session_id = None

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 30):
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            try:
                detail = json.loads(detail)["value"]
                detail = f"{detail.get('error')}: {detail.get('message', '').splitlines()[0]}"
            except (ValueError, KeyError, AttributeError, IndexError):
                pass
            raise WebDriverError(f"{method} {path}: HTTP {error.code}: {detail}") from None

    def session(self, method: str, path: str = "", body: dict | None = None, timeout: float = 30):
        return self.call(method, f"/session/{self.session_id}{path}", body, timeout)

    def start(self, capabilities: dict) -> None:
        value = self.call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}}, timeout=60)
        self.session_id = value["sessionId"]

    def quit(self) -> None:
        if self.session_id is not None:
            try:
                self.session("DELETE", timeout=20)
            finally:
                self.session_id = None

    def open(self, url: str) -> None:
        self.session("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        return self.session("POST", "/element", {"using": "css selector", "value": css})[ELEMENT_KEY]

    def click(self, css: str) -> None:
        self.session("POST", f"/element/{self.find(css)}/click")

    def text(self, css: str) -> str:
        return self.session("GET", f"/element/{self.find(css)}/text")

    def send_keys(self, css: str, text: str) -> None:
        """Element Send Keys: focuses the element, then types ``text``."""
        self.session("POST", f"/element/{self.find(css)}/value", {"text": text})

    def press(self, *keys: str) -> None:
        """Key presses through the Actions API, to whatever element has the focus."""
        actions = [{"type": kind, "value": key} for key in keys for kind in ("keyDown", "keyUp")]
        self.session("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})

    def execute(self, script: str, *args):
        return self.session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def set_viewport(self, width: int, height: int) -> None:
        """Size the window so that the page area is width x height CSS pixels."""
        self.session("POST", "/window/rect", {"width": width, "height": height})
        inner_width, inner_height = self.execute("return [window.innerWidth, window.innerHeight]")
        if (inner_width, inner_height) != (width, height):
            self.session("POST", "/window/rect", {"width": 2 * width - inner_width,
                                                  "height": 2 * height - inner_height})

    def move_pointer(self, x: int, y: int) -> None:
        self.session("POST", "/actions", {"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "origin": "viewport", "x": x, "y": y, "duration": 0}]}]})

    def screenshot(self) -> bytes:
        return base64.b64decode(self.session("GET", "/screenshot"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def browser(tmp_path):
    """A WebDriver session in headless Chromium whose downloads land in tmp_path/downloads."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        reason = (f"the browser test needs {' and '.join(missing)} "
                  "(Debian: apt-get install chromium chromium-driver)")
        if in_ci():
            pytest.fail(f"{reason}; CI is set, so a missing browser is a failure")
        pytest.skip(reason)

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    port = _free_port()
    log = tmp_path / "chromedriver.log"
    # its own process group: the teardown ends chromedriver and any Chromium it left behind
    driver_process = subprocess.Popen(
        [str(CHROMEDRIVER), f"--port={port}", f"--log-path={log}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    driver = WebDriver(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 15
        while True:
            if driver_process.poll() is not None:
                pytest.fail(f"chromedriver exited with {driver_process.returncode}; see {log}")
            try:
                if driver.call("GET", "/status", timeout=2).get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chromedriver did not become ready in 15 s; see {log}")
            time.sleep(0.1)
        driver.start({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": str(CHROMIUM),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                    f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1100,800",
                ],
                "prefs": {
                    "download.default_directory": str(downloads),
                    "download.prompt_for_download": False,
                    "download.directory_upgrade": True,
                    "profile.default_content_setting_values.automatic_downloads": 1,
                    "safebrowsing.enabled": False,
                },
            },
        })
        driver.set_viewport(1100, 800)
        driver.downloads = downloads
        yield driver
    finally:
        try:
            driver.quit()
        except (OSError, WebDriverError):
            pass
        _stop(driver_process)


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def wait_for_download(folder: Path, name: str, timeout: float = 10) -> Path:
    target = folder / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.exists() and not list(folder.glob("*.crdownload")):
            return target
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded within {timeout} s; {folder} holds "
                         f"{sorted(p.name for p in folder.iterdir())}")


BEFOREUNLOAD_PREVENTED = """
    const event = new Event("beforeunload", {cancelable: true});
    window.dispatchEvent(event);
    return event.defaultPrevented;
"""


def reload_showing(browser, progress: str) -> str:
    """Reload the page, and again until it shows ``progress`` (30 s at most); what it shows last.
    On a loaded machine a reloaded page may read storage before the last write of the page it
    replaced reaches it (a few times in full CI runs): a reload reads it again, and answers truly
    lost still fail the caller's assertion."""
    browser.session("POST", "/refresh")
    deadline = time.monotonic() + 30
    while browser.text("#progress") != progress and time.monotonic() < deadline:
        time.sleep(0.5)
        browser.session("POST", "/refresh")
    return browser.text("#progress")


def open_page(browser, tmp_path, items=ITEMS, class_names=CLASS_NAMES, annotators=1) -> Path:
    page = tmp_path / "annotate.html"
    page.write_text(render_page(items, class_names, 1, "round_1.csv", annotators), encoding="utf-8")
    browser.open(page.as_uri())
    return page


def cdp(browser, command: str, params: dict):
    return browser.session("POST", "/goog/cdp/execute", {"cmd": command, "params": params})


def test_answers_with_clicks_and_keys_and_saves_the_csv(browser, tmp_path):
    page = open_page(browser, tmp_path)

    assert browser.text("#progress") == "0 / 4 answered"
    assert browser.text("#item-id") == "cell/001"
    assert browser.text("#current-label") == "Basophil"
    assert browser.text("#suggestion") == 'Neutro,phil "N" (87.5% confident)'
    assert browser.text("#answer") == "not answered"

    browser.click('#classes button[data-class-index="1"]')  # cell/001 -> 'Neutro,phil "N"', then next
    assert browser.text("#item-id") == EVIL_ID  # shown as text: the id injected nothing
    assert browser.execute("return document.title") == "alr \u00b7 round 1 \u00b7 re-label queries"
    assert browser.execute("return document.scripts.length") == 2

    browser.press("s")  # EVIL_ID -> skip
    assert browser.text("#item-id") == "cell,003"
    browser.press("3")  # cell,003 -> Lymphocyte
    assert browser.text("#item-id") == "cell/004"
    browser.press(ARROW_LEFT)  # back to cell,003: its answer is shown, and can be changed
    assert (browser.text("#item-id"), browser.text("#answer")) == ("cell,003", "Lymphocyte")
    assert browser.execute("return document.querySelector('[aria-pressed=true]').dataset.classIndex") == "2"
    browser.press("4")  # cell,003 -> Monocyte, then next
    assert (browser.text("#item-id"), browser.text("#answer")) == ("cell/004", "not answered")
    browser.send_keys("body", "p")  # previous, through Element Send Keys
    assert (browser.text("#item-id"), browser.text("#answer")) == ("cell,003", "Monocyte")
    browser.press("n", ARROW_RIGHT)  # next; past the last item it stays
    assert browser.text("#item-id") == "cell/004"
    browser.press("9", "0")  # no 9th or 10th class: ignored
    assert browser.text("#progress") == "3 / 4 answered"
    assert browser.text("#save-status") == "unsaved answers"
    assert browser.execute(BEFOREUNLOAD_PREVENTED) is True  # leaving now would ask first

    browser.click("#overview li:nth-child(2) button")  # jump through the overview
    assert (browser.text("#item-id"), browser.text("#answer")) == (EVIL_ID, "unsure / skip")
    assert browser.text("#overview li:nth-child(3) button .state") == "Monocyte"

    browser.click("#save")
    saved = wait_for_download(browser.downloads, "round_1.csv")
    assert saved.read_bytes().decode("utf-8") == (
        "item_id,label\n"
        'cell/001,"Neutro,phil ""N"""\n'
        '"x</script><script>document.title=""pwned""</script><!--",skip\n'
        '"cell,003",Monocyte\n'
    )
    assert browser.text("#save-status") == "saved as round_1.csv"
    assert browser.execute(BEFOREUNLOAD_PREVENTED) is False
    # the file the browser saved is what oracle_relabel reads: item ids back to sample ids (one item
    # left open: partial)
    queried = pd.DataFrame({"item_id": [item["item_id"] for item in ITEMS], "sample_id": ["s1", "s2", "s3", "s4"]})
    accepted = read_answers(saved, queried, queried["sample_id"], CLASS_NAMES, True, page, 1)
    assert accepted.table[["sample_id", "label"]].values.tolist() == [
        ["s1", 1], ["s2", -1], ["s3", CLASS_NAMES.index("Monocyte")]]  # -1: skipped

    assert reload_showing(browser, "3 / 4 answered") == "3 / 4 answered"  # the answers survive a reload
    assert browser.text("#item-id") == "cell/004"  # it opens at the first unanswered item
    assert browser.text("#save-status") == "saved as round_1.csv"


def test_a_team_keeps_each_experts_answers_apart_on_one_browser(browser, tmp_path):
    page = open_page(browser, tmp_path, ITEMS[:3], annotators=2)
    assert browser.text("#save-status") == "type your name to start"
    browser.press("2")  # no name yet: nothing is answered, the name box takes the focus
    assert browser.text("#progress") == "0 / 3 answered"
    assert browser.execute("return document.activeElement.id") == "annotator"

    browser.send_keys("#annotator", "ana, MD\n")  # typing in the box answers nothing
    assert browser.text("#progress") == "0 / 3 answered"
    browser.click('#classes button[data-class-index="1"]')
    browser.press("s")
    assert browser.text("#progress") == "2 / 3 answered"
    browser.click("#save")
    saved = wait_for_download(browser.downloads, "round_1.csv")
    assert saved.read_bytes().decode("utf-8") == (
        "item_id,label,annotator\n"
        'cell/001,"Neutro,phil ""N""","ana, MD"\n'
        '"x</script><script>document.title=""pwned""</script><!--",skip,"ana, MD"\n'
    )
    saved.rename(tmp_path / "ana.csv")

    browser.execute("const box = document.getElementById('annotator'); box.value = '';")
    browser.send_keys("#annotator", "ben\n")  # a second expert on the same browser starts empty
    assert (browser.text("#progress"), browser.text("#item-id")) == ("0 / 3 answered", "cell/001")
    browser.press("4")
    browser.click("#save")
    saved = wait_for_download(browser.downloads, "round_1.csv")
    assert saved.read_bytes().decode("utf-8") == "item_id,label,annotator\ncell/001,Monocyte,ben\n"

    browser.session("POST", "/refresh")  # after a reload each name finds its own answers again
    assert browser.text("#save-status") == "type your name to start"
    browser.send_keys("#annotator", "ana, MD\n")
    # the reloaded page may read storage before the last writes of the page it replaced reach it (twice
    # in a full CI run): the name typed again reads it again; answers truly lost still fail below
    deadline = time.monotonic() + 30
    while browser.text("#progress") != "2 / 3 answered" and time.monotonic() < deadline:
        time.sleep(0.5)
        browser.execute("document.getElementById('annotator').value = '';")
        browser.send_keys("#annotator", "ana, MD\n")
    assert (browser.text("#progress"), browser.text("#item-id")) == ("2 / 3 answered", "cell,003")
    # the experts' files joined are one answers file for oracle_relabel
    joined = tmp_path / "round_1.csv"
    pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in (tmp_path / "ana.csv", saved)]).to_csv(
        joined, index=False)
    queried = pd.DataFrame({"item_id": [item["item_id"] for item in ITEMS[:3]], "sample_id": ["s1", "s2", "s3"]})
    accepted = read_answers(joined, queried, queried["sample_id"], CLASS_NAMES, True, page, 1, annotators=2)
    assert sorted(accepted.table[["sample_id", "label", "annotator"]].values.tolist()) == [
        ["s1", 1, "ana, MD"], ["s1", 3, "ben"], ["s2", -1, "ana, MD"]]


NOTE_CLASS = "return document.getElementById('save-note').className"


def load_file(browser, path: Path) -> str:
    """Chooses ``path`` in the page's Load answers dialog; the note the page then shows."""
    browser.send_keys("#load-file", str(path))
    deadline = time.monotonic() + 10
    while not browser.text("#save-note") and time.monotonic() < deadline:
        time.sleep(0.1)
    return browser.text("#save-note")


def test_loading_a_saved_file_fills_in_the_images_not_answered_here(browser, tmp_path):
    # the round asked again with other images: the file answers two of this page's, one it no longer
    # shows, and one with a label that names no class; one image was answered here already
    open_page(browser, tmp_path)
    browser.press("1")  # cell/001 -> Basophil, here
    earlier = tmp_path / "round_1 earlier.csv"
    earlier.write_bytes(("\ufeffitem_id,label\r\n"
                         "cell/001,Lymphocyte\r\n"  # at odds with the answer given here, which stays
                         '"cell,003","Neutro,phil ""N"""\r\n'
                         "cell/004,SKIP\r\n"
                         "r1-00ff00ff00,Monocyte\r\n"  # an image of the earlier query only
                         f'"{EVIL_ID.replace(chr(34), 2 * chr(34))}",Unicorn\r\n').encode())
    assert load_file(browser, earlier) == (
        "Loaded 2 answers from round_1 earlier.csv, 1 image still to answer. Not loaded: 1 answer to images not "
        "on this page (another round's, or an earlier query of this round's: the file you save leaves them out); "
        "1 answer at odds with an answer given here (the one given here stays); 1 label naming no class. "
        "Save to write them into round_1.csv.")
    assert (browser.text("#progress"), browser.text("#item-id")) == ("3 / 4 answered", EVIL_ID)  # the one left
    assert browser.text("#save-status") == "unsaved answers"
    assert browser.execute(NOTE_CLASS) == "save-note calm"  # answers loaded: not in the warning's red
    browser.press("2")
    assert browser.text("#save-note") == ""  # it spoke of the file
    reload_showing(browser, "4 / 4 answered")  # the loaded answers are kept in the browser like those given here
    browser.click("#save")
    assert wait_for_download(browser.downloads, "round_1.csv").read_text() == (
        "item_id,label\ncell/001,Basophil\n"
        f'"{EVIL_ID.replace(chr(34), 2 * chr(34))}","Neutro,phil ""N"""\n'
        '"cell,003","Neutro,phil ""N"""\ncell/004,skip\n')
    assert browser.text("#save-note").startswith("Each save downloads") and browser.execute(NOTE_CLASS) == "save-note"

    browser.execute("document.getElementById('save-note').textContent = '';")
    assert load_file(browser, earlier).startswith(  # loaded again: nothing new, and the page says why
        "Nothing loaded from round_1 earlier.csv, every image answered. Not loaded: 2 answers given here already; ")


def test_answering_goes_on_past_loaded_answers_and_a_changed_answer_to_the_next_image(browser, tmp_path):
    open_page(browser, tmp_path)
    (tmp_path / "old.csv").write_text('item_id,label\n"cell,003",Monocyte\n')
    load_file(browser, tmp_path / "old.csv")
    assert browser.text("#item-id") == "cell/001"
    browser.press("1")
    assert browser.text("#item-id") == EVIL_ID
    browser.press("2")  # the next image, cell,003, was answered by the file: on to the open one after it
    assert browser.text("#item-id") == "cell/004"
    browser.click("#overview li:nth-child(1) button")
    browser.press("3")  # a changed answer: on to the next image, to check it too
    assert (browser.text("#item-id"), browser.text("#answer")) == (EVIL_ID, 'Neutro,phil "N"')


def test_a_changed_answer_to_the_last_image_goes_back_to_one_left_open(browser, tmp_path):
    open_page(browser, tmp_path)
    browser.press("1")  # cell/001
    browser.click("#overview li:nth-child(4) button")
    browser.press("2")  # cell/004, the last image: back to the open one, EVIL_ID
    assert browser.text("#item-id") == EVIL_ID
    browser.click("#overview li:nth-child(4) button")
    browser.press("3")  # cell/004 changed: after the last image, back to one left open too
    assert (browser.text("#item-id"), browser.text("#answer")) == (EVIL_ID, "not answered")
    browser.press("4")
    assert browser.text("#item-id") == "cell,003"
    browser.press("1")  # the last open image: none is left, on to the next image
    assert (browser.text("#item-id"), browser.text("#progress")) == ("cell/004", "4 / 4 answered")


def test_a_file_from_a_spreadsheet_or_an_editor_loads_as_alr_reads_it(browser, tmp_path):
    # a byte order mark before a quoted header, bare CR line ends (Excel for Mac's "CSV (Macintosh)"),
    # a blank line, an answer given twice alike, a class index, a stray double quote inside a field
    # (a character, as for Python's csv), and a last line without a line end
    open_page(browser, tmp_path)
    hand = tmp_path / "hand.csv"
    hand.write_bytes(("\ufeff\"item_id\",\"label\"\r"
                      "cell/001,Basophil\r"
                      "\r"
                      "cell/004,3\r"
                      "cell/004,Monocyte\r"
                      'x"y,Monocyte\r'  # no image of this page
                      '"cell,003",4\r'  # 4 classes: no class has index 4
                      f'"{EVIL_ID.replace(chr(34), 2 * chr(34))}",Lymphocyte').encode())
    assert load_file(browser, hand) == (
        "Loaded 3 answers from hand.csv, 1 image still to answer. Not loaded: 1 answer to images not on this page "
        "(another round's, or an earlier query of this round's: the file you save leaves them out); 1 label naming "
        "no class. Save to write them into round_1.csv.")
    assert (browser.text("#progress"), browser.text("#item-id")) == ("3 / 4 answered", "cell,003")
    # the file input is emptied: choosing the same file again (edited, or to load it anew) is a change
    assert browser.execute("return document.getElementById('load-file').value") == ""
    browser.click("#save")
    assert wait_for_download(browser.downloads, "round_1.csv").read_text() == (
        f'item_id,label\ncell/001,Basophil\n"{EVIL_ID.replace(chr(34), 2 * chr(34))}",Lymphocyte\n'
        "cell/004,Monocyte\n")


def test_a_team_page_loads_a_file_without_names_and_names_written_loosely(browser, tmp_path):
    # a file of the round's one-expert page (no annotator column) is the name typed's; a joined file's
    # names and labels may have spaces around them, and a class name typed decomposed (E + U+0301)
    open_page(browser, tmp_path, ITEMS[:3], ["Basophil", "\u00c9osinophil", "Lymphocyte", "Monocyte"],
              annotators=2)
    browser.send_keys("#annotator", "ana\n")
    (tmp_path / "mine.csv").write_text("item_id,label\ncell/001,Basophil\n")
    assert load_file(browser, tmp_path / "mine.csv") == (
        "Loaded 1 answer from mine.csv, 2 images still to answer. Save to write them into round_1.csv.")
    browser.execute("document.getElementById('save-note').textContent = '';")
    (tmp_path / "joined.csv").write_text('item_id, label, annotator\n"cell,003", E\u0301osinophil , ana \n'
                                         '"cell,003", Lymphocyte, ben\n', encoding="utf-8")
    assert load_file(browser, tmp_path / "joined.csv") == (
        "Loaded 1 answer from joined.csv, 1 image still to answer. Not loaded: 1 answer of other experts (this page "
        "loads ana's). Save to write them into round_1.csv.")
    browser.click("#save")
    assert wait_for_download(browser.downloads, "round_1.csv").read_text(encoding="utf-8") == (
        'item_id,label,annotator\ncell/001,Basophil,ana\n"cell,003",\u00c9osinophil,ana\n')


@pytest.mark.parametrize("content, note", [
    (b"sample_id,label\ns1,Basophil\n", "Nothing loaded: other.csv is not a file saved from an annotation page "
                                         "(its first line should be item_id,label)."),
    (b"item_id;label\ncell/001;Basophil\n", "Nothing loaded: other.csv is not a file saved from an annotation page "
                                             "(its first line should be item_id,label, separated by commas, not "
                                             "semicolons)."),
    (b"item_id,label\r\n", "Nothing loaded from other.csv, 4 images still to answer. Not loaded: the file holds no "
                           "answers, only its first line."),
    ("item_id,label\ncell/001,Basophil\ncell/004,Anämie\n".encode("cp1252"),
     'Nothing loaded: other.csv is not UTF-8 text; save it as "CSV UTF-8" (or load the file the page saved).'),
])
def test_a_file_the_page_cannot_load_says_why(browser, tmp_path, content, note):
    open_page(browser, tmp_path)
    (tmp_path / "other.csv").write_bytes(content)
    assert load_file(browser, tmp_path / "other.csv") == note
    assert browser.execute(NOTE_CLASS) == "save-note"  # nothing loaded: a warning
    assert browser.text("#progress") == "0 / 4 answered"


def test_loading_in_a_tab_that_missed_the_other_tabs_answers_keeps_them(browser, tmp_path):
    first, second = open_in_two_tabs(browser, tmp_path, deaf_second=True)
    browser.press("1")  # the first tab: cell/001 -> Basophil
    browser.session("POST", "/window", {"handle": second})
    assert browser.text("#progress") == "0 / 4 answered"  # a frozen tab: it missed the storage event
    (tmp_path / "old.csv").write_text("item_id,label\ncell/001,Monocyte\ncell/004,Monocyte\n")
    assert load_file(browser, tmp_path / "old.csv").startswith(
        "Loaded 1 answer from old.csv, 2 images still to answer. Not loaded: 1 answer at odds with an answer given "
        "here (the one given here stays).")
    browser.click("#save")
    assert wait_for_download(browser.downloads, "round_1.csv").read_text() == (
        "item_id,label\ncell/001,Basophil\ncell/004,Monocyte\n")


def test_a_team_page_loads_the_answers_of_the_name_typed(browser, tmp_path):
    open_page(browser, tmp_path, ITEMS[:3], annotators=2)
    joined = tmp_path / "round_1.csv"
    joined.write_text("item_id,label,annotator\n"
                      "cell/001,Basophil,ana\n"
                      "cell/001,Monocyte,ben\n"
                      '"cell,003",Lymphocyte,ana\n'
                      '"cell,003",Monocyte,ana\n')  # one expert, two answers: neither is taken
    browser.click("#load")  # no name yet: nothing is loaded, the name box takes the focus
    assert browser.execute("return document.activeElement.id") == "annotator"
    browser.send_keys("#annotator", "ana\n")
    assert load_file(browser, joined) == (
        "Loaded 1 answer from round_1.csv, 2 images still to answer. Not loaded: 1 image answered twice, "
        "differently; 1 answer of other experts (this page loads ana's). Save to write them into round_1.csv.")
    browser.click("#save")
    assert wait_for_download(browser.downloads, "round_1.csv").read_text() == (
        "item_id,label,annotator\ncell/001,Basophil,ana\n")


def test_a_team_page_saves_nothing_before_a_name_and_trims_the_name(browser, tmp_path):
    open_page(browser, tmp_path, ITEMS[:3], annotators=2)
    browser.click("#save")  # no name yet: nothing is saved, the name box takes the focus
    assert browser.execute("return document.activeElement.id") == "annotator"
    assert browser.text("#save-status") == "type your name to start"
    browser.send_keys("#annotator", "   \n")  # blanks are no name
    browser.press("2")
    assert browser.text("#progress") == "0 / 3 answered"
    assert browser.execute("return document.activeElement.id") == "annotator"
    browser.execute("document.getElementById('annotator').value = '';")
    browser.send_keys("#annotator", "  ben \n")
    browser.press("4")
    browser.click("#save")
    saved = wait_for_download(browser.downloads, "round_1.csv")
    assert saved.read_bytes().decode("utf-8") == "item_id,label,annotator\ncell/001,Monocyte,ben\n"


def test_a_held_key_answers_one_image(browser, tmp_path):
    open_page(browser, tmp_path)
    for key, code, number in (("1", "Digit1", 49), ("s", "KeyS", 83)):
        typed = {"key": key, "code": code, "text": key, "windowsVirtualKeyCode": number}
        cdp(browser, "Input.dispatchKeyEvent", {"type": "keyDown", **typed})
        for _ in range(3):  # what the system sends while the key is held down
            cdp(browser, "Input.dispatchKeyEvent", {"type": "keyDown", "autoRepeat": True, **typed})
        cdp(browser, "Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code,
                                                 "windowsVirtualKeyCode": number})  # fmt: skip
    assert (browser.text("#progress"), browser.text("#item-id")) == ("2 / 4 answered", "cell,003")


def open_in_two_tabs(browser, tmp_path, deaf_second: bool = False) -> tuple[str, str]:
    """The page open in two tabs of one browser, as when the file is opened twice: their window
    handles (first, second), the first in front. ``deaf_second``: the second tab gets no storage
    events, as a frozen background tab."""
    page = open_page(browser, tmp_path)
    first = browser.session("GET", "/window/handles")[0]
    second = browser.session("POST", "/window/new", {"type": "tab"})["handle"]
    browser.session("POST", "/window", {"handle": second})
    if deaf_second:
        cdp(browser, "Page.addScriptToEvaluateOnNewDocument", {"source": (
            "window.addEventListener('storage', (event) => event.stopImmediatePropagation());")})
    browser.open(page.as_uri())
    browser.session("POST", "/window", {"handle": first})
    return first, second


def test_two_tabs_of_one_page_keep_both_tabs_answers(browser, tmp_path):
    first, second = open_in_two_tabs(browser, tmp_path)  # say from Downloads and from the project
    browser.press("1", "2")
    browser.session("POST", "/window", {"handle": second})
    browser.click("#overview li:nth-child(4) button")
    browser.press("4")  # written while this tab knew nothing of the first tab's answers
    assert browser.text("#progress") == "3 / 4 answered"  # the first tab's answers shown here too
    browser.session("POST", "/window", {"handle": first})
    browser.execute("window.onbeforeunload = null")
    assert reload_showing(browser, "3 / 4 answered") == "3 / 4 answered"  # the other tab's answer too
    browser.click("#save")
    assert wait_for_download(browser.downloads, "round_1.csv").read_text().splitlines()[1:] == [
        "cell/001,Basophil", f'"{EVIL_ID.replace(chr(34), 2 * chr(34))}","Neutro,phil ""N"""', "cell/004,Monocyte"]


def test_a_tab_that_missed_the_other_tabs_answers_keeps_them_when_it_answers(browser, tmp_path):
    # a frozen background tab gets no storage event: its next answer must not write over the other tab's
    first, second = open_in_two_tabs(browser, tmp_path, deaf_second=True)
    browser.press("1", "2")
    browser.session("POST", "/window", {"handle": second})
    assert browser.text("#progress") == "0 / 4 answered"  # the event never came
    browser.click("#overview li:nth-child(4) button")
    browser.press("4")
    assert browser.text("#progress") == "3 / 4 answered"


def test_a_tab_that_missed_the_other_tabs_answers_saves_them(browser, tmp_path):
    first, second = open_in_two_tabs(browser, tmp_path, deaf_second=True)
    browser.press("1", "2")
    browser.session("POST", "/window", {"handle": second})
    browser.click("#save")
    assert wait_for_download(browser.downloads, "round_1.csv").read_text().splitlines()[1:] == [
        "cell/001,Basophil", f'"{EVIL_ID.replace(chr(34), 2 * chr(34))}","Neutro,phil ""N"""']


def test_a_new_name_clears_the_last_names_save_note(browser, tmp_path):
    open_page(browser, tmp_path, annotators=2)
    browser.send_keys("#annotator", "Anna\n")
    browser.press("1")
    browser.click("#save")
    wait_for_download(browser.downloads, "round_1.csv")
    assert browser.text("#save-note") != ""
    browser.execute("document.getElementById('annotator').value = ''")
    browser.send_keys("#annotator", "Ben\n")  # saved: no question
    assert browser.execute("return document.getElementById('save-note').textContent") == ""


def test_the_expert_is_told_when_the_browser_keeps_no_answers(browser, tmp_path):
    cdp(browser, "Page.addScriptToEvaluateOnNewDocument", {"source": (
        "Storage.prototype.setItem = function () { throw new DOMException('full', 'QuotaExceededError'); };")})
    open_page(browser, tmp_path)
    browser.press("1")
    assert "NOT keeping your answers" in browser.text("#save-status")


def test_an_answer_the_browser_failed_to_keep_is_written_with_the_next_one(browser, tmp_path):
    cdp(browser, "Page.addScriptToEvaluateOnNewDocument", {"source": (
        "let calls = 0; const setItem = Storage.prototype.setItem;"
        " Storage.prototype.setItem = function (key, value) {"
        " if (++calls === 2) throw new DOMException('full', 'QuotaExceededError'); setItem.call(this, key, value); };"
    )})
    open_page(browser, tmp_path)
    browser.press("1", "2")  # the second answer is not kept
    assert "NOT keeping your answers" in browser.text("#save-status")
    browser.press("3")  # storage works again: the answer it missed is written too, and the warning goes
    assert (browser.text("#progress"), browser.text("#save-status")) == ("3 / 4 answered", "unsaved answers")
    browser.execute("window.onbeforeunload = null")
    assert reload_showing(browser, "3 / 4 answered") == "3 / 4 answered"


def test_an_answer_in_one_tab_shows_in_the_other_at_once(browser, tmp_path):
    first, second = open_in_two_tabs(browser, tmp_path)
    browser.press("1", "2")
    browser.session("POST", "/window", {"handle": second})
    deadline = time.monotonic() + 30  # the storage event reaches this tab on its own time (a loaded CI machine)
    while browser.text("#progress") != "2 / 4 answered" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert browser.text("#progress") == "2 / 4 answered"  # before this tab answers anything


def test_a_corrupt_stored_record_is_written_over(browser, tmp_path):
    open_page(browser, tmp_path)
    key = browser.execute("return JSON.parse(document.getElementById('alr-data').textContent).storage_key")
    browser.execute("localStorage.setItem(arguments[0], '{not json')", key)
    browser.session("POST", "/refresh")
    browser.press("1", "2")  # the parse error was taken for blocked storage, and the record never repaired
    assert browser.text("#save-status") == "unsaved answers"
    browser.execute("window.onbeforeunload = null")
    assert reload_showing(browser, "2 / 4 answered") == "2 / 4 answered"  # a record never repaired: 0 / 4


def test_a_new_name_is_told_unsaved_answers_are_lost_when_the_browser_keeps_none(browser, tmp_path):
    cdp(browser, "Page.addScriptToEvaluateOnNewDocument", {"source": (
        "Storage.prototype.setItem = function () { throw new DOMException('full', 'QuotaExceededError'); };")})
    open_page(browser, tmp_path, annotators=2)
    browser.send_keys("#annotator", "Anna\n")
    browser.press("1")
    browser.execute("document.getElementById('annotator').value = ''")
    browser.send_keys("#annotator", "Ben\n")
    assert browser.session("GET", "/alert/text") == (
        "Switch from Anna to Ben? Anna's unsaved answers are LOST: this browser is not keeping answers; cancel and "
        "save them first.")  # fmt: skip
    browser.session("POST", "/alert/dismiss")


def test_a_large_image_fits_a_tablet_and_answering_keeps_the_page_still(browser, tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (512, 512), (90, 30, 30)).save(png, format="PNG")
    names = [f"Long class name number {k} (subtype)" for k in range(20)]
    browser.set_viewport(768, 1024)
    open_page(browser, tmp_path, [item(f"r1-{k:04d}", k % 20, 3, 0.5, png.getvalue()) for k in range(60)], names)
    covered = browser.execute("""const box = document.getElementById('image').getBoundingClientRect();
        const hit = document.elementFromPoint(box.right - 5, box.top + 50);
        return hit === null || hit.id !== 'image'""")
    assert covered is False  # the overview sat over the image's right sixth
    browser.execute("document.querySelectorAll('.class-button')[11].scrollIntoView({block: 'center'})")
    before = browser.execute("return scrollY")
    assert before > 0
    browser.click(".class-button:nth-child(12)")
    assert (browser.text("#progress"), browser.execute("return scrollY")) == ("1 / 60 answered", before)


def test_the_overview_list_scrolls_back_up_to_the_current_item(browser, tmp_path):
    open_page(browser, tmp_path, [item(f"r1-{k:04d}", k % 3, 1, 0.5, tiny_png((90, 30, 30))) for k in range(60)])
    shown = """const button = document.querySelectorAll('#overview button')[arguments[0]];
        const list = document.getElementById('overview').parentElement.getBoundingClientRect();
        const place = button.getBoundingClientRect();
        return place.top >= list.top && place.bottom <= list.bottom"""
    browser.execute("document.querySelectorAll('#overview button')[59].click()")
    assert browser.execute(shown, 59) and not browser.execute(shown, 0)  # scrolled down to the last
    browser.press("u")  # back to the first item, the first one left open
    assert browser.text("#item-id") == "r1-0000" and browser.execute(shown, 0)


def test_saving_says_what_is_missing_and_u_finds_it(browser, tmp_path):
    open_page(browser, tmp_path)
    browser.click("#save")  # nothing answered: no empty file
    assert browser.text("#save-note") == "Nothing to save yet: answer an image first."
    browser.click("#overview li:nth-child(2) button")
    browser.press("1", "2", "3")  # the second to the last: answering the last goes back to the one left open
    assert (browser.text("#progress"), browser.text("#item-id")) == ("3 / 4 answered", "cell/001")
    browser.press("n", "u")
    assert browser.text("#item-id") == "cell/001"
    browser.click("#save")
    wait_for_download(browser.downloads, "round_1.csv")
    assert browser.text("#save-note").startswith("1 of 4 images have no answer and are not in the file")
    assert [p.name for p in browser.downloads.iterdir()] == ["round_1.csv"]
    browser.press("2")  # the note spoke of that save
    assert browser.execute("return document.getElementById('save-note').textContent") == ""


def test_a_new_name_with_unsaved_answers_asks_first(browser, tmp_path):
    open_page(browser, tmp_path, annotators=2)
    browser.send_keys("#annotator", "Anna\n")
    browser.press("1", "2")
    browser.execute("document.getElementById('annotator').value = ''")
    browser.send_keys("#annotator", "Ana\n")  # a typo fixed, or a colleague: the page cannot tell
    assert browser.session("GET", "/alert/text").startswith("Switch from Anna to Ana? Anna's unsaved answers stay")
    browser.session("POST", "/alert/dismiss")
    assert (browser.execute("return document.getElementById('annotator').value"),
            browser.text("#progress")) == ("Anna", "2 / 4 answered")  # fmt: skip


# --- a realistic page for the screenshot: BloodMNIST-like classes and synthetic blood cells

BLOOD_CLASSES = ["basophil", "eosinophil", "erythroblast", "immature granulocyte",
                 "lymphocyte", "monocyte", "neutrophil", "platelet"]


def cell_png(kind: str, seed: int, size: int = 28) -> bytes:
    """A blood-smear-like picture (drawn large, then shrunk to ``size``), MedMNIST-style."""
    rng = random.Random(seed)
    scale = 8
    big = size * scale
    image = Image.new("RGB", (big, big), (236, 214, 206))
    draw = ImageDraw.Draw(image)
    for _ in range(7):  # red blood cells around the cell of interest
        x, y, r = rng.uniform(0, big), rng.uniform(0, big), rng.uniform(0.16, 0.2) * big
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(222, 150, 148))
        draw.ellipse((x - r / 2.2, y - r / 2.2, x + r / 2.2, y + r / 2.2), fill=(231, 178, 172))
    c = big / 2 + rng.uniform(-0.05, 0.05) * big
    if kind == "platelet":
        for _ in range(5):
            x, y, r = c + rng.uniform(-0.2, 0.2) * big, c + rng.uniform(-0.2, 0.2) * big, 0.04 * big
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(120, 70, 150))
    else:
        cytoplasm = {"eosinophil": (232, 150, 120), "basophil": (150, 110, 170),
                     "lymphocyte": (170, 180, 222), "monocyte": (196, 186, 214)}.get(kind, (218, 192, 214))
        r = (0.26 if kind in ("lymphocyte", "erythroblast") else 0.34) * big
        draw.ellipse((c - r, c - r, c + r, c + r), fill=cytoplasm)
        if kind in ("eosinophil", "basophil"):
            granule = (214, 96, 70) if kind == "eosinophil" else (70, 30, 100)
            for _ in range(120):
                a, d = rng.uniform(0, 6.283), rng.uniform(0, 0.92) * r
                x, y = c + d * math.cos(a), c + d * math.sin(a)
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=granule)
        lobes = {"neutrophil": 3, "eosinophil": 2, "monocyte": 1}.get(kind, 0)
        nucleus = (88, 44, 128)
        if lobes:
            for k in range(lobes):
                x = c + (k - (lobes - 1) / 2) * 0.14 * big
                y = c + rng.uniform(-0.06, 0.06) * big
                rx, ry = (0.1 if lobes > 1 else 0.2) * big, 0.12 * big
                draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=nucleus)
        else:
            rn = (0.21 if kind in ("lymphocyte", "erythroblast", "immature granulocyte") else 0.15) * big
            draw.ellipse((c - rn, c - rn * 0.9, c + rn, c + rn * 0.9), fill=nucleus)
    image = image.filter(ImageFilter.GaussianBlur(scale * 0.6)).resize((size, size), Image.LANCZOS)
    noisy = Image.effect_noise((size, size), 12).convert("RGB")
    image = Image.blend(image, noisy, 0.06)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_screenshot_of_a_page_in_use(browser, tmp_path):
    queried = [  # (sample id, current label, suggested label, confidence, drawn as)
        ("train/004217", 6, 6, 0.91, "neutrophil"),
        ("train/001983", 2, 4, 0.78, "lymphocyte"),
        ("train/009542", 5, 6, 0.55, "monocyte"),
        ("train/003310", 0, 1, 0.83, "eosinophil"),
        ("train/007708", 3, 7, 0.64, "platelet"),
    ]
    shown = item_ids([sid for sid, *_ in queried], 1, 0)  # what the query stage shows
    items = [item(item_id, current, suggested, confidence, cell_png(kind, seed))
             for seed, (item_id, (_, current, suggested, confidence, kind)) in enumerate(zip(shown, queried))]
    page = tmp_path / "annotate.html"
    page.write_text(render_page(items, BLOOD_CLASSES, 1, "round_1.csv"), encoding="utf-8")
    browser.open(page.as_uri())

    browser.click('#classes button[data-class-index="6"]')  # neutrophil
    browser.press("5", "s", "1")  # lymphocyte, skip, basophil
    browser.press(ARROW_LEFT)  # back to the fourth image: its answer shows
    assert browser.text("#progress") == "4 / 5 answered"
    assert (browser.text("#item-id"), browser.text("#answer")) == (shown[3], "basophil")
    browser.execute("document.activeElement && document.activeElement.blur()")
    browser.move_pointer(1090, 790)  # no hover highlight in the picture

    png = browser.screenshot()
    shot = tmp_path / "annotate.png"
    shot.write_bytes(png)
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1100, 800)
    if os.environ.get("ALR_SCREENSHOT"):
        target = Path(os.environ["ALR_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
