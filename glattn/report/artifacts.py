"""Run artifacts the report lists and downloads, and the checkpoint of a run."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from glattn.tracking.client import make_client

CHECKPOINT = re.compile(r"(^|/)best\.pt$")


def list_files(client, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file path of a run (recursive)."""
    infos = client.list_artifacts(run_id, path)
    return [
        p for i in infos for p in (list_files(client, run_id, i.path) if i.is_dir else [i.path])
    ]


def download(client, run_id: str, path: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst)))


def checkpoint(uri: str, run: pd.Series, tmp: Path) -> Path | None:
    """The run's ``best.pt`` artifact downloaded into `tmp`, else its local checkpoint, or None."""
    client, run_id = make_client(uri), run["run_id"]
    path = next((p for p in list_files(client, run_id) if CHECKPOINT.search(p)), None)
    if path is not None:
        return download(client, run_id, path, tmp / run_id)
    out_dir, fp = run.get("params.paths.output_dir"), run.get("fingerprint")
    local = Path(str(out_dir)) / "checkpoints" / str(fp) / "best.pt"
    return local if isinstance(out_dir, str) and isinstance(fp, str) and local.is_file() else None
