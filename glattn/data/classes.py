"""The 7 diagnostic classes of HAM10000 (Tschandl et al. 2018, doi:10.1038/sdata.2018.161)
and ISIC 2018 Task 3 (Codella et al. 2019, arXiv:1902.03368), in one fixed order.

The order is ISIC 2018's ground-truth column order; the names are HAM10000's lower-case
`dx` codes. Both readers map to these indices, so a model trained on one data set
evaluates on the other.
"""

from __future__ import annotations

from glattn.data.errors import DataError

CLASS_NAMES: tuple[str, ...] = ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")
# ISIC 2018 Task 3 ground-truth CSV columns, same order as CLASS_NAMES.
ISIC_COLUMNS: tuple[str, ...] = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")

ISIC_TO_DX: dict[str, str] = dict(zip(ISIC_COLUMNS, CLASS_NAMES))
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

# HAM10000's full dx counts (10,015 images); the synthetic set draws its class mix from it.
HAM10000_DX_COUNTS: dict[str, int] = {
    "mel": 1113,
    "nv": 6705,
    "bcc": 514,
    "akiec": 327,
    "bkl": 1099,
    "df": 115,
    "vasc": 142,
}


def label_of(dx: str, where: str) -> int:
    """Index of the HAM10000 `dx` code `dx` (case and surrounding blanks ignored)."""
    key = str(dx).strip().lower()
    if key not in CLASS_INDEX:
        raise DataError(f"{where}: unknown label {dx!r}; expected one of {', '.join(CLASS_NAMES)}")
    return CLASS_INDEX[key]
