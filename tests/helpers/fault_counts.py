"""One file of fault and hostile-input counts for the README: bench/results/faults.json."""

from __future__ import annotations

import json
import time

from scripts.local_services import REPO

OUT = REPO / "bench" / "results" / "faults.json"


def write_counts(section: str, counts: dict) -> None:
    """Replace ``section`` of faults.json with ``counts`` (other sections stay)."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(OUT.read_text())
    except (OSError, ValueError):
        data = {}
    data[section] = {**counts, "at": time.time()}
    OUT.write_text(json.dumps(data, indent=2) + "\n")
