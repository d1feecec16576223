"""Inference: photo -> Lab lightness -> autoencoder -> Lab(L, a*b*) -> RGB, with the paper's user controls.

Paper Fig. 2 / II.D: the network sees the grayscale (L*) photo and predicts the chroma; the
output image keeps the photo's lightness. Paper I.E and IV ("user-centric customization",
"interactive controls"):

- ``--strength S`` in [0, 1] blends in chroma space: a*b* = (1 - S) * photo's a*b* + S * predicted.
  0 returns the photo's own colours, 1 the full anime chroma. The ``rgb`` variant predicts its own
  lightness too; strength blends only its chroma, so its lightness is always the network's.
- ``--interpolate A.jpg B.jpg --steps N`` (``vae`` weights): encode both photos to their posterior
  means, decode N evenly spaced points of the straight line between them (a latent walk); the
  lightness of each frame is the same blend of the two photos. B is resized to A's size. The run
  mode returns the frames; ``anime run`` writes them to ``-o DIR`` as ``frame-000.png`` ... or,
  with ``-o walk.png``, side by side into one strip.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from anime_core.errors import UsageError
from anime_core.inference import io
from anime_core.inference.modes import ModeOutput, RunRequest
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.inference.tiling import pad_to_multiple
from anime_plugin_ae.color import AB_SCALE, lab_to_rgb, rgb_to_lab, rgb_to_lightness


class AEPipeline(TranslatePipeline):
    """:class:`TranslatePipeline` in Lab space with ``strength`` and a VAE latent walk."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        strength = self.options.get("strength")
        self.strength = 1.0 if strength is None else float(strength)
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"strength must be between 0 and 1, not {self.strength}")

    @property
    def lab(self) -> bool:
        return int(getattr(self.generator, "in_channels", 1)) == 1

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB -> normalised L* (Lab variants) or RGB in [-1, 1] (``rgb``)."""
        return rgb_to_lightness(x) if self.lab else x * 2 - 1

    def postprocess(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Prediction and the [0, 1] input -> RGB [0, 1]: Lab(photo L, blended a*b*)."""
        photo = rgb_to_lab(x)
        if self.lab:
            lab = torch.cat([photo[:, :1], y.float() * AB_SCALE], dim=1)
        else:
            rgb = ((y.float() + 1) / 2).clamp(0, 1)
            if self.strength == 1.0:
                return rgb
            lab = rgb_to_lab(rgb)
        lab[:, 1:] = torch.lerp(photo[:, 1:], lab[:, 1:], self.strength)
        return lab_to_rgb(lab)

    # -- latent walk --------------------------------------------------------------------------
    @torch.inference_mode()
    def interpolate(
        self, a: Image.Image, b: Image.Image, steps: int = 8, size: int | None = None
    ) -> list[torch.Tensor]:
        """``steps`` frames (3, H, W) in [0, 1] from photo ``a`` to photo ``b`` through the VAE latent."""
        gen = self.generator
        if not getattr(gen, "variational", False):
            raise UsageError("--interpolate needs VAE weights (trained with generator.variant=vae or --config vae)")
        if steps < 2:
            raise UsageError(f"--steps must be at least 2, not {steps}")
        a = self.prepare(io.to_rgb(a), size)
        b = io.to_rgb(b).resize(a.size, Image.Resampling.LANCZOS)
        photos = torch.stack([io.to_tensor(a), io.to_tensor(b)]).to(self.device).float() / 255
        padded, (h, w) = pad_to_multiple(photos, self.stride)
        with self.autocast():
            mu, _, _ = gen.encode(self.to_compute(self.preprocess(padded)))
        frames = []
        for t in torch.linspace(0, 1, steps).tolist():
            x = torch.lerp(padded[:1], padded[1:], t)
            with self.autocast():
                y = gen.decode(torch.lerp(mu[:1], mu[1:], t), (), self.to_compute(self.preprocess(x)))
            frames.append(self.postprocess(y[..., :h, :w], x[..., :h, :w])[0].cpu())
        return frames

    def run_mode(self, request: RunRequest) -> ModeOutput | None:
        """``--interpolate A B``: the frames of the latent walk, side by side when written as one file."""
        pair = self.options.get("interpolate")
        if not pair:
            return None
        if request.inputs:
            raise UsageError("--interpolate takes its two photos itself; give no other inputs")
        a, b = (request.read(path) for path in pair)
        frames = self.interpolate(a, b, int(self.options.get("steps") or 8), request.size)
        return ModeOutput(torch.stack(frames), "frame", nrow=len(frames), padding=0, frames=True)
