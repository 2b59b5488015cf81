"""Two-view augmentation applied to whole uint8 batches on the training device.

All geometric steps of docs/method.md §2 (random rotation with border-colour fill, 90°
rotation, flips, random resized crop) compose into one affine map per image, so each view costs
a single ``grid_sample``; colour jitter and grayscale act on the batch with per-image random
factors.
Every draw comes from the generator passed in, so a (seed, step) pair fixes the views.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medmap.augment.spec import AugmentationSpec

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # luma weights of torchvision rgb_to_grayscale


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) to float (B, 3, H, W) in [0, 1]: the network's input, un-augmented."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) to its luma (B, 1, H, W)."""
    weights = images.new_tensor(GRAY_WEIGHTS).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    red, green, blue = images.unbind(dim=1)
    value, _ = images.max(dim=1)
    minimum, _ = images.min(dim=1)
    chroma = value - minimum
    safe_chroma = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    saturation = torch.where(value > 0, chroma / torch.where(value > 0, value, 1.0), 0.0)
    hue_red = ((green - blue) / safe_chroma) % 6.0
    hue_green = (blue - red) / safe_chroma + 2.0
    hue_blue = (red - green) / safe_chroma + 4.0
    hue = torch.where(value == red, hue_red, torch.where(value == green, hue_green, hue_blue))
    hue = torch.where(chroma > 0, hue / 6.0, torch.zeros_like(hue))
    return torch.stack((hue, saturation, value), dim=1)


def hsv_to_rgb(images: torch.Tensor) -> torch.Tensor:
    hue, saturation, value = images.unbind(dim=1)
    # f(n) = v - v s max(0, min(k, 4 - k, 1)), k = (n + 6 h) mod 6, for n = 5, 3, 1 (R, G, B)
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (n + hue * 6.0) % 6.0
        channels.append(value - value * saturation * (torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)))
    return torch.stack(channels, dim=1)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (images * factor).clamp_(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return (factor * images + (1.0 - factor) * mean).clamp_(0.0, 1.0)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * images + (1.0 - factor) * grayscale(images)).clamp_(0.0, 1.0)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    hsv = rgb_to_hsv(images)
    hue = (hsv[:, :1] + shift) % 1.0
    return hsv_to_rgb(torch.cat((hue, hsv[:, 1:]), dim=1))


COLOUR_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def apply_to_selected(
    views: torch.Tensor, selected: torch.Tensor, op, factor: torch.Tensor, use_masks: bool
) -> torch.Tensor:
    """``op`` with each image's factor on the selected images; the others unchanged. With
    masks, op runs on every image and is kept where selected: more arithmetic, but the host
    never waits for the GPU. Index lists compute only the selected images but read their count
    back, a wait for the device (16 per view) that is free on a CPU and costly on a GPU shared
    by several runs (results/gpu/README.md)."""
    if use_masks:
        return torch.where(selected.view(-1, 1, 1, 1), op(views, factor.view(-1, 1, 1, 1)), views)
    chosen = selected.nonzero().squeeze(1)
    if chosen.numel():
        views[chosen] = op(views[chosen], factor[chosen].view(-1, 1, 1, 1))
    return views


class BatchAugmenter:
    """Draws an augmented view of every image in a uint8 batch (docs/method.md §2 distributions)."""

    def __init__(self, spec: AugmentationSpec, fill_colour) -> None:
        self.spec = spec
        self.fill_colour = torch.as_tensor(fill_colour, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, height, width, _ = images.shape
        if height != width:
            raise ValueError(f"Augmentation expects square images, got {height}x{width}")
        # Float32 even inside the Trainer's bf16 autocast: there affine_grid would build the
        # sampling grid in bf16 (8-bit mantissa: ~0.03 px of rounding at 28 px, 0.1 px at 96).
        with torch.autocast(images.device.type, enabled=False):
            views = to_float_images(images)
            views = self._geometry(views, generator)
            views = self._colour_jitter(views, generator)
            return self._grayscale(views, generator)

    def _uniform(self, shape, low, high, generator, device) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device) * (high - low) + low

    def _coin(self, batch: int, p: float, generator, device) -> torch.Tensor:
        return torch.rand(batch, generator=generator, device=device) < p

    def affine_matrices(self, batch: int, generator, device) -> torch.Tensor:
        """(B, 2, 3) maps from output to input coordinates (``affine_grid`` convention):
        input = R(angle) · Rot90^k · VFlip^v · (Crop · HFlip^h · output + crop centre)."""
        spec = self.spec
        ones = torch.ones(batch, device=device)
        sign_h = torch.where(self._coin(batch, spec.hflip_p, generator, device), -ones, ones)
        sign_v = torch.where(self._coin(batch, spec.vflip_p, generator, device), -ones, ones)
        quarter = self._coin(batch, spec.rot90_p, generator, device).float() * (math.pi / 2)
        degrees = spec.rotation_degrees
        angle = quarter + self._uniform(batch, -degrees, degrees, generator, device) * (
            math.pi / 180
        )
        half_w, half_h, centre_x, centre_y = self._crop_boxes(batch, generator, device)

        cos, sin = torch.cos(angle), torch.sin(angle)
        # Linear part L = R · diag(1, sign_v) · diag(half_w, half_h) · diag(sign_h, 1)
        scale_x = half_w * sign_h
        scale_y = half_h * sign_v
        linear = torch.stack(
            (
                torch.stack((cos * scale_x, -sin * scale_y), dim=1),
                torch.stack((sin * scale_x, cos * scale_y), dim=1),
            ),
            dim=1,
        )
        shifted_y = centre_y * sign_v
        offset = torch.stack(
            (cos * centre_x - sin * shifted_y, sin * centre_x + cos * shifted_y), 1
        )
        return torch.cat((linear, offset.unsqueeze(-1)), dim=2)

    def _crop_boxes(self, batch: int, generator, device, attempts: int = 10):
        """RandomResizedCrop boxes as half-extents and centres in [-1, 1] coordinates: area
        fraction ~ U(scale), log aspect ratio ~ U(log ratio), first of 10 tries that fits,
        else the whole image; the box lies uniformly inside the image."""
        if not self.spec.crop:
            ones = torch.ones(batch, device=device)
            return ones, ones, ones * 0.0, ones * 0.0
        low, high = self.spec.crop_scale
        area = self._uniform((batch, attempts), low, high, generator, device)
        log_low, log_high = (math.log(r) for r in self.spec.crop_ratio)
        ratio = torch.exp(self._uniform((batch, attempts), log_low, log_high, generator, device))
        width, height = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
        fits = (width <= 1.0) & (height <= 1.0)
        first = torch.argmax(fits.int(), dim=1, keepdim=True)
        any_fits = fits.any(dim=1)
        width = torch.where(any_fits, width.gather(1, first).squeeze(1), 1.0)
        height = torch.where(any_fits, height.gather(1, first).squeeze(1), 1.0)
        centre_x = self._uniform(batch, -1.0, 1.0, generator, device) * (1.0 - width)
        centre_y = self._uniform(batch, -1.0, 1.0, generator, device) * (1.0 - height)
        return width, height, centre_x, centre_y

    def _geometry(self, views: torch.Tensor, generator) -> torch.Tensor:
        theta = self.affine_matrices(views.shape[0], generator, views.device)
        grid = F.affine_grid(theta, list(views.shape), align_corners=False)
        fill = self.fill_colour.to(views.device)
        # Sampling (x - fill) with zero padding and adding fill back paints exposed corners
        # with the dataset's border colour.
        return F.grid_sample(views - fill, grid, mode="bilinear", align_corners=False).add_(fill)

    def _colour_jitter(self, views: torch.Tensor, generator) -> torch.Tensor:
        spec = self.spec
        batch, device = views.shape[0], views.device
        strengths = (spec.brightness, spec.contrast, spec.saturation, spec.hue)
        if spec.jitter_p == 0 or not any(strengths):
            return views
        factors = [
            self._uniform(batch, max(0.0, 1 - s), 1 + s, generator, device) for s in strengths[:3]
        ] + [self._uniform(batch, -spec.hue, spec.hue, generator, device)]
        jittered = self._coin(batch, spec.jitter_p, generator, device)
        # torchvision's ColorJitter applies its four steps in a random order, drawn per image.
        order = torch.rand((batch, 4), generator=generator, device=device).argsort(dim=1)
        use_masks = device.type != "cpu"
        for step in range(4):
            for op_index, op in enumerate(COLOUR_OPS):
                if strengths[op_index]:
                    selected = jittered & (order[:, step] == op_index)
                    views = apply_to_selected(views, selected, op, factors[op_index], use_masks)
        return views

    def _grayscale(self, views: torch.Tensor, generator) -> torch.Tensor:
        if self.spec.grayscale_p == 0:
            return views
        chosen = self._coin(views.shape[0], self.spec.grayscale_p, generator, views.device)
        return torch.where(chosen.view(-1, 1, 1, 1), grayscale(views).expand_as(views), views)
