"""The registry: every spec from every plugin, merged, with clear errors (timm-style lookups).

Plugins are found through the ``anime.plugins`` entry-point group. A plugin that fails to
import, whose hook raises, or that registers an invalid or clashing spec is recorded with its
error (``anime plugins`` shows it) and everything else keeps working.

Plugin code is contained as far as a process can contain it: whatever its import or a hook raises,
``SystemExit`` and ``KeyboardInterrupt`` included, is that plugin's recorded error (a real Ctrl-C,
seen by a SIGINT handler installed while plugins load, still aborts); what it prints goes to stderr,
so ``--json`` output stays JSON; an import still running after ``ANIME_PLUGIN_NOTICE_SECONDS``
(default 5) is named on stderr, since it cannot be stopped; ``ANIME_DISABLE_PLUGINS=name,...``
skips plugins by entry-point name without uninstalling them.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import os
import re
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from anime_core import builtin, hookspecs
from anime_core.defaults import model_defaults
from anime_core.errors import PluginError, UsageError, did_you_mean, unknown
from anime_core.specs import (
    DatasetSpec,
    DetectorSpec,
    DiscriminatorSpec,
    GeneratorSpec,
    LossSpec,
    ModelSpec,
    StyleSpec,
    WeightsConverter,
    WeightsSource,
)
from anime_core.text import printable
from anime_core.variants import Variants, variants_of

if TYPE_CHECKING:
    from torch import nn

CORE_PLUGIN = "anime-core"
#: distributions whose registrations win a name clash: the core and the paper plugins it ships
FIRST_PARTY = frozenset(
    {"anime-core", "anime-plugin-animegan", "anime-plugin-cyclegan", "anime-plugin-dcgan", "anime-plugin-ae"}
)
#: a style, model or file name that becomes one path component under $ANIME_HOME
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
PARTS = ("generator", "discriminator")
#: environment: comma-separated entry-point names of installed plugins not to load
DISABLE_ENV = "ANIME_DISABLE_PLUGINS"
#: environment: seconds a plugin may import before stderr names it (default ``NOTICE_SECONDS``)
NOTICE_ENV = "ANIME_PLUGIN_NOTICE_SECONDS"
NOTICE_SECONDS = 5.0

# hook name -> (registry attribute, spec type)
_HOOKS: dict[str, tuple[str, type]] = {
    "anime_register_generators": ("generators", GeneratorSpec),
    "anime_register_discriminators": ("discriminators", DiscriminatorSpec),
    "anime_register_losses": ("losses", LossSpec),
    "anime_register_datasets": ("datasets", DatasetSpec),
    "anime_register_models": ("models", ModelSpec),
    "anime_register_styles": ("styles", StyleSpec),
    "anime_weights_converters": ("converters", WeightsConverter),
    "anime_register_detectors": ("detectors", DetectorSpec),
}


@dataclass
class PluginInfo:
    """One installed plugin: where it came from and what went wrong, if anything."""

    name: str
    distribution: str = ""
    version: str = ""
    errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    disabled: bool = False  # named in ANIME_DISABLE_PLUGINS: installed, not loaded

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def status(self) -> str:
        return "disabled" if self.disabled else "ok" if self.ok else "ERROR"


@dataclass
class Registry:
    """All registered specs by name. Built by :func:`load_registry`."""

    generators: dict[str, GeneratorSpec] = field(default_factory=dict)
    discriminators: dict[str, DiscriminatorSpec] = field(default_factory=dict)
    losses: dict[str, LossSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    styles: dict[str, StyleSpec] = field(default_factory=dict)
    converters: dict[str, WeightsConverter] = field(default_factory=dict)
    detectors: dict[str, DetectorSpec] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)

    # -- lookups with "did you mean" ------------------------------------------------------
    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise unknown("model", name, self.models)
        return self.models[name]

    def generator(self, name: str) -> GeneratorSpec:
        if name not in self.generators:
            raise unknown("generator", name, self.generators)
        return self.generators[name]

    def discriminator(self, name: str) -> DiscriminatorSpec:
        if name not in self.discriminators:
            raise unknown("discriminator", name, self.discriminators)
        return self.discriminators[name]

    def loss(self, name: str) -> LossSpec:
        if name not in self.losses:
            raise unknown("loss", name, self.losses)
        return self.losses[name]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            raise unknown("dataset kind", name, self.datasets)
        return self.datasets[name]

    def style(self, model: str, name: str) -> StyleSpec:
        self.model(model)
        key = f"{model}:{name}"
        if key not in self.styles:
            styles = self.styles_of(model)
            if not styles:
                raise UsageError(f"{model} has no pretrained styles installed; use --weights FILE (e.g. from "
                                 f"'anime train {model}')")
            raise UsageError(f"{model} has no style '{name}'{did_you_mean(name, styles)}")
        return self.styles[key]

    def detector(self, name: str) -> DetectorSpec:
        if name not in self.detectors:
            raise unknown("face detector", name, self.detectors)
        return self.detectors[name]

    def styles_of(self, model: str) -> dict[str, StyleSpec]:
        return {s.name: s for s in self.styles.values() if s.model == model}

    def converters_of(self, model: str) -> list[WeightsConverter]:
        return [c for c in self.converters.values() if c.model == model]

    # -- building ----------------------------------------------------------------------
    def build(self, model: str | ModelSpec, part: str = "generator", **overrides: Any) -> nn.Module:
        """Build ``part`` (``generator`` or ``discriminator``) of ``model`` from its registered builder.

        Options are the ``generator:``/``discriminator:`` section of the model's default config,
        updated with ``overrides``; an option the builder does not take is a usage error with a
        suggestion. A model with variants builds the ``<generator>.<variant>`` builder its
        ``variant`` option (or ``variant_key``) names (:mod:`anime_core.variants`). This is the one
        way nets are built (``anime_core.build``, tasks, pipelines).
        """
        spec = model if isinstance(model, ModelSpec) else self.model(model)
        if part not in PARTS:
            raise UsageError(f"unknown part '{part}'; use 'generator' or 'discriminator'")
        name = spec.generator if part == "generator" else spec.discriminator
        if name is None:
            raise UsageError(f"model '{spec.name}' has no {part}")
        defaults = model_defaults(spec).get(part) or {}
        variants = variants_of(spec, self, defaults) if part == "generator" else None
        if variants is not None:  # a model with several networks: the core picks the <model>.<variant> builder
            name, builder, options = variants.choose(self, {**defaults, **variants.canonical(overrides)}, defaults)
            return call_builder(part, name, builder.builder(), options)
        builder = self.generator(name) if part == "generator" else self.discriminator(name)
        return call_builder(part, name, builder.builder(), {**defaults, **overrides})

    def variants(self, model: str | ModelSpec) -> Variants | None:
        """The networks ``model`` chooses among (its ``<generator>.<variant>`` builders); ``None`` if it has one."""
        return variants_of(model if isinstance(model, ModelSpec) else self.model(model), self)

    @property
    def load_errors(self) -> list[str]:
        return [f"{p.name}: {e}" for p in self.plugins.values() for e in p.errors]

    # -- registering -------------------------------------------------------------------
    def add(self, plugin: str, attr: str, spec: Any) -> None:
        """Add one spec from ``plugin``; raise :class:`PluginError` if invalid or clashing."""
        _validate(attr, spec)
        table: dict[str, Any] = getattr(self, attr)
        key = spec.key if isinstance(spec, StyleSpec) else spec.name
        if key in table:
            other = table[key].plugin
            raise PluginError(
                f"cannot register {attr[:-1]} '{key}': plugin '{other}' already registers it, so plugin "
                f"'{plugin}' is ignored for it; uninstall '{plugin}' or ask its author to rename it"
            )
        table[key] = replace(spec, plugin=plugin)


def _validate(attr: str, spec: Any) -> None:
    expected = {a: t for a, t in _HOOKS.values()}[attr]
    if not isinstance(spec, expected):
        raise PluginError(f"returned {type(spec).__name__} from the {attr} hook, expected {expected.__name__}")
    name = spec.key if isinstance(spec, StyleSpec) else spec.name
    if not name or not isinstance(name, str):
        raise PluginError(f"registered a {expected.__name__} without a name")
    if isinstance(spec, StyleSpec):
        if not isinstance(spec.source, WeightsSource):
            raise PluginError(f"style '{name}' has no WeightsSource (source={spec.source!r})")
        _check_safe_name(f"style '{name}'", "model", spec.model)
        _check_safe_name(f"style '{name}'", "style", spec.name)
    if isinstance(spec, DetectorSpec):
        _check_safe_name(f"detector '{name}'", "detector", spec.name)
        if spec.source is not None and not isinstance(spec.source, WeightsSource):
            raise PluginError(f"detector '{name}' has a source that is not a WeightsSource ({spec.source!r})")
    src = getattr(spec, "source", None)
    what = f"{'style' if isinstance(spec, StyleSpec) else 'detector'} '{name}'"
    for file in src.files if isinstance(src, WeightsSource) else ():  # every file (a TF checkpoint's .index and .data)
        if not isinstance(file.url, str) or not file.url:
            raise PluginError(f"{what} has a file without a download URL")
        _check_safe_name(what, "file", file.file_name)
        if not (file.sha256 or file.git_sha1 or file.sha256_prefix):
            raise PluginError(
                f"{what} has no sha256 or git_sha1 hash for {file.file_name}, so its download cannot be verified"
            )
    if isinstance(spec, ModelSpec):
        _check_safe_name(f"model '{name}'", "model", name)
    if isinstance(spec, ModelSpec) and spec.kind not in ("translate", "generate"):
        raise PluginError(f"model '{name}' has kind '{spec.kind}', expected 'translate' or 'generate'")
    for attr_name in ("build", "matches", "convert", "describe", "task", "schema", "pipeline", "prepare"):
        if attr_name in type(spec).__dataclass_fields__:
            _check_ref(f"{expected.__name__} '{name}'", attr_name, getattr(spec, attr_name))


def _check_safe_name(what: str, label: str, value: Any) -> None:
    """Names that become paths under $ANIME_HOME are one plain component: no '..', no separators."""
    if not isinstance(value, str) or not SAFE_NAME.match(value) or ".." in value:
        raise PluginError(
            f"{what} has {label} name {value!r}, which is not a plain file name (letters, digits, '.', '_', '-'); "
            f"it would be written outside the weights cache"
        )


def _check_ref(what: str, attr: str, ref: Any) -> None:
    """A reference is ``"package.module:attribute"`` (imported when used) or a callable; ``None`` if optional."""
    if ref is None and attr not in ("build", "matches", "convert"):
        return
    if isinstance(ref, str):
        module, sep, name = ref.partition(":")
        if sep and module and name and all(p.isidentifier() for p in [*module.split("."), *name.split(".")]):
            return
        raise PluginError(f"{what} has {attr}='{ref}', which is not a 'package.module:attribute' reference")
    if not callable(ref):
        raise PluginError(f"{what} has a non-callable {attr}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PluginError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


#: what plugin code may raise and still be only that plugin's error: a plugin's ``sys.exit()`` or
#: ``raise KeyboardInterrupt`` must not end every command (a real Ctrl-C is told apart, see _sigint_watch)
_CONTAINED = (Exception, SystemExit, KeyboardInterrupt)


def _dist_of(ep: md.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    return dist.metadata["Name"], dist.version


def _core_version() -> str:
    try:
        return md.version("anime-core")
    except md.PackageNotFoundError:
        return "0+unknown"


def disabled_plugins() -> set[str]:
    """Entry-point names in ``ANIME_DISABLE_PLUGINS`` (comma-separated)."""
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _notice_seconds() -> float:
    raw = os.environ.get(NOTICE_ENV, "").strip()
    try:
        seconds = float(raw) if raw else NOTICE_SECONDS
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e6:
        raise UsageError(f"{NOTICE_ENV}={raw!r} is not a number of seconds; give e.g. {NOTICE_ENV}=5")
    return seconds


@contextmanager
def _sigint_watch() -> Iterator[list[bool]]:
    """While plugins load, tell a real Ctrl-C (SIGINT: ``pressed[0]`` becomes true) from plugin code raising
    KeyboardInterrupt. Outside the main thread, or under a handler of the application's own, SIGINT does
    not arrive here as KeyboardInterrupt, so one that does is the plugin's."""
    pressed = [False]
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield pressed
        return

    def on_sigint(signum: int, frame: Any) -> None:
        pressed[0] = True
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, old)


@contextmanager
def _plugin_code(doing: str, notice_after: float, hint: str = "") -> Iterator[None]:
    """Run plugin code with its prints on stderr; if it is still running after ``notice_after`` s, say so once.

    Python cannot stop a hanging import, but the user learns which plugin it is and how to skip it.
    """
    stderr = sys.stderr

    def notice() -> None:
        print(f"anime: still {doing} ({notice_after:g} s)...{hint}", file=stderr, flush=True)

    timer = threading.Timer(notice_after, notice)
    timer.daemon = True
    timer.start()
    try:
        with redirect_stdout(stderr):
            yield
    finally:
        timer.cancel()


def _contain(exc: BaseException, pressed: list[bool]) -> None:
    """Re-raise a KeyboardInterrupt that came from the user's Ctrl-C; anything else stays the plugin's."""
    if isinstance(exc, KeyboardInterrupt) and pressed[0]:
        raise exc


def _load_entry_points(pm: pluggy.PluginManager, reg: Registry, pressed: list[bool], strict: bool) -> None:
    """Import and register every installed plugin that is not disabled; record each one's failure on it."""
    disabled, notice_after = disabled_plugins(), _notice_seconds()
    # first-party plugins register first, so a third party cannot take over their names
    eps = [(ep, *_dist_of(ep)) for ep in md.entry_points(group=hookspecs.ENTRY_POINT_GROUP)]
    for ep, dist, version in sorted(eps, key=lambda e: (e[1] not in FIRST_PARTY, e[0].name)):
        info = reg.plugins.setdefault(ep.name, PluginInfo(ep.name, dist, version))
        if ep.name in disabled:
            info.disabled = True
            continue
        name = printable(ep.name)
        hint = f" if it hangs, {DISABLE_ENV}={name} skips it"
        try:
            with _plugin_code(f"importing plugin '{name}'", notice_after, hint):
                obj = ep.load()
                pm.register(obj, name=ep.name)
        except _CONTAINED as exc:  # a broken plugin must not break the others
            _contain(exc, pressed)
            info.errors.append(f"failed to load ({_describe(exc)})")
            if strict:
                raise PluginError(f"plugin '{ep.name}' failed to load: {_describe(exc)}") from exc


def _call_hooks(pm: pluggy.PluginManager, reg: Registry, pressed: list[bool], strict: bool) -> None:
    """Call each hook implementation separately, so every spec is attributed to its plugin and one
    plugin's failure stays its own."""
    notice_after = _notice_seconds()
    for hook_name, (attr, _) in _HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():  # registration order
            plugin = impl.plugin_name
            info = reg.plugins.setdefault(plugin, PluginInfo(plugin))
            try:
                with _plugin_code(f"running {hook_name} of plugin '{printable(plugin)}'", notice_after):
                    specs = impl.function() or []
                if not isinstance(specs, (list, tuple)):
                    raise PluginError(f"returned {type(specs).__name__}, expected a list of specs")
            except _CONTAINED as exc:
                _contain(exc, pressed)
                info.errors.append(f"hook {hook_name} failed: {_describe(exc)}")
                if strict:
                    raise PluginError(f"plugin '{plugin}': hook {hook_name} failed: {_describe(exc)}") from exc
                continue
            for spec in specs:
                try:
                    reg.add(plugin, attr, spec)
                    info.counts[attr] = info.counts.get(attr, 0) + 1
                except Exception as exc:  # an invalid spec is this plugin's problem only
                    info.errors.append(_describe(exc))
                    if strict:
                        raise PluginError(f"plugin '{plugin}' {exc}") from exc


def load_registry(
    extra: Iterable[tuple[str, ModuleType | object]] = (),
    entry_points: bool = True,
    strict: bool = False,
) -> Registry:
    """Discover plugins and merge their specs.

    ``extra`` adds ``(name, plugin_object)`` pairs (tests, embedding applications).
    With ``strict`` any plugin error raises instead of being recorded.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    reg = Registry()
    reg.plugins[CORE_PLUGIN] = PluginInfo(CORE_PLUGIN, "anime-core", _core_version())
    pm.register(builtin, name=CORE_PLUGIN)

    with _sigint_watch() as pressed:
        if entry_points:
            _load_entry_points(pm, reg, pressed, strict)
        for name, obj in extra:
            reg.plugins.setdefault(name, PluginInfo(name))
            try:
                pm.register(obj, name=name)
            except Exception as exc:
                reg.plugins[name].errors.append(f"failed to register ({type(exc).__name__}: {exc})")
                if strict:
                    raise PluginError(f"plugin '{name}' failed to register: {exc}") from exc
        _call_hooks(pm, reg, pressed, strict)
    # styles and converters must point at a known model
    for key, style in list(reg.styles.items()):
        if style.model not in reg.models:
            reg.plugins[style.plugin].errors.append(f"style '{key}' is for unknown model '{style.model}'")
            del reg.styles[key]
    return reg


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_registry()
    return _REGISTRY


@contextmanager
def using_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the process-wide one inside the block, then restore exactly what was there."""
    global _REGISTRY
    old, _REGISTRY = _REGISTRY, registry
    try:
        yield registry
    finally:
        _REGISTRY = old


def set_registry(registry: Registry | None) -> None:
    """Replace (or with ``None``, reset) the process-wide registry; for tests and embedding."""
    global _REGISTRY
    _REGISTRY = registry


def call_builder(kind: str, name: str, build: Any, options: dict[str, Any]) -> Any:
    """Call a builder with ``options``; unknown option names are a usage error with a suggestion."""
    sig = inspect.signature(build)
    params = sig.parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in options:
            if key not in params:
                raise UsageError(f"{kind} '{name}' has no option '{key}'{did_you_mean(key, params)}")
    try:
        return build(**options)
    except ValueError as exc:  # builders reject bad option values with ValueError: a usage error
        raise UsageError(f"{kind} '{name}': {exc}") from exc
