"""Where each artifact lives. ``dvc.yaml`` declares the same paths as deps and outs."""

from pathlib import Path

PARAMS = Path("params.yaml")

PREPARED_IMAGES = Path("data/prepared/images.npy")
PREPARED_SAMPLES = Path("data/prepared/samples.parquet")
DATA_METRICS = Path("metrics/data.json")

NOISY_LABELS = Path("data/noise/labels.parquet")
NOISE_METRICS = Path("metrics/noise.json")

LNL_CHECKPOINT = Path("data/lnl/model.pt")
LNL_WORKING_LABELS = Path("data/lnl/labels.parquet")
LNL_SELECTION = Path("data/lnl/selection.parquet")
LNL_METRICS = Path("metrics/lnl.json")
LNL_EPOCHS_PLOT = Path("plots/lnl_epochs.csv")

# Phase 1 also writes the round-0 working label table; round r reads its inputs from
# params `rounds.<r>.prev` (data/lnl for round 1) and writes into round_dir(r).
WORKING_LABELS = "labels.parquet"
MODEL = "model.pt"
SCORES = "scores.parquet"
QUERY = "query.parquet"
REPORT_METRICS = Path("metrics/report.json")
ROUNDS_PLOT = Path("plots/rounds.csv")
LEARNING_CURVE_FIGURE = Path("plots/learning_curve.png")
PHASE1_RECALL_FIGURE = Path("plots/phase1_class_recall.png")
CONFUSION_FIGURE = Path("plots/confusion_matrix.png")


def round_dir(round_number: int | str) -> Path:
    return Path("data/rounds") / str(round_number)


def round_metrics(round_number: int | str) -> Path:
    return Path("metrics/rounds") / f"{round_number}.json"
ANNOTATION_CSV = "annotate.csv"  # the queried samples, for experts and their tools
ANNOTATION_PAGE = "annotate.html"  # the self-contained page experts answer in
