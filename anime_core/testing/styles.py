"""The ``styles`` check: each style can be downloaded, verified and run."""

from __future__ import annotations

import re

from anime_core.testing.report import Report, Subject, err

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_PREPROCESS_TYPES: dict[str, type | tuple[type, ...]] = {"size": int, "center_crop": bool}
_HASHES = (
    ("sha256", range(64, 65), "64"),
    ("git_sha1", range(40, 41), "40"),
    ("sha256_prefix", range(8, 65), "8 to 64"),
)


def check_styles(s: Subject, report: Report) -> None:
    """An http(s) URL, a well-formed hash, a known layout, generator options that build, typed preprocess
    defaults and a license note."""
    reg = s.registry
    for style in s.own(reg.styles):
        st = f"style '{style.key}'"
        src = style.source
        if not re.match(r"^https?://[^/\s]+/\S+$", src.url or ""):
            report.problems.append(f"{st} URL '{src.url}' is not an http(s) URL of a file")
        for attr, lengths, text in _HASHES:
            value = getattr(src, attr)
            if value is not None and not (_HEX.match(value) and len(value) in lengths):
                report.problems.append(f"{st} {attr} '{value}' is not {text} hex digits")
        layouts = {"native"} | {c.name for c in reg.converters_of(style.model)}
        if src.layout not in layouts:
            report.problems.append(
                f"{st} layout '{src.layout}' is neither 'native' nor a converter of '{style.model}' "
                f"({', '.join(sorted(layouts))})"
            )
        if not style.license.strip():
            report.problems.append(f"{st} has no license note (StyleSpec.license)")
        model = reg.models.get(style.model)
        if model is None:
            continue
        try:
            reg.build(model, "generator", **dict(style.generator))
        except Exception as exc:
            report.problems.append(f"{st} generator options {dict(style.generator)} do not build ({err(exc)})")
        if model.pipeline is not None:  # a model's own pipeline defines its own preprocess keys
            continue
        for key, value in style.preprocess.items():
            kind = _PREPROCESS_TYPES.get(key)
            if kind is None:
                report.problems.append(f"{st} preprocess key '{key}' is unknown; use {', '.join(_PREPROCESS_TYPES)}")
            elif not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 1)):
                report.problems.append(f"{st} preprocess '{key}' has the wrong type or value {value!r}")
