"""Where each artifact lives. ``dvc.yaml`` declares the same paths as deps and outs."""

from pathlib import Path

PARAMS = Path("params.yaml")

PREPARED_IMAGES = Path("data/prepared/images.npy")
PREPARED_SAMPLES = Path("data/prepared/samples.parquet")
DATA_METRICS = Path("metrics/data.json")

NOISY_LABELS = Path("data/noise/labels.parquet")
NOISE_METRICS = Path("metrics/noise.json")
