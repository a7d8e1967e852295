"""Every valid language preference is kept; each person gets the best edition there is,
and an issue's title and introduction can be given per language (issue 8, items 14, 18)."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.audience import audience_report
from newsletter.cli import cli
from newsletter.cli.demo import sample_items_text
from newsletter.ingest.text import parse_text
from newsletter.issues import IssueError, create_issue, get_issue
from newsletter.items import store_items
from newsletter.models import Delivery
from newsletter.settings import Settings
from subscribers.importer import import_csv
from subscribers.models import Subscriber
from tests.worker.conftest import runtime_with
from worker.delivery import send_issue
from worker.runtime import configure
from worker.transports import MemoryTransport

# a Haitian list: Kreyòl, French, Portuguese and Chinese readers beside Spanish and English
PEOPLE = """email,name,country,language
ana@example.org,Ana,CR,es-CR
jean@example.org,Jean,HT,fr-HT
marie@example.org,Marie,HT,ht
paul@example.org,Paul,HT,ht
rose@example.org,Rose,HT,HT
joao@example.org,João,BR,pt_BR
mei@example.org,Mei,,zh-Hant-TW
bob@example.org,Bob,BZ,en
"""


@pytest.fixture(autouse=True)
def _reset_runtime() -> object:
    yield
    configure(None)


@pytest.fixture
def haiti(sessions: sessionmaker[Session], settings: Settings) -> sessionmaker[Session]:
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        report = import_csv(session, PEOPLE, default_language=settings.default_language)
        assert report.added == 8, report
    return sessions


def message_to(memory: MemoryTransport, address: str) -> EmailMessage:
    [sent] = [e for e in memory.sent if e.recipient == address]
    return message_from_bytes(sent.message, policy=policy.default)  # type: ignore[return-value]


def parts(msg: EmailMessage) -> tuple[str, str, str]:
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return str(msg["Subject"]), html, text


def test_every_valid_preference_is_kept_and_served_its_best_edition(
    settings: Settings, haiti: sessionmaker[Session]
) -> None:
    assert settings.languages == ["en", "es", "fr"]  # fr has a catalog: on by default
    with haiti() as session:
        stored = dict(session.execute(select(Subscriber.email, Subscriber.language)).all())
    assert stored == {
        "ana@example.org": "es-CR", "jean@example.org": "fr-HT", "marie@example.org": "ht",
        "paul@example.org": "ht", "rose@example.org": "ht", "joao@example.org": "pt-BR",
        "mei@example.org": "zh-Hant-TW", "bob@example.org": "en",
    }
    with haiti() as session, session.begin():
        issue = create_issue(session, "2019-10", date(2019, 9, 1), date(2019, 10, 31))
        report = audience_report(session, issue, settings.languages, settings.default_language)
    assert report.recipients == 8
    assert report.editions == {"es": 1, "fr": 1, "en": 6}
    assert [str(f) for f in report.fallbacks] == [
        "3 subscribers prefer ht: they get en", "1 subscriber prefers pt-BR: they get en",
        "1 subscriber prefers zh-Hant-TW: they get en"]

    memory = MemoryTransport()
    runtime = runtime_with(settings, haiti, memory)
    configure(runtime)
    summary = send_issue(runtime, "2019-10")
    assert summary.counts["sent"] == 8
    assert len(memory.sent) == 8
    with haiti() as session:
        editions = dict(session.execute(
            select(Subscriber.email, Delivery.language)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)).all())
    assert editions == {
        "ana@example.org": "es", "jean@example.org": "fr", "marie@example.org": "en",
        "paul@example.org": "en", "rose@example.org": "en", "joao@example.org": "en",
        "mei@example.org": "en", "bob@example.org": "en",
    }
    subject, html, text = parts(message_to(memory, "jean@example.org"))
    assert 'lang="fr"' in html and "Se désabonner" in text
    subject, html, text = parts(message_to(memory, "ana@example.org"))
    assert 'lang="es"' in html
    assert subject == "Noticias del 1 de septiembre de 2019 al 31 de octubre de 2019"


def test_the_cli_reports_who_falls_back_at_create_and_at_send(
    runner: CliRunner, haiti: sessionmaker[Session]
) -> None:
    created = runner.invoke(cli, ["issues", "create", "2019-10", "--from", "2019-09-01",
                                  "--to", "2019-10-31"])
    assert created.exit_code == 0, created.output
    assert "audience: 8 subscribers (en 6, es 1, fr 1), every active subscriber" in created.output
    assert "3 subscribers prefer ht: they get en" in created.output
    sent = runner.invoke(cli, ["issues", "send", "2019-10"])
    assert sent.exit_code == 0, sent.output
    assert "3 subscribers prefer ht: they get en" in sent.output
    assert "8 new deliveries planned, 1 batch\n" in sent.output, sent.output
    added = runner.invoke(cli, ["subscribers", "add", "lin@example.org", "--language",
                                "zh-hant-tw"])
    assert added.exit_code == 0, added.output
    shown = runner.invoke(cli, ["subscribers", "show", "lin@example.org", "--json"])
    assert '"language": "zh-Hant-TW"' in shown.output
    refused = runner.invoke(cli, ["subscribers", "add", "x@example.org", "--language",
                                  "klingonese"])
    assert refused.exit_code == 1 and "BCP 47" in refused.output
    spanish = runner.invoke(cli, ["subscribers", "list", "--language", "es", "--json"])
    assert '"ana@example.org"' in spanish.output  # es finds es-CR


# --- item 14: titles and introductions per language -----------------------------------


def test_titles_and_introductions_per_language_reach_subject_html_and_text(
    settings: Settings, haiti: sessionmaker[Session]
) -> None:
    with haiti() as session, session.begin():
        create_issue(
            session, "2019-10", date(2019, 9, 1), date(2019, 10, 31), "Regional news",
            titles={"es": "Boletín de octubre", "en": "October bulletin"},
            intros={"es": "Hola <b>a todos</b> & bienvenidos.\n\nSegundo párrafo.",
                    "en": "Hello <script>everyone</script>."},
            languages=settings.languages,
        )
    memory = MemoryTransport()
    runtime = runtime_with(settings, haiti, memory)
    configure(runtime)
    assert send_issue(runtime, "2019-10").counts["sent"] == 8

    subject, html, text = parts(message_to(memory, "ana@example.org"))
    assert subject == "Boletín de octubre"
    assert "Hola &lt;b&gt;a todos&lt;/b&gt; &amp; bienvenidos." in html
    assert "<b>a todos</b>" not in html and "Segundo párrafo." in html
    assert "Hola <b>a todos</b> & bienvenidos.\r\n\r\nSegundo párrafo." in text
    assert html.index("bienvenidos") < html.index("Darién")  # at the top, before the items
    assert text.index("bienvenidos") < text.index("Darién")

    subject, html, text = parts(message_to(memory, "bob@example.org"))
    assert subject == "October bulletin"
    assert "Hello &lt;script&gt;everyone&lt;/script&gt;." in html and "<script>" not in html
    assert "Hello <script>everyone</script>." in text and "bienvenidos" not in text
    # French has no title of its own: the bare title; and no introduction
    subject, html, text = parts(message_to(memory, "jean@example.org"))
    assert subject == "Regional news" and "Hello" not in text and "Hola" not in text


def test_a_title_for_a_language_without_an_edition_is_refused(
    settings: Settings, haiti: sessionmaker[Session]
) -> None:
    with haiti() as session, pytest.raises(IssueError, match="no 'pt' edition"):
        create_issue(session, "2019-10", date(2019, 9, 1), date(2019, 10, 31),
                     titles={"pt": "Notícias"}, languages=settings.languages)


def test_the_cli_takes_titles_and_intro_files_per_language(
    runner: CliRunner, settings: Settings, haiti: sessionmaker[Session], tmp_path: object
) -> None:
    from pathlib import Path

    intro = Path(str(tmp_path)) / "intro-es.txt"
    intro.write_text("Bienvenidos al boletín.\n", encoding="utf-8")
    created = runner.invoke(cli, [
        "issues", "create", "2019-10", "--from", "2019-09-01", "--to", "2019-10-31",
        "--title", 'es=Boletín "octubre"', "--title", "en=October news",
        "--title", "News for everyone", "--intro-file", f"es={intro}",
        "--intro", "Welcome, all.",
    ])
    assert created.exit_code == 0, created.output
    with haiti() as session:
        issue = get_issue(session, "2019-10")
        assert issue.title == "News for everyone"
        assert issue.titles == {"es": 'Boletín "octubre"', "en": "October news"}
        assert issue.intros == {"es": "Bienvenidos al boletín.", "": "Welcome, all."}
    out = Path(str(tmp_path)) / "preview"
    preview = runner.invoke(cli, ["issues", "preview", "2019-10", "--out", str(out)])
    assert preview.exit_code == 0, preview.output
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "Issue 2019-10 preview" in index
    assert "Boletín &#34;octubre&#34;" in index or "Boletín &quot;octubre&quot;" in index
    assert "News for everyone" in index  # fr: the bare title
    assert "Bienvenidos al boletín." in (out / "es-regional.txt").read_text(encoding="utf-8")
    assert "Welcome, all." in (out / "fr-regional.txt").read_text(encoding="utf-8")
    wrong = runner.invoke(cli, ["issues", "create", "2019-11", "--from", "2019-09-01",
                                "--to", "2019-10-31", "--title", "pt=Notícias"])
    assert wrong.exit_code == 1 and "no 'pt' edition" in wrong.output
    missing = runner.invoke(cli, ["issues", "create", "2019-11", "--from", "2019-09-01",
                                  "--to", "2019-10-31", "--intro-file", "es=/nonexistent"])
    assert missing.exit_code == 2 and "/nonexistent" in missing.output



def test_a_language_given_twice_is_refused_not_silently_replaced(
    runner: CliRunner, settings: Settings, haiti: sessionmaker[Session], tmp_path: object
) -> None:
    from pathlib import Path

    intro = Path(str(tmp_path)) / "intro-es.txt"
    intro.write_text("Bienvenidos.\n", encoding="utf-8")
    window = ["--from", "2019-09-01", "--to", "2019-10-31"]
    for options, option, which in (
        (["--title", "es=Boletín", "--title", "ES=Otro"], "--title", "ES=..."),
        (["--intro", "es=Hola.", "--intro-file", f"es={intro}"], "--intro/--intro-file",
         "es=..."),
        (["--title", "News", "--title", "More news"], "--title", "a value for every"),
    ):
        result = runner.invoke(cli, ["issues", "create", "2019-10", *window, *options])
        assert result.exit_code == 2, (options, result.output)
        assert option in result.output and f"{which}" in result.output
        assert "is given twice" in result.output
    with haiti() as session, pytest.raises(IssueError):
        get_issue(session, "2019-10")


def test_editions_are_checked_when_the_settings_load() -> None:
    assert Settings(languages=["EN", "es_cr"]).languages == ["en", "es-CR"]
    with pytest.raises(ValueError, match="NEWSLETTER_LANGUAGES: 'klingonese'"):
        Settings(languages=["klingonese"])
    with pytest.raises(ValueError, match="NEWSLETTER_LANGUAGES: 'zh-Hant-TW'"):
        Settings(languages=["en", "zh-Hant-TW"])  # longer than a delivery's language column
