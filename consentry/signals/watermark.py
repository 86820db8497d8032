"""The platform's invisible watermark: embed it in an output's pixels, detect it in an
image's pixels. Pure (pixels in, pixels or a finding out).

The mark is ``invisible-watermark``'s RivaGAN (a learned 32-bit watermark; its ONNX
models ship inside the package), chosen by measurement over DWT-DCT and DWT-DCT-SVD
(docs/provenance.md). RivaGAN, like the DCT methods, reads a fixed pixel grid, so a
resized copy would lose it; the mark is therefore embedded in a square frame of
``FRAME_SIDE`` pixels and the difference scaled back onto the full image, and detection
scales any image to that frame first: whatever size a screenshot has, its frame is the
original's frame.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

METHOD: Final = "rivaGan"
FRAME_SIDE: Final = 256
# Strength of the mark: measured to survive resize + JPEG q75 (docs/provenance.md) at
# about 35 dB PSNR.
GAIN: Final = 2.0
MARK_LENGTH: Final = 32  # bits; RivaGAN carries exactly 32
# The platform's mark: fixed, so detection compares against known bits.
MARK_BITS: Final = tuple(
    int(b) for b in np.unpackbits(np.frombuffer(
        hashlib.sha256(b"consentry provenance mark v1").digest()[:4], dtype=np.uint8)))
# Bits that must agree for a detection. A random image agrees with 32 fixed bits like 32
# coin tosses: P(>= 27 of 32) = 5e-6; unmarked test photos agreed at most 19/32
# (bench/bench_provenance.py); marked ones after resize x0.75 + JPEG q75: 23 of 24 pass.
DETECTION_THRESHOLD: Final = 27 / 32

_models_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class WatermarkFinding:
    """Whether an image carries the platform's watermark; ``score`` is the fraction of the
    32 mark bits read back, 0.5 on average for an unmarked image."""

    detected: bool
    score: float
    threshold: float = DETECTION_THRESHOLD


def _load() -> tuple[Any, Any]:
    # Imported on first use: the package imports torch (CPU build), seconds of start-up.
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    with _models_lock:
        WatermarkEncoder.loadModel()  # the ONNX sessions, once per process
    return WatermarkEncoder, WatermarkDecoder


def _frame(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    import cv2

    # BGR, as the library's models expect; INTER_AREA so a downscale averages, not aliases.
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    return np.asarray(cv2.resize(bgr, (FRAME_SIDE, FRAME_SIDE), interpolation=cv2.INTER_AREA),
                      dtype=np.uint8)


def embed_mark(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``rgb`` (H x W x 3, uint8) with the platform's mark in its pixels."""
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image, got an array of shape {rgb.shape}")
    encoder_type, _ = _load()
    encoder = encoder_type()
    encoder.set_watermark("bits", list(MARK_BITS))
    frame = _frame(rgb)
    residual = encoder.encode(frame, METHOD).astype(np.float32) - frame
    height, width = rgb.shape[:2]
    full = cv2.resize(residual, (width, height), interpolation=cv2.INTER_LINEAR)
    marked = rgb.astype(np.float32) + GAIN * full[..., ::-1]  # back to RGB order
    return np.asarray(np.clip(np.rint(marked), 0, 255), dtype=np.uint8)


def detect_mark(rgb: NDArray[np.uint8]) -> WatermarkFinding:
    """Read the platform's mark from ``rgb`` (H x W x 3, uint8, any size)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image, got an array of shape {rgb.shape}")
    _, decoder_type = _load()
    bits = decoder_type("bits", MARK_LENGTH).decode(_frame(rgb), METHOD)
    score = float(np.mean(np.asarray(bits) == np.asarray(MARK_BITS)))
    return WatermarkFinding(detected=score >= DETECTION_THRESHOLD, score=round(score, 4))
