"""Loads a backbone that `unmix_models::save_torchvision` (or `unmix export`) wrote into
torchvision's own ResNet and compares its features with ours.

    python3 docs/reference/torchvision_load.py BACKBONE.safetensors IO.safetensors ARCH STEM

`IO.safetensors` holds `input` [N, 3, H, W] and `features` [N, D] computed by our model in
evaluation mode; ARCH is a `torchvision.models` constructor (`resnet18`, `resnet50`), STEM
`cifar` (torchvision's stem swapped for a 3x3 convolution, no max-pool, as CIFAR models do) or
`imagenet`. The load is strict: every tensor of torchvision's trunk must be in the file. Exits
non-zero, with the largest difference, when the features differ by more than 1e-4 relative.
"""

import sys

import torch
import torchvision
from safetensors.torch import load_file


def main(backbone, io, arch, stem):
    model = getattr(torchvision.models, arch)()
    if stem == "cifar":
        model.conv1 = torch.nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
        model.maxpool = torch.nn.Identity()
    model.fc = torch.nn.Identity()
    result = model.load_state_dict(load_file(backbone), strict=True)
    assert not result.missing_keys and not result.unexpected_keys, result
    model.eval()
    data = load_file(io)
    with torch.no_grad():
        ours, theirs = data["features"], model(data["input"])
    scale = ours.abs().max().item()
    diff = (ours - theirs).abs().max().item()
    print(f"{arch} ({stem} stem): {ours.shape[0]} images, features {tuple(theirs.shape)}, "
          f"largest difference {diff:.3g} of {scale:.3g}")
    sys.exit(0 if diff <= 1e-4 * max(scale, 1.0) else 1)


if __name__ == "__main__":
    main(*sys.argv[1:5])
