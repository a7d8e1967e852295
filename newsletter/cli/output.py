"""Shared output: Rich tables for people, `--json` for programs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _default(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=_default))


# columns whose values are never cut: an address or a path with an ellipsis is useless
WHOLE = frozenset({"email", "html", "index", "file", "path"})


def cell(value: Any) -> str:
    """A value as a person reads it: timestamps to the second, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A Rich table that folds long values onto more lines instead of cutting them; when
    it is wider than the terminal, the other columns shrink to their longest word first,
    so addresses (and paths) keep as much of a line as there is."""
    shown = [[cell(v) for v in row] for row in rows]
    t = Table(title=title, title_justify="left")
    natural = 3 * len(columns) + 1 + sum(
        max([len(c), *(len(r[n]) for r in shown)]) for n, c in enumerate(columns))
    squeeze = natural > console.width and any(c in WHOLE for c in columns)
    for n, column in enumerate(columns):
        narrowest = max([len(column), *(len(w) for r in shown for w in r[n].split())])
        limit = narrowest if squeeze and column not in WHOLE else None
        t.add_column(column, overflow="fold", max_width=limit)
    for row in shown:
        t.add_row(*row)
    console.print(t)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
