"""What the newsroom walk (test_newsroom_walk.py) found, through Flask's test client on both
databases: the pages along the walk say things in the reader's language and point to the
next step. An upload's summary, the words "Issues" and "From", a refused form's message,
why an issue cannot be sent yet (with a link to where that is fixed, never a CLI command)
and where each subscriber's time zone came from."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from io import BytesIO

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from newsletter import users
from newsletter.db import utcnow
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue
from newsletter.items import store_items
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from subscribers.people import NewSubscriber, add
from tests.newsroom import cheap_argon2  # noqa: F401 (a fixture)
from worker import background

pytestmark = pytest.mark.usefixtures("cheap_argon2")
PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SLUG = "2026-11"
BASE = f"/admin/issues/{SLUG}"
NEWS = b"""24 November, 2026

Mobile clinics reach families in the northern border towns

San Jose. Two mobile clinics began weekly visits to Upala and Los Chiles.
"""
STORED = """20 November, 2026

Cooperatives in Managua open a job board

Managua. Six cooperatives now publish their openings on one board.
"""


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    assert background.join_all(30)
    background.forget_runtime()
    dispose(app)


@pytest.fixture
def db(app: Flask) -> sessionmaker[Session]:
    found: sessionmaker[Session] = app.extensions["newsletter"].sessions
    with found() as session, session.begin():
        for email, role, language in (("marta@example.org", "editor", "es"),
                                      ("ana@example.org", "approver", "es"),
                                      ("ben@example.org", "approver", "en")):
            users.add_user(session, email, PASSWORD, role, name=email.split("@")[0],
                           language=language, now=utcnow())
        store_items(session, parse_text(STORED, "stored.txt"))
        create_issue(session, SLUG, date(2026, 11, 1), date(2026, 11, 30)).approval = \
            "required"
        add(session, NewSubscriber("lucia@example.org", country="CR", language="es"),
            default_language="en")
    return found


def client_as(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "news.example.org"})
    response = client.post("/admin/login", data={
        "email": email, "password": PASSWORD, "csrf_token": token(client, "/admin/login")})
    assert response.status_code == 303
    return client


def token(client: FlaskClient, path: str = "/admin/account") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def post(client: FlaskClient, path: str, **form: str) -> tuple[int, str]:
    """POST a form; after a 303 (Post/Redirect/Get) the page it leads to, with 200."""
    response = client.post(path, data={**form, "csrf_token": token(client)})
    location = response.headers.get("Location")
    if response.status_code == 303 and location:
        response = client.get(location)
        assert response.status_code == 200
    return response.status_code, response.text


def test_an_upload_is_summed_up_in_the_readers_language(app: Flask,
                                                        db: sessionmaker[Session]) -> None:
    marta = client_as(app, "marta@example.org")
    response = marta.post("/admin/items/upload", data={
        "csrf_token": token(marta), "language": "en",
        "file": (BytesIO(NEWS), "noticias.txt")}, content_type="multipart/form-data")
    assert response.status_code in (200, 303)
    page = marta.get("/admin/items").text if response.status_code == 303 else response.text
    assert "Noticias leídas: 1; nuevas: 1, actualizadas: 0, ya estaban: 0" in page
    assert "items read" not in page


def test_spanish_words_for_issues_a_date_window_and_the_choices(app: Flask,
                                                    db: sessionmaker[Session]) -> None:
    page = client_as(app, "marta@example.org").get("/admin/issues").text
    assert '<h1>Boletines</h1>' in page and ">Boletines</a>" in page  # not "Ediciones":
    assert "Ediciones" not in page  # that is a language's edition of one issue
    assert '<label for="new-from">Desde</label>' in page
    assert '<label for="new-to">Hasta</label>' in page
    # the choices in words, the values the library's
    assert '<option value="first" selected>Primero el país de cada lector</option>' in page
    assert '<option value="none">Ninguno: las mismas noticias para todos</option>' in page
    assert '<option value="required">necesaria</option>' in page


def test_a_form_without_its_token_is_refused_in_the_users_language(
        app: Flask, db: sessionmaker[Session]) -> None:
    marta = client_as(app, "marta@example.org")
    response = marta.post("/admin/issues/create", data={
        "slug": "2026-12", "from": "2026-12-01", "to": "2026-12-31"})
    assert response.status_code == 400
    assert 'lang="es"' in response.text
    assert "sin un código de seguridad válido, así que no se cambió nada" in response.text
    assert marta.get("/admin/issues/2026-12").status_code == 404


def test_why_an_issue_cannot_be_sent_yet_and_where_to_fix_it(
        app: Flask, db: sessionmaker[Session]) -> None:
    marta, ana, ben = (client_as(app, f"{who}@example.org") for who in ("marta", "ana", "ben"))
    # not submitted: the newsroom's step, not the CLI's command
    for page in (ana.get(f"{BASE}/send").text, marta.get(BASE).text,
                 ana.get(f"{BASE}/review").text):
        assert "Primero necesita aprobación: envíelo a revisión" in page
        assert "newsletter issues" not in page and "--by NAME" not in page
    assert f'href="{BASE}/review">Ir a la página de revisión</a>' in ana.get(f"{BASE}/send").text
    assert post(marta, f"{BASE}/review", action="submit")[0] == 200
    assert "alguien distinto de quien lo envió a revisión" in ana.get(f"{BASE}/send").text
    assert post(ana, f"{BASE}/review", action="approve")[0] == 200

    day = (utcnow() + timedelta(days=1)).date().isoformat()
    code, html = post(ana, f"{BASE}/schedule", mode="at", day=day, time="09:00",
                      zone="America/Costa_Rica")
    assert code == 200
    # where each zone came from, in words
    assert "Zona tomada de" in html and "la zona elegida" in html
    assert ">given<" not in html
    page = ana.get(f"{BASE}/send").text
    assert (f"Este boletín está programado para el {day} 15:00 UTC: desprográmelo primero "
            "para enviarlo ahora.") in page
    assert (f'<a href="{BASE}/schedule">Desprogramarlo en la página de programación</a>'
            in page)
    assert "Enviar a 1 suscriptores ahora" not in page and 'name="confirm"' not in page
    english = ben.get(f"{BASE}/send").text
    assert f"This issue is scheduled for {day} 15:00 UTC: unschedule it first" in english
    assert f'<a href="{BASE}/schedule">Unschedule it on the Schedule page</a>' in english
    # and sending anyway is refused with the same words
    code, html = post(ana, f"{BASE}/send", confirm="yes")
    assert code == 400 and "desprográmelo primero" in html


def test_the_review_page_offers_a_note_only_with_a_step_and_then_the_next_steps(
        app: Flask, db: sessionmaker[Session]) -> None:
    marta, ana = client_as(app, "marta@example.org"), client_as(app, "ana@example.org")
    assert '<textarea id="note"' in marta.get(f"{BASE}/review").text  # she may submit
    assert post(marta, f"{BASE}/review", action="submit")[0] == 200
    waiting = marta.get(f"{BASE}/review").text  # in review: she may only withdraw it
    assert 'value="withdraw"' in waiting
    assert 'value="submit"' not in waiting and 'value="approve"' not in waiting
    assert 'value="reject"' not in waiting
    assert '<textarea id="note"' in ana.get(f"{BASE}/review").text  # Ana decides
    code, approved = post(ana, f"{BASE}/review", action="approve")
    assert code == 200
    # approved: only withdrawing it is left on this page (the next steps are links)
    assert 'value="withdraw"' in approved
    assert not any(f'value="{step}"' in approved for step in ("submit", "approve", "reject"))
    assert (f'Aprobado: ya puede salir. <a href="{BASE}/schedule">Elegir cuándo sale</a> · '
            f'<a href="{BASE}/send">Enviarlo ahora</a>') in approved
    assert "data-next" not in marta.get(f"{BASE}/review").text  # not her steps


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_refusal_shows_even_when_the_user_cannot_be_read(
        app: Flask, db: sessionmaker[Session], db_url: str) -> None:
    marta = client_as(app, "marta@example.org")
    with db() as session, session.begin():  # the database loses its users meanwhile
        session.execute(text("DROP TABLE users"))
    response = marta.post("/admin/issues/create", data={"slug": "2026-12"})
    assert response.status_code == 400  # not a server error
    assert "without a valid security token" in response.text
