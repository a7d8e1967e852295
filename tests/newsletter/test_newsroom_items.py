"""The newsroom's Items screen through Flask's test client, on both databases: search and
filters with paging, editing (as `items edit` and `tag`), translations, deleting after a
confirmation (refused for an item in an issue past draft), uploading an item file, and
who may change what (editors and admins; approvers read)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from io import BytesIO

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter import users
from newsletter.db import utcnow
from newsletter.issues import create_issue
from newsletter.items import list_items, parse_bytes, search_items, store_items
from newsletter.models import DeletedItem, Issue, Item
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from tests.newsroom import cheap_argon2  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("cheap_argon2")
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

NEWS = """10 October, 2019

Drought in Guanacaste

Liberia. Farmers in the north report the driest month in forty years.

Wells are running low.

11 October, 2019

New bridge opens

Managua. A new bridge links the two banks of the river.
"""


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    dispose(app)


@pytest.fixture
def app_sessions(app: Flask) -> sessionmaker[Session]:
    found: sessionmaker[Session] = app.extensions["newsletter"].sessions
    return found


def client_as(app: Flask, sessions: sessionmaker[Session], role: str) -> FlaskClient:
    """A client logged in as a new user with `role` (the public URL is https)."""
    email = f"{role}@example.org"
    with sessions() as session, session.begin():
        users.add_user(session, email, PASSWORD, role, now=utcnow())
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "news.example.org"})
    response = client.post("/admin/login", data={
        "email": email, "password": PASSWORD, "csrf_token": token(client, "/admin/login")})
    assert response.status_code == 303
    return client


def token(client: FlaskClient, path: str = "/admin/items") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def post(client: FlaskClient, path: str, **data: object) -> tuple[int, str]:
    """POST a form: (status, page); after a 303 (Post/Redirect/Get) the page it leads to."""
    response = client.post(path, data={**data, "csrf_token": token(client)})
    location = response.headers.get("Location")
    if response.status_code == 303 and location:  # done: 303 and the page it leads to
        followed = client.get(location)
        assert followed.status_code == 200, location
        return 303, followed.text
    return response.status_code, response.text


def seed(sessions: sessionmaker[Session], text: str = NEWS) -> dict[str, int]:
    """The items of `text` stored (in English); their ids by date."""
    with sessions() as session, session.begin():
        store_items(session, parse_bytes(text.encode(), "news.txt", language="en", json=False))
        return {i.published.isoformat(): i.id for i in list_items(session)}


def item(sessions: sessionmaker[Session], item_id: int) -> Item:
    with sessions() as session:
        found = session.get(Item, item_id)
        assert found is not None
        found.translations  # noqa: B018 (loaded before the session closes)
        session.expunge(found)
        return found


def test_search_filters_and_paging(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    ids = seed(app_sessions)
    with app_sessions() as session, session.begin():
        session.get(Item, ids["2019-10-11"]).countries = "NI"  # type: ignore[union-attr]
        session.get(Item, ids["2019-10-10"]).language = "es"  # type: ignore[union-attr]
    client = client_as(app, app_sessions, "approver")  # reading is for every role
    page = client.get("/admin/items").text
    assert "2 items found; page 1 of 1." in page
    assert page.index("New bridge opens") < page.index("Drought in Guanacaste")  # newest first
    assert f'href="/admin/items/{ids["2019-10-10"]}"' in page

    def titles(query: str) -> list[str]:
        text = client.get("/admin/items?" + query).text
        return [t for t in ("New bridge opens", "Drought in Guanacaste") if t in text]

    assert titles("q=WELLS") == ["Drought in Guanacaste"]  # a word of the body, any case
    assert titles("q=bridge+river") == ["New bridge opens"]  # every word
    assert titles("q=bridge+wells") == []
    assert titles("q=100%25") == []  # % is a character, not a wildcard
    assert titles("from=2019-10-11") == ["New bridge opens"]
    assert titles("to=2019-10-10") == ["Drought in Guanacaste"]
    assert titles("country=ni") == ["New bridge opens"]
    assert titles("language=es") == ["Drought in Guanacaste"]
    nul = client.get("/admin/items?q=wells%00&country=%00&language=e%00s&page=0")
    assert nul.status_code == 200 and "1 items found" in nul.text  # NUL dropped, no 500
    bad = client.get("/admin/items?from=10/10/2019&page=x")
    assert bad.status_code == 200
    assert "10/10/2019 is not a date: write it as 2019-10-10." in bad.text

    with app_sessions() as session:
        found = search_items(session, per_page=1, page=2)
        assert [i.title for i in found.items] == ["Drought in Guanacaste"]
        assert (found.total, found.pages) == (2, 2)
        assert search_items(session, per_page=1, page=99).page == 2  # past the end: the last
    with app_sessions() as session, session.begin():
        store_items(session, parse_bytes(
            "".join(f"{d} October, 2019\n\nStory {d}\n\nText {d}.\n\n" for d in range(1, 30))
            .encode(), "more.txt", language="en", json=False))
    first = client.get("/admin/items?q=story").text
    assert "29 items found; page 1 of 2." in first
    assert 'href="/admin/items?page=2&amp;q=story" rel="next"' in first
    assert "Previous page" not in first
    second = client.get("/admin/items?page=2&q=story").text
    assert "Story 1\n" in second.replace("</a>", "\n") and "Next page" not in second


def test_an_editor_edits_an_item_as_items_edit_does(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    ids = seed(app_sessions)
    first = ids["2019-10-10"]
    client = client_as(app, app_sessions, "editor")
    page = client.get(f"/admin/items/{first}").text
    for label in ("Title", "Text (paragraphs separated by a blank line)", "Place (dateline)",
                  "Published on", "Countries (ISO codes, comma-separated)", "Language",
                  "Address of the full story (URL)"):
        assert f">{label}</label>" in page
    values = {"title": "Drought in Guanacaste", "place": "Liberia", "published": "2019-10-10",
              "body": "Farmers in the north report the driest month in forty years.\r\n\r\n"
                      "Wells are running low.", "url": "", "language": "en", "countries": ""}
    code, text = post(client, f"/admin/items/{first}/edit", **values)
    assert code == 303 and "Nothing changed: the values were already so." in text

    code, text = post(client, f"/admin/items/{first}/edit", **{
        **values, "title": "Drought  ends", "body": "One.\r\n\r\nTwo.",
        "countries": "cr, NI", "url": "https://example.org/d"})
    assert code == 303 and "Saved: title, body, url, countries." in text
    saved = item(app_sessions, first)
    assert (saved.title, saved.paragraphs, saved.countries, saved.url) == (
        "Drought ends", ["One.", "Two."], "CR,NI", "https://example.org/d")
    assert {"title", "body", "url", "countries"} <= saved.edited_fields

    # the library's refusal, in the page, with what was typed kept
    code, text = post(client, f"/admin/items/{first}/edit", **{
        **values, "title": "Kept typing", "url": "ftp://example.org"})
    assert code == 400
    assert "&#39;ftp://example.org&#39; is not an http(s) address" in text
    assert "--url" not in text  # the CLI's option is the CLI's hint
    assert 'value="Kept typing"' in text
    # a NUL in the address: refused as an import refuses it (PostgreSQL would fail: a 500)
    code, text = post(client, f"/admin/items/{first}/edit", **{
        **values, "url": "https://example.org/\x00"})
    assert code == 400 and "the address holds a control character" in text
    code, text = post(client, f"/admin/items/{first}/edit", **{**values, "countries": "XX"})
    assert code == 400 and "&#39;XX&#39; is not a known country" in text
    assert item(app_sessions, first).title == "Drought ends"  # nothing of either was stored
    assert client.get("/admin/items/999999").status_code == 404
    assert client.get("/admin/items/12x").status_code == 404
    assert post(client, "/admin/items/999999/edit", **values)[0] == 404


def test_translations_side_by_side(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    first = seed(app_sessions)["2019-10-10"]
    client = client_as(app, app_sessions, "admin")
    page = client.get(f"/admin/items/{first}").text
    assert "Source (en)" in page and "Add a translation" in page
    assert '<option value="es">es</option>' in page and '<option value="en">' not in page
    code, text = post(client, f"/admin/items/{first}/translate", language="es",
                      title="Sequía en Guanacaste", place="",
                      body="Liberia. Los agricultores.\r\n\r\nLos pozos se secan.")
    assert code == 303 and "Translation saved: es." in text
    assert "Translation (es)" in text and 'value="Sequía en Guanacaste"' in text
    saved = item(app_sessions, first).translations["es"]
    assert (saved.place, saved.paragraphs) == ("Liberia", ["Los agricultores.",
                                                           "Los pozos se secan."])
    code, text = post(client, f"/admin/items/{first}/translate", language="en",
                      title="Same", place="", body="Same.")
    assert code == 400
    assert f"item {first} is written in en: a translation must be in another language" in text
    assert 'value="Same"' in text  # the add form keeps what was typed
    code, text = post(client, f"/admin/items/{first}/translate", language="es",
                      title="", place="", body="")
    assert code == 400 and "a translation needs a title and at least one paragraph" in text


def test_delete_after_a_confirmation_never_from_an_issue_past_draft(
        app: Flask, app_sessions: sessionmaker[Session]) -> None:
    ids = seed(app_sessions)
    first, second = ids["2019-10-10"], ids["2019-10-11"]
    with app_sessions() as session, session.begin():
        create_issue(session, "approved-one", date(2019, 10, 11), date(2019, 10, 11))
        create_issue(session, "draft-one", date(2019, 10, 1), date(2019, 10, 31))
        session.scalars(select(Issue).where(Issue.slug == "approved-one")).one().status = (
            "approved")
    client = client_as(app, app_sessions, "editor")
    code, text = post(client, f"/admin/items/{first}/delete")
    assert code == 200 and "Delete an item" in text and 'name="confirm" value="yes"' in text
    assert item(app_sessions, first)  # asking deleted nothing

    code, text = post(client, f"/admin/items/{second}/delete", confirm="yes")
    assert code == 400
    assert f"item {second} is in issue approved-one (approved)" in text
    assert item(app_sessions, second)

    code, text = post(client, f"/admin/items/{first}/delete", confirm="yes")
    assert code == 303 and "items found" in text  # the list
    assert f"Item {first} deleted: Drought in Guanacaste." in text
    assert "Taken out of draft issue(s): draft-one." in text
    with app_sessions() as session:
        assert session.get(Item, first) is None
        assert session.scalar(select(DeletedItem.title)) == "Drought in Guanacaste"
    assert post(client, f"/admin/items/{first}/delete")[0] == 404


def test_upload_an_item_file(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    client = client_as(app, app_sessions, "editor")

    def upload(name: str, content: bytes, language: str = "en") -> tuple[int, str]:
        response = client.post("/admin/items/upload", data={
            "csrf_token": token(client), "language": language,
            "file": (BytesIO(content), name)}, content_type="multipart/form-data")
        if response.status_code == 303:  # stored: the list, with the summary once
            assert response.headers["Location"] == "/admin/items"
            return 303, client.get(response.headers["Location"]).text
        return response.status_code, response.text

    code, text = upload("news.txt", NEWS.encode())
    assert code == 303 and "2 items read: 2 added, 0 updated, 0 already there" in text
    assert "items read" not in client.get("/admin/items").text  # shown once
    code, text = upload("news.txt", NEWS.encode())
    assert code == 303 and "2 items read: 0 added, 0 updated, 2 already there" in text
    code, text = upload("more.json", b'[{"date": "2019-10-12", "title": "A JSON item",'
                                     b' "body": "From JSON.", "language": "es"}]', language="")
    assert code == 303 and "1 items read: 1 added" in text
    with app_sessions() as session:
        assert [(i.title, i.language) for i in list_items(session)][0] == ("A JSON item", "es")

    broken = NEWS + "\n32 October, 2019\n\nNo such day\n\nText.\n"
    code, text = upload("broken.txt", broken.encode())
    assert code == 400 and re.search(r"broken\.txt, line 1[0-9]", text), text
    assert '<option value="en" selected>' in text  # the language chosen is kept
    code, text = upload("bad.json", b'[{"date": "2019-10-13",\n "title": }]')
    assert code == 400 and "bad.json, line 2" in text
    code, text = upload("latin1.txt", "13 October, 2019\n\nJosé\n\nTexto.\n".encode("latin-1"))
    assert code == 400 and "latin1.txt, line 3: is not valid UTF-8" in text
    with app_sessions() as session:
        assert len(list_items(session)) == 3  # none of the broken files stored anything
    nothing = client.post("/admin/items/upload", data={"csrf_token": token(client)},
                          content_type="multipart/form-data")
    assert nothing.status_code == 400 and "Choose a file to upload." in nothing.text


@SQLITE_ONLY
def test_approvers_change_items_as_editors_do(app: Flask,
                                             app_sessions: sessionmaker[Session]) -> None:
    """An approver is an editor who may also approve (users.PERMISSIONS["items.change"]
    holds every role; test_newsroom_access tries every endpoint as every role)."""
    first = seed(app_sessions)["2019-10-10"]
    client = client_as(app, app_sessions, "approver")
    page = client.get(f"/admin/items/{first}").text
    assert "Drought in Guanacaste" in page and "Wells are running low." in page
    assert "/edit" in page and "/delete" in page and "/translate" in page
    assert "Upload an item file" in client.get("/admin/items").text
    code, text = post(client, f"/admin/items/{first}/edit", **{
        "title": "Drought in the north", "place": "Liberia", "published": "2019-10-10",
        "body": "Farmers in the north report the driest month in forty years.\r\n\r\n"
                "Wells are running low.", "url": "", "language": "en", "countries": ""})
    assert code == 303 and "Saved: title." in text  # the page the redirect leads to
    assert item(app_sessions, first).title == "Drought in the north"
    # without the CSRF token nobody changes anything
    editor = client_as(app, app_sessions, "editor")
    assert editor.post(f"/admin/items/{first}/delete", data={"confirm": "yes"}).status_code == 400
    assert item(app_sessions, first)
    # logged out: the login page
    assert app.test_client().get("/admin/items").status_code == 302


@SQLITE_ONLY
def test_the_screen_in_spanish(app: Flask, app_sessions: sessionmaker[Session]) -> None:
    first = seed(app_sessions)["2019-10-10"]
    client = client_as(app, app_sessions, "editor")
    with app_sessions() as session, session.begin():
        users.set_language(session, "editor@example.org", "es")
    assert "Subir un archivo de noticias" in client.get("/admin/items").text
    page = client.get(f"/admin/items/{first}").text
    assert "Texto y traducciones" in page and "Borrar esta noticia" in page


FIELDS = ["title", "place", "body", "published", "url", "language", "countries", "confirm"]


@pytest.mark.fuzz
@settings(max_examples=40, deadline=None)
@given(form=st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=200)),
       query=st.dictionaries(st.sampled_from(["q", "from", "to", "country", "language", "page"]),
                             st.text(max_size=60)))
def test_no_form_or_search_ends_in_a_server_error(
        app: Flask, app_sessions: sessionmaker[Session], form: dict[str, str],
        query: dict[str, str]) -> None:
    client = app.extensions.get("test-items-client")
    if client is None:
        seed(app_sessions)
        client = app.extensions["test-items-client"] = client_as(app, app_sessions, "editor")
    with app_sessions() as session:
        ids = [i.id for i in list_items(session)]
    if not ids:
        ids = list(seed(app_sessions).values())
    target = ids[0]
    assert client.get("/admin/items", query_string=query).status_code == 200
    csrf = token(client)
    for path in (f"/admin/items/{target}/edit", f"/admin/items/{target}/translate",
                 f"/admin/items/{target}/delete"):
        response = client.post(path, data={**form, "csrf_token": csrf})
        assert response.status_code in (200, 400, 404), (path, response.status_code)
        assert "Traceback" not in response.text
    # the file: any text, read as the text format or as JSON by its name
    content = "\n\n".join(form.values()).encode("utf-8", "surrogatepass")
    for name in (form.get("title", "") or "f.txt", "f.json"):
        response = client.post("/admin/items/upload", data={
            "csrf_token": csrf, "language": form.get("language", ""),
            "file": (BytesIO(content), name)}, content_type="multipart/form-data")
        assert response.status_code in (200, 400), (name, response.status_code)
        assert "Traceback" not in response.text
