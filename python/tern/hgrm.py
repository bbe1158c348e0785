"""Read HdrHistogram ``.hgrm`` percentile files, as tern's C++ ``Histogram::write_hgrm``
and the benchmarks' ``--hgrm PREFIX`` write them, into rows or a pandas DataFrame.

    import tern
    df = tern.hgrm.read("build/pingpong.tern.hgrm")      # DataFrame (needs pandas)
    rows = tern.hgrm.read("build/pingpong.tern.hgrm", frame=False)   # list of HgrmRow

The format: a header line (``Value Percentile TotalCount 1/(1-Percentile)``), then one
row per percentile step, ``value percentile total_count [1/(1-percentile)]`` (the last
row, percentile 1.0, has no fourth column), then ``#[Mean = ..., StdDeviation = ...]``,
``#[Max = ..., Total count = ...]``, ``#[Buckets = ..., SubBuckets = ...]``. Parsing
follows ``Histogram::read_hgrm``: blank lines, ``#`` lines and the header are skipped;
any other line must have 3 or 4 numeric fields with the percentile in [0, 1], else
ValueError naming the line. Values are in the unit the file was written in (the C++
``output_scale``; tern's benchmarks write microseconds).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, NamedTuple, Union

__all__ = ["HgrmRow", "parse", "read", "summary", "to_frame"]


class HgrmRow(NamedTuple):
    value: float
    percentile: float          # a fraction in [0, 1]
    total_count: int           # cumulative count up to ``value``
    inverse: float             # 1/(1-percentile); inf on the last row


_FOOTER = re.compile(r"([A-Za-z][A-Za-z ]*?)\s*=\s*([-+0-9.eE]+|NaN|Infinity)")


def parse(text: str) -> tuple[list[HgrmRow], dict[str, float]]:
    """(rows, footer) from .hgrm text; footer keys: mean, stddev, max, total_count,
    buckets, sub_buckets (those present)."""
    rows: list[HgrmRow] = []
    footer: dict[str, float] = {}
    names = {"Mean": "mean", "StdDeviation": "stddev", "Max": "max",
             "Total count": "total_count", "Buckets": "buckets", "SubBuckets": "sub_buckets"}
    for no, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] == "Value":
            continue
        if fields[0].startswith("#"):
            for key, val in _FOOTER.findall(line):
                if key.strip() in names:
                    footer[names[key.strip()]] = float(val)
            continue
        if len(fields) not in (3, 4):
            raise ValueError(f"hgrm line {no}: expected 3 or 4 fields: {line!r}")
        try:
            value = float(fields[0])
            pct = float(fields[1])
            total = int(fields[2])
            inv = float(fields[3]) if len(fields) == 4 else math.inf
        except ValueError:
            raise ValueError(f"hgrm line {no}: not a number: {line!r}") from None
        if not 0.0 <= pct <= 1.0:
            raise ValueError(f"hgrm line {no}: percentile {fields[1]} outside [0, 1]: {line!r}")
        rows.append(HgrmRow(value, pct, total, inv))
    return rows, footer


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("tern.hgrm: a DataFrame needs pandas, which is not installed "
                          "(Debian: apt-get install python3-pandas; or pip install pandas); "
                          "pass frame=False for a list of rows") from None
    return pandas


def to_frame(rows: list[HgrmRow], footer: dict[str, float]) -> Any:
    """A DataFrame with columns value, percentile, total_count, inverse (and
    ``df.attrs`` = the footer)."""
    pd = _pandas()
    df = pd.DataFrame(rows, columns=list(HgrmRow._fields))
    df.attrs.update(footer)
    return df


def read(path: Union[str, "os.PathLike[str]"], frame: bool = True) -> Any:
    """The .hgrm file at ``path`` as a DataFrame (``frame=True``, needs pandas; the
    footer in ``df.attrs``) or as a list of HgrmRow (``frame=False``, no dependency)."""
    with open(path, encoding="utf-8") as f:
        rows, footer = parse(f.read())
    return to_frame(rows, footer) if frame else rows


def summary(path: Union[str, "os.PathLike[str]"]) -> dict[str, float]:
    """The footer of the .hgrm file at ``path``: mean, stddev, max, total_count, ..."""
    with open(path, encoding="utf-8") as f:
        return parse(f.read())[1]
