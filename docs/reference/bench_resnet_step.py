"""Times the step `unmix bench` times (without `--config`), in PyTorch eager on the CPU: a
ResNet-18 (CIFAR stem, `--width`) with a 128-d linear head, on one batch of random 32x32 images,
loss = mean of the squared outputs, then plain SGD at lr 0.01 (Burn's `SgdConfig::new()`: no
momentum, no weight decay). Each phase (forward and loss, backward, update) is timed on its own,
after one warm-up step, as ours does.

    python3 docs/reference/bench_resnet_step.py [--width 64] [--batch 64] [--steps 3]

Prints one markdown row with the columns of `unmix bench`:
| pytorch eager (threads) | model | batch | forward s | backward s | update s | s/step | images/s |
`unmix bench --pytorch` runs it beside ours and prints the ratio.
"""

import sys
import time

import torch

from common import Encoder, arg


def main(args):
    width, batch, steps = arg(args, "--width", 64), arg(args, "--batch", 64), arg(args, "--steps", 3)
    torch.manual_seed(0)
    model = Encoder({
        "backbone": {"width": width, "stem": "cifar", "layers": [2, 2, 2, 2]},
        "head": {"kind": "linear", "out_dim": 128},
    }).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(batch, 3, 32, 32)
    forward = backward = update = 0.0
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = model(x).pow(2).mean()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i > 0:
            forward, backward, update = forward + t1 - t0, backward + t2 - t1, update + t3 - t2
    n = max(steps, 1)
    forward, backward, update = forward / n, backward / n, update / n
    total = forward + backward + update
    print(f"| pytorch eager ({torch.get_num_threads()} threads) | ResNet-18 width {width}, 32×32 | {batch} "
          f"| {forward:.4f} | {backward:.4f} | {update:.4f} | {total:.4f} | {batch / total:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
