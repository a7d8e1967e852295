"""Before mailing real people by SMTP: what `newsletter doctor` blocks on.

`mailing_blocker` is the one check `issues send`, `resume`, `retry`, `newsletter worker`,
`newsletter scheduler` and the newsroom's Send page make: the settings (the development
secret key always; a local or http public URL, the placeholder postal address, a sender at
a reserved domain), a DKIM key that cannot be used, and the DNS records (SPF of the sender
and bounce domains, the DKIM record matching the key, DMARC). Without DNS (no server
answers) the DNS part is skipped, as doctor says. SpamAssassin scores are doctor's alone
(`doctor --issue`): scoring every variant takes a second or more each.
"""

from __future__ import annotations

from newsletter.doctor import Lookup, NoDns, dns_findings, parse_server, resolver_lookup
from newsletter.settings import Settings
from worker.dkim import DkimError, load_key

DNS_TIMEOUT = 2.0  # seconds per lookup: a send waits at most this when DNS is away


def mailing_blocker(settings: Settings, *, force: bool = False,
                    lookup: Lookup | None = None) -> str | None:
    """Why these settings must not mail by SMTP now, or None. `force` (or the setting
    NEWSLETTER_ALLOW_BLOCKED_SENDING): a staging relay, all but the secret key pass."""
    problem = settings.insecure_for_mailing(force=force)
    if problem or not settings.smtp_urls or force or settings.allow_blocked_sending:
        return problem
    try:
        key = load_key(settings)
    except DkimError as exc:
        return f"not mailing by SMTP: {exc}"
    try:
        ask = lookup or resolver_lookup(*parse_server(settings.dns_server), timeout=DNS_TIMEOUT)
        findings = dns_findings(settings, (key.record_name, key.record) if key else None, ask)
    except (NoDns, ValueError):
        return None
    blockers = [f.message for f in findings if f.level == "blocker"]
    if not blockers:
        return None
    return ("not mailing by SMTP: `newsletter doctor` finds what would hurt delivery: "
            + "; ".join(blockers) + ". Fix the records; or, for a staging relay, send with "
            "--force or set NEWSLETTER_ALLOW_BLOCKED_SENDING=true")
