"""The base of every error a user can act on (layer 0: imports nothing from glattn).

A ``UserError`` is a bad config value, data set, checkpoint or component, a locked run or
a diverged loss: the CLI shows its one message and exits 1, without a traceback
(``HYDRA_FULL_ERROR=1`` re-raises it). Each family keeps its own subclass, defined next to
the code that raises it (``ConfigError`` in glattn.config, ``ContractError`` in
glattn.registry, ``DataError`` in glattn.data.errors, ``CheckpointError`` and
``RunLockedError`` in glattn.checkpoint, ``NonFiniteLossError`` in glattn.engine); each
also keeps its old built-in base (ValueError or RuntimeError), so callers catching that
still work.
"""

from __future__ import annotations


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
