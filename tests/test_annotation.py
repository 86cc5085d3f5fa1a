"""The human oracle's answers file: every validation error names the file, line and problem;
and what the expert is shown (page, Label Studio tasks, exported images) carries item ids only,
nothing of the sample's path."""

from __future__ import annotations

import functools
import io
import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alr_core.active.labels import apply_answers, mark_skipped, training_rows, trusted
from alr_core.common.errors import AlrError
from alr_core.data.images import decode_files
from alr_core.human.annotation import (IMAGES_NOTE, Answers, item_ids, item_images, package_table, page_items,
                                       read_answers)
from alr_core.human.labelstudio import labeling_config, tasks
from alr_core.human.page import render_page

CLASSES = ["Neutrophil", "Eosinophil", "Lymphocyte"]
I1, I2, I3 = item_ids(["q1", "q2", "q3"], 1, 0)
QUERY = pd.DataFrame({"rank": [1, 2, 3], "item_id": [I1, I2, I3], "sample_id": ["q1", "q2", "q3"],
                      "score": [0.9, 0.8, 0.7], "current_label": [0, 1, 2], "predicted_label": [1, 1, 0],
                      "confidence": [0.6, 0.7, 0.8]})  # fmt: skip
KNOWN = pd.Series(["q1", "q2", "q3", "other"])


def answers(tmp_path, text: str | bytes, allow_partial=False) -> Answers:
    path = tmp_path / "round_1.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return read_answers(path, QUERY, KNOWN, CLASSES, allow_partial, tmp_path / "annotate.html", 1)


def rows(result: Answers) -> list[tuple]:
    """(sample_id, annotator, label) per answer; label -1 is a skip."""
    return list(result.table[["sample_id", "annotator", "label"]].itertuples(index=False, name=None))


def error(tmp_path, text, allow_partial=False) -> str:
    with pytest.raises(AlrError) as info:
        answers(tmp_path, text, allow_partial)
    return str(info.value)


def test_item_ids_are_opaque_stable_and_unique_per_round():
    ids = item_ids(["Neutrophil/a.jpg", "Eosinophil/b.jpg"], 2, 7)
    assert all(re.fullmatch(r"r2-[0-9a-f]{10}", i) for i in ids) and len(set(ids)) == 2
    assert item_ids(["Neutrophil/a.jpg", "Eosinophil/b.jpg"], 2, 7) == ids  # a reloaded page still matches
    assert item_ids(["Eosinophil/b.jpg"], 2, 7) == ids[1:]  # a digest of the sample, not of its place
    assert item_ids(["Neutrophil/a.jpg"], 3, 7)[0] != ids[0].replace("r2-", "r3-")  # another round, another id
    assert item_ids(["Neutrophil/a.jpg"], 2, 8) != ids[:1]  # keyed by the seed


def test_item_ids_widen_rather_than_repeat(monkeypatch):
    monkeypatch.setattr("alr_core.human.annotation.ITEM_ID_DIGITS", 1)  # 16 values: 40 ids must collide
    ids = item_ids([f"s{k}" for k in range(40)], 1, 0)
    assert len(set(ids)) == 40 and len({len(i) for i in ids}) == 1 and len(ids[0]) > len("r1-0")


def test_page_answers_keyed_by_item_id_map_back_to_samples(tmp_path):
    result = answers(tmp_path, f"item_id,label\n{I2},Lymphocyte\n{I1},skip\n{I3},0\n")
    # in sample order, whatever the file's: a reordered file must not retrain the round
    assert rows(result) == [("q1", "expert", -1), ("q2", "expert", 2), ("q3", "expert", 0)]
    reordered = answers(tmp_path, f"item_id,label,annotator\n{I3},0,b\n{I1},skip,b\n{I2},Lymphocyte,a\n{I1},1,a\n")
    assert rows(reordered) == [("q1", "a", 1), ("q1", "b", -1), ("q2", "a", 2), ("q3", "b", 0)]


def test_names_indices_and_skip_are_accepted(tmp_path):
    result = answers(tmp_path, "sample_id,label\nq1,Eosinophil\nq2,2\nq3,skip\n")
    assert rows(result) == [("q1", "expert", 1), ("q2", "expert", 2), ("q3", "expert", -1)]


def test_a_number_that_names_a_class_is_that_class_and_the_note_says_so(tmp_path):
    """Class folders "1", "2", "3" are indices 0, 1, 2: "2" is the class named "2" (index 1),
    as the page saves it, never index 2 ("3"); a data team that wrote indices is told."""
    path = tmp_path / "round_1.csv"
    path.write_text("sample_id,label\nq1,2\nq2,1\nq3,0\n")
    result = read_answers(path, QUERY, KNOWN, ["1", "2", "3"], False, tmp_path / "annotate.html", 1)
    assert rows(result) == [("q1", "expert", 1), ("q2", "expert", 0), ("q3", "expert", 0)]
    assert result.note == (f"note: {path}: 2 labels such as '2' name a class and are also the index of another; "
                           "they are read as class names ('2' is class index 1, not class '3'); if you wrote "
                           "indices, write class names instead, as annotate.html saves them")  # fmt: skip
    # names that are their own indices ("0", "1", "2"), or no number at all: nothing to say
    as_indices = read_answers(path, QUERY, KNOWN, ["0", "1", "2"], False, tmp_path / "annotate.html", 1)
    assert rows(as_indices) == [("q1", "expert", 2), ("q2", "expert", 1), ("q3", "expert", 0)]
    assert as_indices.note is None and answers(tmp_path, "sample_id,label\nq1,2\nq2,1\nq3,0\n").note is None


def test_class_names_in_full_width_digits_are_no_indices_and_get_no_note(tmp_path):
    """The page reads ASCII digits only as indices: class "２" (full-width) is a name, never
    index 2, so the note about names that are also indices must not name it (int() would read
    "２" as 2, the index of class "３")."""
    path = tmp_path / "round_1.csv"
    path.write_text("sample_id,label\nq1,２\nq2,１\nq3,１\n")
    result = read_answers(path, QUERY, KNOWN, ["１", "２", "３"], False, tmp_path / "annotate.html", 1)
    assert rows(result) == [("q1", "expert", 1), ("q2", "expert", 0), ("q3", "expert", 0)]
    assert result.note is None


def test_a_class_name_typed_in_another_unicode_form_is_that_class(tmp_path):
    import unicodedata

    path = tmp_path / "round_1.csv"
    path.write_text("sample_id,label\nq1,{}\nq2,Mélanome\nq3,skip\n".format(unicodedata.normalize("NFD", "Névus")))
    classes = [unicodedata.normalize("NFC", "Névus"), "Mélanome", "other"]
    result = read_answers(path, QUERY, KNOWN, classes, False, tmp_path / "annotate.html", 1)
    assert rows(result) == [("q1", "expert", 0), ("q2", "expert", 1), ("q3", "expert", -1)]


def test_utf8_bom_crlf_blank_lines_and_agreeing_duplicates_are_accepted(tmp_path):
    text = "\ufeffsample_id,label\r\nq1,Neutrophil\r\n\r\nq1,0\r\nq2,Lymphocyte\r\nq3,SKIP\r\n"
    result = answers(tmp_path, text)
    assert rows(result) == [("q1", "expert", 0), ("q2", "expert", 2), ("q3", "expert", -1)]



def test_spaces_around_the_commas_and_rows_of_empty_fields_are_accepted(tmp_path):
    # a spreadsheet's export: padded fields, and rows of commas alone where a row was cleared
    text = "sample_id , label\nq1 , Eosinophil\n,\n q2, 2\n , \nq3 ,skip\n"
    assert rows(answers(tmp_path, text)) == [("q1", "expert", 1), ("q2", "expert", 2), ("q3", "expert", -1)]


def test_an_annotator_who_skips_a_sample_twice_gave_one_agreeing_answer(tmp_path):
    result = answers(tmp_path, "sample_id,label\nq1,skip\nq2,0\nq1,Skip\nq3,1\n")
    assert rows(result) == [("q1", "expert", -1), ("q2", "expert", 0), ("q3", "expert", 1)]

@pytest.mark.parametrize("queried, images", [(3, "3 queried images"), (1, "1 queried image")])
def test_a_missing_file_names_the_round_the_file_the_page_and_where_to_save(tmp_path, queried, images):
    with pytest.raises(AlrError) as info:
        read_answers(tmp_path / "round_2.csv", QUERY[:queried], KNOWN, CLASSES, False, tmp_path / "annotate.html", 2)
    assert str(info.value) == (
        f"round 2 waits for expert answers on {images}: {tmp_path / 'round_2.csv'} does not exist; open "
        f"{tmp_path / 'annotate.html'} in a browser, answer every image, save the file as {tmp_path / 'round_2.csv'} "
        f"(the page offers that name), then run `dvc repro` again; or import {tmp_path / 'labelstudio_tasks.json'} "
        f"into Label Studio and save its JSON export as {tmp_path / 'round_2.json'}"
    )


def test_a_team_is_told_it_owes_several_answers_and_files_beside_the_answers_are_named(tmp_path):
    """al.annotators: 3 with the page, which one expert answers: the stop says that one file with an
    annotator column holds everyone's answers; fewer answers than planned and files the stage does
    not read (a browser's "round_1 (1).csv") are named in notes."""
    read = functools.partial(read_answers, query=QUERY, known_ids=KNOWN, class_names=CLASSES, allow_partial=False,
                             page=tmp_path / "annotate.html", round_number=1, annotators=3)  # fmt: skip
    path = tmp_path / "round_1.csv"
    with pytest.raises(AlrError) as info:
        read(path)
    assert str(info.value).endswith(
        "; al.annotators is 3, so every image wants 3 answers: each expert types their name in the page and saves "
        "their own file (it names them in an `annotator` column), and the files joined are the one file read "
        "(docs/annotation_teams.md), or each expert submits their own annotation in Label Studio, whose project "
        "overlap (maximum_annotations) must then be 3")  # fmt: skip
    copy = tmp_path / "round_1 (1).csv"  # the page's file, renamed by a browser whose downloads hold one
    copy.write_text(f"item_id,label\n{I1},0\n{I2},1\n{I3},2\n")
    (tmp_path / "round_10.csv").write_text("another round's")
    with pytest.raises(AlrError) as info:
        read(path)
    assert str(info.value).startswith(f"round 1: {path} does not exist, but annotations/ holds {copy}: rename the "
                                      "file that holds the round's answers to round_1.csv; al.annotators is 3")
    path.write_text(f"item_id,label,annotator\n{I1},0,ana\n{I1},0,ben\n{I2},1,ana\n{I3},2,ana\n")
    notes = read(path).note.splitlines()
    assert notes == [
        f"note: {path}: 4 answers from 2 annotators for 3 queried samples, where al.annotators plans 3 per sample "
        "(9, which budget_used counts); one file with an `annotator` column holds every expert's answers "
        "(docs/annotation_teams.md)",
        f"note: {copy} is not read: round 1's answers are {path} alone; merge the answers into it (with an "
        "`annotator` column for several experts) and move the other files out of annotations/",
    ]  # fmt: skip
    copy.unlink()
    assert answers(tmp_path, f"item_id,label\n{I1},0\n{I2},1\n{I3},2\n").note is None  # one expert planned
    # as many answers as planned, copy gone: nothing to note
    full = "".join(f"{i},0,{who}\n" for i in (I1, I2, I3) for who in ("ana", "ben", "cy"))
    path.write_text("item_id,label,annotator\n" + full)
    assert read(path).note is None and len(read(path).table) == 9


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("sample_id,label\nzz,0\nq2,0\nq3,0\n", "line 2: unknown sample_id 'zz'"),
        ("sample_id,label\nq1,0\nother,1\n", "line 3: sample 'other' was not queried in this round"),
        ("sample_id,label\nq1,0\nq2,0\nq1,Eosinophil\nq3,0\n",
         "line 4: sample 'q1' is answered twice with different labels ('Neutrophil' and 'Eosinophil')"),
        # a class the set lacks gets no guess (Basophil is 0.67 alike to Eosinophil), a typo does
        ("sample_id,label\nq1,Basophil\nq2,0\nq3,0\n", "line 2: label 'Basophil' is not a class; use a class name"),
        ("sample_id,label\nq1,neutrophill\nq2,0\nq3,0\n",
         "line 2: label 'neutrophill' is not a class (did you mean 'Neutrophil'?); use a class name"),
        ("sample_id,label\nq1,3\nq2,0\nq3,0\n", "line 2: label '3' is not a class"),
        # a digit int() refuses (it raised a bare ValueError), and a line count past a quoted line break
        ("sample_id,label\nq1,²\nq2,0\nq3,0\n", "line 2: label '²' is not a class"),
        # digits of other scripts: the annotation page's Load answers reads ASCII digits only, and so does alr
        ("sample_id,label\nq1,１\nq2,0\nq3,0\n", "line 2: label '１' is not a class"),
        ("sample_id,label\nq1,٢\nq2,0\nq3,0\n", "line 2: label '٢' is not a class"),
        ('sample_id,label\n"q1","Neutrophil"\n"q2\n",0\nq9,0\n', "line 5: unknown sample_id 'q9'"),
        ("", "the file is empty"),
        ("   \n", "the file is empty"),
        ("sample_id,label\n", "has a header but no answers"),
        ("sample_id,label\nq1,0\nq2\n", "line 3: expected 2 non-empty fields"),
        ("sample_id,label\nq1,\nq2,0\nq3,0\n", "line 2: expected 2 non-empty fields"),
        ("sample_id;label\nq1;0\n", "line 1 is separated by semicolons; expected commas"),
        ("sample_id\tlabel\nq1\t0\n", "line 1 is separated by tabs; expected commas"),
        ("id,answer\nq1,0\n", "line 1 is 'id,answer'; expected the header 'item_id,label' (as the annotation "
         "page saves it) or 'sample_id,label', with an 'annotator' column when several annotators answer"),
        ("item_id,sample_id,label\nq1,q1,0\n", "line 1 is 'item_id,sample_id,label'; expected the header"),
        ("sample_id,label\nq1,0\n", "2 of 3 queried samples have no answer: q2, q3"),
        ("sample_id,label\nq1,0\nq2,0\n", "1 of 3 queried samples has no answer: q3"),
        (f"item_id,label\n{I1},0\n", f"2 of 3 queried items have no answer: {I2}, {I3}"),
        (f"item_id,label\n{I1},0\nq2,0\n{I3},0\n",
         "line 3: unknown item_id 'q2': not one of the 3 items on this round's page "),
        (f"item_id,label\n{I1},0\n{I2},0\n{I1},Eosinophil\n{I3},0\n",
         f"line 4: item '{I1}' is answered twice with different labels ('Neutrophil' and 'Eosinophil')"),
    ],
)
def test_each_problem_is_a_clear_error(tmp_path, text, fragment):
    message = error(tmp_path, text)
    assert fragment in message
    assert str(tmp_path / "round_1.csv") in message


def test_a_stray_quote_is_an_error_naming_its_line_and_never_echoes_the_whole_file(tmp_path):
    # the quote takes in the rest of the file as one field: csv's field limit (a traceback), or a label of kilobytes
    for lines in (8_000, 500):
        rest = "".join(f"q{i},Neutrophil\n" for i in range(lines))
        message = error(tmp_path, f'sample_id,label\nq1,"Neutrophil\nq2,0\n{rest}')
        assert message.startswith(f"{tmp_path / 'round_1.csv'}: line ")
        assert len(message) < 600
        if lines == 8_000:
            assert "cannot read as CSV (field larger than field limit" in message and "double quote" in message
        else:
            assert "label 'Neutrophil\\nq2,0\\nq0,Neutrophil" in message and " characters) is not a class" in message


def test_a_line_with_an_extra_long_field_is_shortened_in_the_error(tmp_path):
    message = error(tmp_path, "sample_id,label\nq1,Neutrophil," + "x" * 5_000 + "\n")
    assert message.startswith(f"{tmp_path / 'round_1.csv'}: line 2: expected 2 non-empty fields 'sample_id,label'")
    assert "characters) (a truncated or hand-edited file?)" in message and len(message) < 600


def test_wrong_encoding_is_named(tmp_path):
    message = error(tmp_path, "sample_id,label\nq1,Eosinophil\n".encode("utf-16"))
    assert "not UTF-8 text" in message and "save the file as UTF-8" in message


def test_a_partial_file_is_accepted_only_when_allowed(tmp_path):
    assert "or set al.allow_partial: true" in error(tmp_path, "sample_id,label\nq1,0\n")
    result = answers(tmp_path, "sample_id,label\nq1,0\n", allow_partial=True)
    assert rows(result) == [("q1", "expert", 0)]


def test_skipped_answers_keep_the_label_leave_the_pool_and_are_not_trained_on():
    labels = pd.DataFrame({
        "sample_id": ["q1", "q2", "q3", "c1"],
        "label": [0, 1, 2, 0],
        "clean_guess": [False, False, False, True],
        "label_source": "observed",
        "relabel_round": pd.array([None] * 4, dtype="Int64"),
    })  # fmt: skip
    updated = mark_skipped(apply_answers(labels, pd.Series({"q1": 2}), 1, "expert"), ["q2"], 1)
    assert updated["label"].tolist() == [2, 1, 2, 0]
    assert updated["label_source"].tolist() == ["expert", "skipped", "observed", "observed"]
    assert updated["relabel_round"].tolist() == [1, 1, pd.NA, pd.NA]
    assert training_rows(updated, "selected").tolist() == [True, False, False, True]
    # a sample of C the expert was unsure of (or whose answers tied) is trusted no more
    for source in ("skipped", "tied"):
        doubted = mark_skipped(updated, ["c1"], 2, source)
        assert trusted(doubted).tolist() == training_rows(doubted, "selected").tolist() == [True, False, False, False]


def test_package_table_and_items_carry_suggestions_and_images(tmp_path):
    source = tmp_path / "big.png"
    Image.new("RGB", (900, 600), (10, 200, 30)).save(source)
    samples = pd.DataFrame({"sample_id": ["other", "q1", "q2", "q3"], "split": "train", "label": [0, 0, 1, 2],
                            "class_name": ["Neutrophil", "Neutrophil", "Eosinophil", "Lymphocyte"],
                            "source_path": pd.array([None, str(source), None, None], dtype="string")})  # fmt: skip
    package = package_table(QUERY, samples, CLASSES)
    assert package["current_class"].tolist() == ["Neutrophil", "Eosinophil", "Lymphocyte"]
    assert package["suggested_class"].tolist() == ["Eosinophil", "Eosinophil", "Neutrophil"]
    assert package["image"].tolist() == [str(source), "data/prepared/images.npy[2]", "data/prepared/images.npy[3]"]
    images = np.arange(4 * 4 * 4, dtype=np.uint8).reshape(4, 4, 4, 1)
    items = page_items(package, images)
    assert package["item_id"].tolist() == [I1, I2, I3]
    assert [item["item_id"] for item in items] == [I1, I2, I3]
    assert not any("sample_id" in item for item in items)
    assert all(item["image_png"].startswith(b"\x89PNG") for item in items)
    with Image.open(io.BytesIO(items[0]["image_png"])) as preview:
        assert preview.size == (512, 341)  # the source file, shrunk to at most 512 px
    with Image.open(io.BytesIO(items[1]["image_png"])) as preview:
        assert preview.size == (4, 4) and np.array_equal(np.asarray(preview), images[2, ..., 0])


def test_an_expert_sees_a_source_file_as_the_model_does(tmp_path):
    """A preview of a source file is read as prepare reads it (images.read_viewable): a 12-bit X-ray
    in 16 bits scaled from its darkest to its brightest pixel (Pillow alone shows it white) and
    a file stored sideways turned upright (EXIF orientation 6: rotate clockwise)."""
    source = tmp_path / "xray.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.array([[0, 1000, 2000], [4000, 4000, 4000]], dtype=np.uint16)).save(source, exif=exif)
    samples = pd.DataFrame({"sample_id": ["other", "q1", "q2", "q3"], "split": "train", "label": [0, 0, 1, 2],
                            "class_name": ["Neutrophil", "Neutrophil", "Eosinophil", "Lymphocyte"],
                            "source_path": pd.array([None, str(source), None, None], dtype="string")})  # fmt: skip
    items = page_items(package_table(QUERY, samples, CLASSES), np.zeros((4, 2, 2, 1), np.uint8))
    with Image.open(io.BytesIO(items[0]["image_png"])) as preview:
        shown = np.asarray(preview.convert("L"))
    assert shown.tolist() == [[255, 0], [255, 64], [255, 128]]  # upright: 2 wide, 3 high
    assert np.array_equal(shown, decode_files([source], None, 1)[0, ..., 0])


# --- what the expert sees: nothing of the path, whose folder is the (true) class

CELL_CLASSES = ["Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil"]
FILES = ["Neutrophil/BloodImage_00008_1.jpg", "Eosinophil/BloodImage_00012_2.jpg",
         "Monocyte/BloodImage_00031_1.jpg", "Lymphocyte/BloodImage_00407_3.jpg"]  # fmt: skip
DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


@pytest.fixture
def image_folder_round(tmp_path):
    """An image-folder dataset (sample id = path = class folder / file) with every sample queried
    in round 1, each under a wrong current label: (query, package, source folder)."""
    root = tmp_path / "blood_cells"
    for number, sample_id in enumerate(FILES):
        (root / sample_id).parent.mkdir(parents=True, exist_ok=True)
        exif = Image.Exif()
        exif[0x010E] = sample_id  # ImageDescription: metadata must not reach the exported copy either
        Image.new("RGB", (40, 30), (40 * number, 90, 160)).save(root / sample_id, exif=exif)
    truth = [CELL_CLASSES.index(sample_id.split("/")[0]) for sample_id in FILES]
    samples = pd.DataFrame({"sample_id": FILES, "split": "train", "label": truth,
                            "class_name": [CELL_CLASSES[k] for k in truth],
                            "source_path": pd.array([str(root / f) for f in FILES], dtype="string")})  # fmt: skip
    query = pd.DataFrame({"rank": [1, 2, 3, 4], "item_id": item_ids(FILES, 1, 0), "sample_id": FILES,
                          "current_label": [(k + 1) % 4 for k in truth], "predicted_label": truth,
                          "confidence": [0.91, 0.62, 0.55, 0.87]})  # fmt: skip
    return query, package_table(query, samples, CELL_CLASSES), root


def leaks(text: str, root) -> list[str]:
    """The parts of the queried paths that occur in ``text``: file names, stems, their
    numbers, the extension, the folder."""
    parts = {str(root), "blood_cells", ".jpg", "BloodImage"}
    for sample_id in FILES:
        name = sample_id.split("/")[1]
        parts |= {sample_id, name, name.removesuffix(".jpg"), name.split("_")[1]}
    return sorted(part for part in parts if part.lower() in text.lower())


def test_the_page_shows_item_ids_and_class_names_only_in_the_class_list(image_folder_round):
    query, package, root = image_folder_round
    page = render_page(page_items(package, np.zeros((0, 1, 1, 3), np.uint8)), CELL_CLASSES, 1, "round_1.csv")
    text = DATA_URI.sub("data:", page)  # the image bytes are not text the expert reads
    data = json.loads(re.search(r'<script type="application/json" id="alr-data">(.*?)</script>', text).group(1))
    assert [item["item_id"] for item in data["items"]] == query["item_id"].tolist()
    assert all(re.fullmatch(r"r1-[0-9a-f]{10}", item["item_id"]) for item in data["items"])
    assert {key for item in data["items"] for key in item} == {"item_id", "current_label", "suggested_label",
                                                               "confidence", "image"}  # fmt: skip
    assert data["class_names"] == CELL_CLASSES
    # each class name once: in the list the class buttons, the current label and the suggestion are drawn from
    assert [text.lower().count(name.lower()) for name in CELL_CLASSES] == [1, 1, 1, 1]
    assert leaks(text, root) == []


@pytest.mark.parametrize("prefix", [None, "/data/local-files/?d="])
def test_label_studio_tasks_config_and_images_carry_no_path(image_folder_round, prefix):
    query, package, root = image_folder_round
    items = page_items(package, np.zeros((0, 1, 1, 3), np.uint8))
    made = tasks(package, items, CELL_CLASSES, 1, prefix, Path("data/rounds/1/images"))
    assert [task["data"]["item_id"] for task in made] == query["item_id"].tolist()
    for task, item_id in zip(made, query["item_id"]):
        assert set(task["data"]) == {"image", "item_id", "round", "rank", "current_class"}
        if prefix is not None:
            assert task["data"]["image"] == f"/data/local-files/?d=data/rounds/1/images/{item_id}.png"
        # class names belong in the current class and the suggestion only
        assert task["data"].pop("current_class") in CELL_CLASSES
        suggestion = task["predictions"][0]["result"][0]["value"]
        assert suggestion.pop("choices")[0] in CELL_CLASSES
    text = DATA_URI.sub("data:", json.dumps(made))
    assert [name for name in CELL_CLASSES if name.lower() in text.lower()] == []
    assert leaks(text, root) == []

    config = ElementTree.fromstring(labeling_config(CELL_CLASSES))
    assert config.find("Header").get("value") == "$item_id"
    assert [choice.get("value") for choice in config.iter("Choice")] == CELL_CLASSES

    exported = dict(item_images(package, np.zeros((0, 1, 1, 3), np.uint8), prefix))
    if prefix is None:  # the tasks embed the images: the folder only says so
        assert list(exported) == [IMAGES_NOTE] and b"al.image_url_prefix" in exported[IMAGES_NOTE]
        return
    assert sorted(exported) == sorted(f"{item_id}.png" for item_id in query["item_id"])
    for content in exported.values():
        assert content.startswith(b"\x89PNG") and leaks(content.decode("latin-1"), root) == []
        with Image.open(io.BytesIO(content)) as copy:
            assert copy.size == (40, 30) and "exif" not in copy.info  # full size, no source metadata


def read_seeded(tmp_path, text: str, query=QUERY, round_number=1):
    """read_answers as oracle_relabel calls it: with the round and the project's seed (0)."""
    path = tmp_path / f"round_{round_number}.csv"
    path.write_text(text)
    return read_answers(path, query, KNOWN, CLASSES, False, tmp_path / "annotate.html", round_number, seed=0)


def test_answers_to_an_earlier_query_say_the_query_changed_and_which_sample_left_it(tmp_path):
    # round 1 answered q1..q3; then budget (or rounds) shrank the round's query to q1, q2
    with pytest.raises(AlrError) as info:
        read_seeded(tmp_path, f"item_id,label\n{I1},0\n{I2},1\n{I3},2\n", query=QUERY[:2])
    message = str(info.value)
    assert f"line 4: unknown item_id '{I3}'" in message and "it is sample 'q3'" in message
    assert "query changed since the answers were given" in message and "budget" in message
    assert "left as it is" in message
    assert "or alr was upgraded: docs/experiments.md, 'Rounds experts have answered'" in message
    # the new page takes the answers still asked, from this very file
    assert "click 'Load answers' and choose this file" in message and "(2 of its 3 answers)" in message


def test_answers_under_another_seed_or_round_say_so(tmp_path):
    other_seed = item_ids(["q1"], 1, 5)[0]
    with pytest.raises(AlrError, match="no sample of the data has this id under seed 0"):
        read_seeded(tmp_path, f"item_id,label\n{other_seed},0\n{I2},1\n{I3},2\n")
    with pytest.raises(AlrError) as info:  # every id changes with the seed: the page's Load answers would find none
        read_seeded(tmp_path, "item_id,label\n" + "".join(f"{i},0\n" for i in item_ids(["q1", "q2", "q3"], 1, 5)))
    assert str(info.value).endswith(f"answer the round's new page {tmp_path / 'annotate.html'}: none of the file's "
                                    "answers is to an image it asks")
    round_2 = item_ids(["q1"], 2, 0)[0]
    with pytest.raises(AlrError, match="it is an item of round 2's page, so the file holds another round's answers"):
        read_seeded(tmp_path, f"item_id,label\n{round_2},0\n{I2},1\n{I3},2\n")


def test_answers_to_a_sample_that_left_train_say_the_splits_changed(tmp_path):
    # an upgrade that drew the splits anew (data.split_order) put an answered sample in test
    splits = {"q1": "train", "q2": "train", "q3": "train", "other": "train", "t9": "test"}
    path = tmp_path / "round_1.csv"
    for text, fragment in (
        (f"item_id,label\n{I1},0\n{item_ids(['t9'], 1, 0)[0]},1\n", "it is sample 't9', now in the test split"),
        ("sample_id,label\nq1,0\nt9,1\n", "sample 't9' was not queried in this round: it is now in the test split"),
    ):
        path.write_text(text)
        with pytest.raises(AlrError) as info:
            read_answers(path, QUERY, KNOWN, CLASSES, True, tmp_path / "annotate.html", 1, seed=0, splits=splits)
        assert fragment in str(info.value)
        assert "not train: the splits changed since the answers were given (data.split_order" in str(info.value)
        assert "`shuffle` keeps the splits of an alr whose params.yaml had no data.split_order" in str(info.value)
        with pytest.raises(AlrError) as info:  # without the splits: no sample of train has the id
            read_answers(path, QUERY, KNOWN, CLASSES, True, tmp_path / "annotate.html", 1, seed=0)
        assert "split" not in str(info.value)


def test_a_split_change_names_the_samples_own_split_and_only_a_sample_that_left_train(tmp_path):
    # oracle_relabel passes every sample's split: a train sample the query no longer holds is a
    # query change, not a split change; a sample now in val is said to be in val
    splits = {"q1": "train", "q2": "train", "q3": "train", "other": "train", "v9": "val"}
    path = tmp_path / "round_1.csv"
    path.write_text("sample_id,label\nother,0\nq1,0\nq2,1\nq3,2\n")
    with pytest.raises(AlrError) as info:
        read_answers(path, QUERY, KNOWN, CLASSES, False, tmp_path / "annotate.html", 1, seed=0, splits=splits)
    assert "line 2: sample 'other' was not queried in this round; the round's query changed" in str(info.value)
    assert "not train" not in str(info.value) and "splits changed" not in str(info.value)
    path.write_text("sample_id,label\nq1,0\nv9,1\n")
    with pytest.raises(AlrError, match="sample 'v9' was not queried in this round: it is now in the val split, not "
                                       "train: the splits changed"):
        read_answers(path, QUERY, KNOWN, CLASSES, True, tmp_path / "annotate.html", 1, seed=0, splits=splits)


def test_a_query_that_grew_since_the_answers_says_so(tmp_path):
    grown = pd.concat([QUERY, QUERY.iloc[:1].assign(item_id=item_ids(["other"], 1, 0), sample_id="other")])
    with pytest.raises(AlrError) as info:
        read_seeded(tmp_path, f"item_id,label\n{I1},0\n{I2},1\n{I3},2\n", query=grown)
    assert "1 of 4 queried items has no answer" in str(info.value)
    assert "query changed since the answers were given" in str(info.value)
    assert "images still asked (3 of its 3 answers), then answer the rest" in str(info.value)


def test_a_grown_query_counts_a_repeated_answer_among_those_still_asked(tmp_path):
    # every answer of the file is to an image the grown query still asks, a repeated one too
    grown = pd.concat([QUERY, QUERY.iloc[:1].assign(item_id=item_ids(["other"], 1, 0), sample_id="other")])
    with pytest.raises(AlrError) as info:
        read_seeded(tmp_path, f"item_id,label\n{I1},0\n{I1},0\n{I2},1\n{I3},2\n", query=grown)
    assert "images still asked (4 of its 4 answers), then answer the rest" in str(info.value)


def test_a_cut_item_id_of_a_queried_sample_is_not_called_a_query_change(tmp_path):
    for cut in (I1[:-1], I1[:5]):
        with pytest.raises(AlrError) as info:
            read_seeded(tmp_path, f"item_id,label\n{cut},0\n{I2},1\n{I3},2\n")
        assert "no longer holds" not in str(info.value) and "query changed" not in str(info.value), cut
    with pytest.raises(AlrError, match="cut short"):  # trailing text is no item id either
        read_seeded(tmp_path, f"item_id,label\n{I1[:5]},0\n{I2},1\n{I3},2\n")
    with pytest.raises(AlrError) as info:
        read_seeded(tmp_path, f"item_id,label\n{I1}x,0\n{I2},1\n{I3},2\n")
    assert "it is sample" not in str(info.value)


def test_a_sample_id_never_queried_says_the_query_may_have_changed(tmp_path):
    path = tmp_path / "round_1.csv"
    path.write_text("sample_id,label\nother,0\nq1,0\nq2,1\nq3,2\n")
    changed = "sample 'other' was not queried in this round; the round's query changed"
    with pytest.raises(AlrError, match=changed) as info:
        read_answers(path, QUERY, KNOWN, CLASSES, False, tmp_path / "annotate.html", 1, seed=0)
    assert str(info.value).endswith(f"answer the samples of the new query ({tmp_path / 'annotate.csv'} lists them)")
    path = tmp_path / "round_2.csv"
    path.write_text(f"item_id,label\n{item_ids(['q1'], 1, 5)[0]},0\n")
    with pytest.raises(AlrError, match=r"earlier query of this one\?\)$"):  # without the seed: no diagnosis
        read_answers(path, QUERY, KNOWN, CLASSES, False, tmp_path / "annotate.html", 1)
