"""Image identity: a file is the same image whatever name points to it.

Two rows of a data set are one image when their paths resolve to the same file
(``images/x.png``, ``./images/x.png``, ``images/../images/x.png`` or a symbolic link):
every reader refuses that, naming the rows (`check_one_row_per_file`). Two *files* with the
same bytes under different names are also one image to a model; when they land in
different splits the validation or test metrics see a training image, so the splits report
them (`identical_across_splits`, a warning naming the files). Files are compared cheaply:
by size first, then a hash of the first 64 KiB, then a hash of the whole file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence

from glattn.data.errors import DataError

log = logging.getLogger(__name__)

MAX_LISTED = 5
_HEAD = 64 * 1024
_CHUNK = 1024 * 1024


def resolved(path) -> str:
    """The file a path names: absolute, with `.`/`..` and symbolic links resolved."""
    return os.path.realpath(os.fspath(path))


def same_file_rows(paths: Sequence) -> list[list[int]]:
    """Groups (row positions, ascending) of `paths` that name one file; None paths skipped."""
    rows: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(paths):
        if p is not None:
            rows[resolved(p)].append(i)
    return [group for group in rows.values() if len(group) > 1]


def check_one_row_per_file(paths: Sequence, source: str, row_name: Callable[[int], str]) -> None:
    """Raise one DataError when two rows name the same file; `row_name(i)` says which row
    (``'./images/x.png' (line 3)``, ``image ISIC_0024306``)."""
    groups = same_file_rows(paths)
    if not groups:
        return
    shown = "; ".join(
        f"{' and '.join(row_name(i) for i in group)} are {resolved(paths[group[0]])}"
        for group in groups[:MAX_LISTED]
    )
    more = f" (and {len(groups) - MAX_LISTED} more)" if len(groups) > MAX_LISTED else ""
    raise DataError(
        f"{source}: {len(groups)} file(s) listed on more than one row: {shown}{more}; "
        "expected each image once (two rows of one file would fall into two splits)"
    )


def _digest(path: str, limit: int | None) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        left = limit
        while left is None or left > 0:
            chunk = f.read(_CHUNK if left is None else min(_CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            if left is not None:
                left -= len(chunk)
    return h.digest()


def _refine(groups: list[list[int]], key: Callable[[int], object]) -> list[list[int]]:
    out = []
    for group in groups:
        by: dict[object, list[int]] = defaultdict(list)
        for i in group:
            by[key(i)].append(i)
        out += [g for g in by.values() if len(g) > 1]
    return out


def identical_files(paths: Sequence, keep: Callable[[list[int]], bool] = lambda g: True):
    """Groups (row positions) of distinct files with identical bytes; `keep(group)` drops
    candidate groups early (e.g. those inside one split), so only they are read."""
    files = {i: resolved(p) for i, p in enumerate(paths) if p is not None}
    first: dict[str, int] = {}
    for i, f in files.items():
        first.setdefault(f, i)  # one row per file: the same file is not a duplicate
    sizes: dict[int, list[int]] = defaultdict(list)
    for f, i in first.items():
        try:
            sizes[os.stat(f).st_size].append(i)
        except OSError:
            continue  # a missing file is another check's error
    groups = [g for g in sizes.values() if len(g) > 1 and keep(g)]
    for limit in (_HEAD, None):
        groups = _refine(groups, lambda i, n=limit: _digest(files[i], n))
        groups = [g for g in groups if keep(g)]
    return groups


def identical_across_splits(paths: Sequence, splits: Sequence, names: Sequence) -> list[list[int]]:
    """Warn about byte-identical files under different names in different splits (one
    warning naming them, `names[i]` and its split); returns the groups of row positions."""
    groups = identical_files(paths, keep=lambda g: len({splits[i] for i in g}) > 1)
    if groups:
        shown = "; ".join(
            " = ".join(f"{names[i]} ({splits[i]}, {paths[i]})" for i in group)
            for group in groups[:MAX_LISTED]
        )
        more = f" (and {len(groups) - MAX_LISTED} more)" if len(groups) > MAX_LISTED else ""
        log.warning(
            "%d image file(s) have a byte-identical copy under another name in another "
            "split: %s%s; the evaluation sees these training images. Remove the copies "
            "(dataset=csv: or give them one group in dataset.group_column)",
            len(groups),
            shown,
            more,
        )
    return groups
