#!/usr/bin/env python3
"""Writes Fashion-MNIST images as PNG files with their true labels beside them,
for classifying held-back images of known class (scripts/demo.sh's last step).

    python3 scripts/fashion_mnist_images.py OUT --split test --per-class 10 [--skip-per-class 0]

OUT/<split>_<index>.png: the 28x28 greyscale image as stored (fipsd resizes it
as any image); OUT/truth.csv: file,label (the kit's class names, FashionMNIST.names).
Needs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
"""
import argparse
import csv
import gzip
import os

from PIL import Image

SRC = "/usr/share/datasets/fashion-mnist"
# The class names in label order, as Sources/Host/FipsData/FashionMNIST.swift names them.
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def idx(name):
    with gzip.open(os.path.join(SRC, name), "rb") as f:
        b = f.read()
    ndim = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return b[4 + 4 * ndim:], dims


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--split", choices=sorted(FILES), default="test")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--skip-per-class", type=int, default=0, help="images per class to pass over first")
    a = ap.parse_args()
    images, (n, h, w) = idx(FILES[a.split][0])
    labels, _ = idx(FILES[a.split][1])
    os.makedirs(a.out, exist_ok=True)
    seen = [0] * len(NAMES)
    rows = []
    for i in range(n):   # the first of each class in file order, as fips head --per-class takes them
        c = labels[i]
        seen[c] += 1
        if seen[c] <= a.skip_per_class or seen[c] > a.skip_per_class + a.per_class:
            continue
        name = f"{a.split}_{i:05d}.png"
        Image.frombytes("L", (w, h), images[i * h * w:(i + 1) * h * w]).save(os.path.join(a.out, name))
        rows.append((name, NAMES[c]))
    with open(os.path.join(a.out, "truth.csv"), "w", newline="") as f:
        csv.writer(f).writerows([("file", "label")] + rows)
    print(f"fashion_mnist_images: {len(rows)} {a.split} images ({a.per_class} per class) in {a.out}")


if __name__ == "__main__":
    main()
