"""Write MongoDB filters so that nx-27017 answers them from its indexes.

nx-27017 (the embedded store, on SQLite through neosqlite) translates an implicit equality
``{"owner": "alice"}`` into ``owner = ? OR EXISTS (SELECT ... FROM json_each(...))`` to honour
MongoDB's array-containment semantics. SQLite cannot use an index for that ``OR``, so every such
query scanned the whole collection (measured with ``explain()``: ``SCAN projects``; 57 ms for a
listing page with 10k projects). The explicit ``{"owner": {"$eq": "alice"}}`` means the same on
MongoDB and becomes ``owner = ?`` there, which SQLite answers from the ``(owner, created_at)``
index (``SEARCH projects USING INDEX``; 1.3 ms).

Comparisons on ``_id`` other than equality (``{"_id": {"$lt": ...}}``) are evaluated in Python
by nx-27017 (a full scan); callers filter those themselves.
"""

from __future__ import annotations

from typing import Any


def indexable(query: dict[str, Any]) -> dict[str, Any]:
    """Return ``query`` with every implicit field equality made an explicit ``$eq``.

    Operators (``$or``, ``$in``, ...), sub-documents and ``_id`` (a real column in nx-27017)
    are kept as they are; the meaning on MongoDB is unchanged for scalar values.
    """
    return {
        key: {"$eq": value} if _is_plain_field(key) and _is_scalar(value) else value
        for key, value in query.items()
    }


def _is_plain_field(key: str) -> bool:
    return not key.startswith("$") and key != "_id"


def _is_scalar(value: Any) -> bool:
    return value is not None and not isinstance(value, dict | list | tuple)
