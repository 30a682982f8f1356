"""Plants known problems into an exported image folder for make bench-audit
(scripts/audit/bench_audit.sh): flipped labels and near-duplicate copies.

    plant.py --images DIR --out DIR [--flip 0.05] [--copies 25] [--seed 1]

Copies DIR ({train,val,test}/CLASS/*.png, as bench_real_data.py exports) to
OUT, then
  * moves a seeded random --flip share of the training images to another
    class folder, chosen at random (a flipped label);
  * plants, for --copies test images and --copies validation images, four
    near-duplicate copies each in the training split under the source's own
    class: re-encoded (JPEG quality 70), resized (to 75% of the side),
    cropped (the central 90%) and recoloured (a sepia tint, brightness +10%,
    contrast -10%) — leakage across splits that prepare's exact check misses.
OUT/truth.json lists the flipped files (their new paths) and every copy with
its source, relative to OUT, as prepare names them.
"""

import argparse
import io
import json
import os
import shutil

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

KINDS = ("jpeg", "resized", "cropped", "recoloured")


def variant(img, kind):
    img = img.convert("RGB")
    w, h = img.size
    if kind == "jpeg":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=70)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), "jpg"
    if kind == "resized":
        return img.resize((max(1, round(w * 0.75)), max(1, round(h * 0.75))), Image.BICUBIC), "png"
    if kind == "cropped":
        dw, dh = round(w * 0.05), round(h * 0.05)
        return img.crop((dw, dh, w - dw, h - dh)), "png"
    tinted = ImageOps.colorize(img.convert("L"), black=(30, 18, 6), white=(255, 240, 200))
    tinted = ImageEnhance.Brightness(tinted).enhance(1.1)
    return ImageEnhance.Contrast(tinted).enhance(0.9), "png"


def files(root, split):
    out = []
    for c in sorted(os.listdir(os.path.join(root, split))):
        for f in sorted(os.listdir(os.path.join(root, split, c))):
            out.append((c, f))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--flip", type=float, default=0.05)
    ap.add_argument("--copies", type=int, default=25)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    shutil.copytree(a.images, a.out)
    classes = sorted(os.listdir(os.path.join(a.out, "train")))
    train = files(a.out, "train")
    flipped = []
    for i in sorted(rng.choice(len(train), size=round(a.flip * len(train)), replace=False)):
        c, f = train[i]
        to = classes[(classes.index(c) + 1 + rng.integers(len(classes) - 1)) % len(classes)]
        dst = f"train/{to}/flip-{c}-{f}"
        os.rename(os.path.join(a.out, "train", c, f), os.path.join(a.out, dst))
        flipped.append({"file": dst, "true": c, "given": to})
    copies = []
    for split in ("test", "val"):
        pool = files(a.out, split)
        for i in sorted(rng.choice(len(pool), size=a.copies, replace=False)):
            c, f = pool[i]
            src = f"{split}/{c}/{f}"
            img = Image.open(os.path.join(a.out, src))
            for kind in KINDS:
                v, ext = variant(img, kind)
                dst = f"train/{c}/copy-{kind}-{split}-{os.path.splitext(f)[0]}.{ext}"
                v.save(os.path.join(a.out, dst))
                copies.append({"copy": dst, "source": src, "kind": kind})
    with open(os.path.join(a.out, "truth.json"), "w") as fh:
        json.dump({"flipped": flipped, "copies": copies, "flip": a.flip, "seed": a.seed}, fh, indent=1)


if __name__ == "__main__":
    main()
