"""MoCo with Un-Mix as the authors' CIFAR demo trains it (`unmix_c10.py`, `ModelMoCo`;
algorithms.md §1.4.1), written by us: symmetric or asymmetric loss, split batch norm, single-GPU
shuffle-BN, queue as a `[C, K]` ring buffer, momentum update of the parameters (not the buffers)
at the start of each step, SGD with momentum and L2 weight decay.

`step(...)` runs one training step on given inputs (views, mixture, λ, shuffle permutations) so
that `parity.py` can compare it with ours; the random draws the demo makes itself
(`torch.randperm`, the mixture) are passed in instead.
"""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import Encoder


class MoCo(nn.Module):
    def __init__(self, model_cfg, method):
        super().__init__()
        self.encoder_q = Encoder(model_cfg)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        self.K, self.m, self.T = method["queue_len"], method["momentum"], method["temperature"]
        self.symmetric = method["symmetric"]
        self.shuffle_bn = method["shuffle_bn"]
        dim = model_cfg["head"]["out_dim"]
        self.register_buffer("queue", F.normalize(torch.randn(dim, self.K), dim=0))
        self.queue_ptr = 0

    @torch.no_grad()
    def momentum_update_key_encoder(self, m):
        # The demo moves parameters only; buffers (BN running statistics) stay the key
        # encoder's own.
        for q, k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            k.data = k.data * m + q.data * (1.0 - m)

    @torch.no_grad()
    def dequeue_and_enqueue(self, keys):
        n = keys.shape[0]
        self.queue[:, self.queue_ptr:self.queue_ptr + n] = keys.t()
        self.queue_ptr = (self.queue_ptr + n) % self.K

    @torch.no_grad()
    def keys(self, im_k, perm):
        if self.shuffle_bn:
            k = F.normalize(self.encoder_k(im_k[perm]), dim=1)
            return k[torch.argsort(perm)]
        return F.normalize(self.encoder_k(im_k), dim=1)

    def contrastive_loss(self, im_q, im_k, perm, im_mixed, lam):
        q = F.normalize(self.encoder_q(im_q), dim=1)
        k = self.keys(im_k, perm)
        queue = self.queue.clone().detach()

        def ce(qq):
            l_pos = torch.einsum("nc,nc->n", qq, k).unsqueeze(-1)
            l_neg = torch.einsum("nc,ck->nk", qq, queue)
            logits = torch.cat([l_pos, l_neg], dim=1) / self.T
            return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long))

        loss = ce(q)
        mixed = None
        if im_mixed is not None:
            qm = self.encoder_q(im_mixed)
            qm_f = torch.flip(qm, (0,))  # "same as enc_q(im_mixed_flip)"
            qm, qm_f = F.normalize(qm, dim=1), F.normalize(qm_f, dim=1)
            mixed = lam * ce(qm) + (1 - lam) * ce(qm_f)
        return loss, mixed, k

    def forward(self, im1, im2, perm1, perm2, im1_mixed=None, lam=None):
        """Returns (plain loss, mixed loss or None); the caller does the momentum update first,
        as the demo's `forward` does."""
        if self.symmetric:
            loss_12, mixed_12, k2 = self.contrastive_loss(im1, im2, perm2, im1_mixed, lam)
            loss_21, mixed_21, k1 = self.contrastive_loss(im2, im1, perm1, im1_mixed, lam)
            plain = loss_12 + loss_21
            mixed = None if mixed_12 is None else mixed_12 + mixed_21
            keys = torch.cat([k1, k2], dim=0)
        else:
            plain, mixed, keys = self.contrastive_loss(im1, im2, perm2, im1_mixed, lam)
        self.dequeue_and_enqueue(keys)
        return plain, mixed
