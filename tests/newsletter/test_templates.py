"""Template quality, and custom templates: a directory setting, checked when loaded.

The shipped templates produce responsive, accessible email (600 px, a hidden preheader,
lang, presentation tables, the links and address a footer needs). A custom directory
overrides them file by file; a template with a fault is refused with its file and line.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from newsletter.i18n import po_path
from newsletter.render import (
    IssueContent,
    ItemText,
    ItemView,
    Sender,
    Variant,
    check_templates,
    personalise,
    render_variant,
    template_problems,
)
from newsletter.settings import Settings
from newsletter.templating import TemplateError, package_dir

SENDER = Sender("Boletín Regional", "Apartado 123-1000, San José, Costa Rica")
ITEMS = [
    ItemView(date(2019, 10, 14), "Shelters in Panama", "Panama City", ("Teams visit.",), ("PA",),
             translations={"es": ItemText("Albergues en Panamá", "Ciudad de Panamá",
                                          ("Equipos visitan.",))}),
    ItemView(date(2019, 10, 3), "Study in Costa Rica", "San José", ("Families settle.",),
             ("CR",)),
]
CONTENT = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), ITEMS)
VIEW = "https://news.example.org/issues/2019-10/es-CR"


@pytest.mark.parametrize("language", ["en", "es", "fr"])
def test_shipped_templates_pass_their_checks(language: str) -> None:
    assert template_problems(None, language) == []
    check_templates(None, language)


class Tags(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def html() -> str:
    rendered = render_variant(CONTENT, Variant("es", "CR"), SENDER, view_url=VIEW)
    return personalise(rendered, unsubscribe_url="https://x.org/u/1", preferences_url="https://x.org/p/1").html


def test_responsive_600px_one_column_on_a_phone(html: str) -> None:
    assert "max-width:600px" in html.replace(" ", "")
    # columns sit side by side only from 480 px up; below (a 375 px phone) they stack
    assert re.search(r"@media only screen and \(min-width:480px\)\s*\{\s*\.mj-column-per-100"
                     r"\s*\{\s*width:100% !important", html)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_hidden_preheader_comes_first(html: str) -> None:
    body = html[html.index("<body"):]
    first = re.search(r"<div[^>]*>([^<]*)</div>", body)
    assert first is not None
    assert "display:none" in first.group(0).replace(" ", "")
    # then invisible padding, so the inbox snippet stops there (test_render_message.py)
    assert first.group(1) == (
        "Noticias del 1 de octubre de 2019 al 31 de octubre de 2019 · 2 noticias"
        + "\u200c\u00a0" * 100)


def test_accessible_markup(html: str) -> None:
    tags = Tags(html).tags
    assert html.startswith("<!doctype html>\n<html lang=\"es\"")
    assert all(a.get("role") == "presentation" for t, a in tags if t == "table")
    assert all("alt" in a for t, a in tags if t == "img")
    assert [t for t, _ in tags if t in ("h1", "h2", "h3")][:2] == ["h1", "h2"]  # no skipped level
    assert all(a.get("href") for t, a in tags if t == "a")


def test_footer_links_address_and_view_in_browser(html: str) -> None:
    links = {a.get("href") for t, a in Tags(html).tags if t == "a"}
    assert {"https://x.org/u/1", "https://x.org/p/1", VIEW} <= links
    footer = html[html.rindex("Equipos visitan."):]
    assert SENDER.postal_address in footer
    assert footer.index("Cancelar la suscripción") and footer.index("Cambiar sus preferencias")
    # before the first item (whose title the subject, in <title> and aria-label, now names)
    assert html.index("Ver este correo en el navegador") < html.index(">Albergues en Panamá</h2>")


def test_text_part_carries_the_same_content() -> None:
    r = render_variant(CONTENT, Variant("es", "CR"), SENDER, view_url=VIEW)
    for words in ("Albergues en Panamá", "Ciudad de Panamá. Equipos visitan.",
                  "Study in Costa Rica", "San José. Families settle.", "(en inglés)",
                  "EN COSTA RICA", "EN LA REGIÓN", SENDER.postal_address,
                  f"Ver este correo en el navegador: {VIEW}",
                  "Noticias del 1 de octubre de 2019 al 31 de octubre de 2019",
                  "Cancelar la suscripción: %%UNSUBSCRIBE_URL%%",
                  "Cambiar sus preferencias: %%PREFERENCES_URL%%"):
        assert words in r.text, words


def test_renders_in_many_languages_at_once_without_mixing() -> None:
    variants = [Variant(lang, "CR") for lang in ("en", "es", "fr")] * 8
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda v: render_variant(CONTENT, v, SENDER), variants))
    words = {"en": "Across the region", "es": "En la región", "fr": "Dans la région"}
    for variant, rendered in zip(variants, results, strict=True):
        others = [w for lang, w in words.items() if lang != variant.language]
        assert words[variant.language] in rendered.html
        assert not any(w in rendered.html for w in others)


# --- custom template directories ----------------------------------------------------


def custom(tmp_path: Path, name: str, text: str) -> Path:
    directory = tmp_path / "custom"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")
    return directory / name


def row(inner: str) -> str:
    """One MJML line: a section and column around `inner`."""
    return f"    <mj-section><mj-column>{inner}</mj-column></mj-section>"


def refusal(directory: Path, language: str = "es") -> str:
    with pytest.raises(TemplateError) as info:
        render_variant(CONTENT, Variant(language, "CR"), SENDER, directory=directory)
    return str(info.value)


def shipped_with(tmp_path: Path, old: str, new: str, name: str = "newsletter.mjml.j2") -> Path:
    """A copy of a shipped template with one change, in a custom directory."""
    text = (package_dir() / name).read_text(encoding="utf-8")
    assert old in text
    return custom(tmp_path, name, text.replace(old, new, 1))


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_unknown_mjml_tag_is_named_with_file_and_line(tmp_path: Path) -> None:
    path = shipped_with(tmp_path, "    <mj-section padding=\"24px\">",
                        "    <mj-spacerr height=\"8px\" />\n    <mj-section padding=\"24px\">")
    message = refusal(path.parent)
    line = line_of(path, "mj-spacerr")
    assert f"{path}, line {line}: <mj-spacerr> is not an MJML tag" in message
    assert "did you mean <mj-spacer>?" in message


def test_mj_html_attributes_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = shipped_with(tmp_path, "    <mj-attributes>",
                        "    <mj-html-attributes></mj-html-attributes>\n    <mj-attributes>")
    line = line_of(path, "<mj-html-attributes>")
    assert f"{path}, line {line}: <mj-html-attributes> is not supported by mjml-python" in (
        refusal(path.parent))


def test_missing_unsubscribe_link_is_named_at_the_footer_block(tmp_path: Path) -> None:
    path = custom(tmp_path, "newsletter.mjml.j2", """{% extends "default/newsletter.mjml.j2" %}
{# our own footer #}
{% block footer %}
""" + row('<mj-text>{{ sender.postal_address }} <a href="{{ preferences_url }}">'
          '{{ _("Update your preferences") }}</a></mj-text>') + """
{% endblock %}
""")
    message = refusal(path.parent)
    assert f"{path}, line 3: no unsubscribe link" in message
    assert "postal address" not in message and "preferences" not in message.split("line 3")[1]


def test_text_part_without_the_items_is_refused(tmp_path: Path) -> None:
    path = custom(tmp_path, "newsletter.txt.j2", """{% extends "default/newsletter.txt.j2" %}
{% block items %}(see the HTML version){% endblock %}
""")
    assert f"{path}, line 2: item text is missing" in refusal(path.parent, "en")


def test_jinja_syntax_error_is_named_with_file_and_line(tmp_path: Path) -> None:
    path = custom(tmp_path, "newsletter.txt.j2", "{{ sender.name }}\n\n{% for item in %}\n")
    assert f"{path}, line 3: Jinja syntax error" in refusal(path.parent)


def test_untranslated_string_is_named_with_file_and_line(tmp_path: Path) -> None:
    path = custom(tmp_path, "newsletter.mjml.j2", """{% extends "default/newsletter.mjml.j2" %}
{% block header %}
{{ super() }}
""" + row('<mj-text>{{ _("Forward it to a friend") }}</mj-text>') + """
{% endblock %}
""")
    message = refusal(path.parent, "es")
    assert f'{path}, line 4: "Forward it to a friend" has no es translation' in message
    # English is the source language: nothing to translate
    english = render_variant(CONTENT, Variant("en"), SENDER, directory=path.parent)
    assert "Forward it to a friend" in english.html


def test_image_without_alt_block_not_in_parent_and_missing_include(tmp_path: Path) -> None:
    path = custom(tmp_path, "newsletter.mjml.j2", """{% extends "default/newsletter.mjml.j2" %}
{% block header %}
""" + row('<mj-image src="https://example.org/logo.png" />') + """
""" + row('<mj-image src="https://example.org/l.png" alt="" />') + """
{% endblock %}
{% block fotter %}{% include "footer.mjml.j2" %}{% endblock %}
""")
    message = refusal(path.parent, "en")
    assert f"{path}, line 3: <mj-image> has no alt attribute" in message
    assert "line 4" not in message  # alt="" marks decoration: fine
    assert f'{path}, line 6: block "fotter" is not in default/newsletter.mjml.j2' in message
    assert f'{path}, line 6: "footer.mjml.j2" is not a template here' in message


def test_undefined_variable_is_named_with_file_and_line(tmp_path: Path) -> None:
    path = shipped_with(tmp_path, "{{ sender.postal_address }}<br />",
                        "{{ sender.postal_address }}<br />{{ sender.phone }}<br />")
    message = refusal(path.parent, "en")
    assert f"{path}, line {line_of(path, 'sender.phone')}: fails to render" in message
    assert "phone" in message


def test_custom_directory_from_the_setting_renders_with_its_own_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "brand"
    directory.mkdir()
    (directory / "newsletter.mjml.j2").write_text("""{% extends "default/newsletter.mjml.j2" %}
{% block header %}
{{ super() }}
""" + row('<mj-text css-class="tagline">{{ _("Forward it to a friend") }}</mj-text>') + """
{% endblock %}
""", encoding="utf-8")
    po = po_path(directory / "locale", "es")
    po.parent.mkdir(parents=True)
    po.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                  'msgid "Forward it to a friend"\nmsgstr "Reenvíelo a un amigo"\n',
                  encoding="utf-8")
    monkeypatch.setenv("NEWSLETTER_TEMPLATE_DIR", str(directory))
    settings = Settings()
    assert settings.template_dir == directory
    r = render_variant(CONTENT, Variant("es", "CR"), SENDER, directory=settings.template_dir)
    assert "Reenvíelo a un amigo" in r.html
    assert "Cancelar la suscripción" in r.html  # the shipped catalog fills the rest
    assert "(en inglés)" in r.text  # the shipped text template, untouched
    assert "Reenvíelo" not in render_variant(CONTENT, Variant("es"), SENDER).html


def test_an_edited_template_is_checked_again(tmp_path: Path) -> None:
    path = custom(tmp_path, "newsletter.txt.j2", '{% extends "default/newsletter.txt.j2" %}\n')
    assert "San José. Families settle." in render_variant(
        CONTENT, Variant("en"), SENDER, directory=path.parent).text
    path.write_text('{% extends "default/newsletter.txt.j2" %}\n{% block footer %}--\n'
                    "{% endblock %}\n", encoding="utf-8")
    later = time.time_ns() + 10**9  # a new mtime even within one clock tick
    os.utime(path, ns=(later, later))
    assert f"{path}, line 2: no unsubscribe link" in refusal(path.parent, "en")


def test_a_full_copy_of_the_shipped_templates_is_a_valid_custom_directory(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(package_dir(), copy, ignore=shutil.ignore_patterns("*.mo", "__*"))
    for language in ("en", "es", "fr"):
        assert template_problems(copy, language) == []
    shipped = render_variant(CONTENT, Variant("fr", "CR"), SENDER)
    assert render_variant(CONTENT, Variant("fr", "CR"), SENDER, directory=copy) == shipped
