"""The library's messages in the newsroom (newsletter.errors.Message): an error a person
meets in a page is shown in their language and without the CLI's options and commands,
while the CLI's text (str of the error) keeps them; and every such message has its
Spanish translation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from newsletter import approval, users
from newsletter.cli.demo import sample_items_text
from newsletter.db import utcnow
from newsletter.errors import Message, NewsletterError, Term
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue, get_issue
from newsletter.items import store_items
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from tests.newsroom import cheap_argon2  # noqa: F401 (a fixture)
from worker import background

pytestmark = pytest.mark.usefixtures("cheap_argon2")
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
BASE = "/admin/issues/w49"
CLI_WORDS = re.compile(r"--[a-z]|`|newsletter (issues|users)|users set-")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    sessions: sessionmaker[Session] = app.extensions["newsletter"].sessions
    with sessions() as session, session.begin():
        for email, role in (("ed@example.org", "editor"), ("ana@example.org", "admin")):
            users.add_user(session, email, PASSWORD, role, name=email[:3].title(),
                           language="es", now=utcnow())
        store_items(session, parse_text(sample_items_text(), "sample"))
        create_issue(session, "w49", date(2019, 9, 1), date(2019, 10, 31)).approval = "required"
    yield app
    assert background.join_all(30)
    background.forget_runtime()
    dispose(app)


def client_as(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "news.example.org"})
    assert client.post("/admin/login", data={
        "email": email, "password": PASSWORD,
        "csrf_token": token(client, "/admin/login")}).status_code == 303
    return client


def token(client: FlaskClient, path: str = "/admin/account") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def refused(client: FlaskClient, path: str, **form: str) -> str:
    """POST a form that must be refused: the problem shown (400), as a reader sees it."""
    response = client.post(path, data={**form, "csrf_token": token(client)})
    assert response.status_code == 400, (path, response.status_code)
    found = re.search(r'<p class="problem" role="alert">(.*?)</p>', response.text, re.S)
    assert found, response.text
    shown = found.group(1).replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">")
    assert CLI_WORDS.search(shown) is None, shown  # no option, no command
    return shown


def test_a_message_is_the_cli_text_and_a_template_to_translate() -> None:
    error = NewsletterError.translatable(
        "issue %(slug)r is %(status)s", slug="w49", status=Term("sending"),
        hint=" (`newsletter issues status w49`)")
    assert str(error) == "issue 'w49' is sending (`newsletter issues status w49`)"
    assert error.text() == "issue 'w49' is sending"
    spanish = {"issue %(slug)r is %(status)s": "el boletín %(slug)r está «%(status)s»"}
    assert error.text(lambda m: spanish.get(m, m), {"sending": "enviándose"}.__getitem__) == (
        "el boletín 'w49' está «enviándose»")
    nested = Message("issue %(slug)r %(why)s", {"slug": "w49", "why": Message("needs it")},
                     hint="; `newsletter issues submit w49`")
    assert str(nested) == "issue 'w49' needs it; `newsletter issues submit w49`"
    spanish = {"issue %(slug)r %(why)s": "el boletín %(slug)r %(why)s",
               "needs it": "lo necesita"}
    assert nested.text(spanish.__getitem__) == "el boletín 'w49' lo necesita"
    plain = NewsletterError("as it was")  # a message without a template: the same text
    assert (str(plain), plain.text(), plain.message) == ("as it was", "as it was", None)


@SQLITE_ONLY
def test_the_review_in_spanish(app: Flask) -> None:
    ana, ed = client_as(app, "ana@example.org"), client_as(app, "ed@example.org")
    page = ana.get(f"{BASE}/review").text  # why it may not go out: the newsroom's step
    assert "Primero necesita aprobación: envíelo a revisión" in page
    assert "newsletter issues submit" not in page
    assert refused(ana, f"{BASE}/review", action="approve") == (
        "el boletín 'w49' no se ha enviado a revisión, así que no puede ser aprobado")
    assert ed.post(f"{BASE}/review", data={
        "action": "submit", "csrf_token": token(ed)}).status_code == 303
    assert refused(ed, f"{BASE}/review", action="submit") == (
        "el boletín 'w49' ya está en revisión")
    assert refused(ana, f"{BASE}/review", action="reject", note=" ") == (
        "para rechazar hace falta una nota: indique qué hay que cambiar")
    # the CLI's text is the English one, with its option
    with app.extensions["newsletter"].sessions() as session:
        with pytest.raises(approval.ApprovalError) as cli:
            approval.reject(session, get_issue(session, "w49"), "Ana", "", now=utcnow())
    assert str(cli.value) == "a rejection needs a note: say what has to change (--note)"


@SQLITE_ONLY
def test_users_schedule_and_sending_in_spanish(app: Flask) -> None:
    ana = client_as(app, "ana@example.org")
    form = {"email": "flo@example.org", "role": "editor", "language": "es"}
    assert refused(ana, "/admin/users/add", **form, password="corta") == (
        "la contraseña tiene menos de 12 caracteres: elija una más larga (unas cuantas "
        "palabras hacen una buena contraseña)")
    assert refused(ana, "/admin/users/add", **{**form, "email": "ed@example.org"},
                   password=PASSWORD) == "ya existe un usuario ed@example.org"
    assert refused(ana, "/admin/users/role", email="ana@example.org", role="editor") == (
        "ana@example.org es el último administrador: primero haga administrador a otra "
        "persona")
    past = (utcnow() - timedelta(days=2)).date().isoformat()
    shown = refused(ana, f"{BASE}/schedule", action="schedule", mode="at", day=past,
                    time="09:00", zone="UTC")
    assert shown == f"{past} 09:00 en UTC = {past} 09:00 UTC ya pasó: elija una hora " \
                    "posterior, o envíelo ahora"
    assert refused(ana, f"{BASE}/control", action="pause") == (
        "el boletín 'w49' está en estado «borrador»: solo un boletín en estado "
        "«enviándose» puede pasar a «en pausa»")
    send = ana.get(f"{BASE}/send").text.replace("&#39;", "'")
    assert "Primero necesita aprobación: envíelo a revisión" in send
    assert "newsletter issues" not in send


def test_every_library_message_has_its_spanish_translation() -> None:
    """What newsletter/ and worker/ mark with N_ for the newsroom is in newsroom.po (the
    views' and templates' own messages: test_newsroom_auth.py)."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    from newsletter.web.admin.core import catalog_path

    root = Path(__file__).resolve().parents[2]
    marked = {message for folder in ("newsletter", "worker")
              for _, _, message, _, _ in extract_from_dir(
                  root / folder, method_map=[("**.py", "python")], keywords={"N_": None})
              if isinstance(message, str)}
    with catalog_path("es").open("rb") as po:
        translated = {m.id for m in read_po(po, locale="es") if m.id and m.string}
    assert len(marked) > 50
    assert sorted(marked - translated) == []
