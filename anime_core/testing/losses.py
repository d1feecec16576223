"""The ``losses`` and ``builders`` checks: registered losses give finite differentiable scalars, builders
no model names build with their defaults."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from anime_core.errors import AnimeError
from anime_core.testing.report import Report, Subject, err


def _positional(fn: Any) -> int:
    """How many positional arguments ``fn`` (or a module's ``forward``) requires; 2 if it takes ``*args``."""
    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return -1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def _offline_options(build: Any) -> dict[str, bool]:
    """``pretrained=False`` for every builder option named ``*pretrained*``, so no backbone downloads."""
    try:
        params = inspect.signature(build).parameters
    except (TypeError, ValueError):
        return {}
    return {name: False for name in params if "pretrained" in name}


def check_losses(s: Subject, report: Report) -> None:
    """GAN losses through ``d_loss(real, fake)``/``g_loss(fake)``, others as ``loss(a, b)`` on two image batches
    or ``loss(x)`` on one (a regulariser such as total variation).

    Options named ``*pretrained*`` are set to false; a loss that needs other build options or takes
    other arguments is skipped (:attr:`Report.skipped` says why).
    """
    for spec in s.own(s.registry.losses):
        name = f"loss '{spec.name}'"
        try:
            build = spec.builder()
            loss = build(**_offline_options(build))
        except TypeError as exc:
            report.skipped.append(f"{name} needs build options ({exc})")
            continue
        except AnimeError as exc:  # e.g. pretrained backbone weights while offline
            report.skipped.append(f"{name} cannot build offline ({exc})")
            continue
        except Exception as exc:
            report.problems.append(f"{name} does not build with its defaults ({err(exc)})")
            continue
        if not callable(loss):
            report.problems.append(f"{name} builder returned {type(loss).__name__}, which is not callable")
            continue
        gen = torch.Generator().manual_seed(0)
        gan = callable(getattr(loss, "d_loss", None)) and callable(getattr(loss, "g_loss", None))
        if spec.adversarial and not gan:
            report.problems.append(f"{name} is registered as adversarial but has no d_loss(real, fake)/g_loss(fake)")
            continue
        if gan:
            real, fake = (torch.randn(2, 1, 4, 4, generator=gen).requires_grad_() for _ in range(2))
            calls = [("d_loss", loss.d_loss, (real, fake)), ("g_loss", loss.g_loss, (fake,))]
        elif _positional(loss) in (1, 2):  # (prediction, target), or one image batch for a regulariser
            images = [torch.rand(2, 3, 16, 16, generator=gen).mul(2).sub(1).requires_grad_() for _ in range(2)]
            calls = [("forward", loss, tuple(images[: _positional(loss)]))]
        else:
            report.skipped.append(f"{name} takes arguments other than (prediction, target) or (image,)")
            continue
        for label, fn, args in calls:
            try:
                value = fn(*args)
            except Exception as exc:
                report.problems.append(f"{name} {label} raised on {[tuple(a.shape) for a in args]} ({err(exc)})")
                continue
            if not (isinstance(value, torch.Tensor) and value.dim() == 0 and torch.isfinite(value)):
                report.problems.append(f"{name} {label} returned {value!r:.60}, expected a finite scalar tensor")
            elif not value.requires_grad:
                report.problems.append(f"{name} {label} is not differentiable with respect to its inputs")


def check_builders(s: Subject, report: Report) -> None:
    """Generator/discriminator builders no model names return an ``nn.Module`` when they build without options."""
    reg = s.registry
    used = {m.generator for m in reg.models.values()} | {m.discriminator for m in reg.models.values()}
    for kind, table in (("generator", reg.generators), ("discriminator", reg.discriminators)):
        for spec in s.own(table):
            if spec.name in used:
                continue
            try:
                module = spec.builder()()
            except TypeError as exc:
                report.skipped.append(f"{kind} '{spec.name}' needs options to build ({exc})")
                continue
            except Exception as exc:
                report.problems.append(f"{kind} '{spec.name}' does not build with its defaults ({err(exc)})")
                continue
            if not isinstance(module, nn.Module):
                report.problems.append(f"{kind} '{spec.name}' builder returned {type(module).__name__}")
