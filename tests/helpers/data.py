"""Input data for tests: texts from the shared SMS data, and CSV files built from texts."""

from __future__ import annotations

import csv
import io
import random

from spamq.settings import Settings
from spamq.training.data import read_tsv


def sms_texts(n: int, *, seed: int = 0) -> list[str]:
    """``n`` texts drawn from the shared SMS data: the real length mix."""
    rows = read_tsv(Settings().data_path)
    rng = random.Random(seed)
    return [rng.choice(rows).text for _ in range(n)]


def csv_file(texts: list[str]) -> bytes:
    """A CSV file of ``id,message`` rows, one per text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "message"])
    for i, text in enumerate(texts):
        writer.writerow([i, text])
    return buffer.getvalue().encode()


def sample_csv(n: int, bad: set[int]) -> bytes:
    """A CSV file of ``id,text`` rows, every third one spam-like; the rows in ``bad`` blank."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "text"])
    for i in range(n):
        text = "   " if i in bad else f"WINNER! claim your free prize now, call 0800 {i}" \
            if i % 3 == 0 else f"see you at lunch tomorrow? #{i}"
        writer.writerow([i, text])
    return buffer.getvalue().encode()
