"""A private Dovecot IMAP server for the tests: its own config, users, mail and port.

    with dovecot() as server:
        server.url  # imap://bounces:<password>@127.0.0.1:<port>/INBOX

Runs Debian's `dovecot` (package dovecot-imapd) in the foreground with a configuration
written to a new directory under /tmp (readable by Dovecot's login user, which pytest's
own temporary directories are not), plaintext login on 127.0.0.1 only, one user whose
mail is a Maildir owned by `nobody`. Nothing of a system Dovecot is read or touched.
"""

from __future__ import annotations

import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import ServerUnavailable, free_port
from tests.system_packages import locate

USER = "bounces"
START_TIMEOUT = 20.0

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = newsletter-test-{name}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass(frozen=True)
class Dovecot:
    port: int
    password: str
    root: Path

    @property
    def url(self) -> str:
        return f"imap://{USER}:{self.password}@127.0.0.1:{self.port}/INBOX"


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = log.read_text()[-2000:] if log.exists() else ""
            raise ServerUnavailable(f"dovecot exited: {said}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)  # polling a server that is starting
    raise ServerUnavailable(f"dovecot did not answer on port {port}")


@contextmanager
def dovecot() -> Iterator[Dovecot]:
    binary = locate("dovecot")
    if binary is None:
        raise ServerUnavailable("dovecot is missing: sudo apt-get install -y dovecot-imapd")
    owner = pwd.getpwnam("nobody")
    root = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    root.chmod(0o755)
    process: subprocess.Popen[bytes] | None = None
    try:
        for sub in ("run", "state", f"home/{USER}"):
            (root / sub).mkdir(parents=True)
        (root / "home").chmod(0o755)
        shutil.chown(root / "home" / USER, owner.pw_uid, owner.pw_gid)
        password = secrets.token_hex(8)
        (root / "passwd").write_text(f"{USER}:{{PLAIN}}{password}\n")
        port = free_port()
        (root / "dovecot.conf").write_text(CONFIG.format(
            root=root, name=root.name, uid=owner.pw_uid, gid=owner.pw_gid, port=port))
        process = subprocess.Popen([binary, "-F", "-c", str(root / "dovecot.conf")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(port, process, root / "dovecot.log")
        yield Dovecot(port, password, root)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)
