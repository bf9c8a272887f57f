"""SimCLR and BYOL as the htdt code base the Un-Mix authors used trains them on CIFAR
(`htdt/self-supervised`: `train.py`, `methods/contrastive.py`, `methods/byol.py`, `cfg.py`;
algorithms.md §1.4.4, §1.6E), with the README's Un-Mix core code, written by us, for issue 11's
run-level comparison: same CIFAR-format files, settings and seeds as our `unmix train` on
`configs/cifar10/{simclr,byol}[_unmix].toml` scaled to a CPU; kNN monitor as
`moco_demo_train.py`'s.

    python3 siamese_demo_train.py {simclr,byol} DATA_DIR SEED [--unmix] [--epochs 10]
        [--width 8] [--batch 128] [--knn-every 2] [--threads 1] [--out results.jsonl]
        [--augmentation htdt|ours] [--init RECORD]

Settings (the configs'): torchvision-layout ResNet-18 with the CIFAR stem (htdt replaces
torchvision's conv1 after its init loop, so it keeps PyTorch's default initialisation, as the
MoCo demo's), head Linear(feat, 1024)-BN-ReLU-Linear(1024, 64); SimCLR adds BatchNorm1d(64)
(`bn_last`) and NT-Xent tau 0.5; BYOL a predictor Linear(64, 1024)-BN-ReLU-Linear(1024, 64) and
the target EMA tau = 1 - (1 - 0.99)(cos(pi k/K) + 1)/2 after each step (k the step, K all
steps; parameters only). Adam lr 3e-3, L2 1e-6 (PyTorch's `weight_decay`), eps 1e-8; linear
warm-up lr * k/500 over the first 500 steps (as ours counts it), then step x0.2 at epochs
E-50 and E-25 (never reached in a 10-epoch run). Augmentation in htdt's order:
RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), 0.8), RandomGrayscale(0.1),
RandomResizedCrop(32, (0.2, 1), bicubic), flip 0.5, CIFAR normalisation (ours resizes crops
bilinearly and jitters after the crop: a documented difference). Un-Mix: view 0 mixed with its
batch flip, globally (p 0.5) or by a region, lam ~ Beta(1, 1), the term
lam * L(x1, mixed) + (1 - lam) * L(x1, flip(mixed)) added to the plain loss
(`simclr_pytorch.py`, `byol_pytorch.py`). kNN k 200, t 0.1 on the normalised 64-d projection
(SimCLR's after `bn_last`; BYOL's online projection), bank = the training images. `--init
RECORD` starts from the weights in a `unmix parity-step` record of ours at the same settings and
seed (`run_parity.py --same-init`), so that both sides start alike.
"""

import argparse
import math
import os
import sys
import time

import torch
from torchvision import transforms

sys.path.insert(0, os.path.dirname(__file__))
from byol_pytorch import BYOL  # noqa: E402
from common import init_torchvision  # noqa: E402
from moco_demo_train import (MEAN, STD, add_run_args, end_epoch, knn_at_random_init,  # noqa: E402
                             load_initial, seeded_loaders, unmix_mixture, write_result)
from simclr_pytorch import SimCLR  # noqa: E402


def build_model(method, width):
    """The configs' SimCLR or BYOL at `width`, drawn as htdt draws it (torchvision's init, the
    replaced CIFAR stem conv keeping PyTorch's default; BYOL's target a copy of the online
    network). Returns the model and the encoder kNN reads."""
    backbone = {"layers": [2, 2, 2, 2], "width": width, "stem": "cifar"}
    head = {"kind": "mlp", "hidden_dim": 1024, "out_dim": 64, "hidden_bn": True}
    if method == "simclr":
        model = SimCLR({"backbone": backbone, "head": dict(head, last_bn=True)},
                       {"temperature": 0.5})
        encoder = model.encoder
    else:
        model = BYOL({"backbone": backbone, "head": head},
                     {"predictor": dict(head), "mix_branch": "both"})
        encoder = model.online
    init_torchvision(encoder, stem_default=True)
    if method == "byol":
        model.target.load_state_dict(model.online.state_dict())
    return model, encoder


def main():
    a = argparse.ArgumentParser()
    a.add_argument("method", choices=["simclr", "byol"])
    add_run_args(a)
    a.add_argument("--augmentation", choices=["htdt", "ours"], default="htdt",
                   help="htdt's order and bicubic crops, or ours: crop (bilinear), flip, "
                        "then jitter and grayscale")
    args = a.parse_args()
    colour = [transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
              transforms.RandomGrayscale(p=0.1)]
    bilinear = args.augmentation == "ours"
    crop = [transforms.RandomResizedCrop(32, scale=(0.2, 1.0), interpolation=(
                transforms.InterpolationMode.BILINEAR if bilinear
                else transforms.InterpolationMode.BICUBIC)),
            transforms.RandomHorizontalFlip(p=0.5)]
    train_t = transforms.Compose((crop + colour if bilinear else colour + crop)
                                 + [transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    train, memory, test = seeded_loaders(args, train_t)

    model, encoder = build_model(args.method, args.width)
    params = (model.parameters() if args.method == "simclr" else
              list(model.online.parameters()) + list(model.predictor.parameters()))
    if args.init:
        load_initial(args.init, [(model.encoder, "encoder.")] if args.method == "simclr" else
                     [(model.online, "online."), (model.predictor, "predictor."),
                      (model.target, "target.")])
    lr, warmup = 3e-3, 500
    opt = torch.optim.Adam(params, lr=lr, weight_decay=1e-6)
    milestones = [args.epochs - 50, args.epochs - 25]
    total_steps = args.epochs * len(train)

    history = knn_at_random_init(encoder, memory, test)
    t0, step = time.time(), 0
    for epoch in range(args.epochs):
        model.train()
        total = n = 0
        for x0, x1 in train:
            if step < warmup:
                rate = lr * step / warmup
            else:
                rate = lr * 0.2 ** sum(1 for m in milestones if 0 < m <= epoch)
            for g in opt.param_groups:
                g["lr"] = rate
            mixed, lam = unmix_mixture(x0) if args.unmix else (None, None)
            plain, mixed_loss = model(x0, x1, mixed, lam)
            loss = plain if mixed_loss is None else plain + mixed_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            if args.method == "byol":
                progress = step / total_steps  # as ours: the step just taken, from 0
                model.momentum_update(1 - (1 - 0.99) * (math.cos(math.pi * progress) + 1) / 2)
            total += loss.item()
            n += 1
            step += 1
        end_epoch(args, epoch + 1, encoder, memory, test, history, total / n, t0)
    write_result(args, args.method, history)


if __name__ == "__main__":
    main()
