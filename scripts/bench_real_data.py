"""Real labelled image datasets for `make bench-real` (scripts/bench_real.sh),
taken only from what installed packages ship: nothing is downloaded.

    bench_real_data.py export --dataset fashion|digits --out DIR
        [--train N] [--val N] [--test N] [--seed S]
        writes DIR/{train,val,test}/CLASS/NNNNNN.png (grayscale PNGs at the
        data's own resolution) and DIR/source.json (where the images came
        from, how many per split). Each split is drawn class-balanced, with a
        seeded permutation, from the package's own files.
    bench_real_data.py classical --data DIR [--model svc|logreg]
        fits scikit-learn on the raw pixels of DIR/train (SVC with the RBF
        kernel and scikit-learn's defaults, or logistic regression), picks
        nothing on test, and prints one JSON line {"test_accuracy": ...}.

Datasets:
  fashion  Fashion-MNIST (Zalando product photos, 28×28 grayscale, 10 classes),
           Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist.
           train/val come from its training file, test from its t10k file.
  digits   scikit-learn's bundled digits (UCI, 8×8, 17 grey levels, 10 classes,
           1,797 images), shipped inside scikit-learn.

Exit codes: 0 done, 2 bad flags, 4 the dataset's package is not installed or a
split asks for more images than a class has.
"""

import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]


class DataError(Exception):
    """Missing package or files, or too few images: exit 4."""


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols)
    if magic == 2049:
        return np.frombuffer(data, np.uint8, offset=8)
    raise DataError(f"{path}: not an IDX image or label file (magic {magic})")


def load_fashion():
    """(pools, classes, source): pools maps 'trainval' and 'test' to (images, labels)."""
    files = {k: os.path.join(FASHION_DIR, f"{k}-{kind}-idx{d}-ubyte.gz") for k in ("train", "t10k") for kind, d in (("images", 3),)}
    need = [os.path.join(FASHION_DIR, f"{k}-{kind}-idx{d}-ubyte.gz") for k in ("train", "t10k") for kind, d in (("images", 3), ("labels", 1))]
    missing = [p for p in need if not os.path.isfile(p)]
    if missing:
        raise DataError(f"{missing[0]} not found: install Debian's package with `apt-get install dataset-fashion-mnist`")
    del files
    pools = {}
    for key, pool in (("train", "trainval"), ("t10k", "test")):
        images = read_idx(os.path.join(FASHION_DIR, f"{key}-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(FASHION_DIR, f"{key}-labels-idx1-ubyte.gz"))
        pools[pool] = (images, labels.astype(np.int64))
    return pools, FASHION_CLASSES, "Debian dataset-fashion-mnist (" + FASHION_DIR + ")"


def load_digits():
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    # 0..16 grey levels, ink high: scaled to 0..255 and inverted to dark ink
    # on white paper, as the scanned forms were.
    images = (255 - np.round(d.images * (255 / 16))).astype(np.uint8)
    import sklearn

    return {"all": (images, d.target.astype(np.int64))}, [str(c) for c in d.target_names], f"scikit-learn {sklearn.__version__} load_digits (bundled)"


def balanced(labels, index, n, classes, rng, what):
    """n indices of index (a subset of positions), n // classes per class
    (the remainder to the first classes), drawn by rng."""
    per = [n // classes + (1 if c < n % classes else 0) for c in range(classes)]
    picked = []
    for c in range(classes):
        pos = index[labels[index] == c]
        if len(pos) < per[c]:
            raise DataError(f"{what}: class {c} has {len(pos)} images left, the split needs {per[c]}: ask for fewer")
        picked.append(rng.permutation(pos)[: per[c]])
    return np.concatenate(picked)


def export(args):
    from PIL import Image

    if args.dataset == "fashion":
        pools, classes, source = load_fashion()
    else:
        pools, classes, source = load_digits()
    rng = np.random.default_rng(args.seed)
    k = len(classes)
    splits = {}
    if "all" in pools:
        images, labels = pools["all"]
        left = np.arange(len(labels))
        for split, n in (("test", args.test), ("train", args.train), ("val", args.val)):
            idx = balanced(labels, left, n, k, rng, f"{args.dataset} {split}")
            left = np.setdiff1d(left, idx)
            splits[split] = (images, labels, idx)
    else:
        images, labels = pools["trainval"]
        left = np.arange(len(labels))
        for split, n in (("train", args.train), ("val", args.val)):
            idx = balanced(labels, left, n, k, rng, f"{args.dataset} {split}")
            left = np.setdiff1d(left, idx)
            splits[split] = (images, labels, idx)
        timages, tlabels = pools["test"]
        splits["test"] = (timages, tlabels, balanced(tlabels, np.arange(len(tlabels)), args.test, k, rng, f"{args.dataset} test"))
    tmp = args.out + ".tmp"
    if os.path.exists(tmp):
        import shutil

        shutil.rmtree(tmp)
    for split, (imgs, labs, idx) in splits.items():
        for c in classes:
            os.makedirs(os.path.join(tmp, split, c), exist_ok=True)
        for i in idx:
            Image.fromarray(imgs[i], mode="L").save(os.path.join(tmp, split, classes[labs[i]], f"{i:06d}.png"))
    side = int(next(iter(splits.values()))[0].shape[1])
    with open(os.path.join(tmp, "source.json"), "w") as f:
        json.dump({"dataset": args.dataset, "source": source, "classes": classes, "side": side, "seed": args.seed, "splits": {s: len(v[2]) for s, v in splits.items()}}, f, indent=1)
    if os.path.exists(args.out):
        import shutil

        shutil.rmtree(args.out)
    os.rename(tmp, args.out)


def read_split(folder, classes):
    from PIL import Image

    xs, ys = [], []
    for label, c in enumerate(classes):
        d = os.path.join(folder, c)
        for name in sorted(os.listdir(d)):
            xs.append(np.asarray(Image.open(os.path.join(d, name)).convert("L"), np.float32).ravel() / 255.0)
            ys.append(label)
    return np.stack(xs), np.array(ys)


def classical(args):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    with open(os.path.join(args.data, "source.json")) as f:
        classes = json.load(f)["classes"]
    xtr, ytr = read_split(os.path.join(args.data, "train"), classes)
    xte, yte = read_split(os.path.join(args.data, "test"), classes)
    model = SVC() if args.model == "svc" else LogisticRegression(max_iter=2000)
    model.fit(xtr, ytr)
    acc = float((model.predict(xte) == yte).mean())
    print(json.dumps({"model": args.model, "train_images": len(ytr), "test_images": len(yte), "test_accuracy": acc}), flush=True)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export")
    e.add_argument("--dataset", choices=("fashion", "digits"), required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--train", type=int, default=1000)
    e.add_argument("--val", type=int, default=200)
    e.add_argument("--test", type=int, default=1000)
    e.add_argument("--seed", type=int, default=42)
    c = sub.add_parser("classical")
    c.add_argument("--data", required=True)
    c.add_argument("--model", choices=("svc", "logreg"), default="svc")
    args = p.parse_args(argv)
    if args.command == "export" and min(args.train, args.val, args.test) < len(FASHION_CLASSES):
        p.error("--train, --val and --test need at least one image per class (10)")
    try:
        export(args) if args.command == "export" else classical(args)
    except DataError as e:
        print(f"bench_real_data: {e}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
