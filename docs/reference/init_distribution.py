"""Each initial tensor of ours against the reference's initialisation of the same architecture,
as whole distributions: a two-sample Kolmogorov–Smirnov statistic per tensor, beside the
standard deviations (issue 11, item 3). `parity.py`'s `init_statistics` compares means and
standard deviations against the initialisation the *config* asks for; this compares against what
a reference *script* builds, so it also finds a config that asks for the wrong thing.

    python3 docs/reference/init_distribution.py RECORD.safetensors [--stem default|kaiming]

RECORD is what `unmix parity-step` writes (its `init/` tensors and the resolved config).
`--stem default` builds the reference as the Un-Mix CIFAR demo and htdt's `get_model` do
(torchvision's init loop, then a new stem convolution that keeps PyTorch's default);
`--stem kaiming` as torchvision alone; without it, as the record's config says.

A tensor is flagged when its statistic D exceeds the critical value at α = 0.01 (asymptotic:
1.63·sqrt(2/n) for two samples of n), or when the log-ratio of the standard deviations is more
than 5 of its standard errors from 0 (`common.spread_z`, as `init_statistics` checks it): at a
few hundred draws the KS test alone misses a 1.5× difference in scale. Batch-norm weights and
biases (exactly 1 and 0 on both sides) and running statistics are left out. `null` is the mean D between two of the reference's
own draws (other seeds), the scale of D when nothing differs.
"""

import argparse
import os
import sys
import tomllib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import (Encoder, init_as_config, load_record, spread_z, torch_name,  # noqa: E402
                    trained_encoder_prefix)


def ks_statistic(a, b):
    """The largest distance between the two samples' empirical distribution functions."""
    a, b = np.sort(a), np.sort(b)
    both = np.concatenate([a, b])
    fa = np.searchsorted(a, both, side="right") / a.size
    fb = np.searchsorted(b, both, side="right") / b.size
    return float(np.abs(fa - fb).max())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("record")
    p.add_argument("--stem", choices=["default", "kaiming"])
    a = p.parse_args()
    record, meta = load_record(a.record)
    cfg = tomllib.loads(meta["config"])
    backbone = dict(cfg["model"]["backbone"])
    if a.stem:
        backbone["stem_init"] = "pytorch_default" if a.stem == "default" else "kaiming_normal"
    prefix = trained_encoder_prefix(record)
    draws = []
    for seed in range(5):
        torch.manual_seed(1000 + seed)
        ref = Encoder(cfg["model"])
        init_as_config(ref, backbone)
        draws.append(ref.state_dict())
    print(f"reference: convolutions {backbone.get('conv_init', 'kaiming_normal')}, "
          f"stem {backbone.get('stem_init') or 'the same'}")
    print(f"{'tensor':40s} {'n':>6s} {'D':>6s} {'null':>6s} {'crit':>6s} {'sd ours':>8s} {'sd ref':>8s} {'z sd':>5s}")
    flagged = 0
    for name, ours in sorted(record.items()):
        if (not name.startswith(prefix) or "running_" in name or name.endswith(".gamma")
                or name.endswith(".beta")):
            continue
        key = torch_name(name[len(prefix):])
        o = ours.numpy().ravel()
        refs = [d[key].numpy().ravel() for d in draws]
        d = ks_statistic(o, refs[0])
        null = np.mean([ks_statistic(refs[i], refs[i + 1]) for i in range(1, len(refs) - 1)])
        crit = 1.63 * np.sqrt(2 / o.size)
        z = spread_z(ours.double(), draws[0][key].double())
        flag = d > crit or z > 5
        flagged += flag
        print(f"{key:40s} {o.size:6d} {d:6.3f} {null:6.3f} {crit:6.3f} {o.std():8.4f} "
              f"{refs[0].std():8.4f} {z:5.1f}{'  differs' if flag else ''}")
    print(f"{flagged} tensor(s) differ")


if __name__ == "__main__":
    main()
