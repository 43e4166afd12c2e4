"""The verifier registry: names -> Verifier classes, loaded from the `curate.verifiers` entry-point group.

Built-ins register exactly like third-party plugins: as entries in pyproject.toml's
`[project.entry-points."curate.verifiers"]` table. Run from a checkout (a plain checkout on sys.path, as in the
test suite, or an editable install) the registry reads that table from the checkout's pyproject.toml, which is
current where installed metadata may be stale; an installed wheel has no pyproject.toml beside the package and
uses its metadata: one list of built-ins, two ways of finding it. A name registered twice (by two
distributions, or a plugin reusing a built-in name) is an error, never a silent override.

    from verifiers.registry import get_verifier, verifier_for
    v = get_verifier("countdown")
    v.verify(problem, response)            # -> Verdict, never raises
"""
from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from verifiers.base import Verifier

GROUP = "curate.verifiers"
DIST = "curate"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


class RegistryError(Exception):
    """A verifier cannot be found or loaded, or two registrations claim one name."""


class OptionsError(RegistryError):
    """A verifier takes the options it was built with but cannot use them: a value it refuses (its own words in
    `detail`), a value of the wrong type, or a needed option left out (`missing` names it). How to set an option
    is the caller's to say (`curate verify --option`, an eval suite's verifier_options): this package does not
    know the command line."""

    def __init__(self, name: str, detail: str, missing: str | None = None) -> None:
        super().__init__(f"verifier {name!r}: {detail}")
        self.detail = detail
        self.missing = missing


class MissingOption(ValueError):
    """Raised by a verifier's constructor for an option it cannot work without (a reward model's `model`)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class Registration:
    name: str
    value: str  # "module:attr"
    origin: str  # distribution name, or "pyproject.toml" for the checkout fallback

    def load(self) -> type:
        try:
            obj = metadata.EntryPoint(self.name, self.value, GROUP).load()
        except Exception as e:
            raise RegistryError(f"verifier {self.name!r} ({self.value}, from {self.origin}) failed to load: {e}") from e
        return obj


def _pyproject_entries(path: Path = PYPROJECT) -> list[Registration]:
    """The built-in table read straight from the checkout's pyproject.toml (used when curate is not installed)."""
    if not path.is_file():
        return []
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with path.open("rb") as f:
        data = tomllib.load(f)
    table = data.get("project", {}).get("entry-points", {}).get(GROUP, {})
    return [Registration(name, value, "pyproject.toml") for name, value in table.items()]


def discover() -> list[Registration]:
    """Every registration visible: other distributions' entry points, plus the built-ins: the checkout's table
    when running from a checkout (an editable install's metadata was written when it was installed and misses
    verifiers added since), else curate's installed metadata."""
    regs: list[Registration] = []
    checkout = _pyproject_entries()
    for ep in metadata.entry_points(group=GROUP):
        dist = ep.dist.name if getattr(ep, "dist", None) is not None else "?"
        if checkout and dist.lower() == DIST:
            continue
        regs.append(Registration(ep.name, ep.value, dist))
    return regs + checkout


def canonical(name: str) -> str:
    """Verifier and source names compare with `-` and `_` alike, case-insensitively (as pip does):
    `reasoning-gym` finds `reasoning_gym`."""
    return name.strip().lower().replace("-", "_")


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, Registration]:
    """canonical name -> Registration. Raises RegistryError when a name is registered twice."""
    out: dict[str, Registration] = {}
    for reg in discover():
        key = canonical(reg.name)
        if key in out:
            other = out[key]
            raise RegistryError(
                f"verifier name {reg.name!r} is registered twice: {other.value} (from {other.origin}) "
                f"and {reg.value} (from {reg.origin}); rename one of them"
            )
        out[key] = reg
    return out


def names() -> list[str]:
    return sorted(r.name for r in registry().values())


def resolve(name: str) -> str:
    """The registered spelling of `name` (`reasoning-gym` -> `reasoning_gym`); RegistryError if unknown."""
    reg = registry().get(canonical(name))
    if reg is None:
        raise RegistryError(f"unknown verifier {name!r}; known: {', '.join(names()) or '(none)'}")
    return reg.name


@functools.lru_cache(maxsize=None)
def verifier_class(name: str) -> type:
    reg = registry()[canonical(resolve(name))]
    cls = reg.load()
    if not (isinstance(cls, type) and issubclass(cls, Verifier)) and not callable(cls):
        raise RegistryError(f"verifier {name!r} ({reg.value}) is not a Verifier subclass or factory")
    return cls


def get_verifier(name: str, **options: Any) -> Verifier:
    """An instance of the verifier registered as `name`, built with `options`."""
    name = resolve(name)
    factory = verifier_class(name)
    try:
        sig: inspect.Signature | None = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read: a TypeError below cannot be told apart
        sig = None
    if sig is not None:
        try:  # the names first: a TypeError from the constructor itself is then about a value
            sig.bind(**options)
        except TypeError as e:
            needed = [p.name for p in sig.parameters.values() if p.default is p.empty and p.name not in options
                      and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            unknown = _unknown(factory, options)
            if needed and not unknown:
                raise OptionsError(name, f"needs option {needed[0]!r}", missing=needed[0]) from e
            raise RegistryError(f"verifier {name!r} does not accept options {unknown or sorted(options)}: {e}") from e
    try:
        v = factory(**options)
    except MissingOption as e:
        raise OptionsError(name, str(e), missing=e.option) from e
    except TypeError as e:
        if sig is None:
            raise RegistryError(f"verifier {name!r} does not accept options {sorted(options)}: {e}") from e
        if not options:  # nothing given to blame: the verifier itself is broken
            raise RegistryError(f"verifier {name!r} cannot be built: {type(e).__name__}: {e}") from e
        raise OptionsError(name, f"{_blame(sig, options)}: {type(e).__name__}: {e}") from e
    except ValueError as e:  # options it accepts but cannot use (a path that is not there): its own words
        raise OptionsError(name, str(e)) from e
    if getattr(v, "name", None) != name:
        raise RegistryError(f"verifier registered as {name!r} calls itself {getattr(v, 'name', None)!r}; they must match")
    if not callable(getattr(v, "verify", None)):
        raise RegistryError(f"verifier {name!r} has no verify(problem, response) method")
    return v


def option_names(factory: Any) -> set[str] | None:
    """The keyword options a verifier class (or factory) is built with; None when it takes any (**kwargs) or
    has no signature to read (then the verifier itself judges its options)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _unknown(factory: Any, options: dict[str, Any]) -> list[str]:
    """The option names `factory` has no keyword parameter for (none when it takes **kwargs)."""
    takes = option_names(factory)
    return [] if takes is None else [k for k in options if k not in takes]


def _blame(sig: inspect.Signature, options: dict[str, Any]) -> str:
    """The options a constructor's TypeError most likely comes from: those whose value is not of the type of their
    parameter's default (a str where an int is wanted), else every option given, each with its value."""
    def off(key: str, value: Any) -> bool:
        param = sig.parameters.get(key)
        default = param.default if param is not None else inspect.Parameter.empty
        if default is inspect.Parameter.empty or default is None or isinstance(value, type(default)):
            return False
        return not (isinstance(default, float) and isinstance(value, int))  # an int where a float is wanted is fine
    suspects = {k: v for k, v in options.items() if off(k, v)}
    if suspects:
        return "; ".join(f"option {k}={v!r} is of type {type(v).__name__}, not {type(d).__name__} like its default "
                         f"{d!r}" for k, v in suspects.items() for d in [sig.parameters[k].default])
    return "cannot use options " + ", ".join(f"{k}={v!r}" for k, v in options.items())


def describe_all() -> list[dict]:
    """One dict per registered verifier (name, version, domains, sources, origin, description)."""
    out = []
    for name in names():
        reg = registry()[canonical(name)]
        try:
            info = get_verifier(name).describe()
        except OptionsError:  # it needs options to be built (a model path); its class says what it is
            cls = verifier_class(name)
            info = cls.describe(object.__new__(cls))
        except RegistryError as e:
            info = {"name": name, "version": None, "domains": [], "sources": [], "description": f"(broken: {e})"}
        out.append({**info, "origin": reg.origin, "entry_point": reg.value})
    return out


def verifier_for(problem: Any) -> str | None:
    """The verifier name for a problem: metadata["verifier"] when the problem names one (task loaders do),
    else the verifier claiming its source, else the one claiming its domain; None when nothing claims it.
    A named verifier that is not registered is returned as named (the labeler reports it)."""
    meta = getattr(problem, "metadata", None) or {}
    named = meta.get("verifier") if isinstance(meta, dict) else None
    return by_rules(getattr(problem, "source", None), getattr(problem, "domain", None), named)


def by_rules(source: str | None, domain: str | None, named: str | None = None) -> str | None:
    """verifier_for on plain values (what the labeler has for each (source, domain, metadata.verifier))."""
    if named:
        try:
            return resolve(str(named))
        except RegistryError:
            return str(named)
    return verifier_for_source(source, domain)


@functools.lru_cache(maxsize=4096)
def verifier_for_source(source: str | None, domain: str | None) -> str | None:
    by_source: dict[str, str] = {}  # canonical source -> verifier name
    by_domain: dict[str, str] = {}
    for name in names():
        try:
            cls = verifier_class(name)
        except RegistryError:  # a broken plugin must not stop every other problem from being labeled
            continue
        for s in getattr(cls, "sources", ()) or ():
            by_source.setdefault(canonical(s), name)
        for d in getattr(cls, "domains", ()) or ():
            by_domain.setdefault(canonical(d), name)
    if source:
        src = canonical(source)
        if src in by_source:
            return by_source[src]
        # "reasoning-gym/leg_counting" style sources: match the family before the slash
        family = src.split("/", 1)[0].split(":", 1)[0]
        if family in by_source:
            return by_source[family]
    if domain and canonical(domain) in by_domain:
        return by_domain[canonical(domain)]
    return None


def clear_cache() -> None:
    """Forget discovered registrations (tests that add a plugin to sys.path call this)."""
    registry.cache_clear()
    verifier_class.cache_clear()
    verifier_for_source.cache_clear()


get = get_verifier  # short alias: `registry.get("countdown")`
