"""Hostile image files, built by the tests themselves (no binary files are committed).

Each ``HostileImage`` says what a correct answer to it is:

* files with no ``rejection`` are odd but valid (polyglots, CMYK, TIFF compressions,
  16-bit RGBA, many frames, EXIF rotation): they get a verdict (or, if they overran the
  deadline, a fail-closed block or ``image_too_complex``);
* the others get a clear error with the ``rejection`` code: a 4xx (413 for
  ``image_too_large``), a CLI error line or exit 2. Those marked ``fails_closed`` overrun
  the decoding deadline: a gate path answers them ``block`` under FC-1 instead.

Never a 5xx, never ``allow`` for a file that could not be analysed.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

# The scan bomb under the scan limit: a flat 6000x6000 progressive JPEG whose last scan
# is repeated 400 times (below consentry's 500-scan limit). Pillow needs ~9 s for it in
# process on the development machine; the sandbox stops it at the deadline.
SLOW_SCAN_SIDE = 6000
SLOW_SCAN_REPEATS = 400


@dataclass(frozen=True)
class HostileImage:
    name: str
    data: bytes
    rejection: str | None  # the error code it must get; None: it is a valid image
    why: str  # what the file attacks or exercises
    fails_closed: bool = False  # overruns the deadline: FC-1 on the gate's paths

    @property
    def decodable(self) -> bool:
        return self.rejection is None

    @property
    def too_large(self) -> bool:
        return self.rejection == "image_too_large"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def png(width: int, height: int, *, bit_depth: int, colour_type: int, row: bytes,
        rows: int | None = None) -> bytes:
    """A PNG whose every row is ``row`` (filter byte included), compressed as it is
    streamed: a flat image of any declared size costs little to build or to send.
    ``rows`` fewer than ``height`` gives a file that declares more than it holds."""
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height if rows is None else rows))
    body += comp.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body)
            + _chunk(b"IEND", b""))


def png16_rgba(side: int = 6300) -> bytes:
    """Defect 4's file: a flat 16-bit RGBA PNG, 6300x6300 (39.7 MP, just under the 40 MP
    limit), about 320 KB, that decodes to 159 MB of pixels."""
    return png(side, side, bit_depth=16, colour_type=6, row=b"\x00" + b"\x12\x34" * 4 * side)


def png_bomb() -> bytes:
    """A decompression bomb: declares 100000x100000 pixels in a file of a few hundred
    bytes."""
    side = 100_000
    return png(side, side, bit_depth=8, colour_type=0, row=b"\x00" * (side + 1), rows=1)


def over_pixel_limit() -> bytes:
    """A real, complete greyscale PNG of 6500x6500 = 42.25 MP, over the 40 MP limit."""
    side = 6500
    return png(side, side, bit_depth=8, colour_type=0, row=b"\x00" + b"\x80" * side)


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each JPEG segment after SOI; a scan's segment runs to the
    end of its entropy-coded data."""
    out, i = [], 2
    while i < len(data):
        marker = data[i + 1]
        if marker == 0xD9:
            out.append((marker, i, i + 2))
            break
        end = i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker == 0xDA:
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
        out.append((marker, i, end))
        i = end
    return out


def scan_bomb(side: int, repeats: int) -> bytes:
    """A flat progressive JPEG whose last scan (an AC refinement, a few bytes of EOB run
    over the whole image) is repeated ``repeats`` times: each copy makes libjpeg pass over
    every block again (libjpeg-turbo's LJT-01-003)."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(buf, "JPEG", progressive=True,
                                                         quality=90)
    data = buf.getvalue()
    _, start, end = [s for s in jpeg_segments(data) if s[0] == 0xDA][-1]
    return data[:end] + data[start:end] * repeats + data[end:]


def many_frames_gif(frames: int = 2000) -> bytes:
    # Consecutive frames differ (Pillow merges identical ones into one longer frame).
    first, *rest = (Image.new("L", (32, 32), i % 256) for i in range(frames))
    buf = io.BytesIO()
    first.save(buf, "GIF", save_all=True, append_images=rest, duration=10, loop=0)
    return buf.getvalue()


def jpeg_zip_polyglot(photo: bytes) -> bytes:
    """A JPEG with a ZIP archive appended: both a valid image and a valid archive."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("payload.html", "<script>alert(document.domain)</script>")
    return photo + archive.getvalue()


def gif_html_polyglot() -> bytes:
    """A GIF carrying HTML/JavaScript in a comment block and after its trailer."""
    buf = io.BytesIO()
    Image.new("P", (48, 48), 3).save(buf, "GIF", comment=b"*/=1;alert(1);/*<script>x</script>")
    return buf.getvalue() + b"<html><body><script>alert(document.cookie)</script></body></html>"


def svg() -> bytes:
    return (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100000" '
            b'height="100000"><script>alert(1)</script><rect width="100%" height="100%"/>'
            b"</svg>")


def tiff(photo: Image.Image, compression: str, **options: object) -> bytes:
    buf = io.BytesIO()
    photo.save(buf, "TIFF", compression=compression, **options)
    return buf.getvalue()


def huge_strip_tiff(side: int = 6000) -> bytes:
    """A 36 MP TIFF stored as one deflate strip: the decoder must inflate it whole."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (40, 90, 200)).save(
        buf, "TIFF", compression="tiff_adobe_deflate", strip_size=2**40)
    return buf.getvalue()


def cmyk_jpeg(photo: Image.Image) -> bytes:
    buf = io.BytesIO()
    photo.convert("CMYK").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def exif_rotated_jpeg(photo: Image.Image) -> bytes:
    """The photo stored a quarter turn anticlockwise with EXIF orientation 6 ("turn
    clockwise to view"), as phones write portrait photos: upright when displayed."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    photo.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def corpus(photos: dict[str, bytes]) -> dict[str, HostileImage]:
    """Every hostile file, by name. ``photos`` is the conftest fixture of real photos."""
    astronaut = photos["astronaut"]
    photo = Image.open(io.BytesIO(astronaut)).convert("RGB")
    png_photo = io.BytesIO()
    photo.save(png_photo, "PNG")
    files: list[tuple[str, Callable[[], bytes], str | None, str]] = [
        ("zero_bytes", lambda: b"", "empty_image", "an empty upload"),
        ("truncated_jpeg", lambda: astronaut[: len(astronaut) // 2], "invalid_image",
         "a JPEG cut in half"),
        ("truncated_png", lambda: png_photo.getvalue()[: len(png_photo.getvalue()) // 2],
         "invalid_image", "a PNG cut in half"),
        ("png_bomb", png_bomb, "image_too_large",
         "declares 100000x100000 in a few hundred bytes"),
        ("over_40mp", over_pixel_limit, "image_too_large", "a complete 42 MP image"),
        ("svg", svg, "invalid_image", "SVG with script: not a raster format"),
        ("scan_bomb", lambda: scan_bomb(2000, 3000), "image_too_complex",
         "progressive JPEG, one scan repeated 3000 times (over the scan limit)"),
        ("slow_scan_bomb", lambda: scan_bomb(SLOW_SCAN_SIDE, SLOW_SCAN_REPEATS),
         "image_too_complex", "progressive JPEG under the scan limit that decodes for "
         "seconds"),
        ("png16_rgba_6300", png16_rgba, None, "16-bit RGBA, 159 MB decoded from 320 KB"),
        ("gif_2000_frames", many_frames_gif, None, "an animated GIF of 2000 frames"),
        ("jpeg_zip_polyglot", lambda: jpeg_zip_polyglot(astronaut), None,
         "a JPEG that is also a ZIP archive"),
        ("gif_html_polyglot", gif_html_polyglot, None, "a GIF that is also HTML/JS"),
        ("tiff_raw", lambda: tiff(photo, "raw"), None, "uncompressed TIFF"),
        ("tiff_lzw", lambda: tiff(photo, "tiff_lzw"), None, "LZW TIFF"),
        ("tiff_packbits", lambda: tiff(photo, "packbits"), None, "PackBits TIFF"),
        ("tiff_jpeg", lambda: tiff(photo, "jpeg", quality=85), None, "JPEG-in-TIFF"),
        ("tiff_huge_strip", huge_strip_tiff, None, "36 MP in one deflate strip"),
        ("cmyk_jpeg", lambda: cmyk_jpeg(photo), None, "a CMYK JPEG"),
        ("exif_rotated_jpeg", lambda: exif_rotated_jpeg(photo), None,
         "a sideways-stored photo with EXIF orientation 6"),
    ]
    return {name: HostileImage(name, build(), rejection, why,
                               fails_closed=name == "slow_scan_bomb")
            for name, build, rejection, why in files}
