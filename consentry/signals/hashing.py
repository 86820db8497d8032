"""Image hashes for bank matching: MD5/SHA-256 of the bytes and PDQ (Meta) of the pixels.

Two kinds of PDQ hash come out of here, told apart by ``PdqHash.variant``:

* ``full`` -- PDQ exactly as Meta's reference computes it (``pdqhash.compute`` on the RGB
  pixels), after black/white letterbox borders are trimmed. This is the hash exchanged
  with StopNCII, NCMEC and ThreatExchange, and the ``pdq`` of ``ImageHashes``.
* ``cropNN`` -- PDQ of the central NN% of the (trimmed) image, first resampled by us to
  64x64 luma with an anti-aliasing filter. PDQ's own downscaler aliases on small images
  (a 50% resize moves Meta's hash by up to ~56 bits here) and PDQ is fragile to
  geometry (a 1% shift or a 2% scale change costs ~20-25 bits). Resampling every variant
  the same way makes the hash independent of resolution, and a ladder of central crops
  at ingest, with two at query, lines up a cropped copy with some stored crop to within
  ~1.5% of scale. These hashes only match hashes made by this module.

Query variants add all eight rotations/mirrors (one ``pdqhash.compute_dihedral`` call
gives them): ``crop96+rot90``, ``full+flipx``, ...

Everything here is a pure function of its input: no database, no network.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pdqhash
from PIL import Image

from consentry.signals.image import (
    MAX_PIXELS,
    DecodedImage,
    ImageRejected,
    analysis_image,
    exif_orientation,
    open_image,
    reduce_image,
)

PDQ_MATCH_DISTANCE: Final = 31
MIN_PDQ_QUALITY: Final = 50  # Meta: hashes below 50 are too flat to match reliably
PDQ_HEX_LENGTH: Final = 64
PDQ_BYTES: Final = 32

# Pixels are hashed at most this size. Meta's own tools disagree on large images (the
# reference CLI first squashes them to 512x512 by nearest neighbour, ThreatExchange's
# Python hashes every pixel); at 768 our ``full`` hash is within 6 bits of the first and
# 14 of the second on the photos measured, and costs 13 ms instead of 39 ms at 1024.
# Images no larger than this hash exactly as ThreatExchange's Python does.
WORK_MAX_SIDE: Final = 768
CANONICAL_SIDE: Final = 64  # PDQ's own internal resolution: pdqhash then only does the DCT
# Lanczos: as insensitive to resolution as a triangle filter here (a 50% resize moves
# the hash by <= 4 bits), but sharper, so PDQ's quality score stays near Meta's.
CANONICAL_FILTER: Final = Image.Resampling.LANCZOS

# Central-crop ladders (fraction of each side kept). A copy whose sides are r times the
# original's (a central crop) matches when some ingest crop c and query crop q have
# q * r ~= c to within ~1.5%. Ingest steps of 5% and query crops {1, 0.975} interleave
# to a 2.5% grid from r = 1.025 down to 0.80: crops of up to 10% on every side.
INGEST_CROPS: Final[tuple[float, ...]] = (1.00, 0.95, 0.90, 0.85, 0.80)
QUERY_CROPS: Final[tuple[float, ...]] = (1.00, 0.975)

# pdqhash.compute_dihedral's output order.
DIHEDRAL_NAMES: Final = (
    "", "rot90", "rot180", "rot270", "flipx", "flipy", "flipplus1", "flipminus1"
)

# Border trimming: a line (row or column) at the edge is border if it is close to the
# colour of the outermost line and that colour is near black or near white. A line with
# even a few clearly different pixels (stars in a night sky) is content, so real dark
# scenes are not eaten; at most this fraction of each side is ever trimmed.
BORDER_DARK_MAX: Final = 32
BORDER_LIGHT_MIN: Final = 224
BORDER_MEAN_DEVIATION: Final = 4.0  # JPEG noise in a flat bar stays well below this
BORDER_OUTLIER_LEVEL: Final = 32
BORDER_OUTLIER_FRACTION: Final = 0.002
MAX_TRIM_FRACTION: Final = 0.4

UNTRIMMED: Final = "untrimmed"  # prefix of variants hashed without border trimming

_HEX_RE = re.compile(r"[0-9a-fA-F]*")


@dataclass(frozen=True)
class PdqHash:
    """One 256-bit PDQ hash, its quality (0-100) and which variant of the image it hashes."""

    bits: bytes  # 32 bytes, most significant bit first: the byte order of the hex form
    quality: int
    variant: str = "full"

    def __post_init__(self) -> None:
        if not isinstance(self.bits, bytes) or len(self.bits) != PDQ_BYTES:
            raise ValueError(f"a PDQ hash is {PDQ_BYTES} bytes, got {self.bits!r:.80}")
        if not 0 <= self.quality <= 100:
            raise ValueError(f"PDQ quality must be 0..100, got {self.quality}")

    @property
    def hex(self) -> str:
        """64 lowercase hex characters, as Meta, ThreatExchange and StopNCII write PDQ."""
        return self.bits.hex()

    @property
    def array(self) -> np.ndarray:
        """The hash as a uint8 array of shape (32,), the row format of ``PDQIndex``."""
        return np.frombuffer(self.bits, dtype=np.uint8)

    @classmethod
    def from_hex(cls, text: str, quality: int = 100, variant: str = "full") -> PdqHash:
        return cls(parse_pdq_hex(text), quality, variant)

    def distance(self, other: PdqHash) -> int:
        """Hamming distance in bits."""
        return (int.from_bytes(self.bits, "big") ^ int.from_bytes(other.bits, "big")).bit_count()


@dataclass(frozen=True)
class ImageHashes:
    """The exact and perceptual hashes that identify one image."""

    md5: str | None  # of the bytes; None when hashed from a PIL image
    sha256: str | None
    pdq: PdqHash | None  # Meta-compatible PDQ of the trimmed image; None if quality < 50
    pdq_quality: int  # reported even when too low to keep the hash


def parse_pdq_hex(text: str) -> bytes:
    """Parse a PDQ hash written as 64 hex characters (either case, surrounding whitespace
    allowed) into its 32 bytes, or raise ``ValueError`` saying exactly what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"a PDQ hash must be a string of 64 hex characters, got {type(text)}")
    s = text.strip()
    if len(s) != PDQ_HEX_LENGTH:
        raise ValueError(
            f"a PDQ hash is {PDQ_HEX_LENGTH} hex characters, got {len(s)}: {s[:80]!r}"
        )
    m = _HEX_RE.match(s)
    end = m.end() if m else 0
    if end != len(s):
        raise ValueError(
            f"a PDQ hash must contain only hex digits 0-9a-f; character {end} is {s[end]!r}"
        )
    return bytes.fromhex(s)


def pdq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All Hamming distances between hashes ``a`` (n, 32) and ``b`` (m, 32), uint8 rows:
    an (n, m) int array. For tests and small sets; the bank index does this at scale."""
    a = np.asarray(a, dtype=np.uint8).reshape(-1, PDQ_BYTES)
    b = np.asarray(b, dtype=np.uint8).reshape(-1, PDQ_BYTES)
    x = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return np.unpackbits(x, axis=-1).sum(axis=-1, dtype=np.int64)


def pdq_dihedral_estimates(hashes: np.ndarray) -> np.ndarray:
    """Estimate the PDQ hashes of the 8 rotations/mirrors of each image from its hash
    alone (n, 32) -> (n * 8, 32), the identity first for each input.

    PDQ's 16x16 DCT coefficients of a mirrored image are the originals with the signs of
    every other frequency flipped, and of a transposed image the transposed matrix. Only
    the median the bits are thresholded against moves, so the estimate is within ~0-18
    bits of the true hash (measured on the test photos): good enough to find a mirrored
    copy when only hashes are known (bank entries, hashes sent from a device).
    """
    bits = np.unpackbits(np.asarray(hashes, dtype=np.uint8).reshape(-1, PDQ_BYTES), axis=1)
    grid = bits.reshape(-1, 16, 16).astype(bool)
    odd = (np.arange(16) % 2 == 1)
    out = []
    for g in grid:
        for transposed in (False, True):
            base = g.T if transposed else g
            for rows in (False, True):
                for cols in (False, True):
                    mask = (odd[:, None] & rows) ^ (odd[None, :] & cols)
                    out.append(base ^ mask)
    return np.packbits(np.asarray(out, dtype=np.uint8).reshape(-1, 256), axis=1)


# --- decoding ---------------------------------------------------------------------------


def decode_for_hashing(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode image bytes to RGB with ``consentry.signals.image``'s limits, reduced to at
    most ``WORK_MAX_SIDE`` (JPEGs are decoded at reduced scale by libjpeg directly).
    Raises ``ImageRejected`` with a precise reason."""
    img, _, _ = open_image(data, draft_side=WORK_MAX_SIDE, max_pixels=max_pixels)
    try:
        return _work_copy(img)
    except (OSError, ValueError) as exc:
        raise ImageRejected("invalid_image", f"the image is damaged: {exc}") from exc


def _work_copy(image: Image.Image) -> Image.Image:
    # Reduced first, converted after: a full-size converted copy is never held.
    image = reduce_image(image, WORK_MAX_SIDE)
    if image.mode.startswith("I") or image.mode == "F":
        # Pillow clips 16-bit greyscale to 8 bits instead of scaling it: mostly white.
        values = np.asarray(image, dtype=np.float32)
        if values.max(initial=0) > 255:
            values = values / np.float32(257)
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    return image if image.mode == "RGB" else image.convert("RGB")


# --- border trimming --------------------------------------------------------------------


Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive), in pixels


def _border_run(lines: np.ndarray) -> int:
    """How many leading lines of ``lines`` (k, n) are uniform near-black/near-white border."""
    first = lines[0].astype(np.float32)
    colour = float(np.median(first))
    if BORDER_DARK_MAX < colour < BORDER_LIGHT_MIN:
        return 0
    dev = np.abs(lines.astype(np.float32) - colour)
    is_border = (dev.mean(axis=1) <= BORDER_MEAN_DEVIATION) & (
        (dev > BORDER_OUTLIER_LEVEL).mean(axis=1) <= BORDER_OUTLIER_FRACTION
    )
    not_border = np.flatnonzero(~is_border)
    return int(not_border[0]) if not_border.size else len(lines)


def border_box(luma: np.ndarray) -> Box:
    """The box left after trimming uniform near-black/near-white borders (letterboxing,
    pillarboxing, frames) from a 2-D uint8 luma array. The whole image if there are none."""
    h, w = luma.shape
    mh, mw = int(h * MAX_TRIM_FRACTION), int(w * MAX_TRIM_FRACTION)
    if mh < 1 or mw < 1:
        return (0, 0, w, h)
    top = _border_run(luma[:mh])
    bottom = _border_run(luma[h - mh:][::-1])
    left = _border_run(luma[:, :mw].T)
    right = _border_run(luma[:, w - mw:].T[::-1])
    # A run that reaches the cap is a large uniform area, not a bar: keep it.
    top, bottom = (0 if t >= mh else t for t in (top, bottom))
    left, right = (0 if t >= mw else t for t in (left, right))
    return (left, top, w - right, h - bottom)


# --- PDQ ------------------------------------------------------------------------------


def _bits(vector: np.ndarray) -> bytes:
    return np.packbits(vector.astype(np.uint8)).tobytes()


def _as_rgb_array(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3], dtype=np.uint8)


def pdq_of_array(pixels: np.ndarray, variant: str = "full") -> PdqHash:
    """Meta's PDQ of an (h, w, 3) RGB or (h, w) luma uint8 array."""
    vector, quality = pdqhash.compute(_as_rgb_array(pixels))
    return PdqHash(_bits(vector), int(quality), variant)


def pdq_dihedral_of_array(pixels: np.ndarray, variant: str = "full") -> list[PdqHash]:
    """The eight PDQ hashes of an image's rotations and mirrors, in one pass; the first is
    the image itself (named ``variant``), the others ``variant+rot90`` and so on."""
    vectors, quality = pdqhash.compute_dihedral(_as_rgb_array(pixels))
    return [
        PdqHash(_bits(v), int(quality), f"{variant}+{name}" if name else variant)
        for v, name in zip(vectors, DIHEDRAL_NAMES, strict=True)
    ]


def pdq_batch(lumas: np.ndarray, *, dihedral: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Hash a stack of luma images (n, h, w) uint8 in bulk. Returns (bits, quality): bits
    is (n, 32) uint8, or (n, 8, 32) with ``dihedral`` (orientations in ``DIHEDRAL_NAMES``
    order); quality is (n,) int."""
    lumas = np.asarray(lumas)
    if lumas.ndim != 3 or lumas.dtype != np.uint8:
        raise ValueError(f"expected an (n, h, w) uint8 array, got {lumas.dtype} {lumas.shape}")
    n = lumas.shape[0]
    bits = np.empty((n, 8, PDQ_BYTES) if dihedral else (n, PDQ_BYTES), dtype=np.uint8)
    quality = np.empty(n, dtype=np.int64)
    for i in range(n):
        rgb = _as_rgb_array(lumas[i])
        if dihedral:
            vectors, quality[i] = pdqhash.compute_dihedral(rgb)
            bits[i] = np.packbits(np.asarray(vectors, dtype=np.uint8), axis=-1)
        else:
            vector, quality[i] = pdqhash.compute(rgb)
            bits[i] = np.packbits(vector.astype(np.uint8))
    return bits, quality


def _crop_name(fraction: float) -> str:
    return f"crop{fraction * 100:g}"  # crop100, crop95, crop97.5


def _central(box: Box, fraction: float) -> tuple[float, float, float, float]:
    left, top, right, bottom = box
    mx = (right - left) * (1 - fraction) / 2
    my = (bottom - top) * (1 - fraction) / 2
    return (left + mx, top + my, right - mx, bottom - my)


def _canonical_stack(luma: Image.Image, box: Box, crops: Sequence[float]) -> np.ndarray:
    # Sub-pixel crop boxes and a Lanczos filter whose support grows with the reduction:
    # the same 64x64 comes out whatever the copy's resolution.
    side = (CANONICAL_SIDE, CANONICAL_SIDE)
    return np.stack([
        np.asarray(luma.resize(side, CANONICAL_FILTER, box=_central(box, c)))
        for c in crops
    ])


@dataclass(frozen=True)
class _Prepared:
    work: Image.Image  # RGB, longest side <= WORK_MAX_SIDE
    luma: Image.Image  # the same, mode L
    boxes: tuple[tuple[str, Box], ...]  # (name prefix, box): trimmed first, then untrimmed

    def rgb(self, box: Box) -> np.ndarray:
        return np.asarray(self.work)[box[1]:box[3], box[0]:box[2]]


def _prepare(image: bytes | Image.Image) -> tuple[_Prepared, bytes | None]:
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
        work = decode_for_hashing(data)
    elif isinstance(image, Image.Image):
        data = None
        work = _work_copy(image)
    else:
        raise TypeError(f"expected image bytes or a PIL image, got {type(image).__name__}")
    return _prepared(work), data


def _prepared(work: Image.Image) -> _Prepared:
    luma = work.convert("L")
    whole: Box = (0, 0, work.width, work.height)
    trimmed = border_box(np.asarray(luma))
    # A bright sky clipped to white or a night sky can pass for a bar in one copy and not
    # in another: when something was trimmed, the untrimmed image is hashed as well.
    boxes = (("", trimmed),) if trimmed == whole else (("", trimmed), (UNTRIMMED, whole))
    return _Prepared(work, luma, boxes)


def _name(prefix: str, name: str) -> str:
    return f"{prefix}-{name}" if prefix else name


def _canonical(p: _Prepared, crops: Sequence[float], *, dihedral: bool) -> list[PdqHash]:
    out: list[PdqHash] = []
    for prefix, box in p.boxes:
        bits, quality = pdq_batch(_canonical_stack(p.luma, box, crops), dihedral=dihedral)
        for i, c in enumerate(crops):
            if quality[i] < MIN_PDQ_QUALITY:
                continue
            name = _name(prefix, _crop_name(c))
            if dihedral:
                out.extend(
                    PdqHash(bits[i, k].tobytes(), int(quality[i]), f"{name}+{d}" if d else name)
                    for k, d in enumerate(DIHEDRAL_NAMES)
                )
            else:
                out.append(PdqHash(bits[i].tobytes(), int(quality[i]), name))
    return out


@dataclass(frozen=True)
class Fingerprint:
    """Everything a bank or the content index needs from one image, decoded once."""

    hashes: ImageHashes
    ingest: tuple[PdqHash, ...]  # to store: ``ingest_hashes``
    query: tuple[PdqHash, ...]  # to search with: ``query_hashes``

    def query_array(self) -> np.ndarray:
        """The query hashes as a (n, 32) uint8 array for ``PDQIndex.search``."""
        return np.stack([h.array for h in self.query]) if self.query else \
            np.empty((0, PDQ_BYTES), np.uint8)


def fingerprint(image: bytes | Image.Image) -> Fingerprint:
    """Exact hashes, ingest hashes and query hashes of one image, decoding it once."""
    p, data = _prepare(image)
    return Fingerprint(_image_hashes(p, data), tuple(_ingest(p)), tuple(_query(p)))


def decode_and_fingerprint(data: bytes, *, max_pixels: int = MAX_PIXELS,
                           ) -> tuple[DecodedImage, Fingerprint]:
    """Decode image bytes once for both analysis and bank matching: the analysis copy (as
    ``decode_image`` makes it, here from the hashing work copy) and the fingerprint (as
    ``fingerprint`` makes it). Raises ``ImageRejected`` with a precise reason."""
    img, fmt, size = open_image(data, draft_side=WORK_MAX_SIDE, max_pixels=max_pixels)
    orientation = exif_orientation(img)
    try:
        work = _work_copy(img)
    except (OSError, ValueError) as exc:
        raise ImageRejected("invalid_image", f"the image is damaged: {exc}") from exc
    del img  # the full-size pixels are no longer needed
    p = _prepared(work)
    fp = Fingerprint(_image_hashes(p, data), tuple(_ingest(p)), tuple(_query(p)))
    return analysis_image(work, fmt, size, orientation), fp


def image_hashes(image: bytes | Image.Image) -> ImageHashes:
    """MD5 and SHA-256 of the bytes (when given bytes) and the Meta-compatible PDQ of the
    border-trimmed pixels (``None`` when its quality is below ``MIN_PDQ_QUALITY``)."""
    return _image_hashes(*_prepare(image))


def ingest_hashes(image: bytes | Image.Image) -> list[PdqHash]:
    """The PDQ hashes to store in the match index for a banked image: Meta's ``full`` hash
    and the ``cropNN`` ladder of ``INGEST_CROPS`` (6 hashes; 12 when a border was trimmed),
    less any below ``MIN_PDQ_QUALITY``."""
    return _ingest(_prepare(image)[0])


def query_hashes(image: bytes | Image.Image) -> list[PdqHash]:
    """The PDQ hashes to search the index with for an upload: the eight rotations/mirrors
    of Meta's ``full`` hash and of each ``QUERY_CROPS`` crop (24 hashes; 48 when a border
    was trimmed), less any below ``MIN_PDQ_QUALITY``. An upload matches a banked image
    when any (query, stored) pair is within ``PDQ_MATCH_DISTANCE``."""
    return _query(_prepare(image)[0])


def _image_hashes(p: _Prepared, data: bytes | None) -> ImageHashes:
    full = pdq_of_array(p.rgb(p.boxes[0][1]))
    return ImageHashes(
        md5=hashlib.md5(data).hexdigest() if data is not None else None,
        sha256=hashlib.sha256(data).hexdigest() if data is not None else None,
        pdq=full if full.quality >= MIN_PDQ_QUALITY else None,
        pdq_quality=full.quality,
    )


def _ingest(p: _Prepared) -> list[PdqHash]:
    out: list[PdqHash] = []
    for prefix, box in p.boxes:
        full = pdq_of_array(p.rgb(box), _name(prefix, "full"))
        if full.quality >= MIN_PDQ_QUALITY:
            out.append(full)
    return out + _canonical(p, INGEST_CROPS, dihedral=False)


def _query(p: _Prepared) -> list[PdqHash]:
    out: list[PdqHash] = []
    for prefix, box in p.boxes:
        full = pdq_dihedral_of_array(p.rgb(box), _name(prefix, "full"))
        if full[0].quality >= MIN_PDQ_QUALITY:
            out.extend(full)
    return out + _canonical(p, QUERY_CROPS, dihedral=True)
