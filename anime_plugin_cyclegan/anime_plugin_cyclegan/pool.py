"""History pool of generated images: Shrivastava et al., "Learning from simulated and unsupervised
images through adversarial training" (section 2.3), as CycleGAN uses it (Zhu et al., "Unpaired
image-to-image translation using cycle-consistent adversarial networks", section 4).

The discriminators are updated with a mix of the newest fakes and up to ``size`` (50,
``loss.pool_size``) older ones, which damps oscillation. Until the pool is full every fake is
stored and returned; after that each fake is, with probability 1/2, swapped for a random stored
image (which it replaces).
Randomness uses torch's global generator (seeded and checkpointed by the training loop) and the
contents round-trip through :meth:`state_dict` so a resumed run continues exactly.
"""

from __future__ import annotations

import torch


class ImagePool:
    """A buffer of ``size`` past generated images; ``size=0`` disables it."""

    def __init__(self, size: int = 50) -> None:
        self.size = int(size)
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch the size of ``images`` mixing them with stored ones (see module doc)."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) < 0.5:
                i = int(torch.randint(self.size, ()))
                old = self.images[i].to(image.device)
                self.images[i] = image.clone()
                out.append(old)
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        stored = torch.stack([t.cpu() for t in self.images]) if self.images else torch.empty(0)
        return {"images": stored}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        stored = state["images"]
        self.images = [t.clone() for t in stored] if stored.numel() else []
