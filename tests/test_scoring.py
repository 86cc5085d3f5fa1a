"""score_pool: every strategy scores exactly the pool, from unaugmented eval-mode passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alr_core.active import strategies
from alr_core.active.scoring import score_pool
from alr_core.common import params as params_module
from alr_core.common.params import parse_params
from alr_core.data.datasets import SplitData
from alr_core.nn.models import ModelSpec, build_model

pytestmark = pytest.mark.usefixtures("torch_state")
NORMALIZATION = {"mean": [0.5], "std": [0.25]}
STRATEGIES = list(params_module.STRATEGIES)  # every al.strategy choice, from its one list


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    train = SplitData(np.array([f"s{i:02d}" for i in range(30)]),
                      rng.integers(0, 256, (30, 8, 8, 1), dtype=np.uint8), rng.integers(0, 3, 30))  # fmt: skip
    torch.manual_seed(0)
    model = build_model(ModelSpec("small_cnn", 3, 1, 8, 0.5))
    pool = np.zeros(30, dtype=bool)
    pool[::3] = True
    return model, train, pool, ~pool


def run(setup, strategy, seed=1):
    model, train, pool, labelled = setup
    params = parse_params({"train": {"device": "cpu"}, "al": {"strategy": strategy, "mc_passes": 4}})
    return score_pool(model, NORMALIZATION, train, pool, labelled, 3, params, seed)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_scores_exactly_the_pool(setup, strategy):
    _, train, pool, _ = setup
    table = run(setup, strategy)
    assert list(table.columns) == ["sample_id", "score", "prediction", "confidence", "probabilities"]
    assert table["sample_id"].tolist() == train.sample_ids[pool].tolist()
    assert np.isfinite(table["score"]).all()
    assert table["confidence"].between(1 / 3, 1).all()
    assert table["prediction"].between(0, 2).all()


def test_scores_are_the_formulas_on_eval_mode_unaugmented_probabilities(setup):
    model, train, pool, _ = setup
    mean, std = torch.tensor([0.5]), torch.tensor([0.25])
    x = (torch.from_numpy(train.images[pool]).permute(0, 3, 1, 2).float() / 255 - mean) / std
    model.eval()
    with torch.no_grad():
        probs = model(x)[1].softmax(1).double().numpy()
    expected = {
        "entropy": strategies.entropy(probs),
        "least_confidence": strategies.least_confidence(probs),
        "margin": strategies.margin(probs),
        "label_disagreement": strategies.label_disagreement(probs, train.labels[pool], 0.3),  # al.entropy_threshold
    }
    for strategy, values in expected.items():
        np.testing.assert_allclose(run(setup, strategy)["score"], values, rtol=1e-5, atol=1e-6)
    entropy = run(setup, "entropy")
    np.testing.assert_allclose(entropy["confidence"], probs.max(axis=1), rtol=1e-5)
    assert entropy["prediction"].tolist() == probs.argmax(axis=1).tolist()  # the most likely class
    np.testing.assert_allclose(np.stack(entropy["probabilities"]), probs, rtol=1e-5, atol=1e-7)


def test_random_and_bald_follow_the_round_seed(setup):
    assert run(setup, "random", seed=1)["score"].equals(run(setup, "random", seed=1)["score"])
    assert not run(setup, "random", seed=1)["score"].equals(run(setup, "random", seed=2)["score"])
    assert run(setup, "bald", seed=3)["score"].equals(run(setup, "bald", seed=3)["score"])
    assert not run(setup, "bald", seed=1)["score"].equals(run(setup, "bald", seed=2)["score"])  # other masks
    assert (run(setup, "bald")["score"] >= -1e-9).all()


def test_bald_averages_al_mc_passes_stochastic_passes(setup, monkeypatch):
    """BALD reads T = al.mc_passes (4 in run()) dropout passes over the pool rows, each a different
    mask: one pass (or T deterministic ones) would score every sample 0."""
    seen = []

    def capture(mc_probs: np.ndarray) -> np.ndarray:
        seen.append(mc_probs)
        return np.zeros(mc_probs.shape[1])

    monkeypatch.setattr(strategies, "bald", capture)
    run(setup, "bald")
    (mc_probs,) = seen
    assert mc_probs.shape == (4, 10, 3)  # T passes, the 10 pool rows, K classes
    assert not np.allclose(mc_probs[0], mc_probs[1])  # dropout on: the passes differ
    monkeypatch.undo()
    assert (strategies.bald(mc_probs) > 0).all()


def penultimate_features(model, train) -> np.ndarray:
    """The features core-set measures, computed by hand: every train image through the model,
    normalised as NORMALIZATION says."""
    mean, std = torch.tensor(NORMALIZATION["mean"]), torch.tensor(NORMALIZATION["std"])
    x = (torch.from_numpy(train.images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    model.eval()
    with torch.no_grad():
        return model(x)[0].numpy()


def test_coreset_measures_distances_from_the_labelled_rows_only(setup):
    model, train, pool, _ = setup
    labelled = np.zeros(30, dtype=bool)
    labelled[1::6] = True  # a third of the non-pool rows: the rest is neither pool nor labelled
    features = penultimate_features(model, train)
    expected = strategies.coreset(features[pool], features[labelled], 3)
    params = parse_params({"train": {"device": "cpu"}, "al": {"strategy": "coreset"}})
    table = score_pool(model, NORMALIZATION, train, pool, labelled, 3, params, seed=1)
    np.testing.assert_allclose(table["score"], expected, rtol=1e-5, atol=1e-6)
    wrong = strategies.coreset(features[pool], features[~pool], 3)  # what counting every non-pool row gives
    assert not np.allclose(table["score"], wrong)


def test_coreset_candidates_inside_the_trusted_set_are_not_their_own_centres(setup):
    """al.pool: selected queries inside C, which is trusted: each candidate must not count as a
    centre for itself, else every distance is 0 and the query is the first sample ids."""
    model, train, pool, _ = setup
    features = penultimate_features(model, train)
    labelled = pool.copy()
    labelled[1::3] = True  # trusted: the whole pool and a third of the other rows
    params = parse_params({"train": {"device": "cpu"}, "al": {"strategy": "coreset"}})
    table = score_pool(model, NORMALIZATION, train, pool, labelled, 3, params, seed=1)
    assert (table["score"] > 0).all()
    # each candidate's distance to the trusted samples but itself: the first pick is the farthest
    distance = [min(np.linalg.norm(features[r] - features[j]) for j in np.flatnonzero(labelled) if j != r)
                for r in np.flatnonzero(pool)]  # fmt: skip
    assert table["score"].max() == pytest.approx(max(distance), rel=1e-5)
    assert table["score"].iloc[int(np.argmax(distance))] == table["score"].max()


def test_coreset_under_pool_all_measures_from_the_trusted_samples_in_the_pool(setup):
    """al.pool: all (the default) pools C too: round 1 has no trusted sample outside the pool,
    yet C must stay the centres the candidates outside it are measured from."""
    model, train, pool, _ = setup
    features = penultimate_features(model, train)
    every = np.ones(30, dtype=bool)
    trusted = np.zeros(30, dtype=bool)
    trusted[::2] = True  # C: half the train split, all of it in the pool
    params = parse_params({"train": {"device": "cpu"}, "al": {"strategy": "coreset"}})
    table = score_pool(model, NORMALIZATION, train, every, trusted, 1, params, seed=1)
    outside = ~trusted
    nearest_c = np.linalg.norm(features[outside][:, None] - features[trusted][None], axis=2).min(axis=1)
    assert table["score"].max() == pytest.approx(nearest_c.max(), rel=1e-5)  # the first pick: farthest from C
