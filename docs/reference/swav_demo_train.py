"""SwAV with Un-Mix as the authors' CIFAR script trains it (`UnMix_SwAV/for_CIFAR/
main_swav_unmix.py` with `script_unmix_c10.sh`'s settings; algorithms.md §1.4.3, §1.6C), written
by us, for issue 11's run-level comparison: same CIFAR-format files, settings and seeds as our
`unmix train` on `configs/cifar10/swav[_unmix].toml` scaled to a CPU; kNN monitor as
`moco_demo_train.py`'s.

    python3 swav_demo_train.py DATA_DIR SEED [--unmix] [--epochs 10] [--width 8] [--batch 128]
        [--knn-every 2] [--threads 1] [--out results.jsonl] [--init RECORD]

Settings (the config's): the repo's "resnet18", i.e. bottleneck blocks [2, 2, 2, 2] with the
CIFAR stem, every convolution Kaiming normal (fan-out, ReLU gain; SwAV's `resnet50.py` init loop
covers its stem too), head Linear(feat, 512)-BN-ReLU-Linear(512, 128), L2-normalised, 100
prototypes (`Linear(128, 100, bias=False)`, rows renormalised at the start of every iteration);
T 0.1, eps 0.05, 3 rounds of the old Sinkhorn, the queue off (the script's 120 rounds down to 0
at batch 128); prototypes frozen (`p.grad = None`) for the first 5,005 iterations; LARC (trust
0.001, no clipping, nothing excluded) over SGD (momentum 0.9, wd 1e-6); lr per iteration:
`np.linspace(0, 0.6, 5 epochs of iterations)`, then `0.0006 + (0.6 - 0.0006)(1 + cos(pi t/T))/2`
over the T iterations left. Augmentation in SwAV's order: RandomResizedCrop(32, (0.14, 1)),
flip 0.5, RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), 0.8), RandomGrayscale(0.2), CIFAR
normalisation (no blur). Forward as the code's: one backbone pass over [x0, x1, mixture] (batch
norm sees 3N), `swav_loss` over crops [0, 1]; Un-Mix: crop 0 mixed with its batch flip,
globally (p 0.5) or by a region, lam ~ Beta(1, 1), the loss
`loss_ori + lam * swav_loss([mix, x1]) + (1 - lam) * swav_loss([mix, x1], reverse)`, the reverse
call flipping the mixture's scores only (the code's behaviour; `swav_pytorch.py`). Not
reproduced, as in ours: the script's `ConstantPad2d(1)` before the stem, and AMP. kNN k 200,
t 0.1 on the normalised 128-d projection, bank = the training images. `--init RECORD` starts
from the weights in a `unmix parity-step` record of ours at the same settings and seed
(`run_parity.py --same-init`), so that both sides start alike.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import init_torchvision  # noqa: E402
from moco_demo_train import (add_run_args, crop_then_colour, end_epoch,  # noqa: E402
                             knn_at_random_init, load_initial, seeded_loaders, unmix_mixture,
                             write_result)
from swav_pytorch import LARS, SwAV  # noqa: E402


def lr_schedule(base_lr, final_lr, warmup_epochs, epochs, steps_per_epoch):
    """main_swav.py's per-iteration schedule: linspace warm-up from 0, then cosine to final."""
    warmup = np.linspace(0.0, base_lr, steps_per_epoch * warmup_epochs)
    t = np.arange(steps_per_epoch * (epochs - warmup_epochs))
    cosine = final_lr + 0.5 * (base_lr - final_lr) * (1 + np.cos(np.pi * t / len(t)))
    return np.concatenate((warmup, cosine))


def main():
    a = argparse.ArgumentParser()
    add_run_args(a)
    args = a.parse_args()
    train, memory, test = seeded_loaders(args, crop_then_colour((0.14, 1.0)))

    model_cfg = {"backbone": {"layers": [2, 2, 2, 2], "width": args.width, "stem": "cifar",
                              "block": "bottleneck"},
                 "head": {"kind": "mlp", "hidden_dim": 512, "out_dim": 128, "hidden_bn": True}}
    method = {"prototypes": 100, "temperature": 0.1, "epsilon": 0.05, "sinkhorn_iterations": 3,
              "reverse": "code"}
    model = SwAV(model_cfg, method)
    init_torchvision(model.encoder, stem_default=False)
    if args.init:
        load_initial(args.init, [(model.encoder, "encoder."), (model.prototypes, "prototypes.")])
    schedule = lr_schedule(0.6, 0.0006, 5, args.epochs, len(train))
    freeze_prototypes_steps = 5005
    opt = LARS(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-6, eta=0.001,
               clip_lr=False, exclude_bias_n_norm=False)

    history = knn_at_random_init(model.encoder, memory, test)
    t0, step = time.time(), 0
    for epoch in range(args.epochs):
        model.train()
        total = n = 0
        for x0, x1 in train:
            for g in opt.param_groups:
                g["lr"] = float(schedule[step])
            model.normalize_prototypes()
            mixed, lam = unmix_mixture(x0) if args.unmix else (None, None)
            plain, mixed_loss = model([x0, x1], [], mixed, lam)
            loss = plain if mixed_loss is None else plain + mixed_loss
            opt.zero_grad()
            loss.backward()
            if step < freeze_prototypes_steps:
                model.prototypes.weight.grad = None
            opt.step()
            total += loss.item()
            n += 1
            step += 1
        end_epoch(args, epoch + 1, model.encoder, memory, test, history, total / n, t0)
    write_result(args, "swav", history)


if __name__ == "__main__":
    main()
