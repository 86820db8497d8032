"""Face embeddings for the likeness registry: dlib's ResNet face descriptor (128-d, from
``face-recognition-models``, which ships the weights) on faces aligned by the 5-point
landmark model. Pure: decoded pixels in, vectors out; no database, no network.

Images reach here already decoded by ``consentry.signals.sandbox`` (the ``DecodedImage``
analysis copy); only pixels are read here, never untrusted bytes.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from consentry.signals.image import DecodedImage

EMBEDDING_DIM: Final = 128
# Enrolment needs a clear face: a HOG detection scoring at least this (the astronaut's
# face scores 1.2, a patch on her suit that looks a little like a face 0.1) ...
CLEAR_FACE_SCORE: Final = 0.5
# ... at least this many analysis pixels wide (the descriptor reads a 150 px chip).
MIN_ENROL_FACE_PX: Final = 60
# How often the enrolment detector upsamples: finds faces down to about 40 px.
_ENROL_UPSAMPLE: Final = 1


class LikenessPhotoRejected(ValueError):
    """An enrolment photo that cannot be used; ``code`` says why, the message how to fix it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FaceEmbedding:
    """One face: box in original-image pixels (left, top, right, bottom) and its 128-d
    descriptor, as dlib computes it (not normalised: dlib's stated threshold, 0.6, is a
    Euclidean distance between these raw vectors)."""

    box: tuple[int, int, int, int]
    vector: np.ndarray


def model_dir() -> Path:
    """Where ``face-recognition-models`` keeps its weights, found without importing the
    package (its ``__init__`` needs ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (dlib's own measure)."""
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))


class FaceEmbedder:
    """Detector, landmark model and descriptor network, loaded once. Thread-safe (dlib's
    models are not: calls are serialised)."""

    def __init__(self) -> None:
        import dlib

        models = model_dir()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(
            str(models / "shape_predictor_5_face_landmarks.dat"))
        self._descriptor = dlib.face_recognition_model_v1(
            str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self._lock = threading.Lock()

    def embed_boxes(self, image: DecodedImage,
                    boxes: tuple[tuple[int, int, int, int], ...]) -> list[FaceEmbedding]:
        """Descriptors of faces another detector already found (the gate's image analysis:
        boxes in original pixels), so a face is detected once per check."""
        if not boxes:
            return []
        pixels = np.asarray(image.analysis)
        rects = [self._dlib.rectangle(*(round(v / image.scale) for v in box))
                 for box in boxes]
        return [FaceEmbedding(box, vector) for box, vector
                in zip(boxes, self._describe(pixels, rects), strict=True)]

    def embed_enrolment_photo(self, image: DecodedImage) -> FaceEmbedding:
        """The one clear face of an enrolment photo, or ``LikenessPhotoRejected``."""
        pixels = np.asarray(image.analysis)
        with self._lock:
            found, scores, _ = self._detector.run(pixels, _ENROL_UPSAMPLE)
        clear = [r for r, s in zip(found, scores, strict=True)
                 if s >= CLEAR_FACE_SCORE and r.width() >= MIN_ENROL_FACE_PX]
        if not clear:
            small = any(s >= CLEAR_FACE_SCORE for s in scores)
            raise LikenessPhotoRejected(
                "no_clear_face", "no clear face was found" + (
                    f" (the face is under {MIN_ENROL_FACE_PX} px wide at "
                    f"{max(image.analysis.size)} px; send a closer photo)" if small else
                    "; send a well-lit photo of the face, looking at the camera"))
        if len(clear) > 1:
            raise LikenessPhotoRejected(
                "several_faces", f"{len(clear)} faces were found; each enrolment photo must "
                "show exactly one face, the person's own")
        rect = clear[0]
        (vector,) = self._describe(pixels, [rect])
        box = tuple(round(v * image.scale) for v in
                    (rect.left(), rect.top(), rect.right(), rect.bottom()))
        return FaceEmbedding(box, vector)

    def _describe(self, pixels: np.ndarray, rects: list[object]) -> list[np.ndarray]:
        out = []
        with self._lock:
            for rect in rects:
                shape = self._landmarks(pixels, rect)
                vector = np.asarray(self._descriptor.compute_face_descriptor(pixels, shape),
                                    dtype=np.float32)
                out.append(vector)
        return out
