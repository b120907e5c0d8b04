"""Write a toy 4-class data set in the `dataset=csv` layout: <root>/images/*.png and
<root>/labels.csv with columns image, diagnosis, patient_id (2-3 images per patient).

    python examples/extending/make_toy_csv.py outputs/toy_csv
"""

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = {
    "benign": (150, 110, 70),
    "dysplastic": (190, 90, 80),
    "malignant": (60, 30, 30),
    "vascular": (160, 40, 70),
}


def main(root: Path, patients_per_class: int = 12) -> None:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for label, colour in CLASSES.items():
        for p in range(patients_per_class):
            patient = f"{label[:3]}-{p:03d}"
            for k in range(int(rng.integers(2, 4))):
                pixels = np.asarray(colour, np.float32) + rng.normal(0, 25, (48, 48, 3))
                name = f"images/{patient}_{k}.png"
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name)
                rows.append({"image": name, "diagnosis": label, "patient_id": patient})
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "diagnosis", "patient_id"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} images of {len(CLASSES)} classes in {root}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/toy_csv"))
