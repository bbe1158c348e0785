"""pandas views of what tern gives a researcher: stats snapshots and received messages.

pandas is optional: it is imported when one of these functions is called, and a clear
ImportError says how to install it (Debian ``python3-pandas``). ``.hgrm`` latency files
are read by ``tern.hgrm.read``.

    snaps = []
    ... snaps.append(mgr.stats()) ...            # e.g. once a second
    tern.frames.stats_frame(snaps)               # one row per snapshot
    tern.frames.messages_frame(quotes)           # one row per message, one column per field
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Union

from .messages import message_type_name

__all__ = ["flatten", "messages_frame", "stats_frame"]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("tern.frames needs pandas, which is not installed (Debian: "
                          "apt-get install python3-pandas; or pip install pandas)") from None
    return pandas


def flatten(snapshot: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A stats snapshot with nested dicts flattened: ``{"dropped": {"empty": 2}}`` ->
    ``{"dropped.empty": 2}``. No pandas needed."""
    out: dict[str, Any] = {}
    for key, val in snapshot.items():
        name = f"{prefix}{key}"
        if isinstance(val, Mapping):
            out.update(flatten(val, name + "."))
        else:
            out[name] = val
    return out


def stats_frame(snapshots: Union[Mapping[str, Any], Iterable[Mapping[str, Any]]]) -> Any:
    """``Manager.stats()`` snapshots (one dict, or any iterable of them) as a DataFrame:
    one row per snapshot, one column per counter, drop causes as ``dropped.CAUSE``
    columns (0 where a snapshot had none of that cause)."""
    pd = _pandas()
    if isinstance(snapshots, Mapping):
        snapshots = [snapshots]
    rows = [flatten(s) for s in snapshots]
    df = pd.DataFrame(rows)
    drop_cols = [c for c in df.columns if c.startswith("dropped.")]
    if drop_cols:
        df[drop_cols] = df[drop_cols].fillna(0).astype("int64")
    return df


def _fields(msg: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(msg) and not isinstance(msg, type):
        return {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    return dict(vars(msg))


def messages_frame(messages: Iterable[Any], type_column: str = "type") -> Any:
    """Received messages (objects, or ``(msg, sender)`` pairs) as a DataFrame: one row per
    message, one column per field (the message's attributes, as sent on the wire), and
    ``type_column`` with the wire type name (omitted when ``type_column`` is None)."""
    pd = _pandas()
    rows = []
    for m in messages:
        if isinstance(m, tuple):
            m = m[0]
        row = _fields(m)
        if type_column is not None:
            row = {type_column: message_type_name(m), **row}
        rows.append(row)
    return pd.DataFrame(rows)
