"""SwAV with Un-Mix as the authors' SwAV script trains it (`UnMix_SwAV/*/main_swav_unmix.py`;
algorithms.md §1.4.3), with solo-learn's LARS (algorithms.md §5.1), written by us:

- the multi-resolution forward: the backbone runs once per run of same-sized crops (the large
  crops and the mixture together, so batch norm sees `3N`; the small crops together), the
  projection head and its batch norm once over all of them; embeddings L2-normalised, scores
  against the prototypes (`Linear(D, K, bias=False)`, rows renormalised every iteration);
- codes: the old SwAV Sinkhorn of the CIFAR script (`exp(scores/ε)ᵀ`, total 1, `iters` rounds
  of rows to `1/K` and columns to `1/B`, columns to sum 1 at the end), on detached scores;
- `swav_loss`: for each coded crop, the mean over every other crop of
  `−mean Σ q log softmax(p/T)`, averaged over the coded crops;
- Un-Mix: `L = loss_ori + λ·swav_loss([mix, x1]) + (1−λ)·swav_loss([mix, x1], reverse)`, the
  reverse call flipping only the mixture's scores before Sinkhorn (the code's behaviour) or also
  its prediction (the formula's, `reverse = "formula"`);
- prototypes frozen (`p.grad = None`) for the first `freeze_prototypes_steps` iterations.

`step(...)` runs one iteration on given inputs so that `parity.py` can compare it with ours.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import Encoder


def sinkhorn(scores, eps, iters):
    """The CIFAR script's `distributed_sinkhorn` on one process; `scores` `[B, K]` → codes
    `[B, K]`, each row summing to 1."""
    with torch.no_grad():
        q = torch.exp(scores / eps).t()  # [K, B]
        q /= q.sum()
        k, b = q.shape
        r = torch.ones(k, dtype=q.dtype) / k
        c = torch.ones(b, dtype=q.dtype) / b
        for _ in range(iters):
            q *= (r / q.sum(dim=1)).unsqueeze(1)
            q *= (c / q.sum(dim=0)).unsqueeze(0)
        return (q / q.sum(dim=0, keepdim=True)).t()


def swav_loss(scores, coded, T, eps, iters, flip_code=(), flip_pred=()):
    """`scores`: per crop `[B, K]`; `coded`: the crops whose codes are predicted. A crop in
    `flip_code` has its scores reversed along the batch before Sinkhorn (the Un-Mix reverse call),
    one in `flip_pred` its prediction reversed too."""
    total = 0
    for crop in coded:
        s = scores[crop].detach()
        q = sinkhorn(s.flip(0) if crop in flip_code else s, eps, iters)
        sub = 0
        for v in range(len(scores)):
            if v == crop:
                continue
            p = scores[v].flip(0) if v in flip_pred else scores[v]
            sub = sub - torch.mean(torch.sum(q * F.log_softmax(p / T, dim=1), dim=1))
        total = total + sub / (len(scores) - 1)
    return total / len(coded)


class SwAV(nn.Module):
    def __init__(self, model_cfg, method):
        super().__init__()
        self.encoder = Encoder(model_cfg)
        self.prototypes = nn.Linear(model_cfg["head"]["out_dim"], method["prototypes"], bias=False)
        self.T = method["temperature"]
        self.eps = method["epsilon"]
        self.iters = method["sinkhorn_iterations"]
        self.reverse = method.get("reverse", "code")

    def embed(self, groups):
        """The multi-resolution forward: backbone per group of same-sized crops, head over all."""
        feats = torch.cat([self.encoder.backbone(torch.cat(g)) for g in groups])
        z = F.normalize(self.encoder.head(feats), dim=1, p=2)
        return z, self.prototypes(z)

    def forward(self, large, small, mixed=None, lam=None):
        """`large`: [x0, x1]; `small`: the small crops. Returns (plain, mixed or None)."""
        b = large[0].shape[0]
        group = large + ([mixed] if mixed is not None else [])
        _, out = self.embed([group] + ([small] if small else []))
        crops = [out[i * b:(i + 1) * b] for i in range(out.shape[0] // b)]
        n_large = len(group)
        views = crops[:2] + crops[n_large:]  # x0, x1, small crops
        plain = swav_loss(views, [0, 1], self.T, self.eps, self.iters)
        if mixed is None:
            return plain, None
        pair = [crops[2], crops[1]]  # [mix, x1]
        direct = swav_loss(pair, [0, 1], self.T, self.eps, self.iters)
        flip_pred = (0,) if self.reverse == "formula" else ()
        reverse = swav_loss(pair, [0, 1], self.T, self.eps, self.iters, flip_code=(0,), flip_pred=flip_pred)
        return plain, lam * direct + (1 - lam) * reverse

    @torch.no_grad()
    def normalize_prototypes(self):
        w = self.prototypes.weight.data.clone()
        self.prototypes.weight.copy_(F.normalize(w, dim=1, p=2))


class LARS(torch.optim.Optimizer):
    """solo-learn's LARS: per tensor, weight decay then the trust ratio
    `η‖w‖/(‖g‖ + wd‖w‖ + ε)` (clipped to `min(ratio/lr, 1)`), skipped for zero tensors and, with
    `exclude_bias_n_norm`, for rank-1 ones; then SGD with momentum (first buffer = the step)."""

    def __init__(self, params, lr, momentum, weight_decay, eta, clip_lr, exclude_bias_n_norm, eps=1e-8):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                                      clip_lr=clip_lr, exclude=exclude_bias_n_norm, eps=eps))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if p.ndim != 1 or not g["exclude"]:
                    p_norm, g_norm = torch.norm(p), torch.norm(d_p)
                    if p_norm != 0 and g_norm != 0:
                        ratio = g["eta"] * p_norm / (g_norm + p_norm * g["weight_decay"] + g["eps"])
                        if g["clip_lr"]:
                            ratio = torch.clamp(ratio / g["lr"], max=1.0)
                        d_p = (d_p + g["weight_decay"] * p) * ratio
                state = self.state[p]
                if g["momentum"] != 0:
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = d_p.clone()
                    else:
                        state["momentum_buffer"].mul_(g["momentum"]).add_(d_p)
                    d_p = state["momentum_buffer"]
                p.add_(d_p, alpha=-g["lr"])
