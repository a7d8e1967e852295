"""The filter options every subscriber command shares, and table/JSON/CSV output."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from newsletter.cli.output import emit_json, table
from subscribers.filters import Filter

F = TypeVar("F", bound=Callable[..., Any])


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def parse_attributes(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`--attr KEY=VALUE` options as sorted pairs."""
    pairs = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r}: use KEY=VALUE", param_hint="--attr")
        pairs.append((key.strip(), val.strip()))
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
        click.option("--attr", multiple=True, help="Attribute equals value: KEY=VALUE."),
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


def format_options(func: F) -> F:
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
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    else:
        table(title, columns, rows)
