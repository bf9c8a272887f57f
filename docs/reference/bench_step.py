"""Times a method's training step in PyTorch eager, on the same inputs as ours: the step recorded
by `unmix parity-step` (its resolved config, views, mixture, λ and shuffle-BN permutations),
replayed by our references (`moco_pytorch.py`, `simclr_pytorch.py`, `byol_pytorch.py`,
`swav_pytorch.py`) again and again: zero_grad, forward, backward, the optimiser step and the
momentum update, as the reference code orders them. The GPU run kit (`scripts/gpu_kit.sh`)
puts this row beside `unmix bench --config` of the same config.

    python3 docs/reference/bench_step.py RECORD.safetensors [--device cuda] [--warmup 3] [--steps 20]

Prints one markdown row: | pytorch eager | config | batch | s/step | images/s | peak MiB |
(peak = torch.cuda.max_memory_allocated on CUDA, "–" on the CPU). The memory-bank methods
(InsDis, CMC, Invariance Propagation) are not timed here: their references replay one step
against a bank loaded from the record, not a loop.
"""

import sys
import time
import tomllib

import torch

from common import arg, load_into, load_record


def build(record, meta, cfg, device):
    """The reference module, its optimiser and a `step()` closure that trains one step."""
    from parity import optimizer

    kind = cfg["method"]["kind"]
    method = dict(cfg["method"])
    rec = {k: v.to(device) for k, v in record.items()}
    mixed = rec.get("input/mixed")
    lam = float(meta["lambda"]) if mixed is not None else None
    lr = float(meta["lr"]) or 0.01  # a warm-up's step 0 has lr 0; any rate times the same
    tau = float(meta["tau"]) if meta.get("tau", "none") != "none" else None

    def total(plain, mixed_loss):
        return plain if mixed_loss is None else plain + mixed_loss

    if kind == "moco":
        from moco_pytorch import MoCo

        ref = MoCo(cfg["model"], method)
        load_into(ref.encoder_q, record, "init/encoder_q.")
        load_into(ref.encoder_k, record, "init/encoder_k.")
        ref.to(device).train()
        opt = optimizer([p for p in ref.parameters() if p.requires_grad], cfg, lr)
        x0, x1 = rec["input/view0"], rec["input/view1"]
        p0, p1 = rec["input/shuffle0"].long(), rec["input/shuffle1"].long()

        def step():
            ref.momentum_update_key_encoder(tau)
            opt.zero_grad()
            loss = total(*ref(x0, x1, p0, p1, mixed, lam))
            loss.backward()
            opt.step()
            return loss
    elif kind in ("simclr", "byol"):
        if kind == "simclr":
            from simclr_pytorch import SimCLR

            ref = SimCLR(cfg["model"], method)
            load_into(ref.encoder, record, "init/encoder.")
            params = list(ref.parameters())
        else:
            from byol_pytorch import BYOL

            ref = BYOL(cfg["model"], method)
            for module, prefix in [(ref.online, "online."), (ref.predictor, "predictor."),
                                   (ref.target, "target.")]:
                load_into(module, record, f"init/{prefix}")
            params = [{"params": list(ref.online.parameters())},
                      {"params": list(ref.predictor.parameters()),
                       "lr": lr * method.get("predictor_lr_scale", 1.0)}]
        ref.to(device).train()
        opt = optimizer(params, cfg, lr)
        x0, x1 = rec["input/view0"], rec["input/view1"]

        def step():
            opt.zero_grad()
            loss = total(*ref(x0, x1, mixed, lam))
            loss.backward()
            opt.step()
            if kind == "byol":
                ref.momentum_update(tau)
            return loss
    elif kind == "swav":
        from swav_pytorch import SwAV

        ref = SwAV(cfg["model"], method)
        load_into(ref.encoder, record, "init/encoder.")
        load_into(ref.prototypes, record, "init/prototypes.")
        ref.to(device).train()
        opt = optimizer(list(ref.parameters()), cfg, lr)
        views = [rec[f"input/view{i}"] for i in range(sum(k.startswith("input/view") for k in rec))]

        def step():
            ref.normalize_prototypes()
            opt.zero_grad()
            loss = total(*ref(views[:2], views[2:], mixed, lam))
            loss.backward()
            opt.step()
            return loss
    else:
        return None
    return step


def main():
    args = sys.argv[1:]
    record, meta = load_record(args[0])
    cfg = tomllib.loads(meta["config"])
    device = torch.device(arg(args, "--device", "cuda" if torch.cuda.is_available() else "cpu"))
    warmup, steps = arg(args, "--warmup", 3), arg(args, "--steps", 20)
    batch = cfg["optim"]["batch_size"]
    name = cfg["method"]["kind"] + (" + Un-Mix" if cfg.get("unmix", {}).get("enabled") else "")
    step = build(record, meta, cfg, device)
    if step is None:
        print(f"| pytorch eager | {name} | {batch} | not timed (memory-bank method) | – | – |")
        return
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step().item()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
        loss.item()  # as ours: the loss read back at each step's end
    sync()
    per_step = (time.perf_counter() - start) / steps
    peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f}" if device.type == "cuda" else "–"
    print(f"| pytorch eager | {name} | {batch} | {per_step:.4f} | {batch / per_step:.1f} | {peak} |")


if __name__ == "__main__":
    main()
