"""Distribution metrics on feature sets: FID, KID, Inception Score, precision and recall.

Every function takes features already extracted (``(N, D)`` tensors), so one pass of the
extractor over a folder serves all four metrics, and tests can feed hand-made features.
The arithmetic is torch-fidelity's (the reference implementation whose numbers match the
original TensorFlow code); these wrappers only choose the papers' settings:

- FID (M. Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
  Equilibrium", NeurIPS 2017, eq. 6): ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` on pool_3.
- KID (M. Binkowski et al., "Demystifying MMD GANs", ICLR 2018, section 3): unbiased MMD^2 with the
  cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over 100 random subsets of 1000
  (reported as mean and std, like Sharma & Das, Tables 2-3). Folders smaller than 1000 use subsets
  as large as the smaller folder.
- IS (T. Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016, section 4):
  ``exp(E_x KL(p(y|x) || p(y)))`` on the generated images'
  logits, mean and std over 10 splits (fewer when there are fewer than 10 images).
- Precision/recall (T. Kynkaanniemi et al., "Improved Precision and Recall Metric for Assessing
  Generative Models", NeurIPS 2019, section 2): a generated sample counts as precise when it
  lies inside the k-NN ball (k=3) of some real sample, and a real sample counts as recalled when it lies
  inside the k-NN ball of some generated sample.
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

from anime_core.errors import UsageError

#: defaults of the papers' metrics (see the module docstring)
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
IS_SPLITS = 10
PRC_NEIGHBORHOOD = 3
SEED = 2020  # torch-fidelity's default seed for subset sampling and split shuffling


def _cpu(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to("cpu", torch.float64)


def _need(n: int, at_least: int, what: str) -> None:
    if n < at_least:
        raise UsageError(f"{what} needs at least {at_least} images in each set, got {n}; add images")


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D)."""
    _need(min(len(real), len(fake)), 2, "FID")
    stats_r, stats_f = fid_features_to_statistics(_cpu(real)), fid_features_to_statistics(_cpu(fake))
    return float(fid_statistics_to_metric(stats_f, stats_r, verbose=False)[KEY_METRIC_FID])


def kid_subset_size(n_real: int, n_fake: int, subset_size: int = KID_SUBSET_SIZE) -> int:
    return min(subset_size, n_real, n_fake)


def kid(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = SEED,
) -> tuple[float, float]:
    """(mean, std) of the unbiased polynomial-kernel MMD^2 over ``subsets`` random subsets."""
    _need(min(len(real), len(fake)), 2, "KID")
    out = kid_features_to_metric(
        _cpu(fake),
        _cpu(real),
        kid_subsets=subsets,
        kid_subset_size=kid_subset_size(len(real), len(fake), subset_size),
        rng_seed=seed,
        verbose=False,
    )
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


def inception_score(logits: torch.Tensor, splits: int = IS_SPLITS, seed: int = SEED) -> tuple[float, float]:
    """(mean, std) of ``exp(E KL(p(y|x) || p(y)))`` over ``splits`` shuffled splits of the logits."""
    _need(len(logits), 1, "IS")
    out = isc_features_to_metric(_cpu(logits), splits=min(splits, len(logits)), shuffle=True, rng_seed=seed)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD])


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = PRC_NEIGHBORHOOD) -> tuple[float, float]:
    """Improved precision and recall with k-NN balls (k=3 in the paper's experiments)."""
    _need(min(len(real), len(fake)), k + 1, f"precision/recall with k={k}")
    out = prc_features_to_metric(
        _cpu(fake), _cpu(real), prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=False, verbose=False
    )
    return float(out[KEY_METRIC_PRECISION]), float(out[KEY_METRIC_RECALL])
