"""Random-init kNN of a SimCLR encoder drawn by the reference or loaded from a record of ours,
as drawn or with each tensor's values permuted at random (the same values, so the same
distribution, with any structure within a tensor gone): how much random-init kNN moves between
draws of one distribution (issue 11, item 3).

    python3 shuffled_init_knn.py SEED [--record RECORD] [--shuffle] [--data DATA] [--width 8]

Without `--record` the encoder is the reference's own draw at SEED (`siamese_demo_train.py`'s
SimCLR with the demo stem); with it, the `init/encoder.` tensors of a `unmix parity-step`
record. `--shuffle` permutes each parameter tensor with a generator seeded 1000 + SEED. kNN as
`moco_demo_train.py`'s (k 200, t 0.1), bank = the training images.
"""

import argparse
import os
import sys

import torch
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_into, load_record  # noqa: E402
from moco_demo_train import add_run_args, knn_top1, seeded_loaders  # noqa: E402
from siamese_demo_train import build_model  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("seed", type=int)
    p.add_argument("--record", default=None)
    p.add_argument("--shuffle", action="store_true")
    p.add_argument("--data", default=os.path.join(ROOT, "target", "parity-runs", "fm-cifar"))
    p.add_argument("--width", type=int, default=8)
    a = p.parse_args()
    run = argparse.ArgumentParser()
    add_run_args(run)
    args = run.parse_args([a.data, str(a.seed), "--width", str(a.width)])
    _, memory, test = seeded_loaders(args, transforms.ToTensor())  # seeds torch with SEED
    model, _ = build_model("simclr", a.width)
    if a.record:
        load_into(model.encoder, load_record(a.record)[0], "init/encoder.")
    if a.shuffle:
        g = torch.Generator().manual_seed(1000 + a.seed)
        with torch.no_grad():
            for _, w in model.encoder.named_parameters():
                flat = w.flatten()
                w.copy_(flat[torch.randperm(flat.numel(), generator=g)].view_as(w))
    side = ("ours" if a.record else "reference") + (", shuffled" if a.shuffle else "")
    print(f"seed {a.seed}, {side}: kNN {knn_top1(model.encoder, memory, test, 10):.2f}")


if __name__ == "__main__":
    main()
