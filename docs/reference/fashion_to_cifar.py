"""Writes Fashion-MNIST in CIFAR-10's binary layout, as issue 11's run-level comparison uses it:
the first N training images split over data_batch_1..5.bin, all 10,000 test images as
test_batch.bin; 28x28 zero-padded to 32x32, grey copied to R, G and B.

    python3 fashion_to_cifar.py /usr/share/datasets/fashion-mnist OUT_DIR [N=5000]

(Fashion-MNIST: `apt-get download dataset-fashion-mnist`, then `dpkg-deb -x`.)
"""

import gzip
import os
import sys

import numpy as np


def idx(path):
    b = gzip.open(path).read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


def records(images, labels):
    padded = np.zeros((len(images), 32, 32), np.uint8)
    padded[:, 2:30, 2:30] = images
    rgb = np.repeat(padded[:, None], 3, axis=1).reshape(len(images), 3072)
    return np.concatenate([labels.astype(np.uint8)[:, None], rgb], axis=1).tobytes()


def main():
    src, out = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    os.makedirs(out, exist_ok=True)
    xtr, ytr = idx(f"{src}/train-images-idx3-ubyte.gz")[:n], idx(f"{src}/train-labels-idx1-ubyte.gz")[:n]
    for i, part in enumerate(np.array_split(np.arange(n), 5)):
        open(f"{out}/data_batch_{i + 1}.bin", "wb").write(records(xtr[part], ytr[part]))
    xte, yte = idx(f"{src}/t10k-images-idx3-ubyte.gz"), idx(f"{src}/t10k-labels-idx1-ubyte.gz")
    open(f"{out}/test_batch.bin", "wb").write(records(xte, yte))


if __name__ == "__main__":
    main()
