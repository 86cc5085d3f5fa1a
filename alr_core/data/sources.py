"""Readers that turn each supported data source into one :class:`SourceData`.

A reader validates its source (paths, keys, labels, class lists) and decodes the images; it
does not decide splits unless the source defines them (MedMNIST files, a CSV split column).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from alr_core.common.errors import AlrError
from alr_core.common.params import GENERATED_SOURCES, DataParams
from alr_core.common.text import composed, did_you_mean
from alr_core.data.images import IMAGE_SUFFIXES, decode_files, is_gray, standardise_array
from alr_core.data.splits import SPLITS
from alr_core.data.synthetic import synthetic_images, synthetic_layout

NPZ_BLOCK_BYTES = 2**26  # a .npz's images are read this much at a time


@dataclass
class SourceData:
    """Images and labels of one source, before splitting.

    images: uint8 array (N, H, W, C); labels: int64 array (N,) in [0, K); sample_ids: N unique
    strings derived from the source; class_names: K names; splits: N split names, or None when
    the source defines no split; paths: N source paths, or None for in-memory sources; groups:
    N group names (a patient or lesion id; images sharing one must share a split), or None.
    """

    images: np.ndarray
    labels: np.ndarray
    sample_ids: list[str]
    class_names: list[str]
    splits: Optional[np.ndarray] = None
    paths: Optional[list[str]] = None
    groups: Optional[np.ndarray] = None


def read_source(params: DataParams) -> SourceData:
    data = READERS[params.source](params)
    _check_every_class_present(data, params.path or f"data.source: {params.source}")
    return data


def read_digits(params: DataParams) -> SourceData:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes), offline."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # pixel values are 0..16; stretch them to the full uint8 range
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    class_names = _class_names(params, [str(k) for k in range(10)], "data.source: digits")
    return SourceData(
        images=standardise_array(images, params.image_size, params.channels),
        labels=digits.target.astype(np.int64),
        sample_ids=[f"digits/{i:04d}" for i in range(len(images))],
        class_names=class_names,
    )


def read_synthetic(params: DataParams) -> SourceData:
    """Procedural benchmark images (:mod:`alr_core.data.synthetic`), with their own splits.

    The images depend only on the data parameters, not on ``seed``: like a bundled dataset,
    replicates with different seeds see the same images and differ in noise and training.
    """
    spec = params.synthetic
    labels, splits = synthetic_layout(spec.num_train, spec.num_classes, params.imbalance_ratio,
                                      params.val_per_class, params.test_per_class)  # fmt: skip
    rng = np.random.default_rng([spec.num_train, spec.num_classes, params.image_size])
    images = synthetic_images(labels, spec.num_classes, params.image_size, params.channels or 1, rng)
    return SourceData(
        images=images,
        labels=labels,
        sample_ids=[f"synthetic/{i:07d}" for i in range(len(labels))],
        class_names=_class_names(params, [str(k) for k in range(spec.num_classes)], "data.source: synthetic"),
        splits=splits,
    )


def read_medmnist(params: DataParams) -> SourceData:
    """A MedMNIST-format ``.npz``: ``{split}_images`` and ``{split}_labels`` for train/val/test.

    The images are streamed from the archive into the one output array, a block at a time: a
    MedMNIST+ file at 224 px holds gigabytes per split, and loading the splits whole, then
    joining them, needed twice the output's memory (or the whole file's, when resizing)."""
    path = _medmnist_file(params.path)
    with open(path, "rb") as file:
        start = file.read(6)
    if not start.startswith(b"PK") and start != b"\x93NUMPY":  # numpy would call anything else a pickle
        raise AlrError(f"{path}: not a .npz file: a .npz is a zip archive (starting 'PK'), and this starts "
                       f"{start!r} (a web page saved under that name?)")  # fmt: skip
    try:
        archive = np.load(path, allow_pickle=False)  # an NpzFile reads a member only when asked for it
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a .npy file loads as one array
            raise ValueError(f"found a single {type(archive).__name__}, not an archive of arrays")
        with archive:
            return _medmnist_data(archive, path, params)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc) or "it ends before its archive directory says it does: a download cut short?"
        raise AlrError(f"{path}: cannot read as a .npz file ({reason})") from None


def _medmnist_data(archive: np.lib.npyio.NpzFile, path: Path, params: DataParams) -> SourceData:
    expected = [f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels")]
    missing = [key for key in expected if key not in archive.files]
    if missing:
        raise AlrError(
            f"{path}: missing keys {missing}; a MedMNIST file has {expected} "
            f"(found {sorted(archive.files)})"
        )
    shapes, labels = {}, []
    for split in SPLITS:
        shape, dtype = _npy_header(archive, f"{split}_images")
        split_labels = archive[f"{split}_labels"]
        stored_shape = split_labels.shape
        if split_labels.ndim == 2 and split_labels.shape[1] == 1:
            split_labels = split_labels[:, 0]
        if dtype != np.uint8 or len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] not in (1, 3)):
            raise AlrError(f"{path}: '{split}_images' is {dtype} with shape {shape}; "
                           "expected uint8 N×H×W or N×H×W×3")  # fmt: skip
        if split_labels.ndim != 1 or len(split_labels) != shape[0]:
            raise AlrError(
                f"{path}: '{split}_labels' has shape {stored_shape}; expected "
                f"({shape[0]},) or ({shape[0]}, 1) to match '{split}_images'"
            )
        if not np.issubdtype(split_labels.dtype, np.integer):
            raise AlrError(f"{path}: '{split}_labels' must be integers, got {split_labels.dtype}")
        shapes[split] = shape
        labels.append(split_labels.astype(np.int64))
    sizes = {split: shape[1:3] for split, shape in shapes.items()}
    if params.image_size is None and len(set(sizes.values())) > 1:
        raise AlrError(
            f"{path}: the splits have different image sizes "
            f"({', '.join(f'{s}_images {h}x{w}' for s, (h, w) in sizes.items())}); "
            "set data.image_size to resize every image to one size"
        )
    # unset, the channels are the widest split's: grayscale splits beside an RGB one become RGB
    channels = params.channels or max(shape[3] if len(shape) == 4 else 1 for shape in shapes.values())
    height, width = (params.image_size,) * 2 if params.image_size else sizes["train"]
    images = np.empty((sum(shape[0] for shape in shapes.values()), height, width, channels), dtype=np.uint8)
    row = 0
    for split, shape in shapes.items():
        _stream_images(archive, f"{split}_images", shape, images[row : row + shape[0]], params.image_size)
        row += shape[0]
    if params.channels is None and channels == 3 and is_gray(images):
        images = images[..., :1].copy()  # grayscale by its pixels, as for image files
    per_split, labels = labels, np.concatenate(labels)
    num_classes = len(params.class_names) if params.class_names else int(labels.max(initial=0)) + 1
    for split, split_labels in zip(SPLITS, per_split):
        _check_label_range(split_labels, num_classes, f"{path}: '{split}_labels'")
    return SourceData(
        images=images,
        labels=labels,
        sample_ids=[f"{split}/{i:06d}" for split, shape in shapes.items() for i in range(shape[0])],
        class_names=_class_names(params, [str(k) for k in range(num_classes)], str(path)),
        splits=np.array([split for split, shape in shapes.items() for _ in range(shape[0])], dtype=object),
    )


def _npy_header(archive: np.lib.npyio.NpzFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the archive's array ``key``, from its header alone."""
    with archive.zip.open(_member_name(archive, key)) as member:
        return _read_npy_header(member)[:2]


def _member_name(archive: np.lib.npyio.NpzFile, key: str) -> str:
    """The zip member that holds ``key``, named as NpzFile names it: ``<key>.npy``, or ``key`` itself."""
    return key if key in archive.zip.namelist() else f"{key}.npy"


def _read_npy_header(member) -> tuple[tuple[int, ...], np.dtype, bool]:
    """(shape, dtype, fortran_order) of the ``.npy`` stream ``member``, left at its first data byte."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
    else:  # 3.0 is written only for structured dtypes with non-Latin-1 field names
        raise ValueError(f"unsupported .npy format version {version}")
    return shape, dtype, fortran_order


def _stream_images(archive: np.lib.npyio.NpzFile, key: str, shape: tuple[int, ...], out: np.ndarray,
                   image_size: Optional[int]) -> None:
    """Fill ``out`` (n, size, size, C) with the uint8 array ``key`` of ``shape`` (n, H, W[, C]),
    resized and converted by :func:`standardise_array`, ``NPZ_BLOCK_BYTES`` of it at a time."""
    per_image = int(np.prod(shape[1:]))
    block = max(1, NPZ_BLOCK_BYTES // max(per_image, 1))
    with archive.zip.open(_member_name(archive, key)) as member:
        _, _, fortran_order = _read_npy_header(member)
        if fortran_order:  # np.save of a transposed array; rare: read it whole
            stored = archive[key]
            for start in range(0, shape[0], block):
                out[start : start + block] = standardise_array(stored[start : start + block], image_size, out.shape[-1])
            return
        for start in range(0, shape[0], block):
            count = min(block, shape[0] - start)
            data = member.read(count * per_image)
            if len(data) != count * per_image:
                raise ValueError(f"'{key}' ends after {start + len(data) // per_image} of its {shape[0]} images")
            stored = np.frombuffer(data, dtype=np.uint8).reshape((count, *shape[1:]))
            out[start : start + count] = standardise_array(stored, image_size, out.shape[-1])


def _medmnist_file(path: str) -> Path:
    resolved = _existing(path, "data.path")
    if resolved.is_dir():
        npz = sorted(p.name for p in resolved.glob("*.npz"))
        raise AlrError(f"data.path: {resolved} is a folder; data.source 'medmnist' reads one .npz file"
                       + (f" (this folder has {', '.join(npz)})" if npz else ""))  # fmt: skip
    return resolved


def source_files(params: DataParams) -> list[Path]:
    """Every file the source reads, in a fixed order: what :mod:`alr_core.data.fingerprint`
    hashes so that a change under ``data.path`` re-runs ``prepare``. Empty for the built-in
    sources (digits, synthetic), whose images depend on the parameters alone."""
    if params.source == "medmnist":
        return [_medmnist_file(params.path)]
    if params.source == "imagefolder":
        return _imagefolder_files(params)[1]
    if params.source == "csv":
        manifest, _, files = _manifest_files(params)
        return [manifest, *files]
    if params.source in GENERATED_SOURCES:
        return []
    # an empty list here would leave prepare cached however the source's files change
    raise AlrError(f"data.source {params.source!r}: source_files() does not list its files; add a branch for it")


def read_imagefolder(params: DataParams) -> SourceData:
    """``data.path/<class_name>/*.{png,jpg,jpeg,bmp,tif}``; classes are the sorted folder names.

    With ``data.class_names`` set, only those folders are read, in that order (a way to drop a
    class that has too few images).
    """
    root = Path(params.path)
    folders, files, labels = _imagefolder_files(params)
    relative = [p.relative_to(root).as_posix() for p in files]
    return SourceData(
        images=decode_files(files, params.image_size, params.channels),
        labels=np.array(labels, dtype=np.int64),
        sample_ids=relative,
        class_names=folders,
        paths=[str(p) for p in files],
    )


def _imagefolder_files(params: DataParams) -> tuple[list[str], list[Path], list[int]]:
    """The class folders read (in label order), their image files and each file's label."""
    root = _existing(params.path, "data.path")
    if not root.is_dir():
        raise AlrError(f"{root}: data.source 'imagefolder' needs a folder with one subfolder per class")
    # class name → its folder: macOS writes 'é' decomposed (NFD), a params file typed elsewhere
    # composed (NFC); both are one name
    on_disk: dict[str, str] = {}
    for p in sorted(root.iterdir()):
        if not p.is_dir() or p.name.startswith("."):
            continue
        name = composed(p.name)
        if name in on_disk:
            raise AlrError(f"{root}: subfolders {on_disk[name]!r} and {p.name!r} are one class name written in "
                           "two Unicode forms (composed and decomposed, as macOS writes it); move the images "
                           "into one of them")
        on_disk[name] = p.name
    folders = sorted(on_disk)
    if params.class_names is not None:
        unknown = [name for name in params.class_names if composed(name) not in on_disk]
        if unknown:
            raise AlrError(
                f"{root}: data.class_names lists {unknown}, which are not subfolders "
                f"(subfolders: {folders})"
            )
        folders = [composed(name) for name in params.class_names]
    if not folders:
        raise AlrError(f"{root}: no class subfolders found")
    files, labels = [], []
    for label, name in enumerate(folders):
        images = _image_files_under(root / on_disk[name])
        if not images:
            raise AlrError(
                f"{root / on_disk[name]}: class '{name}' has no images "
                f"(looked for {', '.join(IMAGE_SUFFIXES)})"
            )
        files += images
        labels += [label] * len(images)
    return folders, files, labels


def _image_files_under(folder: Path) -> list[Path]:
    """The image files at any depth of ``folder``, sorted. Linked folders are followed (each real
    folder once: a link up the tree would loop), as linked files are; hidden files and folders
    are not (.ipynb_checkpoints copies, macOS's ._ resource forks). A name that is no text in
    this system's encoding (a Windows zip unpacked here) is an error naming the file."""
    found, seen = [], set()
    for current, subfolders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in names:
            path = Path(current) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            try:
                str(path).encode("utf-8")
            except UnicodeEncodeError:
                raise AlrError(
                    f"{str(path).encode('utf-8', 'surrogateescape')!r}: the file name is not UTF-8 text (a zip made "
                    "on Windows, unpacked here?); rename it, or every such file at once: convmv -f cp1252 -t utf8 "
                    f"-r --notest {folder}"
                ) from None
            found.append(path)
    return sorted(found)


def read_csv_manifest(params: DataParams) -> SourceData:
    """A CSV with an image path column and a label column or one-hot class columns.

    Paths are relative to ``data.csv.image_root`` (default: the manifest's folder). A path
    without a suffix is tried with each image suffix (ISIC lists ``ISIC_0000000``).
    """
    path, table, files = _manifest_files(params)
    spec = params.csv
    if spec.label_column is not None:
        labels, class_names = _labels_from_column(table, spec.label_column, params, path)
    else:
        labels, class_names = _labels_from_one_hot(table, params, path)
    splits = None
    if spec.split_column is not None:
        if spec.split_column not in table.columns:
            raise AlrError(f"{path}: no column '{spec.split_column}' (data.csv.split_column)")
        splits = table[spec.split_column].fillna("").str.strip().to_numpy(dtype=object)
        bad = ~np.isin(splits, SPLITS)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise AlrError(
                f"{path}: row {row + 2}: split {splits[row]!r} in column '{spec.split_column}'; "
                f"valid splits: {', '.join(SPLITS)}"
            )
    return SourceData(
        images=decode_files(files, params.image_size, params.channels),
        labels=labels,
        sample_ids=table[spec.image_column].tolist(),
        class_names=class_names,
        splits=splits,
        paths=[str(f) for f in files],
        groups=_groups(table, spec.group_column, path),
    )


def _manifest_files(params: DataParams) -> tuple[Path, pd.DataFrame, list[Path]]:
    """The manifest's path, its table and the image file of each row (checked to exist)."""
    path = _existing(params.path, "data.path")
    spec = params.csv
    # ids, splits and groups as text: "0012" must not become the number 12
    text_columns = {c: str for c in (spec.image_column, spec.split_column, spec.group_column) if c is not None}
    try:  # only an empty cell is missing: 'None', 'NA' or 'null' can be a class or a patient id
        table = pd.read_csv(path, dtype=text_columns, keep_default_na=False, na_values=[""])
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise AlrError(f"{path}: cannot read as a CSV file ({exc})") from None
    if spec.image_column not in table.columns:
        raise AlrError(
            f"{path}: no column '{spec.image_column}' (data.csv.image_column); "
            f"columns are {list(table.columns)}"
        )
    if table.empty:
        raise AlrError(f"{path}: the manifest has no rows")
    root = Path(spec.image_root) if spec.image_root else path.parent
    empty = table[spec.image_column].isna() | (table[spec.image_column].str.strip() == "")
    if empty.any():
        raise AlrError(f"{path}: row {int(np.flatnonzero(empty.to_numpy())[0]) + 2}: empty image path in column "
                       f"'{spec.image_column}'")  # fmt: skip
    table[spec.image_column] = table[spec.image_column].str.strip()
    names = table[spec.image_column].tolist()
    if len(set(names)) != len(names):
        duplicated = table[spec.image_column][table[spec.image_column].duplicated()].iloc[0]
        raise AlrError(f"{path}: image {duplicated!r} is listed more than once")
    return path, table, [_resolve_image(root, name, path, row) for row, name in enumerate(names)]


def _groups(table: pd.DataFrame, column: Optional[str], path: Path) -> Optional[np.ndarray]:
    """The group of each row (``data.csv.group_column``) as strings, "" for an empty cell (the row
    is a group of its own). None without the column setting."""
    if column is None:
        return None
    if column not in table.columns:
        raise AlrError(f"{path}: no column '{column}' (data.csv.group_column)"
                       f"{did_you_mean(column, [str(c) for c in table.columns])}; columns are {list(table.columns)}")
    return table[column].fillna("").str.strip().to_numpy(dtype=object)


def _labels_from_column(table, column, params, path):
    if column not in table.columns:
        raise AlrError(
            f"{path}: no column '{column}' (data.csv.label_column); columns are {list(table.columns)}"
        )
    values = table[column]
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise AlrError(f"{path}: row {row + 2}: empty label in column '{column}'")
    missing = _missing_among_numbers(values)
    if missing is not None:
        raise AlrError(f"{path}: row {missing + 2}: label {values.iloc[missing]!r} in column '{column}', whose other "
                       "labels are class indices: a missing label? fill it, or leave the row out")  # fmt: skip
    if pd.api.types.is_integer_dtype(values):
        labels = values.to_numpy(dtype=np.int64)
        num_classes = len(params.class_names) if params.class_names else int(labels.max()) + 1
        unused = sorted(set(range(num_classes)) - set(labels.tolist()))
        if unused and not params.class_names and labels.min() >= 0:
            raise AlrError(f"{path}: column '{column}' holds integer labels {labels.min()}..{labels.max()}, read as "
                           f"class indices counted from 0, but no row has {unused[:5]}; number the classes "
                           "0..K−1 (subtract 1 from labels counted from 1), or write class names")  # fmt: skip
        _check_label_range(labels, num_classes, str(path), first_row=2)
        return labels, _class_names(params, [str(k) for k in range(num_classes)], str(path))
    names = values.astype(str).str.strip().map(composed)
    class_names = [composed(n) for n in params.class_names] if params.class_names else sorted(names.unique())
    index = {name: k for k, name in enumerate(class_names)}
    unknown = ~names.isin(list(index))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise AlrError(
            f"{path}: row {row + 2}: label {names.iloc[row]!r} is not a class"
            f"{did_you_mean(names.iloc[row], class_names)}; "
            f"classes: {class_names}"
        )
    return names.map(index).to_numpy(dtype=np.int64), class_names


def _labels_from_one_hot(table, params, path):
    spec = params.csv
    # a class typed in params.yaml is its column in either Unicode form (macOS writes 'é' decomposed)
    header = {composed(str(c)): c for c in table.columns}
    if spec.class_columns is not None:
        missing = [c for c in spec.class_columns if composed(str(c)) not in header]
        if missing:
            raise AlrError(f"{path}: data.csv.class_columns names missing columns {missing}")
        columns = [header[composed(str(c))] for c in spec.class_columns]
    else:
        others = [c for c in table.columns if c not in (spec.image_column, spec.split_column, spec.group_column)]
        columns = [c for c in others if table[c].isin([0, 1]).all()]
        for column in others:
            values = table[column]
            missing = values.isna() | _missing_marks(values)
            present = pd.to_numeric(values[~missing], errors="coerce")
            if missing.any() and len(present) and present.isin([0, 1]).all():
                row = int(np.flatnonzero(missing.to_numpy())[0])
                cell = "empty cell" if pd.isna(values.iloc[row]) else f"cell {values.iloc[row]!r}"
                raise AlrError(f"{path}: row {row + 2}: {cell} in column '{column}', which otherwise holds 0 "
                               "or 1 like a one-hot class column; fill it, or list the class columns in "
                               "data.csv.class_columns")  # fmt: skip
        if not columns:
            raise AlrError(
                f"{path}: found neither a label column nor one-hot class columns; set "
                "data.csv.label_column (a class index or name per row) or "
                "data.csv.class_columns (one 0/1 column per class)"
            )
        if len(columns) == 1:  # ISIC 2020's `target`: a binary label, not a one-hot encoding
            raise AlrError(
                f"{path}: found one 0/1 column, '{columns[0]}', and a one-hot encoding needs one column per "
                f"class; if it holds each row's class, set data.csv.label_column: {columns[0]}"
            )
    names = [composed(str(c)) for c in columns]
    if len(set(names)) < len(names):
        twice = next(c for c in columns if names.count(composed(str(c))) > 1)
        raise AlrError(f"{path}: the one-hot class {twice!r} comes twice, in two Unicode forms (composed and "
                       "decomposed, as macOS writes it): merge its two columns into one, or list it once in "
                       "data.csv.class_columns")  # fmt: skip
    if params.class_names is not None:  # names pick the order of the columns, never rename them
        column_of = dict(zip(names, columns))
        unknown = [name for name in params.class_names if composed(name) not in column_of]
        if unknown:
            raise AlrError(
                f"{path}: data.class_names lists {unknown}, which are not one-hot class columns"
                f"{did_you_mean(str(unknown[0]), [str(c) for c in columns])} (columns: {columns}); with one-hot "
                "columns it orders them by name (data.csv.class_columns picks them)"
            )
        named = {composed(name) for name in params.class_names}
        left_out = [column for column, name in zip(columns, names) if name not in named]
        if left_out:
            raise AlrError(f"{path}: data.class_names leaves out the one-hot columns {left_out}; list every class "
                           "column, or pick the columns with data.csv.class_columns")  # fmt: skip
        columns = [column_of[composed(name)] for name in params.class_names]
    one_hot = table[columns]
    if not one_hot.isin([0, 1]).all().all():
        row = int(np.flatnonzero(~one_hot.isin([0, 1]).all(axis=1).to_numpy())[0])
        raise AlrError(f"{path}: row {row + 2}: one-hot columns must hold 0 or 1, got {one_hot.iloc[row].to_dict()}")
    ones = one_hot.to_numpy().sum(axis=1)
    if (ones != 1).any():
        row = int(np.flatnonzero(ones != 1)[0])
        raise AlrError(
            f"{path}: row {row + 2}: one-hot row has {int(ones[row])} ones in {columns}; "
            "exactly one is required"
        )
    return one_hot.to_numpy().argmax(axis=1).astype(np.int64), [composed(str(c)) for c in columns]


# what spreadsheets and pandas write for a missing value; text like any other in a column of
# names ('None' can be a class), a missing value among numbers
MISSING_MARKS = {"na", "n/a", "#n/a", "nan", "null", "none", "-"}


def _missing_marks(values: pd.Series) -> pd.Series:
    """bool per cell: a missing-value mark (:data:`MISSING_MARKS`, in any case)."""
    return values.astype(str).str.strip().str.lower().isin(MISSING_MARKS)


def _missing_among_numbers(values: pd.Series) -> Optional[int]:
    """The row of the first missing-value mark (:data:`MISSING_MARKS`) in a column whose every
    other cell is an integer; None otherwise."""
    text = values.astype(str).str.strip()
    marks = _missing_marks(values)
    if not marks.any() or marks.all() or not text[~marks].str.fullmatch(r"[+-]?\d+(\.0*)?").all():
        return None
    return int(np.flatnonzero(marks.to_numpy())[0])


def _resolve_image(root: Path, name: str, manifest: Path, row: int) -> Path:
    """The image file a manifest row names: the path as given (a manifest written on Windows may
    separate folders with backslashes), else, without an image suffix (ISIC's ``ISIC_0000000``, a
    DICOM UID ``1.2.826.0.1.3680043``), with each image suffix in either case appended."""
    candidate = root / name
    if not candidate.is_file() and "\\" in name:
        candidate = root / name.replace("\\", "/")
    if candidate.is_file():
        return candidate
    if candidate.suffix.lower() not in IMAGE_SUFFIXES:
        for suffix in IMAGE_SUFFIXES:
            for cased in (suffix, suffix.upper()):
                if (found := candidate.with_name(candidate.name + cased)).is_file():
                    return found
    raise AlrError(f"{manifest}: row {row + 2}: image file {candidate} not found")


def _existing(path: Optional[str], key: str) -> Path:
    resolved = Path(path)
    if not resolved.exists():
        raise AlrError(f"{key}: {resolved} does not exist")
    if not os.access(resolved, os.R_OK):
        raise AlrError(f"{key}: {resolved} is not readable (check its permissions)")
    return resolved


def _check_label_range(labels: np.ndarray, num_classes: int, where: str, first_row: int = 0) -> None:
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise AlrError(
            f"{where}: label {labels[row]} at row {row + first_row} is out of range; "
            f"valid labels are 0..{num_classes - 1}"
        )


def _class_names(params: DataParams, default: list[str], where: str) -> list[str]:
    if params.class_names is None:
        return default
    if len(params.class_names) != len(default):
        raise AlrError(
            f"data.class_names has {len(params.class_names)} names but {where} has "
            f"{len(default)} classes"
        )
    return list(params.class_names)


def _check_every_class_present(data: SourceData, where: str) -> None:
    counts = np.bincount(data.labels, minlength=len(data.class_names))
    empty = [data.class_names[k] for k in np.flatnonzero(counts == 0)]
    if empty:
        raise AlrError(
            f"{where}: classes {empty} have no images; remove them from data.class_names "
            "(or, for one-hot CSVs, list the classes to keep in data.csv.class_columns)"
        )


# data.source → its reader; tests/test_choices.py checks these names against params' data.source
READERS = {
    "digits": read_digits,
    "synthetic": read_synthetic,
    "medmnist": read_medmnist,
    "imagefolder": read_imagefolder,
    "csv": read_csv_manifest,
}
