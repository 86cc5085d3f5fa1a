"""alr_core.common.text: the near-miss guesses of error messages."""

from __future__ import annotations

import pytest

from alr_core.common.text import close_match, did_you_mean

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
