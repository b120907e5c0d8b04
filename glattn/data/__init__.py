"""Data: HAM10000 and ISIC 2018 Task 3 readers, a generic CSV + image-folder reader, a
synthetic dermoscopy set, lesion-grouped splits, a decode-once image cache, transforms, and
`build_data(cfg, run_dir)`. `class_names_of(cfg.dataset)`: a data-set config's class list.

The class list and the error type import nothing heavy; the pipeline (torch, torchvision) is
imported when one of its names is first used, so the report reads `CLASS_NAMES` without it.
"""

from importlib import import_module

from glattn.data.classes import CLASS_NAMES, ISIC_COLUMNS
from glattn.data.errors import DataError

#: {name: the module defining it} of the names that import torch
_PIPELINE = {
    "DataBundle": "bundle",
    "build_data": "bundle",
    "class_names_of": "readers",
    "reader_of": "readers",
}

__all__ = ["CLASS_NAMES", "ISIC_COLUMNS", "DataError", *_PIPELINE]


def __getattr__(name: str):
    if name in _PIPELINE:
        return getattr(import_module(f"glattn.data.{_PIPELINE[name]}"), name)
    raise AttributeError(f"module 'glattn.data' has no attribute {name!r}")
