"""Component contracts: `_target_` is the one extension point, the contract is the one check.

A config group's option is a YAML file with a `_target_` (a class or function, glattn's or a
user's, under any file name on Hydra's search path) and its settings; nothing is registered.
Each family (local attention, fusion, residual, loss, backbone builder, data-set reader)
writes its constructor/forward contract down as a `Contract`, and the one model build
(glattn.models.build_model; glattn.losses.build_loss; glattn.data.readers.read) checks every
component against it, whoever wrote it: the constructor's signature, then a `probe` that
runs the built component on a small input (shapes, backward). A breach is one
`ContractError` naming the component and the contract, before any data work.

What a component knows beyond its settings, its paper reference, is a `reference` attribute
of the class or function (``reference = "Hu et al. CVPR 2018 (arXiv:1709.01507)"``);
`references(cfg)` collects them per config group for the job's run tags
(``reference.<group>``), which the report reads.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from glattn import groups
from glattn.errors import UserError


class ContractError(UserError, ValueError):
    """A component breaks its family's constructor/forward contract."""


class Contract:
    """A family's constructor/forward contract: the words and the probe that checks it."""

    def __init__(self, family: str, text: str, probe: Callable | None = None) -> None:
        """`text`: the contract in words; `probe(component, *args)` raises (or returns a
        message) when a built component breaks it."""
        self.family = family
        self.text = text
        self.probe = probe

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
        self.check(built, *(args if probe_args is None else probe_args), source=factory)
        return built

    def check(self, component, *probe_args, source: Callable | None = None) -> None:
        """Run the probe on a built component; any failure is a ContractError. `source`: what
        built it (named in the message; default: the component's class)."""
        if self.probe is None:
            return
        named = getattr(source, "func", source) if source is not None else type(component)
        try:
            problem = self.probe(component, *probe_args)
        except ContractError:
            raise
        except Exception as err:
            raise self.breach(named, f"probing it raised {type(err).__name__}: {err}") from err
        if problem:
            raise self.breach(named, problem)

    def breach(self, obj, problem: str) -> ContractError:
        return ContractError(
            f"{self.family} {qualname(obj)} breaks the {self.family} contract: {problem}. "
            f"The {self.family} contract: {self.text}"
        )


def qualname(obj) -> str:
    """``module.Qualname`` of a class, function or partial (what a `_target_` names)."""
    obj = getattr(obj, "func", obj)
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def import_target(target, key: str):
    """The object `_target_` string `target` names (Hydra's `get_object`), or a ContractError
    naming `cfg.<key>._target_` and how to make a module of one's own importable."""
    from hydra.utils import get_object

    try:
        return get_object(str(target))
    except Exception as err:
        raise ContractError(
            f"cfg.{key}._target_={target}: cannot import it ({err}); a module of your own "
            "must be on the import path (e.g. PYTHONPATH=<its folder>)"
        ) from None


def target_error(target, key: str) -> str | None:
    """Config check without building: None when `target` imports and is callable, else the
    message (e.g. for `cfg.loss._target_` before any work)."""
    if target is None:
        return f"cfg.{key}._target_ is not set; expected a class or function (module.Name)"
    try:
        obj = import_target(target, key)
    except ContractError as err:
        return str(err)
    if not callable(obj):
        return f"cfg.{key}._target_={target} is a {type(obj).__name__}, not a class or function"
    return None


def reference_of(obj) -> str | None:
    """The `reference` attribute of a component's class or function (None: none given)."""
    ref = getattr(getattr(obj, "func", obj), "reference", None)
    return str(ref) if isinstance(ref, str) and ref.strip() else None


def references(cfg: Mapping) -> dict[str, str]:
    """{group: reference} of every recorded config group whose `_target_` has a reference
    (the job's ``reference.<group>`` tags). The job imports these targets anyway; one that
    does not import is left out here (the build names it)."""
    out = {}
    for group in groups.RECORDED_GROUPS:
        node = cfg.get(group) if hasattr(cfg, "get") else None
        target = node.get("_target_") if hasattr(node, "get") else None
        if target is None:
            continue
        try:
            ref = reference_of(import_target(target, group))
        except ContractError:
            continue
        if ref:
            out[group] = ref
    return out
