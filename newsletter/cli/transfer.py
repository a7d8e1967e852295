"""`newsletter subscribers import` and `export`: moving many subscribers in or out."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import BinaryIO

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, json_option
from subscribers.importer import import_csv


@click.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--errors", "errors_path", type=click.Path(path_type=Path),
              help="Write the rejected rows to this CSV (row, field, value, reason).")
@json_option
@pass_app
@user_errors
def import_cmd(app: App, file: BinaryIO, errors_path: Path | None,
               as_json: bool) -> None:
    """Import subscribers from a CSV FILE (or - for standard input).

    Columns: email,name,country,language. Addresses are validated and normalised,
    repeated addresses merged; a bad row is reported with its row number and
    skipped, the good rows are imported. Exits with status 2 when rows were rejected.

    \b
    Example:
      newsletter subscribers import people.csv --errors rejected.csv
    """
    data = file.read()
    with app.transaction() as session:
        report = import_csv(
            session, data, languages=app.settings.languages,
            default_language=app.settings.default_language,
        )
    if errors_path is not None:
        with errors_path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["row", "field", "value", "reason"])
            writer.writerows((e.row, e.field, e.value, e.reason) for e in report.errors)
    if as_json:
        emit_json({
            "added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "merged": report.merged,
            "errors": [{"row": e.row, "field": e.field, "value": e.value, "reason": e.reason}
                       for e in report.errors],
        })
    else:
        click.echo(
            f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.merged} duplicate rows merged, {len(report.errors)} rejected"
        )
        for error in report.errors:
            click.echo(f"  {error}", err=True)
    if report.errors:
        sys.exit(2)
