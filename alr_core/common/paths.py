"""Where each artifact lives. ``dvc.yaml`` declares the same paths as deps and outs."""

from pathlib import Path

PARAMS = Path("params.yaml")

# The MD5 of every file under data.path that the source reads (prepare's real data dependency),
# and the stat cache that spares re-hashing unchanged files (not a DVC output: git-ignored).
SOURCE_FINGERPRINT = Path("data/source/fingerprint.json")
SOURCE_STAT_CACHE = Path("data/source/stat_cache.json")
INIT_FINGERPRINT = Path("data/source/model_init.json")  # the MD5 of a `model.init` weights file

PREPARED_IMAGES = Path("data/prepared/images.npy")
PREPARED_SAMPLES = Path("data/prepared/samples.parquet")
DATA_METRICS = Path("metrics/data.json")

# Self-supervised pretraining (no labels): the encoder and the embedding of every sample.
PRETRAIN_DIR = Path("data/pretrain")
PRETRAIN_ENCODER = PRETRAIN_DIR / "encoder.pt"
PRETRAIN_EMBEDDINGS = PRETRAIN_DIR / "embeddings.parquet"
PRETRAIN_METRICS = Path("metrics/pretrain.json")
PRETRAIN_TIMING = Path("metrics/pretrain_timing.json")  # not a dvc metric: seconds differ between identical runs
PRETRAIN_EPOCHS_PLOT = Path("plots/pretrain_epochs.csv")

NOISY_LABELS = Path("data/noise/labels.parquet")
NOISE_METRICS = Path("metrics/noise.json")

# Every train sample ranked by how likely its given label is wrong (from the pretrained
# embeddings alone, before any expert round), and the offline gallery of the top of that list.
LABEL_ISSUES_DIR = Path("data/label_issues")
LABEL_ISSUES_CSV = LABEL_ISSUES_DIR / "label_issues.csv"
LABEL_ISSUES_GALLERY = LABEL_ISSUES_DIR / "gallery.html"
LABEL_ISSUES_METRICS = Path("metrics/label_issues.json")
EMBEDDING_MAP_FIGURE = Path("plots/embedding_map.png")

# File names inside phase 1's folder and each round's folder: round r reads the model and
# working labels of params `rounds.<r>.prev` (data/lnl for round 1) and writes round_dir(r).
MODEL = "model.pt"
WORKING_LABELS = "labels.parquet"
SCORES = "scores.parquet"
QUERY = "query.parquet"
ANNOTATION_CSV = "annotate.csv"  # item id -> sample id and image path: the data team's mapping, not the expert's
ANNOTATION_PAGE = "annotate.html"  # the self-contained page experts answer in
LABELSTUDIO_TASKS = "labelstudio_tasks.json"  # the same queried samples as Label Studio import tasks
LABELSTUDIO_CONFIG = "labelstudio_config.xml"  # the matching Label Studio labelling interface
ITEM_IMAGES = "images"  # each queried image as <item_id>.png, for tools that reference files
ANSWERS = "answers.parquet"  # every answer of the round and the label decided per sample

ANSWERS_DIR = Path("annotations")  # experts' answer files: read by the pipeline, never written

LNL_DIR = Path("data/lnl")
LNL_CHECKPOINT = LNL_DIR / MODEL
LNL_WORKING_LABELS = LNL_DIR / WORKING_LABELS  # round 0: observed labels and the clean guess
LNL_SELECTION = LNL_DIR / "selection.parquet"
LNL_METRICS = Path("metrics/lnl.json")
LNL_TIMING = Path("metrics/lnl_timing.json")  # not a dvc metric: seconds differ between identical runs
LNL_EPOCHS_PLOT = Path("plots/lnl_epochs.csv")

REPORT_METRICS = Path("metrics/report.json")
REPORT_LABELS = Path("data/report/labels.csv")  # every train sample's given label and its label after the rounds
ROUNDS_PLOT = Path("plots/rounds.csv")
LEARNING_CURVE_FIGURE = Path("plots/learning_curve.png")
PHASE1_RECALL_FIGURE = Path("plots/phase1_class_recall.png")
CONFUSION_FIGURE = Path("plots/confusion_matrix.png")


def round_dir(round_number: int | str) -> Path:
    return Path("data/rounds") / str(round_number)


def round_metrics(round_number: int | str) -> Path:
    return Path("metrics/rounds") / f"{round_number}.json"
