"""alr_core.common.text: the near-miss guesses of error messages, and phase 1's line on what C keeps."""

from __future__ import annotations

import pytest

import numpy as np

from alr_core.common.text import close_match, did_you_mean, kept_text, shortened
from alr_core.evaluation.metrics import selection_metrics

CLASSES = ["Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil"]


@pytest.mark.parametrize("word, expected", [
    ("Lymphocite", " (did you mean 'Lymphocyte'?)"),
    ("monocyte", " (did you mean 'Monocyte'?)"),  # case is ignored, the guess spelt as the option
    ("NEUTROPHILL", " (did you mean 'Neutrophil'?)"),
    ("Basophil", ""),  # another class, 0.67 alike to Eosinophil: below the 0.8 bar
    ("Eosinophil", " (did you mean 'Eosinophil'?)"),  # an exact option is its own closest
    (3, ""),  # numbers are not guessed at
])
def test_did_you_mean_guesses_only_near_misses(word, expected):
    assert did_you_mean(word, CLASSES) == expected


def test_did_you_mean_skips_options_that_are_not_strings():
    assert did_you_mean("1", [1, 3]) == ""
    assert did_you_mean("auot", ["auto", 64]) == ""  # a transposition is 0.75 alike
    assert did_you_mean("autoo", ["auto", 64]) == " (did you mean 'auto'?)"


def test_close_match_keeps_difflibs_default_bar_and_the_first_of_equal_spellings():
    assert close_match("noise.rat", ["noise.rate", "noise.type"]) == "noise.rate"
    assert close_match("Basophil", CLASSES) == "Eosinophil"  # 0.67 ≥ the default 0.6
    assert close_match("mel", ["MEL", "mel "]) == "MEL"
    assert close_match("xyz", CLASSES) is None


def test_kept_text_gives_precision_and_worst_class_recall_or_without_the_truth_the_least_kept_class():
    observed = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    kept = np.array([1, 1, 1, 0, 1, 0, 0, 1, 1], dtype=bool)
    truth = np.array([0, 0, 1, 0, 1, 1, 1, 2, 0])
    with_truth = selection_metrics(kept, observed, truth, CLASSES[:3])
    # clean kept: 0, 1, 4, 7 of kept 0, 1, 2, 4, 7, 8; class Lymphocyte keeps 1 of its 3 clean samples
    assert kept_text(with_truth, 9) == "kept 6 of 9 train samples (precision 0.667, worst-class recall 0.333)"
    unknown = selection_metrics(kept, observed, None, CLASSES[:3])
    assert kept_text(unknown, 9) == ("kept 6 of 9 train samples (true labels unknown; the least kept class: "
                                     "Lymphocyte, 33% of its labels)")  # fmt: skip


def test_shortened_keeps_a_text_of_the_limit_whole():
    assert shortened("x" * 200) == "x" * 200
    assert shortened("x" * 201) == "x" * 200 + "… (201 characters)"
    assert shortened("abcd", 3) == "abc… (4 characters)"
