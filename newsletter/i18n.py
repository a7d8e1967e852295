"""Words of the email in each language: gettext catalogs, dates and language names.

Translations live where translators and their tools expect them, as
`<templates>/locale/<lang>/LC_MESSAGES/newsletter.po`; English is the source language
and needs no catalog. A catalog is read from its `.po` and compiled in memory when first
loaded (a few milliseconds for a catalog this size): nothing is ever written beside it,
because the shipped templates are part of the installed package, and a file the program
leaves in site-packages survives `pip uninstall` and shadows the next install. Loaded
catalogs are cached by the `.po` file's modification time, so a long-running worker
picks up a corrected translation without a restart; a `.mo` file beside a `.po` (left
by an older version, or by a translator's tools) is ignored.

A custom template directory may carry a `locale/` of its own; its catalogs come first
and the package's fill the gaps, so a team translates only the strings it added.
"""

from __future__ import annotations

import gettext as gettext_module
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po, write_po

from newsletter.errors import NewsletterError

SOURCE_LANGUAGE = "en"  # the language of every msgid in the templates
DOMAIN = "newsletter"
# Babel's "long" date in each language's own convention; English gets the British order,
# "10 October 2019", which the region's readers of English expect (en_US says "October 10").
DATE_LOCALES = {"en": "en_GB"}

class CatalogError(NewsletterError):
    """A .po file that cannot be read."""


def shipped_templates_dir() -> Path:
    """The templates that ship with the program (the repository's top-level `templates/`).

    A wheel installs them as `newsletter/templates/` (pyproject.toml maps the folder
    there); an editable install maps the same name to the repository's folder, and in a
    bare checkout (`python -m newsletter` from the repository) the folder is used as it
    is. Never a top-level `templates` package: a folder of that name left in site-packages
    by an older version would shadow ours.
    """
    try:
        return Path(str(files("newsletter.templates")))
    except ModuleNotFoundError:
        source = Path(__file__).resolve().parents[1]
        if (source / "pyproject.toml").is_file() and (source / "templates").is_dir():
            return source / "templates"
        raise


def package_locale_dir() -> Path:
    return shipped_templates_dir() / "locale"


def refuse_installed(templates: Path) -> None:
    """Catalogs are edited in a clone of the repository, never inside an installed package
    (`<site-packages>/newsletter/templates`): pip would not know the files and a later
    install would find them there."""
    if templates.name == "templates" and (templates.parent / "__init__.py").is_file():
        raise CatalogError(
            f"{templates} belongs to the installed newsletter package, which is never "
            "changed: run this in a clone of the repository (an editable install), or "
            "give --templates DIR to work on your own template directory"
        )


def locale_dirs(directory: Path | None = None) -> list[Path]:
    """Where catalogs are looked up, first match wins: a custom directory's, then ours."""
    dirs = [directory / "locale"] if directory is not None else []
    return [*dirs, package_locale_dir()]


def po_path(locale_dir: Path, language: str) -> Path:
    return locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def catalog_languages(locale_dir: Path) -> list[str]:
    """The languages that have a .po file under `locale_dir`."""
    if not locale_dir.is_dir():
        return []
    return sorted(p.name for p in locale_dir.iterdir() if po_path(locale_dir, p.name).is_file())


def read_catalog(po: Path, language: str) -> Catalog:
    """Parse a .po file; a broken one is reported with its path, not as a parser traceback."""
    try:
        with po.open("rb") as handle:
            return read_po(handle, locale=language, domain=DOMAIN, abort_invalid=True)
    except (OSError, ValueError, UnknownLocaleError, PoFileError) as exc:
        raise CatalogError(f"{po}: cannot read this catalog: {exc}") from exc


def is_translated(message: object) -> bool:
    """A usable translation: every form filled in, and not flagged fuzzy."""
    string = getattr(message, "string", "")
    filled = all(string) if isinstance(string, tuple | list) else bool(string)
    return filled and not getattr(message, "fuzzy", False)


def msgid_of(message_id: str | Sequence[str]) -> str:
    """The singular msgid, which is how a plural entry is looked up."""
    return message_id if isinstance(message_id, str) else message_id[0]


def translated_ids(catalog: Catalog) -> frozenset[str]:
    return frozenset(msgid_of(m.id) for m in catalog if m.id and is_translated(m))


@dataclass(frozen=True, eq=False)
class LoadedCatalog:
    """One compiled catalog (identity-compared: the cache hands out the same object)."""

    language: str
    po: Path
    translations: gettext_module.GNUTranslations


def load_catalog(locale_dir: Path, language: str) -> LoadedCatalog | None:
    po = po_path(locale_dir, language)
    try:
        mtime = po.stat().st_mtime_ns
    except OSError:
        return None
    return _load(po, language, mtime)


@lru_cache(maxsize=64)
def _load(po: Path, language: str, mtime_ns: int) -> LoadedCatalog:
    """Compile the .po in memory; never write a .mo (see the module's docstring)."""
    buffer = io.BytesIO()
    write_mo(buffer, read_catalog(po, language))
    buffer.seek(0)
    return LoadedCatalog(language, po, gettext_module.GNUTranslations(buffer))


@dataclass(frozen=True)
class Translations:
    """A reader's language as a chain of catalogs; immutable, so renders can share it."""

    language: str
    catalogs: tuple[LoadedCatalog, ...] = ()

    def gettext(self, message: str) -> str:
        for catalog in self.catalogs:
            found = catalog.translations.gettext(message)
            if found != message:
                return found
        return message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        for catalog in self.catalogs:
            found = catalog.translations.ngettext(singular, plural, n)
            if found not in (singular, plural):
                return found
        return singular if n == 1 else plural


def translations_for(language: str, directory: Path | None = None) -> Translations:
    """The catalogs for `language`, a custom template directory's first; none for English."""
    if language == SOURCE_LANGUAGE:
        return Translations(language)
    loaded = (load_catalog(d, language) for d in locale_dirs(directory))
    return Translations(language, tuple(c for c in loaded if c is not None))


def translated_in(language: str, directory: Path | None = None) -> frozenset[str]:
    """Msgids with a usable translation in any of the language's catalogs (read from the
    .po: a compiled .mo cannot tell an untranslated plural from a translated one)."""
    ids: set[str] = set()
    for locale_dir in locale_dirs(directory):
        po = po_path(locale_dir, language)
        if po.is_file():
            ids |= translated_ids(read_catalog(po, language))
    return frozenset(ids)


def gettext_for(language: str, directory: Path | None = None) -> Callable[[str], str]:
    return translations_for(language, directory).gettext


@lru_cache(maxsize=32)
def _date_locale(language: str) -> Locale:
    try:
        return Locale.parse(DATE_LOCALES.get(language, language).replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return Locale.parse(DATE_LOCALES[SOURCE_LANGUAGE])


def format_date(value: date, language: str) -> str:
    """'10 October 2019', '10 de octubre de 2019', '10 octobre 2019' (and '1er octobre')."""
    locale = _date_locale(language)
    text = str(babel_format_date(value, "long", locale=locale))
    if locale.language == "fr" and value.day == 1 and text.startswith("1 "):
        text = "1er" + text[1:]  # French writes the first of the month as an ordinal
    return text


def language_name(code: str, in_language: str) -> str:
    """'inglés' for ('en', 'es'): a language's name in the reader's language."""
    try:
        return str(Locale.parse(in_language).languages.get(code, code))
    except (ValueError, UnknownLocaleError):
        return code


def missing_languages(languages: Iterable[str], directory: Path | None = None) -> list[str]:
    """Configured languages other than English that have no catalog anywhere."""
    return [
        lang for lang in languages
        if lang != SOURCE_LANGUAGE
        and not any(po_path(d, lang).is_file() for d in locale_dirs(directory))
    ]


# --- keeping catalogs up to date, and finding what is missing ----------------------


@dataclass(frozen=True)
class CatalogUpdate:
    path: Path
    state: str  # created, updated or unchanged
    untranslated: int


def update_catalogs(
    template: Catalog, locale_dir: Path, languages: Iterable[str], *, fill_from: Path | None = None
) -> tuple[Path, list[CatalogUpdate]]:
    """Write `newsletter.pot` and merge it into each language's .po (creating missing ones).

    Babel's merge keeps translations, marks near matches fuzzy for a translator to
    confirm, and keeps removed strings as obsolete (#~) entries. With `fill_from` (the
    shipped catalogs, for a custom template directory) a new entry starts with the
    shipped translation, so a team only translates the strings it added.
    """
    locale_dir.mkdir(parents=True, exist_ok=True)
    pot = locale_dir / f"{DOMAIN}.pot"
    _write(pot, template)
    updates: list[CatalogUpdate] = []
    for language in languages:
        po = po_path(locale_dir, language)
        created = not po.is_file()
        try:
            catalog = (Catalog(locale=language, domain=DOMAIN, project=template.project,
                               fuzzy=False) if created else read_catalog(po, language))
        except (ValueError, UnknownLocaleError) as exc:
            raise CatalogError(f"{language!r} is not a language Babel knows: {exc}") from exc
        catalog.update(template, update_creation_date=False)
        if fill_from is not None:
            _fill(catalog, fill_from, language)
        po.parent.mkdir(parents=True, exist_ok=True)
        changed = _write(po, catalog)
        missing = sum(1 for m in catalog if m.id and not is_translated(m))
        state = "created" if created else "updated" if changed else "unchanged"
        updates.append(CatalogUpdate(po, state, missing))
    return pot, updates


def _fill(catalog: Catalog, locale_dir: Path, language: str) -> None:
    source = po_path(locale_dir, language)
    if not source.is_file():
        return
    shipped = read_catalog(source, language)
    for message in catalog:
        if not message.id or is_translated(message):
            continue
        known = shipped.get(message.id)
        if known is not None and is_translated(known):
            message.string = known.string
            message.flags.discard("fuzzy")


def _write(path: Path, catalog: Catalog) -> bool:
    """Write only real changes: a new date in the header alone is not worth a diff."""
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=76)
    data = buffer.getvalue()
    if path.is_file() and _stable(path.read_bytes()) == _stable(data):
        return False
    path.write_bytes(data)
    return True


def _stable(data: bytes) -> bytes:
    return re.sub(rb'^"(?:POT-Creation-Date|PO-Revision-Date): [^"]*"\n', b"", data, flags=re.M)


@dataclass(frozen=True)
class CatalogProblem:
    """A string a reader of `language` would not get right, and where to fix it."""

    language: str
    msgid: str
    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}, line {self.line}" if self.line else self.path
        return f'{where}: {self.language}: {self.reason}: "{self.msgid}"'


def check_catalogs(
    used: Sequence[tuple[str, int, str]], languages: Iterable[str], directory: Path | None = None
) -> list[CatalogProblem]:
    """Each msgid the templates use (file, line, msgid) that a language lacks or garbles.

    Reported at the .po entry when the catalog lists it (untranslated, fuzzy, or with a
    placeholder the English does not have, which would fail at render time), else at the
    template line that uses it (the catalog needs `newsletter i18n extract`).
    """
    first_use: dict[str, tuple[str, int]] = {}
    for path, line, msgid in used:
        first_use.setdefault(msgid, (path, line))
    found: list[CatalogProblem] = []
    for language in sorted(set(languages) - {SOURCE_LANGUAGE}):
        pos = [po for d in locale_dirs(directory) if (po := po_path(d, language)).is_file()]
        if not pos:
            expected = po_path(locale_dirs(directory)[0], language)
            found.append(CatalogProblem(language, "", str(expected), None, "no catalog: run "
                                        f"`newsletter i18n extract --language {language}`"))
            continue
        catalogs = [(po, read_catalog(po, language)) for po in pos]
        target = po_path(locale_dirs(directory)[0], language)
        for msgid, (path, line) in first_use.items():
            found += _entry_problems(language, msgid, path, line, catalogs, target)
    return found


def _entry_problems(
    language: str,
    msgid: str,
    path: str,
    line: int,
    catalogs: Sequence[tuple[Path, Catalog]],
    target: Path,
) -> list[CatalogProblem]:
    listed = [(po, c, m) for po, c in catalogs if (m := c.get(msgid)) is not None]
    for po, catalog, message in listed:
        if is_translated(message):
            errors = [str(e) for e in message.check(catalog)]
            if errors:
                return [CatalogProblem(language, msgid, str(po), message.lineno,
                                       "bad translation (" + "; ".join(errors) + ")")]
            return []
    if listed:
        po, _, message = listed[0]
        reason = "fuzzy (confirm or fix it, then remove the flag)" if message.fuzzy \
            else "untranslated"
        return [CatalogProblem(language, msgid, str(po), message.lineno, reason)]
    return [CatalogProblem(language, msgid, path, line, f"not in {target}: add it with "
                           "`newsletter i18n extract`, then translate it")]


# --- the newsroom's catalog ----------------------------------------------------------

NEWSROOM_DOMAIN = "newsroom"
_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[#0 +-]*\d*(?:\.\d+)?([sdifr%])")


def newsroom_pot() -> Path:
    return package_locale_dir() / f"{NEWSROOM_DOMAIN}.pot"


def newsroom_po(language: str) -> Path:
    return package_locale_dir() / language / "LC_MESSAGES" / f"{NEWSROOM_DOMAIN}.po"


def placeholders(text: str) -> list[str]:
    """The %(name)s (and bare %s) placeholders of a message, sorted; %% is no placeholder."""
    return sorted(name or kind for name, kind in _PLACEHOLDER.findall(text) if kind != "%")


def check_newsroom(
    used: Sequence[tuple[str, int, str | tuple[str, ...]]], languages: Iterable[str]
) -> list[CatalogProblem]:
    """The newsroom's catalog as `check_catalogs` sees the email's: every msgid the
    newsroom uses (file, line, msgid) listed in newsroom.pot, and every msgid of the .pot
    translated in each language's newsroom.po, not fuzzy, with the same placeholders."""
    pot_path = newsroom_pot()
    try:
        with pot_path.open("rb") as handle:
            pot = read_po(handle, domain=NEWSROOM_DOMAIN, abort_invalid=True)
    except (OSError, ValueError, PoFileError) as exc:
        raise CatalogError(f"{pot_path}: cannot read this catalog: {exc}") from exc
    found: list[CatalogProblem] = []
    listed = {msgid_of(m.id) for m in pot if m.id}
    reported: set[str] = set()
    for path, line, message in used:
        msgid = msgid_of(message)
        if msgid not in listed and msgid not in reported:
            reported.add(msgid)
            found.append(CatalogProblem("newsroom", msgid, path, line,
                                        f"not in {pot_path}: add it there and translate it "
                                        "in each language's newsroom.po"))
    for language in sorted(set(languages) - {SOURCE_LANGUAGE}):
        po = newsroom_po(language)
        if not po.is_file():
            found.append(CatalogProblem(language, "", str(po), None, "no newsroom catalog"))
            continue
        catalog = read_catalog(po, language)
        for entry in pot:
            if entry.id:
                found += _newsroom_entry(language, entry.id, po, catalog, pot_path, entry.lineno,
                                         entry.context)
    return found


def _newsroom_entry(language: str, message_id: str | tuple[str, ...] | list[str], po: Path,
                    catalog: Catalog, pot: Path, pot_line: int | None,
                    context: str | None = None) -> list[CatalogProblem]:
    """One .pot entry in one language's catalog (its msgctxt, "status" for the status
    labels, tells apart two entries of the same English)."""
    msgid = msgid_of(message_id)
    message = catalog.get(message_id, context)
    if message is None:
        return [CatalogProblem(language, msgid, str(pot), pot_line,
                               f"not in {po}: add it and translate it")]
    if not is_translated(message):
        reason = "fuzzy (confirm or fix it, then remove the flag)" if message.fuzzy \
            else "untranslated"
        return [CatalogProblem(language, msgid, str(po), message.lineno, reason)]
    # a plural's first form says what the singular says, the others what the plural says
    english = [message_id] if isinstance(message_id, str) else list(message_id)
    strings = [message.string] if isinstance(message.string, str) \
        else list(message.string or ())
    for n, string in enumerate(strings):
        wanted = sorted(set(placeholders(english[min(n, len(english) - 1)])))
        got = placeholders(string)
        if sorted(set(got)) != wanted:
            return [CatalogProblem(language, msgid, str(po), message.lineno,
                                   f"bad translation (placeholders {', '.join(got) or 'none'}"
                                   f"; the English has {', '.join(wanted) or 'none'})")]
    errors = [str(e) for e in message.check(catalog)]
    if errors:
        return [CatalogProblem(language, msgid, str(po), message.lineno,
                               "bad translation (" + "; ".join(errors) + ")")]
    return []


def update_newsroom(
    used: Sequence[tuple[str, int, str | tuple[str, ...]]], languages: Iterable[str]
) -> list[CatalogUpdate]:
    """Append to newsroom.pot, and untranslated to each language's newsroom.po, the
    msgids the newsroom uses that they lack (appended, never rewritten: the files keep
    their order and comments). Returns one CatalogUpdate per file."""
    files = [(newsroom_pot(), None), *((newsroom_po(lang), lang) for lang in
                                       sorted(set(languages) - {SOURCE_LANGUAGE}))]
    updates: list[CatalogUpdate] = []
    for path, language in files:
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=language, domain=NEWSROOM_DOMAIN)
        have = {msgid_of(m.id) for m in catalog if m.id}
        entries: list[str] = []
        for where, line, message in used:
            if msgid_of(message) in have:
                continue
            have.add(msgid_of(message))
            source = Path(where)
            entries.append(_po_entry(message, f"{source.parent.name}/{source.name}:{line}",
                                     plural_forms=catalog.num_plurals if language else 2))
        if entries:
            with path.open("a", encoding="utf-8") as out:
                out.write("".join(entries))
        missing = sum(1 for m in catalog if m.id and not is_translated(m)) if language else 0
        updates.append(CatalogUpdate(path, "updated" if entries else "unchanged",
                                     missing + (len(entries) if language else 0)))
    return updates


def _po_entry(message: str | tuple[str, ...], where: str, plural_forms: int) -> str:
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    flag = "#, python-format\n" if any(placeholders(m) for m in (
        [message] if isinstance(message, str) else message)) else ""
    if isinstance(message, str):
        return f'\n#: {where}\n{flag}msgid {quoted(message)}\nmsgstr ""\n'
    forms = "".join(f'msgstr[{n}] ""\n' for n in range(plural_forms))
    return (f"\n#: {where}\n{flag}msgid {quoted(message[0])}\n"
            f"msgid_plural {quoted(message[1])}\n{forms}")
