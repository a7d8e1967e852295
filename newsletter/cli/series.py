"""`newsletter series ...`: newsletters that come out on a calendar."""

from __future__ import annotations

import click


@click.group()
def series() -> None:
    """Newsletters that come out on a calendar: one issue per period.

    \b
    Example:
      newsletter series create semanal --every "weekly on monday at 09:00" \\
          --timezone America/Costa_Rica --title es="Boletín semanal"
    """
