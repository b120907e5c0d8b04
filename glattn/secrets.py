"""The one place that hides secrets: every file, tag, param and log line glattn writes goes
through these functions.

A value is secret when its key looks like one (``token``, ``key``, ``password``, ``passwd``,
``secret``, ``credential``, any case, anywhere in the last key part) or when it is the
password of a ``scheme://user:password@host`` URI. Credentials never need to be in the
config: MLflow reads ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` /
``MLFLOW_TRACKING_TOKEN`` from the environment (README, "MLflow").

This module imports nothing from glattn, so every layer (config, checkpoints, tracking,
sweeps) can use it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping

SECRET_KEY = re.compile(r"token|key|password|passwd|secret|credential", re.IGNORECASE)
SECRET_URI = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")  # user:password@host in URLs
MASK = "****"
MIN_SECRET_LEN = 3  # shorter values are not searched for in free text (they would mangle it)


def is_secret_key(key: object) -> bool:
    """True for a (dotted) key whose last part looks like a credential."""
    return bool(SECRET_KEY.search(str(key).rsplit(".", 1)[-1]))


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
    a record factory for every record, and a SecretFilter on the current handlers of the
    root and glattn loggers (it also masks formatted tracebacks)."""
    values = set(values)
    _FACTORY_VALUES.update(values)
    _install_record_factory()
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


def _move_uri_credentials(key: str, value: str, environ) -> str:
    """``scheme://user:pw@host``: the password moves to an environment variable its client
    reads (MLflow's for http(s) ``tracking.uri``, libpq's PGPASSWORD for PostgreSQL), or to
    ``GLATTN_SECRET_*`` referenced as ``${oc.env:...}``; the override keeps no password."""
    match = _URI_CREDENTIALS.match(_unquote(value))
    if match is None or "${" in match.group("pw"):
        return value
    scheme, user, pw = match.group("scheme").lower(), match.group("user"), match.group("pw")
    rest = _unquote(value)[match.end() :]
    if key.lstrip("+~") == "tracking.uri" and scheme in ("http", "https"):
        if environ.get("MLFLOW_TRACKING_PASSWORD", pw) == pw and environ.get(
            "MLFLOW_TRACKING_USERNAME", user
        ) in (user, ""):
            environ["MLFLOW_TRACKING_USERNAME"], environ["MLFLOW_TRACKING_PASSWORD"] = user, pw
            return f"{scheme}://{rest}"
    if scheme.startswith("postgres") and environ.get("PGPASSWORD", pw) == pw:
        environ["PGPASSWORD"] = pw
        return f"{match.group('scheme')}://{user}@{rest}"
    name = _env_name(key, "_PASSWORD")
    environ[name] = pw
    return f"{match.group('scheme')}://{user}:${{oc.env:{name}}}@{rest}"


def hide_override_secret(override: str, environ=None) -> str:
    """One command-line override with its secret moved into the environment (see
    `hide_argv_secrets`); anything else is returned unchanged."""
    environ = os.environ if environ is None else environ
    key, sep, value = override.partition("=")
    if not sep or not value or override.startswith("-") or _is_sweep_value(value):
        return override
    if is_secret_key(key.lstrip("+~")) and "${" not in value:
        name = _env_name(key)
        environ[name] = _unquote(value)
        if re.fullmatch(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?", value):  # keeps int/float
            return f"{key}='${{oc.decode:${{oc.env:{name}}}}}'"  # nested: quoted for Hydra
        return f"{key}=${{oc.env:{name}}}"
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
    ``${oc.env:GLATTN_SECRET_<KEY>}``. Child processes (local_gpus, SLURM) inherit the
    environment. A sweep over secret values (``a,b``) is left as it is."""
    argv = sys.argv if argv is None else argv
    argv[1:] = [hide_override_secret(arg, environ) for arg in argv[1:]]
    return argv
