"""`export_subscribers` on SQLite and PostgreSQL: formats, filters, paging, and the round trip."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from subscribers import export
from subscribers.export import COLUMNS, ExportError, export_subscribers
from subscribers.filters import Filter, FilterError
from subscribers.importer import ImportOptions, import_subscribers
from subscribers.models import MailingList, Segment, Subscriber, Subscription

PEOPLE = """email,name,country,language,city
ana@example.org,Ana Rodríguez,CR,es,San José
bob@example.org,"Young, Bob",BZ,en,
carla@example.org,Carla Núñez,SV,es-SV,
dan@example.org,Dan Pierre,,en,
eva@example.org,Eva Morales,MX,es,"Ciudad de México"
fred@example.org,Fred,NI,en,
gabi@example.org,Gabi,CR,en,
"""


def load(sessions: sessionmaker[Session], data: str, **options: Any) -> None:
    import_subscribers(sessions, io.BytesIO(data.encode()), ImportOptions(**options),
                       default_language="en")


@pytest.fixture
def filled(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions() as session, session.begin():
        session.add(MailingList(name="news", opt_in="single"))
        session.add(Segment(name="ticos", definition=Filter(countries=("CR",)).to_json()))
    load(sessions, PEOPLE, consent_method="import:people.csv", consent_text="v1")
    load(sessions, "email\nana@example.org\neva@example.org\nfred@example.org\n",
         list_name="news")
    with sessions() as session, session.begin():
        for who, status in (("bob@example.org", "unsubscribed"), ("fred@example.org",
                                                                     "bounced")):
            session.scalars(select(Subscriber).where(Subscriber.email == who)).one().status = (
                status)
        eva = session.scalars(select(Subscriber).where(Subscriber.email == "eva@example.org"))
        session.scalars(select(Subscription).where(
            Subscription.subscriber_id == eva.one().id)).one().status = "unsubscribed"
    return sessions


EVERYONE = Filter()


def exported(sessions: sessionmaker[Session], f: Filter = EVERYONE, fmt: str = "ndjson",
             ) -> list[dict[str, Any]]:
    out = io.StringIO()
    with sessions() as session:
        written = export_subscribers(session, f, fmt, out)
    text = out.getvalue()
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    elif fmt == "json":
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == written
    return rows


def emails(rows: list[dict[str, Any]]) -> list[str]:
    return [r["email"] for r in rows]


def test_every_format_has_every_column(filled: sessionmaker[Session]) -> None:
    as_json = exported(filled, fmt="json")
    as_ndjson = exported(filled, fmt="ndjson")
    as_csv = exported(filled, fmt="csv")
    assert as_json == as_ndjson
    assert [list(r) for r in as_json] == [list(COLUMNS)] * 7
    assert list(as_csv[0]) == list(COLUMNS)
    assert emails(as_json) == emails(as_csv) == [
        "ana@example.org", "bob@example.org", "carla@example.org", "dan@example.org",
        "eva@example.org", "fred@example.org", "gabi@example.org"]
    ana = as_json[0]
    assert (ana["name"], ana["country"], ana["language"], ana["status"]) == (
        "Ana Rodríguez", "CR", "es", "active")
    assert ana["lists"] == ["news"] and as_csv[0]["lists"] == "news"
    assert ana["attributes"] == {"city": "San José"}
    assert json.loads(as_csv[0]["attributes"]) == {"city": "San José"}
    assert (ana["consent_method"], ana["consent_text"]) == ("import:people.csv", "v1")
    assert ana["consent_at"] and ana["created_at"]
    assert as_csv[1]["name"] == "Young, Bob" and as_csv[1]["attributes"] == ""
    assert as_json[4]["lists"] == []  # eva unsubscribed from the list


def test_empty_exports_are_valid_files(sessions: sessionmaker[Session]) -> None:
    assert exported(sessions, fmt="json") == []
    assert exported(sessions, fmt="ndjson") == []
    out = io.StringIO()
    with sessions() as session:
        export_subscribers(session, Filter(), "csv", out)
    assert out.getvalue().strip() == ",".join(COLUMNS)


@pytest.mark.parametrize(("f", "expected"), [
    (Filter(email="EXAMPLE.ORG"), 7),
    (Filter(email="AN@"), ["dan"]),
    (Filter(email="an"), ["ana", "dan"]),
    (Filter(countries=("CR", "NI")), ["ana", "fred", "gabi"]),
    (Filter(countries=("none",)), ["dan"]),
    (Filter(languages=("en",)), ["bob", "dan", "fred", "gabi"]),
    (Filter(lists=("news",)), ["ana", "fred"]),
    (Filter(statuses=("unsubscribed", "bounced")), ["bob", "fred"]),
    (Filter(segments=("ticos",)), ["ana", "gabi"]),
    (Filter(segments=("ticos",), languages=("en",)), ["gabi"]),
])
def test_filters(filled: sessionmaker[Session], f: Filter, expected: list[str] | int) -> None:
    got = [e.split("@")[0] for e in emails(exported(filled, f))]
    assert (len(got) if isinstance(expected, int) else got) == expected


def test_bad_filters_and_formats_are_refused(filled: sessionmaker[Session]) -> None:
    with pytest.raises(FilterError, match="no list called 'nope'"):
        exported(filled, Filter(lists=("nope",)))
    with pytest.raises(ExportError, match="unknown format"):
        exported(filled, fmt="xml")


def test_pages_cover_everyone_once_in_order(
    filled: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "PAGE", 2)
    seen: list[int] = []
    out = io.StringIO()
    with filled() as session:
        assert export_subscribers(session, Filter(), "ndjson", out, seen.append) == 7
    assert seen == [2, 2, 2, 1]
    assert len({json.loads(line)["email"] for line in out.getvalue().splitlines()}) == 7
    assert exported(filled, Filter(lists=("news",))) == [
        r for r in exported(filled) if r["email"] in ("ana@example.org", "fred@example.org")]


def columns_of(sessions: sessionmaker[Session]) -> dict[str, tuple[Any, ...]]:
    with sessions() as session:
        return {s.email: (s.name, s.country, s.language, s.status, s.attributes, s.consent_at,
                          s.consent_method, s.consent_text)
                for s in session.scalars(select(Subscriber))}


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_an_export_imports_back_into_an_empty_database(
    filled: sessionmaker[Session], fmt: str
) -> None:
    before = columns_of(filled)
    out = io.StringIO()
    with filled() as session:
        export_subscribers(session, Filter(), fmt, out)
    with filled() as session, session.begin():
        session.execute(delete(Subscription))
        session.execute(delete(Subscriber))
    report = import_subscribers(filled, io.BytesIO(out.getvalue().encode()),
                                ImportOptions(format=fmt), default_language="en")
    assert (report.added, report.rejected) == (7, 0)
    assert columns_of(filled) == before
