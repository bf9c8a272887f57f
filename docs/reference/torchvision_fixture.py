"""Writes the fixture of `unmix_models`' torchvision import test
(`crates/unmix-models/tests/torchvision_weights.rs`): a ResNet-18 built by torchvision's own
code (`torchvision.models.resnet.ResNet._make_layer`, `BasicBlock`, `_forward_impl`) at width 4,
every parameter and batch-norm statistic drawn at random, saved

- `resnet18_w4.safetensors`: its `state_dict()` as torchvision names it (the 10-class `fc`
  and `num_batches_tracked` included: the import must ignore them);
- `resnet18_w4.pt`: the same tensors as a training checkpoint stores them,
  `torch.save({"epoch": 7, "state_dict": {"module.encoder_q." + name: tensor}})`;
- `resnet18_w4_io.safetensors`: an input `[2, 3, 32, 32]` and the pooled features `[2, 32]`
  of the model in evaluation mode (`fc` replaced by the identity).

It also checks that at width 64 the names are exactly `torchvision.models.resnet18()`'s.

    python3 docs/reference/torchvision_fixture.py crates/unmix-models/tests/fixtures
"""

import os
import sys

import torch
import torch.nn as nn
import torchvision
from safetensors.torch import save_file
from torchvision.models.resnet import BasicBlock, ResNet


class NarrowResNet18(ResNet):
    """torchvision's ResNet-18 (ImageNet stem) with stage widths w, 2w, 4w, 8w: torchvision
    fixes w = 64 in `ResNet.__init__`, so this sets up the same attributes and lets torchvision's
    `_make_layer` and `forward` do the rest."""

    def __init__(self, w, num_classes=10):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = w, 1, 1, 64
        self.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, w, 2)
        self.layer2 = self._make_layer(BasicBlock, 2 * w, 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 4 * w, 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, 8 * w, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * w, num_classes)


def main(out):
    os.makedirs(out, exist_ok=True)
    full = set(torchvision.models.resnet18().state_dict())
    assert set(NarrowResNet18(64, 1000).state_dict()) == full, "names differ from torchvision's"

    g = torch.Generator().manual_seed(2026)
    model = NarrowResNet18(4)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(11)
            elif name.endswith("running_var") or (".bn" in name or name.startswith("bn")
                                                    or "downsample.1" in name) and name.endswith("weight"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))  # variances and scales > 0
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            else:  # convolutions and fc: Kaiming-like scale keeps activations O(1)
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out, "resnet18_w4.safetensors"))
    torch.save({"epoch": 7, "state_dict": {"module.encoder_q." + k: v for k, v in state.items()}},
               os.path.join(out, "resnet18_w4.pt"))

    model.fc = nn.Identity()
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        features = model(x)
    save_file({"input": x, "features": features.contiguous()},
              os.path.join(out, "resnet18_w4_io.safetensors"))
    print("features[0, :4]", features[0, :4].tolist())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "crates/unmix-models/tests/fixtures")
