"""`newsletter subscribers import` and `export`: moving many subscribers in or out.

Thin wrappers over `subscribers.importer` and `subscribers.export`: options in,
a progress bar on stderr (hidden by --silent or when stderr is not a terminal),
a summary out, and an exit status a script can test.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.filtering import build_filter, filter_options
from newsletter.cli.output import emit_json, err_console, json_option
from newsletter.words import plural
from subscribers.export import FORMATS, count_matching, export_subscribers
from subscribers.importer import (
    ImportInterrupted,
    ImportOptions,
    ImportReport,
    ImportStopped,
    RowError,
    format_for,
    import_subscribers,
)
from subscribers.readers import csv_cells

SHOWN_ERRORS = 20  # rejected rows printed on the terminal; --errors FILE gets them all
EXIT_REJECTED = 2
EXIT_INTERRUPTED = 130


@contextmanager
def _progress(
    silent: bool, total: int | None, *, as_bytes: bool
) -> Iterator[Callable[[int], None]]:
    """A callback advancing a Rich bar on stderr; a no-op when silent or not on a terminal."""
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    columns += [DownloadColumn()] if as_bytes else [MofNCompleteColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True,
                  disable=silent or not err_console.is_terminal) as bar:
        task = bar.add_task("importing" if as_bytes else "exporting", total=total)
        yield lambda n: bar.advance(task, n)


def _summary(report: ImportReport) -> str:
    parts = [
        f"{report.added} added", f"{report.updated} updated", f"{report.unchanged} unchanged",
        f"{plural(report.merged, 'duplicate row')} merged", f"{report.rejected} rejected",
    ]
    if report.suppressed:
        parts.append(f"({report.suppressed} of them suppressed)")
    if report.resubscribed:
        parts.append(f"{report.resubscribed} resubscribed")
    if report.subscribed:
        parts.append(f"{report.subscribed} subscribed to the list")
    if report.warned:
        parts.append(f"{plural(report.warned, 'warning')} (stored, a value left out)")
    line = ", ".join(parts)
    if report.inactive:
        line += (f"; {report.inactive} stay unsubscribed, bounced or complained "
                 "(--resubscribe only if they asked to come back)")
    return ("dry run, nothing written: " if report.dry_run else "") + line


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="csv, json (a list of objects) or ndjson. Default: from the file name; "
                   "csv for standard input.")
@click.option("--delimiter", default=",", show_default=True, help="CSV column separator.")
@click.option("--encoding", default="utf-8-sig", show_default=True,
              help="The file's encoding (a BOM is fine), e.g. latin-1 or cp1252.")
@click.option("--list", "list_name", default=None, help="Also subscribe everyone to this list.")
@click.option("--dry-run", is_flag=True, help="Validate and count, write nothing.")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the rejected rows and the warnings to this CSV (row, field, value, "
                   "reason, level).")
@click.option("--strict", is_flag=True,
              help="Reject a row with an unknown country instead of storing the person "
                   "without one (a warning).")
@click.option("--resubscribe", is_flag=True,
              help="Reactivate people who unsubscribed, bounced, complained or are "
                   "suppressed: only when they asked to subscribe again.")
@click.option("--preconfirm", is_flag=True,
              help="With a double opt-in --list: these people already confirmed.")
@click.option("--consent-text", default=None,
              help="The version of the consent wording they agreed to, e.g. 2024-05.")
@click.option("--batch-size", type=click.IntRange(min=1), default=ImportOptions.batch_size,
              show_default=True, help="Rows per transaction.")
@click.option("--silent", is_flag=True, help="No progress bar.")
@json_option
@pass_app
@user_errors
def import_cmd(app: App, file: str, fmt: str | None, delimiter: str, encoding: str,
               list_name: str | None, dry_run: bool, errors_path: Path | None,
               strict: bool, resubscribe: bool, preconfirm: bool, consent_text: str | None,
               batch_size: int, silent: bool, as_json: bool) -> None:
    """Import subscribers from FILE (CSV, JSON or NDJSON; - for standard input).

    Columns: email (required), name, country, language; other columns become
    attributes. Addresses are validated and normalised, repeated addresses merged;
    a bad row is reported with its row number and skipped, the good rows are
    imported in batches, each committed on its own: an interrupted import is
    finished by running the same command again. An unknown country is a warning:
    the person is stored without a country (--strict rejects the row). Line endings
    may be CRLF, LF or CR. Unsubscribed, bounced, complained and suppressed people
    stay so unless --resubscribe is given. Exits with status 2 when rows were
    rejected, 1 when the file cannot be read (the rows before a problem part-way
    through are stored, and the message says how many), 130 when interrupted.

    \b
    Example:
      newsletter subscribers import people.csv --errors rejected.csv
      newsletter subscribers import people.csv --strict   # unknown country: reject
      newsletter subscribers import export.ndjson --list news --dry-run
      cat people.csv | newsletter subscribers import - --delimiter ';'
    """
    name = "stdin" if file == "-" else os.path.basename(file)
    options = ImportOptions(
        format=fmt or ("csv" if file == "-" else format_for(file)), delimiter=delimiter,
        encoding=encoding, list_name=list_name, dry_run=dry_run, resubscribe=resubscribe,
        preconfirm=preconfirm, consent_method=f"import:{name}"[:200], consent_text=consent_text,
        batch_size=batch_size, strict=strict,
    )
    with ExitStack() as stack:
        stream: BinaryIO
        if file == "-":
            stream, total = sys.stdin.buffer, None
        else:
            stream = stack.enter_context(open(file, "rb"))
            total = os.fstat(stream.fileno()).st_size
        on_error = _error_writer(stack, errors_path)
        progress = stack.enter_context(_progress(silent or as_json, total, as_bytes=True))
        try:
            report = import_subscribers(
                app.sessions, stream, options, default_language=app.settings.default_language,
                on_error=on_error,
                progress=progress,
            )
        except ImportInterrupted as exc:
            click.echo(f"interrupted after {exc.report.committed} rows; run the same command "
                       "again to finish", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except ImportStopped as exc:  # part of the file is stored: say so, in both shapes
            if as_json:
                emit_json({**exc.report.as_dict(), "error": str(exc.cause),
                           "stored": 0 if dry_run else exc.report.imported,
                           "resume": "fix the file and run the same command again"})
            else:
                _show_errors(exc.report, errors_path)
            raise click.ClickException(str(exc)) from exc
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(_summary(report))
        _show_errors(report, errors_path)
    if report.rejected:
        sys.exit(EXIT_REJECTED)


def _error_writer(stack: ExitStack, path: Path | None) -> Callable[[RowError], None] | None:
    """Rejected rows go to the CSV as they arrive, so memory stays flat."""
    if path is None:
        return None
    out: IO[str] = stack.enter_context(path.open("w", newline="", encoding="utf-8"))
    writer = csv.writer(out)
    writer.writerow(["row", "field", "value", "reason", "level"])
    # the value and the field (a column's name, a JSON key) come from the imported file:
    # never let a spreadsheet run them
    return lambda e: writer.writerow(csv_cells((e.row, e.field, e.value, e.reason, e.level)))


def _show_errors(report: ImportReport, errors_path: Path | None) -> None:
    where = f"all are in {errors_path}" if errors_path else "use --errors FILE to see all"
    for kind, shown, total in (("rejected rows", report.errors, report.rejected),
                               ("warnings", report.warnings, report.warned)):
        for error in shown[:SHOWN_ERRORS]:
            click.echo(f"  {error}", err=True)
        hidden = total - min(len(shown), SHOWN_ERRORS)
        if hidden > 0:
            click.echo(f"  ... and {hidden} more {kind}: {where}", err=True)


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="csv, json or ndjson. Default: from the --output file name, else csv.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, allow_dash=True),
              default="-", help="Write here instead of standard output.")
@filter_options
@click.option("--formula-escape/--no-formula-escape", default=True, show_default=True,
              help="CSV: put a ' before a value that starts with =, +, -, @, tab or CR, so "
                   "a spreadsheet shows it instead of running it. Turn off for programs.")
@click.option("--silent", is_flag=True, help="No progress bar.")
@pass_app
@user_errors
def export_cmd(app: App, /, fmt: str | None, output: str, formula_escape: bool, silent: bool,
               **filters: Any) -> None:
    """Export subscribers as CSV, JSON or NDJSON, streamed (any number of rows).

    Columns: email, name, country, language, status, lists, created_at, consent_at,
    consent_method, consent_text, attributes. The file imports back as it is (the
    import removes the ' that --formula-escape, the default for CSV, puts before a
    value such as =1+1 or -5, as OWASP advises against formula injection).

    \b
    Example:
      newsletter subscribers export --country CR,NI --status active -o people.csv
      newsletter subscribers export --format ndjson --list news > news.ndjson
      newsletter subscribers export --no-formula-escape | my-program
    """
    f = build_filter(filters)
    fmt = fmt or ("csv" if output == "-" else format_for(output))
    with ExitStack() as stack, app.sessions() as session:
        out: TextIO
        if output == "-":
            out = sys.stdout
        else:
            out = stack.enter_context(open(output, "w", newline="", encoding="utf-8"))
        quiet = silent or not err_console.is_terminal
        total = None if quiet else count_matching(session, f)
        progress = stack.enter_context(_progress(quiet, total, as_bytes=False))
        written = export_subscribers(session, f, fmt, out, progress,
                                     formula_escape=formula_escape)
    if output != "-":
        click.echo(f"{written} subscribers written to {output}", err=True)
