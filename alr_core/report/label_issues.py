"""The label-issue report: every train sample ranked by how likely its given label is wrong,
as a table (CSV), an offline HTML gallery and metrics. Pure functions over arrays, so they
are testable without embeddings or a model.

Inputs, row i for train sample i: ``sample_ids`` (N,), ``labels`` (N,) given labels in [0, K),
``probs`` (N, K) out-of-sample class probabilities (the k-fold linear probe on the pretrained
embeddings, :func:`alr_core.lnl.feature_rules.kfold_probs`), ``neighbours`` (N, k) row indices
of each sample's nearest other train samples in embedding space, most similar first, and
``flags`` {rule name: bool (N,)}, True where that rule says the label is wrong.

The issue score is 1 − cleanlab's label quality score (:func:`cleanlab.rank.get_label_quality_scores`)
with method ``self_confidence``: 1 − the out-of-sample probability of the given label, so 0.9
reads "the probe, which never saw this sample's label, gives the given label 10 %". Self-confidence
rather than normalized margin: a clinician can check it against the probabilities, it also ranks
samples that fit no class well (a blurred slide) high, and the two rank alike here (digits,
random-initialisation embeddings, 5 folds: AUROC for wrong labels 0.966 against 0.968 under
40 % symmetric noise, 0.670 against 0.687 under 30 % pair-flip; cleanlab's class-adjusted
variants scored lower in both).
"""

from __future__ import annotations

import html
import json
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from alr_core.common.errors import AlrError
from alr_core.common.text import counted
from alr_core.data.images import array_picture, png_bytes, png_data_uri

QUALITY_METHOD = "self_confidence"
RULE_JOINER = "+"  # flagged_by: the rules that flagged a sample, in the order of ``flags``
THUMBNAIL_PX = 128  # larger images are shrunk to this side before embedding: the page stays small
COLUMNS = ("rank", "sample_id", "given_label", "suggested_label", "suggested_probability", "issue_score",
           "flagged_by", "neighbour_ids", "neighbour_labels")  # fmt: skip


def label_issue_table(
    sample_ids: Sequence[str],
    labels: np.ndarray,
    class_names: Sequence[str],
    probs: np.ndarray,
    neighbours: np.ndarray,
    flags: Mapping[str, np.ndarray],
    neighbours_shown: int = 5,
    true_labels: Optional[np.ndarray] = None,
) -> pd.DataFrame:
    """One row per train sample, most likely wrong first.

    Columns: ``rank`` (1 = most likely wrong), ``sample_id``, ``given_label`` and
    ``suggested_label`` (class names; suggested = argmax of ``probs``, the lower class index on
    a tie), ``suggested_probability`` (its probability), ``issue_score`` in [0, 1] (module
    docstring), ``flagged_by`` (the names of the rules that flagged the sample joined by "+",
    "" when none did), ``neighbour_ids`` and ``neighbour_labels`` (the first
    ``neighbours_shown`` neighbours' sample ids and given labels, as JSON lists) and, when
    ``true_labels`` (N,) is given (simulated noise), ``label_is_wrong``.

    Order: issue score descending, then the number of rules that flagged the sample
    (descending), then sample id: the same inputs always give the same ranking.
    """
    sample_ids = np.asarray(sample_ids, dtype=object)
    labels, probs, neighbours, flags = _check_inputs(sample_ids, labels, class_names, probs, neighbours, flags)
    is_count = isinstance(neighbours_shown, (int, np.integer)) and not isinstance(neighbours_shown, bool)
    if not is_count or neighbours_shown < 0:
        raise AlrError(f"neighbours_shown is {neighbours_shown!r}; expected an integer ≥ 0")
    names = np.asarray(class_names, dtype=object)
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(labels, probs, method=QUALITY_METHOD)
    scores = np.clip(1.0 - quality, 0.0, 1.0)
    flagged = np.column_stack([flags[rule] for rule in flags]) if flags else np.zeros((len(labels), 0), bool)
    shown = neighbours[:, :neighbours_shown]
    table = pd.DataFrame({
        "sample_id": sample_ids.astype(str),
        "given_label": names[labels],
        "suggested_label": names[probs.argmax(axis=1)],
        "suggested_probability": probs.max(axis=1),
        "issue_score": scores,
        "flagged_by": [RULE_JOINER.join(rule for rule, hit in zip(flags, row) if hit) for row in flagged],
        # JSON lists, nearest first: a class name or a file name may hold any separator
        "neighbour_ids": [json_list(sample_ids[row].astype(str)) for row in shown],
        "neighbour_labels": [json_list(names[labels[row]]) for row in shown],
    })  # fmt: skip
    if true_labels is not None:
        truth = np.asarray(true_labels)
        if truth.shape != labels.shape:
            raise AlrError(f"true_labels has shape {truth.shape}; expected {labels.shape}, one per sample")
        table["label_is_wrong"] = truth != labels
    table["_flag_count"] = flagged.sum(axis=1)
    table = table.sort_values(["issue_score", "_flag_count", "sample_id"], ascending=[False, False, True],
                              kind="mergesort", ignore_index=True).drop(columns="_flag_count")  # fmt: skip
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def json_list(values) -> str:
    """``["a;b", "c"]``: a list cell that any CSV reader hands back whole (``json.loads`` splits it)."""
    return json.dumps([str(value) for value in values], ensure_ascii=False)


def _check_inputs(sample_ids, labels, class_names, probs, neighbours, flags):
    n = len(sample_ids)
    if len(set(sample_ids.tolist())) != n:
        raise AlrError("sample_ids repeat an id; each train sample must appear once")
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise AlrError(f"labels must be integers of shape ({n},), got {labels.dtype} {labels.shape}")
    num_classes = len(class_names)
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise AlrError(f"labels must lie in [0, {num_classes}) for {num_classes} class names")
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, num_classes) or not np.isfinite(probs).all():
        raise AlrError(f"probs must be finite of shape ({n}, {num_classes}), got {probs.shape}")
    neighbours = np.asarray(neighbours)
    if neighbours.ndim != 2 or len(neighbours) != n or not np.issubdtype(neighbours.dtype, np.integer):
        raise AlrError(f"neighbours must be integer row indices of shape ({n}, k), got {neighbours.dtype} "
                       f"{neighbours.shape}")  # fmt: skip
    if neighbours.size and (neighbours.min() < 0 or neighbours.max() >= n):
        raise AlrError(f"neighbours must be row indices in [0, {n})")
    checked = {}
    for rule, hits in flags.items():
        if not rule or RULE_JOINER in rule:
            raise AlrError(f"rule name {rule!r}: expected a non-empty name without {RULE_JOINER!r}")
        hits = np.asarray(hits)
        if hits.shape != (n,) or hits.dtype != bool:
            raise AlrError(f"flags[{rule!r}] must be bool of shape ({n},), got {hits.dtype} {hits.shape}")
        checked[rule] = hits
    return labels.astype(np.int64), probs, neighbours.astype(np.int64), checked


def gallery_rows(table: pd.DataFrame, gallery_size: int) -> pd.DataFrame:
    """The rows the gallery shows: the first ``gallery_size`` of ``table`` once every flagged
    row is put before every unflagged one (rank order within each)."""
    flagged_first = np.argsort(table["flagged_by"].eq("").to_numpy(), kind="stable")
    return table.iloc[flagged_first[: max(gallery_size, 0)]]


def gallery_html(
    table: pd.DataFrame,
    sample_ids: Sequence[str],
    images: np.ndarray,
    neighbours: np.ndarray,
    gallery_size: int,
    neighbours_shown: int = 5,
    csv_name: str = "label_issues.csv",
    note: Optional[str] = None,
) -> str:
    """A self-contained HTML page (inline CSS, each image once as a data URI, no script, no network) of
    :func:`gallery_rows`: per row its image, sample id, given → suggested label, issue score,
    rules and its first ``neighbours_shown`` neighbours' images with their given labels (a
    neighbour whose label differs from the sample's is marked). ``note``, what the validation split
    says of the flags (:func:`~alr_core.report.flag_notes.validation_notes`), ends the heading.

    ``table``: :func:`label_issue_table`'s for ``sample_ids`` (N,) and ``neighbours`` (N, k),
    the same arrays it was built from (the lists are taken from them, not parsed back from the
    table's JSON text); ``images``: uint8 (N, H, W, C), C = 1 or 3, row i the image of
    ``sample_ids[i]``.
    """
    position = {str(sample_id): i for i, sample_id in enumerate(sample_ids)}
    if len(position) != len(table) or len(images) != len(position) or len(neighbours) != len(position):
        raise AlrError(f"the gallery needs the table's {len(table)} samples once each with an image and "
                       f"neighbours: got {len(position)} distinct ids, {len(images)} images, "
                       f"{len(neighbours)} neighbour rows")  # fmt: skip
    given = dict(zip(table["sample_id"], table["given_label"]))
    shown = gallery_rows(table, gallery_size)
    thumbnails: dict[int, str] = {}

    def image_tag(row: int, css_class: str) -> str:
        # each image once, as a CSS background of class p<row>: a sample shown as the neighbour of
        # many others would otherwise be embedded again each time (3,000 cards at 64 px: 102 MB)
        if row not in thumbnails:
            picture = array_picture(np.asarray(images[row]))
            picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            thumbnails[row] = png_data_uri(png_bytes(picture))
        return f'<span class="pic {css_class} p{row}" role="img" aria-label="{_text(sample_ids[row])}"></span>'

    cards = []
    for row in shown.itertuples(index=False):
        if row.sample_id not in position:
            raise AlrError(f"the table's sample {row.sample_id!r} is not among the gallery's sample ids")
        at = position[row.sample_id]
        figures = []
        for neighbour in np.asarray(neighbours[at])[:neighbours_shown]:
            label = given[str(sample_ids[neighbour])]
            differs = label != row.given_label
            mark = '<span class="mark">&ne; </span>' if differs else ""  # not by colour alone
            figures.append(f'<figure class="{"differs" if differs else "same"}" '
                           f'title="{_text(sample_ids[neighbour])}">{image_tag(int(neighbour), "neighbour")}'
                           f"<figcaption>{mark}{_text(label)}</figcaption></figure>")  # fmt: skip
        rules = _text(row.flagged_by.replace(RULE_JOINER, " + ")) if row.flagged_by else "no rule"
        truth = ""
        if "label_is_wrong" in shown.columns:
            truth = f'<div class="truth">simulation: label {"wrong" if row.label_is_wrong else "right"}</div>'
        probability = f"p&nbsp;=&nbsp;{row.suggested_probability:.2f}"  # a high score says little of the suggestion
        if row.suggested_label != row.given_label:
            labels = (f'<span class="given">{_text(row.given_label)}</span> &rarr; '
                      f'<span class="suggested">{_text(row.suggested_label)}</span> '
                      f'<span class="agrees">({probability})</span>')
        else:  # no "A → A" in red and green: the probe's top class is the given label
            labels = (f'<span class="kept">{_text(row.given_label)}</span> '
                      f'<span class="agrees">(the probe\'s top class too, {probability})</span>')
        cards.append(
            f'<section class="card{" flagged" if row.flagged_by else ""}">'
            f'<div class="sample">{image_tag(at, "main")}'
            f'<div class="meta"><div class="rank">#{int(row.rank)}</div>'
            f'<div class="id">{_text(row.sample_id)}</div>'
            f'<div class="labels">{labels}</div>'
            f'<div class="score">score {row.issue_score:.3f} &middot; {rules}</div>{truth}</div></div>'
            f'<div class="neighbours">{"".join(figures) or "<span class=none>no neighbours</span>"}</div></section>'
        )
    flagged = int(table["flagged_by"].ne("").sum())
    heading = (f"{counted(len(table), 'train sample')}, {flagged} flagged by a rule; "
               f"{counted(len(shown), 'sample')} shown, flagged first, then by rank")  # fmt: skip
    if note:
        heading += f"; {note}"
    body = "\n".join(cards) if cards else '<p class="none">no samples shown (label_issues.gallery_size is 0)</p>'
    pictures = "\n".join(f'.p{row} {{ background-image: url("{uri}"); }}' for row, uri in thumbnails.items())
    return PAGE.format(heading=_text(heading), csv=_text(csv_name), cards=body, style=STYLE + pictures)


def _text(value) -> str:
    """Text for HTML content and quoted attributes: &, <, >, " and ' escaped."""
    return html.escape(str(value), quote=True)


def label_issue_metrics(table: pd.DataFrame, class_names: Sequence[str], rules: Sequence[str],
                        suggestion_accuracy: Optional[float] = None, num_val: Optional[int] = None,
                        false_alarm_rates: Optional[Mapping[str, float]] = None) -> dict:  # fmt: skip
    """The detector's numbers from :func:`label_issue_table`'s ``table``.

    Always: ``num_train``, ``flagged`` {rule: count, "any": flagged by at least one rule},
    ``flagged_per_class`` {given class: {rule: count, "any": …}},
    ``suggestion_val_balanced_accuracy``, the caller's ``suggestion_accuracy``: how often the
    probe behind the suggestions is right on the validation split
    (:func:`alr_core.lnl.feature_rules.probe_balanced_accuracy`; None when not measured), and
    ``num_val``, the validation images it was measured on. The weaker the probe, the more of
    its flags are false alarms; ``val_false_alarms`` puts a number on that: None without the
    caller's ``false_alarm_rates`` ({rule: share of right labels it flags, "either": by at least
    one}, :func:`alr_core.lnl.feature_rules.validation_false_alarm_rates`), else {"rate": those
    shares, "flagged": train samples flagged by at least one of those rules, "if_labels_right":
    how many of them would be false alarms if every label were right, :func:`false_alarms_if_right`}.
    When the table has
    ``label_is_wrong`` (truth known) also ``num_wrong``, ``precision`` and ``recall`` {rule or
    "any": share of its flags that are wrong labels / share of wrong labels it flags; None when
    it flags nothing / there is no wrong label}, ``ranking_auroc`` (sklearn's roc_auc_score of
    the issue score for wrong labels; None unless both kinds occur) and
    ``ranking_precision_at_num_wrong`` (share of wrong labels among the first ``num_wrong``
    rows: 1 when the ranking puts every wrong label first).
    """
    hits = {rule: table["flagged_by"].str.split(RULE_JOINER, regex=False).map(lambda names, r=rule: r in names)
            .to_numpy(dtype=bool) for rule in rules}  # fmt: skip
    hits["any"] = table["flagged_by"].ne("").to_numpy()
    given = table["given_label"].to_numpy()
    metrics = {
        "num_train": len(table),
        "flagged": {rule: int(mask.sum()) for rule, mask in hits.items()},
        "flagged_per_class": {name: {rule: int(mask[given == name].sum()) for rule, mask in hits.items()}
                              for name in class_names},  # fmt: skip
        "suggestion_val_balanced_accuracy": None if suggestion_accuracy is None else float(suggestion_accuracy),
        "num_val": None if num_val is None else int(num_val),
        "val_false_alarms": None,
    }
    if false_alarm_rates is not None:
        estimated = [rule for rule in false_alarm_rates if rule != "either"]
        missing = [rule for rule in estimated if rule not in hits]
        if not estimated or missing or "either" not in false_alarm_rates:
            raise AlrError(f"false_alarm_rates has the keys {sorted(false_alarm_rates)}; expected rules among "
                           f"{list(rules)} and 'either'")  # fmt: skip
        flagged = int(np.logical_or.reduce([hits[rule] for rule in estimated]).sum())
        metrics["val_false_alarms"] = {
            "rate": {rule: float(share) for rule, share in false_alarm_rates.items()},
            "flagged": flagged,
            "if_labels_right": false_alarms_if_right(false_alarm_rates["either"], len(table), flagged),
        }
    if "label_is_wrong" not in table.columns:
        return metrics
    wrong = table["label_is_wrong"].to_numpy(dtype=bool)
    num_wrong = int(wrong.sum())
    metrics["num_wrong"] = num_wrong
    metrics["precision"] = {rule: _share(wrong[mask].sum(), mask.sum()) for rule, mask in hits.items()}
    metrics["recall"] = {rule: _share(mask[wrong].sum(), num_wrong) for rule, mask in hits.items()}
    if 0 < num_wrong < len(table):
        from sklearn.metrics import roc_auc_score

        metrics["ranking_auroc"] = float(roc_auc_score(wrong, table["issue_score"].to_numpy()))
    else:
        metrics["ranking_auroc"] = None
    metrics["ranking_precision_at_num_wrong"] = _share(wrong[:num_wrong].sum(), num_wrong)
    return metrics


def false_alarms_if_right(false_alarm_rate: float, num_train: int, flagged: int) -> int:
    """How many of ``flagged`` train samples would be false alarms if every train label were
    right, when the rules flag ``false_alarm_rate`` of right labels: that share of the
    ``num_train`` samples, rounded, and no more than ``flagged``. Where some labels are wrong,
    fewer right labels are there to flag, so it overestimates."""
    if not 0.0 <= false_alarm_rate <= 1.0 or not 0 <= flagged <= num_train:
        raise AlrError(f"false_alarm_rate {false_alarm_rate!r} must lie in [0, 1] and flagged {flagged!r} in "
                       f"[0, num_train = {num_train}]")  # fmt: skip
    return min(flagged, int(np.floor(false_alarm_rate * num_train + 0.5)))


def _share(part, whole) -> Optional[float]:
    return float(part / whole) if whole else None


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 2em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; margin: 0.8em 0 0.2em; }
p.lead { margin: 0 0 1em; color: #555; }
.card { display: flex; gap: 1.5em; align-items: flex-start; background: #fff; border: 1px solid #ddd;
        border-left: 4px solid #bbb; padding: 0.6em 0.8em; margin: 0 0 0.6em; break-inside: avoid; }
.card.flagged { border-left-color: #c0392b; }
.sample { display: flex; gap: 0.8em; flex: 0 0 27em; }
.pic { display: block; flex: 0 0 auto; background: #000 center / contain no-repeat; image-rendering: pixelated;
       -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.pic.main { width: 112px; height: 112px; }
.pic.neighbour { width: 64px; height: 64px; margin: 0 auto; }
.rank { color: #666; }
.kept { font-weight: 600; }
.agrees { color: #555; font-size: 0.9em; }
.id { font-family: ui-monospace, monospace; word-break: break-all; }
.labels { font-size: 1.1em; margin: 0.2em 0; }
.given { font-weight: 600; color: #c0392b; }
.suggested { font-weight: 600; color: #1e7b34; }
.score, .truth { color: #555; }
.neighbours { display: flex; flex-wrap: wrap; gap: 0.5em; }
figure { margin: 0; text-align: center; width: 104px; }
figcaption { font-size: 0.85em; overflow-wrap: break-word; hyphens: auto; }
figure.differs figcaption { color: #1e7b34; font-weight: 600; }
.none { color: #666; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<title>alr &middot; label issues</title>
<style>{style}</style>
</head>
<body>
<h1>Label issues</h1>
<p class="lead">{heading}. Each row: the image, its sample id, the given label &rarr; the suggested one
(the out-of-sample linear probe's top class), the issue score (1 &minus; the probe's probability of the
given label) and the rules that flagged it; then its nearest train samples in feature space with their
given labels (green: differs from this sample's given label). Every sample is in {csv}.</p>
{cards}
</body>
</html>
"""
