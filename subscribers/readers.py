"""Subscriber files as a stream of records: CSV, JSON and NDJSON, never loaded whole.

A record is the raw cells of one row with its row number, before any validation:
for CSV the line of the file where the record starts (the header is row 1; a line
may end in CRLF, LF or a lone CR, as old Mac spreadsheets save it), for NDJSON the
line, for JSON the 1-based position in the list. A problem with the file as a
whole raises `ImportFileError`; a problem with one record (too many cells, not an
object, nested too deep, a number too long to read) travels with the record so the
rest of the file still loads.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from newsletter.errors import NewsletterError

FORMATS = ("csv", "json", "ndjson")
COLUMNS = ("email", "name", "country", "language")
CHUNK = 1 << 16
MAX_JSON_OBJECT = 1 << 20  # one subscriber object larger than this is not a subscriber
MAX_NESTING = 100  # lists and objects inside one value; deeper is not a subscriber's data
# what a spreadsheet reads as a formula when a cell starts with it (OWASP "CSV Injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\0")
_ESCAPED_FORMULA = re.compile("'+[=+\\-@\t\r\0]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*("|\\?\Z)|[\[\]{}]', re.DOTALL)


class ImportFileError(NewsletterError):
    """The file as a whole cannot be imported (no header, missing columns, bad encoding)."""


@dataclass(frozen=True, slots=True)
class Record:
    row: int
    fields: dict[str, object]  # header name (lower case) -> cell; CSV cells are str
    problem: str | None = None  # why the record as a whole is unusable
    problem_field: str = "record"  # the field the problem is in, when one is to blame
    # every cell is a str of valid Unicode (CSV read as UTF-8, whose decoder refuses lone
    # surrogates): the checks need not look at its type or for surrogates again
    plain: bool = False


class HugeNumber:
    """A JSON integer with more digits than Python converts (4,300): kept as a marker,
    so the record is refused with a reason instead of the whole file."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _int(text: str) -> int | HugeNumber:
    digits = len(text.lstrip("-"))
    limit = sys.get_int_max_str_digits()
    return HugeNumber(digits) if limit and digits > limit else int(text)


JSON = json.JSONDecoder(parse_int=_int)  # json.loads, but a long number is not an exception


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
               float: "number", HugeNumber: "number", type(None): "null"}


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages a JSON author understands."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def has_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate (from a JSON escape such as \\ud800, or an odd
    codec): no database stores one, and no email carries it."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def json_problem(value: object) -> str | None:
    """Why a decoded JSON value is not data we keep (too deep, a huge number, text that
    is not valid Unicode), or None. Iterative: a deep value must not exhaust the stack."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                return "holds text that is not valid Unicode (a lone surrogate such as \\ud800)"
        elif isinstance(item, HugeNumber):
            return (f"holds a number with {item.digits} digits: more than "
                    f"{sys.get_int_max_str_digits()} cannot be read; write it as text")
        elif isinstance(item, dict | list):
            if depth >= MAX_NESTING:
                return f"is nested more than {MAX_NESTING} levels deep"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def _value_end(text: str, pos: int) -> tuple[int, str] | None:
    """Where the JSON list or object starting at `pos` ends, found without parsing it
    (for a value too deep to parse), with the top-level key under which it goes too
    deep ("record" when none); None when `text` stops before its end."""
    depth, key, blamed = 0, "record", ""
    for match in _JSON_TOKEN.finditer(text, pos):
        token = match.group()
        if token[0] == '"':
            if not match.group(1):
                return None  # a string that goes on past the text read so far
            if depth == 1 and text[match.end():match.end() + 20].lstrip()[:1] == ":":
                key = token[1:-1][:60]
        elif token in "[{":
            depth += 1
            if depth > MAX_NESTING and not blamed:
                blamed = key if text[pos] == "{" else "record"
        else:
            depth -= 1
            if depth <= 0:
                return match.end(), blamed or "record"
    return None


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
    try:
        "".encode(encoding)  # refused by codecs that are not text encodings: hex, base64...
    except LookupError as exc:
        raise ImportFileError(
            f"{encoding!r} is not a text encoding: use one such as utf-8, latin-1 or cp1252"
        ) from exc
    if fmt == "csv":
        if len(delimiter) != 1:
            raise ImportFileError(
                f"the delimiter must be one character, not {delimiter!r}: e.g. --delimiter ';'"
            )
        plain = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
        return _csv_records(_text_lines(stream, encoding, count), delimiter, plain=plain)
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
        except UnicodeError as exc:  # e.g. UTF-16 without a byte order mark
            raise ImportFileError(
                f"near row {number + 1}: the file cannot be read as {encoding} ({exc}): "
                f"{_encoding_hint(encoding)}"
            ) from exc
        finally:
            # the caller owns the stream: let go of it without closing it (unless the
            # caller closed it already: a reader cleaned up late has nothing to let go of)
            with contextlib.suppress(ValueError):
                text.detach()
        return
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        yield from _utf8_lines(stream, encoding, count)
        return
    decoder = codecs.getincrementaldecoder(encoding)()
    number = 0
    try:
        for raw in _byte_lines(stream):
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


def _utf8_lines(stream: BinaryIO, encoding: str, count: ByteCount) -> Iterator[str]:
    """`_text_lines` for UTF-8, the usual file: a chunk's lines decoded in one C loop.
    UTF-8 is stateless and no byte of a multi-byte character is CR or LF, so each line
    decodes on its own; only utf-8-sig's byte order mark belongs to the first line."""
    number = 0
    strip_bom = codecs.lookup(encoding).name == "utf-8-sig"
    for group in _line_groups(stream):
        try:
            lines = list(map(bytes.decode, group))
        except UnicodeDecodeError:
            lines = []
            for raw in group:  # the lines before the bad one first, then its error
                try:
                    lines.append(raw.decode())
                except UnicodeDecodeError as exc:
                    count.value += sum(map(len, group[:len(lines)]))
                    yield from _first_lines(lines, number, strip_bom)
                    raise ImportFileError(
                        f"row {number + len(lines) + 1}: the file is not "
                        f"{_encoding_label(encoding)} ({exc.reason} at byte {exc.start} of the "
                        "line): save it as UTF-8, or name its encoding with --encoding (e.g. "
                        "latin-1 or cp1252)"
                    ) from exc
        count.value += sum(map(len, group))
        yield from _first_lines(lines, number, strip_bom)
        number += len(lines)


def _first_lines(lines: list[str], number: int, strip_bom: bool) -> list[str]:
    """`lines`, without the byte order mark when they start the file."""
    if strip_bom and number == 0 and lines and lines[0][:1] == "\ufeff":
        lines[0] = lines[0][1:]
    return lines


def _encoding_hint(encoding: str) -> str:
    if codecs.lookup(encoding).name in ("utf-16", "utf-32"):
        return (f"a file without a byte order mark needs its byte order: --encoding "
                f"{codecs.lookup(encoding).name}-le (or -be)")
    return "name its encoding with --encoding"


def _byte_lines(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of `stream` with their endings: CRLF, LF, or a lone CR (a CSV saved by
    an old Mac spreadsheet is one long line to Python's own line splitting)."""
    for group in _line_groups(stream):
        yield from group


def _line_groups(stream: BinaryIO) -> Iterator[list[bytes]]:
    """`_byte_lines`, a chunk's worth of lines at a time."""
    head: list[bytes] = []  # the start of a line that may go on in the next chunk
    while chunk := stream.read(CHUNK):
        done: list[bytes] = []
        if head and (head[-1].endswith(b"\n")
                     or head[-1].endswith(b"\r") and not chunk.startswith(b"\n")):
            done.append(b"".join(head))  # it ended where the last chunk did
            head = []
        lines = chunk.splitlines(keepends=True)
        # the last line may go on in the next chunk, or be a CR whose LF starts it; kept
        # in pieces, so that a very long line is joined once, not once per chunk
        last = lines.pop()
        if lines:
            done.append(b"".join([*head, lines[0]]))
            done.extend(lines[1:])
            head = []
        head.append(last)
        if done:
            yield done
    if head:
        yield [b"".join(head)]


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


def _csv_records(lines: Iterator[str], delimiter: str, *, plain: bool = False
                 ) -> Iterator[Record]:
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        first = next(reader, None)
        header = _header(first or [], delimiter)
        width = len(header)
        named = all(header)  # no unnamed column to leave out
        start = reader.line_num + 1
        for cells in reader:
            row, start = start, reader.line_num + 1
            joined = "".join(cells)
            if not joined.strip():
                continue  # a blank line or a row of empty cells is not a subscriber
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                yield Record(row, {}, (
                    f"has {len(cells)} values but the header names {width} columns: "
                    f"quote values that contain {delimiter!r}"
                ))
                continue
            if named and "'" not in joined:  # the usual row: nothing to unescape or skip
                yield Record(row, dict(zip(header, cells, strict=False)), plain=plain)
                continue
            yield Record(row, {h: unescape_formula(c) if c[:1] == "'" else c
                               for h, c in zip(header, cells, strict=False) if h}, plain=plain)
    except csv.Error as exc:
        raise ImportFileError(f"row {reader.line_num}: the CSV cannot be read ({exc})") from exc


def escape_formula(cell: str) -> str:
    """A cell a spreadsheet shows as text, never runs: OWASP's single quote before a
    leading =, +, -, @, tab, CR or NUL (and before a quote that precedes one, so that
    `unescape_formula` gives back exactly what was written)."""
    if cell.startswith(FORMULA_START) or _ESCAPED_FORMULA.match(cell):
        return "'" + cell
    return cell


def csv_cells(values: Iterable[object], *, escape: bool = True) -> list[str]:
    """One row of a CSV the program writes: None as "", each value `escape_formula`d
    unless `escape` is off (for programs that read the file)."""
    cells = ["" if v is None else str(v) for v in values]
    return [escape_formula(c) for c in cells] if escape else cells


def unescape_formula(cell: str) -> str:
    """A CSV cell as it was before `escape_formula`: an export imports back as it was."""
    return cell[1:] if cell[:1] == "'" and _ESCAPED_FORMULA.match(cell) else cell


def _ndjson_records(lines: Iterator[str]) -> Iterator[Record]:
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            value = JSON.decode(text)
        except json.JSONDecodeError as exc:
            yield Record(number, {}, f"is not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            found = _value_end(text, 0)
            yield Record(number, {}, f"is nested more than {MAX_NESTING} levels deep",
                         problem_field=found[1] if found else "record")
            continue
        yield _object_record(number, value)


def _object_record(row: int, value: object) -> Record:
    if not isinstance(value, dict):
        return Record(row, {}, f"is a JSON {json_type(value)}, not an object with an email")
    fields: dict[str, object] = {}
    for key, cell in value.items():
        name = str(key).strip().lower()
        if not name:  # as in a CSV header, a column without a name is not read
            continue
        problem = json_problem(key) or (None if isinstance(cell, str) and cell.isascii()
                                        else json_problem(cell))
        if problem is not None:
            return Record(row, {}, problem, problem_field=str(key)[:60])
        fields[name] = cell
    return Record(row, fields)


def _json_records(stream: BinaryIO, encoding: str, count: ByteCount) -> Iterator[Record]:
    """A JSON list of objects, parsed one element at a time with a bounded buffer.

    The stdlib has no streaming parser (and ijson is not a dependency), so this reads
    64 KB chunks and hands each element to `json.JSONDecoder.raw_decode`; an element
    that does not parse yet is retried with more text, up to MAX_JSON_OBJECT.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
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
        except UnicodeError as exc:  # e.g. UTF-16 without a byte order mark
            raise ImportFileError(
                f"the file cannot be read as {encoding} ({exc}): {_encoding_hint(encoding)}"
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
                value, end = JSON.raw_decode(buf, pos)
                record = None
                if end < len(buf) or isinstance(value, dict | list) or eof:
                    break
                more()  # a bare number at the end of a chunk may go on in the next
                continue
            except json.JSONDecodeError as exc:
                reason = exc.msg
            except RecursionError:  # too deep to parse: skip to its end, refuse it alone
                found = _value_end(buf, pos)
                if found is not None:
                    end, blamed = found
                    record = Record(index + 1, {}, f"is nested more than {MAX_NESTING} levels "
                                    "deep", problem_field=blamed)
                    break
                reason = f"nested more than {MAX_NESTING} levels deep"
            if len(buf) - pos > MAX_JSON_OBJECT or not more():
                raise ImportFileError(f"item {index + 1} ({where()}): not valid JSON ({reason})")
        index += 1
        pos = end
        yield record or _object_record(index, value)
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
