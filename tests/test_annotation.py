"""The human oracle's answers file: every validation error names the file, line and problem."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from alr_core.active.labels import apply_answers, mark_skipped, training_rows
from alr_core.common.errors import AlrError
from alr_core.human.annotation import Answers, package_table, page_items, read_answers

CLASSES = ["Neutrophil", "Eosinophil", "Lymphocyte"]
QUERY = pd.DataFrame({"rank": [1, 2, 3], "sample_id": ["q1", "q2", "q3"], "score": [0.9, 0.8, 0.7],
                      "current_label": [0, 1, 2], "predicted_label": [1, 1, 0],
                      "confidence": [0.6, 0.7, 0.8]})  # fmt: skip
KNOWN = pd.Series(["q1", "q2", "q3", "other"])


def answers(tmp_path, text: str | bytes, allow_partial=False) -> Answers:
    path = tmp_path / "round_1.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return read_answers(path, QUERY, KNOWN, CLASSES, allow_partial, tmp_path / "annotate.html")


def rows(result: Answers) -> list[tuple]:
    """(sample_id, annotator, label) per answer; label -1 is a skip."""
    return list(result.table[["sample_id", "annotator", "label"]].itertuples(index=False, name=None))


def error(tmp_path, text, allow_partial=False) -> str:
    with pytest.raises(AlrError) as info:
        answers(tmp_path, text, allow_partial)
    return str(info.value)


def test_names_indices_and_skip_are_accepted(tmp_path):
    result = answers(tmp_path, "sample_id,label\nq1,Eosinophil\nq2,2\nq3,skip\n")
    assert rows(result) == [("q1", "expert", 1), ("q2", "expert", 2), ("q3", "expert", -1)]


def test_utf8_bom_crlf_blank_lines_and_agreeing_duplicates_are_accepted(tmp_path):
    text = "\ufeffsample_id,label\r\nq1,Neutrophil\r\n\r\nq1,0\r\nq2,Lymphocyte\r\nq3,SKIP\r\n"
    result = answers(tmp_path, text)
    assert rows(result) == [("q1", "expert", 0), ("q2", "expert", 2), ("q3", "expert", -1)]


def test_a_missing_file_says_how_many_answers_where_the_page_is_and_where_to_save(tmp_path):
    with pytest.raises(AlrError) as info:
        read_answers(tmp_path / "round_1.csv", QUERY, KNOWN, CLASSES, False, tmp_path / "annotate.html")
    message = str(info.value)
    assert "needs 3 expert answers" in message
    assert f"open {tmp_path / 'annotate.html'}" in message and f"save the file as {tmp_path / 'round_1.csv'}" in message


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("sample_id,label\nzz,0\nq2,0\nq3,0\n", "line 2: unknown sample_id 'zz'"),
        ("sample_id,label\nq1,0\nother,1\n", "line 3: sample 'other' was not queried in this round"),
        ("sample_id,label\nq1,0\nq2,0\nq1,Eosinophil\nq3,0\n",
         "line 4: sample 'q1' is answered twice with different labels ('Neutrophil' and 'Eosinophil')"),
        ("sample_id,label\nq1,Basophil\nq2,0\nq3,0\n", "line 2: label 'Basophil' is not a class"),
        ("sample_id,label\nq1,3\nq2,0\nq3,0\n", "line 2: label '3' is not a class"),
        ("", "the file is empty"),
        ("   \n", "the file is empty"),
        ("sample_id,label\n", "has a header but no answers"),
        ("sample_id,label\nq1,0\nq2\n", "line 3: expected 2 non-empty fields"),
        ("sample_id,label\nq1,\nq2,0\nq3,0\n", "line 2: expected 2 non-empty fields"),
        ("sample_id;label\nq1;0\n", "line 1 is separated by semicolons; expected commas"),
        ("sample_id\tlabel\nq1\t0\n", "line 1 is separated by tabs; expected commas"),
        ("id,answer\nq1,0\n", "line 1 is 'id,answer'; expected the header 'sample_id,label'"),
        ("sample_id,label\nq1,0\n", "2 of 3 queried samples have no answer: q2, q3"),
    ],
)
def test_each_problem_is_a_clear_error(tmp_path, text, fragment):
    message = error(tmp_path, text)
    assert fragment in message
    assert str(tmp_path / "round_1.csv") in message


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


def test_package_table_and_items_carry_suggestions_and_images(tmp_path):
    from PIL import Image

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
    assert [item["sample_id"] for item in items] == ["q1", "q2", "q3"]
    assert all(item["image_png"].startswith(b"\x89PNG") for item in items)
    with Image.open(io.BytesIO(items[0]["image_png"])) as preview:
        assert preview.size == (512, 341)  # the source file, shrunk to at most 512 px
    with Image.open(io.BytesIO(items[1]["image_png"])) as preview:
        assert preview.size == (4, 4) and np.array_equal(np.asarray(preview), images[2, ..., 0])
