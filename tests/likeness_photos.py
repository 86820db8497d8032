"""Pictures of one person and of others, made from the public photos that ship offline:
two enrolment photos of the astronaut and a third, different picture of her (cropped,
resized, recoloured, re-encoded), and composites for bad enrolments."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageOps


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def enrolment_photos(astronaut: bytes) -> list[bytes]:
    """Two pictures of the astronaut: as published, and mirrored and darker."""
    img = opened(astronaut)
    return [jpeg(img), jpeg(ImageEnhance.Brightness(ImageOps.mirror(img)).enhance(0.75))]


def third_picture(astronaut: bytes) -> bytes:
    """A different picture of her: cropped to head and shoulders, enlarged, warmer,
    re-encoded at JPEG quality 70."""
    img = opened(astronaut).crop((100, 0, 400, 300)).resize((450, 450))
    warm = np.asarray(img).astype(np.int16) + np.array([12, 0, -12], dtype=np.int16)
    return jpeg(Image.fromarray(np.clip(warm, 0, 255).astype(np.uint8)), 70)


def side_by_side(astronaut: bytes, hopper: bytes) -> bytes:
    """Both women's heads side by side, each large enough to be a clear face."""
    both = Image.new("RGB", (512, 256))
    both.paste(opened(astronaut).crop((100, 0, 400, 300)).resize((256, 256)), (0, 0))
    both.paste(opened(hopper).crop((60, 60, 460, 460)).resize((256, 256)), (256, 0))
    return jpeg(both)
