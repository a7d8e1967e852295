"""The filter options every subscriber command shares, and table/JSON/CSV output."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from newsletter.cli.output import emit_json, table
from subscribers.filters import Filter
from subscribers.readers import csv_cells
from subscribers.rows import clean_attribute, clean_attribute_key

F = TypeVar("F", bound=Callable[..., Any])


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def _split_attribute(option: str) -> tuple[str, str] | None:
    """KEY=VALUE at the first `=` that is not written `\\=` (a key may hold any other
    character as it is, quotes, dots and brackets included; `\\\\` is a backslash)."""
    key: list[str] = []
    i = 0
    while i < len(option):
        char = option[i]
        if char == "\\" and option[i + 1:i + 2] in ("=", "\\"):
            key.append(option[i + 1])
            i += 2
            continue
        if char == "=":
            return "".join(key), option[i + 1:]
        key.append(char)
        i += 1
    return None


def parse_attributes(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`--attr KEY=VALUE` options as sorted pairs, cleaned as an import cleans attributes
    (so what was imported is what --attr finds)."""
    pairs = []
    for value in values:
        found = _split_attribute(value)
        key = clean_attribute_key(found[0]) if found else ""
        if found is None or not key:
            raise click.BadParameter(
                f"{value!r}: use KEY=VALUE (write a = inside the key as \\=)",
                param_hint="--attr")
        pairs.append((key, clean_attribute(found[1])))
    return tuple(sorted(pairs))


def filter_options(func: F) -> F:
    """--email, --country, --language, --list, --status, --segment, --attr -> `flt: Filter`."""
    options = [
        click.option("--email", default="", help="Part of the address (case-insensitive)."),
        click.option("--country", multiple=True,
                     help="ISO codes, comma-separated (CR,NI); 'none' for no country."),
        click.option("--language", multiple=True, help="Languages, comma-separated (es,en)."),
        click.option("--list", "lists", multiple=True, help="On any of these lists."),
        click.option("--status", multiple=True,
                     help="pending, active, unsubscribed, bounced, complained."),
        click.option("--segment", multiple=True, help="In any of these segments."),
        click.option("--attr", multiple=True,
                     help="Attribute equals value: KEY=VALUE (any key; a = in it as \\=)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_filter(kwargs: dict[str, Any]) -> Filter:
    """Take the filter options out of a command's keyword arguments."""
    return Filter(
        email=kwargs.pop("email").strip(),
        countries=_split(kwargs.pop("country")),
        languages=_split(kwargs.pop("language")),
        lists=_split(kwargs.pop("lists")),
        statuses=_split(kwargs.pop("status")),
        segments=_split(kwargs.pop("segment")),
        attributes=parse_attributes(kwargs.pop("attr")),
    )


def _remember_escape(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[FORMULA_ESCAPE] = value
    return value


FORMULA_ESCAPE = "newsletter.formula_escape"


def format_options(func: F) -> F:
    # stored on the context for emit_rows, so that no command has to pass it along
    func = click.option(
        "--formula-escape/--no-formula-escape", default=True, show_default=True,
        expose_value=False, callback=_remember_escape,
        help="With --csv: a ' before values starting with =, +, -, @, tab or CR, so a "
             "spreadsheet does not run them (OWASP). Turn off for programs.")(func)
    func = click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")(func)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def emit_rows(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    as_json: bool,
    as_csv: bool,
) -> None:
    """One result, three shapes: a table for people, JSON or CSV for programs."""
    if as_json:
        emit_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif as_csv:
        ctx = click.get_current_context(silent=True)
        escape = ctx is None or ctx.meta.get(FORMULA_ESCAPE, True)
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(csv_cells(row, escape=escape) for row in rows)
    else:
        table(title, columns, rows)
