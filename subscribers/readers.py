"""Subscriber files as a stream of records: CSV, JSON and NDJSON, never loaded whole.

A record is the raw cells of one row with its row number, before any validation:
for CSV the line of the file where the record starts (the header is row 1), for
NDJSON the line, for JSON the 1-based position in the list. A problem with the
file as a whole raises `ImportFileError`; a problem with one record (too many
cells, not an object) travels with the record so the rest of the file still loads.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from newsletter.errors import NewsletterError

FORMATS = ("csv", "json", "ndjson")
COLUMNS = ("email", "name", "country", "language")
CHUNK = 1 << 16
MAX_JSON_OBJECT = 1 << 20  # one subscriber object larger than this is not a subscriber


class ImportFileError(NewsletterError):
    """The file as a whole cannot be imported (no header, missing columns, bad encoding)."""


@dataclass(frozen=True, slots=True)
class Record:
    row: int
    fields: dict[str, object]  # header name (lower case) -> cell; CSV cells are str
    problem: str | None = None  # why the record as a whole is unusable


class ByteCount:
    """How much of the input has been read, for a progress bar."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


def format_for(filename: str | None) -> str:
    """The format a file name implies (`people.ndjson` -> ndjson); CSV when unsure."""
    suffix = (filename or "").rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    return {"json": "json", "ndjson": "ndjson", "jsonl": "ndjson"}.get(suffix, "csv")


def read_records(
    stream: BinaryIO, fmt: str, *, delimiter: str = ",", encoding: str = "utf-8-sig",
    count: ByteCount | None = None,
) -> Iterator[Record]:
    """The records of `stream`, read lazily; raises ImportFileError for whole-file problems."""
    count = count if count is not None else ByteCount()
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise ImportFileError(
            f"unknown encoding {encoding!r}: use a Python codec name such as utf-8, latin-1 "
            "or cp1252"
        ) from exc
    if fmt == "csv":
        if len(delimiter) != 1:
            raise ImportFileError(
                f"the delimiter must be one character, not {delimiter!r}: e.g. --delimiter ';'"
            )
        return _csv_records(_text_lines(stream, encoding, count), delimiter)
    if fmt == "ndjson":
        return _ndjson_records(_text_lines(stream, encoding, count))
    if fmt == "json":
        return _json_records(stream, encoding, count)
    raise ImportFileError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def _encoding_label(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return "UTF-8" if name in ("utf-8", "utf-8-sig") else name


def _ascii_compatible(encoding: str) -> bool:
    """Can lines be split on the byte b'\\n' before decoding (UTF-8, Latin-1, cp1252...)?"""
    sample = "\n,;\t\"ae@|"
    try:  # endswith: an encoding such as utf-8-sig may put a byte order mark first
        return sample.encode(encoding).endswith(sample.encode("ascii"))
    except UnicodeError:
        return False


def _text_lines(stream: BinaryIO, encoding: str, count: ByteCount) -> Iterator[str]:
    """Decoded physical lines with their endings, so a decoding error names its line."""
    if not _ascii_compatible(encoding):  # UTF-16 and friends: let io split the lines
        number = 0
        text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        try:
            for line in text:
                number += 1
                count.value += len(line.encode(encoding, "replace"))
                yield line
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"near row {number + 1}: the file is not {encoding} ({exc.reason}): "
                "name its encoding with --encoding"
            ) from exc
        finally:
            text.detach()  # the caller owns the stream: do not close it
        return
    decoder = codecs.getincrementaldecoder(encoding)()
    number = 0
    try:
        for raw in stream:
            number += 1
            count.value += len(raw)
            yield decoder.decode(raw)
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"row {max(number, 1)}: the file is not {_encoding_label(encoding)} "
            f"({exc.reason} at byte {exc.start} of the line): save it as UTF-8, or name its "
            "encoding with --encoding (e.g. latin-1 or cp1252)"
        ) from exc
    if tail:
        yield tail


def _header(cells: list[str], delimiter: str) -> list[str]:
    names = [c.strip().lstrip("\ufeff").strip().lower() for c in cells]
    if "email" not in names:
        found = delimiter.join(names) or "nothing"
        hint = ""
        for other in (";", "\t", ",", "|"):
            if other != delimiter and len(names) == 1 and other in names[0]:
                hint = f"; the columns look separated by {other!r}: use --delimiter {other!r}"
        raise ImportFileError(
            f"the first row must be a header with the columns {','.join(COLUMNS)} "
            f"(only email is required); found {found}{hint}"
        )
    seen = set()
    for name in names:
        if name and name in seen:
            raise ImportFileError(f"the header names the column {name!r} twice")
        seen.add(name)
    return names


def _csv_records(lines: Iterator[str], delimiter: str) -> Iterator[Record]:
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        first = next(reader, None)
        header = _header(first or [], delimiter)
        width = len(header)
        start = reader.line_num + 1
        for cells in reader:
            row, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue  # a blank line or a row of empty cells is not a subscriber
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                yield Record(row, {}, (
                    f"has {len(cells)} values but the header names {width} columns: "
                    f"quote values that contain {delimiter!r}"
                ))
                continue
            yield Record(row, {h: c for h, c in zip(header, cells, strict=False) if h})
    except csv.Error as exc:
        raise ImportFileError(f"row {reader.line_num}: the CSV cannot be read ({exc})") from exc


def _ndjson_records(lines: Iterator[str]) -> Iterator[Record]:
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Record(number, {}, f"is not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        yield _object_record(number, value)


def _object_record(row: int, value: object) -> Record:
    if not isinstance(value, dict):
        return Record(row, {}, f"is a JSON {type(value).__name__}, not an object with an email")
    return Record(row, {str(k).strip().lower(): v for k, v in value.items()})


def _json_records(stream: BinaryIO, encoding: str, count: ByteCount) -> Iterator[Record]:
    """A JSON list of objects, parsed one element at a time with a bounded buffer.

    The stdlib has no streaming parser (and ijson is not a dependency), so this reads
    64 KB chunks and hands each element to `json.JSONDecoder.raw_decode`; an element
    that does not parse yet is retried with more text, up to MAX_JSON_OBJECT.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    parser = json.JSONDecoder()
    buf, pos, eof, lines_before = "", 0, False, 1

    def more() -> bool:
        nonlocal buf, pos, eof, lines_before
        if eof:
            return False
        chunk = stream.read(CHUNK)
        count.value += len(chunk)
        eof = not chunk
        try:
            text = decoder.decode(chunk, final=eof)
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"line {lines_before + buf[:pos].count(chr(10))}: the file is not "
                f"{_encoding_label(encoding)} ({exc.reason}): save it as UTF-8 or use --encoding"
            ) from exc
        lines_before += buf.count("\n", 0, pos)
        buf, pos = buf[pos:] + text, 0
        return not eof or bool(text)

    def skip_space() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not more():
                return ""

    def where() -> str:
        return f"line {lines_before + buf.count(chr(10), 0, pos)}"

    if skip_space() != "[":
        raise ImportFileError(
            "a JSON file must hold a list of subscriber objects, [{\"email\": ...}, ...]; "
            "for one object per line use --format ndjson"
        )
    pos += 1
    index = 0
    if skip_space() == "]":
        return
    while True:
        while True:
            try:
                value, end = parser.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                if len(buf) - pos > MAX_JSON_OBJECT or not more():
                    raise ImportFileError(
                        f"item {index + 1} ({where()}): not valid JSON ({exc.msg})"
                    ) from exc
        index += 1
        pos = end
        yield _object_record(index, value)
        separator = skip_space()
        if separator == "]":
            return
        if separator != ",":
            raise ImportFileError(
                f"after item {index} ({where()}): expected ',' or ']', "
                f"found {separator or 'the end of the file'!r}"
            )
        pos += 1
        skip_space()
