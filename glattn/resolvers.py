"""glattn's OmegaConf resolvers, registered explicitly by `register()` (idempotent).

Every entry point calls `register()` before Hydra composes or resolves a config: the
``glattn`` console script (glattn.cli, hence run.py) and its Hydra task function, the
glattn sweeper, the local_gpus worker process, the tests' conftest and the report where it
composes. Importing a module never registers a resolver as a side effect.

=========================  =============================================================
``${glattn.num_classes:}``   a data-set option's class count: the length of its class list
                             (glattn.data.readers.num_classes; dataset=csv)
``${glattn.source_ckpt:}``   an eval job's training checkpoint (Table 5, glattn.sweep.transfer)
``${glattn.help_groups:}``   ``--help``'s list of user-facing config groups (glattn.cli)
=========================  =============================================================

A user error raised by an implementation (a data-set error while the class list is read)
leaves the resolver as itself (glattn.errors.in_resolution): the command line prints its
one message, naming the file, row and column, without OmegaConf's traceback.

Like a `_target_`, a resolver's implementation is named by an import path
string (``"module:function"``) and imported when the resolver is first called, so this
module is layer L0: the modules that implement them are free to import what they need.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from omegaconf import OmegaConf

from glattn.errors import UserError, in_resolution

#: Resolver name -> "module:function" implementing it.
RESOLVERS: dict[str, str] = {
    "glattn.num_classes": "glattn.data.readers:num_classes",
    "glattn.source_ckpt": "glattn.sweep.transfer:source_checkpoint",
    "glattn.help_groups": "glattn.cli:help_groups",
}
# the special arguments OmegaConf passes to a resolver that names them in its signature
_SPECIAL = ("_parent_", "_root_", "_node_")


def implementation(name: str) -> Callable:
    """The function behind resolver `name` (imported on first use)."""
    module, _, attr = RESOLVERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


class _Lazy:
    """Resolver `name`, its implementation imported on the first call. A plain class, so
    that Hydra can pickle OmegaConf's resolvers for a launcher's worker processes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._func: Callable | None = None
        self._special: tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        return {"name": self.name}  # the worker imports the implementation itself

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["name"])

    def __call__(self, *args, _parent_=None, _root_=None, _node_=None):
        if self._func is None:
            self._func = implementation(self.name)
            params = inspect.signature(self._func).parameters
            self._special = tuple(k for k in _SPECIAL if k in params)
        given = {"_parent_": _parent_, "_root_": _root_, "_node_": _node_}
        try:
            return self._func(*args, **{k: given[k] for k in self._special})
        except UserError as exc:  # one message, not OmegaConf's wrapped traceback
            raise in_resolution(exc) from exc


def register() -> list[str]:
    """Register every resolver of `RESOLVERS` not registered yet; returns the new names."""
    added = []
    for name in RESOLVERS:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, _Lazy(name))
            added.append(name)
    return added
