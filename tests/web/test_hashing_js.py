"""On-device hashing (consentry/web/static/hashing.js) under Node: its MD5 is hashlib's,
and its PDQ is Meta's -- the same bits as ``pdqhash.compute`` on the same pixels and
within Meta's correctness criterion (Hamming distance <= 10) of the server's hash of the
same JPEG -- so a hash made in a victim's browser matches the server's banks.

The browser would decode the image and draw it at most 768 px on a side; here PIL does
that, and Node hashes the raw RGBA pixels through tests/web/hash_with_node.js."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
import pytest
from PIL import Image

from consentry.signals.hashing import WORK_MAX_SIDE, border_box, fingerprint, parse_pdq_hex

HERE = Path(__file__).parent
HARNESS = HERE / "hash_with_node.js"
META_MAX_DISTANCE = 10  # Meta: two correct PDQ implementations agree to within 10 bits
QUALITY_TOLERANCE = 2


def _distance(a: str, b: str) -> int:
    return (int.from_bytes(parse_pdq_hex(a), "big") ^ int.from_bytes(parse_pdq_hex(b), "big")
            ).bit_count()


def _jpeg(image: Image.Image | np.ndarray, quality: int = 92) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def _letterbox(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """Bars top and bottom of a landscape photo, left and right of a portrait one."""
    w, h = image.size
    size, at = ((w, h + h // 2), (0, h // 4)) if w >= h else ((w + w // 2, h), (w // 4, 0))
    out = Image.new("RGB", size, colour)
    out.paste(image.convert("RGB"), at)
    return out


def _browser_pixels(data: bytes) -> Image.Image:
    """What the page gets from its canvas: RGBA, at most WORK_MAX_SIDE on a side, with a
    high-quality (Lanczos-like) downscale."""
    image = Image.open(io.BytesIO(data)).convert("RGBA")
    image.thumbnail((WORK_MAX_SIDE, WORK_MAX_SIDE), Image.Resampling.LANCZOS)
    return image


def _pdqhash(image: Image.Image) -> tuple[str, int]:
    vector, quality = pdqhash.compute(np.ascontiguousarray(np.asarray(image)[:, :, :3]))
    return np.packbits(vector.astype(np.uint8)).tobytes().hex(), int(quality)


class Node:
    """Runs jobs through the harness in one Node process; files go in ``workdir``."""

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable, self.workdir = executable, workdir
        self.count = 0

    def file(self, data: bytes) -> str:
        self.count += 1
        path = self.workdir / f"input{self.count}"
        path.write_bytes(data)
        return str(path)

    def rgba_job(self, op: str, image: Image.Image) -> dict[str, Any]:
        assert image.mode == "RGBA"
        return {"op": op, "file": self.file(image.tobytes()), "width": image.width,
                "height": image.height}

    def run(self, jobs: list[dict[str, Any]]) -> list[Any]:
        spec = self.workdir / f"jobs{self.count}.json"
        spec.write_text(json.dumps(jobs))
        proc = subprocess.run([self.executable, str(HARNESS), str(spec)], capture_output=True,
                              text=True, timeout=120, check=False)
        assert proc.returncode == 0, f"hashing.js failed under Node:\n{proc.stderr}"
        return [r["result"] for r in json.loads(proc.stdout)]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    executable = shutil.which("node")
    if executable is None:
        pytest.fail("Node.js is needed to test consentry/web/static/hashing.js and is not on "
                    "PATH: install it (Debian: `apt-get install nodejs`)")
    return Node(executable, tmp_path_factory.mktemp("hashing_js"))


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    """The project's real photos as JPEG bytes, as a victim would pick them, and two
    that exercise the browser path: one above WORK_MAX_SIDE, one letterboxed."""
    import matplotlib.cbook
    from skimage import data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = fh.read()
    astronaut = Image.fromarray(data.astronaut())
    return {
        "astronaut": _jpeg(astronaut),
        "coffee": _jpeg(data.coffee()),
        "chelsea": _jpeg(data.chelsea()),
        "rocket": _jpeg(data.rocket()),
        "grace_hopper": hopper,
        "china": _jpeg(china),
        "flower": _jpeg(flower),
        "astronaut 1024px": _jpeg(astronaut.resize((1024, 1024), Image.Resampling.BICUBIC)),
        "coffee letterboxed": _jpeg(_letterbox(Image.fromarray(data.coffee()), (0, 0, 0)), 75),
    }


@pytest.fixture(scope="module")
def photo_hashes(node: Node, photos: dict[str, bytes]) -> list[dict[str, Any]]:
    """Per photo: the JS hashes of its browser pixels next to pdqhash's and the server's."""
    pixels = {name: _browser_pixels(data) for name, data in photos.items()}
    jobs = []
    for image in pixels.values():
        jobs += [node.rgba_job("pdq", image), node.rgba_job("hashRGBA", image)]
    results = node.run(jobs)
    rows = []
    for i, (name, data) in enumerate(photos.items()):
        server = fingerprint(data).hashes
        assert server.pdq is not None, f"the server keeps no PDQ for {name}"
        rows.append({
            "name": name, "size": pixels[name].size,
            "js": results[2 * i], "js_trimmed": results[2 * i + 1],
            "pdqhash": _pdqhash(pixels[name]), "server": server.pdq,
        })
    return rows


def test_md5_is_hashlibs(node: Node, photos: dict[str, bytes]):
    rng = np.random.default_rng(1321)
    cases = {"empty": b"", "abc": b"abc", "1 MB random": rng.bytes(1 << 20)}
    # Around the padding boundaries: the length field fits in the last block or not.
    cases |= {f"{n} bytes": rng.bytes(n) for n in (1, 55, 56, 63, 64, 65, 119, 120, 128)}
    cases |= {f"photo {name}": data for name, data in photos.items()}
    results = node.run([{"op": "md5", "file": node.file(data)} for data in cases.values()])
    for (name, data), got in zip(cases.items(), results, strict=True):
        assert got == hashlib.md5(data).hexdigest(), name
    assert results[0] == "d41d8cd98f00b204e9800998ecf8427e"
    assert results[1] == "900150983cd24fb0d6963f7d28e17f72"


def test_pdq_agrees_with_pdqhash_and_the_server(photo_hashes, capsys):
    lines = []
    for row in photo_hashes:
        js, trimmed = row["js"], row["js_trimmed"]
        ref_hex, ref_quality = row["pdqhash"]
        to_ref = _distance(js["hash"], ref_hex)
        to_server = _distance(trimmed["hash"], row["server"].hex)
        lines.append(f"  {row['name']:20s} {'x'.join(map(str, row['size'])):>9s}  "
                     f"{to_ref:11d}  {to_server:9d}  {js['quality']:3d} / {ref_quality:3d}")
        assert to_ref <= META_MAX_DISTANCE, row["name"]
        assert to_server <= META_MAX_DISTANCE, row["name"]
        assert abs(js["quality"] - ref_quality) <= QUALITY_TOLERANCE, row["name"]
    with capsys.disabled():
        print("\n\nhashing.js PDQ: Hamming distance to pdqhash (same pixels) and to the "
              "server's hash of the same JPEG")
        print(f"  {'photo':20s} {'pixels':>9s}  {'vs pdqhash':>11s}  {'vs server':>9s}  "
              "quality js / pdqhash")
        print("\n".join(lines) + "\n")


def test_pdq_hex_bit_order_is_the_servers(photo_hashes):
    # Exactly equal on the same pixels, so the bit order (bit 255 first) is the server's;
    # a reversed or byte-swapped order would be ~128 bits away.
    for row in photo_hashes:
        assert row["js"]["hash"] == row["pdqhash"][0], row["name"]
        assert row["js"]["quality"] == row["pdqhash"][1], row["name"]


def test_border_trimming_matches_the_server(node: Node, photos: dict[str, bytes]):
    coffee = Image.open(io.BytesIO(photos["coffee"]))
    rocket = Image.open(io.BytesIO(photos["rocket"]))
    night = Image.fromarray((np.asarray(coffee, dtype=np.float32) * 0.12).astype(np.uint8))
    cases = {
        "black letterbox": _letterbox(coffee, (0, 0, 0)),
        "white pillarbox": _letterbox(rocket, (255, 255, 255)),
        "grey bars are content": _letterbox(coffee, (128, 128, 128)),
        "dark photo, no bars": night,
        "plain photo": coffee,
    }
    images = {name: Image.open(io.BytesIO(_jpeg(im, 75))).convert("RGBA")
              for name, im in cases.items()}
    results = node.run([node.rgba_job("hashRGBA", im) for im in images.values()])
    for (name, image), got in zip(images.items(), results, strict=True):
        expected = border_box(np.asarray(image.convert("L")))
        assert tuple(got["box"]) == expected, name
    assert results[0]["box"] != [0, 0, images["black letterbox"].width,
                                 images["black letterbox"].height]


def test_tiny_and_flat_images(node: Node):
    flat = Image.new("RGBA", (300, 200), (120, 130, 140, 255))
    tiny = Image.new("RGBA", (4, 40), (10, 200, 30, 255))
    results = node.run([node.rgba_job("pdq", flat), node.rgba_job("pdq", tiny)])
    assert results[0]["hash"] == _pdqhash(flat)[0] and results[0]["quality"] == 0
    assert results[1] == {"hash": "0" * 64, "quality": 0}  # the reference's minimum is 5 px


def test_hash_file_draws_at_most_768_px_and_hashes_the_bytes(node: Node, photos):
    # A stand-in for the browser's decoder and canvas: this checks hashFile's own work
    # (bytes, size, canvas settings, trimming); tests/web/test_takedown_browser.py runs
    # it in a real browser.
    astronaut = photos["astronaut"]
    pixels = _browser_pixels(astronaut)
    wide = Image.open(io.BytesIO(photos["china"])).convert("RGBA").resize((768, 384))
    jobs = [
        {"op": "hashFile", "file": node.file(astronaut), "rgba": node.file(pixels.tobytes()),
         "width": 512, "height": 512, "bitmapWidth": 512, "bitmapHeight": 512},
        {"op": "hashFile", "file": node.file(photos["china"]), "rgba": node.file(wide.tobytes()),
         "width": 768, "height": 384, "bitmapWidth": 2000, "bitmapHeight": 1000},
    ]
    small, large = node.run(jobs)
    server = fingerprint(astronaut).hashes
    assert small["result"] == {"pdq": server.pdq.hex, "md5": hashlib.md5(astronaut).hexdigest(),
                               "quality": server.pdq_quality, "width": 512, "height": 512}
    assert small["seen"] == {"canvas": [512, 512], "drawn": [0, 0, 512, 512],
                             "smoothing": [True, "high"], "closed": True}
    assert large["seen"]["canvas"] == [768, 384]
    assert large["result"]["md5"] == hashlib.md5(photos["china"]).hexdigest()
    assert (large["result"]["width"], large["result"]["height"]) == (2000, 1000)
    assert large["result"]["pdq"] == _pdqhash(wide)[0]
