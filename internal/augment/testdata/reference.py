"""Reference outputs for xcept's Go augmentation, from Keras and scipy.

usage: reference.py CASES.json OUT.json

CASES.json is a list of cases {h, w, pixels (flat HWC list), fill, cval,
reference, t: {theta, tx, ty, shear, zx, zy, flip_h, flip_v}}. For each case
OUT.json gets the transformed image as a flat list of floats:
  reference "keras": tf_keras ImageDataGenerator(fill_mode, cval)
      .apply_transform with Keras's parameters theta, tx, ty, shear, zx, zy,
      flip_horizontal, flip_vertical (the Go Transform's fields one to one:
      Keras's tx is the horizontal offset, as apply_affine_transform uses it).
  reference "scipy": scipy.ndimage.affine_transform with the same
      composition built here about the true image centre, the way the Go code
      departs from Keras on non-square images.
Run by augment_test.go.
"""
import json
import sys

import numpy as np
from scipy import ndimage
from tf_keras.preprocessing.image import ImageDataGenerator


def keras(img, case):
    t = case["t"]
    gen = ImageDataGenerator(fill_mode=case["fill"], cval=float(case["cval"]))
    return gen.apply_transform(img, {
        "theta": t["theta"], "tx": t["tx"], "ty": t["ty"], "shear": t["shear"],
        "zx": t["zx"], "zy": t["zy"],
        "flip_horizontal": t["flip_h"], "flip_vertical": t["flip_v"],
    })


def scipy_true_centre(img, case):
    t, h, w = case["t"], case["h"], case["w"]
    th, sh = np.deg2rad(t["theta"]), np.deg2rad(t["shear"])
    # Output (x, y, 1) to input (x, y, 1); x is the column.
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    shift = np.array([[1, 0, t["tx"]], [0, 1, t["ty"]], [0, 0, 1]])
    shear = np.array([[1, -np.sin(sh), 0], [0, np.cos(sh), 0], [0, 0, 1]])
    zoom = np.diag([t["zx"], t["zy"], 1.0])
    cx, cy = (w - 1) / 2, (h - 1) / 2
    centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]])
    uncentre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    m = centre @ rot @ shift @ shear @ zoom @ uncentre
    # ndimage indexes (row, col): swap x and y in and out.
    p = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    m = p @ m @ p
    out = np.stack([
        ndimage.affine_transform(img[..., c], m[:2, :2], m[:2, 2], order=1,
                                 mode=case["fill"], cval=float(case["cval"]))
        for c in range(img.shape[-1])], axis=-1)
    if t["flip_h"]:
        out = out[:, ::-1]
    if t["flip_v"]:
        out = out[::-1]
    return out


def main(cases_json, out_json):
    with open(cases_json) as f:
        cases = json.load(f)
    outs = []
    for case in cases:
        img = np.array(case["pixels"], dtype=np.float32).reshape(case["h"], case["w"], 3)
        ref = keras if case["reference"] == "keras" else scipy_true_centre
        outs.append(np.asarray(ref(img, case), dtype=np.float64).ravel().tolist())
    with open(out_json, "w") as f:
        json.dump(outs, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
