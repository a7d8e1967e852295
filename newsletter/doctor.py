"""Pre-flight: what in this setup would hurt delivery, each with what to do about it.

`settings_findings` reads the settings alone; `dns_findings` asks DNS for the sender
domain's SPF, DKIM and DMARC records; `variant_findings` looks at an issue's rendered
variants (size, and SpamAssassin's score when it is installed). A finding is a
**blocker** (mail would be refused, filtered or forgeable: `newsletter doctor` exits 1),
a **warning**, or **skipped** with why (no DNS reachable, SpamAssassin not installed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import urlsplit

from newsletter.settings import DEV_SECRET, Settings

Level = Literal["blocker", "warning", "skipped", "ok"]
PLACEHOLDER_POSTAL = Settings.model_fields["postal_address"].default
RESERVED = re.compile(r"(^|\.)(example\.(org|com|net)|test|invalid|localhost|local)$", re.I)
MAX_HTML = 90 * 1024  # Gmail clips a message whose HTML passes 102 KB
SPAM_GATE = 2.0
_SCORE = re.compile(r"score=(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class NoDns(Exception):
    """DNS cannot be asked (no resolver, no network)."""


Lookup = Callable[[str], list[str]]  # TXT strings at a name ([] when there are none)


def settings_findings(settings: Settings, dkim_problem: str | None,
                      has_key: bool) -> list[Finding]:
    """What the settings alone say. `dkim_problem`: why the DKIM key cannot be used."""
    found: list[Finding] = []
    url = urlsplit(settings.public_base_url)
    if url.scheme != "https" or (url.hostname or "") in ("localhost", "127.0.0.1", "::1") \
            or RESERVED.search(url.hostname or ""):
        found.append(Finding("blocker", "public-url", (
            f"NEWSLETTER_PUBLIC_BASE_URL is {settings.public_base_url}: unsubscribe links "
            "must open for everyone, over https; set the address where `newsletter serve` "
            "answers behind TLS")))
    if settings.postal_address == PLACEHOLDER_POSTAL:
        found.append(Finding("blocker", "postal-address", (
            "NEWSLETTER_POSTAL_ADDRESS is the shipped placeholder: anti-spam laws (CAN-SPAM, "
            "and many receivers) want your real postal address in every message")))
    if RESERVED.search(settings.sender_domain):
        found.append(Finding("blocker", "sender", (
            f"NEWSLETTER_SENDER_EMAIL is {settings.sender_email}: a reserved example domain "
            "nobody can authenticate; use an address at a domain you own")))
    if settings.secret_key == DEV_SECRET:
        found.append(Finding("blocker", "secret-key", (
            "NEWSLETTER_SECRET_KEY is the development value: anyone could forge unsubscribe "
            "links; set a long random value (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`)")))
    if dkim_problem:
        found.append(Finding("blocker", "dkim-key", dkim_problem))
    elif not has_key:
        found.append(Finding("warning", "dkim-key", (
            "messages are not DKIM-signed here: Gmail and Yahoo require DKIM, so unless your "
            "relay signs them, make a key with `newsletter dkim keygen`")))
    elif not _aligned(settings.dkim_domain, settings.sender_domain):
        found.append(Finding("warning", "dkim-alignment", (
            f"DKIM signs as {settings.dkim_domain} but mail is from {settings.sender_domain}: "
            "DMARC needs them to share the organisational domain")))
    return found


def _aligned(a: str, b: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def dns_findings(settings: Settings, record: tuple[str, str] | None,
                 lookup: Lookup) -> list[Finding]:
    """SPF, DKIM (`record`: the name and text our key needs) and DMARC, as DNS has them."""
    domain = settings.sender_domain.lower()
    found: list[Finding] = []
    try:
        # SPF is checked on the envelope sender (the VERP address at the bounce domain);
        # DMARC aligns it with From: both domains need a record
        for where in dict.fromkeys((domain, settings.resolved_bounce_domain)):
            found.append(_spf(where, lookup(where)))
        if record is not None:
            name, wanted = record
            have = lookup(name)
            key = _tag(wanted, "p")
            if not have:
                found.append(Finding("blocker", "dkim-dns", (
                    f"no DKIM record at {name}: publish the TXT record that `newsletter dkim "
                    "show` prints, or receivers cannot check the signature")))
            elif all(_tag(text, "p") != key for text in have):
                found.append(Finding("blocker", "dkim-dns", (
                    f"the DKIM record at {name} is not the public half of "
                    "NEWSLETTER_DKIM_KEY_FILE: every signature would fail; publish what "
                    "`newsletter dkim show` prints")))
            else:
                found.append(Finding("ok", "dkim-dns", f"DKIM: {name} matches the key"))
        dmarc = [t for t in lookup(f"_dmarc.{domain}") if t.lower().startswith("v=dmarc1")]
        if not dmarc:
            found.append(Finding("blocker", "dmarc", (
                f"no DMARC record at _dmarc.{domain}: Gmail and Yahoo require one of bulk "
                "senders; start with \"v=DMARC1; p=none; rua=mailto:dmarc@" + domain + "\"")))
        else:
            found.append(Finding("ok", "dmarc", f"DMARC: {dmarc[0][:120]}"))
    except NoDns as exc:
        return [Finding("skipped", "dns", f"DNS records not checked: {exc}")]
    return found


def _spf(domain: str, records: list[str]) -> Finding:
    spf = [t for t in records if t.lower().startswith("v=spf1")]
    if not spf:
        return Finding("blocker", "spf", (
            f"{domain} has no SPF record: publish a TXT record at {domain} such as "
            "\"v=spf1 include:<your relay's SPF> -all\""))
    if len(spf) > 1:
        return Finding("blocker", "spf", (
            f"{domain} has {len(spf)} SPF records; receivers treat that as an error: "
            "merge them into one"))
    return Finding("ok", "spf", f"SPF of {domain}: {spf[0][:120]}")


def _tag(record: str, name: str) -> str:
    for part in record.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return "".join(value.split())
    return ""


def resolver_lookup(nameserver: str = "", port: int = 53, timeout: float = 3.0) -> Lookup:
    """TXT lookups with dnspython: the system's resolver, or `nameserver`."""
    import dns.exception
    import dns.resolver

    try:
        resolver = dns.resolver.Resolver(configure=not nameserver)
    except dns.resolver.NoResolverConfiguration as exc:
        raise NoDns("this machine has no DNS resolver configured") from exc
    if nameserver:
        resolver.nameservers = [nameserver]
        resolver.port = port
    resolver.lifetime = timeout

    def lookup(name: str) -> list[str]:
        try:
            answer = resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise NoDns(f"no DNS server answered ({exc.__class__.__name__})") from exc
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    return lookup


@dataclass(frozen=True)
class VariantMessage:
    label: str
    html_bytes: int
    message: bytes  # the whole message, as a subscriber would get it


def spamassassin_score(message: bytes, timeout: float = 120) -> float | None:
    """SpamAssassin's score with local tests only (no network), or None when it is not
    installed."""
    binary = shutil.which("spamassassin")
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, "-L", "-t"], input=message, capture_output=True,
                                timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = _SCORE.search(result.stdout.decode("utf-8", "replace"))
    return float(found.group(1)) if found else None


def variant_findings(variants: Sequence[VariantMessage],
                     score: Callable[[bytes], float | None] = spamassassin_score
                     ) -> list[Finding]:
    found: list[Finding] = []
    scored = False
    for variant in variants:
        if variant.html_bytes > MAX_HTML:
            found.append(Finding("warning", "html-size", (
                f"{variant.label}: its HTML is {variant.html_bytes / 1024:.0f} KB; Gmail "
                "clips messages past 102 KB (and the unsubscribe link with them): fewer or "
                "shorter items")))
        points = score(variant.message)
        if points is None:
            continue
        scored = True
        level: Level = "blocker" if points >= SPAM_GATE else "ok"
        found.append(Finding(level, "spamassassin", (
            f"{variant.label}: SpamAssassin scores {points:.1f}"
            + (f" (at or over {SPAM_GATE}): see `spamassassin -L -t` on it for the rules "
               "that fire" if level == "blocker" else ""))))
    if variants and not scored:
        found.append(Finding("skipped", "spamassassin", (
            "SpamAssassin is not installed, so no variant was scored "
            "(apt-get install spamassassin)")))
    return found


def blockers(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "blocker"]


def parse_server(text: str) -> tuple[str, int]:
    """HOST, HOST:PORT, an IPv6 address or [IPv6]:PORT -> (host, port); ("", 53) for the
    system's resolver. ValueError for a port that is not one."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") > 1:  # a bare IPv6 address
        host, port = text, ""
    else:
        host, _, port = text.partition(":")
    number = int(port or 53)
    if not 0 < number < 65536:
        raise ValueError(f"port {number} is not a port")
    return host, number
