"""BYOL with Un-Mix as the README core code trains it with the htdt code the authors used
(`htdt/self-supervised: methods/byol.py`; algorithms.md §1.4.4), written by us:

- `model(samples)`: every crop through the online encoder, projector and predictor on its own,
  and through the target encoder and projector (no gradient) on its own;
- the loss of a pair: `nmse(p_i, z_j) + nmse(p_j, z_i)`, `nmse(a, b) = 2 − 2·mean(cos(a, b))`;
- Un-Mix (README): `L = model([x0, x1]) + λ·model([x1, mixed]) + (1−λ)·model([x1, mixed_flip])`
  with `mixed_flip = mixed.flip(0)` (the images): the mixture goes through both branches
  (`mix_branch = "both"`); `online` keeps only the mixture's prediction against x1's target,
  `target` only x1's prediction against the mixture's target (Un-Mix issue #8 left it open).
  htdt forwards x1 again in each call and the flipped mixture on its own; each crop's forward
  is on its own batch, so that equals forwarding each crop once and flipping the mixture's
  outputs. This reference does the latter, so that its float32 ties at a ReLU line up with ours
  and the running statistics see each crop once, as ours;
- after the optimiser step, `model.step(progress)`: target parameters
  `t ← τ·t + (1−τ)·s` (parameters only, not the batch-norm buffers);
- `forward = "joint"` (our option): all crops through each branch as one batch.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import Encoder, Head


def nmse(a, b):
    """htdt's `norm_mse_loss`."""
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    return 2 - 2 * (a * b).sum(dim=-1).mean()


class BYOL(nn.Module):
    def __init__(self, model_cfg, method):
        super().__init__()
        self.online = Encoder(model_cfg)
        self.predictor = Head(method["predictor"], model_cfg["head"]["out_dim"])
        self.target = Encoder(model_cfg)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.joint = method.get("forward", "per_view") == "joint"
        self.mix_branch = method.get("mix_branch", "both")

    def branches(self, crops):
        """Predictions and targets of each crop."""
        if self.joint:
            n = crops[0].shape[0]
            x = torch.cat(crops)
            p = self.predictor(self.online(x))
            with torch.no_grad():
                z = self.target(x)
            return ([p[i * n:(i + 1) * n] for i in range(len(crops))],
                    [z[i * n:(i + 1) * n] for i in range(len(crops))])
        p = [self.predictor(self.online(x)) for x in crops]
        with torch.no_grad():
            z = [self.target(x) for x in crops]
        return p, z

    def pair(self, p_i, z_i, p_j, z_j):
        """The loss of a pair (i = x1, j = the mixture for the Un-Mix terms)."""
        if self.mix_branch == "online":
            return nmse(p_j, z_i)
        if self.mix_branch == "target":
            return nmse(p_i, z_j)
        return nmse(p_i, z_j) + nmse(p_j, z_i)

    def forward(self, x0, x1, mixed=None, lam=None):
        """Returns (plain, mixed term or None)."""
        crops = [x0, x1] + ([mixed] if mixed is not None else [])
        p, z = self.branches(crops)
        plain = nmse(p[0], z[1]) + nmse(p[1], z[0])
        if mixed is None:
            return plain, None
        direct = self.pair(p[1], z[1], p[2], z[2])
        reverse = self.pair(p[1], z[1], p[2].flip(0), z[2].flip(0))
        return plain, lam * direct + (1 - lam) * reverse

    @torch.no_grad()
    def momentum_update(self, tau):
        for t, s in zip(self.target.parameters(), self.online.parameters()):
            t.copy_(t * tau + s * (1 - tau))
