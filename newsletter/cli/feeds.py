"""`newsletter feeds ...`: RSS and Atom feeds whose entries become items."""

from __future__ import annotations

import click


@click.group()
def feeds() -> None:
    """Follow RSS and Atom feeds: their entries become items.

    \b
    Example:
      newsletter feeds add https://news.example.org/es/feed.xml --name noticias --language es
      newsletter feeds fetch
    """
