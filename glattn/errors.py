"""The base of every error a user can act on (layer 0: imports nothing from glattn).

A ``UserError`` is a bad config value, data set, checkpoint or component, a locked run or
a diverged loss: the CLI shows its one message and exits 1, without a traceback
(``HYDRA_FULL_ERROR=1`` re-raises it). Each family keeps its own subclass, defined next to
the code that raises it (``ConfigError`` in glattn.config, ``ContractError`` in
glattn.contract, ``DataError`` in glattn.data.errors, ``CheckpointError`` and
``RunLockedError`` in glattn.checkpoint, ``NonFiniteLossError`` in glattn.engine); each
also keeps its old built-in base (ValueError or RuntimeError), so callers catching that
still work.

A user error raised inside an OmegaConf resolver (``${glattn.num_classes:}`` reading a bad
CSV) would reach the CLI wrapped in OmegaConf's ``InterpolationResolutionError``, a
traceback; `in_resolution` gives it a type that is both (OmegaConf passes it on unchanged),
so it is still the same one message, caught as its own family.
"""

from __future__ import annotations

import functools

from omegaconf.errors import InterpolationResolutionError


class UserError(Exception):
    """An error the user can act on; the message names the file/key/value and the fix.

    ``reported`` is set by the job once it has logged the message (to the console, the job
    log and the MLflow run), so the CLI does not print it a second time.
    """

    reported: bool = False

    def mark_reported(self) -> UserError:
        """Record that the message is logged; returns the error (``raise exc.mark_reported()``)."""
        self.reported = True
        return self


@functools.cache
def _resolution_type(cls: type[UserError]) -> type:
    """`cls` and OmegaConf's InterpolationResolutionError in one type (one per family)."""
    attrs = {"__reduce__": _reduce, "__module__": cls.__module__}
    return type(cls.__name__, (cls, InterpolationResolutionError), attrs)


def _reduce(exc: BaseException):
    return in_resolution_type, (type(exc).__mro__[1], exc.args)  # the family's own type


def in_resolution_type(cls: type[UserError], args: tuple) -> UserError:
    """Rebuild a resolver's user error of family `cls` (unpickling in another process)."""
    exc = _resolution_type(cls)(*args)
    exc._initialized = True  # OmegaConf re-raises it as it is, without its key lines
    return exc


def in_resolution(exc: UserError) -> UserError:
    """`exc` as a resolver raises it: the same message, family and ``reported`` flag, also an
    InterpolationResolutionError so that OmegaConf neither wraps it nor adds to its text."""
    if isinstance(exc, InterpolationResolutionError):
        return exc
    out = in_resolution_type(type(exc), exc.args)
    out.reported = exc.reported
    return out
