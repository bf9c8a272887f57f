"""Times each distinct layer of a ResNet-18 (CIFAR stem, `--width`) alone at its shape in the
network, forward and backward, in PyTorch eager on the CPU: the list `unmix bench --layers`
times (`crates/unmix-train/src/bin/unmix/bench_layers.rs`), with the same names. Each layer runs
`--steps` times after one warm-up; the input requires a gradient except the stem's (the image);
the backward starts from the sum of the output, as ours does.

    python3 docs/reference/bench_resnet_layers.py [--width 64] [--batch 64] [--steps 3]

Prints one markdown row per layer: | layer | forward ms | backward ms |, and for a convolution
two more cells: its backward with only the input requiring a gradient and with only the weight
(`–` for the stem's input, the image), as `time_conv_backward_split` in
`crates/unmix-train/src/run/resnet_bench.rs` times them.
"""

import sys
import time

import torch
import torch.nn as nn

from common import SplitBatchNorm, arg


def resnet18_layers(width):
    """(name, build) for each distinct layer, in the order of bench_layers.rs's list."""
    layers = []

    def add(name, build):
        if name not in (n for n, _ in layers):
            layers.append((name, build))

    def conv(cin, cout, k, stride, side):
        add(f"conv {k}x{k} {cin}->{cout} /{stride} @{side}",
            lambda: (nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), cin, side))

    def bn(c, side):
        add(f"batchnorm {c} @{side}", lambda: (SplitBatchNorm(c, 1), c, side))

    def relu(c, side):
        add(f"relu {c} @{side}", lambda: (nn.ReLU(), c, side))

    def residual(c, side):
        add(f"add {c} @{side}", lambda: (Add(), c, side))

    conv(3, width, 3, 1, 32)
    bn(width, 32)
    relu(width, 32)
    cin, side = width, 32
    for stage in range(4):
        c = width << stage
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            out = side // stride
            conv(cin, c, 3, stride, side)
            bn(c, out)
            relu(c, out)
            conv(c, c, 3, 1, out)
            bn(c, out)
            if stride != 1 or cin != c:
                conv(cin, c, 1, stride, side)
                bn(c, out)
            residual(c, out)
            relu(c, out)
            cin, side = c, out
    add(f"pool+linear+loss {cin}->128 @{side}", lambda: (PoolHeadLoss(cin), cin, side))
    return layers


class Add(nn.Module):
    """The residual sum with a second input that also requires a gradient."""

    def __init__(self):
        super().__init__()
        self.other = None

    def forward(self, x):
        if self.other is None:
            self.other = torch.randn(x.shape, requires_grad=True)
        return x + self.other


class PoolHeadLoss(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc = nn.Linear(c, 128)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3))).pow(2).mean()


def main(args):
    width, batch, steps = arg(args, "--width", 64), arg(args, "--batch", 64), arg(args, "--steps", 3)
    torch.manual_seed(0)
    for name, build in resnet18_layers(width):
        module, c, side = build()
        module.train()
        x = torch.randn(batch, c, side, side, requires_grad=c != 3)
        fwd = bwd = 0.0
        for i in range(steps + 1):
            t0 = time.perf_counter()
            y = module(x)
            t1 = time.perf_counter()
            y.sum().backward()
            t2 = time.perf_counter()
            x.grad = None
            module.zero_grad(set_to_none=True)
            if i > 0:
                fwd, bwd = fwd + t1 - t0, bwd + t2 - t1
        n = max(steps, 1)
        row = f"| {name} | {1e3 * fwd / n:.3f} | {1e3 * bwd / n:.3f} |"
        if isinstance(module, nn.Conv2d):
            input_grad = "–" if c == 3 else f"{1e3 * backward_alone(module, x, steps, 'input'):.3f}"
            weight_grad = backward_alone(module, x, steps, "weight")
            row += f" {input_grad} | {1e3 * weight_grad:.3f} |"
        print(row)


def backward_alone(conv, x, steps, which):
    """Mean seconds of the convolution's backward with only `which` ("input" or "weight")
    requiring a gradient."""
    x = x.detach().requires_grad_(which == "input")
    conv.weight.requires_grad_(which == "weight")
    total = 0.0
    for i in range(steps + 1):
        y = conv(x)
        t0 = time.perf_counter()
        y.sum().backward()
        if i > 0:
            total += time.perf_counter() - t0
        x.grad = None
        conv.zero_grad(set_to_none=True)
    conv.weight.requires_grad_(True)
    return total / max(steps, 1)


if __name__ == "__main__":
    main(sys.argv[1:])
