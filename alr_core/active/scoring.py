"""Query-strategy scores: the current model scores the pool (formulas in alr_core.active.strategies)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from alr_core.active import strategies
from alr_core.common.errors import AlrError
from alr_core.common.params import STRATEGIES, Params
from alr_core.data.datasets import SplitData
from alr_core.nn.training import ImageSet, InputPipeline, pick_device, predict, seed_everything


def score_pool(model: torch.nn.Module, normalization: dict, train: SplitData, pool: np.ndarray,
               labelled: np.ndarray, round_budget: int, params: Params, seed: int) -> pd.DataFrame:
    """Scores of the pool samples (``pool``: bool (N,)); higher = query first.

    All passes are unaugmented and in eval mode; BALD's passes switch on dropout only.
    ``labelled`` (bool (N,)): the trusted samples (docs/method.md); core-set measures distances
    from them, a trusted candidate from the others (no candidate is its own centre). Only the
    pool rows (and, for core-set, the labelled rows) are passed through the network.
    ``seed`` drives the random strategy and BALD's dropout masks (one per round).
    Returns sample_id, score, prediction, confidence and probabilities (the K softmax
    probabilities, a list per row; the cleanlab aggregation of several answers uses them) for
    each pool sample.
    """
    al = params.al
    device = pick_device(params.train.device)
    generator = seed_everything(seed)
    model = model.to(device)
    pipeline = InputPipeline(normalization, params.train.augment, device, generator)
    # only the rows a strategy reads go through the network: the pool, and for core-set the
    # labelled set it measures distances from
    needed = pool | labelled if al.strategy == "coreset" else pool
    images = ImageSet.from_arrays(train.images[needed], train.labels[needed], device)
    in_needed = np.cumsum(needed) - 1  # row of each train sample inside ``images``
    rows = np.flatnonzero(pool)
    pool_rows = in_needed[rows]
    features, logits = predict(model, images, pipeline, params.train.eval_batch_size)
    pool_probs = logits[pool_rows].softmax(1).cpu().numpy().astype(np.float64)
    if al.strategy == "random":
        values = strategies.random_scores(len(rows), np.random.default_rng(seed))
    elif al.strategy == "entropy":
        values = strategies.entropy(pool_probs)
    elif al.strategy == "least_confidence":
        values = strategies.least_confidence(pool_probs)
    elif al.strategy == "margin":
        values = strategies.margin(pool_probs)
    elif al.strategy == "label_disagreement":
        values = strategies.label_disagreement(pool_probs, train.labels[rows], al.entropy_threshold)
    elif al.strategy == "bald":
        passes = [predict(model, images, pipeline, params.train.eval_batch_size, mc_dropout=True)[1]
                  for _ in range(al.mc_passes)]  # fmt: skip
        mc_probs = torch.stack(passes).softmax(-1).cpu().numpy().astype(np.float64)
        values = strategies.bald(mc_probs[:, pool_rows])
    elif al.strategy == "coreset":
        features = features.cpu().numpy()
        # a candidate is never its own centre: with al.pool selected (or C under all) the pool
        # lies inside the trusted set, and every distance would be 0 (ranked by sample id alone);
        # the other trusted samples, in the pool or not, stay its centres
        centres = np.flatnonzero(labelled)
        own = np.full(len(labelled), -1)
        own[centres] = np.arange(len(centres))
        values = strategies.coreset(features[pool_rows], features[in_needed[centres]], round_budget, own[rows])
    else:  # a name in params.STRATEGIES without a branch here (tests/test_choices.py)
        raise AlrError(f"al.strategy {al.strategy!r} has no scoring branch; valid: {', '.join(STRATEGIES)}")
    return pd.DataFrame({
        "sample_id": train.sample_ids[rows],
        "score": values,
        "prediction": pool_probs.argmax(axis=1),
        "confidence": pool_probs.max(axis=1),
        "probabilities": list(pool_probs),
    })  # fmt: skip
