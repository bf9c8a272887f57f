"""Invariance Propagation as `WangFeng18/InvariancePropagation` trains it (`main.py::train`,
`objective.py::InvariancePropagationLoss` and `MemoryBank_v1`; algorithms.md §4.1), written by
us, with Un-Mix on memory-bank methods as docs/methods.md defines it:

- `f = net(x)`; the loss normalises it, scores it against the *whole* bank
  (`exp(f̂·Vᵀ/t)`, `[B, N]`), and takes the `n_background` largest as the background;
- `L_ins = −mean log(S_self / Σ S_background + 1e-7)`;
- candidates: `neigh[idx]`, then the neighbours of each column in turn, layer by layer
  (`propagate`'s while loop); the `n_pos` smallest (hard) or largest of `S` at them;
- `L_inv = −mean log(Σ S_pos / (Σ S_background − S_self) + 1e-7)` (exclusive) or over
  `Σ S_background`;
- `L = L_ins + lam_inv · ramp(i_epoch) · L_inv`, `i_epoch` from 1;
- the graph rows of the batch ← `update_nn` (first k+1 background ids, self replaced by the
  (k+1)-th, first k kept), computed in the loss, before the optimiser step;
- after the step: `V[idx] ← normalize(m·V[idx] + (1−m)·normalize(f))`.
- Un-Mix: the mixture `m` of row i (λ) and row N−1−i (1−λ): `λ·L_ins(m̂, idx) +
  (1−λ)·L_ins(m̂, idx.flip(0))`, each against m̂'s own background.
"""

import math

import torch
import torch.nn as nn

from common import Encoder


def l2_normalize(x):
    return x / torch.sqrt(torch.sum(x ** 2, dim=1).unsqueeze(1))


def ramp_up(kind, i_epoch, end_epoch):
    """`BinaryRampUp`, `GaussianRampUp(.., weight=5)` or 1 (`zero`)."""
    if kind == "binary":
        return int(i_epoch > end_epoch)
    if kind == "gaussian":
        return math.exp(-5 * max(1 - i_epoch / end_epoch, 0) ** 2)
    return 1


class InvariancePropagation(nn.Module):
    def __init__(self, model_cfg, method):
        super().__init__()
        self.encoder = Encoder(model_cfg)
        self.t = method.get("temperature", 0.2)
        self.n_background = method.get("n_background", 4096)
        self.k = method.get("k_nearest", 4)
        self.layers = method.get("diffusion_layers", 3)
        self.n_pos = method.get("n_pos", 20)
        self.exclusive = method.get("exclusive", True)
        self.hard_pos = method.get("hard_positives", True)
        self.lam_inv = method.get("lam_inv", 0.6)
        self.ramp = method.get("ramp", "binary")
        self.ramp_epochs = method.get("ramp_epochs", 30)
        self.m = method.get("bank_momentum", 0.5)

    def instance(self, points, idx, bank):
        """`L_ins` of raw embeddings `points` with bank rows `idx` as positives; also returns
        the whole similarity matrix, the own similarities and the background."""
        all_sim = torch.exp(l2_normalize(points) @ bank.t() / self.t)
        self_sim = all_sim[torch.arange(all_sim.size(0)), idx]
        bg_sim, bg_idx = all_sim.topk(k=self.n_background, dim=1, largest=True, sorted=True)
        loss = -(self_sim / bg_sim.sum(dim=1) + 1e-7).log().mean()
        return loss, all_sim, self_sim, bg_sim, bg_idx

    def propagate(self, idx, neigh):
        cur, matrix = 0, neigh[idx]
        end, layer = matrix.size(1) - 1, 2
        while layer <= self.layers:
            matrix = torch.cat([matrix, neigh[matrix[:, cur]]], dim=1)
            if cur == end:
                layer += 1
                end = matrix.size(1) - 1
            cur += 1
        return matrix

    def update_nn(self, bg_idx, idx, neigh):
        nei = bg_idx[:, :self.k + 1]
        backup = nei[:, self.k:self.k + 1].expand_as(nei)
        nei = torch.where(nei == idx.unsqueeze(1), backup, nei)[:, :self.k]
        neigh = neigh.clone()
        neigh[idx] = nei
        return neigh

    def forward(self, x, idx, bank, neigh, i_epoch, mixed=None, lam=None):
        """Returns (loss, {term: value}, the graph after `update_nn`, f)."""
        f = self.encoder(x)
        l_ins, all_sim, self_sim, bg_sim, bg_idx = self.instance(f, idx, bank)
        pos_sim = torch.gather(all_sim, index=self.propagate(idx, neigh), dim=1)
        pos_sim, _ = pos_sim.topk(k=min(self.n_pos, pos_sim.size(1)), dim=1,
                                  largest=not self.hard_pos, sorted=True)
        denominator = bg_sim.sum(dim=1) - self_sim
        if not self.exclusive:
            denominator = denominator + self_sim
        l_inv = -(pos_sim.sum(dim=1) / denominator + 1e-7).log().mean()
        weight = self.lam_inv * ramp_up(self.ramp, i_epoch, self.ramp_epochs)
        terms = {"instance": l_ins}
        loss = l_ins
        if weight > 0:
            terms["propagation"] = weight * l_inv
            loss = loss + terms["propagation"]
        if mixed is not None:
            fm = self.encoder(mixed)
            direct = self.instance(fm, idx, bank)[0]
            reverse = self.instance(fm, idx.flip(0), bank)[0]
            terms["mixed"] = lam * direct + (1 - lam) * reverse
            loss = loss + terms["mixed"]
        return loss, terms, self.update_nn(bg_idx, idx, neigh), f

    def update_points(self, bank, f, idx):
        """`MemoryBank_v1.update_points`."""
        bank = bank.clone()
        bank[idx] = l2_normalize(self.m * bank[idx] + (1 - self.m) * l2_normalize(f))
        return bank
