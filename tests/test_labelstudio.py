"""Label Studio tasks and config written by query, its JSON export and the multi-annotator CSV
read by oracle_relabel: every bad input is an error naming the file and the task id (or line)."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pandas as pd
import pytest
from test_annotation import CLASSES, I1, I2, I3, KNOWN, QUERY, rows

from alr_core.common.errors import AlrError
from alr_core.human.annotation import SKIP_LABEL, find_answers, read_answers
from alr_core.human.labelstudio import labeling_config, tasks

IMAGES_DIR = Path("data/rounds/4/images")
PACKAGE = pd.DataFrame({"rank": [1, 2], "item_id": [I1, I2], "sample_id": ["q1", "q2"],
                        "current_label": [0, 1], "current_class": ["Neutrophil", "Eosinophil"],
                        "suggested_label": [1, 2], "confidence": [0.6, 0.7],
                        "image": ["data/prepared/images.npy[0]", "cells/q2.png"]})  # fmt: skip
ITEMS = [{"image_png": b"\x89PNG-one"}, {"image_png": b"\x89PNG-two"}]


def test_config_is_xml_with_one_choice_per_class_escaped():
    names = ["a<b", 'say "x"', "c&d"]
    root = ElementTree.fromstring(labeling_config(names))
    choices = root.find("Choices")
    assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("label", "image", "single-radio")
    assert [c.get("value") for c in choices.findall("Choice")] == names
    assert root.find("Image").get("value") == "$image"
    assert root.find("Header").get("value") == "$item_id"


def test_tasks_embed_images_carry_item_ids_and_pre_annotations(tmp_path):
    made = tasks(PACKAGE, ITEMS, CLASSES, 4, None, IMAGES_DIR)
    assert [t["data"]["item_id"] for t in made] == [I1, I2]
    assert not any("sample_id" in t["data"] for t in made)
    assert base64.b64decode(made[0]["data"]["image"].removeprefix("data:image/png;base64,")) == b"\x89PNG-one"
    prediction = made[1]["predictions"][0]
    assert prediction["model_version"] == "alr round 4" and prediction["score"] == 0.7
    assert prediction["result"] == [{"id": "r4-2", "from_name": "label", "to_name": "image", "type": "choices",
                                     "value": {"choices": ["Lymphocyte"]}}]  # fmt: skip
    json.dumps(made)  # plain JSON types only


def test_tasks_reference_the_exported_copies_under_the_url_prefix():
    made = tasks(PACKAGE, ITEMS, CLASSES, 4, "/data/local-files/?d=", Path("data/rounds/4 (copy)/images"))
    # never the source path (cells/q2.png): the exported copy, for array-only samples too
    assert [t["data"]["image"] for t in made] == [f"/data/local-files/?d=data/rounds/4%20%28copy%29/images/{i}.png"
                                                  for i in (I1, I2)]  # fmt: skip



def test_tasks_data_carry_the_round_the_query_rank_and_the_current_class():
    made = tasks(PACKAGE.set_axis([5, 9]), ITEMS, CLASSES, 4, None, IMAGES_DIR)  # ranks, not the table's index
    assert [(t["data"]["round"], t["data"]["rank"], t["data"]["current_class"]) for t in made] == [
        (4, 1, "Neutrophil"), (4, 2, "Eosinophil")]  # fmt: skip

def annotation(user, choice=None, cancelled=False, number=1) -> dict:
    result = [] if choice is None else [{"id": f"x{number}", "from_name": "label", "to_name": "image",
                                         "type": "choices", "value": {"choices": [choice]}}]  # fmt: skip
    return {"id": number, "completed_by": user, "result": result, "was_cancelled": cancelled}


def task(task_id, item_id, *annotations) -> dict:
    return {"id": task_id, "data": {"image": "data:", "item_id": item_id}, "annotations": list(annotations)}


def export(tmp_path, content, allow_partial=False):
    path = tmp_path / "round_1.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return read_answers(path, QUERY, KNOWN, CLASSES, allow_partial, tmp_path / "annotate.html", 1)


def full_export(*extra) -> list:
    return [task(1, I1, annotation(7, "Eosinophil", number=1), annotation({"id": 8, "email": "b@x.org"}, "Neutrophil", number=2)),
            task(2, I2, annotation(7, "Lymphocyte", number=3), annotation({"id": 8, "email": "b@x.org"}, cancelled=True, number=4)),
            task(3, I3, annotation(7, "2", number=5)), *extra]  # fmt: skip


def test_export_with_two_annotators_skips_and_user_objects(tmp_path):
    # answers keyed by item id come back as sample ids
    result = export(tmp_path, full_export())
    assert rows(result) == [("q1", "7", 1), ("q1", "b@x.org", 0), ("q2", "7", 2), ("q2", "b@x.org", -1),
                            ("q3", "7", 2)]  # fmt: skip



def test_choices_of_other_controls_and_user_id_zero_are_read_as_label_studio_writes_them(tmp_path):
    # a project whose interface adds a second Choices control: only the 'label' control's choice is the answer
    quality = {"id": "q", "from_name": "quality", "to_name": "image", "type": "choices",
               "value": {"choices": ["blurry"]}}  # fmt: skip
    other = annotation(1, "Lymphocyte", number=5)
    content = full_export()[:2] + [task(3, I3, {**other, "result": [quality, *other["result"]]},
                                        annotation(0, "Neutrophil", number=6))]  # fmt: skip
    assert rows(export(tmp_path, content))[-2:] == [("q3", "0", 0), ("q3", "1", 2)]  # user 0 is "0", not "expert"


def test_an_export_saved_with_a_byte_order_mark_is_read(tmp_path):
    result = export(tmp_path, "\ufeff" + json.dumps(full_export()))
    assert rows(result) == rows(export(tmp_path, full_export())) and len(result.table) == 5

@pytest.mark.parametrize("content, fragment", [
    ("[{]", "not valid JSON (line 1, column 3"),
    ({"tasks": []}, "a list of tasks, got a JSON dict"),
    ([], "the export holds no tasks"),
    ([{"id": 7, "image": "x", "label": "Neutrophil"}], "task 7 has no 'annotations' list; export the project in"),
    ([{"id": 7, "data": {"image": "x", "sample_id": "q1"}, "annotations": []}],
     "task 7 has no data.item_id; import the tasks from the round's labelstudio_tasks.json"),
    ([{"id": 7, "data": {"image": "x", "item_id": ""}, "annotations": []}], "task 7 has no data.item_id; import"),
    ([task(1, I1, annotation(7, "Eosinophil")), "Neutrophil"], "item 2 is not a task object"),
    (full_export(task(7, I3, "Neutrophil")), "task 7: an annotation is not an object"),
    (full_export(task(7, "zz", annotation(7, "Neutrophil", number=9))),
     "task 7, annotation 9: unknown item_id 'zz': not one of the 3 items on this round's page"),
    (full_export(task(7, "q3", annotation(7, "Neutrophil", number=9))),
     "task 7, annotation 9: unknown item_id 'q3'"),  # a sample id is no item id
    (full_export(task(7, I3, annotation(7, "Basophil", number=9))),
     "task 7, annotation 9: label 'Basophil' is not a class"),
    (full_export(task(7, I3, annotation(9, number=9))), "task 7, annotation 9: expected one chosen class"),
    (full_export(task(7, I3, {**annotation(9, "Neutrophil", number=9),
                               "result": [{"from_name": "label", "type": "choices",
                                           "value": {"choices": ["Neutrophil", "Eosinophil"]}}]})),
     "task 7, annotation 9: expected one chosen class in the 'label' choices, got ['Neutrophil', 'Eosinophil']"),
    # hand-edited exports: a value that is no object, choices that are no list, a result that is no list
    (full_export(task(7, I3, {**annotation(9, number=9),
                               "result": [{"from_name": "label", "type": "choices", "value": "Neutrophil"}]})),
     "task 7, annotation 9: the 'label' choice's value is 'Neutrophil', not {'choices': [<class name>]}"),
    (full_export(task(7, I3, {**annotation(9, number=9),
                               "result": [{"from_name": "label", "type": "choices", "value": {"choices": "12"}}]})),
     "task 7, annotation 9: the 'label' choice's value is {'choices': '12'}, not {'choices': [<class name>]}"),
    (full_export(task(7, I3, {**annotation(9, number=9), "result": "Neutrophil"})),
     "task 7, annotation 9: expected one chosen class in the 'label' choices, got []"),
    (full_export(task(7, I1, annotation(7, "Lymphocyte", number=9))),
     f"task 7, annotation 9: item '{I1}' is answered twice by annotator '7' with different labels "
     "('Eosinophil' and 'Lymphocyte') — the first at task 1, annotation 1"),
    (full_export()[:2], f"1 of 3 queried items has no answer: {I3}"),
])  # fmt: skip
def test_each_bad_export_is_a_clear_error(tmp_path, content, fragment):
    with pytest.raises(AlrError) as info:
        export(tmp_path, content)
    assert fragment in str(info.value) and str(tmp_path / "round_1.json") in str(info.value)


@pytest.mark.parametrize("content, fragment", [
    ("[" * 100_000 + "]" * 100_000, "cannot read as Label Studio's JSON export (RecursionError"),
    ('[{"id": ' + "9" * 5000 + "}]", "cannot read as Label Studio's JSON export (ValueError: Exceeds the limit"),
])  # fmt: skip
def test_an_export_json_cannot_hold_is_a_clear_error(tmp_path, content, fragment):
    with pytest.raises(AlrError) as info:
        export(tmp_path, content)
    assert str(info.value).startswith(f"{tmp_path / 'round_1.json'}: {fragment}") and len(str(info.value)) < 500


def test_a_cut_one_line_export_with_a_large_image_is_invalid_json_not_a_csv_traceback(tmp_path):
    # looking for Label Studio's CSV header, csv read the first field: a 200 kB data URI, over its field limit
    content = json.dumps(full_export(task(7, I3, annotation(7, "Lymphocyte")) | {"data": {"image": "A" * 200_000}}))
    with pytest.raises(AlrError) as info:
        export(tmp_path, content[:-5])
    assert "not valid JSON (line 1" in str(info.value)


def test_ids_with_control_characters_reach_the_terminal_as_their_repr(tmp_path):
    content = full_export(task("\x1b[2J", I3, {**annotation(7, "Basophil"), "id": "\x1b[31m"}))
    with pytest.raises(AlrError) as info:
        export(tmp_path, content)
    assert "task '\\x1b[2J', annotation '\\x1b[31m': label 'Basophil' is not a class" in str(info.value)
    assert "\x1b" not in str(info.value)


def test_a_long_task_id_is_shortened_in_the_error(tmp_path):
    with pytest.raises(AlrError) as info:
        export(tmp_path, full_export({"id": "7" * 5_000, "data": {"item_id": I3}}))
    assert f"task {'7' * 200}… (5,000 characters) has no 'annotations' list" in str(info.value)
    assert len(str(info.value)) < 800


def test_an_export_for_an_earlier_query_points_at_the_new_tasks_not_the_page(tmp_path):
    path = tmp_path / "round_1.json"
    path.write_text(json.dumps(full_export()))  # answers q1..q3; the round now asks q1, q2
    with pytest.raises(AlrError) as info:
        read_answers(path, QUERY[:2], KNOWN, CLASSES, False, tmp_path / "annotate.html", 1, seed=0)
    assert "it is sample 'q3', which this round's query no longer holds" in str(info.value)
    assert str(info.value).endswith(f"import the round's new tasks {tmp_path / 'labelstudio_tasks.json'} into Label "
                                    "Studio and answer them (4 of the export's 5 answers are to images still asked)")
    assert "Load answers" not in str(info.value)  # the page loads files it saved, not Label Studio's


def test_a_repeated_agreeing_answer_counts_once_and_partial_exports_are_accepted_when_allowed(tmp_path):
    repeated = full_export(task(7, I3, annotation(7, "Lymphocyte", number=9)))
    assert len(export(tmp_path, repeated).table) == 5
    assert rows(export(tmp_path, full_export()[:1], allow_partial=True)) == [("q1", "7", 1), ("q1", "b@x.org", 0)]


def csv_answers(tmp_path, text):
    path = tmp_path / "round_1.csv"
    path.write_text(text)
    return read_answers(path, QUERY, KNOWN, CLASSES, False, tmp_path / "annotate.html", 1)


def test_csv_annotator_column_in_any_position(tmp_path):
    result = csv_answers(tmp_path, "annotator,sample_id,label\nann,q1,0\nbob,q1,1\nann,q2,skip\nann,q3,2\n")
    assert rows(result) == [("q1", "ann", 0), ("q1", "bob", 1), ("q2", "ann", -1), ("q3", "ann", 2)]
    # several experts' page downloads, merged with their names
    result = csv_answers(tmp_path, f"item_id,label,annotator\n{I1},0,ann\n{I1},1,bob\n{I2},skip,ann\n{I3},2,ann\n")
    assert rows(result) == [("q1", "ann", 0), ("q1", "bob", 1), ("q2", "ann", -1), ("q3", "ann", 2)]


@pytest.mark.parametrize("text, fragment", [
    ("sample_id,label,annotator\nq1,0,ann\nq1,1,ann\nq2,0,a\nq3,0,a\n",
     "line 3: sample 'q1' is answered twice by annotator 'ann' with different labels"),
    ("sample_id,label,annotator\nq1,0\n", "line 2: expected 3 non-empty fields"),
    ("sample_id,label,annotator\nq1,0,\n", "line 2: expected 3 non-empty fields"),
    ("sample_id,label,rater\nq1,0,a\n",
     "expected the header 'item_id,label' (as the annotation page saves it) or 'sample_id,label', with an "
     "'annotator' column when several annotators answer"),
])  # fmt: skip
def test_csv_annotator_errors(tmp_path, text, fragment):
    with pytest.raises(AlrError) as info:
        csv_answers(tmp_path, text)
    assert fragment in str(info.value)


def test_both_answers_files_for_one_round_is_ambiguous(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "annotations").mkdir()
    assert find_answers(2).as_posix() == "annotations/round_2.csv"  # neither: the CSV's missing-file message
    (tmp_path / "annotations" / "round_2.json").write_text("[]")
    assert find_answers(2).as_posix() == "annotations/round_2.json"
    (tmp_path / "annotations" / "round_2.csv").write_text("sample_id,label\n")
    with pytest.raises(AlrError, match="round 2 has two answers files, annotations/round_2.csv and "
                                       "annotations/round_2.json"):
        find_answers(2)


# --- a real export: Label Studio 1.23.2 through its REST API, from a real alr round (digits with 10
# class names holding spaces, accents, quotes, <&> and a comma): two users (ids 1 and 2), one of
# them accepting the model's pre-annotation, one skipping (was_cancelled, an empty result)
REAL = Path(__file__).parent / "fixtures"
REAL_CLASSES = ["zéro", "one two", 'quote "q"', "it's", "four<&>", "Ünïcode five", "six, comma", "seven", "eight",
                "nine"]  # fmt: skip
REAL_QUERY = pd.read_csv(REAL / "labelstudio_1.23.2_annotate.csv")[["item_id", "sample_id"]]


def read_real(tmp_path, fixture: str, saved_as: str = "round_1.json"):
    path = tmp_path / saved_as
    path.write_bytes((REAL / fixture).read_bytes())
    return read_answers(path, REAL_QUERY, REAL_QUERY["sample_id"], REAL_CLASSES, False, tmp_path / "annotate.html", 1,
                        annotators=2)  # fmt: skip


def test_a_real_label_studio_export_maps_every_answer_to_its_sample_and_class(tmp_path):
    table = read_real(tmp_path, "labelstudio_1.23.2_export.json").table
    assert sorted(table[["sample_id", "annotator", "label"]].itertuples(index=False, name=None)) == sorted([
        ("digits/0166", "1", 0), ("digits/0166", "2", 1),  # user 1 accepted the pre-annotation 'zéro'
        ("digits/1697", "1", 2), ("digits/1697", "2", 2),
        ("digits/0101", "1", 4), ("digits/0101", "2", 3),
        ("digits/1029", "1", SKIP_LABEL), ("digits/1029", "2", 0),  # user 1 skipped
        ("digits/0516", "1", 5), ("digits/0516", "2", 6)])  # fmt: skip


@pytest.mark.parametrize("fixture, saved_as, fragment", [
    ("labelstudio_1.23.2_export_min.json", "round_1.json", "has no 'annotations' list; export the project in Label "
                                                           "Studio's 'JSON' format (not JSON_MIN"),
    # cut down to item_id,label,annotator it would have been read, its skips lost without a word
    ("labelstudio_1.23.2_export.csv", "round_1.csv", "this is Label Studio's CSV export, which leaves out skipped"),
    ("labelstudio_1.23.2_export.csv", "round_1.json", "this is Label Studio's CSV export, which leaves out skipped"),
])  # fmt: skip
def test_a_real_label_studio_json_min_or_csv_export_is_refused_naming_it(tmp_path, fixture, saved_as, fragment):
    with pytest.raises(AlrError) as info:
        read_real(tmp_path, fixture, saved_as)
    assert str(info.value).startswith(f"{tmp_path / saved_as}: ") and fragment in str(info.value)
