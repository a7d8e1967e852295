"""A person's corrections survive re-imports; `items edit`, `items delete`; translations
lose a leading dateline. Through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.models import Issue, IssueVariant, Item

NEWS = """10 October, 2019

Drought in Guanacaste

Liberia. Farmers in the north report the driest month in forty years.

Wells are running low.

11 October, 2019

New bridge opens

Managua. A new bridge links the two banks of the river.
"""


def run(runner: CliRunner, *args: str, code: int = 0, stdin: str | None = None) -> str:
    result = runner.invoke(cli, list(args), input=stdin)
    assert result.exit_code == code, result.output
    return result.output


def listed(runner: CliRunner) -> dict[str, dict[str, Any]]:
    rows = json.loads(run(runner, "items", "list", "--json"))
    return {row["published"]: row for row in rows}


def ids(runner: CliRunner) -> dict[str, int]:
    return {day: row["id"] for day, row in listed(runner).items()}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_reimporting_an_unchanged_file_keeps_tags_translations_and_edits(
    runner: CliRunner, tmp_path: Path
) -> None:
    news = write(tmp_path / "news.txt", NEWS)
    assert "2 added" in run(runner, "items", "import", str(news), "--language", "en")
    first, second = ids(runner)["2019-10-10"], ids(runner)["2019-10-11"]
    run(runner, "items", "tag", str(first), "--country", "CR,NI")
    es = write(tmp_path / "es.txt", "Sequía en el norte.\n")
    run(runner, "items", "translate", str(first), "--language", "es", "--title", "Sequía",
        "--body-file", str(es))
    run(runner, "items", "edit", str(second), "--title", "New bridge opens in Managua",
        "--body-file", "-", stdin="A new bridge links both banks.\n\nIt took four years.\n")

    again = run(runner, "items", "import", str(news), "--language", "en")
    assert "0 added, 0 updated, 2 already there" in again

    rows = listed(runner)
    assert rows["2019-10-10"]["countries"] == ["CR", "NI"]
    assert rows["2019-10-10"]["translations"] == ["es"]
    assert rows["2019-10-11"]["title"] == "New bridge opens in Managua"
    assert rows["2019-10-11"]["paragraphs"] == ["A new bridge links both banks.",
                                                "It took four years."]


def test_a_changed_file_updates_only_the_fields_nobody_edited(
    runner: CliRunner, tmp_path: Path
) -> None:
    news = write(tmp_path / "news.txt", NEWS)
    run(runner, "items", "import", str(news), "--language", "en")
    first = ids(runner)["2019-10-10"]
    run(runner, "items", "edit", str(first), "--place", "Liberia, Guanacaste")
    changed = NEWS.replace("Wells are running low.", "Wells are running dry.").replace(
        "Liberia. Farmers", "Nicoya. Farmers")
    write(news, changed)
    output = run(runner, "items", "import", str(news), "--language", "en")
    assert "0 added, 1 updated, 1 already there" in output
    assert "1 kept a person's edits" in output
    row = listed(runner)["2019-10-10"]
    assert row["place"] == "Liberia, Guanacaste"
    assert row["paragraphs"][1] == "Wells are running dry."


def test_a_title_fixed_in_the_file_updates_the_same_item(
    runner: CliRunner, tmp_path: Path
) -> None:
    news = write(tmp_path / "news.txt", NEWS)
    run(runner, "items", "import", str(news), "--language", "en")
    before = ids(runner)
    write(news, NEWS.replace("Drought in Guanacaste", "Drought hits Guanacaste"))
    output = run(runner, "items", "import", str(news), "--language", "en")
    assert "0 added, 1 updated, 1 already there" in output
    assert "1 found again by date and first paragraph" in output
    rows = listed(runner)
    assert len(rows) == 2 and ids(runner) == before
    assert rows["2019-10-10"]["title"] == "Drought hits Guanacaste"
    # and the old title, should an old copy of the file come back, finds it again too
    write(news, NEWS)
    assert "0 added, 1 updated" in run(runner, "items", "import", str(news), "--language", "en")
    assert len(listed(runner)) == 2


def test_edit_checks_its_values(runner: CliRunner, tmp_path: Path) -> None:
    run(runner, "items", "import", str(write(tmp_path / "n.txt", NEWS)), "--language", "en")
    first = ids(runner)["2019-10-10"]
    assert "say what to change" in run(runner, "items", "edit", str(first), code=2)
    assert "is not a date" in run(runner, "items", "edit", str(first), "--date", "soon", code=1)
    assert "http(s)" in run(runner, "items", "edit", str(first), "--url", "ftp://x", code=1)
    bad = run(runner, "items", "edit", str(first), "--title", "Bad\x07bell", code=1)
    assert "the title holds a control character" in bad and "U+0007" in bad
    assert "no item with id 999" in run(runner, "items", "edit", "999", "--title", "X", code=1)
    output = run(runner, "items", "edit", str(first), "--date", "2019-10-12", "--url",
                 "https://example.org/d", "--language", "es")
    assert "changed published, url, language" in output
    row = listed(runner)["2019-10-12"]
    assert row["language"] == "es"
    # a body that starts with a dateline gives the place, as in an item file
    run(runner, "items", "edit", str(first), "--body-file", "-", stdin="Cañas. Lluvia.\n")
    row = listed(runner)["2019-10-12"]
    assert (row["place"], row["paragraphs"]) == ("Cañas", ["Lluvia."])


def test_translation_body_loses_its_leading_dateline(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """The email printed "San José. San José. ..." before."""
    text = "10 October, 2019\n\nStudy\n\nSan José. The study says so.\n"
    run(runner, "items", "import", str(write(tmp_path / "n.txt", text)), "--language", "en")
    (item_id,) = ids(runner).values()
    body = write(tmp_path / "es.txt", "San José. El estudio lo dice.\n\nSegundo párrafo.\n")
    run(runner, "items", "translate", str(item_id), "--language", "es", "--title", "Estudio",
        "--body-file", str(body))
    body = write(tmp_path / "es2.txt", "Ciudad de Panamá – Otro estudio.\n")
    with sessions() as session:
        translation = session.get(Item, item_id).translations["es"]  # type: ignore[union-attr]
        assert translation.place == "San José"
        assert translation.paragraphs == ["El estudio lo dice.", "Segundo párrafo."]
    run(runner, "items", "translate", str(item_id), "--language", "fr", "--title", "Étude",
        "--body-file", str(body), "--place", "Panamá")
    with sessions() as session:
        translation = session.get(Item, item_id).translations["fr"]  # type: ignore[union-attr]
        assert (translation.place, translation.paragraphs) == ("Panamá", ["Otro estudio."])


def test_delete_takes_an_item_out_of_a_draft_but_never_out_of_a_sent_issue(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    run(runner, "items", "import", str(write(tmp_path / "n.txt", NEWS)), "--language", "en")
    first, second = ids(runner)["2019-10-10"], ids(runner)["2019-10-11"]
    run(runner, "subscribers", "add", "ana@example.org", "--country", "CR", "--language", "en")
    run(runner, "issues", "create", "sent-one", "--from", "2019-10-11", "--to", "2019-10-11")
    run(runner, "issues", "send", "sent-one")
    with sessions() as session:
        assert session.scalar(select(Issue.status).where(Issue.slug == "sent-one")) == "sent"
        sent_html = {v.id: v.html for v in session.scalars(select(IssueVariant))}
    assert any("New bridge opens" in html for html in sent_html.values())
    run(runner, "issues", "create", "draft-one", "--from", "2019-10-01", "--to", "2019-10-31")

    refused = run(runner, "items", "delete", str(second), "--yes", code=1)
    assert f"item {second} is in issue sent-one (sent)" in refused
    assert f"newsletter items edit {second}" in refused
    assert len(listed(runner)) == 2

    # an edit does not change what was sent, nor its web copy (the stored variants)
    run(runner, "items", "edit", str(second), "--title", "A corrected title")
    with sessions() as session:
        assert {v.id: v.html for v in session.scalars(select(IssueVariant))} == sent_html

    assert "Aborted" in run(runner, "items", "delete", str(first), code=1, stdin="n\n")
    output = run(runner, "items", "delete", str(first), "--yes")
    assert f"item {first} deleted: 'Drought in Guanacaste'" in output
    assert "taken out of draft issue(s): draft-one" in output
    assert list(listed(runner)) == ["2019-10-11"]
    # a deleted item stays deleted: importing its file again does not bring it back
    again = run(runner, "items", "import", str(tmp_path / "n.txt"), "--language", "en")
    assert "0 added" in again and "1 deleted earlier with `items delete`, not brought back" \
        in again
    assert list(listed(runner)) == ["2019-10-11"]
    preview = run(runner, "issues", "preview", "draft-one", "--out", str(tmp_path / "p"))
    assert "A corrected title" in (tmp_path / "p" / "en-regional.html").read_text()
    assert "error" not in preview.lower()


def test_items_stored_before_the_upgrade_keep_what_differs_from_their_file(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """No source hash recorded: what differs from the file counts as a person's edit."""
    news = write(tmp_path / "news.txt", NEWS)
    run(runner, "items", "import", str(news), "--language", "en")
    with sessions() as session, session.begin():
        session.execute(update(Item).values(source_hash=None, fingerprint=None, edited=""))
        session.execute(update(Item).where(Item.title == "New bridge opens")
                        .values(countries="NI,CR"))
    assert "0 added, 0 updated, 2 already there" in run(
        runner, "items", "import", str(news), "--language", "en")
    assert listed(runner)["2019-10-11"]["countries"] == ["NI", "CR"]
    write(news, NEWS.replace("A new bridge", "The new bridge"))
    assert "0 added, 1 updated" in run(runner, "items", "import", str(news), "--language", "en")
    row = listed(runner)["2019-10-11"]
    assert row["countries"] == ["NI", "CR"] and row["paragraphs"][0].startswith("The new")


def test_an_item_rewritten_in_the_file_is_new_but_its_lookalike_is_named(
    runner: CliRunner, tmp_path: Path
) -> None:
    news = write(tmp_path / "news.txt", NEWS)
    run(runner, "items", "import", str(news), "--language", "en")
    old = ids(runner)["2019-10-10"]
    write(news, NEWS.replace("Drought in Guanacaste", "Dry season").replace(
        "Farmers in the north report", "Northern farmers report"))
    output = run(runner, "items", "import", str(news), "--language", "en")
    assert "1 added, 0 updated, 1 already there" in output
    assert f"new items share their date and place with item(s) {old}" in output
    assert "newsletter items delete" in output


def test_edit_refuses_the_language_of_one_of_the_items_translations(
    runner: CliRunner, tmp_path: Path
) -> None:
    """The item would be in es with an es translation that no reader ever gets."""
    run(runner, "items", "import", str(write(tmp_path / "n.txt", NEWS)), "--language", "en")
    first = ids(runner)["2019-10-10"]
    run(runner, "items", "translate", str(first), "--language", "es", "--title", "Sequía",
        "--body-file", "-", stdin="Sequía en el norte.\n")
    refused = run(runner, "items", "edit", str(first), "--language", "es", code=1)
    assert f"item {first} has a translation in es" in refused
    assert listed(runner)["2019-10-10"]["language"] == "en"
    assert "changed language" in run(runner, "items", "edit", str(first), "--language", "fr")
