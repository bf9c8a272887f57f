"""Whole-run Invariance Propagation in PyTorch on the embedded Fashion-MNIST subset, with the
settings of a config of ours (`configs/fashion_mnist/invariance_propagation.toml` by default):
the reference's training loop (`main.py::train`: forward, loss, SGD step, then the bank's
momentum update) around our reference of its loss (`invariance_propagation_pytorch.py`), its CIFAR
augmentation (`datasets/cifar.py`: RandomResizedCrop(scale 0.2-1), ColorJitter(0.4, 0.4, 0.4,
0.4) always, RandomGrayscale(0.2), no flip) and its kNN monitor (`main.py::kNN`: the memory bank
as the training features, k 200, σ 0.07), next to ours (features recomputed by the encoder).
To tell "the method does not learn at this scale" from "ours has a bug" (docs/methods.md).

    python3 docs/reference/invariance_propagation_fashion_train.py [CONFIG] [SEED] [--set key=value ...]
        [--init RECORD]

A `data.path` holding CIFAR-10 binary files (`data_batch_1..5.bin`, `test_batch.bin`, as
`fashion_to_cifar.py` writes them) is read in that layout instead, every image of it (the CIFAR
configs, e.g. `configs/cifar10/invariance_propagation.toml --set data.path=...`).
`STOP_AFTER=E` stops after epoch E of the schedule (the first epochs of a long cosine).

`--set` takes the dotted keys of the config (`method.n_background=512`, `optim.lr=0.01`,
`optim.epochs=8`). `INIT=torchvision` initialises convolutions as ours does; by default every
layer keeps PyTorch's default initialisation, as the reference's `ResNet18_cifar`.

`--init RECORD` starts from the weights and memory bank ours starts from at the same settings
and seed: the `init/encoder.` and `init/bank.memory` tensors of a record written by
`unmix parity-step` with the same `--config`, `--set`s and `run.seed` (the graph starts empty on
both sides). The seed then pairs a run of ours with one of the reference: the random-init kNN is
the same, and what differs at the end is the training alone (data order and augmentation draws
included).
"""

import gzip
import math
import os
import sys
import time
import tomllib

import numpy as np
import torch
from torchvision.transforms import v2

sys.path.insert(0, os.path.dirname(__file__))
from common import init_torchvision, load_into, load_record  # noqa: E402
from invariance_propagation_pytorch import InvariancePropagation, l2_normalize  # noqa: E402
from moco_demo_train import read_cifar10  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "../..")
torch.set_num_threads(int(os.environ.get("THREADS", "2")))


def load_config(path, sets):
    cfg = tomllib.load(open(path, "rb"))
    base = cfg.pop("extends", None)
    if base:
        parent = load_config(os.path.join(os.path.dirname(path), base), [])
        for table, values in cfg.items():
            parent.setdefault(table, {}).update(values) if isinstance(values, dict) else None
        cfg = parent
    for s in sets:
        key, value = s.split("=", 1)
        *tables, leaf = key.split(".")
        node = cfg
        for t in tables:
            node = node.setdefault(t, {})
        node[leaf] = tomllib.loads(f"v = {value}")["v"]
    return cfg


def idx(path):
    b = gzip.open(path).read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


def first_per_class(x, y, n):
    keep, count = [], [0] * 10
    for i, label in enumerate(y):
        if count[label] < n:
            keep.append(i)
            count[label] += 1
    return torch.tensor(x[keep]), torch.tensor(y[keep]).long()


def main():
    args = [a for a in sys.argv[1:]]
    init = None
    if "--init" in args:
        i = args.index("--init")
        init = args[i + 1]
        del args[i:i + 2]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    plain = [a for i, a in enumerate(args) if a != "--set" and (i == 0 or args[i - 1] != "--set")]
    path = plain[0] if plain else os.path.join(ROOT, "configs/fashion_mnist/invariance_propagation.toml")
    seed = int(plain[1]) if len(plain) > 1 else 0
    cfg = load_config(path, sets)
    torch.manual_seed(seed)
    np.random.seed(seed)
    data, aug_cfg, optim = cfg["data"], cfg["data"]["augmentation"], cfg["optim"]
    d = os.path.join(ROOT, data["path"])
    if os.path.exists(f"{d}/data_batch_1.bin"):
        # read_cifar10 gives HWC arrays; the transforms below take CHW uint8 tensors.
        chw = lambda x, y: (torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y))
        xtr, ytr = chw(*read_cifar10([f"{d}/data_batch_{i}.bin" for i in range(1, 6)]))
        xte, yte = chw(*read_cifar10([f"{d}/test_batch.bin"]))
    else:
        xtr, ytr = first_per_class(idx(f"{d}/train-images-idx3-ubyte.gz"),
                                   idx(f"{d}/train-labels-idx1-ubyte.gz"), data["train_per_class"])
        xte, yte = first_per_class(idx(f"{d}/t10k-images-idx3-ubyte.gz"),
                                   idx(f"{d}/t10k-labels-idx1-ubyte.gz"), data["test_per_class"])
        xtr = xtr.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()  # grey on three channels, uint8
        xte = xte.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    mean, std = aug_cfg["mean"], aug_cfg["std"]
    normalize = v2.Normalize(mean, std)
    train_tf = v2.Compose([
        v2.RandomResizedCrop(aug_cfg["crop_size"], scale=tuple(aug_cfg["crop_scale"]), antialias=True),
        v2.RandomApply([v2.ColorJitter(*aug_cfg["jitter"])], p=aug_cfg["jitter_prob"]),
        v2.RandomGrayscale(aug_cfg["grayscale_prob"]),
        v2.RandomHorizontalFlip(aug_cfg.get("hflip_prob", 0.0)),
        v2.ToDtype(torch.float32, scale=True),
        normalize,
    ])
    to_eval = lambda x: normalize(x.float() / 255)

    method = dict(cfg["method"])
    net = InvariancePropagation(cfg["model"], method)
    if os.environ.get("INIT") == "torchvision":
        init_torchvision(net.encoder, False)
    n = len(xtr)
    stdv = 1.0 / math.sqrt(cfg["model"]["head"]["out_dim"] / 3)
    bank = torch.rand(n, cfg["model"]["head"]["out_dim"]).mul_(2 * stdv).add_(-stdv)
    neigh = torch.zeros(n, net.k, dtype=torch.long)
    if init:
        record, _ = load_record(init)
        load_into(net.encoder, record, "init/encoder.")
        assert record["init/bank.memory"].shape == bank.shape, (
            f"{init}: bank {tuple(record['init/bank.memory'].shape)}, expected {tuple(bank.shape)}")
        bank = record["init/bank.memory"].clone()
        print(f"initial encoder and memory bank from {init}", flush=True)
    opt = torch.optim.SGD(net.encoder.parameters(), lr=optim["lr"], momentum=0.9,
                          weight_decay=optim.get("weight_decay", 5e-4))
    epochs, bs = optim["epochs"], optim["batch_size"]
    stop_after = int(os.environ.get("STOP_AFTER", epochs))
    first = optim.get("schedule", {}).get("first_epoch", 0)
    eval_cfg = cfg.get("eval", {})
    k, sigma = eval_cfg.get("knn_k", 200), eval_cfg.get("knn_t", 0.07)

    @torch.no_grad()
    def knn(train_feats):
        net.eval()
        test = l2_normalize(torch.cat([net.encoder(to_eval(xte[i:i + 500])) for i in range(0, len(xte), 500)]))
        net.train()
        w, j = (test @ train_feats.t()).topk(k, dim=1)
        votes = torch.zeros(len(xte), 10).scatter_add_(1, ytr[j], (w / sigma).exp())
        return (votes.argmax(1) == yte).float().mean().item() * 100

    @torch.no_grad()
    def encoded_train():
        net.eval()
        f = l2_normalize(torch.cat([net.encoder(to_eval(xtr[i:i + 500])) for i in range(0, n, 500)]))
        net.train()
        return f

    print(f"random init: kNN (encoder features) {knn(encoded_train()):.2f}", flush=True)
    t0 = time.time()
    for epoch in range(min(epochs, stop_after)):
        lr = optim["lr"] * 0.5 * (1 + math.cos(math.pi * (epoch + first) / epochs))
        for g in opt.param_groups:
            g["lr"] = lr
        perm = torch.randperm(n)
        sums = {}
        for b in range(n // bs):  # ours drops the last partial batch
            ids = perm[b * bs:(b + 1) * bs]
            x = torch.stack([train_tf(xtr[i]) for i in ids])
            loss, terms, neigh, f = net(x, ids, bank, neigh, epoch + 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                bank = net.update_points(bank, f.detach(), ids)
            for name, v in terms.items():
                sums[name] = sums.get(name, 0.0) + v.item()
        terms = " ".join(f"{name} {v / (n // bs):.4f}" for name, v in sums.items())
        print(f"epoch {epoch + 1}: {terms} lr {lr:.4f} kNN bank {knn(bank):.2f} "
              f"encoder {knn(encoded_train()):.2f} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
