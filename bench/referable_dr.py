"""RetinaMNIST as a two-class task, referable diabetic retinopathy: grades 0–1 ("non_referable")
against 2–4 ("referable", moderate or worse, the usual referral threshold), written as a CSV
manifest with one PNG per image and MedMNIST's own split in a ``split`` column, i.e. as a user
brings data (``data.source: csv``). Pixels are MedMNIST's, unchanged.

    python -m bench.referable_dr --out /tmp/referable_dr   # --npz: RetinaMNIST in ../shared/data by default
    python -m bench.ssl_evidence --dataset \\
        "referable_dr=csv:/tmp/referable_dr/manifest.csv;csv={label_column: label, split_column: split}" ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from alr_core.common import artifacts
from bench.phase1_evidence import RETINA

REFERABLE_FROM_GRADE = 2


def write_manifest(npz: Path, out: Path) -> pd.DataFrame:
    """Write ``out``/images/<split>_<index>.png and ``out``/manifest.csv (columns image, label,
    split, grade); return the manifest."""
    arrays = np.load(npz)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for split in ("train", "val", "test"):
        for index, (image, grade) in enumerate(zip(arrays[f"{split}_images"], arrays[f"{split}_labels"].ravel())):
            name = f"images/{split}_{index:04d}.png"
            Image.fromarray(image).save(out / name)
            label = "referable" if grade >= REFERABLE_FROM_GRADE else "non_referable"
            rows.append({"image": name, "label": label, "split": split, "grade": int(grade)})
    manifest = pd.DataFrame(rows)
    artifacts.write_csv(out / "manifest.csv", manifest)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npz", type=Path, default=RETINA)
    parser.add_argument("--out", type=Path, default=Path("/tmp/referable_dr"))
    args = parser.parse_args()
    manifest = write_manifest(args.npz, args.out)
    print(manifest.groupby(["split", "label"]).size().to_string())
    print(f"wrote {args.out / 'manifest.csv'}")


if __name__ == "__main__":
    main()
