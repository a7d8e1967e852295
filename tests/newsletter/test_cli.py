"""The `newsletter` command, driven through Click's runner on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.models import Issue, Item
from newsletter.settings import Settings
from subscribers.models import Subscriber


def all_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        assert sub is not None
        if isinstance(sub, click.Group):
            found += all_commands(sub, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p) or "newsletter")
def test_every_command_explains_itself_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: newsletter {' '.join(path)}".strip() in result.output
    assert "Example" in result.output, f"`newsletter {' '.join(path)} --help` has no example"


@pytest.mark.empty_database  # also the first use of a new database
def test_demo_fills_the_outbox_with_one_parseable_message_per_subscriber(
    runner: CliRunner, settings: Settings, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    result = runner.invoke(cli, ["demo", "--outbox", str(outbox)])
    assert result.exit_code == 0, result.output
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 33
    recipients = set()
    for path in files:
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert all(p["Content-Transfer-Encoding"] == "quoted-printable"
                   for p in msg.iter_parts())
        for header in ("Message-ID", "Date", "Subject", "From", "To", "List-Unsubscribe",
                       "List-Unsubscribe-Post"):
            assert len(msg.get_all(header) or []) == 1, f"{path.name}: {header}"
        recipients.add(msg["To"].addresses[0].addr_spec)
    assert len(recipients) == 33
    index = settings.var_dir / "preview" / "demo-2019-10" / "index.html"
    assert index.exists() and f"preview: {index}" in result.output
    assert f"outbox: {outbox} (33 messages" in result.output

    again = runner.invoke(cli, ["demo", "--outbox", str(outbox)])
    assert again.exit_code == 0, again.output
    assert "0 added, 10 already there" in again.output
    assert len(list(outbox.glob("*.eml"))) == 33
    status = runner.invoke(cli, ["issues", "status", "demo-2019-10", "--json"])
    assert json.loads(status.output)["sent"] == 33


MALFORMED = """10 October, 2019

A good first item

Tegucigalpa. It has a paragraph.

32 October, 2019

A second item with an impossible date

Text.
"""


def test_a_malformed_item_file_names_the_line_and_imports_nothing(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    good = tmp_path / "good.txt"
    good.write_text("1 October, 2019\n\nFine\n\nA paragraph.\n", encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_text(MALFORMED, encoding="utf-8")
    result = runner.invoke(cli, ["items", "import", str(good), str(bad)])
    assert result.exit_code == 1
    assert f"{bad}, line 7" in result.output and "32 October, 2019" in result.output
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Item)) == 0

    ok = runner.invoke(cli, ["items", "import", str(good)])
    assert ok.exit_code == 0 and "1 added" in ok.output
    again = runner.invoke(cli, ["items", "import", str(good)])
    assert "0 added, 0 updated, 1 already there" in again.output
    listed = json.loads(runner.invoke(cli, ["items", "list", "--json"]).output)
    assert [i["title"] for i in listed] == ["Fine"]


def test_hostile_subscriber_rows_are_reported_and_skipped(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    csv_path = tmp_path / "people.csv"
    csv_path.write_bytes(
        "\ufeffemail,name,country,language\r\n"
        "ana@EXAMPLE.org,Ana,CR,es\r\n"
        "not-an-address,Nobody,CR,es\r\n"
        "\"eve@example.org\",\"Eve\r\nBcc: x@example.com\",SV,es-SV\r\n"
        "zed@example.org,Zed,Atlantis,en\r\n".encode()
    )
    errors = tmp_path / "errors.csv"
    result = runner.invoke(cli, ["subscribers", "import", str(csv_path), "--errors", str(errors)])
    assert result.exit_code == 2
    assert "3 added" in result.output and "1 rejected" in result.output
    assert "row 3: email 'not-an-address'" in result.output
    assert "row 6: country 'Atlantis'" in result.output  # a warning: zed is kept
    assert "1 warning (" in result.output
    assert errors.read_text().splitlines()[0] == "row,field,value,reason,level"
    with sessions() as session:
        people = {s.email: s for s in session.scalars(select(Subscriber))}
    assert set(people) == {"ana@example.org", "eve@example.org", "zed@example.org"}
    assert people["zed@example.org"].country is None
    assert people["eve@example.org"].name == "Eve Bcc: x@example.com"
    assert people["eve@example.org"].language == "es-SV"  # kept as given (issue 8, item 18)


def test_issue_title_with_a_header_injection_is_refused(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    (tmp_path / "i.txt").write_text("1 October, 2019\n\nFine\n\nA paragraph.\n")
    runner.invoke(cli, ["items", "import", str(tmp_path / "i.txt")])
    result = runner.invoke(cli, ["issues", "create", "2019-10", "--from", "2019-10-01",
                                 "--to", "2019-10-31", "--title", "=?utf-8?q?Hi?=\r\nBcc: x@y"])
    assert result.exit_code == 1 and "'=?'" in result.output
    empty = runner.invoke(cli, ["issues", "create", "2019-11", "--from", "2019-11-01",
                                "--to", "2019-11-30"])
    assert empty.exit_code == 1 and "no items were published" in empty.output
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 0
    ok = runner.invoke(cli, ["issues", "create", "2019-10", "--from", "2019-10-01",
                             "--to", "2019-10-31", "--title", "Line\r\nbreak"])
    assert ok.exit_code == 0, ok.output
    with sessions() as session:
        assert session.scalar(select(Issue.title)) == "Line break"


def test_preview_writes_every_variant_and_an_index(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(cli, ["demo", "--outbox", str(tmp_path / "o")]).exit_code == 0
    out = tmp_path / "preview"
    result = runner.invoke(cli, ["issues", "preview", "demo-2019-10", "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    labels = {Path(v["html"]).stem for v in data["variants"]}
    assert {"en-regional", "es-regional", "es-CR", "en-BZ"} <= labels
    index = (out / "index.html").read_text()
    for label in labels:
        assert f'href="{label}.html"' in index and (out / f"{label}.txt").exists()


def test_smtp_sending_refuses_the_development_secret(
    runner: CliRunner, cli_env: dict[str, str]
) -> None:
    env: dict[str, str | None] = {**cli_env, "NEWSLETTER_SMTP_URL": "smtp://127.0.0.1:9",
                                  "NEWSLETTER_SECRET_KEY": None}  # None: unset
    result = CliRunner(env=env).invoke(cli, ["issues", "send", "2019-10"])
    assert result.exit_code == 1 and "NEWSLETTER_SECRET_KEY" in result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a browser test: once is enough
def test_preview_screenshots_at_phone_and_desktop_width(
    runner: CliRunner, tmp_path: Path
) -> None:
    assert runner.invoke(cli, ["demo", "--outbox", str(tmp_path / "o")]).exit_code == 0
    out = tmp_path / "shots"
    result = runner.invoke(cli, ["issues", "preview", "demo-2019-10", "--out", str(out),
                                 "--screenshot", "--json"])
    assert result.exit_code == 0, result.output
    for variant in json.loads(result.output)["variants"]:
        stem = Path(variant["html"]).stem
        assert [Path(p).name for p in variant["screenshots"]] == [f"{stem}-375.png",
                                                                   f"{stem}-600.png"]
        assert all(Path(p).stat().st_size > 1000 for p in variant["screenshots"])
    assert 'src="es-CR-375.png"' in (out / "index.html").read_text()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_preview_screenshot_without_chromium_says_how_to_install_it(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter import screenshots

    assert runner.invoke(cli, ["demo", "--outbox", str(tmp_path / "o")]).exit_code == 0
    monkeypatch.delenv("NEWSLETTER_CHROMIUM", raising=False)
    monkeypatch.setattr(screenshots, "DEFAULT_PATHS", ())
    monkeypatch.setattr(screenshots, "PATH_NAMES", ())
    result = runner.invoke(cli, ["issues", "preview", "demo-2019-10", "--screenshot"])
    assert result.exit_code == 1 and "sudo apt-get install -y chromium" in result.output
