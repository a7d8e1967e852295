"""A database holding the sample items, a handful of subscribers and one draft issue."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli.demo import sample_items_text
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue
from newsletter.items import store_items
from newsletter.settings import Settings
from subscribers.importer import import_csv
from worker.runtime import Runtime
from worker.transports import MemoryTransport, Transport

PEOPLE = """email,name,country,language
ana@example.org,Ana Rodríguez,CR,es
bob@example.org,Bob Young,BZ,en
carla@example.org,Carla Núñez,SV,es-SV
dan@example.org,Dan Pierre,,en
eva@example.org,Eva Morales,MX,es
"""
SLUG = "2019-10"


@pytest.fixture
def issue_slug(sessions: sessionmaker[Session], settings: Settings) -> str:
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        import_csv(session, PEOPLE, default_language=settings.default_language)
        create_issue(session, SLUG, date(2019, 9, 1), date(2019, 10, 31))
    return SLUG


@pytest.fixture
def memory() -> MemoryTransport:
    return MemoryTransport()


def runtime_with(settings: Settings, sessions: sessionmaker[Session],
                 transport: Transport) -> Runtime:
    return Runtime(settings, sessions, transport)
