"""Catalogs, dates and language names, and the `newsletter i18n` commands.

The command tests work on a temporary copy of the shipped templates and catalogs,
swapped in for the package's, so breaking a translation never touches the real files.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter import i18n, render, templating
from newsletter.cli import cli
from newsletter.i18n import (
    format_date,
    gettext_for,
    language_name,
    load_catalog,
    po_path,
    translations_for,
)

SHIPPED = templating.package_dir()
PO_HEADER = (
    'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
    '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n'
)


@pytest.mark.parametrize(("language", "day", "expected"), [
    ("en", date(2019, 10, 10), "10 October 2019"),
    ("es", date(2019, 10, 10), "10 de octubre de 2019"),
    ("fr", date(2019, 10, 10), "10 octobre 2019"),
    ("fr", date(2019, 10, 1), "1er octobre 2019"),
    ("es", date(2019, 9, 1), "1 de septiembre de 2019"),
    ("en", date(2019, 9, 1), "1 September 2019"),
    ("zz", date(2019, 10, 10), "10 October 2019"),  # unknown: English
])
def test_dates_are_babels_long_format(language: str, day: date, expected: str) -> None:
    assert format_date(day, language) == expected


def test_language_names_in_the_readers_language() -> None:
    assert language_name("en", "es") == "inglés"
    assert language_name("en", "fr") == "anglais"
    assert language_name("es", "en") == "Spanish"
    assert language_name("qq", "es") == "qq"
    assert language_name("en", "not a locale") == "en"


def test_shipped_catalogs_translate_and_pluralise() -> None:
    assert gettext_for("es")("Unsubscribe") == "Cancelar la suscripción"
    assert gettext_for("fr")("Unsubscribe") == "Se désabonner"
    assert gettext_for("en")("Unsubscribe") == "Unsubscribe"
    assert gettext_for("de")("Unsubscribe") == "Unsubscribe"  # no catalog: the source text
    es = translations_for("es")
    assert es.ngettext("%(num)s news item", "%(num)s news items", 1) == "%(num)s noticia"
    assert es.ngettext("%(num)s news item", "%(num)s news items", 7) == "%(num)s noticias"
    fr = translations_for("fr")
    assert fr.ngettext("%(num)s news item", "%(num)s news items", 0) == "%(num)s actualité"


def write_po(locale_dir: Path, language: str, entries: dict[str, str]) -> Path:
    po = po_path(locale_dir, language)
    po.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f'msgid "{k}"\nmsgstr "{v}"\n\n' for k, v in entries.items())
    po.write_text(PO_HEADER + body, encoding="utf-8")
    return po


def set_mtime(path: Path, seconds_ago: int) -> None:
    when = time.time_ns() - seconds_ago * 10**9
    os.utime(path, ns=(when, when))


def tree(directory: Path) -> dict[str, int]:
    """Every file under `directory` with its modification time."""
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns
            for p in sorted(directory.rglob("*"))}


def test_po_is_compiled_in_memory_and_again_when_edited(tmp_path: Path) -> None:
    locale = tmp_path / "locale"
    po = write_po(locale, "es", {"Unsubscribe": "Darse de baja"})
    before = tree(tmp_path)
    catalog = load_catalog(locale, "es")
    assert catalog is not None
    assert catalog.translations.gettext("Unsubscribe") == "Darse de baja"
    assert load_catalog(locale, "es") is catalog  # cached while the .po is unchanged
    # nothing written beside the .po: an installed package must stay as pip left it
    assert tree(tmp_path) == before

    # edited: compiled again, still in memory only
    write_po(locale, "es", {"Unsubscribe": "Cancelar"})
    set_mtime(po, 50)
    before = tree(tmp_path)
    reloaded = load_catalog(locale, "es")
    assert reloaded is not None and reloaded.translations.gettext("Unsubscribe") == "Cancelar"
    assert tree(tmp_path) == before


def test_a_mo_left_beside_the_po_is_ignored(tmp_path: Path) -> None:
    """Older versions wrote .mo files into the package; the .po is the only truth now."""
    locale = tmp_path / "locale"
    write_po(locale, "es", {"Unsubscribe": "old"})
    i18n._load.cache_clear()
    stale = load_catalog(locale, "es")
    assert stale is not None
    po = write_po(locale, "es", {"Unsubscribe": "Darse de baja"})
    mo = po.with_suffix(".mo")
    mo.write_bytes(b"not a catalog at all")
    set_mtime(po, 200)  # the .mo is newer than the .po
    i18n._load.cache_clear()
    fresh = load_catalog(locale, "es")
    assert fresh is not None and fresh.translations.gettext("Unsubscribe") == "Darse de baja"
    assert mo.read_bytes() == b"not a catalog at all"


def test_rendering_every_language_writes_nothing_into_the_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped templates are package files: rendering must leave them as installed."""
    copy = tmp_path / "templates"
    shutil.copytree(SHIPPED, copy, ignore=shutil.ignore_patterns("*.mo", "__pycache__"))
    monkeypatch.setattr(templating, "package_dir", lambda: copy)
    monkeypatch.setattr(i18n, "package_locale_dir", lambda: copy / "locale")
    caches = (i18n._load, templating._environment, render._problems)
    for cache in caches:
        cache.cache_clear()
    before = tree(copy)
    languages = i18n.catalog_languages(copy / "locale")
    assert {"es", "fr"} <= set(languages)
    for language in ["en", *languages]:
        render.check_templates(None, language)  # renders a sample issue in that language
        assert gettext_for(language)("Unsubscribe")
    for cache in caches:
        cache.cache_clear()  # nothing that points into the copy outlives the test
    assert tree(copy) == before


def test_unwritable_mo_compiles_in_memory(tmp_path: Path) -> None:
    locale = tmp_path / "locale"
    po = write_po(locale, "fr", {"Unsubscribe": "Se désinscrire"})
    po.with_suffix(".mo").mkdir()  # cannot be read or replaced, even by root
    catalog = load_catalog(locale, "fr")
    assert catalog is not None
    assert catalog.translations.gettext("Unsubscribe") == "Se désinscrire"
    assert load_catalog(locale, "de") is None


def test_a_broken_po_names_its_file(tmp_path: Path) -> None:
    locale = tmp_path / "locale"
    po = po_path(locale, "es")
    po.parent.mkdir(parents=True)
    po.write_text('msgid "Unsubscribe"\nthis is not a po file\n', encoding="utf-8")
    with pytest.raises(i18n.CatalogError, match=re.escape(str(po))):
        load_catalog(locale, "es")


# --- the commands, on a copy of the shipped templates and catalogs ------------------


@pytest.fixture
def shipped_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of templates/ that the code takes for the package's own."""
    copy = tmp_path / "templates"
    shutil.copytree(SHIPPED, copy, ignore=shutil.ignore_patterns("*.mo", "__pycache__"))
    monkeypatch.setattr(templating, "package_dir", lambda: copy)
    monkeypatch.setattr(i18n, "package_locale_dir", lambda: copy / "locale")
    return copy


def newsletter(*args: str) -> Result:
    env = {"NEWSLETTER_TEMPLATE_DIR": None, "NEWSLETTER_LANGUAGES": None}
    return CliRunner(env=env).invoke(cli, list(args))


def line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


def stable(path: Path) -> str:
    return re.sub(r'"(POT-Creation-Date|PO-Revision-Date): [^"]*"\n', "",
                  path.read_text(encoding="utf-8"))


def test_check_passes_on_the_shipped_catalogs() -> None:
    result = newsletter("i18n", "check")
    assert result.exit_code == 0, result.output
    assert "all strings translated in es, fr" in result.output


def test_shipped_catalogs_are_up_to_date_with_the_templates(shipped_copy: Path) -> None:
    catalogs = [shipped_copy / "locale" / "newsletter.pot",
                *(po_path(shipped_copy / "locale", lang) for lang in ("es", "fr"))]
    before = [stable(p) for p in catalogs]
    result = newsletter("i18n", "extract")
    assert result.exit_code == 0, result.output
    assert "es/LC_MESSAGES/newsletter.po: unchanged, 0 to translate" in result.output
    assert [stable(p) for p in catalogs] == before, "run `newsletter i18n extract`"


def test_check_names_an_untranslated_string_with_its_po_file_and_line(
    shipped_copy: Path,
) -> None:
    po = po_path(shipped_copy / "locale", "es")
    po.write_text(po.read_text(encoding="utf-8").replace('msgstr "Leer más"', 'msgstr ""'),
                  encoding="utf-8")
    fr = po_path(shipped_copy / "locale", "fr")
    fr.write_text(fr.read_text(encoding="utf-8").replace(
        'msgid "Unsubscribe"', '#, fuzzy\nmsgid "Unsubscribe"'), encoding="utf-8")
    result = newsletter("i18n", "check")
    assert result.exit_code == 1
    read_more, unsubscribe = line_of(po, 'msgid "Read more"'), line_of(fr, 'msgid "Unsubscribe"')
    assert f'{po}, line {read_more}: es: untranslated: "Read more"' in result.output
    assert f"{fr}, line {unsubscribe}: fr: fuzzy" in result.output
    assert "2 untranslated string(s)" in result.output


def test_a_new_template_string_is_reported_until_extracted_and_translated(
    shipped_copy: Path,
) -> None:
    template = shipped_copy / "newsletter.txt.j2"
    text = template.read_text(encoding="utf-8")
    template.write_text(text.replace("{% block footer %}\n",
                                     '{% block footer %}\n{{ _("Forward it to a friend") }}\n'),
                        encoding="utf-8")
    line = line_of(template, "Forward it to a friend")
    result = newsletter("i18n", "check", "--language", "es")
    assert result.exit_code == 1
    assert f"{template}, line {line}: es: not in " in result.output
    assert '"Forward it to a friend"' in result.output and "i18n extract" in result.output

    extracted = newsletter("i18n", "extract")
    assert extracted.exit_code == 0, extracted.output
    assert "es/LC_MESSAGES/newsletter.po: updated, 1 to translate" in extracted.output
    po = po_path(shipped_copy / "locale", "es")
    result = newsletter("i18n", "check")
    assert result.exit_code == 1
    msgid_line = line_of(po, 'msgid "Forward it to a friend"')
    assert f'{po}, line {msgid_line}: es: untranslated: "Forward it to a friend"' in (
        result.output)
    assert 'fr: untranslated: "Forward it to a friend"' in result.output

    for lang, words in (("es", "Reenvíelo a un amigo"), ("fr", "Transférez-le à un ami")):
        path = po_path(shipped_copy / "locale", lang)
        path.write_text(path.read_text(encoding="utf-8").replace(
            'msgid "Forward it to a friend"\nmsgstr ""',
            f'msgid "Forward it to a friend"\nmsgstr "{words}"'), encoding="utf-8")
    result = newsletter("i18n", "check")
    assert result.exit_code == 0, result.output


def test_check_wants_a_catalog_for_every_configured_language(shipped_copy: Path) -> None:
    result = CliRunner(env={"NEWSLETTER_LANGUAGES": '["en", "es", "pt"]',
                            "NEWSLETTER_TEMPLATE_DIR": None}).invoke(cli, ["i18n", "check"])
    assert result.exit_code == 1
    assert "pt: no catalog: run `newsletter i18n extract --language pt`" in result.output
    created = newsletter("i18n", "extract", "--language", "pt")
    assert created.exit_code == 0, created.output
    assert "pt/LC_MESSAGES/newsletter.po: created, 65 to translate" in created.output


def test_check_catches_a_placeholder_the_english_does_not_have(shipped_copy: Path) -> None:
    """A typo in %(country)s would fail every render in that language: caught here."""
    po = po_path(shipped_copy / "locale", "es")
    po.write_text(po.read_text(encoding="utf-8").replace('"En %(country)s"', '"En %(pais)s"'),
                  encoding="utf-8")
    result = newsletter("i18n", "check")
    assert result.exit_code == 1
    line = line_of(po, 'msgid "In %(country)s"')
    assert (f"{po}, line {line}: es: bad translation (unknown named placeholder 'pais'): "
            '"In %(country)s"') in result.output


def test_extract_never_writes_into_an_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed, the shipped catalogs are site-packages/newsletter/templates: an extract
    there would leave files pip does not know about (a new language's .po)."""
    package = tmp_path / "site-packages" / "newsletter"
    shutil.copytree(SHIPPED, package / "templates",
                    ignore=shutil.ignore_patterns("*.mo", "__pycache__"))
    (package / "__init__.py").write_text("")
    monkeypatch.setattr(templating, "package_dir", lambda: package / "templates")
    monkeypatch.setattr(i18n, "package_locale_dir", lambda: package / "templates" / "locale")
    before = tree(package)
    result = newsletter("i18n", "extract", "--language", "pt")
    assert result.exit_code == 1
    assert "belongs to the installed newsletter package" in result.output
    assert "--templates DIR" in result.output
    assert tree(package) == before
    own = tmp_path / "mine"
    (own / "locale").mkdir(parents=True)
    result = newsletter("i18n", "extract", "--templates", str(own), "--language", "pt")
    assert result.exit_code == 0, result.output
    assert po_path(own / "locale", "pt").is_file()


def test_extract_into_a_teams_templates_folder_inside_its_own_package(tmp_path: Path) -> None:
    """Only the shipped templates are refused: a team's `templates/` may well sit in a
    Python package of its own (`myproject/templates`, beside `myproject/__init__.py`)."""
    own = tmp_path / "myproject" / "templates"
    (own / "locale").mkdir(parents=True)
    (own.parent / "__init__.py").write_text("")
    result = newsletter("i18n", "extract", "--templates", str(own), "--language", "pt")
    assert result.exit_code == 0, result.output
    assert po_path(own / "locale", "pt").is_file()
