"""Every public photo that ships offline (skimage, sklearn, matplotlib) as RGB arrays, and
the screenshot-like re-encode the watermark must survive: shared by
tests/signals/test_watermark.py and bench/bench_provenance.py."""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image

SKIMAGE = ("astronaut", "coffee", "chelsea", "camera", "rocket", "immunohistochemistry",
           "hubble_deep_field", "retina", "colorwheel", "logo", "moon", "brick", "grass",
           "gravel", "cell", "clock", "coins", "page", "text")


def _rgb(a: NDArray[np.generic]) -> NDArray[np.uint8]:
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    return np.ascontiguousarray(a[..., :3].astype(np.uint8))


def public_photos() -> dict[str, NDArray[np.uint8]]:
    """The public photos that ship with skimage, sklearn and matplotlib (RGB)."""
    import matplotlib.cbook
    from skimage import data
    from sklearn.datasets import load_sample_images

    images = {name: _rgb(getattr(data, name)()) for name in SKIMAGE}
    for name, a in zip(("china", "flower"), load_sample_images().images, strict=True):
        images[name] = _rgb(a)
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        with matplotlib.cbook.get_sample_data(name) as fh:
            images[name] = _rgb(np.asarray(Image.open(fh).convert("RGB")))
    return images


def screenshot(rgb: NDArray[np.uint8], scale: float = 0.75, quality: int = 75,
               ) -> NDArray[np.uint8]:
    """Resized, JPEG at ``quality``, saved with no metadata at all, decoded again."""
    height, width = rgb.shape[:2]
    out = io.BytesIO()
    Image.fromarray(rgb).resize((round(width * scale), round(height * scale)),
                                Image.Resampling.BICUBIC).save(out, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))
