"""Writes the cases of `crates/unmix-data/tests/pil_augment.rs`: the reference code's 8-bit
augmentations (torchvision's PIL path on `PIL.Image`s) applied by the installed Pillow to random
RGB images with random parameters, inputs and outputs as bytes.

Each case is `{"op", "params", "height", "width", "input", "output"}` with the images
channel-major (`[3, H, W]`), the layout of `unmix_data::pil::Rgb8`. Parameters that torchvision
draws as float32 (`torch.empty(1).uniform_`) are float32 values here too, so that both sides
pass Pillow the same float. The ops go through `torchvision.transforms.functional` when
torchvision is installed, otherwise through the Pillow calls it makes for a PIL image
(`torchvision/transforms/_functional_pil.py`), so only Pillow and numpy are required.

    python3 docs/reference/pil_augment.py OUT.json [--cases-per-op N]
"""

import argparse
import json

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

try:
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode
except ImportError:  # Pillow alone: the calls torchvision makes for a PIL image.
    TF = None


def resized_crop(img, top, left, h, w, size):
    if TF is not None:
        return TF.resized_crop(img, top, left, h, w, [size, size],
                               interpolation=InterpolationMode.BILINEAR)
    return img.crop((left, top, left + w, top + h)).resize((size, size), Image.BILINEAR)


def brightness(img, f):
    return TF.adjust_brightness(img, f) if TF else ImageEnhance.Brightness(img).enhance(f)


def contrast(img, f):
    return TF.adjust_contrast(img, f) if TF else ImageEnhance.Contrast(img).enhance(f)


def saturation(img, f):
    return TF.adjust_saturation(img, f) if TF else ImageEnhance.Color(img).enhance(f)


def hue(img, f):
    if TF is not None:
        return TF.adjust_hue(img, f)
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    np_h += np.int32(f * 255).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert("RGB")


def grayscale(img):
    if TF is not None:
        return TF.rgb_to_grayscale(img, num_output_channels=3)
    return Image.merge("RGB", [img.convert("L")] * 3)


def solarize(img):
    return TF.solarize(img, 128) if TF else ImageOps.solarize(img, 128)


def hflip(img):
    return TF.hflip(img) if TF else img.transpose(Image.FLIP_LEFT_RIGHT)


def blur(img, sigma):
    # MoCo v2's `GaussianBlur` (moco/loader.py) and SimCLR's PIL blur.
    return img.filter(ImageFilter.GaussianBlur(radius=sigma))


def f32(x):
    return float(np.float32(x))


def planar(img):
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).reshape(-1).tolist()


def main():
    a = argparse.ArgumentParser()
    a.add_argument("out")
    a.add_argument("--cases-per-op", type=int, default=40)
    args = a.parse_args()
    rng = np.random.default_rng(2026)
    cases = []

    def case(op, params, img, out):
        cases.append({"op": op, "params": params, "height": img.height, "width": img.width,
                      "input": planar(img), "output": planar(out)})

    def image(h, w):
        # Half the images are noise (every byte value, every hue), half smooth gradients with
        # a little noise, closer to photographs.
        if rng.random() < 0.5:
            return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        y, x = np.mgrid[0:h, 0:w]
        base = rng.uniform(0, 255, 3) + rng.uniform(-6, 6, 3) * x[..., None] \
            + rng.uniform(-6, 6, 3) * y[..., None] + rng.normal(0, 8, (h, w, 3))
        return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")

    n = args.cases_per_op
    for _ in range(5 * n):
        # RandomResizedCrop boxes on CIFAR-sized sources (upsampling) and on larger ones
        # (Pillow's antialiased downsampling), to 32 and other sizes.
        src_h, src_w = [(32, 32), (28, 28), (96, 96), (40, 57)][rng.integers(4)]
        img = image(src_h, src_w)
        h, w = int(rng.integers(1, src_h + 1)), int(rng.integers(1, src_w + 1))
        top, left = int(rng.integers(0, src_h - h + 1)), int(rng.integers(0, src_w - w + 1))
        size = int([32, 32, 24, 64][rng.integers(4)])
        case("resized_crop", [top, left, h, w, size], img, resized_crop(img, top, left, h, w, size))
    for op, fn, lo, hi in [("brightness", brightness, 0.0, 2.0), ("contrast", contrast, 0.0, 2.0),
                           ("saturation", saturation, 0.0, 2.0), ("hue", hue, -0.5, 0.5)]:
        for _ in range(n):
            img = image(int(rng.integers(1, 33)), int(rng.integers(1, 33)))
            f = f32(rng.uniform(lo, hi))
            case(op, [f], img, fn(img, f))
    for _ in range(n):
        img = image(int(rng.integers(1, 33)), int(rng.integers(1, 33)))
        sigma = f32(rng.uniform(0.1, 2.0))
        case("blur", [sigma], img, blur(img, sigma))
    for op, fn in [("grayscale", grayscale), ("solarize", solarize), ("hflip", hflip)]:
        for _ in range(max(1, n // 4)):
            img = image(int(rng.integers(1, 33)), int(rng.integers(1, 33)))
            case(op, [], img, fn(img))
    with open(args.out, "w") as f:
        json.dump({"torchvision": TF is not None, "cases": cases}, f)
    print(f"{len(cases)} cases ({'torchvision' if TF else 'Pillow alone'}) -> {args.out}")


if __name__ == "__main__":
    main()
