"""Decoding and standardising images into one uint8 array of shape (N, H, W, C); reading one
source file as a viewer shows it (:func:`read_viewable`, for the training arrays and for what
experts see alike); and encoding one image as a PNG file or a data URI for offline pages."""

from __future__ import annotations

import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from alr_core.common.cli import progress_bar
from alr_core.common.errors import AlrError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_MODE_FOR_CHANNELS = {1: "L", 3: "RGB"}
# one value per pixel wider than 8 bits: 16-bit PNG/TIFF (either byte order), 32-bit integer, float
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_GRAYSCALE_MODES = {"1", "L", "LA"} | _HIGH_DEPTH_MODES
# PNG's 16-bit colour, gray + alpha and colour + alpha layouts as Pillow names them: its modes hold
# 8 bits per colour channel, so it keeps the top 8 of each, and a 12-bit composite comes out near black
_WIDE_PNG_RAWMODES = {"RGB;16B", "LA;16B", "RGBA;16B"}
GRAY_TOLERANCE = 2
UNREADABLE_LISTED = 20  # files an error names when several cannot be read


def decode_files(
    paths: Sequence[Path], image_size: Optional[int], channels: Optional[int]
) -> np.ndarray:
    """Decode image files into an array of shape (N, H, W, C), dtype uint8.

    ``channels``: 1 (grayscale) or 3 (RGB); ``None`` keeps grayscale only when every image is
    grayscale, by its pixels: an RGB file whose three channels agree (a grayscale scan saved as
    RGB, common for X-rays and fundus exports) counts as grayscale. ``image_size``: side of the
    square output in pixels; ``None`` keeps the native size, which then has to be the same for
    every image. Each file is read as :func:`read_viewable` shows it: upright by its EXIF orientation
    (phone photos of lesions are often stored sideways), and a grayscale file deeper than 8 bits
    (a 16-bit X-ray PNG, a float microscopy TIFF) or a PNG with 16 bits per colour channel
    scaled per image from its darkest to its brightest value onto 0..255; a TIFF with more than
    8 bits per colour channel is refused.
    """
    if not paths:
        raise AlrError("no image files to decode")
    if channels is None:
        if all(_mode_if_readable(p) in _GRAYSCALE_MODES for p in paths):
            return decode_files(paths, image_size, 1)
        decoded = decode_files(paths, image_size, 3)
        return decoded[..., :1].copy() if is_gray(decoded) else decoded

    def decode(path: Path) -> np.ndarray | AlrError:
        try:
            return _standardise(read_viewable(path), image_size, channels)
        except AlrError as error:
            return error

    decoded: Optional[np.ndarray] = None  # filled in place: a list then np.stack would hold the images twice
    unreadable: list[str] = []
    # Pillow releases the GIL while it decodes and resizes, so threads use every core (not for
    # 16-bit colour PNGs: pypng unfilters rows in Python, about one core for those); map keeps the order
    pool = ThreadPoolExecutor(decode_threads())
    try:
        results = progress_bar(pool.map(decode, paths), "decode images", total=len(paths), unit="image")
        for row, (path, result) in enumerate(zip(paths, results)):
            if isinstance(result, AlrError):
                unreadable.append(str(result))
                continue
            if decoded is None:
                decoded, first = np.empty((len(paths), *result.shape), dtype=np.uint8), path
            elif result.shape != decoded.shape[1:]:
                (height, width), (first_height, first_width) = result.shape[:2], decoded.shape[1:3]
                mismatch = (f"{path}: image is {width}x{height} but {first} is {first_width}x{first_height}; "
                            "set data.image_size to resize every image to one size")  # fmt: skip
                raise AlrError(f"{mismatch}\n{_unreadable_text(unreadable, len(paths))}" if unreadable else mismatch)
            decoded[row] = result
    finally:
        pool.shutdown(cancel_futures=True)  # after an error, the files not yet decoded are skipped
    if unreadable:  # every one at once: a fix, then a whole decode, per broken file would be slow
        raise AlrError(_unreadable_text(unreadable, len(paths)))
    return decoded


def _unreadable_text(unreadable: list[str], total: int) -> str:
    """One file's error as it is; several, counted out of ``total`` and listed (the first
    ``UNREADABLE_LISTED``), one per line."""
    if len(unreadable) == 1:
        return unreadable[0]
    listed = "\n  ".join(unreadable[:UNREADABLE_LISTED])
    more = len(unreadable) - UNREADABLE_LISTED
    return (f"{len(unreadable)} of {total} image files cannot be read:\n  {listed}"
            + (f"\n  ... and {more} more" if more > 0 else ""))  # fmt: skip


def decode_threads() -> int:
    """Threads that decode image files: ``OMP_NUM_THREADS`` when set (the share of the cores a
    user gives each of several parallel jobs, as for training), else every CPU this process may
    use."""
    try:
        requested = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        requested = 0
    return requested if requested > 0 else len(os.sched_getaffinity(0))


def is_gray(images: np.ndarray) -> bool:
    """Whether the three channels of uint8 ``images`` (N, H, W, 3) agree everywhere: red and
    green, and green and blue, within ``GRAY_TOLERANCE`` levels. JPEG's chroma rounding leaves
    ±1-2 on a gray image saved as RGB, and up to 3 between red and blue, which pull opposite ways
    (Cr and Cb off by one level each), so red and blue are not compared directly."""
    for start in range(0, len(images), 256):  # blocks of images: the int16 copies stay small beside the array
        signed = images[start : start + 256].astype(np.int16)
        spread = np.maximum(np.abs(signed[..., 0] - signed[..., 1]), np.abs(signed[..., 1] - signed[..., 2]))
        if spread.max(initial=0) > GRAY_TOLERANCE:
            return False
    return True


def standardise_array(
    images: np.ndarray, image_size: Optional[int], channels: Optional[int]
) -> np.ndarray:
    """Bring an in-memory uint8 array (N, H, W) or (N, H, W, C) to (N, size, size, channels)."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise AlrError(f"images must have shape N×H×W or N×H×W×3, got {images.shape}")
    channels = channels or images.shape[-1]
    if len(images) == 0:  # an empty split: nothing to convert, only the shape to match
        height, width = (image_size, image_size) if image_size else images.shape[1:3]
        return np.zeros((0, height, width, channels), dtype=np.uint8)
    same_size = image_size is None or images.shape[1:3] == (image_size, image_size)
    if same_size and images.shape[-1] == channels:
        return np.ascontiguousarray(images, dtype=np.uint8)
    mode = "L" if images.shape[-1] == 1 else "RGB"
    return np.stack(
        [
            _standardise(Image.fromarray(np.squeeze(img, -1) if mode == "L" else img, mode), image_size, channels)
            for img in images
        ]
    )


def to_8bit(image: Image.Image) -> Image.Image:
    """``image`` unchanged unless it holds one value per pixel wider than 8 bits (modes I;16*,
    I, F); then as mode L, scaled linearly from its own minimum to its maximum onto 0..255 (a
    constant image becomes 0; NaN and infinite pixels count as the minimum).

    Why per image: such files rarely span their container's range (a 12-bit X-ray in 16 bits
    reaches 4095 of 65535; a float image often lies in 0..1), so no fixed scale fits them, and
    Pillow's own conversion to L clips every value above 255 to white.
    """
    if image.mode not in _HIGH_DEPTH_MODES:
        return image
    return Image.fromarray(_scaled_to_8bit(np.asarray(image, dtype=np.float64)), "L")


def _scaled_to_8bit(values: np.ndarray) -> np.ndarray:
    """uint8 of ``values`` (any shape) scaled linearly from their finite minimum to their
    maximum onto 0..255; all 0 when they are constant; NaN and infinite values count as the
    minimum."""
    finite = np.isfinite(values)
    low = values[finite].min(initial=np.inf)
    high = values[finite].max(initial=-np.inf)
    if not high > low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round(np.where(finite, (values - low) * (255 / (high - low)), 0.0)).astype(np.uint8)


def read_viewable(path: Path) -> Image.Image:
    """The image file at ``path`` as a viewer shows it, decoded, at most 8 bits per channel:
    turned upright by its EXIF orientation, a deep grayscale file scaled by :func:`to_8bit`, a
    PNG with 16 bits per colour channel read at full depth and scaled the same way over its
    colour channels (alpha dropped). A TIFF with more than 8 bits per colour channel raises
    AlrError: Pillow reads only the top 8 of each, and alr has no full-depth reader for it. The
    prepared arrays and the pictures experts see both come from here."""
    with _open(path) as image:
        if image.format == "TIFF":
            depth = int(np.max(image.tag_v2.get(258, 8)))  # BitsPerSample: one value per sample
            if depth > 8 and image.tag_v2.get(277, 1) > 1:
                raise AlrError(f"{path}: TIFF image with {depth} bits per colour channel, which Pillow reads "
                               "as its top 8 bits (12-bit data would come out near black); save it as a 16-bit "
                               "PNG or as 8-bit RGB")  # fmt: skip
        try:
            if image.format == "PNG" and image.tile and image.tile[0].args in _WIDE_PNG_RAWMODES:
                image = _wide_png(image, path)  # already 8 bits: to_8bit below leaves it as it is
            return to_8bit(ImageOps.exif_transpose(image))
        except OSError as exc:  # truncated or corrupt pixel data shows up only on load
            raise AlrError(f"{path}: cannot decode ({exc})") from None


def _wide_png(image: Image.Image, path: Path) -> Image.Image:
    """The colour (or gray) channels of a PNG with 16 bits per channel at full depth (pypng: a
    checked decoder that raises on corrupt data), scaled per image from the darkest to the
    brightest value over every colour channel onto 0..255, as :func:`to_8bit` scales a deep
    grayscale file; alpha dropped, the EXIF orientation kept for the caller to apply."""
    import png

    try:
        width, height, rows, info = png.Reader(filename=str(path)).read()
        values = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])
    except png.Error as exc:
        raise AlrError(f"{path}: cannot decode ({exc})") from None
    colour = values[..., :-1] if info["alpha"] else values
    scaled = _scaled_to_8bit(colour.astype(np.float64))
    picture = Image.fromarray(scaled[..., 0], "L") if colour.shape[-1] == 1 else Image.fromarray(scaled, "RGB")
    # for read_viewable's EXIF turn; where the eXIf chunk follows the image data, Pillow decodes the
    # image once more to find it: a rare file pays that twice
    picture.info["exif"] = image.getexif().tobytes()
    return picture


def array_picture(image: np.ndarray) -> Image.Image:
    """One prepared uint8 image, (H, W, 1) or (H, W, 3), as a PIL image of mode L or RGB."""
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def png_bytes(picture: Image.Image) -> bytes:
    """The bytes of ``picture`` saved as a PNG file (lossless; drops the source's metadata)."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,…`` for the bytes of a PNG file: an image inside an HTML page or
    a JSON task, with no file beside it and no network."""
    return "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")


def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise AlrError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise AlrError(f"{path}: cannot read as an image ({exc})") from None
    except Image.DecompressionBombError as exc:  # not an OSError
        raise AlrError(f"{path}: {exc}; downscale the image (or crop it to the region of interest) first") from None


def _mode_if_readable(path: Path) -> Optional[str]:
    """The image's mode, read from its header (the file is closed again); ``None`` for a file
    that is no readable image, which decoding then names with every other such file."""
    try:
        with _open(path) as image:
            return image.mode
    except AlrError:
        return None


def _standardise(image: Image.Image, image_size: Optional[int], channels: int) -> np.ndarray:
    """A decoded (loaded) image as uint8 (H, W, channels), resized to a square of ``image_size``."""
    image = image.convert(_MODE_FOR_CHANNELS[channels])
    if image_size is not None and image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if channels == 1 else array
