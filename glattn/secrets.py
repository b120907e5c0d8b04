"""The one place that hides secrets: every file, tag, param and log line glattn writes goes
through these functions, and so does every line printed to the console (`mask_streams`,
MLflow's own ``View run ... at:`` lines included).

A value is secret when its key looks like one (`is_secret_key`: ``token``, ``key``,
``password``, ``passwd``, ``passphrase``, ``secret``, ``credential``, ``private_key``,
``cookie``, ``session``, ``pwd`` anywhere in the last key part, any case, but not a list of
key names such as Hydra's ``exclude_keys``; ``pass`` and ``auth`` as a word of it:
``db_pass``, ``dbPass``, ``auth_header``, not ``bypass`` or ``author``) or when it is the
password of a ``scheme://user:password@host`` URI.
Credentials never need to be in the config: MLflow reads ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` / ``MLFLOW_TRACKING_TOKEN`` from the environment.

This module imports nothing from glattn, so every layer (config, checkpoints, tracking,
sweeps) can use it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping

#: found anywhere in a key's last part (any case); ``*keys`` names keys (Hydra's exclude_keys)
SECRET_KEY = re.compile(
    r"token|key(?!s$)|passw|passphrase|secret|credential|cookie|session|pwd", re.IGNORECASE
)
#: secret as a whole word of a key's last part (snake_case, kebab-case or camelCase words)
SECRET_WORDS = frozenset({"pass", "auth", "oauth", "authorization", "authentication"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
SECRET_URI = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")  # user:password@host in URLs
MASK = "****"
MIN_SECRET_LEN = 3  # shorter values are not searched for in free text (they would mangle it)


def is_secret_key(key: object) -> bool:
    """True for a (dotted) key whose last part looks like a credential."""
    last = str(key).rsplit(".", 1)[-1]
    if SECRET_KEY.search(last):
        return True
    return any(word.lower() in SECRET_WORDS for word in _WORD.findall(last))


def mask_uri(text: str | None) -> str | None:
    """``postgresql://user:pw@host/db`` -> ``postgresql://user:****@host/db``."""
    return SECRET_URI.sub(rf"\1{MASK}@", text) if text else text


def mask_container(node, key: str = ""):
    """A copy of a plain container (dicts, lists, scalars) with secret values replaced by
    ``****`` (None and "" stay: nothing to hide) and URI passwords masked in strings."""
    if isinstance(node, Mapping):
        return {k: mask_container(v, str(k)) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [mask_container(v, key) for v in node]
    if key and is_secret_key(key) and node not in (None, ""):
        return MASK
    if isinstance(node, str):
        return mask_uri(node)
    return node


def secret_values(node, key: str = "") -> set[str]:
    """The secret strings in a plain container (and in ``key=value`` override strings), to
    search free text for: values under secret keys and URI passwords."""
    found: set[str] = set()
    if isinstance(node, Mapping):
        for k, v in node.items():
            found |= secret_values(v, str(k))
    elif isinstance(node, (list, tuple)):
        for v in node:
            found |= secret_values(v, key)
    elif node not in (None, "") and not isinstance(node, bool):
        text = str(node)
        if key and is_secret_key(key):
            found.add(text)
        elif not key and "=" in text:  # an override: a.b.api_key=VALUE
            name, value = text.split("=", 1)
            if is_secret_key(name.lstrip("+~")) and value:
                found.add(value)
        for match in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", text):
            found.add(match.group(1))
    return {s for s in found if len(s) >= MIN_SECRET_LEN and s != MASK}


def mask_text(text: str, values: Iterable[str] = ()) -> str:
    """``text`` with URI passwords, every known secret value and the environment's secrets
    (`env_secret_values`) replaced by ``****``."""
    for value in sorted(set(values) | env_secret_values(), key=len, reverse=True):
        text = text.replace(value, MASK)
    return mask_uri(text) or text


def mask_override(override: str) -> str:
    """``+tracking.api_key=abc`` -> ``+tracking.api_key=****``; URI passwords masked."""
    name, sep, value = override.partition("=")
    if sep and value and is_secret_key(name.lstrip("+~")):
        return f"{name}={MASK}"
    return mask_uri(override) or override


class SecretFilter(logging.Filter):
    """Masks known secret values (and URI passwords) in every record a handler emits."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        super().__init__("glattn.secrets")
        self.values = set(values)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message, self.values)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:  # format the traceback once, masked
            record.exc_text = mask_text(
                logging.Formatter().formatException(record.exc_info), self.values
            )
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = mask_text(record.exc_text, self.values)
        return True


_FACTORY_VALUES: set[str] = set()


def _install_record_factory() -> None:
    """Mask every record of this process when it is created: Hydra re-creates its handlers
    (launchers call ``configure_log``), a record factory stays."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_glattn_masking", False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        if _FACTORY_VALUES or "://" in str(record.msg) or env_secret_values():
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: leave it to logging's own error path
                return record
            masked = mask_text(message, _FACTORY_VALUES)
            if masked != message:
                record.msg, record.args = masked, None
        return record

    factory._glattn_masking = True
    logging.setLogRecordFactory(factory)


def install_log_filter(values: Iterable[str]) -> SecretFilter:
    """Mask ``values`` (and URI passwords) in every log line of this process from now on:
    a record factory for every record, a SecretFilter on the current handlers of the root
    and glattn loggers (it also masks formatted tracebacks), and the console streams."""
    values = set(values)
    _FACTORY_VALUES.update(values)
    _install_record_factory()
    mask_streams()
    handlers = list(logging.getLogger().handlers) + list(logging.getLogger("glattn").handlers)
    for handler in handlers:
        existing = [f for f in handler.filters if isinstance(f, SecretFilter)]
        if existing:
            existing[0].values |= values
        else:
            handler.addFilter(SecretFilter(values))
    return SecretFilter(values)


# ---------------------------------------------------------------- secrets in the command line
#: environment variables whose values are secrets wherever they appear in text
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "PGPASSWORD", "MYSQL_PWD")
SECRET_ENV_NAME = re.compile(r"(^GLATTN_SECRET_|_PASSWORD$|_PASSWD$|_TOKEN$|_SECRET$|_API_KEY$)")
#: env-derived values shorter than this are not searched for (a "true" would mangle text)
MIN_ENV_SECRET_LEN = 6
ENV_PREFIX = "GLATTN_SECRET_"
_URI_CREDENTIALS = re.compile(
    r"^(?P<scheme>[A-Za-z][\w+.-]*)://(?P<user>[^:/@\s]*):(?P<pw>[^@\s]+)@"
)


def env_secret_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """The secret values of the environment: MLflow's and the database clients' password and
    token variables, glattn's own ``GLATTN_SECRET_*`` and ``*_PASSWORD``/``*_TOKEN``-like
    names."""
    environ = os.environ if environ is None else environ
    return {
        v
        for k, v in environ.items()
        if (k in SECRET_ENV or SECRET_ENV_NAME.search(k)) and len(v) >= MIN_ENV_SECRET_LEN
    }


def _env_name(key: str, suffix: str = "") -> str:
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]+", "_", key.lstrip("+~")).strip("_").upper() + suffix


def _is_sweep_value(value: str) -> bool:
    """A sweep (a,b / choice(...) / range(...)): left as it is, one value per job."""
    return "," in value or bool(
        re.match(r"^\s*(choice|range|interval|glob|sort|shuffle)\(", value)
    )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _move_uri_credentials(key: str, value: str, environ, suffix: str = "") -> str:
    """``scheme://user:pw@host``: the password moves to an environment variable its client
    reads (MLflow's for an http(s) ``tracking.uri``: the URI's value wins over one already
    set; libpq's PGPASSWORD for PostgreSQL), or to ``GLATTN_SECRET_*`` referenced as
    ``${oc.env:...}``; the override keeps no password. ``suffix`` (an element of a sweep):
    always ``GLATTN_SECRET_*``, one variable per element (glattn.tracking.uris moves it to
    the client's variables in each job)."""
    match = _URI_CREDENTIALS.match(_unquote(value))
    if match is None or "${" in match.group("pw"):
        return value
    scheme, user, pw = match.group("scheme").lower(), match.group("user"), match.group("pw")
    rest = _unquote(value)[match.end() :]
    if not suffix and key.lstrip("+~") == "tracking.uri" and scheme in ("http", "https"):
        environ["MLFLOW_TRACKING_USERNAME"], environ["MLFLOW_TRACKING_PASSWORD"] = user, pw
        return f"{scheme}://{rest}"
    if not suffix and scheme.startswith("postgres") and environ.get("PGPASSWORD", pw) == pw:
        environ["PGPASSWORD"] = pw
        return f"{match.group('scheme')}://{user}@{rest}"
    name = _env_name(key, f"{suffix}_PASSWORD")
    environ[name] = pw
    return f"{match.group('scheme')}://{user}:${{oc.env:{name}}}@{rest}"


def _env_reference(key: str, value: str, environ, suffix: str = "") -> str:
    """A secret value moved to ``GLATTN_SECRET_<KEY><suffix>``, as the override's text."""
    name = _env_name(key, suffix)
    environ[name] = _unquote(value)
    if re.fullmatch(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?", value):  # keeps int/float
        return f"'${{oc.decode:${{oc.env:{name}}}}}'"  # nested: quoted for Hydra
    return f"${{oc.env:{name}}}"


def _hide_sweep_secrets(key: str, value: str, environ) -> str | None:
    """``key=a,b`` / ``key=choice(a,b)`` whose values are secrets (a secret key, or URIs with
    a password): each value moves to its own ``GLATTN_SECRET_<KEY>_<i>`` (one job each), so
    no secret reaches the sweeper's job lists, the launchers' job files or ``.hydra/``.
    None when there is nothing to hide or the sweep is not a plain list of values."""
    secret_key = is_secret_key(key.lstrip("+~"))
    if not secret_key and "://" not in value:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    try:
        parsed = OverridesParser.create().parse_override(f"{key}={value}")
    except Exception:  # noqa: BLE001 - Hydra reports a malformed override itself
        return None
    if parsed.value_type not in (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP):
        return None
    values, texts = list(parsed.sweep_iterator()), list(parsed.sweep_string_iterator())
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        return None
    out = []
    for i, (item, text) in enumerate(zip(values, texts)):
        item = str(item)
        if secret_key and "${" not in item:
            out.append(_env_reference(key, item, environ, f"_{i}"))
        elif "://" in item:
            moved = _move_uri_credentials(key, item, environ, f"_{i}")
            out.append(moved if moved != item else text)
        else:
            out.append(text)
    if out == texts:
        return None
    joined = ",".join(out)
    return f"choice({joined})" if parsed.value_type == ValueType.CHOICE_SWEEP else joined


def hide_override_secret(override: str, environ=None) -> str:
    """One command-line override with its secret moved into the environment (see
    `hide_argv_secrets`); anything else is returned unchanged."""
    environ = os.environ if environ is None else environ
    key, sep, value = override.partition("=")
    if not sep or not value or override.startswith("-"):
        return override
    if _is_sweep_value(value):
        hidden = _hide_sweep_secrets(key, value, environ)
        return override if hidden is None else f"{key}={hidden}"
    if is_secret_key(key.lstrip("+~")) and "${" not in value:
        return f"{key}={_env_reference(key, value, environ)}"
    if "://" in value:
        return f"{key}={_move_uri_credentials(key, value, environ)}"
    return override


def hide_argv_secrets(argv: list[str] | None = None, environ=None) -> list[str]:
    """Rewrite the command line (``sys.argv`` by default, in place) before Hydra parses it:
    credentials leave the overrides for environment variables, so no secret reaches Hydra's
    own messages (``Error executing job with overrides: [...]``), ``.hydra/overrides.yaml``,
    the sweeper's job lists or the launchers' pickles; the config still resolves to the same
    values. ``tracking.uri=http(s)://user:pw@host`` -> ``MLFLOW_TRACKING_USERNAME`` /
    ``MLFLOW_TRACKING_PASSWORD`` (MLflow reads them); ``postgresql://user:pw@host`` ->
    ``PGPASSWORD`` (libpq reads it); any other URI password and any ``+x.api_key=`` /
    ``*token=`` / ``*password=`` value -> ``GLATTN_SECRET_<KEY>``, referenced as
    ``${oc.env:GLATTN_SECRET_<KEY>}``. A sweep over secret values (``a,b``) gets one
    variable per value (``GLATTN_SECRET_<KEY>_<i>``). Child processes (local_gpus, SLURM)
    inherit the environment. Also masks this process's console (`mask_streams`)."""
    argv = sys.argv if argv is None else argv
    argv[1:] = [hide_override_secret(arg, environ) for arg in argv[1:]]
    if environ is None:
        mask_streams()
    return argv


# ------------------------------------------------------------------- the console streams
class MaskedStream:
    """A text stream whose every ``write`` passes `mask_text` (the known values, the
    environment's secrets, URI passwords); everything else is the wrapped stream's."""

    _glattn_masking = True

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if isinstance(text, str) and text:
            self._stream.write(mask_text(text, _FACTORY_VALUES))
        else:
            self._stream.write(text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def mask_streams() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in `MaskedStream` (once): what a library
    prints (MLflow's ``View run ... at: <tracking URI>``, a driver's warning) is masked as
    glattn's own log lines are."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not getattr(stream, "_glattn_masking", False):
            setattr(sys, name, MaskedStream(stream))
