"""The newsroom's catalog: newsroom.pot lists every string its pages and Python translate,
and `newsletter i18n check` holds templates/locale/<lang>/LC_MESSAGES/newsroom.po to the
same rules as the email's catalogs (translated, not fuzzy, the English's placeholders)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po

from newsletter import templating
from newsletter.i18n import msgid_of, placeholders
from tests.newsletter.test_i18n import (  # noqa: F401 (shipped_copy is a fixture)
    line_of,
    newsletter,
    shipped_copy,
)

SHIPPED_POT = templating.package_dir() / "locale" / "newsroom.pot"


def test_newsroom_pot_lists_every_string_the_newsroom_translates() -> None:
    used = templating.newsroom_messages()
    files = {Path(path).name for path, _line, _msgid in used}
    assert {"base.html.j2", "sending_send.html.j2", "core.py", "sending.py"} <= files
    ids = {msgid_of(m) for _path, _line, m in used}
    assert "Your role does not allow this page." in ids  # N_ in core.py
    assert "%(num)s subscriber" in ids  # ngettext in a template
    with SHIPPED_POT.open("rb") as handle:
        listed = {msgid_of(m.id) for m in read_po(handle) if m.id}
    missing = sorted({f"{Path(path).name}:{line}: {msgid_of(m)}" for path, line, m in used
                      if msgid_of(m) not in listed})
    assert not missing, "not in templates/locale/newsroom.pot:\n" + "\n".join(missing)


def test_placeholders() -> None:
    assert placeholders("%(n)s of %(total)d, 100%% and %s") == ["n", "s", "total"]
    assert placeholders("no placeholder, 5%% off") == []


def test_check_passes_on_the_shipped_newsroom_catalog() -> None:
    result = newsletter("i18n", "check", "--language", "es")
    assert result.exit_code == 0, result.output
    assert "newsroom" not in result.output


def test_check_names_each_newsroom_problem_with_its_file_and_line(
        shipped_copy: Path) -> None:  # noqa: F811 (the fixture imported above)
    po = shipped_copy / "locale" / "es" / "LC_MESSAGES" / "newsroom.po"
    text = po.read_text(encoding="utf-8")
    for old, new in (('msgstr "Cerrar sesión"', 'msgstr ""'),
                     ('msgid "Items"\n', '#, fuzzy\nmsgid "Items"\n'),
                     ('msgstr "Boletín %(slug)s"', 'msgstr "Boletín %(nombre)s"'),
                     ('msgstr "Vista previa de %(slug)s"', 'msgstr "Vista previa"')):
        assert old in text, old
        text = text.replace(old, new)
    po.write_text(text, encoding="utf-8")
    template = shipped_copy / "web" / "admin" / "dashboard.html.j2"
    template.write_text(template.read_text(encoding="utf-8").replace(
        "{% block main %}\n", '{% block main %}\n<p>{{ _("Forward this page") }}</p>\n', 1),
        encoding="utf-8")

    result = newsletter("i18n", "check")
    assert result.exit_code == 1
    out = result.output
    log_out, items = line_of(po, 'msgid "Log out"'), line_of(po, 'msgid "Items"')
    assert f'{po}, line {log_out}: es: untranslated: "Log out"' in out
    assert f'{po}, line {items}: es: fuzzy' in out
    line = line_of(po, 'msgid "Issue %(slug)s"')
    assert (f"{po}, line {line}: es: bad translation (placeholders nombre; the English has "
            'slug): "Issue %(slug)s"') in out
    assert "bad translation (placeholders none; the English has slug)" in out
    line = line_of(template, "Forward this page")
    assert (f"{template}, line {line}: newsroom: not in {shipped_copy / 'locale'}/newsroom.pot"
            in out) and '"Forward this page"' in out
    assert "5 untranslated string(s)" in out


def test_extract_appends_the_newsrooms_new_strings_to_its_catalogs(
        shipped_copy: Path) -> None:  # noqa: F811 (the fixture imported above)
    locale = shipped_copy / "locale"
    pot, po = locale / "newsroom.pot", locale / "es" / "LC_MESSAGES" / "newsroom.po"
    before = pot.read_text(encoding="utf-8"), po.read_text(encoding="utf-8")
    result = newsletter("i18n", "extract")
    assert result.exit_code == 0, result.output
    assert f"{pot}: unchanged" in result.output and f"{po}: unchanged, 0 to translate" in (
        result.output)
    assert (pot.read_text(encoding="utf-8"), po.read_text(encoding="utf-8")) == before

    template = shipped_copy / "web" / "admin" / "dashboard.html.j2"
    template.write_text(template.read_text(encoding="utf-8").replace(
        "{% block main %}\n", '{% block main %}\n<p>{{ _("Forward this page to %(who)s", '
        'who=user.email) }} {{ ngettext("%(num)s reader", "%(num)s readers", 2) }}</p>\n', 1),
        encoding="utf-8")
    result = newsletter("i18n", "extract")
    assert result.exit_code == 0, result.output
    assert f"{po}: updated, 2 to translate" in result.output
    assert pot.read_text(encoding="utf-8").startswith(before[0])  # appended, not rewritten
    assert po.read_text(encoding="utf-8").startswith(before[1])
    result = newsletter("i18n", "check")
    assert result.exit_code == 1
    line = line_of(po, 'msgid "Forward this page to %(who)s"')
    assert f'{po}, line {line}: es: untranslated: "Forward this page to %(who)s"' in (
        result.output)
    assert 'es: untranslated: "%(num)s reader"' in result.output

    po.write_text(po.read_text(encoding="utf-8").replace(
        'msgid "Forward this page to %(who)s"\nmsgstr ""',
        'msgid "Forward this page to %(who)s"\nmsgstr "Reenviar esta página a %(who)s"'
    ).replace('msgstr[0] ""\nmsgstr[1] ""\nmsgstr[2] ""',
              'msgstr[0] "%(num)s lector"\nmsgstr[1] "%(num)s lectores"\n'
              'msgstr[2] "%(num)s lectores"'), encoding="utf-8")
    result = newsletter("i18n", "check")
    assert result.exit_code == 0, result.output


def test_the_spanish_newsroom_says_one_word_per_thing() -> None:
    """An issue is a "boletín" and a feed a "canal" on every page (the sending pages said
    "número", the menu "Fuentes"); no entry the newsroom no longer uses."""
    with (SHIPPED_POT.parent / "es" / "LC_MESSAGES" / "newsroom.po").open("rb") as handle:
        catalog = read_po(handle, locale="es")
    strings = {(m.context, msgid_of(m.id)): m.string for m in catalog if m.id}
    for (_context, msgid), string in strings.items():
        text = " ".join(string) if isinstance(string, tuple) else string
        assert not {"número", "números", "fuente", "fuentes"} & set(
            text.lower().replace(":", " ").split()), (msgid, text)
    assert strings[(None, "Feeds")] == "Canales"
    assert strings[(None, "Withdraw")] == "Retirar"
    assert strings[(None, "Test-send to yourself")] == "Envío de prueba a su correo"
    assert strings[("role", "approver")] == "Aprobador(a)"
    with SHIPPED_POT.open("rb") as handle:
        listed = {msgid_of(m.id) for m in read_po(handle) if m.id}
    for obsolete in ("Choose submit, approve or reject.",):
        assert obsolete not in listed and (None, obsolete) not in strings
