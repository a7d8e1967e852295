"""Private, throwaway Redis / PostgreSQL / SMTP servers for the test suite.

Every helper starts its own server on a free loopback port with its data in a
temporary directory, so tests never read or write the machine's own services.

    redis = start_redis(tmp_path)          # redis-server, no persistence
    pg = start_postgres(tmp_path)          # initdb + postgres, fsync off
    smtp = start_smtp()                    # aiosmtpd, records every message

All of them raise :class:`ServerUnavailable` (with an install hint) when the
software is missing, and all have an idempotent ``stop()``; anything still
running when the interpreter exits is stopped by an ``atexit`` hook.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is
created in a fresh directory under /tmp owned by the ``postgres`` system user,
and ``initdb`` / ``postgres`` are started as that user. Where /dev/shm (memory) is
usable, the cluster lives there instead: the suite creates and drops a database per
test, and on a disk each CREATE DATABASE took ~0.3 s instead of ~0.04 s.
"""

from __future__ import annotations

import atexit
import contextlib
import email
import email.message
import email.policy
import glob
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

log = logging.getLogger("tests.servers")

LOOPBACK = "127.0.0.1"

REDIS_INSTALL_HINT = (
    "redis-server not found: install it with `sudo apt-get install -y redis-server` (Debian/Ubuntu)"
)
POSTGRES_INSTALL_HINT = "PostgreSQL not found: install it with `sudo apt-get install -y postgresql`"

# Where Debian/Ubuntu put the server binaries of each installed major version.
# A module attribute so tests can point it elsewhere.
PG_LIB_GLOB = "/usr/lib/postgresql/*/bin"
# The system account PostgreSQL runs as when the tests run as root.
PG_SYSTEM_USER = "postgres"
MEMORY_DIR = Path("/dev/shm")  # tmpfs on Linux: the PostgreSQL cluster's files stay in memory
MEMORY_DIR_FREE = 1 << 30  # the cluster, a database per test and the WAL (max_wal_size) fit


class ServerUnavailable(RuntimeError):
    """The server software is missing or could not be started."""


# --------------------------------------------------------------------------- common helpers


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_LIVE: set[_Stoppable] = set()
_LIVE_LOCK = threading.Lock()


def _register(server: _Stoppable) -> None:
    with _LIVE_LOCK:
        _LIVE.add(server)


def _unregister(server: _Stoppable) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(server)


@atexit.register
def _stop_leftovers() -> None:
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for server in leftovers:
        with contextlib.suppress(Exception):
            server.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _terminate(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Send `sig`, wait up to `timeout` seconds, then SIGKILL and reap."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("pid %d ignored signal %d for %.0fs: killing it", proc.pid, sig, timeout)
        proc.kill()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- Redis


class RedisServer:
    """A private ``redis-server`` without persistence. Create with :func:`start_redis`."""

    def __init__(self, binary: str, tmpdir: Path, port: int) -> None:
        self.binary = binary
        self.tmpdir = tmpdir
        self.port = port
        self.host = LOOPBACK
        self.logfile = tmpdir / f"redis-{port}.log"
        self.start_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} pid={self.pid}>"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server on ``self.port`` and wait until it answers PING."""
        import redis

        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError(f"{self!r} is already running")
        began = time.monotonic()
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.tmpdir),
            "--dbfilename", self.dump_file.name,
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str(self.logfile),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.tmpdir,
        )
        _register(self)
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(
            host=self.host,
            port=self.port,
            socket_connect_timeout=0.5,
            socket_timeout=1,
            retry=Retry(NoBackoff(), 0),  # this loop retries; a stuck probe must not
        )
        try:
            while True:
                if self._proc.poll() is not None:
                    code = self._proc.returncode
                    self._proc = None
                    raise ServerUnavailable(
                        f"redis-server exited with status {code} while starting on port "
                        f"{self.port}; log {self.logfile}:\n{_tail(self.logfile)}"
                    )
                try:
                    # Answering is not enough: make sure it is OUR process on that port.
                    if client.ping() and client.info("server")["process_id"] == self._proc.pid:
                        break
                except redis.RedisError:
                    pass
                if time.monotonic() - began > timeout:
                    self.stop()
                    raise ServerUnavailable(
                        f"redis-server did not answer PING on port {self.port} within "
                        f"{timeout:.0f}s; log {self.logfile}:\n{_tail(self.logfile)}"
                    )
                time.sleep(0.02)
        finally:
            client.close()
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """SIGTERM the server and wait for it to exit (no data is saved)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc, signal.SIGTERM, timeout=10)
        _unregister(self)

    @property
    def dump_file(self) -> Path:
        return self.tmpdir / f"dump-{self.port}.rdb"

    def restart(self, keep_data: bool = False) -> None:
        """Stop the server and start it again on the same port (same URL).

        By default the new server is empty, like a crashed cache without persistence.
        With ``keep_data=True`` the dataset is SAVEd first and reloaded on start."""
        if keep_data and self._proc is not None:
            import redis

            with redis.Redis(host=self.host, port=self.port) as client:
                client.save()
        self.stop()
        if not keep_data:
            self.dump_file.unlink(missing_ok=True)
        self.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_redis(tmpdir: Path, *, attempts: int = 3) -> RedisServer:
    """Start a private redis-server on a free 127.0.0.1 port, data/logs under `tmpdir`."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable(REDIS_INSTALL_HINT)
    tmpdir = Path(tmpdir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    error: ServerUnavailable | None = None
    for _ in range(attempts):  # retry if another process grabbed the port meanwhile
        server = RedisServer(binary, tmpdir, free_port())
        try:
            server.start()
        except ServerUnavailable as exc:
            error = exc
            continue
        log.debug(
            "started private redis-server on %s:%d in %.2fs (pid %s, log %s)",
            server.host,
            server.port,
            server.start_seconds,
            server.pid,
            server.logfile,
        )
        return server
    assert error is not None
    raise error


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bindir_ok(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres"))


def _pg_version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_postgres_bindir() -> Path:
    """Directory holding ``initdb`` and ``postgres``: pg_config, Debian layout, then PATH."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        # pg_config may come from libpq-dev alone, pointing at a dir without the server.
        if out and _pg_bindir_ok(Path(out)):
            return Path(out)
    for candidate in sorted(glob.glob(PG_LIB_GLOB), key=_pg_version_key, reverse=True):
        if _pg_bindir_ok(Path(candidate)):
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb is not None:
        bindir = Path(initdb).resolve().parent
        if _pg_bindir_ok(bindir):
            return bindir
    raise ServerUnavailable(POSTGRES_INSTALL_HINT)


def _traversable_by_others(path: Path) -> bool:
    """Can a different, unprivileged user reach `path` (o+x on it and all its parents)?"""
    path = path.resolve()
    for part in (path, *path.parents):
        try:
            if not part.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


@dataclass
class _RunAs:
    """Who runs initdb/postgres: ``None`` means the current user."""

    user: pwd.struct_passwd | None

    def popen_kwargs(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env.pop("LANG", None)
        if self.user is not None:
            env.update(HOME=self.user.pw_dir, USER=self.user.pw_name, LOGNAME=self.user.pw_name)
        return env


class PostgresServer:
    """A private PostgreSQL cluster. Create with :func:`start_postgres`."""

    user = "postgres"

    def __init__(
        self,
        bindir: Path,
        base_dir: Path,
        owns_base_dir: bool,
        run_as: _RunAs,
    ) -> None:
        self.bindir = bindir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir
        self.logfile = base_dir / "postgres.log"
        self.host = LOOPBACK
        self.port = 0
        self.initdb_seconds = 0.0
        self.start_seconds = 0.0
        self._owns_base_dir = owns_base_dir
        self._run_as = run_as
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc is not None else None
        return f"<PostgresServer {self.host}:{self.port} data={self.data_dir} pid={pid}>"

    # -- connection details
    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) for database `dbname`."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string, e.g. for ``psycopg.connect``."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def connect(self, dbname: str = "postgres", autocommit: bool = True) -> Any:
        """A new ``psycopg.Connection`` (the caller closes it)."""
        import psycopg

        return psycopg.connect(self.conninfo(dbname), autocommit=autocommit, connect_timeout=5)

    def create_database(self, name: str, template: str | None = None) -> None:
        """Create `name`, empty or as a copy of database `template` (which nobody may be
        connected to meanwhile: PostgreSQL refuses to copy a database in use)."""
        from psycopg import sql

        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self.connect() as conn:
            conn.execute(statement)

    def drop_database(self, name: str) -> None:
        """Drop `name` if it exists, disconnecting any sessions still using it."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- lifecycle
    def _run(self, argv: list[str], what: str, timeout: float) -> None:
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=self.base_dir,
                env=self._run_as.env(),
                **self._run_as.popen_kwargs(),
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerUnavailable(f"{what} took more than {timeout:.0f}s") from exc
        if result.returncode != 0:
            raise ServerUnavailable(
                f"{what} failed with status {result.returncode}:\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )

    def initdb(self) -> None:
        began = time.monotonic()
        self._run(
            [
                str(self.bindir / "initdb"),
                "--pgdata", str(self.data_dir),
                "--username", self.user,
                "--auth", "trust",
                "--encoding", "UTF8",
                "--locale", "C",
                "--no-sync",
            ],
            "initdb",
            timeout=120,
        )  # fmt: skip
        self.initdb_seconds = time.monotonic() - began

    def start(self, port: int, timeout: float = 30.0) -> None:
        """Start the postmaster on `port`; wait until it accepts connections."""
        import psycopg

        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError(f"{self!r} is already running")
        self.port = port
        began = time.monotonic()
        argv = [
            str(self.bindir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(port),
            "-c", f"listen_addresses={self.host}",
            "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_wal_size=256MB",  # a bound on the WAL kept (in memory on /dev/shm)
            "-c", "max_connections=200",
        ]  # fmt: skip
        with open(self.logfile, "ab") as logfile:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=self._run_as.env(),
                **self._run_as.popen_kwargs(),
            )
        _register(self)
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise ServerUnavailable(
                    f"postgres exited with status {code} while starting on port {port}; "
                    f"log {self.logfile}:\n{_tail(self.logfile)}"
                )
            try:
                with psycopg.connect(self.conninfo(), connect_timeout=2) as conn:
                    # Make sure it is OUR cluster answering on that port.
                    row = conn.execute("SHOW data_directory").fetchone()
                    if row is not None and Path(row[0]).resolve() == self.data_dir.resolve():
                        break
            except psycopg.Error:
                pass
            if time.monotonic() - began > timeout:
                self._stop_process()
                raise ServerUnavailable(
                    f"postgres did not accept connections on port {port} within "
                    f"{timeout:.0f}s; log {self.logfile}:\n{_tail(self.logfile)}"
                )
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - began

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            # SIGINT = "fast" shutdown: abort open transactions, disconnect clients.
            _terminate(proc, signal.SIGINT, timeout=30)

    def stop(self) -> None:
        """Fast shutdown, wait for the postmaster, delete the cluster's files."""
        self._stop_process()
        if self._owns_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        _unregister(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _postgres_run_as() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs(None)
    try:
        return _RunAs(pwd.getpwnam(PG_SYSTEM_USER))
    except KeyError:
        raise ServerUnavailable(
            "PostgreSQL refuses to run as root and there is no "
            f"'{PG_SYSTEM_USER}' system user to run it as: run the tests as a normal user, "
            "or create the user (installing the `postgresql` package does this)"
        ) from None


def _memory_dir(run_as: _RunAs) -> Path | None:
    """/dev/shm if the cluster can live there (writable, MEMORY_DIR_FREE bytes free: a
    container's is often 64 MB; reachable by the postgres user when it runs as that
    user), else None."""
    if not MEMORY_DIR.is_dir() or not os.access(MEMORY_DIR, os.W_OK | os.X_OK):
        return None
    found = os.statvfs(MEMORY_DIR)
    if found.f_bavail * found.f_frsize < MEMORY_DIR_FREE:
        return None
    if run_as.user is not None and not _traversable_by_others(MEMORY_DIR):
        return None
    return MEMORY_DIR


def _postgres_base_dir(tmpdir: Path, run_as: _RunAs) -> tuple[Path, bool]:
    """The directory holding data/, the socket and the log; and whether we created it.

    Where /dev/shm is usable, a fresh /dev/shm/newsletter-pg-XXXX (deleted by stop()).
    Otherwise, as a normal user that is `tmpdir`/postgres. As root the cluster must
    belong to the postgres user, who cannot enter pytest's 0700 /tmp/pytest-of-root,
    so a fresh /tmp/newsletter-pg-XXXX owned by that user is used (deleted by stop()).
    Unix socket paths are limited to ~107 bytes, so a long `tmpdir` also falls
    back to a short mkdtemp directory.
    """
    memory = _memory_dir(run_as)
    long_path = len(str(tmpdir / "postgres" / ".s.PGSQL.65535.lock")) > 100
    if memory is None and run_as.user is None and not long_path:
        base = tmpdir / "postgres"
        base.mkdir(parents=True, exist_ok=True)
        return base, False
    parent = memory or Path(tempfile.gettempdir())
    if run_as.user is not None and not _traversable_by_others(parent):
        parent = Path("/tmp")
    base = Path(tempfile.mkdtemp(prefix="newsletter-pg-", dir=parent))
    base.chmod(0o755)
    if run_as.user is not None:
        os.chown(base, run_as.user.pw_uid, run_as.user.pw_gid)
        if not _traversable_by_others(parent):
            shutil.rmtree(base, ignore_errors=True)
            raise ServerUnavailable(
                f"the '{PG_SYSTEM_USER}' user cannot reach {parent}: make it world-searchable "
                "(chmod o+x) or set TMPDIR to a directory that is"
            )
    return base, True


def start_postgres(tmpdir: Path, *, attempts: int = 3) -> PostgresServer:
    """initdb a throwaway cluster and start it on a free 127.0.0.1 port."""
    bindir = find_postgres_bindir()
    run_as = _postgres_run_as()
    tmpdir = Path(tmpdir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    base_dir, owns_base_dir = _postgres_base_dir(tmpdir, run_as)
    server = PostgresServer(bindir, base_dir, owns_base_dir, run_as)
    try:
        server.initdb()
        error: ServerUnavailable | None = None
        for _ in range(attempts):  # retry if another process grabbed the port meanwhile
            try:
                server.start(free_port())
            except ServerUnavailable as exc:
                error = exc
                continue
            break
        else:
            assert error is not None
            raise error
    except BaseException:
        server.stop()
        raise
    who = run_as.user.pw_name if run_as.user is not None else "current user"
    log.debug(
        "started private postgres on %s:%d (initdb %.2fs + start %.2fs, as %s, data %s)",
        server.host, server.port, server.initdb_seconds, server.start_seconds, who,
        server.data_dir,
    )  # fmt: skip
    return server


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMessage:
    """One message accepted by :class:`SmtpServer`."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes  # the raw DATA, dot-unstuffed, CRLF line endings
    mail_options: list[str] = field(default_factory=list)
    peer: tuple[str, int] | None = None  # the client's (host, port): one per SMTP connection
    accepted_at: float = 0.0  # time.monotonic() when the server accepted it

    @property
    def message(self) -> email.message.EmailMessage:
        """The content parsed with the modern ``email`` policy."""
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


Stage = Literal["RCPT", "DATA"]


class _RecordingHandler:
    """aiosmtpd handler: records messages and plays back scripted failures."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: list[ReceivedMessage] = []
        self.failures: dict[Stage, deque[str]] = {"RCPT": deque(), "DATA": deque()}
        self.rejected: dict[str, str] = {}

    def _next_failure(self, stage: Stage) -> str | None:
        with self.cond:
            queue = self.failures[stage]
            return queue.popleft() if queue else None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.cond:
            permanent = self.rejected.get(address.lower())
        if permanent is not None:
            return permanent
        scripted = self._next_failure("RCPT")
        if scripted is not None:
            return scripted
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        scripted = self._next_failure("DATA")
        if scripted is not None:
            return scripted
        content = envelope.original_content
        if content is None:
            raw = envelope.content
            content = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
        received = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            content=bytes(content),
            mail_options=list(envelope.mail_options),
            peer=tuple(session.peer) if session.peer else None,
            accepted_at=time.monotonic(),
        )
        with self.cond:
            self.messages.append(received)
            self.cond.notify_all()
        return "250 2.0.0 Message accepted for delivery"


_REPLY_RE = re.compile(r"^[245]\d\d( .*)?$")


def _check_reply(code_and_text: str) -> str:
    if not _REPLY_RE.match(code_and_text):
        raise ValueError(f"not an SMTP reply like '451 4.3.0 Try again later': {code_and_text!r}")
    return code_and_text


class SmtpServer:
    """A recording SMTP server on 127.0.0.1. Create with :func:`start_smtp`."""

    DATA_SIZE_LIMIT = 200 * 1024 * 1024

    def __init__(self) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.start_seconds = 0.0
        self._handler = _RecordingHandler()
        self._controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"<SmtpServer {self.url} messages={len(self._handler.messages)}>"

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of the messages received so far, oldest first."""
        with self._handler.cond:
            return list(self._handler.messages)

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until at least `count` messages arrived; AssertionError on timeout."""
        with self._handler.cond:
            arrived = self._handler.cond.wait_for(
                lambda: len(self._handler.messages) >= count, timeout=timeout
            )
            if not arrived:
                raise AssertionError(
                    f"expected {count} message(s) within {timeout}s, "
                    f"got {len(self._handler.messages)}"
                )
            return list(self._handler.messages)

    def clear(self) -> None:
        """Forget received messages and any scripted failures / rejections."""
        with self._handler.cond:
            self._handler.messages.clear()
            for queue in self._handler.failures.values():
                queue.clear()
            self._handler.rejected.clear()

    def fail_next(
        self, n: int, code_and_text: str = "451 4.3.0 Try again later", *, stage: Stage = "DATA"
    ) -> None:
        """Answer the next `n` DATA (or, with ``stage="RCPT"``, RCPT TO) commands with
        `code_and_text` instead of accepting them. Calls queue up in order."""
        if stage not in ("RCPT", "DATA"):
            raise ValueError(f"stage must be 'RCPT' or 'DATA', not {stage!r}")
        reply = _check_reply(code_and_text)
        with self._handler.cond:
            self._handler.failures[stage].extend([reply] * n)

    def reject_recipients(
        self,
        addresses: Iterable[str] | Mapping[str, str],
        code_and_text: str = "550 5.1.1 No such user",
    ) -> None:
        """Permanently refuse RCPT TO for these addresses (compared case-insensitively).

        Pass a mapping ``{address: reply}`` to give addresses different replies."""
        if isinstance(addresses, Mapping):
            replies = {a.lower(): _check_reply(r) for a, r in addresses.items()}
        else:
            reply = _check_reply(code_and_text)
            replies = {a.lower(): reply for a in addresses}
        with self._handler.cond:
            self._handler.rejected.update(replies)

    def start(self, attempts: int = 5, port: int | None = None) -> None:
        """Start on a free port, or on `port` (to come back where clients expect it)."""
        from aiosmtpd.controller import Controller

        began = time.monotonic()
        error: OSError | None = None
        wanted = port
        for _ in range(attempts):  # retry if another process grabbed the port meanwhile
            port = wanted or free_port()
            controller = Controller(
                self._handler,
                hostname=self.host,
                port=port,
                server_hostname="smtp.test.invalid",
                ready_timeout=10.0,
                data_size_limit=self.DATA_SIZE_LIMIT,
                enable_SMTPUTF8=True,
                decode_data=False,
            )
            try:
                controller.start()
            except OSError as exc:
                error = exc
                with contextlib.suppress(Exception):
                    controller.stop(no_assert=True)
                if wanted:
                    time.sleep(0.5)  # the old socket may linger for a moment
                continue
            self._controller = controller
            self.port = port
            self.start_seconds = time.monotonic() - began
            _register(self)
            return
        raise ServerUnavailable(f"could not start the SMTP server on {self.host}: {error}")

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        _unregister(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_smtp() -> SmtpServer:
    """Start a recording aiosmtpd server on a free 127.0.0.1 port."""
    server = SmtpServer()
    server.start()
    log.debug(
        "started private SMTP server on %s:%d in %.3fs",
        server.host,
        server.port,
        server.start_seconds,
    )
    return server
