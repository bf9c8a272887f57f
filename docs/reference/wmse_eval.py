"""W-MSE's evaluation (`htdt/self-supervised`; algorithms.md §6.1, §6.2), written by us in
PyTorch, on the features `unmix eval --protocol wmse-linear|wmse-knn --save-features F` wrote:
`eval/knn.py::eval_knn` (`cdist`, the 5 smallest, `unique(return_counts=True)` and `argmax`) and
`eval/sgd.py::eval_sgd`: `nn.Linear` (default initialisation), cross-entropy, `Adam(lr=1e-2,
weight_decay=5e-6)` with `ExponentialLR(gamma=(1e-6/1e-2)^(1/500))` stepped per epoch, 500 epochs
of batches of 1,000 from a fresh `randperm`, then top-1 and top-5 on the test features. Prints the
k-NN accuracy and one linear line per seed, to set beside ours.

    python3 docs/reference/wmse_eval.py FEATURES.safetensors [SEEDS...]
"""

import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from common import load_record  # noqa: E402


def eval_sgd(x_train, y_train, x_test, y_test, topk=(1, 5), epoch=500, batch=1000):
    lr_start, lr_end = 1e-2, 1e-6
    gamma = (lr_end / lr_start) ** (1 / epoch)
    clf = nn.Linear(x_train.shape[1], int(y_train.max()) + 1)
    optimizer = torch.optim.Adam(clf.parameters(), lr=lr_start, weight_decay=5e-6)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    criterion = nn.CrossEntropyLoss()
    for _ in range(epoch):
        # The reference's `randperm(n).view(-1, 1000)`; a smaller last batch where 1,000 does not
        # divide n, as ours.
        for idx in torch.randperm(len(x_train)).split(batch):
            optimizer.zero_grad()
            criterion(clf(x_train[idx]), y_train[idx]).backward()
            optimizer.step()
        scheduler.step()
    with torch.no_grad():
        top = clf(x_test).topk(max(topk), 1).indices
    return {t: (top[:, :t] == y_test[:, None]).float().sum(1).mean().item() * 100 for t in topk}


def eval_knn(x_train, y_train, x_test, y_test, k=5):
    d = torch.cdist(x_test, x_train)
    labels = y_train[d.topk(k=k, dim=1, largest=False).indices]
    pred = torch.empty_like(y_test)
    for i in range(len(labels)):
        values, counts = labels[i].unique(return_counts=True)
        pred[i] = values[counts.argmax()]
    return (pred == y_test).float().mean().item() * 100


def main():
    record, _ = load_record(sys.argv[1])
    seeds = [int(s) for s in sys.argv[2:]] or [0]
    xtr, ytr = record["train/features"], record["train/labels"].long()
    xte, yte = record["test/features"], record["test/labels"].long()
    print(f"k-NN (5, Euclidean, majority): {eval_knn(xtr, ytr, xte, yte):.2f}%", flush=True)
    for seed in seeds:
        torch.manual_seed(seed)
        acc = eval_sgd(xtr, ytr, xte, yte)
        print(f"seed {seed}: top-1 {acc[1]:.2f}% top-5 {acc[5]:.2f}%", flush=True)


if __name__ == "__main__":
    main()
