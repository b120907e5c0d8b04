"""Data: HAM10000 and ISIC 2018 Task 3 readers, a synthetic dermoscopy set, lesion-grouped
splits, a decode-once image cache, transforms, and `build_data(cfg, run_dir)`."""

from glattn.data.bundle import READERS, DataBundle, build_data
from glattn.data.classes import CLASS_NAMES, ISIC_COLUMNS
from glattn.data.errors import DataError

__all__ = ["CLASS_NAMES", "ISIC_COLUMNS", "DataBundle", "DataError", "READERS", "build_data"]
