"""Data: HAM10000 and ISIC 2018 Task 3 readers, a generic CSV + image-folder reader, a
synthetic dermoscopy set, lesion-grouped splits, a decode-once image cache, transforms, and
`build_data(cfg, run_dir)`. `class_names_of(cfg.dataset)`: a data-set config's class list."""

from glattn.data.bundle import DataBundle, build_data
from glattn.data.classes import CLASS_NAMES, ISIC_COLUMNS
from glattn.data.errors import DataError
from glattn.data.readers import class_names_of, reader_of

__all__ = [
    "CLASS_NAMES",
    "ISIC_COLUMNS",
    "DataBundle",
    "DataError",
    "build_data",
    "class_names_of",
    "reader_of",
]
