"""Instance discrimination as `szq0214/CMC_with_Image_Mixture` trains it (`train_moco_ins.py::
train_ins`, `NCE/NCEAverage.py::MemoryInsDis`, `NCE/NCECriterion.py`; algorithms.md §2.4),
written by us, with Un-Mix on memory-bank methods as docs/methods.md defines it:

- `feat = model(x)`: the encoder, then `l2norm` (`InsResNet50`'s last step);
- `MemoryInsDis.forward(feat, index)`: the bank rows `idx` `[B, K+1]` (own id in column 0, `K`
  uniform draws; given here, as recorded by ours), `out = bmm(memory[idx], feat)`;
  NCE: `out = exp(out/T)`, `Z = out.mean()·N` if `Z < 0` (the first batch), `out / Z`;
  softmax: `out / T`;
- `NCECriterion(N)`: `−(Σ log(P₀/(P₀ + K/N + ε)) + Σ log((K/N)/(P_k + K/N + ε))) / B`;
  `NCESoftmaxLoss`: cross-entropy with target 0;
- the bank rows of the batch ← `normalize(m·memory[y] + (1−m)·feat)` (inside `forward`, after
  the scores, with the batch's features);
- Un-Mix: the mixture's features scored against the same rows, `λ·L(idx) + (1−λ)·L(idx with
  column 0 flipped over the batch)`.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import Encoder

EPS = 1e-7


def nce_criterion(x, n_data):
    bsz, m = x.shape[0], x.size(1) - 1
    pn = 1 / float(n_data)
    p_pos = x.select(1, 0)
    log_d1 = torch.div(p_pos, p_pos.add(m * pn + EPS)).log()
    p_neg = x.narrow(1, 1, m)
    log_d0 = torch.div(p_neg.clone().fill_(m * pn), p_neg.add(m * pn + EPS)).log()
    return -(log_d1.sum(0) + log_d0.view(-1, 1).sum(0)) / bsz


def memory_scores(feat, idx, memory, z, t, softmax):
    """`MemoryInsDis.forward`'s (and one direction of CMC's `NCEAverage.forward`'s) output for
    `feat` against `memory`'s rows `idx`, and the (possibly just set) Z."""
    b, d = feat.shape
    weight = torch.index_select(memory, 0, idx.view(-1)).detach().view(b, -1, d)
    out = torch.bmm(weight, feat.view(b, d, 1)).squeeze(2)
    if softmax:
        return out / t, z
    out = torch.exp(out / t)
    if z < 0:
        z = (out.mean() * memory.size(0)).detach()
    return out / z, z


def memory_loss(out, n, softmax):
    """`NCESoftmaxLoss` (cross-entropy with target 0) or `NCECriterion(n)`."""
    if softmax:
        return F.cross_entropy(out, torch.zeros(out.shape[0], dtype=torch.long))
    return nce_criterion(out, n).squeeze()


class InsDis(nn.Module):
    def __init__(self, model_cfg, method):
        super().__init__()
        self.encoder = Encoder(model_cfg)
        self.t = method.get("temperature", 0.07)
        self.m = method.get("bank_momentum", 0.5)
        self.softmax = method.get("softmax", False)

    def scores(self, feat, idx, memory, z):
        return memory_scores(feat, idx, memory, z, self.t, self.softmax)

    def loss(self, out, n):
        return memory_loss(out, n, self.softmax)

    def forward(self, x, idx, memory, z, mixed=None, lam=None):
        """Returns (plain, mixed term or None, Z, feat)."""
        feat = F.normalize(self.encoder(x), dim=1)
        out, z = self.scores(feat, idx, memory, z)
        plain = self.loss(out, memory.size(0))
        if mixed is None:
            return plain, None, z, feat
        fm = F.normalize(self.encoder(mixed), dim=1)
        partner = torch.cat([idx[:, :1].flip(0), idx[:, 1:]], dim=1)
        direct = self.loss(self.scores(fm, idx, memory, z)[0], memory.size(0))
        reverse = self.loss(self.scores(fm, partner, memory, z)[0], memory.size(0))
        return plain, lam * direct + (1 - lam) * reverse, z, feat

    def update(self, memory, feat, y):
        memory = memory.clone()
        w = memory[y] * self.m + feat * (1 - self.m)
        memory[y] = w / w.pow(2).sum(1, keepdim=True).pow(0.5)
        return memory
