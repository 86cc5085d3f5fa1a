"""The embedding map (alr_core.report.embedding_map): which samples it draws, that t-SNE keeps
separated classes apart, and what the figure marks, on constructed arrays."""

from __future__ import annotations

from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from alr_core.common.errors import AlrError
from alr_core.report.embedding_map import MIN_SAMPLES, NUMBERED, embedding_map_figure, map_rows, tsne_coordinates


def blobs(per_blob: int = 30, dim: int = 16, num_blobs: int = 3):
    """``num_blobs`` tight Gaussian blobs 10 apart: (embeddings, blob of each row)."""
    rng = np.random.default_rng(1)
    centres = 10.0 * np.eye(num_blobs, dim)
    blob = np.repeat(np.arange(num_blobs), per_blob)
    return centres[blob] + rng.normal(scale=0.5, size=(len(blob), dim)), blob


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_map_rows_draws_every_sample_up_to_map_size():
    ranks = np.array([3, 1, 2])
    assert map_rows(ranks, 3).tolist() == [0, 1, 2]
    assert map_rows(ranks, 2000).tolist() == [0, 1, 2]


def test_map_rows_keeps_the_best_ranked_and_draws_the_rest_the_same_way_each_time():
    ranks = np.random.default_rng(0).permutation(500) + 1
    rows = map_rows(ranks, 50)
    assert len(rows) == len(set(rows.tolist())) == 50 and (np.diff(rows) > 0).all()
    assert set(np.flatnonzero(ranks <= NUMBERED)) <= set(rows.tolist())
    assert (ranks[rows] > NUMBERED).sum() == 50 - NUMBERED  # the others are a draw, not the next ranks
    assert ranks[rows].max() > 100
    assert map_rows(ranks, 50).tolist() == rows.tolist()
    # fewer places than numbered samples: the best ranks only
    assert sorted(ranks[map_rows(ranks, 4)].tolist()) == [1, 2, 3, 4]
    assert map_rows(ranks, 0).tolist() == []


@pytest.mark.parametrize("size", [-1, 2.5, True, "10"])
def test_map_rows_refuses_a_size_that_is_no_count(size):
    with pytest.raises(AlrError, match=r"map_size is .*; expected an integer ≥ 0"):
        map_rows(np.arange(1, 6), size)


def test_tsne_keeps_separated_blobs_apart_and_repeats_itself():
    embeddings, blob = blobs()
    xy = tsne_coordinates(embeddings)
    assert xy.shape == (90, 2)
    distances = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    # each point's five nearest points on the map are of its own blob
    nearest = np.argsort(distances, axis=1)[:, :5]
    assert (blob[nearest] == blob[:, None]).all()
    # and the blobs lie apart: the closest pair across blobs is farther than a blob is wide
    across = distances[blob[:, None] != blob[None]].min()
    within = max(distances[np.ix_(blob == b, blob == b)][np.isfinite(distances[np.ix_(blob == b, blob == b)])].max()
                 for b in range(3))  # fmt: skip
    assert across > 0.5 * within
    assert np.array_equal(tsne_coordinates(embeddings), xy)


def test_tsne_maps_the_smallest_split_and_refuses_fewer_or_non_finite_rows():
    embeddings, _ = blobs(per_blob=2, num_blobs=2)
    assert tsne_coordinates(embeddings[:MIN_SAMPLES]).shape == (MIN_SAMPLES, 2)
    with pytest.raises(AlrError, match=rf"M ≥ {MIN_SAMPLES}, got \(3, 16\)"):
        tsne_coordinates(embeddings[:3])
    embeddings[0, 0] = np.nan
    with pytest.raises(AlrError, match="must be finite"):
        tsne_coordinates(embeddings)


def map_of(map_size: int = 2000):
    """The map of three blobs with three wrong labels; the flagged samples rank first."""
    embeddings, blob = blobs(num_blobs=3)
    labels = blob.copy()
    labels[[0, 1, 40]] = [1, 2, 0]  # three wrong labels, all flagged
    flagged = np.zeros(len(labels), bool)
    flagged[[0, 1, 40, 70]] = True  # and one right label flagged
    figure, drawn = embedding_map_figure(embeddings, IDS, labels, ["cat", "dog", "fish"], issue_table(flagged),
                                         map_size)  # fmt: skip
    assert drawn == len(drawn_points(figure))
    return figure


IDS = [f"s{i}" for i in range(90)]


def issue_table(flagged: np.ndarray) -> pd.DataFrame:
    """The columns of a label-issue table the map reads, rows in rank order (not the ids'):
    the flagged samples rank first."""
    order = np.concatenate([np.flatnonzero(flagged), np.flatnonzero(~flagged)[::-1]])
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "sample_id": np.array(IDS)[order],
                         "flagged_by": np.where(flagged[order], "knn_vote", "")})  # fmt: skip


def drawn_points(figure):
    """(colour, ringed) of every point on the map, one pair per point."""
    points = []
    for collection in figure.axes[0].collections:
        ringed = collection.get_linewidths()[0] > 0
        points += [(tuple(to_rgba(collection.get_facecolors()[0])), ringed)] * len(collection.get_offsets())
    return points


def test_the_figure_colours_by_given_label_rings_the_flagged_and_numbers_the_best_ranked():
    figure = map_of()
    axis = figure.axes[0]
    points = drawn_points(figure)
    assert len(points) == 90
    # one colour per given label: blob 0 lost two samples to dog and fish and took one from blob 1
    by_colour = Counter(colour for colour, _ in points)
    assert sorted(by_colour.values()) == [29, 30, 31]
    cat, dog, fish = sorted(by_colour, key=by_colour.get)
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend == ["cat (29)", "dog (30)", "fish (31)"]
    # the flagged samples (given cat, dog, fish, fish), found by id in a table in rank order
    assert Counter(colour for colour, ringed in points if ringed) == {cat: 1, dog: 1, fish: 2}
    numbers = sorted(int(text.get_text()) for text in axis.texts)
    assert numbers == list(range(1, NUMBERED + 1))
    assert axis.get_title().startswith("t-SNE of the pretrain embeddings: 90 train samples by given label;")
    assert "flagged by a rule (4 here)" in axis.get_title()


def test_a_smaller_map_says_how_many_it_draws_and_keeps_the_numbered():
    figure = map_of(map_size=20)
    axis = figure.axes[0]
    assert len(drawn_points(figure)) == 20
    assert "20 of 90 train samples" in axis.get_title()
    assert sorted(int(text.get_text()) for text in axis.texts) == list(range(1, NUMBERED + 1))
    assert "flagged by a rule (4 here)" in axis.get_title()  # ranks 1–4 are the flagged: always drawn


def test_no_map_says_why():
    figure = map_of(map_size=0)
    assert [text.get_text() for text in figure.axes[0].texts] == ["no map: label_issues.map_size is 0"]
    assert drawn_points(figure) == []
    figure = map_of(map_size=3)
    assert [text.get_text() for text in figure.axes[0].texts] == [f"no map: fewer than {MIN_SAMPLES} samples to map"]


def test_classes_beyond_ten_get_colours_of_their_own():
    embeddings, blob = blobs(per_blob=4, num_blobs=12)
    table = issue_table(np.zeros(90, bool)).iloc[:48]
    figure, _ = embedding_map_figure(embeddings, table["sample_id"], blob, [f"c{k}" for k in range(12)], table, 2000)
    assert len({colour for colour, _ in drawn_points(figure)}) == 12
    assert legend_columns(figure) == 1


def test_the_legend_of_many_classes_takes_columns_of_25():
    embeddings, blob = blobs(per_blob=2, num_blobs=60, dim=64)
    ids = [f"t{i}" for i in range(120)]
    table = pd.DataFrame({"rank": np.arange(1, 121), "sample_id": ids, "flagged_by": ""})
    figure, drawn = embedding_map_figure(embeddings, ids, blob, [f"class {k}" for k in range(60)], table, 2000)
    assert drawn == 120 and legend_columns(figure) == 3


def legend_columns(figure) -> int:
    figure.canvas.draw()
    return len({round(text.get_window_extent().x0) for text in figure.axes[0].get_legend().get_texts()})


def test_a_table_that_does_not_line_up_is_refused():
    embeddings, blob = blobs()
    table = issue_table(np.zeros(90, bool))
    with pytest.raises(AlrError, match="one row per train sample; got 90, 90 and 89 rows for 90 sample ids"):
        embedding_map_figure(embeddings, IDS, blob, ["a", "b", "c"], table.iloc[1:], 100)
    with pytest.raises(AlrError, match="a row for each train sample id and no other"):
        embedding_map_figure(embeddings, IDS, blob, ["a", "b", "c"], table.replace({"s0": "s90"}), 100)


def test_every_point_sits_at_its_own_samples_coordinates_and_the_numbers_beside_their_samples():
    """Colours, rings and numbers follow each sample's own embedding, not merely the counts: the
    points of a colour are the t-SNE coordinates of the samples with that label (one run of
    :func:`tsne_coordinates` on the rows drawn)."""
    from alr_core.report.embedding_map import _class_colours

    embeddings, blob = blobs()
    labels = blob.copy()
    labels[[0, 1, 40]] = [1, 2, 0]
    flagged = np.zeros(len(labels), bool)
    flagged[[0, 1, 40, 70]] = True
    table = issue_table(flagged)
    for map_size in (2000, 20):
        figure, _ = embedding_map_figure(embeddings, IDS, labels, ["cat", "dog", "fish"], table, map_size)
        ranks = table.set_index("sample_id").loc[IDS, "rank"].to_numpy()
        rows = map_rows(ranks, map_size)
        xy = tsne_coordinates(embeddings[rows])
        colours = [tuple(to_rgba(colour)) for colour in _class_colours(3)]
        for collection in figure.axes[0].collections:
            colour, ringed = tuple(to_rgba(collection.get_facecolors()[0])), collection.get_linewidths()[0] > 0
            mine = (labels[rows] == colours.index(colour)) & (flagged[rows] == ringed)
            np.testing.assert_allclose(np.asarray(collection.get_offsets()), xy[mine], atol=1e-4)
        where = {int(ranks[row]): xy[i] for i, row in enumerate(rows)}
        numbers = {int(text.get_text()): text.xy for text in figure.axes[0].texts}
        assert sorted(numbers) == list(range(1, NUMBERED + 1))
        for rank, at in numbers.items():
            np.testing.assert_allclose(at, where[rank], atol=1e-4)
        plt.close("all")


def test_embeddings_that_all_point_one_way_give_a_figure_that_says_so_not_a_crash():
    # a collapsed encoder: sklearn's t-SNE would divide by a zero spread and crash the process. The
    # map, like knn_vote, compares directions: rows of one direction and any lengths are one point
    table = issue_table(np.zeros(90, bool))
    one_way = np.ones((90, 16)) * np.arange(1, 91)[:, None]
    figure, drawn = embedding_map_figure(one_way, IDS, np.arange(90) % 3, ["a", "b", "c"], table, 2000)
    assert drawn == 0
    assert [text.get_text() for text in figure.axes[0].texts] == [
        "no map: the 90 embeddings drawn all point the same way"]
    with pytest.raises(AlrError, match="all point the same way"):
        tsne_coordinates(np.zeros((5, 3)))


def test_tsne_maps_directions_whatever_the_rows_lengths():
    """The map's neighbourhoods are knn_vote's cosine ones: rows scaled by any positive factor
    (powers of two, so the unit rows are bit for bit the same) give the same map, and rows of one
    direction are refused, however their lengths differ."""
    embeddings, _ = blobs()
    scales = 2.0 ** np.random.default_rng(2).integers(-6, 7, size=(len(embeddings), 1))
    assert np.array_equal(tsne_coordinates(embeddings * scales), tsne_coordinates(embeddings))
    with pytest.raises(AlrError, match="the 90 embeddings all point the same way"):
        tsne_coordinates(np.ones((90, 16)) * np.arange(1, 91)[:, None])


def test_the_smallest_map_tsne_accepts_is_drawn():
    """MIN_SAMPLES rows are enough for t-SNE (tsne_coordinates maps them): the figure draws them
    rather than saying there are too few."""
    figure = map_of(map_size=MIN_SAMPLES)
    assert len(drawn_points(figure)) == MIN_SAMPLES
    assert sorted(int(text.get_text()) for text in figure.axes[0].texts) == list(range(1, MIN_SAMPLES + 1))


def test_a_dimension_constant_over_every_sample_still_gives_a_map():
    """Embeddings often have dead dimensions (a ReLU feature that is 0 for every image): the rows
    still spread over the others, so there is a map, not 'all point the same way'."""
    embeddings, blob = blobs()
    embeddings[:, -1] = 0.0
    table = issue_table(np.zeros(90, bool))
    figure, drawn = embedding_map_figure(embeddings, IDS, blob, ["a", "b", "c"], table, 2000)
    assert drawn == 90 == len(drawn_points(figure))


def test_the_ringed_points_are_drawn_over_the_others():
    """A flagged sample inside another class's island must not hide under its neighbours' dots:
    every ringed collection lies above every plain one."""
    figure = map_of()
    plain = [c.get_zorder() for c in figure.axes[0].collections if not c.get_linewidths()[0] > 0]
    ringed = [c.get_zorder() for c in figure.axes[0].collections if c.get_linewidths()[0] > 0]
    assert plain and ringed and min(ringed) > max(plain)
