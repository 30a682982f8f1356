"""Write the bad cases Go cannot encode, with Pillow's reading of each as the
oracle: CMYK JPEGs, WebP (lossy, lossy and lossless with alpha, animated),
and JPEG and PNG files carrying each EXIF orientation 1-8.

usage: make_pillow_corpus.py DATA EXPECTED
DATA gets the class folders cmyk/, webp/, exif/; EXPECTED gets, for every
file DATA/REL that Pillow can read, EXPECTED/REL.png: the upright RGB image
Pillow sees (EXIF orientation applied, transparency over white).
"""
import os
import sys

from PIL import Image, ImageOps


def quadrants(w, h, colours):
    """An image whose four quadrants have distinct colours: any flip or turn shows."""
    im = Image.new("RGB", (w, h))
    for i, c in enumerate(colours):
        x0, y0 = (i % 2) * (w // 2), (i // 2) * (h // 2)
        im.paste(c, (x0, y0, x0 + w // 2, y0 + h // 2))
    return im


def expected(path, rel, out):
    im = Image.open(path)
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    dst = os.path.join(out, rel + ".png")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    im.convert("RGB").save(dst)


def main(data, out):
    made = []

    def save(im, rel, **kw):
        path = os.path.join(data, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        im.save(path, **kw)
        made.append(rel)

    # CMYK JPEGs: Pillow writes Adobe-marked, inverted CMYK, as Photoshop does.
    for i, cmyk in enumerate([(0, 255, 255, 0), (255, 0, 255, 0), (255, 255, 0, 0), (0, 0, 0, 128)]):
        im = Image.new("CMYK", (48, 32), cmyk)
        im.paste((0, 0, 0, 0), (8, 8, 24, 24))
        save(im, f"cmyk/cmyk_{i}.jpg", quality=95)

    base = quadrants(48, 32, [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 230, 40)])
    save(base, "webp/lossy.webp", quality=90)
    alpha = base.convert("RGBA")
    alpha.putalpha(Image.new("L", (48, 32), 255).point(lambda v: v))
    alpha.paste((0, 0, 0, 0), (0, 0, 16, 16))
    save(alpha, "webp/lossless_alpha.webp", lossless=True)
    save(alpha, "webp/lossy_alpha.webp", quality=90)
    frames = [quadrants(48, 32, [c, c, c, c]) for c in [(200, 0, 0), (0, 200, 0)]]
    save(frames[0], "webp/animated.webp", save_all=True, append_images=frames[1:], duration=100, loop=0)

    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        save(base, f"exif/exif_{o}.jpg", quality=95, exif=exif.tobytes())
    exif = Image.Exif()
    exif[0x0112] = 6
    save(quadrants(48, 32, [(10, 10, 10), (250, 250, 250), (200, 100, 0), (0, 100, 200)]), "exif/exif_6.png", exif=exif.tobytes())

    for rel in made:
        if rel != "webp/animated.webp":
            expected(os.path.join(data, rel), rel, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
