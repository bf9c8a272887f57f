"""Step-level parity: replays the training step recorded by `unmix parity-step` in our PyTorch
reference and compares loss, gradients, updated parameters and state, and our initial weights'
distributions with the reference's initialisation.

    python3 docs/reference/parity.py RECORD.safetensors [--markdown OUT.md]

Exit status 0 when everything agrees within tolerance, 1 otherwise. The tolerances are relative
to each tensor's largest magnitude (plus 1e-8 absolute for parameters that start at zero):
float32 on both sides, summed in different orders. One thing float32 can do that tolerances
cannot absorb: a ReLU input within rounding of 0 lands on the other side of 0 in ours, and that
element's gradient goes the other way, shifting every gradient below it by up to ~1%.
`explain_by_relu_ties` finds such elements and reports them when taking their derivative from
the other side makes every tensor agree (`PARITY_F64=1` runs the reference in float64).
"""

import copy
import os
import sys
import tomllib

import torch

from common import Report, load_into, load_record, relu

torch.set_default_dtype(torch.float32)

# Loss and parameters after a step agree to float32 rounding; a gradient is a sum over the whole
# batch through a deep network, so it gets a looser bound.
LOSS_RTOL, GRAD_RTOL, PARAM_RTOL = 1e-5, 2e-4, 1e-5
# A gradient this small relative to the largest of its module counts as exactly zero.
ZERO_GRAD = 1e-6
# PARITY_F64=1 runs the reference in float64: how far both float32 sides are from exact.
DOUBLE = os.environ.get("PARITY_F64") == "1"


def prefixed(record, prefix, start):
    return {k[len(prefix) + 1:]: v for k, v in record.items() if k.startswith(f"{prefix}/{start}")}


def moco(record, meta, cfg, report):
    from moco_pytorch import MoCo

    method = dict(cfg["method"])
    ref = MoCo(cfg["model"], method)
    load_into(ref.encoder_q, record, "init/encoder_q.")
    load_into(ref.encoder_k, record, "init/encoder_k.")
    # Ours keeps the queue newest-first `[K, C]` and drops the last rows; the demo's ring buffer
    # `[C, K]` overwrites from column 0. Holding our row K-1-j in column j makes "the oldest
    # keys" the same keys on both sides.
    queue0 = record["init/queue"]
    K = queue0.shape[0]
    ref.queue.copy_(queue0.flip(0).t())
    ref.train()
    if DOUBLE:
        ref.double()
        record = {k: v.double() for k, v in record.items()}

    x0, x1 = record["input/view0"], record["input/view1"]
    perm0, perm1 = record["input/shuffle0"].long(), record["input/shuffle1"].long()
    mixed = record.get("input/mixed")
    lam = float(meta["lambda"]) if mixed is not None else None
    lr, m = float(meta["lr"]), float(meta["tau"])
    opt = optimizer([p for p in ref.parameters() if p.requires_grad], cfg, lr)

    ref.momentum_update_key_encoder(m)  # the demo's step opens with it (a no-op at step 0)
    plain, mixed_loss = ref(x0, x1, perm0, perm1, mixed, lam)
    backward_and_check_loss(opt, plain, mixed_loss, meta, report)

    compare_gradients(record, ref.encoder_q, "encoder_q.", report)

    opt.step()
    # Ours moves the key encoder after the optimiser step; the demo at the start of the next
    # step, with the same query weights: apply that update before comparing.
    ref.momentum_update_key_encoder(m)

    compare_state(record, ref.encoder_q, "encoder_q.", "query encoder after SGD", False, report, lr)
    # Symmetric with a mixture, both sides update them four times per step (x0, mix, x1, mix).
    compare_state(record, ref.encoder_q, "encoder_q.", "query encoder BN running statistics", True, report)
    compare_state(record, ref.encoder_k, "encoder_k.", "key encoder after the momentum update", False, report)
    report.note("key encoder BN running statistics",
                "ours moves them by EMA with the parameters, the demo leaves them to the key "
                "encoder's own forwards; never read (keys always use batch statistics)", ok=None)

    # Queue: the newest 2N (or N) keys first in both, then the kept older keys newest-first.
    q_ref = ref.queue.t()  # [K, C], column j of the ring buffer as row j
    new = ref.queue_ptr
    ref_ours_order = torch.cat([q_ref[:new], q_ref[new:].flip(0)], dim=0)
    report.check(f"queue after enqueue ({new} new keys of {K})", record["after/queue"], ref_ours_order, PARAM_RTOL)


def backward_and_check_loss(opt, plain, mixed_loss, meta, report):
    """Backpropagates the step's loss (plain + mixed terms) and compares it and its terms with
    ours."""
    loss = plain if mixed_loss is None else plain + mixed_loss
    opt.zero_grad()
    loss.backward()
    report.check("loss", torch.tensor(float(meta["loss"])), loss.detach(), LOSS_RTOL)
    report.check("loss term: plain", torch.tensor(float(meta["term/plain"])), plain.detach(), LOSS_RTOL)
    if mixed_loss is not None:
        report.check("loss term: mixed", torch.tensor(float(meta["term/mixed"])), mixed_loss.detach(), LOSS_RTOL)


def compare_gradients(record, module, prefix, report):
    """Every `grad/<prefix>...` of ours against the reference module's `.grad`, one summary row
    (the worst tensor) plus a row per tensor that differs."""
    from common import torch_name

    named = dict(module.named_parameters())
    grads = prefixed(record, "grad", prefix)
    # A bias right before a batch norm has an exact gradient of 0 (the norm removes it); both
    # sides hold rounding noise there, judged against the largest gradient of the module.
    floor = ZERO_GRAD * max(g.abs().max().item() for g in grads.values())
    worst, bad, n = None, [], 0
    for path, g in grads.items():
        p = named[torch_name(path[len(prefix):])]
        n += 1
        sub = Report()
        if p.grad.abs().max().item() <= floor:
            diff = (g.double() - p.grad.double()).abs().max().item()
            sub.rows.append((f"{path} (exactly 0: within {ZERO_GRAD:.0e} of the largest gradient)", diff,
                             floor / GRAD_RTOL, GRAD_RTOL, g.abs().max().item() <= floor, ""))
            r = sub.rows[0]
            if not r[4]:
                bad.append(r)
            continue
        if not sub.check(path, g, p.grad, GRAD_RTOL):
            bad.append(sub.rows[0])
        r = sub.rows[0]
        if worst is None or r[1] / max(r[2], 1e-12) > worst[1] / max(worst[2], 1e-12):
            worst = r
    assert n == len(named), f"{n} gradients recorded under {prefix}, the reference has {len(named)} parameters"
    report.rows.append((f"gradients of all {n} parameters under {prefix} (worst: {worst[0]})",
                        worst[1], worst[2], GRAD_RTOL, not bad, ""))
    report.rows.extend(bad)


def compare_state(record, module, prefix, what, buffers, report, lr=0.0):
    """`after/<prefix>...` of ours against the reference module's parameters (`buffers` False)
    or batch-norm running statistics (True). A parameter's step carries its gradient's error
    times the learning rate (at most: LARS clips its ratio to 1, the first momentum buffer is the
    gradient), so `lr` x the gradient tolerance is allowed on top of PARAM_RTOL."""
    from common import torch_name

    state = module.state_dict()
    worst, bad, count = None, [], 0
    for path, t in prefixed(record, "after", prefix).items():
        key = torch_name(path[len(prefix):])
        if ("running_" in key) != buffers:
            continue
        count += 1
        sub = Report()
        ref_t = state[key]
        grad = record.get(f"grad/{path}")
        step_tol = 0.0 if grad is None else lr * GRAD_RTOL * grad.abs().max().item()
        diff = (t.double() - ref_t.double()).abs().max().item()
        scale = ref_t.abs().max().item()
        rtol = PARAM_RTOL + step_tol / max(scale, 1e-12)
        sub.rows.append((path, diff, scale, rtol, diff <= rtol * scale + 1e-8, ""))
        if not sub.rows[0][4]:
            bad.append(sub.rows[0])
        r = sub.rows[0]
        if worst is None or r[1] / max(r[2], 1e-12) > worst[1] / max(worst[2], 1e-12):
            worst = r
    report.rows.append((f"{what}: {count} tensors (worst: {worst[0]})", worst[1], worst[2], PARAM_RTOL,
                        not bad, ""))
    report.rows.extend(bad)


def optimizer_kind(cfg):
    """`optim.optimizer.kind` of a resolved config."""
    return cfg["optim"].get("optimizer", {}).get("kind", "sgd")


def optimizer(params, cfg, lr):
    """The reference's optimiser for `[optim]`: SGD with L2 weight decay, solo-learn's LARS, or
    Adam with L2 weight decay."""
    from swav_pytorch import LARS

    wd = cfg["optim"].get("weight_decay", 5e-4)
    o = cfg["optim"].get("optimizer", {})
    kind, momentum = optimizer_kind(cfg), o.get("momentum", 0.9)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd)
    if kind == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=wd, eta=o.get("eta", 0.02),
                    clip_lr=o.get("clip", True),
                    exclude_bias_n_norm=o.get("exclude_bias_and_norm", True))
    if kind == "adam":
        # L2 added to the gradient, as htdt's `Adam(weight_decay=...)`.
        return torch.optim.Adam(params, lr=lr, betas=tuple(o.get("betas", (0.9, 0.999))),
                                eps=o.get("eps", 1e-8), weight_decay=wd)
    raise SystemExit(f"optim.optimizer.kind = {kind!r}: no reference optimiser here")


def swav(record, meta, cfg, report):
    from swav_pytorch import SwAV

    method = dict(cfg["method"])
    if method.get("queue_len", 0) > 0:
        raise SystemExit("swav parity: the queue is empty at step 0; record with queue_len = 0")
    ref = SwAV(cfg["model"], method)
    load_into(ref.encoder, record, "init/encoder.")
    load_into(ref.prototypes, record, "init/prototypes.")
    ref.train()
    if DOUBLE:
        ref.double()
        record = {k: v.double() for k, v in record.items()}
    views = [record[f"input/view{i}"] for i in range(sum(k.startswith("input/view") for k in record))]
    mixed = record.get("input/mixed")
    lam = float(meta["lambda"]) if mixed is not None else None
    lr = float(meta["lr"])
    opt = optimizer(list(ref.parameters()), cfg, lr)

    ref.normalize_prototypes()  # the start of every iteration (ours: at init and after a step)
    plain, mixed_loss = ref(views[:2], views[2:], mixed, lam)
    backward_and_check_loss(opt, plain, mixed_loss, meta, report)
    compare_gradients(record, ref.encoder, "encoder.", report)
    compare_gradients(record, ref.prototypes, "prototypes.", report)

    frozen = method.get("freeze_prototypes_steps", 5005) > 0
    if frozen:
        ref.prototypes.weight.grad = None  # main_swav.py: `p.grad = None` while frozen
    opt.step()
    ref.normalize_prototypes()  # the next iteration's start; ours renormalises after the step
    compare_state(record, ref.encoder, "encoder.", f"encoder after {optimizer_kind(cfg).upper()}",
                  False, report, lr)
    compare_state(record, ref.encoder, "encoder.", "encoder BN running statistics", True, report)
    compare_state(record, ref.prototypes, "prototypes.",
                  f"prototypes after the step and renormalisation ({'frozen' if frozen else 'trained'})",
                  False, report, lr)


def adam_on_our_gradients(record, cfg, modules, report):
    """Adam's first step is `lr·g/(|g| + ε)`: where |g| is near ε a gradient's rounding error is
    multiplied by `lr/ε` (300 at lr 3e-3, ε 1e-5), so the reference's own gradient would move
    such an element differently from ours by far more than the gradients differ. With Adam the
    reference's optimiser therefore steps on *our* gradients (already compared above), which
    checks our Adam exactly; returns whether it did. `modules`: (module, record prefix) pairs."""
    from common import torch_name

    if optimizer_kind(cfg) != "adam":
        return False
    for module, prefix in modules:
        named = dict(module.named_parameters())
        for path, g in prefixed(record, "grad", prefix).items():
            p = named[torch_name(path[len(prefix):])]
            p.grad = g.to(p.dtype).clone()
    report.note("Adam", "the reference's Adam steps on our gradients (compared above): near |g| = ε its "
                "step magnifies a gradient's rounding error by lr/ε", ok=None)
    return True


def two_view_setup(ref, record, meta, modules):
    """Loads our initial weights into the reference's `modules` ((module, record prefix) pairs),
    puts it in train mode (float64 under PARITY_F64), and returns the record in that precision,
    the two views, the mixture and λ (None without Un-Mix)."""
    for module, prefix in modules:
        load_into(module, record, f"init/{prefix}")
    ref.train()
    if DOUBLE:
        ref.double()
        record = {k: v.double() for k, v in record.items()}
    mixed = record.get("input/mixed")
    lam = float(meta["lambda"]) if mixed is not None else None
    return record, record["input/view0"], record["input/view1"], mixed, lam


def simclr(record, meta, cfg, report):
    from simclr_pytorch import SimCLR

    ref = SimCLR(cfg["model"], dict(cfg["method"]))
    record, x0, x1, mixed, lam = two_view_setup(ref, record, meta, [(ref.encoder, "encoder.")])
    lr = float(meta["lr"])
    opt = optimizer(list(ref.parameters()), cfg, lr)

    plain, mixed_loss = ref(x0, x1, mixed, lam)
    backward_and_check_loss(opt, plain, mixed_loss, meta, report)
    compare_gradients(record, ref.encoder, "encoder.", report)
    ours = adam_on_our_gradients(record, cfg, [(ref.encoder, "encoder.")], report)
    opt.step()
    compare_state(record, ref.encoder, "encoder.", f"encoder after {optimizer_kind(cfg)}",
                  False, report, 0.0 if ours else lr)
    compare_state(record, ref.encoder, "encoder.", "encoder BN running statistics", True, report)


def byol(record, meta, cfg, report):
    from byol_pytorch import BYOL

    method = dict(cfg["method"])
    ref = BYOL(cfg["model"], method)
    record, x0, x1, mixed, lam = two_view_setup(
        ref, record, meta, [(ref.online, "online."), (ref.predictor, "predictor."), (ref.target, "target.")])
    lr, tau = float(meta["lr"]), float(meta["tau"])
    # The predictor's own learning rate (solo-learn's `predictor_lr`, ours `predictor_lr_scale`).
    opt = optimizer([{"params": list(ref.online.parameters())},
                     {"params": list(ref.predictor.parameters()),
                      "lr": lr * method.get("predictor_lr_scale", 1.0)}], cfg, lr)

    plain, mixed_loss = ref(x0, x1, mixed, lam)
    backward_and_check_loss(opt, plain, mixed_loss, meta, report)
    compare_gradients(record, ref.online, "online.", report)
    compare_gradients(record, ref.predictor, "predictor.", report)
    ours = adam_on_our_gradients(record, cfg, [(ref.online, "online."), (ref.predictor, "predictor.")], report)
    if ours:
        lr = 0.0  # no gradient error to allow for in the steps below
    opt.step()
    ref.momentum_update(tau)  # htdt's `model.step(progress)` after the optimiser step
    what = optimizer_kind(cfg)
    compare_state(record, ref.online, "online.", f"online encoder after {what}", False, report, lr)
    compare_state(record, ref.predictor, "predictor.", f"predictor after {what}", False, report,
                  lr * method.get("predictor_lr_scale", 1.0))
    compare_state(record, ref.target, "target.", f"target encoder after the momentum update (τ {tau})", False,
                  report)
    compare_state(record, ref.online, "online.", "online encoder BN running statistics", True, report)
    report.note("target encoder BN running statistics", "ours moves them by EMA with the parameters, htdt "
                "leaves them to the target's own forwards; never read (train mode)", ok=None)


def one_view_setup(ref, record, meta, cfg, encoders=("encoder",)):
    """The memory-bank methods' common start: our initial encoders loaded into the reference's
    (`ref.<name>` from `init/<name>.`), train mode (float64 under PARITY_F64), and the record in
    that precision, the one view, the batch's sample ids, the mixture and λ (None without
    Un-Mix), the learning rate and the optimiser."""
    for name in encoders:
        load_into(getattr(ref, name), record, f"init/{name}.")
    ref.train()
    if DOUBLE:
        ref.double()
        record = {k: v.double() for k, v in record.items()}
    mixed = record.get("input/mixed")
    lam = float(meta["lambda"]) if mixed is not None else None
    lr = float(meta["lr"])
    opt = optimizer(list(ref.parameters()), cfg, lr)
    return record, record["input/view0"], record["input/indices"].long(), mixed, lam, lr, opt


def invariance_propagation(record, meta, cfg, report):
    from invariance_propagation_pytorch import InvariancePropagation

    ref = InvariancePropagation(cfg["model"], dict(cfg["method"]))
    record, x, idx, mixed, lam, lr, opt = one_view_setup(ref, record, meta, cfg)
    bank, neigh = record["init/bank.memory"], record["init/graph.table"].long()

    # The reference counts epochs from 1 (`i_epoch`); the record's `epoch` from 0 (step 0 of a
    # record taken after `--warm-epochs N` is in epoch N).
    i_epoch = int(meta.get("epoch", "0")) + 1
    if i_epoch > 1:
        # After warm epochs the step must walk a filled graph, or it tests step 0 again.
        filled = int((neigh[idx].abs().sum(dim=1) > 0).sum())
        report.note("graph rows of the batch filled before the step", f"{filled} of {len(idx)}",
                    ok=filled == len(idx))
    loss, terms, neigh_after, f = ref(x, idx, bank, neigh, i_epoch, mixed, lam)
    opt.zero_grad()
    loss.backward()
    report.check("loss", torch.tensor(float(meta["loss"])), loss.detach(), LOSS_RTOL)
    for name, value in terms.items():
        report.check(f"loss term: {name}", torch.tensor(float(meta[f"term/{name}"])), value.detach(), LOSS_RTOL)
    compare_gradients(record, ref.encoder, "encoder.", report)
    opt.step()
    compare_state(record, ref.encoder, "encoder.", "encoder after SGD", False, report, lr)
    compare_state(record, ref.encoder, "encoder.", "encoder BN running statistics", True, report)
    with torch.no_grad():
        bank_after = ref.update_points(bank, f.detach(), idx)
    report.check("memory bank after the momentum update", record["after/bank.memory"], bank_after, PARAM_RTOL)
    # Ids are exact: any difference is a different neighbour.
    report.check("kNN graph after update_nn", record["after/graph.table"], neigh_after, 0.0)


def insdis(record, meta, cfg, report):
    from insdis_pytorch import InsDis

    ref = InsDis(cfg["model"], dict(cfg["method"]))
    record, x, y, mixed, lam, lr, opt = one_view_setup(ref, record, meta, cfg)
    memory, z = record["init/bank.memory"], record["init/normalizer"].item()
    idx = record["input/contrast_ids"].long()

    plain, mixed_loss, z, feat = ref(x, idx, memory, z, mixed, lam)
    backward_and_check_loss(opt, plain, mixed_loss, meta, report)
    compare_gradients(record, ref.encoder, "encoder.", report)
    opt.step()
    compare_state(record, ref.encoder, "encoder.", "encoder after SGD", False, report, lr)
    compare_state(record, ref.encoder, "encoder.", "encoder BN running statistics", True, report)
    with torch.no_grad():
        memory_after = ref.update(memory, feat.detach(), y)
    report.check("memory bank after the momentum update", record["after/bank.memory"], memory_after, PARAM_RTOL)
    if not ref.softmax:
        report.check("NCE normaliser Z (set by the first batch)", record["after/normalizer"],
                     torch.as_tensor(z).reshape(1), LOSS_RTOL)


def cmc(record, meta, cfg, report):
    from cmc_pytorch import Cmc

    ref = Cmc(cfg["model"], dict(cfg["method"]))
    record, x, y, mixed, lam, lr, opt = one_view_setup(ref, record, meta, cfg, ("encoder_l", "encoder_ab"))
    mem_l, mem_ab = record["init/bank_l.memory"], record["init/bank_ab.memory"]
    z_l, z_ab = record["init/normalizer_l"].item(), record["init/normalizer_ab"].item()
    idx = record["input/contrast_ids"].long()

    plain, mixed_loss, z_l, z_ab, l, ab = ref(x, idx, mem_l, mem_ab, z_l, z_ab, mixed, lam)
    backward_and_check_loss(opt, plain, mixed_loss, meta, report)
    for name in ("encoder_l", "encoder_ab"):
        compare_gradients(record, getattr(ref, name), f"{name}.", report)
    opt.step()
    for name in ("encoder_l", "encoder_ab"):
        compare_state(record, getattr(ref, name), f"{name}.", f"{name} after SGD", False, report, lr)
        compare_state(record, getattr(ref, name), f"{name}.", f"{name} BN running statistics", True, report)
    with torch.no_grad():
        for bank, memory, feat in (("bank_l", mem_l, l), ("bank_ab", mem_ab, ab)):
            report.check(f"{bank} after the momentum update", record[f"after/{bank}.memory"],
                         ref.update(memory, feat.detach(), y), PARAM_RTOL)
    if not ref.softmax:
        for name, z in (("normalizer_l", z_l), ("normalizer_ab", z_ab)):
            report.check(f"NCE normaliser {name} (set by the first batch)", record[f"after/{name}"],
                         torch.as_tensor(z).reshape(1), LOSS_RTOL)


METHODS = {"moco": moco, "swav": swav, "simclr": simclr, "byol": byol,
           "invariance_propagation": invariance_propagation, "insdis": insdis, "cmc": cmc}

# How many standard errors a statistic of ours may sit from the reference's (about 120
# statistics are tested per record).
STD_SIGMAS = 5.0


def init_statistics(record, cfg, report):
    """Every initial parameter of ours against the reference's initialisation of the same
    architecture (`common.init_as_config`: torchvision's or PyTorch's default, with the demo's
    default-initialised stem when the config asks for it): per tensor, the mean and the standard deviation within STD_SIGMAS standard errors of
    the reference's; batch-norm weights exactly
    1 and biases 0."""
    from common import Encoder, init_as_config, spread_z, torch_name, trained_encoder_prefix

    model = copy.deepcopy(cfg["model"])
    if cfg["method"]["kind"] == "cmc":
        # The L encoder (CMC's other one differs only in its stem's input channels).
        model["backbone"]["in_channels"] = cfg["method"].get("first_channels", 1)
    ref = Encoder(model)
    backbone = cfg["model"]["backbone"]
    init_as_config(ref, backbone)
    state = ref.state_dict()
    worst, bad, count = None, [], 0
    # The trained encoder: MoCo's query encoder, BYOL's online one, else the only one.
    prefix = trained_encoder_prefix(record)
    for name, ours in record.items():
        if not name.startswith(prefix) or "running_" in name:
            continue
        ref_t = state[torch_name(name[len(prefix):])].double()
        ours = ours.double()
        count += 1
        if ref_t.dim() == 1 and (name.endswith("gamma") or name.endswith("beta")):
            err = (ours - ref_t).abs().max().item()
            ok = err == 0
            z = 0.0 if ok else float("inf")
        else:
            n = ours.numel()
            s_ref = ref_t.std().item()
            # Both sides are samples of n draws: the difference of two means has standard error
            # s·sqrt(2/n), the log-ratio of two standard deviations about sqrt(1/n).
            z = max(abs(ours.mean().item() - ref_t.mean().item()) / (s_ref * (2 / n) ** 0.5),
                    spread_z(ours, ref_t))
            ok = z <= STD_SIGMAS
        if not ok:
            bad.append((name, f"{z:.1f} standard errors from the reference's distribution"))
        if worst is None or z > worst[1]:
            worst = (name, z)
    report.note(f"initial distribution of {count} tensors (worst: {worst[0]}, {worst[1]:.1f} standard errors)",
                f"convolutions {backbone.get('conv_init', 'kaiming_normal')}, "
                f"stem {backbone.get('stem_init') or 'the same'}", ok=not bad)
    for name, why in bad:
        report.note(name, why, ok=False)


def replay(kind, record, meta, cfg, flips):
    relu.recording = True
    relu.reset(flips)
    report = Report()
    METHODS[kind](record, meta, cfg, report)
    return report


def explain_by_relu_ties(kind, record, meta, cfg, report):
    """A ReLU input within float32 rounding of 0 can land on the other side of 0 in ours, which
    sends that element's gradient the other way and shifts every gradient below it by far more
    than rounding. Greedily take the derivative of the near-zero elements (|x| < Relu.TIE, closest
    first) from the other side, one at a time, keeping each that brings the tensors closer, up
    to MAX_TIES: if every tensor then agrees, the step is the same up to those ties (reported,
    not a failure)."""
    ties = sorted(relu.ties, key=lambda t: abs(t[2]))[:TIE_CANDIDATES]
    chosen, best = [], score(report)
    for _ in range(MAX_TIES):
        trials = []
        for t in ties:
            if t in chosen:
                continue
            r = replay(kind, record, meta, cfg, {(c, pos) for c, pos, _ in chosen + [t]})
            trials.append((score(r), t, r))
        if not trials:
            break
        s, t, r = min(trials, key=lambda x: x[0])
        if s >= best:
            break
        chosen.append(t)
        best = s
        if r.ok():
            for c, pos, x in chosen:
                r.note(f"ReLU tie (call {c}, element {pos})",
                       f"x = {x:.1e} in the reference; ours rounds it to the other side of 0. "
                       "With the derivative of the ties listed taken from that side every tensor agrees")
            return r
    return report


def float64_arbiter(kind, record, meta, cfg, report32):
    """Both sides round in float32, and a ReLU tie can sit on the reference's side: its float32
    rounding sends an element across 0 where the exact value (and ours) does not, and the tie
    search above may miss it among many near-zero candidates. The same reference in float64 is
    the exact step: if ours agrees with it (ties included), ours is right and the float32
    reference is the one that is off; the report says so and keeps the float32 rows' summary."""
    global DOUBLE
    DOUBLE = True
    try:
        report = replay(kind, record, meta, cfg, set())
        if not report.ok():
            report = explain_by_relu_ties(kind, record, meta, cfg, report)
    finally:
        DOUBLE = False
    if not report.ok():
        return report32
    worst = max((r for r in report32.rows if r[1] is not None),
                key=lambda r: r[1] / (r[3] * r[2] + 1e-8))
    report.note("compared with the reference in float64",
                f"the float32 reference differs from ours (worst: {worst[0]}, {worst[1]:.1e} of "
                f"{worst[2]:.1e}) but ours agrees with the exact step: a float32 rounding of the "
                "reference's, not a difference of ours")
    return report


# At most this many ties are taken from the other side, chosen among the closest candidates.
MAX_TIES, TIE_CANDIDATES = 4, 24


def score(report):
    """How far the compared tensors are, in units of their tolerances, summed: a sum rather than
    the worst, so that taking one of two ties from the other side counts as progress even when
    the other still dominates some tensor."""
    return sum(r[1] / (r[3] * r[2] + 1e-8) for r in report.rows if r[1] is not None)


def main():
    torch.manual_seed(0)  # the reference's own initialisation draws, for init_statistics
    args = sys.argv[1:]
    record, meta = load_record(args[0])
    cfg = tomllib.loads(meta["config"])
    kind = cfg["method"]["kind"]
    report = replay(kind, record, meta, cfg, set())
    if not report.ok():
        report = explain_by_relu_ties(kind, record, meta, cfg, report)
    if not report.ok() and not DOUBLE:
        report = float64_arbiter(kind, record, meta, cfg, report)
    # A record taken after warm epochs (`unmix parity-step --warm-epochs`) starts from trained
    # weights, which no longer follow the initial distribution.
    epoch = int(meta.get("epoch", "0"))
    if epoch == 0:
        init_statistics(record, cfg, report)
    where = "step 0" if epoch == 0 else f"the first step of epoch {epoch + 1}"
    unmix = cfg.get("unmix", {}).get("enabled", False)
    title = (f"{kind}{' + Un-Mix (' + meta['mix_kind'] + ', λ ' + format(float(meta['lambda']), '.4f') + ')' if unmix else ''}"
             f", {where}: {args[0]}")
    report.print(title)
    if "--markdown" in args:
        import contextlib
        with open(args[args.index("--markdown") + 1], "a") as f, contextlib.redirect_stdout(f):
            report.print(title)
    sys.exit(0 if report.ok() else 1)


if __name__ == "__main__":
    main()
