"""Shared pieces of our PyTorch references: the ResNet, heads and split batch norm as the
reference code builds them, parity records (safetensors written by `unmix parity-step`), and
tensor comparison.

Written by us from the papers and the reference code's behaviour
(`../shared/reference/algorithms.md`); module attribute names follow our Rust modules so that a
record's paths map onto `state_dict()` names with `torch_name`.
"""

import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class SplitBatchNorm(nn.BatchNorm2d):
    """The MoCo CIFAR demo's split batch norm (`unmix_c10.py`, from the MoCo Colab): in training
    the batch `[N, C, H, W]` is viewed as `[N/S, S*C, H, W]`, so sample n falls in split n mod S,
    and the running statistics are the mean over the splits' own running statistics."""

    def __init__(self, num_features, num_splits, **kw):
        super().__init__(num_features, **kw)
        self.num_splits = num_splits

    def forward(self, x):
        n, c, h, w = x.shape
        if self.training or not self.track_running_stats:
            s = self.num_splits
            rm = self.running_mean.repeat(s)
            rv = self.running_var.repeat(s)
            out = F.batch_norm(x.reshape(-1, c * s, h, w), rm, rv, self.weight.repeat(s),
                               self.bias.repeat(s), True, self.momentum, self.eps).reshape(n, c, h, w)
            self.running_mean.data.copy_(rm.view(s, c).mean(dim=0))
            self.running_var.data.copy_(rv.view(s, c).mean(dim=0))
            return out
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, self.momentum, self.eps)


class _Relu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, flips):
        ctx.save_for_backward(x)
        ctx.flips = flips
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        mask = (x > 0).to(g.dtype)  # torch.relu's derivative: 1 where x > 0
        for pos in ctx.flips:
            mask[pos] = 1 - mask[pos]
        return g * mask, None


class Relu:
    """torch.relu with what the parity check needs to tell a float tie from a bug: every call
    is numbered, elements with |x| < TIE are collected in `ties` as (call, index, x), and
    `flips` (a set of (call, index)) takes those elements' derivative from the other side of 0,
    as a float32 implementation that rounded x across 0 does."""

    TIE = 1e-4

    def __init__(self):
        self.recording = False  # the parity check turns it on; training runs keep plain relu
        self.reset(set())

    def reset(self, flips):
        self.calls, self.flips, self.ties = 0, set(flips), []

    def __call__(self, x):
        call = self.calls
        self.calls += 1
        if self.recording and torch.is_grad_enabled() and x.requires_grad:
            near = (x.abs() < self.TIE).nonzero().tolist()
            self.ties.extend((call, tuple(i), x[tuple(i)].item()) for i in near)
            return _Relu.apply(x, [pos for (c, pos) in self.flips if c == call])
        return torch.relu(x)


relu = Relu()


def bn(c, splits):
    return SplitBatchNorm(c, splits) if splits > 1 else nn.BatchNorm2d(c)


class Block(nn.Module):
    """torchvision's BasicBlock / Bottleneck (stride on the 3x3 convolution)."""

    def __init__(self, kind, cin, planes, stride, splits):
        super().__init__()
        out = planes * (4 if kind == "bottleneck" else 1)
        if kind == "bottleneck":
            self.conv1 = nn.Conv2d(cin, planes, 1, 1, 0, bias=False)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.conv3 = nn.Conv2d(planes, out, 1, 1, 0, bias=False)
            self.bn3 = bn(out, splits)
        else:
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.conv3 = None
        self.bn1, self.bn2 = bn(planes, splits), bn(planes, splits)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), bn(out, splits))

    def forward(self, x):
        idn = x if self.downsample is None else self.downsample(x)
        out = relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.conv3 is not None:
            out = self.bn3(self.conv3(relu(out)))
        return relu(out + idn)


class ResNet(nn.Module):
    """torchvision's ResNet layout with a width setting and the CIFAR or ImageNet stem; ends with
    global average pooling (the fc is the head's)."""

    def __init__(self, backbone):
        super().__init__()
        w, splits = backbone["width"], backbone.get("bn_splits", 1)
        kind, cin = backbone.get("block", "basic"), backbone.get("in_channels", 3)
        if backbone["stem"] == "cifar":
            self.conv1 = nn.Conv2d(cin, w, 3, 1, 1, bias=False)
            self.maxpool = None
        else:
            self.conv1 = nn.Conv2d(cin, w, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = bn(w, splits)
        cin, exp = w, (4 if kind == "bottleneck" else 1)
        for i, (planes, stride) in enumerate([(w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)]):
            blocks = []
            for b in range(backbone["layers"][i]):
                blocks.append(Block(kind, cin, planes, stride if b == 0 else 1, splits))
                cin = planes * exp
            setattr(self, f"layer{i + 1}", nn.ModuleList(blocks))
        self.feature_dim = cin

    def forward(self, x):
        x = relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(4):
            for block in getattr(self, f"layer{i + 1}"):
                x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class Head(nn.Module):
    """Linear, or Linear-[BN]-ReLU-Linear-[BN] (BatchNorm1d, one split)."""

    def __init__(self, head, in_dim):
        super().__init__()
        self.hidden = self.hidden_bn = self.last_bn = None
        if head["kind"] == "mlp":
            self.hidden = nn.Linear(in_dim, head["hidden_dim"])
            if head.get("hidden_bn"):
                self.hidden_bn = nn.BatchNorm1d(head["hidden_dim"])
            in_dim = head["hidden_dim"]
        self.fc = nn.Linear(in_dim, head["out_dim"])
        if head.get("last_bn"):
            self.last_bn = nn.BatchNorm1d(head["out_dim"])

    def forward(self, x):
        if self.hidden is not None:
            x = self.hidden(x)
            if self.hidden_bn is not None:
                x = self.hidden_bn(x)
            x = relu(x)
        x = self.fc(x)
        return x if self.last_bn is None else self.last_bn(x)


class Encoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.backbone = ResNet(model["backbone"])
        self.head = Head(model["head"], self.backbone.feature_dim)

    def forward(self, x):
        return self.head(self.backbone(x))


def init_torchvision(encoder, stem_default):
    """torchvision's ResNet initialisation: Kaiming normal (fan-out, ReLU gain) for every
    convolution, batch norm 1 / 0, linear layers PyTorch's default. `stem_default` keeps the stem
    convolution at PyTorch's default instead, as the Un-Mix / MoCo CIFAR demo does (it replaces
    torchvision's stem after the init loop)."""
    init_convolutions(encoder, "kaiming_normal", "pytorch_default" if stem_default else None)


def init_convolutions(encoder, conv_init, stem_init=None):
    """A freshly built encoder initialised as a config's `[model.backbone]` asks (`conv_init`,
    `stem_init`, the names of ours' `ConvInit`): `kaiming_normal` as torchvision's init loop,
    `pytorch_default` as a bare `nn.Conv2d` (what the encoder was built with, so left alone);
    batch norms 1 / 0 either way, linear layers PyTorch's default."""
    for name, m in encoder.backbone.named_modules():
        init = (stem_init or conv_init) if name == "conv1" else conv_init
        if isinstance(m, nn.Conv2d) and init == "kaiming_normal":
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_as_config(encoder, backbone):
    """`init_convolutions` with a config's `[model.backbone]` table (ours' defaults when a key is
    absent: torchvision's Kaiming normal everywhere)."""
    init_convolutions(encoder, backbone.get("conv_init", "kaiming_normal"), backbone.get("stem_init"))


def trained_encoder_prefix(record):
    """The record prefix of the encoder a method trains: MoCo's query encoder, BYOL's online
    one, else the only one (CMC: its L encoder)."""
    return next(p for p in ("init/encoder_q.", "init/online.", "init/encoder.", "init/encoder_l.")
                if any(k.startswith(p) for k in record))


def spread_z(ours, ref):
    """|log(sd ours / sd ref)| in standard errors: for n draws the log-ratio of two sample
    standard deviations has a standard error of about sqrt(1/n)."""
    return abs(math.log(ours.std().item() / ref.std().item())) / (1 / ours.numel()) ** 0.5


def arg(args, name, default):
    """The value after `name` in a script's `args`, of `default`'s type; `default` if absent."""
    return type(default)(args[args.index(name) + 1]) if name in args else default


def torch_name(path):
    """Our module path -> the `state_dict` name of the modules above."""
    return (path.replace("downsample.conv.", "downsample.0.").replace("downsample.bn.", "downsample.1.")
            .replace(".gamma", ".weight").replace(".beta", ".bias"))


def load_record(path):
    """A safetensors file (f32 tensors) -> ({name: tensor}, {metadata})."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", f"{name}: {info['dtype']}"
        a, b = info["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(body[a:b], dtype="<f4").copy()).reshape(info["shape"])
    return tensors, meta


def load_into(module, record, prefix):
    """Copies `record[prefix + <our path>]` (e.g. prefix `init/encoder_q.`) into `module`'s
    parameters and buffers; every tensor of the module must be found (num_batches_tracked
    excepted)."""
    state = module.state_dict()
    loaded = set()
    for name, t in record.items():
        if not name.startswith(prefix):
            continue
        key = torch_name(name[len(prefix):])
        if key in state:
            assert state[key].shape == t.shape, f"{key}: ours {tuple(t.shape)}, reference {tuple(state[key].shape)}"
            state[key].copy_(t)
            loaded.add(key)
    missing = [k for k in state if k not in loaded and not k.endswith("num_batches_tracked")]
    assert not missing, f"not in the record: {missing}"
    return loaded


class Report:
    """Rows of (what, max |ours - reference|, scale, tolerance, ok, text)."""

    def __init__(self):
        self.rows = []

    def check(self, what, ours, ref, rtol):
        ours, ref = ours.double(), ref.double()
        diff = (ours - ref).abs().max().item()
        scale = ref.abs().max().item()
        ok = diff <= rtol * scale + 1e-8
        self.rows.append((what, diff, scale, rtol, ok, ""))
        return ok

    def note(self, what, text, ok=True):
        """A row without numbers: a finding that passes (`ok` True), fails (False) or was not
        compared (None)."""
        self.rows.append((what, None, None, None, ok, text))

    def print(self, title):
        print(f"\n### {title}\n")
        print("| tensor(s) | max abs diff | max abs ref | tolerance (x scale) | result |")
        print("|---|---|---|---|---|")
        for what, diff, scale, rtol, ok, text in self.rows:
            verdict = "ok" if ok is True else "DIFFERS" if ok is False else "not compared"
            if diff is None:
                print(f"| {what} | | | | {verdict}{': ' + text if text else ''} |")
            else:
                print(f"| {what} | {diff:.3e} | {scale:.3e} | {rtol:.0e} | {verdict} |")

    def ok(self):
        return all(r[4] is not False for r in self.rows)
