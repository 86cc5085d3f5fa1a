"""What the validation split, whose labels alr takes as right, says about the label-issue
report's flags: sentences for the label_issues stage's output, the gallery's heading and the
run's summary. Plain text from metrics/label_issues.json's numbers, no images or models."""

from __future__ import annotations

from alr_core.common.text import counted


def suggestion_sentence(accuracy: float, num_val: int) -> str:
    """How often the suggested label is right on the validation split, and what that means for
    the flags: one sentence for the stage's output, the summary and the gallery. It names the
    number of validation images, since on a few dozen the accuracy is rough."""
    return (f"the suggested label scores a balanced accuracy of {accuracy:.0%} on the "
            f"{counted(num_val, 'validation image')} (its mean recall per class): the lower, the more flags are "
            "false alarms")  # fmt: skip


def false_alarm_sentence(val_false_alarms: dict, num_val: int, num_train: int) -> str:
    """How often the rules flag the validation labels, which alr takes as right, and what that
    says about the train flags; ``val_false_alarms``: metrics/label_issues.json's, ``num_train``
    the train samples it ranks. Where the rules flag the train labels no more often than the
    validation labels, the flags cannot be told from false alarms, and the sentence says so
    rather than count every flag a false alarm."""
    rate, flagged = val_false_alarms["rate"]["either"], val_false_alarms["flagged"]
    # the rate is per class, weighted by the class's train count: an estimate for the train split,
    # not the share of validation labels flagged (a rare class's rows weigh less than in that share)
    head = (f"the rules would flag about {rate:.0%} of right train labels (measured on the "
            f"{counted(num_val, 'validation label')}, which alr takes as right, each class weighted by its train "
            "count)")  # fmt: skip
    if flagged == 0:
        return f"{head}, and flag no train label"
    if flagged <= rate * num_train:
        return (f"{head}, and flag {flagged / num_train:.0%} of the train labels: no more often than right ones, so "
                "the train flags may all be false alarms")  # fmt: skip
    return (f"{head}: if the train labels are mostly right too, about {val_false_alarms['if_labels_right']} of the "
            f"{flagged} train samples they flag are false alarms")  # fmt: skip


def validation_notes(label_issues: dict) -> str | None:
    """What the validation split says about the label-issue report's flags, for the stage's
    output, the gallery's heading and the summary: :func:`false_alarm_sentence` and
    :func:`suggestion_sentence`, each where measured; None when neither is. ``label_issues``:
    metrics/label_issues.json or report.json's ``label_issues`` (older files lack
    ``val_false_alarms``)."""
    notes = []
    if label_issues.get("val_false_alarms") is not None:
        notes.append(false_alarm_sentence(label_issues["val_false_alarms"], label_issues["num_val"],
                                         label_issues["num_train"]))
    if label_issues.get("suggestion_val_balanced_accuracy") is not None:
        notes.append(suggestion_sentence(label_issues["suggestion_val_balanced_accuracy"], label_issues["num_val"]))
    return "; ".join(notes) or None
