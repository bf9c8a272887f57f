"""SimCLR with Un-Mix as the README core code trains it with the htdt code the authors used
(`htdt/self-supervised: methods/contrastive.py`; algorithms.md §1.4.4), written by us:

- `model(samples)`: the backbone on each crop on its own (`[self.model(x) for x in samples]`),
  the head (and its batch norm) once over the concatenation, then the two-view loss;
- the loss, `contrastive_loss(x0, x1, tau, norm=True)`: L2-normalised rows,
  `½[CE([x0·x1ᵀ | x0·x0ᵀ − 1e9·I]/τ, arange) + CE([x1·x0ᵀ | x1·x1ᵀ − 1e9·I]/τ, arange)]`;
- Un-Mix (README): `loss_ori = model([x0, x1])`, `loss_m1 = model([x1, mixed])`,
  `loss_m2 = model([x1, mixed_flip])` with `mixed_flip = mixed.flip(0)` (the images),
  `L = loss_ori + λ·loss_m1 + (1−λ)·loss_m2`. htdt forwards x1 again in each call and the
  flipped mixture on its own; in exact arithmetic that is the same as forwarding each crop once
  and flipping the mixture's backbone features (batch norm's statistics do not depend on the
  order of the batch), and the head once over `[x1, mixed]` with the mixture's embeddings flipped
  for `loss_m2`. This reference does that, so that its float32 ties at a ReLU line up with ours
  and the running statistics see what ours see;
- `forward = "joint"` (our option, as the SwAV Un-Mix code batches its crops): the backbone and
  the head once over `[x0, x1, mixed]`, the terms on the parts of that one embedding.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import Encoder


def contrastive_loss(x0, x1, tau):
    """htdt's `contrastive_loss` with `norm=True`."""
    n = x0.shape[0]
    target = torch.arange(n)
    eye_mask = torch.eye(n, dtype=x0.dtype) * 1e9
    x0 = F.normalize(x0, p=2, dim=1)
    x1 = F.normalize(x1, p=2, dim=1)
    logits00 = x0 @ x0.t() / tau - eye_mask
    logits11 = x1 @ x1.t() / tau - eye_mask
    logits01 = x0 @ x1.t() / tau
    logits10 = x1 @ x0.t() / tau
    return (F.cross_entropy(torch.cat([logits01, logits00], dim=1), target)
            + F.cross_entropy(torch.cat([logits10, logits11], dim=1), target)) / 2


class SimCLR(nn.Module):
    def __init__(self, model_cfg, method):
        super().__init__()
        self.encoder = Encoder(model_cfg)
        self.tau = method["temperature"]
        self.joint = method.get("forward", "per_view") == "joint"

    def pair_loss(self, ha, hb):
        """htdt's `Contrastive.forward([a, b])` on the crops' backbone features."""
        n = ha.shape[0]
        h = self.encoder.head(torch.cat([ha, hb]))
        return contrastive_loss(h[:n], h[n:], self.tau)

    def forward(self, x0, x1, mixed=None, lam=None):
        """Returns (plain, mixed term or None)."""
        if self.joint:
            n = x0.shape[0]
            crops = [x0, x1] + ([mixed] if mixed is not None else [])
            z = self.encoder(torch.cat(crops))
            part = [z[i * n:(i + 1) * n] for i in range(len(crops))]
            plain = contrastive_loss(part[0], part[1], self.tau)
            if mixed is None:
                return plain, None
            direct = contrastive_loss(part[1], part[2], self.tau)
            reverse = contrastive_loss(part[1], part[2].flip(0), self.tau)
            return plain, lam * direct + (1 - lam) * reverse
        h0, h1 = self.encoder.backbone(x0), self.encoder.backbone(x1)
        plain = self.pair_loss(h0, h1)
        if mixed is None:
            return plain, None
        n = x0.shape[0]
        z = self.encoder.head(torch.cat([h1, self.encoder.backbone(mixed)]))
        z1, zm = z[:n], z[n:]
        direct = contrastive_loss(z1, zm, self.tau)
        reverse = contrastive_loss(z1, zm.flip(0), self.tau)
        return plain, lam * direct + (1 - lam) * reverse
