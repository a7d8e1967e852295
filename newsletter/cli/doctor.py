"""`newsletter doctor`: what in this setup would hurt delivery."""

from __future__ import annotations

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, table
from newsletter.doctor import (
    Finding,
    NoDns,
    VariantMessage,
    blockers,
    dns_findings,
    parse_server,
    resolver_lookup,
    settings_findings,
    variant_findings,
)
from newsletter.issues import content_of, countries_of, get_issue
from newsletter.preview import preview_variants, render_preview
from newsletter.render import sender_from
from subscribers.queries import audience
from worker.dkim import DkimError, Key, load_key
from worker.mime import Headers, build_message

ORDER = {"blocker": 0, "warning": 1, "skipped": 2, "ok": 3}


@click.command("doctor")
@click.option("--issue", "slug", help="Also check this issue's variants: size, SpamAssassin.")
@click.option("--dns-server", default="",
              help="Ask this DNS server (HOST or HOST:PORT) instead of NEWSLETTER_DNS_SERVER "
                   "or the system's, e.g. your domain's own before a change has spread.")
@click.option("--no-dns", is_flag=True, help="Do not look up SPF, DKIM and DMARC.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@user_errors
def doctor(app: App, slug: str | None, dns_server: str, no_dns: bool, as_json: bool) -> None:
    """List what would hurt delivery; exit 1 when something blocks it.

    Blockers: a public URL that is not https or is local, the placeholder postal address,
    a sender at a reserved domain (example.org), the development secret key, a DKIM key
    that cannot be used or whose DNS record does not match, no SPF or DMARC record, a
    variant SpamAssassin scores 2.0 or more. Warnings: no DKIM key (fine when the relay
    signs), DKIM not aligned with From, HTML over 90 KB.

    \b
    Example:
      newsletter doctor
      newsletter doctor --issue 2019-10 --json
      newsletter doctor --dns-server 192.0.2.53
    """
    settings = app.settings
    key: Key | None = None
    problem: str | None = None
    try:
        key = load_key(settings)
    except DkimError as exc:
        problem = str(exc)
    findings: list[Finding] = settings_findings(settings, problem, key is not None)
    if no_dns:
        findings.append(Finding("skipped", "dns", "DNS records not checked (--no-dns)"))
    else:
        try:
            lookup = resolver_lookup(*parse_server(dns_server or app.settings.dns_server))
            findings += dns_findings(settings, (key.record_name, key.record) if key else None,
                                     lookup)
        except (NoDns, ValueError) as exc:
            findings.append(Finding("skipped", "dns", f"DNS records not checked: {exc}"))
    if slug:
        findings += variant_findings(_messages(app, slug))
    findings.sort(key=lambda f: ORDER[f.level])
    stopping = blockers(findings)
    if as_json:
        emit_json({"blockers": len(stopping),
                   "warnings": sum(f.level == "warning" for f in findings),
                   "findings": [f.as_dict() for f in findings]})
    else:
        table(None, ["", "check", "what to do"],
              [[f.level, f.check, f.message] for f in findings])
        click.echo(f"{len(stopping)} blocker(s), "
                   f"{sum(f.level == 'warning' for f in findings)} warning(s)")
    if stopping:
        raise SystemExit(1)


def _messages(app: App, slug: str) -> list[VariantMessage]:
    """Each variant issue `slug` would be sent in (as `issues preview` makes them), as a
    whole message the way a subscriber gets it."""
    s = app.settings
    with app.sessions() as session:
        issue = get_issue(session, slug)
        content = content_of(issue)
        variants = preview_variants(audience(session), s.languages, s.default_language,
                                    countries_of(issue))
    out = []
    for variant in variants:
        rendered = render_preview(content, variant, sender_from(s), s.template_dir)
        message = build_message(rendered, Headers(
            s.sender_name, s.sender_email, "Reader", "reader@example.net",
            f"<doctor.{variant.label}@{s.sender_domain}>", s.resolved_list_id,
            f"{s.public_base_url}/u/doctor", s.reply_to))
        out.append(VariantMessage(variant.label, len(rendered.html.encode()), message))
    return out

