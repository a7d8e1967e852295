"""One HTTP GET of a feed, bounded: http(s) only, a few redirects, one deadline for the
whole exchange, a size cap enforced while reading (also on what gzip expands to), and
conditional GET (a 304 answer carries no body).

http.client rather than urllib: every hop is checked here (urllib follows redirects to
ftp: and has no overall deadline), and each failure becomes a FeedError a person can act
on; nothing else escapes.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from newsletter.ingest.feeds import FeedError

MAX_REDIRECTS = 5
CHUNK = 65536
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_URL_SAFE = "/%:@!$&'()*+,;=-._~"  # RFC 3986 reserved and unreserved, and escapes


@dataclass(frozen=True)
class Fetched:
    """What the server answered: 200 with a body, or 304 (not modified) without one."""

    status: int
    body: bytes
    url: str  # after redirects
    etag: str | None
    last_modified: str | None
    content_type: str | None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def check_url(url: str) -> str:
    """The address, if it is one this fetcher may ask: http(s), with a host."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # "http://[::1": a bracket left open
        raise FeedError(f"{url[:200]!r} is not a usable address: write the feed's full "
                        "address, starting with https://") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FeedError(f"{url!r} is not an http(s) address: write the feed's full address, "
                        "starting with https://")
    try:
        parts.port  # noqa: B018 (urllib checks the port only when asked for it)
    except ValueError:
        raise FeedError(f"{url!r}: the port after {parts.hostname!r} is not a number from 0 to "
                        "65535; write the feed's address as the site gives it") from None
    return url.strip()


def private_address(address: str) -> bool:
    """Whether an IP address is one a feed must not point at from outside: loopback,
    private, link-local (cloud metadata), unspecified, reserved or multicast; IPv4 mapped
    into IPv6 counts as the IPv4 address it holds."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    elif isinstance(ip, ipaddress.IPv6Address) and (ip.sixtofour or ip.teredo):
        # 6to4 and Teredo carry an IPv4 address a relay reaches: that one is judged too
        carried = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if carried is not None and private_address(str(carried)):
            return True
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified
            or ip.is_reserved or ip.is_multicast or not ip.is_global)


def check_host(url: str, *, allow_private: bool) -> None:
    """Refuse (FeedError) an address whose host is, or resolves to, a loopback, private or
    link-local address, unless `allow_private` (NEWSLETTER_FEED_ALLOW_PRIVATE): a feed
    added from the web must not make this server ask its own network. A name that does not
    resolve passes here (the fetch says so). Fetching checks again as it connects."""
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError):
        return
    for info in infos:
        _refuse_private(url, host, str(info[4][0]))


def _refuse_private(url: str, host: str, address: str) -> None:
    if private_address(address):
        raise FeedError(f"{url[:200]}: {host!r} is a loopback, private or link-local "
                        f"address ({address}); feeds are fetched from the public internet "
                        "only (NEWSLETTER_FEED_ALLOW_PRIVATE=true allows it)")


def _public_connection(url: str) -> Callable[..., socket.socket]:
    """socket.create_connection, connecting only to addresses that are not private: the
    name is resolved once, every address it has is checked, and the connection goes to
    those very addresses (a DNS answer that changes after a check cannot slip through)."""
    def connect(address: tuple[str, int], timeout: float | None = None,
                source_address: tuple[str, int] | None = None) -> socket.socket:
        host, port = address
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for info in infos:
            _refuse_private(url, host, str(info[4][0]))
        problem: OSError | None = None
        for family, kind, proto, _, target in infos:
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(target)
                return sock
            except OSError as exc:
                sock.close()
                problem = exc
        raise problem or OSError(f"no address for {host!r}")

    return connect


def http_get(url: str, *, timeout: float, max_bytes: int, etag: str | None = None,
             last_modified: str | None = None, user_agent: str = "newsletter",
             allow_private: bool = False) -> Fetched:
    """GET `url` within `timeout` seconds in all, reading at most `max_bytes`.

    Every hop (each redirect too) is refused when its host resolves to a private address,
    unless `allow_private` (see `check_host`): checked as the connection is made, on the
    addresses connected to."""
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": user_agent, "Accept-Encoding": "gzip",
               "Accept": "application/rss+xml, application/atom+xml, application/rdf+xml, "
                         "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    current = check_url(url)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            answer = _exchange(current, headers, deadline, timeout, max_bytes,
                               allow_private)
        except FeedError:
            raise
        except TimeoutError:
            raise FeedError(f"{current}: no complete answer within {timeout:g} s (the server "
                            "is slow or down); it is tried again later") from None
        except socket.gaierror:
            host = urlsplit(current).hostname
            raise FeedError(f"{current}: the name {host!r} cannot be found (DNS); check the "
                            "address for a typo") from None
        except ConnectionRefusedError:
            raise FeedError(f"{current}: the server refused the connection (nothing listens "
                            "there); check the address, or it is tried again later") from None
        except ssl.SSLError as exc:
            raise FeedError(f"{current}: the secure connection failed ({exc.reason or exc}); "
                            "the site's certificate may be invalid") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise FeedError(f"{current}: the connection failed ({type(exc).__name__}: "
                            f"{str(exc)[:200]}); it is tried again later") from None
        if isinstance(answer, str):
            current = answer
            continue
        return answer
    raise FeedError(f"{url}: more than {MAX_REDIRECTS} redirects; open the address in a "
                    "browser and add the feed with the address it ends at")


def _exchange(url: str, headers: dict[str, str], deadline: float, timeout: float,
              max_bytes: int, allow_private: bool = False) -> Fetched | str:
    """One request: the answer, or the address a redirect points to."""
    parts = urlsplit(url)
    remaining = _remaining(deadline, url, timeout)
    conn: http.client.HTTPConnection
    # the port always given: http.client reads "::1" without one as host ":" port 1
    secure = parts.scheme.lower() == "https"
    port = parts.port or (443 if secure else 80)
    if secure:
        conn = http.client.HTTPSConnection(parts.hostname or "", port, timeout=remaining,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", port, timeout=remaining)
    if not allow_private:
        conn._create_connection = _public_connection(url)  # type: ignore[attr-defined]
    # A socket timeout bounds each read, not the exchange: a server sending its headers a
    # byte at a time would never trip it. At the deadline the socket is shut instead.
    cut = threading.Event()
    timer = threading.Timer(remaining, _cut, args=(conn, cut))
    timer.daemon = True
    timer.start()
    try:
        answer = _ask(conn, url, parts.path, parts.query, headers, deadline, timeout,
                      max_bytes, cut)
    except (OSError, http.client.HTTPException, ValueError, FeedError):
        if cut.is_set():
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()
        conn.close()
    if cut.is_set():  # what came before the cut is not the whole answer
        raise TimeoutError
    return answer


def _cut(conn: http.client.HTTPConnection, cut: threading.Event) -> None:
    cut.set()
    sock = conn.sock
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def _ask(conn: http.client.HTTPConnection, url: str, path: str, query: str,
         headers: dict[str, str], deadline: float, timeout: float,
         max_bytes: int, cut: threading.Event) -> Fetched | str:
    """The request and its answer on an open connection: see _exchange."""
    # what a person typed may hold "categoría": sent percent-encoded as UTF-8, as a
    # browser does (an escape already there stays as it is)
    path = quote(path or "/", safe=_URL_SAFE)
    if query:
        path += "?" + quote(query, safe=_URL_SAFE + "?")
    conn.request("GET", path, headers=headers)
    if cut.is_set():  # the deadline passed while connecting, before there was a socket to shut
        raise TimeoutError
    response = conn.getresponse()
    if response.status in REDIRECTS:
        location = response.getheader("Location")
        if not location:
            raise FeedError(f"{url}: the server redirects ({response.status}) without "
                            "saying where; check the address")
        target = urljoin(url, location.strip())
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise FeedError(f"{url}: the server redirects to {target[:200]!r}, which is "
                            "not an http(s) address; the feed cannot be followed there")
        return target
    if response.status == 304:
        return Fetched(304, b"", url, response.getheader("ETag"),
                       response.getheader("Last-Modified"), None)
    if response.status != 200:
        raise FeedError(_status_problem(url, response.status, response.reason))
    body = _read(conn, response, deadline, timeout, max_bytes, url)
    return Fetched(200, body, url, response.getheader("ETag"),
                   response.getheader("Last-Modified"), response.getheader("Content-Type"))


def _remaining(deadline: float, url: str, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FeedError(f"{url}: no complete answer within {timeout:g} s (the server is slow "
                        "or down); it is tried again later")
    return left


def _read(conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
          deadline: float, timeout: float, max_bytes: int, url: str) -> bytes:
    """The body, stopping as soon as it passes `max_bytes` (before or after gzip)."""
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise FeedError(f"{url}: the server sent the feed encoded as {encoding!r}, which was "
                        "not asked for; it is tried again later")
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes and encoding == "identity":
        raise _too_big(url, max_bytes)
    inflate = zlib.decompressobj(wbits=47) if encoding != "identity" else None
    parts: list[bytes] = []
    size = 0
    while True:
        if conn.sock is not None:
            conn.sock.settimeout(_remaining(deadline, url, timeout))
        chunk = response.read1(CHUNK)
        if not chunk:
            break
        if inflate is not None:
            try:
                chunk = inflate.decompress(chunk, max_bytes - size + 1)
            except zlib.error:
                raise FeedError(f"{url}: the compressed feed is damaged; it is tried again "
                                "later") from None
            if inflate.unconsumed_tail:
                raise _too_big(url, max_bytes)
        size += len(chunk)
        if size > max_bytes:
            raise _too_big(url, max_bytes)
        parts.append(chunk)
        if time.monotonic() > deadline:
            _remaining(deadline, url, timeout)
    # http.client ends the body quietly when the connection drops early: what arrived may
    # still parse, with its last entries cut short, so a short body is refused.
    if response.length or (inflate is not None and not inflate.eof):
        raise FeedError(f"{url}: the connection closed before the whole feed arrived; it is "
                        "tried again later")
    return b"".join(parts)


def _too_big(url: str, max_bytes: int) -> FeedError:
    return FeedError(f"{url}: the feed is larger than {max_bytes:,} bytes, the limit; if it "
                     "is really that large, raise NEWSLETTER_FEED_MAX_BYTES")


def _status_problem(url: str, status: int, reason: str) -> str:
    said = f"the server answered {status} {reason}".rstrip()
    if status in (404, 410):
        return (f"{url}: {said}: the feed moved or is gone; find its new address, then "
                "`newsletter feeds edit NAME --url NEW-ADDRESS`")
    if status in (401, 403):
        return f"{url}: {said}: the feed is not public; ask its owner for an open address"
    if status == 429:
        return f"{url}: {said} (too many requests); it is tried again later, less often"
    if status >= 500:
        return f"{url}: {said} (a problem on their side); it is tried again later"
    return f"{url}: {said}; check the address"
