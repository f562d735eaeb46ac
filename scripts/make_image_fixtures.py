#!/usr/bin/env python3
"""Image-decoding references made by Pillow itself (what diffusers' training script reads images with).

Writes tests/data/images/:
  cmyk.jpg          a 24x16 CMYK JPEG saved by Pillow (Adobe marker, inverted CMYK as Photoshop writes)
  cmyk_as_rgb.png   Image.open("cmyk.jpg").convert("RGB"), the pixels the training script would use
  rgb.jpg           a 24x16 RGB JPEG, and rgb_truncated.jpg, its first half (Pillow refuses it:
                    "image file is truncated"), with rgb_as_rgb.png its full decode

Run with Pillow pinned:  python -m venv v && v/bin/pip install pillow==11.3.0 && v/bin/python scripts/make_image_fixtures.py
"""
import pathlib

import PIL
from PIL import Image

assert PIL.__version__ == "11.3.0", PIL.__version__
out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "images"
out.mkdir(parents=True, exist_ok=True)

width, height = 24, 16
cmyk = Image.new("CMYK", (width, height))
cmyk.putdata([(x * 10 % 256, y * 15 % 256, (x + y) * 7 % 256, (x * y) % 200) for y in range(height) for x in range(width)])
cmyk.save(out / "cmyk.jpg", quality=95, subsampling=0)
Image.open(out / "cmyk.jpg").convert("RGB").save(out / "cmyk_as_rgb.png")

rgb = Image.new("RGB", (width, height))
rgb.putdata([(x * 10 % 256, y * 15 % 256, 128) for y in range(height) for x in range(width)])
rgb.save(out / "rgb.jpg", quality=95)
Image.open(out / "rgb.jpg").convert("RGB").save(out / "rgb_as_rgb.png")
data = (out / "rgb.jpg").read_bytes()
(out / "rgb_truncated.jpg").write_bytes(data[: len(data) // 2])
try:
    Image.open(out / "rgb_truncated.jpg").convert("RGB")
    raise SystemExit("Pillow loaded the truncated JPEG")
except OSError as e:
    print("Pillow refuses rgb_truncated.jpg:", e)
print("wrote", sorted(p.name for p in out.iterdir()))
