"""Small helpers for the text of user-facing messages."""

import difflib
import unicodedata


def composed(name: str) -> str:
    """``name`` in Unicode's composed form (NFC), so that one class name typed on different
    systems ('é' as one character, or 'e' and an accent, as macOS writes file names) compares equal."""
    return unicodedata.normalize("NFC", name)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun`` in the matching number: "1 expert answer", "3 expert answers"
    (``plural`` for nouns that do not just take an "s")."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def shortened(text: str, limit: int = 200) -> str:
    """``text`` up to ``limit`` characters; longer, its start, an ellipsis and its length (a
    stray quote can make a whole file one CSV field, which must not fill an error message)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def rounded(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals for a message; "n/a" when it is not known (None)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def method_name(method: str, selection_rule: str | None) -> str:
    """Phase 1's method as messages and the report name it, from lnl.json's ``method`` and
    ``selection_rule`` (which plain CE records only for a feature rule): "ce + cleanlab_kfold",
    which would otherwise read as the safety net's plain CE; otherwise ``method``."""
    return f"{method} + {selection_rule}" if method == "ce" and selection_rule else method


def lead_text(lead: dict | None) -> str:
    """", paired test p = 0.012" for CE's validation lead (``lead``: lnl.json's
    ``safety_net.ce_lead``), saying when the lead is within the split's noise; "" for a record
    written before the test existed."""
    if lead is None:
        return ""
    noise = "" if lead["significant"] else ", within the split's noise"
    return f", paired test p = {lead['p_value']:.3f}{noise}"


def safety_net_sentence(net: dict) -> str:
    """The warning when plain CE scored higher than the phase-1 method on the validation split,
    with the paired test's p-value of CE's lead (``net``: lnl.json's ``safety_net``), for the
    lnl_train stage's output and the summary."""
    outcome = ("phase 1 hands on CE's model (lnl.safety_net: pick)" if net["used"] == "ce"
               else "phase 1 kept the method's model; lnl.safety_net: pick would use CE's")  # fmt: skip
    return (f"safety net: plain CE scored higher on the validation split than the phase-1 method "
            f"({net['ce_val_balanced_accuracy']:.3f} vs {net['method_val_balanced_accuracy']:.3f} balanced "
            f"accuracy{lead_text(net.get('ce_lead'))}); {outcome}")


def kept_text(selection: dict, num_train: int) -> str:
    """"kept 865 of 1080 train samples (precision 0.91, worst-class recall 0.74)" from lnl.json's
    ``selection``. Without the truth (``recall_per_class`` None) it names instead the observed
    class of which C keeps the smallest share: "(true labels unknown; the least kept class:
    referable, 62% of its labels)"."""
    kept = f"kept {selection['kept']} of {counted(num_train, 'train sample')}"
    if selection["recall_per_class"] is not None:
        return (f"{kept} (precision {rounded(selection['precision'])}, "
                f"worst-class recall {rounded(selection['worst_class_recall'])})")  # fmt: skip
    shares = {name: share for name, share in selection["kept_share_per_class"].items() if share is not None}
    name = min(shares, key=shares.get)
    return f"{kept} (true labels unknown; the least kept class: {name}, {shares[name]:.0%} of its labels)"


def close_match(word: object, options, cutoff: float = 0.6) -> str | None:
    """The one of ``options`` that ``word`` most likely misspells, ignoring case (difflib's
    closest at a similarity ratio ≥ ``cutoff``), or None."""
    by_lower = {str(o).lower(): str(o) for o in reversed(list(options))}  # the first of equal spellings
    close = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[close[0]] if close else None


def did_you_mean(word: object, options) -> str:
    """" (did you mean 'Lymphocyte'?)" for a string ``word`` that is a near miss of one of the
    strings in ``options``; "" otherwise (numbers are not guessed at). The bar is higher than
    difflib's default: class names share endings (Basophil and Eosinophil are 0.67 alike), and
    an expert should not be steered to another class."""
    close = close_match(word, [o for o in options if isinstance(o, str)], cutoff=0.8) if isinstance(word, str) else None
    return f" (did you mean {close!r}?)" if close else ""
