"""The private test servers really start, work, and stop (tests/servers.py)."""

from __future__ import annotations

import os
import smtplib
import socket
from email.message import EmailMessage
from pathlib import Path

import psycopg
import pytest
import redis
import sqlalchemy

from tests import servers
from tests.conftest_servers import start_or_fail
from tests.servers import (
    PostgresServer,
    ServerUnavailable,
    SmtpServer,
    start_postgres,
    start_redis,
)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- Redis


def test_redis_ping_set_get(redis_server: servers.RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.ping() is True
        client.set("greeting", "grüezi")
        assert client.get("greeting") == "grüezi".encode()
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}


def test_redis_restart_keeps_port_and_stop_terminates(tmp_path: Path) -> None:
    server = start_or_fail("redis-server", lambda: start_redis(tmp_path))
    try:
        port, url, first_pid = server.port, server.url, server.pid
        with redis.Redis.from_url(url) as client:
            client.set("k", "v1")

        server.restart()  # default: comes back empty, like a cache without persistence
        assert (server.port, server.url) == (port, url)
        assert server.pid != first_pid
        with redis.Redis.from_url(url) as client:
            assert client.ping() is True
            assert client.get("k") is None
            client.set("k", "v2")

        server.restart(keep_data=True)
        with redis.Redis.from_url(url) as client:
            assert client.get("k") == b"v2"
    finally:
        server.stop()
    assert server.pid is None
    assert not _port_open(port)
    server.stop()  # idempotent


def test_missing_redis_binary_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerUnavailable, match="redis-server not found.*apt-get install"):
        start_redis(tmp_path)


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_round_trip(postgres_server: PostgresServer) -> None:
    postgres_server.create_database("round_trip")
    try:
        url = postgres_server.url_for("round_trip")
        assert url == f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server.port}/round_trip"
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text("CREATE TABLE item (id serial PRIMARY KEY, t text)"))
                conn.execute(
                    sqlalchemy.text("INSERT INTO item (t) VALUES (:a), (:b)"),
                    {"a": "Zürich", "b": "日本語"},
                )
            with engine.connect() as conn:
                rows = conn.execute(sqlalchemy.text("SELECT t FROM item ORDER BY id"))
                assert rows.scalars().all() == ["Zürich", "日本語"]
                assert conn.execute(sqlalchemy.text("SHOW fsync")).scalar() == "off"
                encoding = conn.execute(sqlalchemy.text("SHOW server_encoding")).scalar()
                assert encoding == "UTF8"
        finally:
            engine.dispose()
    finally:
        postgres_server.drop_database("round_trip")
    with postgres_server.connect() as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
    assert "round_trip" not in names


def test_postgres_stop_removes_cluster(tmp_path: Path) -> None:
    server = start_or_fail("PostgreSQL", lambda: start_postgres(tmp_path))
    try:
        with psycopg.connect(server.conninfo()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        port, data_dir = server.port, server.data_dir
        assert data_dir.is_dir()
    finally:
        server.stop()
    assert not data_dir.exists()
    assert not _port_open(port)
    server.stop()  # idempotent


def test_missing_postgres_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(servers, "PG_LIB_GLOB", str(tmp_path / "nothing" / "*" / "bin"))
    with pytest.raises(ServerUnavailable, match="PostgreSQL not found.*apt-get install"):
        start_postgres(tmp_path)


def test_root_without_postgres_user_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(servers, "PG_SYSTEM_USER", "no-such-user-for-tests")
    with pytest.raises(ServerUnavailable, match="refuses to run as root"):
        servers._postgres_run_as()


# --------------------------------------------------------------------------- SMTP


def _message(to: str = "reader@example.org", subject: str = "Hello") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "news@example.org"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Grüße aus der Redaktion\n")
    return msg


def test_smtp_records_messages(smtp_server: SmtpServer) -> None:
    assert smtp_server.url == f"smtp://127.0.0.1:{smtp_server.port}"
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        refused = client.send_message(_message(subject="Neuigkeiten – März"))
        assert refused == {}
        # Internationalised address: needs SMTPUTF8, which the server advertises.
        client.send_message(_message(to="jörg@exämple.org"))
    first, second = smtp_server.wait_for_messages(2)
    assert first.mail_from == "news@example.org"
    assert first.rcpt_tos == ["reader@example.org"]
    assert first.message["Subject"] == "Neuigkeiten – März"
    assert "Grüße" in first.message.get_content()
    assert second.rcpt_tos == ["jörg@exämple.org"]
    assert "SMTPUTF8" in second.mail_options
    assert isinstance(second.content, bytes)

    smtp_server.clear()
    assert smtp_server.messages == []


def test_smtp_accepts_large_messages(smtp_server: SmtpServer) -> None:
    msg = _message()
    msg.set_content(("x" * 76 + "\n") * 100_000)  # ~7.7 MB, lines within RFC 5321 limits
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=30) as client:
        client.send_message(msg)
    [received] = smtp_server.wait_for_messages(1)
    assert len(received.content) > 7_000_000


def test_smtp_fail_next_data(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(2)
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError) as excinfo:
                client.send_message(_message())
            assert excinfo.value.smtp_code == 451
            assert excinfo.value.smtp_error == b"4.3.0 Try again later"
        assert smtp_server.messages == []
        client.send_message(_message())  # the third attempt goes through
    assert len(smtp_server.messages) == 1


def test_smtp_fail_next_rcpt(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(1, "421 4.7.0 Too many connections", stage="RCPT")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo:
            client.send_message(_message())
        assert excinfo.value.recipients == {
            "reader@example.org": (421, b"4.7.0 Too many connections")
        }
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.send_message(_message())
    assert len(smtp_server.messages) == 1


def test_smtp_reject_recipients(smtp_server: SmtpServer) -> None:
    smtp_server.reject_recipients({"gone@example.org"})
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo:
            client.send_message(_message(to="Gone@Example.org"))
        assert excinfo.value.recipients == {"Gone@Example.org": (550, b"5.1.1 No such user")}

        # Other recipients of the same transaction are unaffected; the rejection persists.
        refused = client.sendmail(
            "news@example.org",
            ["gone@example.org", "reader@example.org"],
            _message().as_bytes(),
        )
        assert refused == {"gone@example.org": (550, b"5.1.1 No such user")}
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["reader@example.org"]


def test_smtp_reply_validation(smtp_server: SmtpServer) -> None:
    with pytest.raises(ValueError):
        smtp_server.fail_next(1, "try again")
    with pytest.raises(ValueError):
        smtp_server.fail_next(1, stage="MAIL")  # type: ignore[arg-type]


def test_wait_for_messages_times_out(smtp_server: SmtpServer) -> None:
    with pytest.raises(AssertionError, match="expected 1 message"):
        smtp_server.wait_for_messages(1, timeout=0.1)


# --------------------------------------------------------------------------- plugin


def test_unavailable_server_fails_instead_of_skipping() -> None:
    def missing() -> None:
        raise ServerUnavailable(servers.REDIS_INSTALL_HINT)

    with pytest.raises(pytest.fail.Exception, match="redis-server not found"):
        start_or_fail("redis-server", missing)


def test_postgres_uses_the_memory_dir_only_with_room_to_spare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's /dev/shm is often 64 MB: too small for the cluster, so /tmp it is."""
    monkeypatch.setattr(servers, "MEMORY_DIR", tmp_path)
    monkeypatch.setattr(servers, "MEMORY_DIR_FREE", 1 << 60)
    assert servers._memory_dir(servers._RunAs(None)) is None
    monkeypatch.setattr(servers, "MEMORY_DIR_FREE", 0)
    assert servers._memory_dir(servers._RunAs(None)) == tmp_path
