"""The labels after the rounds, for the data team to take back to their own data: one row per
train sample with class names, what changed and who vouched for it (data/report/labels.csv)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alr_core.active.labels import labelled
from alr_core.common import paths


def labels_table(working: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """A working label table (:mod:`alr_core.active.labels`, one row per train sample) as the CSV
    a user reads, in its row order:

    - ``sample_id``: as the source names the sample (an image folder's relative path, a
      manifest's image column, a MedMNIST ``<split>/<index>``);
    - ``given_label``: the label the sample came with (under injected noise, the noisy one);
    - ``label``: the label after the finished rounds; ``changed``: whether it differs;
    - ``label_source``: ``observed`` (nobody was asked), ``expert`` or ``oracle`` (answered by
      experts or the simulated oracle; the answer may confirm the given label), ``skipped`` or
      ``tied`` (asked, no label decided: the given one stays), ``paper_protocol``;
    - ``relabel_round``: the round that asked (empty when none did); ``checked``: an answer
      vouches for ``label``; ``clean_guess``: phase 1 trusted the given label;
    - ``true_label``: only when the truth is known (injected noise).

    Labels are class names (``class_names`` by index)."""
    names = np.asarray(class_names, dtype=object)
    label = working["label"].to_numpy(dtype=np.int64)
    given = working["observed_label"].to_numpy(dtype=np.int64)
    table = pd.DataFrame({
        "sample_id": working["sample_id"].to_numpy(),
        "given_label": names[given],
        "label": names[label],
        "changed": label != given,
        "label_source": working["label_source"].to_numpy(),
        "relabel_round": working["relabel_round"].astype("Int64").array,
        "checked": labelled(working),
        "clean_guess": working["clean_guess"].to_numpy(dtype=bool),
    })  # fmt: skip
    truth = working["true_label"]
    if len(truth) and truth.notna().all():
        table["true_label"] = names[truth.to_numpy(dtype=np.int64)]
    return table


def labels_summary(table: pd.DataFrame) -> dict:
    """report.json's ``labels``: where :func:`labels_table`'s CSV is, the train samples, how many
    labels the rounds changed, how many are checked (an answer, or al.paper_protocol's true
    label, vouches for them) and how many of those the paper protocol gave."""
    return {
        "csv": paths.REPORT_LABELS.as_posix(),
        "num_train": len(table),
        "changed": int(table["changed"].sum()),
        "checked": int(table["checked"].sum()),
        "paper_protocol": int((table["label_source"] == "paper_protocol").sum()),
    }
