"""Counting in sentences: "1 batch", "2 batches", "no batches"."""

from __future__ import annotations


def plural(count: int, singular: str, many: str | None = None) -> str:
    """`count` and the noun in the right number: plural(1, "batch", "batches") -> "1 batch"."""
    return f"{count} {singular if count == 1 else many or singular + 's'}"
