"""The authors' MoCo CIFAR demo (`unmix_c10.py`) as a training run, written by us from its
behaviour (algorithms.md §1.4.1, §1.6A), for issue 11's run-level comparison: same CIFAR-format
files, same settings and seeds as our `unmix train`, kNN monitor as the demo's `test()`.

    python3 moco_demo_train.py DATA_DIR SEED [--unmix] [--epochs 10] [--width 8] [--batch 128]
        [--knn-every 2] [--threads 1] [--out results.jsonl] [--init RECORD]

Settings as the demo: torchvision-layout ResNet-18 (CIFAR stem, the stem convolution keeping
PyTorch's default initialisation because the demo replaces it after torchvision's init loop),
linear head to 128, split BN 8, shuffle-BN, symmetric loss, K 4096, m 0.99, T 0.1, SGD lr 0.06
momentum 0.9 wd 5e-4, cosine per epoch counted from 1, Un-Mix p 0.5 / beta 1; augmentation
RandomResizedCrop(32), flip, ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale 0.2, CIFAR
normalisation; kNN k 200, t 0.1 on the normalised 128-d output, bank = train set (test
transform). `--init RECORD` starts from the weights (and queue) in a `unmix parity-step` record
of ours at the same settings and seed, so that both sides start alike.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(__file__))
from common import init_torchvision, load_into, load_record  # noqa: E402
from moco_pytorch import MoCo  # noqa: E402

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]


def read_cifar10(paths):
    data = b"".join(open(p, "rb").read() for p in paths)
    rec = np.frombuffer(data, np.uint8).reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), rec[:, 0].astype(np.int64)


class Images(torch.utils.data.Dataset):
    def __init__(self, x, y, transform, pair):
        self.x, self.y, self.t, self.pair = x, y, transform, pair

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = Image.fromarray(self.x[i])
        if self.pair:
            return self.t(img), self.t(img)
        return self.t(img), self.y[i]


def rand_bbox(size, lam):
    # utils.py of the Un-Mix repository (its W/H naming swapped, as there).
    W, H = size[2], size[3]
    cut_rat = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(W * cut_rat), int(H * cut_rat)
    cx, cy = np.random.randint(W), np.random.randint(H)
    b1, c1 = np.clip(cx - cut_w // 2, 0, W), np.clip(cy - cut_h // 2, 0, H)
    b2, c2 = np.clip(cx + cut_w // 2, 0, W), np.clip(cy + cut_h // 2, 0, H)
    return b1, c1, b2, c2


@torch.no_grad()
def knn_top1(encoder, train_loader, test_loader, classes, k=200, t=0.1):
    encoder.eval()
    bank, labels = [], []
    for x, y in train_loader:
        bank.append(F.normalize(encoder(x), dim=1))
        labels.append(y)
    bank, labels = torch.cat(bank).t(), torch.cat(labels)
    correct = total = 0
    for x, y in test_loader:
        f = F.normalize(encoder(x), dim=1)
        sim = f @ bank
        w, idx = sim.topk(k, dim=-1)
        nl = labels[idx]
        w = (w / t).exp()
        one_hot = torch.zeros(len(x) * k, classes).scatter_(1, nl.view(-1, 1), 1.0)
        scores = (one_hot.view(len(x), -1, classes) * w.unsqueeze(-1)).sum(1)
        correct += (scores.argmax(1) == y).sum().item()
        total += len(x)
    encoder.train()
    return 100.0 * correct / total


def add_run_args(a):
    """The arguments every run script of the comparison takes."""
    a.add_argument("data")
    a.add_argument("seed", type=int)
    a.add_argument("--unmix", action="store_true")
    a.add_argument("--epochs", type=int, default=10)
    a.add_argument("--width", type=int, default=8)
    a.add_argument("--batch", type=int, default=128)
    a.add_argument("--knn-every", type=int, default=2)
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--out", default=None)
    a.add_argument("--init", default=None, metavar="RECORD",
                   help="start from the `init/` tensors of a `unmix parity-step` record (the "
                        "weights ours starts from at the same settings and seed)")


def load_initial(path, modules):
    """Copies the `init/` tensors of our `unmix parity-step` record at `path` into `modules`
    ((module, prefix) pairs, e.g. `(model.encoder, "encoder.")`); returns the record."""
    record, _ = load_record(path)
    for module, prefix in modules:
        load_into(module, record, f"init/{prefix}")
    return record


def seeded_loaders(args, train_t):
    """Threads and seeds set, then the loaders: two views of each training image per batch
    (dropping the last partial batch), and the kNN bank (training images) and test images with
    the test transform."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    xtr, ytr = read_cifar10([f"{args.data}/data_batch_{i}.bin" for i in range(1, 6)])
    xte, yte = read_cifar10([f"{args.data}/test_batch.bin"])
    test_t = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    train = torch.utils.data.DataLoader(Images(xtr, ytr, train_t, True), batch_size=args.batch,
                                        shuffle=True, drop_last=True)
    memory = torch.utils.data.DataLoader(Images(xtr, ytr, test_t, False), batch_size=512)
    test = torch.utils.data.DataLoader(Images(xte, yte, test_t, False), batch_size=512)
    return train, memory, test


def crop_then_colour(scale, float_aug=False):
    """The MoCo demo's and the SwAV CIFAR script's augmentation, in their order:
    RandomResizedCrop(32, scale), flip, ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2,
    CIFAR normalisation. The demo works on 8-bit PIL images (each step rounds to 1/255);
    `float_aug` runs the same steps on float tensors instead, as ours does (a diagnostic, not
    the demo)."""
    steps = [
        transforms.RandomResizedCrop(32, scale=scale),
        transforms.RandomHorizontalFlip(p=0.5),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2)]
    if float_aug:
        return transforms.Compose([transforms.ToTensor()] + steps + [transforms.Normalize(MEAN, STD)])
    return transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def knn_at_random_init(encoder, memory, test):
    """The kNN history's first entry, epoch 0 (printed)."""
    history = [(0, knn_top1(encoder, memory, test, 10))]
    print(f"epoch 0: kNN {history[-1][1]:.2f}", flush=True)
    return history


def end_epoch(args, epoch, encoder, memory, test, history, loss, t0):
    """After epoch `epoch` (counted from 1): the kNN monitor every `--knn-every` epochs and after
    the last (appended to `history`), and the epoch's line."""
    knn = None
    if epoch % args.knn_every == 0 or epoch == args.epochs:
        knn = knn_top1(encoder, memory, test, 10)
        history.append((epoch, knn))
    shown = "-" if knn is None else f"{knn:.2f}"
    print(f"epoch {epoch}: loss {loss:.4f} kNN {shown} ({time.time() - t0:.0f} s)", flush=True)


def write_result(args, method, history):
    """Appends the run's kNN history to `--out` (one JSON line), if given."""
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps({"side": "reference", "method": method, "unmix": args.unmix,
                                "seed": args.seed, "width": args.width, "epochs": args.epochs,
                                "knn": history}) + "\n")


def unmix_mixture(x0):
    """The demo's / README's mixture of view 0 with its batch flip: (mixed, lam), globally with
    p 0.5, else a region (lam then the share of the anchor left)."""
    lam = np.random.beta(1.0, 1.0)
    rev = torch.flip(x0, (0,))
    if np.random.rand() < 0.5:
        return lam * x0 + (1 - lam) * rev, lam
    b1, c1, b2, c2 = rand_bbox(x0.size(), lam)
    mixed = x0.clone()
    mixed[:, :, b1:b2, c1:c2] = rev[:, :, b1:b2, c1:c2]
    return mixed, 1 - ((b2 - b1) * (c2 - c1) / (x0.size(-1) * x0.size(-2)))


def main():
    a = argparse.ArgumentParser()
    add_run_args(a)
    a.add_argument("--float-aug", action="store_true",
                   help="augment float tensors, not 8-bit PIL images (diagnostic: ours' arithmetic)")
    args = a.parse_args()
    train, memory, test = seeded_loaders(args, crop_then_colour((0.08, 1.0), args.float_aug))

    model_cfg = {"backbone": {"layers": [2, 2, 2, 2], "width": args.width, "stem": "cifar", "bn_splits": 8},
                 "head": {"kind": "linear", "out_dim": 128}}
    method = {"queue_len": 4096, "momentum": 0.99, "temperature": 0.1, "symmetric": True, "shuffle_bn": True}
    model = MoCo(model_cfg, method)
    init_torchvision(model.encoder_q, stem_default=True)
    model.encoder_k.load_state_dict(model.encoder_q.state_dict())
    if args.init:
        record = load_initial(args.init, [(model.encoder_q, "encoder_q."),
                                          (model.encoder_k, "encoder_k.")])
        # Ours keeps the queue newest-first `[K, C]`; the demo's ring buffer `[C, K]` is
        # overwritten from column 0, so our row K-1-j goes to column j (as parity.py's `moco`).
        model.queue.copy_(record["init/queue"].flip(0).t())
    lr = 0.06
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=5e-4, momentum=0.9)

    history = knn_at_random_init(model.encoder_q, memory, test)
    t0 = time.time()
    for epoch in range(1, args.epochs + 1):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * epoch / args.epochs))
        model.train()
        total = n = 0
        for im1, im2 in train:
            mixed, lam = unmix_mixture(im1) if args.unmix else (None, None)
            model.momentum_update_key_encoder(model.m)
            perm1, perm2 = torch.randperm(len(im1)), torch.randperm(len(im1))
            plain, mixed_loss = model(im1, im2, perm1, perm2, mixed, lam)
            loss = plain if mixed_loss is None else plain + mixed_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            n += 1
        end_epoch(args, epoch, model.encoder_q, memory, test, history, total / n, t0)
    write_result(args, "moco", history)


if __name__ == "__main__":
    main()
