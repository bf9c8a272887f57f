"""Contrastive Multiview Coding as `szq0214/CMC_with_Image_Mixture` trains it (`train_CMC.py`,
`models/resnet.py::ResNetV1`, `NCE/NCEAverage.py::NCEAverage`, `NCE/NCECriterion.py`;
algorithms.md §2.4), written by us, with Un-Mix on memory-bank methods as docs/methods.md
defines it:

- `feat_l, feat_ab = model(x)`: `l, ab = torch.split(x, [1, 2], dim=1)`, one encoder per part
  (`l_to_ab`, `ab_to_l`), each ending with `l2norm`;
- `NCEAverage.forward(l, ab, index)`: the rows `idx` `[B, K+1]` (own id in column 0, `K` uniform
  draws; given here, as recorded by ours), `out_ab = bmm(memory_l[idx], ab)`,
  `out_l = bmm(memory_ab[idx], l)`; NCE: `exp(out/T)`, `Z_l = out_l.mean()·N` and
  `Z_ab = out_ab.mean()·N` if unset (the first batch), `out / Z`; softmax: `out / T`;
- `loss = NCECriterion(out_l) + NCECriterion(out_ab)` (or `NCESoftmaxLoss` each);
- `memory_l[y] ← normalize(m·memory_l[y] + (1−m)·l)`, `memory_ab` likewise with `ab` (inside
  `forward`, after the scores);
- Un-Mix: the mixture's two embeddings through the same two losses, `λ·L(idx) + (1−λ)·L(idx with
  column 0 flipped over the batch)`.
"""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import Encoder
from insdis_pytorch import memory_loss, memory_scores


class Cmc(nn.Module):
    def __init__(self, model_cfg, method):
        super().__init__()
        self.first = method.get("first_channels", 1)
        channels = model_cfg["backbone"].get("in_channels", 3)

        def on(c):
            cfg = copy.deepcopy(model_cfg)
            cfg["backbone"]["in_channels"] = c
            return Encoder(cfg)

        self.encoder_l = on(self.first)
        self.encoder_ab = on(channels - self.first)
        self.t = method.get("temperature", 0.07)
        self.m = method.get("bank_momentum", 0.5)
        self.softmax = method.get("softmax", False)

    def embed(self, x):
        l, ab = torch.split(x, [self.first, x.shape[1] - self.first], dim=1)
        return F.normalize(self.encoder_l(l), dim=1), F.normalize(self.encoder_ab(ab), dim=1)

    def scores(self, feat, idx, memory, z):
        """One direction of `NCEAverage.forward`: `feat` against `memory`'s rows `idx`."""
        return memory_scores(feat, idx, memory, z, self.t, self.softmax)

    def loss(self, out, n):
        return memory_loss(out, n, self.softmax)

    def cross_view(self, l, ab, idx, mem_l, mem_ab, z_l, z_ab):
        out_l, z_l = self.scores(l, idx, mem_ab, z_l)
        out_ab, z_ab = self.scores(ab, idx, mem_l, z_ab)
        n = mem_l.size(0)
        return self.loss(out_l, n) + self.loss(out_ab, n), z_l, z_ab

    def forward(self, x, idx, mem_l, mem_ab, z_l, z_ab, mixed=None, lam=None):
        """Returns (plain, mixed term or None, Z_l, Z_ab, feat_l, feat_ab)."""
        l, ab = self.embed(x)
        plain, z_l, z_ab = self.cross_view(l, ab, idx, mem_l, mem_ab, z_l, z_ab)
        if mixed is None:
            return plain, None, z_l, z_ab, l, ab
        ml, mab = self.embed(mixed)
        partner = torch.cat([idx[:, :1].flip(0), idx[:, 1:]], dim=1)
        direct = self.cross_view(ml, mab, idx, mem_l, mem_ab, z_l, z_ab)[0]
        reverse = self.cross_view(ml, mab, partner, mem_l, mem_ab, z_l, z_ab)[0]
        return plain, lam * direct + (1 - lam) * reverse, z_l, z_ab, l, ab

    def update(self, memory, feat, y):
        memory = memory.clone()
        w = memory[y] * self.m + feat * (1 - self.m)
        memory[y] = w / w.pow(2).sum(1, keepdim=True).pow(0.5)
        return memory
