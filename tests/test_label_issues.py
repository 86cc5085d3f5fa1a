"""The label-issue report (alr_core.report.label_issues, stages/label_issues.py): the ranked
table, the offline gallery and the metrics on hand-built arrays; the stage on the digits
default with embeddings written by hand; and, marked e2e, the stage under `dvc repro`."""

from __future__ import annotations

import base64
import io
import json
import re
import sys

import numpy as np
import pandas as pd
import pytest
from builders import copy_stage_tree, ran_stages, run, run_module, write_params
from PIL import Image

from alr_core.common import paths
from alr_core.common.errors import AlrError
from alr_core.common.params import default_params
from alr_core.lnl.feature_rules import (FOLD_SEED, cleanlab_kfold, knn_vote, probe_balanced_accuracy,
                                        validation_false_alarm_rates)
from alr_core.report.flag_notes import false_alarm_sentence, suggestion_sentence, validation_notes
from alr_core.report.label_issues import (COLUMNS, false_alarms_if_right, gallery_html, gallery_rows,
                                          label_issue_metrics, label_issue_table)
from alr_core.ssl.embeddings import embedding_matrix, embeddings_table

CLASSES = ["cat", "dog", "<b>&fish"]
# six samples, given ids out of order; the issue score is 1 − probs[i, label[i]]
IDS = ["s3", "s5", "s1", "s2", "s0", "s4"]
LABELS = np.array([0, 1, 1, 2, 0, 1])
PROBS = np.array([
    [0.1, 0.7, 0.2],  # s3: score 0.9, suggested dog
    [0.2, 0.2, 0.6],  # s5: score 0.8, suggested fish, no flag
    [0.2, 0.2, 0.6],  # s1: the same as s5: the id breaks the tie
    [0.3, 0.5, 0.2],  # s2: score 0.8 too, but two rules flag it: before s1 and s5
    [0.8, 0.1, 0.1],  # s0: score 0.2, suggested cat (its own label)
    [0.4, 0.4, 0.2],  # s4: score 0.6, suggested cat (a tie between cat and dog: the lower index)
])  # fmt: skip
NEIGHBOURS = np.array([[4, 1, 2], [2, 0, 3], [1, 0, 3], [0, 5, 4], [0, 3, 5], [3, 2, 1]])
FLAGS = {
    "knn_vote": np.array([False, False, False, True, False, True]),
    "cleanlab_kfold": np.array([True, False, False, True, False, False]),
}


def hand_table(**kwargs) -> pd.DataFrame:
    arguments = dict(sample_ids=IDS, labels=LABELS, class_names=CLASSES, probs=PROBS, neighbours=NEIGHBOURS,
                     flags=FLAGS, neighbours_shown=2) | kwargs  # fmt: skip
    return label_issue_table(**arguments)


def test_table_order_labels_flags_and_neighbours():
    table = hand_table()
    assert list(table.columns) == list(COLUMNS)
    assert table["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert table["sample_id"].tolist() == ["s3", "s2", "s1", "s5", "s4", "s0"]
    assert table["given_label"].tolist() == ["cat", "<b>&fish", "dog", "dog", "dog", "cat"]
    assert table["suggested_label"].tolist() == ["dog", "dog", "<b>&fish", "<b>&fish", "cat", "cat"]
    assert table["suggested_probability"].tolist() == pytest.approx([0.7, 0.5, 0.6, 0.6, 0.4, 0.8])
    assert table["issue_score"].tolist() == pytest.approx([0.9, 0.8, 0.8, 0.8, 0.6, 0.2])
    assert table["flagged_by"].tolist() == ["cleanlab_kfold", "knn_vote+cleanlab_kfold", "", "", "knn_vote", ""]
    # the first two of each neighbour list, nearest first, with their given labels
    s3, s2 = table.iloc[0], table.iloc[1]
    assert (s3["neighbour_ids"], s3["neighbour_labels"]) == ('["s0", "s5"]', '["cat", "dog"]')
    assert (s2["neighbour_ids"], s2["neighbour_labels"]) == ('["s3", "s4"]', '["cat", "dog"]')


def test_table_with_truth_and_without_rules_or_neighbours():
    truth = np.array([1, 1, 1, 1, 0, 0])  # s3 and s2 and s4 are wrong
    table = hand_table(flags={}, neighbours_shown=0, true_labels=truth)
    assert list(table.columns) == [*COLUMNS, "label_is_wrong"]
    # without rules, the s5/s1/s2 tie falls to the ids
    assert table["sample_id"].tolist() == ["s3", "s1", "s2", "s5", "s4", "s0"]
    assert table["label_is_wrong"].tolist() == [True, False, True, False, True, False]
    assert set(table["flagged_by"]) == {""} and set(table["neighbour_ids"]) == {"[]"}
    # more neighbours asked for than there are: all of them
    assert hand_table(neighbours_shown=10).iloc[0]["neighbour_ids"] == '["s0", "s5", "s1"]'
    # a name holding a separator, a quote or a non-ASCII letter comes back whole through a CSV file
    names = ['a;b', 'say "hi"', "é, ü"]
    table = label_issue_table(["x;1", "y", "z"], [0, 1, 2], names, np.full((3, 3), 1 / 3),
                              np.array([[1, 2], [0, 2], [0, 1]]), {}, neighbours_shown=2)  # fmt: skip
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    back = pd.read_csv(io.StringIO(buffer.getvalue()), keep_default_na=False).set_index("sample_id")
    assert json.loads(back.loc["y", "neighbour_ids"]) == ["x;1", "z"]
    assert json.loads(back.loc["x;1", "neighbour_labels"]) == ['say "hi"', "é, ü"]


def test_table_is_independent_of_the_input_order():
    order = np.array([5, 3, 1, 0, 4, 2])
    where = np.argsort(order)  # new position of each old row
    shuffled = hand_table(sample_ids=[IDS[i] for i in order], labels=LABELS[order], probs=PROBS[order],
                          neighbours=where[NEIGHBOURS[order]],
                          flags={rule: hits[order] for rule, hits in FLAGS.items()})  # fmt: skip
    pd.testing.assert_frame_equal(shuffled, hand_table())


@pytest.mark.parametrize("change, message", [
    ({"labels": LABELS[:5]}, "labels must be integers of shape (6,)"),
    ({"labels": LABELS + 1}, "labels must lie in [0, 3)"),
    ({"probs": PROBS[:, :2]}, "probs must be finite of shape (6, 3)"),
    ({"neighbours": NEIGHBOURS + 1}, "neighbours must be row indices in [0, 6)"),
    ({"flags": {"knn_vote": FLAGS["knn_vote"][:3]}}, "flags['knn_vote'] must be bool of shape (6,)"),
    ({"flags": {"a+b": FLAGS["knn_vote"]}}, "rule name 'a+b'"),
    ({"sample_ids": ["s3"] * 6}, "sample_ids repeat an id"),
    ({"true_labels": LABELS[:2]}, "true_labels has shape (2,)"),
], ids=["labels-shape", "labels-range", "probs", "neighbours", "flags", "rule-name", "ids", "truth"])  # fmt: skip
def test_table_refuses_bad_inputs(change, message):
    with pytest.raises(AlrError) as error:
        hand_table(**change)
    assert message in str(error.value)


# ----------------------------------------------------------------------------- the gallery

GALLERY_IDS = ["Neutro<phil>/a&b.png", "x;1", "y\"q", "z", "w", "v"]  # a ";" too: ids are never parsed back
IMAGE_VALUES = [10, 50, 90, 130, 170, 210]  # sample i's image is one grey level


def gallery_of(gallery_size: int, rgb: bool = False) -> tuple[str, pd.DataFrame]:
    table = hand_table(sample_ids=GALLERY_IDS)
    images = np.stack([np.full((6, 6, 3 if rgb else 1), value, np.uint8) for value in IMAGE_VALUES])
    return gallery_html(table, GALLERY_IDS, images, NEIGHBOURS, gallery_size, neighbours_shown=2), table


def decoded(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.removeprefix("data:image/png;base64,")))))


def test_gallery_shows_flagged_first_with_escaped_text_and_the_right_images():
    page, table = gallery_of(4)
    shown = gallery_rows(table, 4)
    # flagged rows (rank 1, 2, 5) first, then the best unflagged one
    assert shown["rank"].tolist() == [1, 2, 5, 3]
    ids_in_page = re.findall(r'<div class="id">(.*?)</div>', page)
    assert ids_in_page == ["Neutro&lt;phil&gt;/a&amp;b.png", "z", "v", "x;1"]  # s3, s2, s4, s5
    assert "&lt;b&gt;&amp;fish" in page and "<b>&fish" not in page
    assert "Neutro<phil>" not in page
    # one picture per shown sample and per shown neighbour (2 each), each image's data embedded once
    pictures = re.findall(r'<span class="pic (main|neighbour) p(\d+)" role="img" aria-label="([^"]*)">', page)
    assert [kind for kind, _, _ in pictures].count("main") == 4 and len(pictures) == 4 * 3
    uris = dict(re.findall(r'\.p(\d+) \{ background-image: url\("(data:image/png;base64,[A-Za-z0-9+/=]+)"\); \}', page))
    assert set(uris) == {row for _, row, _ in pictures} and page.count("data:image/png;base64,") == len(uris) < 12
    # the first card's image is s3's (grey 10), its neighbours s0 (grey 170) and s5 (grey 50)
    assert [int(decoded(uris[row]).max()) for _, row, _ in pictures[:3]] == [10, 170, 50]
    assert [label for _, _, label in pictures[:3]] == ["Neutro&lt;phil&gt;/a&amp;b.png", "w", "x;1"]
    assert re.findall(r'<figure class="(\w+)" title="([^"]*)"', page)[:2] == [("same", "w"), ("differs", "x;1")]
    assert "knn_vote + cleanlab_kfold" in page and "no rule" in page
    # offline: no URL, no script, a policy that forbids loading anything but data: images
    assert not re.search(r"https?:", page) and "<script" not in page
    assert "default-src 'none'; img-src data:" in page


def test_gallery_cards_say_how_sure_the_suggestion_is_and_never_show_a_label_changing_into_itself():
    page, _ = gallery_of(6)
    labels = re.findall(r'<div class="labels">(.*?)</div>', page)
    # s3 (score 0.9): dog at 0.7; s0: its own label cat is the probe's top class, shown once, not "cat → cat"
    assert labels[0] == ('<span class="given">cat</span> &rarr; <span class="suggested">dog</span> '
                         '<span class="agrees">(p&nbsp;=&nbsp;0.70)</span>')  # fmt: skip
    assert labels[-1] == ('<span class="kept">cat</span> <span class="agrees">(the probe\'s top class too, '
                          'p&nbsp;=&nbsp;0.80)</span>')  # fmt: skip
    # a neighbour with another label is marked in its text, not by colour alone; a card stays whole on paper
    assert re.findall(r'<figure class="differs" title="x;1">.*?<figcaption>(.*?)</figcaption>', page)[0] == (
        '<span class="mark">&ne; </span>dog')
    assert "break-inside: avoid" in page


def test_gallery_heading_ends_with_the_note_escaped():
    table = hand_table(sample_ids=GALLERY_IDS)
    images = np.zeros((6, 4, 4, 1), np.uint8)
    heading = re.compile(r'<p class="lead">(.*?)\. Each row', re.S)
    without = heading.search(gallery_html(table, GALLERY_IDS, images, NEIGHBOURS, 2)).group(1)
    assert without == "6 train samples, 3 flagged by a rule; 2 samples shown, flagged first, then by rank"
    page = gallery_html(table, GALLERY_IDS, images, NEIGHBOURS, 2, note="right for 46% <of> 35")
    assert heading.search(page).group(1) == f"{without}; right for 46% &lt;of&gt; 35"
    assert suggestion_sentence(0.464, 1) == ("the suggested label scores a balanced accuracy of 46% on the 1 "
                                             "validation image (its mean recall per class): the lower, the more "
                                             "flags are false alarms")  # fmt: skip



def test_gallery_heading_counts_the_flagged_samples_not_the_others():
    # one flagged sample of six (the hand table's 3 of 6 cannot tell the two counts apart)
    flags = {"knn_vote": np.array([False, False, False, False, False, True])}
    table = hand_table(sample_ids=GALLERY_IDS, flags=flags)
    page = gallery_html(table, GALLERY_IDS, np.zeros((6, 4, 4, 1), np.uint8), NEIGHBOURS, 2)
    assert "6 train samples, 1 flagged by a rule; 2 samples shown" in page

@pytest.mark.parametrize("size, cards", [(0, 0), (6, 6), (100, 6)])
def test_gallery_size_zero_and_beyond_the_table(size, cards):
    page, _ = gallery_of(size, rgb=True)
    assert page.count('<section class="card') == cards
    assert page.count('<span class="pic ') == 3 * cards
    if cards == 0:
        assert "no samples shown" in page


def test_gallery_refuses_arrays_that_are_not_the_tables():
    images = np.zeros((6, 4, 4, 1), np.uint8)
    with pytest.raises(AlrError, match="the gallery needs the table's 6 samples once each"):
        gallery_html(hand_table(), IDS, images[:5], NEIGHBOURS, 3)
    with pytest.raises(AlrError, match="the table's sample 's3' is not among the gallery's sample ids"):
        gallery_html(hand_table(), GALLERY_IDS, images, NEIGHBOURS, 3)


# ----------------------------------------------------------------------------- metrics


def test_metrics_with_known_truth_by_hand():
    # ranked order s3 s2 s1 s5 s4 s0 (scores 0.9 0.8 0.8 0.8 0.6 0.2); wrong: s3 and s5
    truth = np.array([1, 0, 1, 2, 0, 1])  # rows s3, s5, s1, s2, s0, s4: s3 and s5 differ from LABELS
    flags = FLAGS | {"silent": np.zeros(6, bool)}
    table = hand_table(flags=flags, true_labels=truth)
    assert table["label_is_wrong"].tolist() == [True, False, False, True, False, False]
    metrics = label_issue_metrics(table, CLASSES, list(flags))
    assert metrics == {
        "num_train": 6,
        "flagged": {"knn_vote": 2, "cleanlab_kfold": 2, "silent": 0, "any": 3},
        "flagged_per_class": {  # by given label: s3 cat; s2 fish; s4 dog
            "cat": {"knn_vote": 0, "cleanlab_kfold": 1, "silent": 0, "any": 1},
            "dog": {"knn_vote": 1, "cleanlab_kfold": 0, "silent": 0, "any": 1},
            "<b>&fish": {"knn_vote": 1, "cleanlab_kfold": 1, "silent": 0, "any": 1},
        },
        "num_wrong": 2,
        # knn_vote flags s2, s4 (neither wrong); cleanlab_kfold s3 (wrong), s2; any: s3, s2, s4
        "precision": {"knn_vote": 0.0, "cleanlab_kfold": 0.5, "silent": None, "any": pytest.approx(1 / 3)},
        "recall": {"knn_vote": 0.0, "cleanlab_kfold": 0.5, "silent": 0.0, "any": 0.5},
        # wrong s3 (0.9) beats all 4 right ones; wrong s5 (0.8) beats s4 and s0, ties s2 and s1
        "ranking_auroc": pytest.approx((4 + 2 + 0.5 * 2) / (2 * 4)),
        "ranking_precision_at_num_wrong": 0.5,  # s3, s2
        "suggestion_val_balanced_accuracy": None,
        "num_val": None,
        "val_false_alarms": None,
    }
    json.dumps(metrics, allow_nan=False)



def test_metrics_count_a_rule_only_under_its_own_name_not_within_another():
    # "knn" is part of "knn_vote": a sample only knn_vote flags is no knn flag
    flags = {"knn_vote": np.array([False, False, False, True, False, True]),
             "knn": np.array([False, False, False, True, False, False])}  # fmt: skip
    metrics = label_issue_metrics(hand_table(flags=flags), CLASSES, list(flags))
    assert metrics["flagged"] == {"knn_vote": 2, "knn": 1, "any": 2}

def test_ranking_precision_at_num_wrong_counts_only_the_first_num_wrong_rows():
    # ranked order s3 s2 s1 s5 s4 s0; wrong: s3 (row 1) and s1 (row 3), so 1 of the first 2
    # rows is wrong, though the third row is wrong too
    truth = np.array([1, 1, 0, 2, 0, 1])  # rows s3, s5, s1, s2, s0, s4: s3 and s1 differ from LABELS
    table = hand_table(true_labels=truth)
    assert table["label_is_wrong"].tolist() == [True, False, True, False, False, False]
    assert label_issue_metrics(table, CLASSES, list(FLAGS))["ranking_precision_at_num_wrong"] == 0.5


def test_metrics_without_truth_and_with_every_label_wrong():
    metrics = label_issue_metrics(hand_table(), CLASSES, list(FLAGS), np.float64(0.625), np.int64(8))
    assert set(metrics) == {"num_train", "flagged", "flagged_per_class", "suggestion_val_balanced_accuracy", "num_val",
                            "val_false_alarms"}
    assert (metrics["suggestion_val_balanced_accuracy"], metrics["num_val"]) == (0.625, 8) and json.dumps(metrics)
    all_wrong = label_issue_metrics(hand_table(true_labels=(LABELS + 1) % 3), CLASSES, list(FLAGS))
    assert all_wrong["ranking_auroc"] is None and all_wrong["ranking_precision_at_num_wrong"] == 1.0
    none_wrong = label_issue_metrics(hand_table(true_labels=LABELS), CLASSES, list(FLAGS))
    assert none_wrong["recall"] == {"knn_vote": None, "cleanlab_kfold": None, "any": None}
    assert none_wrong["ranking_precision_at_num_wrong"] is None


def test_metrics_put_the_validation_false_alarm_rate_against_the_flags():
    # flagged by knn_vote or cleanlab_kfold: s3, s2, s4 (3 of 6); identical_copy is not estimated
    flags = FLAGS | {"identical_copy": np.array([False, True, False, False, False, False])}
    rates = {"knn_vote": 0.2, "cleanlab_kfold": 0.1, "either": 0.25}
    metrics = label_issue_metrics(hand_table(flags=flags), CLASSES, list(flags), 0.5, 20, rates)
    assert metrics["flagged"]["any"] == 4
    # 0.25 of right labels flagged: were all 6 right, 1.5 → 2 of the 3 flags would be false alarms
    assert metrics["val_false_alarms"] == {"rate": rates, "flagged": 3, "if_labels_right": 2}
    json.dumps(metrics, allow_nan=False)
    for bad in ({"knn_vote": 0.2}, {"knn_vote": 0.2, "other": 0.1, "either": 0.2}, {"either": 0.2}):
        with pytest.raises(AlrError, match="false_alarm_rates has the keys .*; expected rules among"):
            label_issue_metrics(hand_table(flags=flags), CLASSES, list(flags), 0.5, 20, bad)


@pytest.mark.parametrize("rate, num_train, flagged, expected", [(0.25, 6, 3, 2), (0.5, 10, 3, 3), (0.0, 10, 5, 0),
                                                                (0.05, 10, 5, 1), (1.0, 4, 4, 4)])  # fmt: skip
def test_false_alarms_if_right_are_the_rate_of_all_samples_at_most_the_flags(rate, num_train, flagged, expected):
    assert false_alarms_if_right(rate, num_train, flagged) == expected


@pytest.mark.parametrize("rate, flagged", [(1.5, 3), (-0.1, 3), (0.5, 11), (0.5, -1)])
def test_false_alarms_if_right_reject_impossible_inputs(rate, flagged):
    with pytest.raises(AlrError, match="must lie in \\[0, 1\\] and flagged .* in \\[0, num_train = 10\\]"):
        false_alarms_if_right(rate, 10, flagged)


def test_validation_notes_say_what_was_measured():
    alarms = {"rate": {"knn_vote": 0.3, "cleanlab_kfold": 0.2, "either": 0.391}, "flagged": 548, "if_labels_right": 425}
    assert false_alarm_sentence(alarms, 120, 1088) == (
        "the rules would flag about 39% of right train labels (measured on the 120 validation labels, which alr "
        "takes as right, each class weighted by its train count): if the train labels are mostly right too, about "
        "425 of the 548 train samples they flag are false alarms")  # fmt: skip
    both = {"val_false_alarms": alarms, "suggestion_val_balanced_accuracy": 0.464, "num_val": 120, "num_train": 1088}
    assert validation_notes(both) == f"{false_alarm_sentence(alarms, 120, 1088)}; {suggestion_sentence(0.464, 120)}"
    # metrics from before the false alarms were estimated
    assert validation_notes(both | {"val_false_alarms": None}) == suggestion_sentence(0.464, 120)
    assert validation_notes({"suggestion_val_balanced_accuracy": 0.464, "num_val": 120}) == suggestion_sentence(0.464,
                                                                                                                120)
    assert validation_notes({"suggestion_val_balanced_accuracy": None, "num_val": 0, "val_false_alarms": None}) is None



def test_validation_notes_weigh_the_flags_against_the_train_split_not_the_validation_split():
    # 5 of 100 train labels flagged at a 10 % false-alarm rate: no more often than right ones
    # (against the 20 validation labels, 5 > 0.1 · 20 would read as counted false alarms)
    alarms = {"rate": {"knn_vote": 0.1, "either": 0.1}, "flagged": 5, "if_labels_right": 5}
    notes = validation_notes({"val_false_alarms": alarms, "num_val": 20, "num_train": 100})
    assert notes == false_alarm_sentence(alarms, 20, 100)
    assert notes.endswith("and flag 5% of the train labels: no more often than right ones, so the train flags may all "
                          "be false alarms")  # fmt: skip

def test_false_alarm_sentence_when_train_labels_are_flagged_no_more_than_right_ones():
    # BCCD's own labels at 64 px: 45 % of validation labels flagged, 87 of 245 train labels (36 %);
    # "about 87 of the 87 are false alarms" would read as a count, where the flags cannot be told apart
    alarms = {"rate": {"knn_vote": 0.4, "cleanlab_kfold": 0.2, "either": 0.45}, "flagged": 87, "if_labels_right": 87}
    assert false_alarm_sentence(alarms, 35, 245) == (
        "the rules would flag about 45% of right train labels (measured on the 35 validation labels, which alr "
        "takes as right, each class weighted by its train count), and flag 36% of the train labels: no more often "
        "than right ones, so the train flags may all be false alarms")  # fmt: skip
    # exactly the validation share is no more often either; one flag more is counted
    assert "may all be false alarms" in false_alarm_sentence(alarms | {"flagged": 110}, 35, 245)  # 0.45 · 245 = 110.25
    # rate · num_train exactly equal to the flags (0.5 · 100 = 50) is still no more often
    even = {"rate": {"knn_vote": 0.5, "cleanlab_kfold": 0.0, "either": 0.5}, "flagged": 50, "if_labels_right": 50}
    assert false_alarm_sentence(even, 35, 100).endswith("flag 50% of the train labels: no more often than right "
                                                        "ones, so the train flags may all be false alarms")  # fmt: skip
    one_more = alarms | {"flagged": 111, "if_labels_right": 110}
    assert false_alarm_sentence(one_more, 35, 245).endswith("about 110 of the 111 train samples they flag are "
                                                            "false alarms")  # fmt: skip
    nothing = {"rate": {"knn_vote": 0.0, "cleanlab_kfold": 0.0, "either": 0.0}, "flagged": 0, "if_labels_right": 0}
    assert false_alarm_sentence(nothing, 35, 245).endswith("each class weighted by its train count), and flag no train "
                                                           "label")  # fmt: skip


# ----------------------------------------------------------------------------- the stage


def write_class_embeddings(root, noise: float = 0.3) -> None:
    """data/pretrain/embeddings.parquet for the prepared samples: each sample's true class as
    a one-hot vector plus Gaussian noise, so the features know the truth and the labels do not."""
    samples = pd.read_parquet(root / paths.PREPARED_SAMPLES)
    rng = np.random.default_rng(0)
    onehot = np.eye(samples["label"].max() + 1, dtype=np.float32)[samples["label"].to_numpy()]
    embeddings = onehot + noise * rng.standard_normal(onehot.shape).astype(np.float32)
    path = root / paths.PRETRAIN_EMBEDDINGS
    path.parent.mkdir(parents=True, exist_ok=True)
    embeddings_table(samples, embeddings).to_parquet(path, index=False)


def run_stages(root, *modules: str) -> str:
    for module in modules:
        result = run_module(module, root)
        assert result.returncode == 0, f"{module}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def prepared_tree(tmp_path_factory):
    """A stage tree (conftest's stage_tree) with the digits default prepared once for the
    module; each test writes its params and runs inject_noise and label_issues itself."""
    root = copy_stage_tree(tmp_path_factory.mktemp("label_issues") / "project")
    run_stages(root, "stages.fingerprint", "stages.prepare")
    return root


def test_stage_ranks_the_injected_noise_first(prepared_tree):
    """The stage on the digits default (528 train samples, 40 % symmetric noise) with embeddings
    that know the true class: the ranking and both rules find the flipped labels. No torch."""
    stage_tree = prepared_tree
    write_params(stage_tree)
    run_stages(stage_tree, "stages.inject_noise")
    write_class_embeddings(stage_tree)
    # a copy of one train image filed under another label: both copies are flagged
    noisy = pd.read_parquet(stage_tree / paths.NOISY_LABELS)
    other_label = noisy["observed_label"] != noisy["observed_label"][0]
    original, copy = noisy["sample_id"][0], noisy["sample_id"][other_label].iloc[0]
    row = {s: i for i, s in enumerate(pd.read_parquet(stage_tree / paths.PREPARED_SAMPLES)["sample_id"])}
    images = np.load(stage_tree / paths.PREPARED_IMAGES)
    images[row[copy]] = images[row[original]]
    np.save(stage_tree / paths.PREPARED_IMAGES, images)
    code = ("import sys, runpy\nsys.argv = ['label_issues']\n"
            "runpy.run_module('stages.label_issues', run_name='__main__')\n"
            "print('torch imported:', 'torch' in sys.modules)\n")  # fmt: skip
    result = run([sys.executable, "-c", code], stage_tree)
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout
    noise = json.loads((stage_tree / paths.NOISE_METRICS).read_text())
    table = pd.read_csv(stage_tree / paths.LABEL_ISSUES_CSV, keep_default_na=False)
    labels = pd.read_parquet(stage_tree / paths.NOISY_LABELS)
    assert sorted(table["sample_id"]) == sorted(labels["sample_id"]) and table["rank"].tolist() == list(
        range(1, len(labels) + 1))
    assert table["issue_score"].is_monotonic_decreasing
    truth = labels.set_index("sample_id")["is_corrupted"]
    assert table["label_is_wrong"].tolist() == truth[table["sample_id"]].tolist()
    # the flags are exactly the phase-1 rules' (the stage computes each probability table once)
    by_id = table.set_index("sample_id").loc[labels["sample_id"]]
    embeddings = embedding_matrix(pd.read_parquet(stage_tree / paths.PRETRAIN_EMBEDDINGS).set_index("sample_id")
                                  .loc[labels["sample_id"]])  # fmt: skip
    observed, lnl = labels["observed_label"].to_numpy(), default_params()["lnl"]
    rules = {"knn_vote": knn_vote(embeddings, observed, 10, lnl["knn_k"])[0],
             "cleanlab_kfold": cleanlab_kfold(embeddings, observed, 10, lnl["cv_folds"], FOLD_SEED)[0]}  # fmt: skip
    for rule, keep in rules.items():
        assert (by_id["flagged_by"].str.contains(rule).to_numpy() == ~keep).all(), rule
    metrics = json.loads((stage_tree / paths.LABEL_ISSUES_METRICS).read_text())
    page = (stage_tree / paths.LABEL_ISSUES_GALLERY).read_text()
    assert metrics["num_train"] == len(labels) and metrics["num_wrong"] == noise["num_corrupted"]
    # measured: AUROC 0.994, precision among the first 202 0.950; precision and recall of
    # cleanlab_kfold 0.956 and 0.861, of knn_vote 0.932 and 0.886, of either 0.910 and 0.950
    assert metrics["ranking_auroc"] > 0.98 and metrics["ranking_precision_at_num_wrong"] > 0.9
    for rule in ("cleanlab_kfold", "knn_vote", "any"):
        assert metrics["precision"][rule] > 0.85 and metrics["recall"][rule] > 0.8, rule
    assert f"label issues: {metrics['flagged']['any']} of {len(labels)} train samples flagged" in result.stdout
    assert metrics["flagged"]["identical_copy"] == 2
    assert table.set_index("sample_id").loc[[original, copy], "flagged_by"].str.contains("identical_copy").all()
    # the probe behind the suggestions, scored on the validation split's (clean) labels
    val = pd.read_parquet(stage_tree / paths.PREPARED_SAMPLES).query("split == 'val'")
    val_embeddings = embedding_matrix(pd.read_parquet(stage_tree / paths.PRETRAIN_EMBEDDINGS).set_index("sample_id")
                                      .loc[val["sample_id"]])  # fmt: skip
    accuracy = probe_balanced_accuracy(embeddings, observed, val_embeddings, val["label"].to_numpy(), 10)
    # the embeddings know the truth, the probe learns from 40 % wrong labels (measured 0.86: the
    # rare classes' labels are mostly flipped in)
    assert metrics["suggestion_val_balanced_accuracy"] == accuracy > 0.8 and metrics["num_val"] == len(val) == 150
    # the rules' false alarms on the validation labels, against those on the right train labels
    # (measured: 0.085 estimated, 0.058 actual; 45 of the 211 flags would be false alarms were all 528
    # labels right, and 19 are, with 40 % of them wrong)
    rates = validation_false_alarm_rates(embeddings, observed, val_embeddings, val["label"].to_numpy(), 10,
                                         lnl["knn_k"], lnl["cv_folds"])  # fmt: skip
    either = by_id["flagged_by"].str.contains("knn_vote|cleanlab_kfold")
    assert metrics["val_false_alarms"] == {"rate": rates, "flagged": either.sum(),
                                           "if_labels_right": round(rates["either"] * len(labels))}  # fmt: skip
    right = ~by_id["label_is_wrong"]
    assert abs(rates["either"] - either[right].mean()) < 0.03
    assert (either & right).sum() <= metrics["val_false_alarms"]["if_labels_right"]  # all 528 taken as right
    sentence = validation_notes(metrics)
    assert sentence == (f"{false_alarm_sentence(metrics['val_false_alarms'], 150, len(labels))}; "
                        f"{suggestion_sentence(accuracy, 150)}")  # fmt: skip
    assert f"label issues: {sentence} (docs/label_issues.md)" in result.stdout and sentence in page
    assert page.count('<section class="card') == 100 == metrics["num_in_gallery"]  # label_issues.gallery_size's default
    assert page.count('<span class="pic ') == 100 * (1 + 5)  # label_issues.neighbours_shown's default
    with Image.open(stage_tree / paths.EMBEDDING_MAP_FIGURE) as figure:
        assert figure.format == "PNG" and figure.width > 600
    assert metrics["num_in_map"] == 528  # every train sample: fewer than label_issues.map_size's default
    assert f"528 on a map of the embeddings in {paths.EMBEDDING_MAP_FIGURE}" in result.stdout


def test_stage_with_unknown_truth_and_a_missing_input(prepared_tree):
    stage_tree = prepared_tree
    write_params(stage_tree, {"noise": {"type": "none"}, "al": {"oracle": "human"},
                              "label_issues": {"gallery_size": 3, "neighbours_shown": 1}})
    run_stages(stage_tree, "stages.inject_noise")
    (stage_tree / paths.PRETRAIN_EMBEDDINGS).unlink(missing_ok=True)
    missing = run_module("stages.label_issues", stage_tree)
    assert missing.returncode == 1
    assert missing.stderr.strip() == ("error: data/pretrain/embeddings.parquet: not found; run the pretrain stage "
                                      "first (dvc repro pretrain)")  # fmt: skip
    write_class_embeddings(stage_tree)
    run_stages(stage_tree, "stages.label_issues")
    table = pd.read_csv(stage_tree / paths.LABEL_ISSUES_CSV, keep_default_na=False)
    assert list(table.columns) == list(COLUMNS)  # no label_is_wrong without the truth
    assert all(len(json.loads(cell)) == 1 for cell in table["neighbour_ids"])  # neighbours_shown: 1
    metrics = json.loads((stage_tree / paths.LABEL_ISSUES_METRICS).read_text())
    assert set(metrics) == {"num_train", "flagged", "flagged_per_class", "suggestion_val_balanced_accuracy", "num_val",
                            "val_false_alarms", "num_in_gallery", "num_in_map"}
    assert metrics["num_in_gallery"] == 3
    page = (stage_tree / paths.LABEL_ISSUES_GALLERY).read_text()
    assert page.count('<section class="card') == 3 and page.count('<span class="pic ') == 3 * 2
    assert Image.open(stage_tree / paths.EMBEDDING_MAP_FIGURE).format == "PNG"
    assert metrics["num_in_map"] == len(table)  # every train sample: fewer than label_issues.map_size
    write_params(stage_tree, {"noise": {"type": "none"}, "al": {"oracle": "human"}, "label_issues": {"map_size": 0}})
    result = run_stages(stage_tree, "stages.label_issues")
    assert json.loads((stage_tree / paths.LABEL_ISSUES_METRICS).read_text())["num_in_map"] == 0
    assert f"no map of the embeddings (the figure says why) in {paths.EMBEDDING_MAP_FIGURE}" in result


@pytest.mark.e2e
def test_label_issues_under_dvc_reruns_only_for_its_own_inputs(project_copy):
    tiny = {"data": {"image_size": 8, "val_per_class": 5, "test_per_class": 5}, "train": {"device": "cpu"},
            "label_issues": {"gallery_size": 10}}  # fmt: skip
    project_copy.write_params(tiny)
    first = project_copy.dvc("repro", "label_issues")
    ran = ran_stages(first.stdout)
    # DVC orders a target's independent upstream stages (pretrain, inject_noise) by string hashes
    assert ran[0] == "prepare" and sorted(ran[1:3]) == ["inject_noise", "pretrain"], first.stdout
    assert ran[3:] == ["label_issues"], first.stdout
    root = project_copy.root
    assert len(pd.read_csv(root / paths.LABEL_ISSUES_CSV)) == 669
    assert (root / paths.LABEL_ISSUES_GALLERY).read_text().count('<section class="card') == 10
    for change in ({"budget": 200}, {"al": {"strategy": "margin"}}, {"lnl": {"epochs": 3}}):
        project_copy.write_params(tiny | change)
        assert ran_stages(project_copy.dvc("repro", "label_issues").stdout) == [], change
    project_copy.write_params(tiny | {"lnl": {"knn_k": 5}})
    assert ran_stages(project_copy.dvc("repro", "label_issues").stdout) == ["label_issues"]
