"""The embeddings table: one row per sample of every split, the embedding as D float32 columns.

Plain float32 columns (``emb_0`` … ``emb_<D-1>``, in order) rather than one list column:
pandas and pyarrow read them straight into an (N, D) array without a per-row Python object,
and any tool that reads parquet sees ordinary numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alr_core.common.errors import AlrError

PREFIX = "emb_"


def embeddings_table(samples: pd.DataFrame, embeddings: np.ndarray) -> pd.DataFrame:
    """``sample_id``, ``split`` of the prepared samples table and its rows' embeddings
    (float32 (N, D), row i for samples' row i)."""
    if len(samples) != len(embeddings):
        raise AlrError(f"{len(embeddings)} embeddings for {len(samples)} samples")
    columns = {f"{PREFIX}{d}": embeddings[:, d].astype(np.float32) for d in range(embeddings.shape[1])}
    keys = {"sample_id": samples["sample_id"].astype("string").to_numpy(), "split": samples["split"].to_numpy()}
    return pd.DataFrame(keys | columns)


def embedding_matrix(table: pd.DataFrame) -> np.ndarray:
    """The embeddings of an embeddings table as float32 (N, D), rows in table order."""
    columns = [f"{PREFIX}{d}" for d in range(sum(c.startswith(PREFIX) for c in table.columns))]
    missing = [c for c in columns if c not in table.columns]
    if missing or not columns:
        raise AlrError(f"not an embeddings table: expected columns {PREFIX}0 … {PREFIX}<D-1>, missing {missing}")
    return table[columns].to_numpy(dtype=np.float32)
