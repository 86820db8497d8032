"""What a reviewer's browser is sent of an image: a small copy, rendered on the server.

By default the copy is blurred and grey (``Look.BLURRED``): enough to tell a face from a
landscape and where the boxes fall, not enough to see a body. It is made by shrinking
the image to a few dozen pixels and blurring it back up, so no detail survives in the
bytes themselves: CSS blur would send the full picture to the browser. A reveal sends
the analysis copy in colour (``Look.REVEALED``), never larger than 512 px. Face boxes
with their estimated ages are drawn into either copy, so they line up whatever the page
does.

Pure; services run it in the decoding sandbox (``Sandbox.preview``), since it decodes
untrusted bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from consentry.signals.image import decode_image

# The blurred copy keeps this many pixels on its longest side before being blurred back
# up: faces stay faces, bodies become shapes.
BLUR_DETAIL_SIDE: Final = 24
BLURRED_SIDE: Final = 320
JPEG_QUALITY: Final = 80
BOX_COLOUR: Final = (255, 191, 71)  # amber: visible on grey and on most photos


class Look(StrEnum):
    BLURRED = "blurred"
    REVEALED = "revealed"


@dataclass(frozen=True)
class Preview:
    """A rendered copy. ``width``/``height``: the original image's upright size, the
    coordinate space of the face boxes a verdict reports."""

    content: bytes
    media_type: str
    width: int
    height: int
    look: Look


@dataclass(frozen=True)
class FaceBox:
    """A face a verdict reported: its box in the original image's pixels (left, top,
    right, bottom) and the age the model estimated."""

    box: tuple[int, int, int, int]
    age: int | None = None


def render_preview(data: bytes, look: Look = Look.BLURRED,
                   faces: Sequence[FaceBox] = ()) -> Preview:
    """The copy of ``data`` a reviewer sees (``ImageRejected`` when it cannot be read)."""
    decoded = decode_image(data)
    image = decoded.analysis  # upright RGB, <= 512 px
    if look is Look.BLURRED:
        image = _blurred(image).convert("RGB")
    if faces:
        _draw_faces(image, faces, image.width / decoded.width)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return Preview(out.getvalue(), "image/jpeg", decoded.width, decoded.height, look)


def _blurred(image: Image.Image) -> Image.Image:
    grey = image.convert("L")
    scale = BLUR_DETAIL_SIDE / max(grey.size)
    tiny = grey.resize((max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
                       Image.Resampling.BOX)
    scale = BLURRED_SIDE / max(tiny.size)
    size = (max(1, round(tiny.width * scale)), max(1, round(tiny.height * scale)))
    return tiny.resize(size, Image.Resampling.BILINEAR).filter(
        ImageFilter.GaussianBlur(radius=BLURRED_SIDE / BLUR_DETAIL_SIDE))


def _draw_faces(image: Image.Image, faces: Sequence[FaceBox], scale: float) -> None:
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 160))
    size = max(12, round(max(image.size) / 22))
    font = ImageFont.load_default(size=size)
    for number, face in enumerate(faces, start=1):
        left, top, right, bottom = (round(v * scale) for v in face.box)
        draw.rectangle((left, top, right, bottom), outline=BOX_COLOUR, width=line)
        label = f"{number}: ~{face.age}" if face.age is not None else str(number)
        x, y = left, max(0, top - size - 2 * line)
        box = draw.textbbox((x, y), label, font=font)
        draw.rectangle((box[0] - line, box[1] - line, box[2] + line, box[3] + line),
                       fill=(0, 0, 0))
        draw.text((x, y), label, fill=BOX_COLOUR, font=font)
