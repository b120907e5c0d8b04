"""Name -> constructor registries; each one is mirrored one-to-one by a Hydra config group.

`conf/fusion/*.yaml` holds exactly the names of `glattn.models.fusion.FUSIONS`, and so on
for every group with a registry; which group has which registry is written once, in
glattn.groups (`registries()` reads it; tests/test_registries.py checks them all).

Extending glattn without editing it (README "Extending glattn"): a researcher registers a
component in their own module, `@FUSIONS.register("<name>", reference="...")`, and
points an option file at it (`_target_: <module>.<Class>`); Hydra imports the
`_target_`'s module, which registers the class, before glattn checks the registry. An
installed package can instead name its modules in the `glattn.plugins` entry-point group:
they are imported once, before any registry is consulted.

Each family writes its constructor contract down (`contract`) and may give a `probe` that
builds-and-runs a component on a small input; `check()` turns any breach into one
`ContractError` that names the contract, at build time, before any data work.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from importlib import metadata

from glattn import groups
from glattn.errors import UserError

log = logging.getLogger(__name__)

PLUGIN_GROUP = "glattn.plugins"
_plugins_loaded = False


class ContractError(UserError, ValueError):
    """A registered component breaks its family's constructor/forward contract."""


def load_plugins() -> list[str]:
    """Import every module named in the `glattn.plugins` entry-point group, once per process
    (e.g. `[project.entry-points."glattn.plugins"] <name> = "<package>.<module>"`)."""
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True  # first, so a plugin that consults a registry does not recurse
    loaded = []
    for ep in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()
        except Exception as err:
            dist = getattr(ep.dist, "name", None) or "an installed package"
            raise ImportError(
                f"glattn plugin {ep.name!r} = {ep.value!r} (entry point group {PLUGIN_GROUP!r} "
                f"of {dist}) failed to import: {type(err).__name__}: {err}; fix it or "
                f"uninstall {dist}"
            ) from err
        loaded.append(ep.value)
        log.debug("loaded glattn plugin %s = %s", ep.name, ep.value)
    return loaded


def how_to_register(family: str, var: str, module: str) -> str:
    return (
        f"to add a {family}, register it in a module of your own: "
        f'`from {module} import {var}` and `@{var}.register("<name>")` on the class, '
        "with that module on the import path (PYTHONPATH) so that Hydra imports it through "
        f"`_target_`, or name the module in a `{PLUGIN_GROUP}` entry point of an installed "
        'package (README.md, "Extending glattn")'
    )


class Registry:
    """An ordered mapping from option name to constructor, with an optional reference
    string per entry (shown in the report's tables) and the family's contract check."""

    def __init__(
        self,
        family: str,
        contract: str = "",
        probe: Callable | None = None,
        where: tuple[str, str] | None = None,
    ) -> None:
        """`contract`: the constructor/forward contract in words; `probe(component, *args)`
        raises (or returns a message) when a built component breaks it; `where`: (module,
        variable) to import this registry from, for error messages."""
        self.family = family
        self.contract = contract
        self.probe = probe
        self.where = where
        self._entries: dict[str, Callable] = {}
        self._references: dict[str, str | None] = {}

    # ------------------------------------------------------------------ registering
    def register(self, name: str, reference: str | None = None) -> Callable[[Callable], Callable]:
        """Decorator: `@REG.register("name", reference="Author et al. 2024 (arXiv:...)")`."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{self.family} option name must be a non-empty string, got {name!r}")

        def add(obj: Callable) -> Callable:
            if name in self._entries and self._entries[name] is not obj:
                if _same_definition(self._entries[name], obj):  # the module imported twice
                    self._entries[name] = obj
                    return obj
                raise ValueError(
                    f"{self.family} option {name!r} is registered twice "
                    f"({_qualname(self._entries[name])} and {_qualname(obj)})"
                )
            self._entries[name] = obj
            self._references[name] = reference
            return obj

        return add

    def unregister(self, name: str) -> None:
        """Remove `name` (tests that register throw-away components clean up with it)."""
        self._entries.pop(name, None)
        self._references.pop(name, None)

    # ------------------------------------------------------------------ consulting
    def get(self, name: str) -> Callable:
        load_plugins()
        if name not in self._entries:
            raise KeyError(
                f"unknown {self.family} option {name!r}; allowed: {', '.join(self._entries)}"
            )
        return self._entries[name]

    def name_of(self, obj: Callable) -> str | None:
        """The option name under which `obj` (a class or function) is registered."""
        load_plugins()
        for name, entry in self._entries.items():
            if entry is obj or _same_definition(entry, obj):
                return name
        return None

    def reference(self, name: str) -> str | None:
        """The reference string `name` was registered with (None: none given)."""
        load_plugins()
        return self._references.get(name)

    def references(self) -> dict[str, str | None]:
        load_plugins()
        return {n: self._references.get(n) for n in self._entries}

    def names(self) -> list[str]:
        load_plugins()
        return list(self._entries)

    def require(self, obj: Callable, key: str, target: str | None = None) -> str:
        """The name of registered `obj`, or one error saying how to register it."""
        name = self.name_of(obj)
        if name is None:
            module, var = self.where or ("glattn.registry", "Registry")
            raise ValueError(
                f"cfg.{key}._target_={target or _qualname(obj)} is not a registered "
                f"{self.family}; registered options: {', '.join(self.names())}. "
                + how_to_register(self.family, var, module)
            )
        return name

    def target_error(self, target, key: str) -> str | None:
        """Config check without building: None when `_target_` string `target` imports (its
        module may register it, as Hydra's instantiate would) and is registered here; else
        the message, e.g. for `cfg.loss._target_` before any work."""
        from hydra.utils import get_object

        try:
            obj = get_object(str(target))
        except Exception as err:
            return (
                f"cfg.{key}._target_={target}: cannot import it ({err}); a module of your own "
                "must be on the import path (e.g. PYTHONPATH=<its folder>)"
            )
        try:
            self.require(obj, key, str(target))
        except ValueError as err:
            return str(err)
        return None

    # ------------------------------------------------------------------ contract
    def check_signature(self, factory: Callable, *args, **kwargs) -> None:
        """`factory(*args, **kwargs)` must bind to the constructor (the contract's signature)."""
        func = getattr(factory, "func", factory)
        bound = dict(getattr(factory, "keywords", {}) or {}, **kwargs)
        try:
            inspect.signature(func).bind(*args, **bound)
        except TypeError as err:
            shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in bound.items())])
            raise self.breach(
                func, f"its constructor cannot be called as ({shown}): {err}"
            ) from None
        except ValueError:  # builtins without a signature: nothing to check
            return

    def build(self, factory: Callable, *args, probe_args: tuple | None = None, **kwargs):
        """`factory(*args, **kwargs)` checked against the contract: its signature, a TypeError
        from the call (e.g. nn.Module's catch-all `__init__`), then the probe on the result
        with `probe_args` (default: `args`)."""
        self.check_signature(factory, *args, **kwargs)
        try:
            built = factory(*args, **kwargs)
        except TypeError as err:
            shown = ", ".join([*map(repr, args), *(f"{k}=..." for k in kwargs)])
            raise self.breach(
                getattr(factory, "func", factory),
                f"calling its constructor with ({shown}) raised TypeError: {err}",
            ) from err
        self.check(built, *(args if probe_args is None else probe_args))
        return built

    def check(self, component, *probe_args) -> None:
        """Run the family's probe on a built component; any failure is a ContractError."""
        if self.probe is None:
            return
        try:
            problem = self.probe(component, *probe_args)
        except ContractError:
            raise
        except Exception as err:
            problem = f"probing it raised {type(err).__name__}: {err}"
            raise self.breach(type(component), problem) from err
        if problem:
            raise self.breach(type(component), problem)

    def breach(self, obj, problem: str) -> ContractError:
        name = self.name_of(obj)
        label = f"{self.family} {name!r} ({_qualname(obj)})" if name else _qualname(obj)
        return ContractError(
            f"{label} breaks the {self.family} contract: {problem}. "
            f"The {self.family} contract: {self.contract}"
        )

    # ------------------------------------------------------------------ mapping protocol
    def __getitem__(self, name: str) -> Callable:
        return self.get(name)

    def keys(self) -> list[str]:
        return self.names()

    def values(self) -> list[Callable]:
        return [self._entries[n] for n in self.names()]

    def items(self) -> list[tuple[str, Callable]]:
        return [(n, self._entries[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, {list(self._entries)})"


def registries() -> dict[str, Registry]:
    """Every config group's registry (glattn.groups: the groups with one; plugins loaded),
    for tests, reports and claims."""
    out = {name: groups.load_registry(name) for name in groups.REGISTRY_GROUPS}
    load_plugins()
    return out


def _qualname(obj) -> str:
    obj = getattr(obj, "func", obj)
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _same_definition(a, b) -> bool:
    """The same class or function defined again (its module imported a second time, e.g.
    once by Hydra's `_target_` and once by name): same module and qualified name."""
    return (
        a is not b
        and getattr(a, "__module__", None) is not None
        and getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )
