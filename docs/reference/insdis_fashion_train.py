"""Whole-run InsDis in PyTorch on the embedded Fashion-MNIST subset with the settings of a config
of ours (`configs/fashion_mnist/insdis.toml` by default): `train_moco_ins.py::train_ins`'s loop
(forward, `MemoryInsDis` scores and bank update, NCE, SGD step; ×gamma at the milestones) around
our reference of its pieces (`insdis_pytorch.py`), its `CJ` augmentation (RandomResizedCrop,
RandomGrayscale(0.2), ColorJitter(0.4 ×4), flip) and a kNN monitor on the encoder's features
(k 200, σ 0.07), next to ours. Data loading, `--set` and `INIT=torchvision` as
`invariance_propagation_fashion_train.py`.

    python3 docs/reference/insdis_fashion_train.py [CONFIG] [SEED] [--set key=value ...]
"""

import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

sys.path.insert(0, os.path.dirname(__file__))
from common import init_torchvision  # noqa: E402
from insdis_pytorch import InsDis  # noqa: E402
from invariance_propagation_fashion_train import ROOT, first_per_class, idx, load_config  # noqa: E402


def main():
    args = sys.argv[1:]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    plain = [a for i, a in enumerate(args) if a != "--set" and (i == 0 or args[i - 1] != "--set")]
    path = plain[0] if plain else os.path.join(ROOT, "configs/fashion_mnist/insdis.toml")
    seed = int(plain[1]) if len(plain) > 1 else 0
    cfg = load_config(path, sets)
    torch.manual_seed(seed)
    np.random.seed(seed)
    data, aug, optim = cfg["data"], cfg["data"]["augmentation"], cfg["optim"]
    d = os.path.join(ROOT, data["path"])
    xtr, ytr = first_per_class(idx(f"{d}/train-images-idx3-ubyte.gz"), idx(f"{d}/train-labels-idx1-ubyte.gz"),
                               data["train_per_class"])
    xte, yte = first_per_class(idx(f"{d}/t10k-images-idx3-ubyte.gz"), idx(f"{d}/t10k-labels-idx1-ubyte.gz"),
                               data["test_per_class"])
    xtr = xtr.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    xte = xte.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    normalize = v2.Normalize(aug["mean"], aug["std"])
    train_tf = v2.Compose([
        v2.RandomResizedCrop(aug["crop_size"], scale=tuple(aug["crop_scale"]), antialias=True),
        v2.RandomGrayscale(aug["grayscale_prob"]),
        v2.RandomApply([v2.ColorJitter(*aug["jitter"])], p=aug["jitter_prob"]),
        v2.RandomHorizontalFlip(aug.get("hflip_prob", 0.5)),
        v2.ToDtype(torch.float32, scale=True),
        normalize,
    ])
    to_eval = lambda x: normalize(x.float() / 255)

    net = InsDis(cfg["model"], dict(cfg["method"]))
    if os.environ.get("INIT") == "torchvision":
        init_torchvision(net.encoder, False)
    n, dim = len(xtr), cfg["model"]["head"]["out_dim"]
    stdv = 1.0 / math.sqrt(dim / 3)
    memory = torch.rand(n, dim).mul_(2 * stdv).add_(-stdv)
    z = -1.0
    k = cfg["method"].get("nce_k", 16384)
    opt = torch.optim.SGD(net.encoder.parameters(), lr=optim["lr"], momentum=0.9,
                          weight_decay=optim.get("weight_decay", 1e-4))
    sched = optim.get("schedule", {})
    epochs, bs = optim["epochs"], optim["batch_size"]
    ev = cfg.get("eval", {})

    @torch.no_grad()
    def knn():
        net.eval()
        enc = lambda x: F.normalize(torch.cat([net.encoder(to_eval(x[i:i + 500])) for i in range(0, len(x), 500)]), dim=1)
        train, test = enc(xtr), enc(xte)
        net.train()
        w, j = (test @ train.t()).topk(ev.get("knn_k", 200), dim=1)
        votes = torch.zeros(len(xte), 10).scatter_add_(1, ytr[j], (w / ev.get("knn_t", 0.07)).exp())
        return (votes.argmax(1) == yte).float().mean().item() * 100

    print(f"random init: kNN {knn():.2f}", flush=True)
    t0 = time.time()
    for epoch in range(epochs):
        lr = optim["lr"] * sched.get("gamma", 0.1) ** sum(epoch >= m for m in sched.get("milestones", []))
        for g in opt.param_groups:
            g["lr"] = lr
        perm, total = torch.randperm(n), 0.0
        for b in range(n // bs):
            ids = perm[b * bs:(b + 1) * bs]
            x = torch.stack([train_tf(xtr[i]) for i in ids])
            contrast = torch.cat([ids[:, None], torch.randint(0, n, (len(ids), k))], dim=1)
            loss, _, z, feat = net(x, contrast, memory, z)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                memory = net.update(memory, feat.detach(), ids)
            total += loss.item()
        print(f"epoch {epoch + 1}: loss {total / (n // bs):.4f} lr {lr:.4f} kNN {knn():.2f} "
              f"({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
