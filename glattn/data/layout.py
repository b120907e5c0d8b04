"""Finding files as data sets are really distributed: folder and file-name case vary, and
images may sit anywhere under the data-set root (HAM10000 ships them in two folders, some
copies nest them once more, Kaggle's copy even holds each folder twice in two cases)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from glattn.data.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_LISTED = 5  # how many missing names an error message lists


def check_root(root: str | os.PathLike | None, key: str = "dataset.root") -> Path:
    """The data-set root as a Path, or a DataError when it is unset or missing."""
    if root is None or str(root).strip() == "":
        raise DataError(
            f"{key} is not set; expected the folder the data set was unpacked to "
            "(dataset.root=... or GLATTN_HAM10000_ROOT / GLATTN_ISIC2018_ROOT)"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"{key}={str(root)!r}: folder {path} does not exist")
    return path


def find_file(root: Path, names: Iterable[str], max_depth: int = 2) -> Path | None:
    """First file under `root` (depth <= max_depth, shallowest first) whose name matches one
    of `names` case-insensitively; `names` are tried in the given order at each depth."""
    wanted = [n.lower() for n in names]
    level = [root]
    for _ in range(max_depth + 1):
        found: dict[str, Path] = {}
        nxt = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    nxt.append(Path(entry.path))
                elif entry.name.lower() in wanted:
                    found.setdefault(entry.name.lower(), Path(entry.path))
        for name in wanted:
            if name in found:
                return found[name]
        level = nxt
    return None


def find_dir(root: Path, name: str) -> Path | None:
    """Sub-folder of `root` (direct child, then one level down) named `name`, any case."""
    for parent in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        for child in sorted(parent.iterdir()):
            if child.is_dir() and child.name.lower() == name.lower():
                return child
    return None


def index_images(root: Path) -> dict[str, Path]:
    """Map image id (file stem) -> path for every image file under `root`. Where the same
    id exists twice (duplicated folders), the first in sorted path order wins."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):  # linked folders
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES and not name.startswith("."):
                found.setdefault(stem, Path(dirpath) / name)
    return found


def locate_images(
    image_ids: Iterable[str], root: Path, source: str, skip_missing: Iterable[str] = ()
) -> tuple[list[Path | None], list[str]]:
    """Paths of `image_ids` under `root`. Ids without a file raise one DataError listing the
    first few and the count, except those in `skip_missing` (returned as None + listed)."""
    index = index_images(root)
    ids = list(image_ids)
    paths = [index.get(i) for i in ids]
    allowed = set(skip_missing)
    missing = [i for i, p in zip(ids, paths) if p is None and i not in allowed]
    if missing:
        shown = ", ".join(missing[:MAX_LISTED])
        more = f" (and {len(missing) - MAX_LISTED} more)" if len(missing) > MAX_LISTED else ""
        raise DataError(
            f"{source}: {len(missing)} of {len(ids)} listed images have no file under "
            f"{root}: {shown}{more}; expected <image_id>.jpg somewhere under the root"
        )
    skipped = [i for i, p in zip(ids, paths) if p is None]
    return paths, skipped
