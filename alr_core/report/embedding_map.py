"""plots/embedding_map.png: a t-SNE map of the train split's pretrain embeddings, each sample
coloured by its given label, those a rule flags ringed, and the highest-ranked numbered by their
``rank`` in label_issues.csv (the gallery shows the flagged first, so an unflagged one of
them comes after every flagged sample there).

It shows what the flags rest on. A class that forms an island of its own is one the embeddings
separate, and a ringed sample inside another class's island is a likely wrong label; where the
classes' colours mix, the embeddings do not tell those classes apart and the flags there are
weak guesses (docs/label_issues.md).

Pure functions over arrays, row i for train sample i: ``embeddings`` (N, D) float,
``sample_ids`` (N,), ``labels`` (N,) given labels in [0, K), ``ranks`` (N,) int (1 = most
likely wrong).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from alr_core.common.errors import AlrError
from alr_core.common.text import counted
from alr_core.lnl.feature_rules import unit_rows
from alr_core.report.figures import new_axes

MAP_SEED = 0  # the map is a view of the embeddings, not an experiment: one fixed seed for the draw and t-SNE
NUMBERED = 10  # the best-ranked samples are numbered on the map, and always drawn
MIN_SAMPLES = 4  # t-SNE's perplexity must stay below the number of samples; fewer give no useful map
PERPLEXITY = 30.0  # sklearn's default, lowered to (n − 1) / 3 for small maps
LEGEND_ROWS = 25  # classes per legend column: the legend of many classes stays about as tall as the map


def map_rows(ranks: np.ndarray, map_size: int) -> np.ndarray:
    """Row indices of the samples drawn in the map, ascending: every row when there are at
    most ``map_size``; else the :data:`NUMBERED` best-ranked, then a draw of the rest with
    :data:`MAP_SEED`, ``map_size`` in all."""
    ranks = np.asarray(ranks)
    if not isinstance(map_size, (int, np.integer)) or isinstance(map_size, bool) or map_size < 0:
        raise AlrError(f"map_size is {map_size!r}; expected an integer ≥ 0")
    if len(ranks) <= map_size:
        return np.arange(len(ranks))
    best = np.argsort(ranks, kind="stable")[: min(NUMBERED, map_size)]
    rest = np.setdiff1d(np.arange(len(ranks)), best)
    drawn = np.random.default_rng(MAP_SEED).choice(rest, size=map_size - len(best), replace=False)
    return np.sort(np.concatenate([best, drawn]))


def tsne_coordinates(embeddings: np.ndarray) -> np.ndarray:
    """(M, 2) t-SNE coordinates of the directions of ``embeddings`` (M, D), M ≥
    :data:`MIN_SAMPLES`: the rows scaled to length 1, so that the map's neighbourhoods are the
    cosine neighbourhoods ``knn_vote`` votes in; PCA initialisation and :data:`MAP_SEED`, so the
    same embeddings give the same map."""
    from sklearn.manifold import TSNE

    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) < MIN_SAMPLES or not np.isfinite(embeddings).all():
        raise AlrError(f"embeddings must be finite of shape (M, D) with M ≥ {MIN_SAMPLES}, got {embeddings.shape}")
    directions = unit_rows(embeddings)
    if not _spread(directions):
        # sklearn scales the PCA start by its spread: 0 gives NaN, and Barnes-Hut then crashes the process
        raise AlrError(f"the {len(embeddings)} embeddings all point the same way: t-SNE cannot map them")
    perplexity = min(PERPLEXITY, (len(embeddings) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=MAP_SEED).fit_transform(directions)


def embedding_map_figure(embeddings: np.ndarray, sample_ids: Sequence[str], labels: np.ndarray,
                         class_names: Sequence[str], table: pd.DataFrame, map_size: int):  # fmt: skip
    """(figure, samples drawn): the map of up to ``map_size`` train samples (:func:`map_rows`) as a
    matplotlib figure; ``table`` is their label-issue table
    (:func:`~alr_core.report.label_issues.label_issue_table`, rows in any order), which gives each
    sample's ``rank`` and ``flagged_by``. With ``map_size`` 0, fewer than :data:`MIN_SAMPLES`
    samples or embeddings that all point the same way, a figure that says why there is no map,
    and 0 drawn."""
    labels, n, num_classes = np.asarray(labels), len(sample_ids), len(class_names)
    if not (len(embeddings) == len(labels) == len(table) == n):
        raise AlrError(f"embeddings, labels and the label-issue table must have one row per train sample; got "
                       f"{len(embeddings)}, {len(labels)} and {len(table)} rows for {n} sample ids")  # fmt: skip
    if set(table["sample_id"]) != set(sample_ids):
        raise AlrError("the label-issue table must have a row for each train sample id and no other")
    in_sample_order = table.set_index("sample_id").loc[list(sample_ids)]
    ranks, flagged = in_sample_order["rank"].to_numpy(), in_sample_order["flagged_by"].ne("").to_numpy()
    rows = map_rows(ranks, map_size)
    embeddings = np.asarray(embeddings, dtype=np.float32)[rows]
    why = _why_no_map(embeddings, map_size)
    if why:
        figure, axis = new_axes()
        axis.text(0.5, 0.5, f"no map: {why}", ha="center", va="center")
        axis.set_axis_off()
        return figure, 0
    xy = tsne_coordinates(embeddings)
    labels, flagged, ranks = labels[rows], flagged[rows], ranks[rows]
    figure, axis = new_axes(size=(7.5, 6.0))
    colours = _class_colours(num_classes)
    for k, name in enumerate(class_names):
        mine = labels == k
        axis.scatter(xy[mine & ~flagged, 0], xy[mine & ~flagged, 1], s=9, color=colours[k], linewidths=0,
                     label=f"{name} ({np.count_nonzero(mine)})")  # fmt: skip
        # ringed, and on top: a flagged sample must not hide under its neighbours
        axis.scatter(xy[mine & flagged, 0], xy[mine & flagged, 1], s=22, color=colours[k], edgecolors="black",
                     linewidths=0.8, zorder=3)  # fmt: skip
    for row in np.flatnonzero(ranks <= NUMBERED):
        axis.annotate(str(ranks[row]), xy[row], xytext=(3, 3), textcoords="offset points", fontsize=7, zorder=4)
    drawn = f"{counted(n, 'train sample')}" if len(rows) == n else f"{len(rows)} of {counted(n, 'train sample')}"
    axis.set_title(f"t-SNE of the pretrain embeddings: {drawn} by given label;\n"
                   f"ringed: flagged by a rule ({np.count_nonzero(flagged)} here); "
                   f"numbers: rank in label_issues.csv", fontsize=9)  # fmt: skip
    axis.set_xticks([])
    axis.set_yticks([])  # t-SNE's axes have no units: only neighbourhoods mean something
    axis.legend(title="given label (samples)", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                fontsize=8, title_fontsize=8, markerscale=1.5, ncols=-(-num_classes // LEGEND_ROWS))  # fmt: skip
    return figure, len(rows)


def _why_no_map(embeddings: np.ndarray, map_size: int) -> str | None:
    """Why the rows drawn, ``embeddings`` (M, D), give no map; None when they do."""
    if map_size == 0:
        return "label_issues.map_size is 0"
    if len(embeddings) < MIN_SAMPLES:
        return f"fewer than {MIN_SAMPLES} samples to map"
    if not _spread(unit_rows(embeddings)):  # a collapsed encoder: one direction for all
        return f"the {len(embeddings)} embeddings drawn all point the same way"
    return None


def _spread(embeddings: np.ndarray) -> bool:
    """Whether the rows (M ≥ 1) are not all one point (t-SNE's PCA start needs some spread)."""
    return bool((np.ptp(embeddings, axis=0) > 0).any())


def _class_colours(num_classes: int) -> list:
    import matplotlib

    if num_classes <= 10:
        return [matplotlib.colormaps["tab10"](k) for k in range(num_classes)]
    if num_classes <= 20:
        return [matplotlib.colormaps["tab20"](k) for k in range(num_classes)]
    return [matplotlib.colormaps["turbo"](k / (num_classes - 1)) for k in range(num_classes)]
