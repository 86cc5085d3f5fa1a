"""Per-class noisy-label rules over a self-supervised embedding of the train split (issue 25).

Pure functions over numpy arrays, no model. Shapes: ``embeddings`` float (N, D), one row per
train sample (the pretrain stage's output); ``labels`` int (N,) observed labels in
[0, num_classes); ``probs`` float (N, num_classes) out-of-sample class probabilities, 0 in the
columns of classes nobody is labelled with; ``neighbours`` int (N, k) row indices.

Every rule first estimates, for every sample, class probabilities that never saw the sample's
own label (its neighbours' labels, or a linear probe trained on the other folds), then decides
clean/noisy **inside each observed class**, as alr_core.lnl.class_rules does: on long-tailed
data with symmetric noise the labels flipped into a rare class can outnumber its clean ones,
and one global cut would drop the rare class's clean samples. Every observed class keeps at
least one sample. Each rule returns ``(keep (N,) bool, whole)``, ``whole`` the observed classes
in which nothing was dropped.

knn_vote and cleanlab_kfold are cleanlab's confident learning
(:func:`alr_core.lnl.class_rules.confident_learning`) on those probabilities; a caller that
also needs the probabilities (the label-issue report) gets them with both rules' verdicts from
:func:`feature_flags`, each computed once: the same keep masks as the rules. conformal_kfold
instead sets each class's threshold on the K-fold probabilities from the validation split,
whose labels alr takes as right, so that each class keeps a chosen share of its right labels.
"""

from __future__ import annotations

import warnings

import numpy as np

from alr_core.common.checks import check_labels
from alr_core.common.errors import AlrError
from alr_core.common.params import FEATURE_RULES
from alr_core.lnl.class_rules import confident_learning, keep_one_per_class

# The folds are part of the rule, not of the run's randomness: the same embeddings and labels
# give the same clean guess whatever the run's seed.
FOLD_SEED = 0
# Prior votes per row in knn_probs, spread over the classes like the observed labels: a row
# whose neighbours all carry one label still gives every observed class a little mass.
KNN_PRIOR_VOTES = 1.0
# Inverse L2 strength of the linear probe: lbfgs converges within 100 iterations on
# standardised 128-d embeddings with 40 % noise, where C = 1 does not; on synthetic long-tailed
# clusters like those of tests/test_feature_rules.py, C from 0.1 to 10 gave the same keep
# precision and recall within 0.01. The iteration cap is a guard only.
PROBE_C = 0.1
PROBE_MAX_ITER = 1000
# validation_false_alarm_rates: the held-out rows of a class joined to its train rows at once, as
# a share of that class's train count (at least one row), and the most batches that takes; 0.1
# brought the estimate on digits from 0.002 (all at once) to 0.035 where the rules flag 0.032
# of right train labels, 0.25 to 0.016 (bench/label_issue_alarms_tables.md)
HELD_OUT_SHARE = 0.1
MAX_HELD_OUT_BATCHES = 16
# The rules the label-issue report flags with; conformal_kfold is left out because it flags
# 1 − lnl.clean_recall of the right labels by design, a false-alarm rate fixed in advance
REPORT_RULES = ("knn_vote", "cleanlab_kfold")
ZERO_NORM = 1e-12  # an embedding shorter than this has no direction


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """``embeddings`` (N, D) with each row scaled to length 1 (one shorter than :data:`ZERO_NORM`
    is divided by it instead: a zero row stays zero): the directions the feature rules compare,
    since on unit rows the Euclidean order is the cosine order."""
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), ZERO_NORM)


def nearest_neighbours(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows by cosine similarity.

    Returns ``indices`` int64 (N, k) and ``similarities`` float64 (N, k) in [-1, 1], most
    similar first, equally similar rows in ascending row index. Which of several equally
    similar candidates fill the last places is deterministic (the same input gives the same
    output) but not otherwise specified. A row is never its own neighbour, even when other
    rows duplicate it (those are neighbours at similarity 1). A zero row has similarity 0 to
    every row. Exact brute-force search on the L2-normalised rows (sklearn's chunked
    pairwise reduction): memory O(N·k + chunk), never an N×N matrix.
    """
    from sklearn.neighbors import NearestNeighbors

    embeddings = _check_embeddings(embeddings)
    n = len(embeddings)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n - 1:
        raise AlrError(f"k (lnl.knn_k) is {k!r}; expected an integer in [1, {n - 1}] (the number of other rows)")
    unit = unit_rows(embeddings)
    # on unit vectors the Euclidean order is the cosine order; a zero row would lie at distance
    # 1 from every unit row, as near as a row at cosine 0.5, so the search gives it an axis of
    # its own (orthogonal to every other row); kneighbors() without a query leaves each row out
    # of its own list (a duplicate of it stays in)
    search = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean")
    search.fit(np.hstack([unit, np.linalg.norm(embeddings, axis=1, keepdims=True) < ZERO_NORM]))
    indices = search.kneighbors(return_distance=False).astype(np.int64)
    # exact dot products, so equally similar rows compare equal for the tie order (the search's
    # squared-distance expansion rounds); in blocks of rows so the gathered (rows, k, D)
    # neighbour vectors stay ~16 M values
    similarities = np.empty((n, k))
    rows = max(1, 2**24 // (k * unit.shape[1]))
    for start in range(0, n, rows):
        block = slice(start, start + rows)
        similarities[block] = np.einsum("nd,nkd->nk", unit[block], unit[indices[block]])
    order = np.lexsort((indices, -similarities), axis=1)
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(similarities, order, axis=1)


def knn_probs(neighbours: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Class probabilities float (N, num_classes) from the neighbours' observed labels.

    With v[i, c] the number of row i's k neighbours labelled c, n_c the number of samples
    labelled c, N the number of samples and a = KNN_PRIOR_VOTES:

        p[i, c] = (v[i, c] + a·n_c/N) / (k + a),

    the neighbours' label shares smoothed by a prior votes spread like the observed labels
    (a Dirichlet prior centred on the observed class frequencies): every observed class gets
    some mass, classes nobody is labelled with get 0, rows sum to 1. This estimates
    p(observed label | x), which is what cleanlab's confident learning expects. There is no
    division by n_c: the rules judge a class's column only against the samples labelled with
    that class (cleanlab's per-class thresholds), and that is what keeps a rare class's smaller
    vote shares from being judged against a common class's. Dividing by n_c as well lowered
    both precision and recall of knn_vote on long-tailed data with symmetric noise, where the
    labels flipped into a rare class inflate its n_c. A sample is never among its own
    neighbours (checked), so no sample votes for its own label.
    """
    labels = check_labels(labels, num_classes, None)
    neighbours = np.asarray(neighbours)
    n = len(labels)
    if n < 2 or neighbours.ndim != 2 or len(neighbours) != n or neighbours.shape[1] < 1 \
            or not np.issubdtype(neighbours.dtype, np.integer):  # fmt: skip
        raise AlrError(f"neighbours has shape {neighbours.shape} and dtype {neighbours.dtype} for {n} labels; "
                       "expected integer row indices of shape (N, k), N ≥ 2, k ≥ 1")  # fmt: skip
    if neighbours.min() < 0 or neighbours.max() >= n:
        raise AlrError(f"neighbours holds row indices outside [0, {n - 1}]")
    if (neighbours == np.arange(n)[:, None]).any():
        raise AlrError("neighbours lists a row as its own neighbour; its label would vote for itself")
    k = neighbours.shape[1]
    votes = np.zeros((n, num_classes))
    np.add.at(votes, (np.repeat(np.arange(n), k), labels[neighbours].ravel()), 1.0)
    frequency = np.bincount(labels, minlength=num_classes) / n
    return (votes + KNN_PRIOR_VOTES * frequency) / (k + KNN_PRIOR_VOTES)


def knn_vote(embeddings: np.ndarray, labels: np.ndarray, num_classes: int, k: int) -> tuple[np.ndarray, list]:
    """cleanlab's confident learning (:func:`alr_core.lnl.class_rules.confident_learning`:
    per-class thresholds, prune by noise rate, ranked by normalized margin inside each class)
    on :func:`knn_probs` of the k nearest neighbours (:func:`nearest_neighbours`)."""
    embeddings = _check_embeddings(embeddings)
    labels = check_labels(labels, num_classes, len(embeddings))
    neighbours, _ = nearest_neighbours(embeddings, k)
    return confident_learning(knn_probs(neighbours, labels, num_classes), labels)


def kfold_probs(embeddings: np.ndarray, labels: np.ndarray, num_classes: int, folds: int, seed: int) -> np.ndarray:
    """Out-of-sample class probabilities float (N, num_classes) from linear probes.

    The rows are split into ``folds`` stratified folds (sklearn StratifiedKFold, shuffled with
    ``seed``); each fold is predicted by a multinomial logistic regression (C = PROBE_C, lbfgs)
    on standardised embeddings fitted to the other folds, so no sample's probabilities come
    from a model that saw its label. Columns of classes nobody is labelled with are 0.

    A class with fewer samples than folds still works: its samples land in different folds, so
    every training set holds all but one of them; a class with a single sample is absent from
    the training set of its own fold, and that sample gets probability 0 for its label (the
    probe never saw the class), which is the honest out-of-sample answer. With one observed
    class there is nothing to learn: every row is 1 in that column. Raises AlrError when a
    training set would hold one class only (two observed classes, one of them a single sample)
    or when ``folds`` is not in [2, the largest class's size].
    """
    embeddings = _check_embeddings(embeddings)
    labels = check_labels(labels, num_classes, len(embeddings))
    return _out_of_fold_probs(_fold_probes(embeddings, labels, folds, seed), embeddings, num_classes)


def _fold_probes(embeddings: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> list[tuple[object, np.ndarray]]:
    """[(the probe fitted to the other folds, the fold's row indices)] for each of ``folds``
    stratified folds (see :func:`kfold_probs`); with one observed class, one probe that gives it
    probability 1 (sklearn's DummyClassifier), for every row."""
    from sklearn.base import clone
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    present, counts = np.unique(labels, return_counts=True)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or not 2 <= folds <= counts.max():
        raise AlrError(f"folds (lnl.cv_folds) is {folds!r}; expected an integer in [2, {counts.max()}] "
                       "(the size of the largest observed class)")  # fmt: skip
    if len(present) == 1:
        return [(DummyClassifier().fit(embeddings, labels), np.arange(len(labels)))]
    with warnings.catch_warnings():  # the documented single-sample-class case of kfold_probs
        warnings.filterwarnings("ignore", message="The least populated class in y has only")
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(embeddings, labels))
    for train, _ in splits:
        if len(np.unique(labels[train])) < 2:
            raise AlrError(f"a {folds}-fold split leaves a training fold with one class only: "
                           f"labels has 2 observed classes and class {present[counts.argmin()]} "
                           "has a single sample; a probe needs two classes to learn from: give that class more "
                           "train images (beside two or more other classes a single sample is scored)")  # fmt: skip
    with threadpool_limits(1, user_api="blas"):  # see _probe
        return [(clone(_probe()).fit(embeddings[train], labels[train]), rows) for train, rows in splits]


def _probe_probs(probe, embeddings: np.ndarray, num_classes: int) -> np.ndarray:
    """float (M, num_classes): a fitted probe's probabilities for ``embeddings`` (M, D), in the
    columns of the classes it was fitted to (0 elsewhere)."""
    from threadpoolctl import threadpool_limits

    probs = np.zeros((len(embeddings), num_classes))
    if len(embeddings):
        with threadpool_limits(1, user_api="blas"):
            probs[:, probe.classes_] = probe.predict_proba(embeddings)
    return probs


def _out_of_fold_probs(probes: list, embeddings: np.ndarray, num_classes: int) -> np.ndarray:
    """float (N, num_classes): each row of ``embeddings`` by the probe of :func:`_fold_probes`
    whose fold holds it."""
    probs = np.zeros((len(embeddings), num_classes))
    for probe, rows in probes:
        probs[rows] = _probe_probs(probe, embeddings[rows], num_classes)
    return probs


def conformal_thresholds(val_scores: np.ndarray, val_labels: np.ndarray, num_classes: int,
                         clean_recall: float) -> np.ndarray:  # fmt: skip
    """Per-class score thresholds float (num_classes,) calibrated on rows whose labels are right.

    For class c with n validation scores ``val_scores[val_labels == c]``, the threshold is the
    k-th smallest of them, k = ⌊(1 − clean_recall)·(n + 1)⌋: split conformal prediction inside
    each class (Vovk's class-conditional form), so a right-labelled sample of class c whose score
    is exchangeable with those n scores reaches the threshold with probability ≥ ``clean_recall``
    (at most clean_recall + 1/(n + 1) where no scores tie). Where k is 0 — fewer than
    clean_recall / (1 − clean_recall) rows, e.g. 9 at 0.9, or none — no threshold can promise
    that share: −inf, the class kept whole."""
    val_scores, val_labels = np.asarray(val_scores, dtype=float), np.asarray(val_labels)
    if not 0.0 < clean_recall < 1.0:
        raise AlrError(f"clean_recall (lnl.clean_recall) is {clean_recall!r}; expected a share in (0, 1)")
    thresholds = np.full(num_classes, -np.inf)
    for c in range(num_classes):
        calibration = np.sort(val_scores[val_labels == c])
        # the tolerance keeps (1 − 0.9)·10 = 0.99999… at rank 1
        rank = int(np.floor((1.0 - clean_recall) * (len(calibration) + 1) + 1e-9))
        if rank >= 1:
            thresholds[c] = calibration[rank - 1]
    return thresholds


def conformal_kfold(embeddings: np.ndarray, labels: np.ndarray, val_embeddings: np.ndarray, val_labels: np.ndarray,
                    num_classes: int, folds: int, seed: int,
                    clean_recall: float) -> tuple[np.ndarray, list]:  # fmt: skip
    """Keep each train sample whose K-fold probe gives its label at least its class's
    :func:`conformal_thresholds`, calibrated on the validation rows ``val_embeddings`` (M, D),
    ``val_labels`` (M,), whose labels alr takes as right: each class keeps about
    ``clean_recall`` of its right-labelled samples, whatever the precision that costs.

    A train sample is scored by the probe of :func:`kfold_probs` that did not see it; each
    validation row by one of the same probes, dealt round the folds inside its class (seeded by
    ``seed``), so both kinds of score come from probes fitted to the same share of the train
    split and the calibration scores stay exchangeable with the right-labelled train scores.
    Every observed class keeps at least its highest-scoring sample. Returns ``(keep (N,) bool,
    whole)``, ``whole`` the observed classes in which nothing was dropped (among them every
    class with too few validation rows for a threshold)."""
    embeddings = _check_embeddings(embeddings)
    labels = check_labels(labels, num_classes, len(embeddings))
    val_embeddings, val_labels = _check_held_out(embeddings, val_embeddings, val_labels, num_classes, "val")
    probes = _fold_probes(embeddings, labels, folds, seed)
    scores = _out_of_fold_probs(probes, embeddings, num_classes)[np.arange(len(labels)), labels]
    fold = np.zeros(len(val_labels), dtype=int)  # each validation row's probe: round the folds inside its class
    rng = np.random.default_rng(seed)
    for c in np.unique(val_labels):
        members = np.flatnonzero(val_labels == c)
        fold[members] = rng.permutation(len(members)) % len(probes)
    val_probs = _out_of_fold_probs([(probe, np.flatnonzero(fold == f)) for f, (probe, _) in enumerate(probes)],
                                   val_embeddings, num_classes)  # fmt: skip
    val_scores = val_probs[np.arange(len(val_labels)), val_labels]
    keep = scores >= conformal_thresholds(val_scores, val_labels, num_classes, clean_recall)[labels]
    return keep_one_per_class(keep, scores, labels)


def probe_balanced_accuracy(embeddings: np.ndarray, labels: np.ndarray, held_out_embeddings: np.ndarray,
                            held_out_labels: np.ndarray, num_classes: int) -> float | None:  # fmt: skip
    """Balanced accuracy on held-out rows of the linear probe :func:`kfold_probs` uses, fitted
    to all of ``embeddings`` (N, D) and ``labels`` (N,), scored on ``held_out_embeddings``
    (M, D) and ``held_out_labels`` (M,): how often the probe's top class, the label-issue
    report's suggestion, is right, where the held-out labels are. None when fewer than two
    classes are observed (no probe) or nothing is held out."""
    from sklearn.metrics import balanced_accuracy_score
    from threadpoolctl import threadpool_limits

    embeddings = _check_embeddings(embeddings)
    labels = check_labels(labels, num_classes, len(embeddings))
    held_out_labels = np.asarray(held_out_labels)
    if len(np.unique(labels)) < 2 or len(held_out_labels) == 0:
        return None
    held_out_embeddings, held_out_labels = _check_held_out(embeddings, held_out_embeddings, held_out_labels,
                                                           num_classes, "held_out")  # fmt: skip
    with threadpool_limits(1, user_api="blas"):
        predicted = _probe().fit(embeddings, labels).predict(held_out_embeddings)
    with warnings.catch_warnings():  # a held-out class the probe never predicts is a recall of 0, as meant
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(held_out_labels, predicted))


def _probe():
    """The linear probe: standardised embeddings, multinomial logistic regression (lbfgs).
    Callers fit it under one BLAS thread: lbfgs on D ≤ a few hundred columns makes many small
    BLAS calls, and OpenBLAS's threads spin between them, 7× slower than one thread when
    torch's threads hold the cores."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER))


def cleanlab_kfold(embeddings: np.ndarray, labels: np.ndarray, num_classes: int, folds: int,
                   seed: int) -> tuple[np.ndarray, list]:  # fmt: skip
    """cleanlab's confident learning (:func:`alr_core.lnl.class_rules.confident_learning`:
    per-class thresholds, prune by noise rate) on :func:`kfold_probs`."""
    return confident_learning(kfold_probs(embeddings, labels, num_classes, folds, seed), labels)


def feature_flags(embeddings: np.ndarray, labels: np.ndarray, num_classes: int, k: int,
                  folds: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """Both rules' verdicts at once, each probability table computed once: ``(probs, neighbours,
    flags)`` with ``probs`` :func:`kfold_probs` (fold seed FOLD_SEED), ``neighbours`` the k
    nearest neighbours (:func:`nearest_neighbours`) and ``flags`` {rule name in REPORT_RULES:
    bool (N,)}, True where that rule leaves the sample out of C (calls its label wrong)."""
    neighbours, _ = nearest_neighbours(embeddings, k)
    probs = kfold_probs(embeddings, labels, num_classes, folds, FOLD_SEED)
    flags = {"knn_vote": ~confident_learning(knn_probs(neighbours, labels, num_classes), labels)[0],
             "cleanlab_kfold": ~confident_learning(probs, labels)[0]}  # fmt: skip
    return probs, neighbours, flags


def validation_false_alarm_rates(embeddings: np.ndarray, labels: np.ndarray, val_embeddings: np.ndarray,
                                 val_labels: np.ndarray, num_classes: int, k: int,
                                 folds: int) -> dict[str, float] | None:  # fmt: skip
    """The share of right labels the rules of :func:`feature_flags` flag, estimated on held-out
    rows whose labels are right (the validation split, whose labels alr takes as clean).

    The held-out rows ``val_embeddings`` (M, D), ``val_labels`` (M,) join the train rows
    ``embeddings`` (N, D), ``labels`` (N,) a few at a time, each batch judged by the rules as
    train samples are, and every held-out row a rule flags is a false alarm. A batch adds at
    most HELD_OUT_SHARE of a class's train count to that class (at least one row), so the rules
    see nearly the train split's own class mix: a balanced validation split added at once would
    let its rows of a rare class vouch for each other (on digits, 15 per class beside 13 train
    samples of the rarest, that estimated 0.002 where the rules flag 0.032 of right train
    labels). At most MAX_HELD_OUT_BATCHES batches, each one pass of the rules (bench/ssl_cost.md:
    about 9 s at 50,000 train rows): beyond that a batch takes more. Each class's
    share of flagged held-out rows is then weighted by the class's train count, since a long
    tail's rare classes are flagged more often; classes with no held-out row or no train row
    drop out. Returns {rule in REPORT_RULES: share, "either": share flagged by at least one},
    each in [0, 1], or None when no held-out row's class is among ``labels``.
    bench/label_issue_alarms_tables.md measures the estimate against the flags on train
    labels known to be right.
    """
    embeddings = _check_embeddings(embeddings)
    labels = check_labels(labels, num_classes, len(embeddings))
    val_labels = np.asarray(val_labels)
    if len(val_labels) == 0:
        return None
    val_embeddings, val_labels = _check_held_out(embeddings, val_embeddings, val_labels, num_classes, "val")
    train_counts = np.bincount(labels, minlength=num_classes)
    val_counts = np.bincount(val_labels, minlength=num_classes)
    weights = train_counts * (val_counts > 0)
    if weights.sum() == 0:
        return None
    per_batch = np.maximum(1, np.floor(HELD_OUT_SHARE * train_counts)).astype(int)
    batches = min(MAX_HELD_OUT_BATCHES, int(np.ceil(val_counts[weights > 0] / per_batch[weights > 0]).max()))
    # a class's held-out rows dealt round the batches in their given order; rows of a class
    # without train rows in no batch
    batch = np.full(len(val_labels), -1)
    for c in np.flatnonzero(weights):
        rows = np.flatnonzero(val_labels == c)
        batch[rows] = np.arange(len(rows)) % batches
    flagged = {rule: np.zeros(len(val_labels), dtype=bool) for rule in REPORT_RULES}
    for b in range(batches):
        rows = np.flatnonzero(batch == b)
        _, _, flags = feature_flags(np.concatenate([embeddings, val_embeddings[rows]]),
                                    np.concatenate([labels, val_labels[rows]]), num_classes, k, folds)  # fmt: skip
        for rule, hits in flags.items():
            flagged[rule][rows] = hits[len(labels):]
    flagged["either"] = np.logical_or.reduce(list(flagged.values()))
    rates = {}
    for rule, hits in flagged.items():
        per_class = np.bincount(val_labels, weights=hits, minlength=num_classes) / np.maximum(val_counts, 1)
        rates[rule] = float(per_class @ weights / weights.sum())
    return rates


def feature_keep(rule: str, embeddings: np.ndarray, labels: np.ndarray, num_classes: int, k: int, folds: int,
                 seed: int, val_embeddings: np.ndarray | None = None, val_labels: np.ndarray | None = None,
                 clean_recall: float | None = None) -> tuple[np.ndarray, list]:  # fmt: skip
    """Dispatch on ``rule`` (one of FEATURE_RULES): knn_vote reads ``k``, cleanlab_kfold
    ``folds`` and ``seed``, conformal_kfold those, the validation rows and ``clean_recall``
    (required for it)."""
    if rule == "knn_vote":
        return knn_vote(embeddings, labels, num_classes, k)
    if rule == "cleanlab_kfold":
        return cleanlab_kfold(embeddings, labels, num_classes, folds, seed)
    if rule == "conformal_kfold":
        if val_embeddings is None or val_labels is None or clean_recall is None:
            raise AlrError("conformal_kfold needs the validation rows (val_embeddings, val_labels) and clean_recall")
        return conformal_kfold(embeddings, labels, val_embeddings, val_labels, num_classes, folds, seed, clean_recall)
    raise AlrError(f"unknown feature rule {rule!r}; valid: {', '.join(FEATURE_RULES)}")


def _check_embeddings(embeddings: np.ndarray, name: str = "embeddings", min_rows: int = 2) -> np.ndarray:
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or len(embeddings) < min_rows or embeddings.shape[1] < 1:
        raise AlrError(f"{name} has shape {embeddings.shape}; expected (N, D) with N ≥ {min_rows} rows, D ≥ 1")
    if not np.issubdtype(embeddings.dtype, np.floating) and not np.issubdtype(embeddings.dtype, np.integer):
        raise AlrError(f"{name} has dtype {embeddings.dtype}; expected a real-valued (float) array")
    if not np.isfinite(embeddings).all():
        bad = int((~np.isfinite(embeddings)).any(axis=1).sum())
        raise AlrError(f"{name} has {bad} row(s) with NaN or inf values; expected finite values")
    return embeddings


def _check_held_out(embeddings: np.ndarray, held_out: np.ndarray, held_out_labels: np.ndarray, num_classes: int,
                    prefix: str) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Held-out rows beside the (checked) train ``embeddings``: ``held_out`` (M, D), M ≥ 1, with
    the train rows' D columns, and ``held_out_labels`` (M,); named ``<prefix>_embeddings`` and
    ``<prefix>_labels`` in the messages."""
    held_out = _check_embeddings(held_out, f"{prefix}_embeddings", min_rows=1)
    held_out_labels = check_labels(held_out_labels, num_classes, len(held_out), f"{prefix}_labels")
    if held_out.shape[1] != embeddings.shape[1]:
        raise AlrError(f"{prefix}_embeddings has {held_out.shape[1]} columns; expected {embeddings.shape[1]}, "
                       "as embeddings")  # fmt: skip
    return held_out, held_out_labels
