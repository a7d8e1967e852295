"""`newsletter doctor`: settings, DNS (asked of a private dnsmasq the test starts, a real
DNS server answering for example.org), variant sizes and SpamAssassin scores."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.cli.demo import sample_items_text
from newsletter.doctor import (
    MAX_HTML,
    Finding,
    VariantMessage,
    dns_findings,
    resolver_lookup,
    settings_findings,
    variant_findings,
)
from newsletter.settings import Settings, load_settings
from tests.servers import ServerUnavailable, SmtpServer, free_port
from tests.system_packages import locate
from worker.dkim import generate_key, write_key_file

KEY = generate_key("example.org", "news2026", "rsa")
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no SQL here
GOOD = {"public_base_url": "https://news.migration-news.org",
        "sender_email": "news@migration-news.org",
        "postal_address": "Apartado 1-1000, San José", "secret_key": "x" * 40}


@contextmanager
def dns_server(records: dict[str, list[str]], domain: str = "example.org") -> Iterator[int]:
    """dnsmasq answering for `domain` (NXDOMAIN for names it does not hold): the port."""
    binary = locate("dnsmasq")
    if binary is None:
        raise ServerUnavailable("dnsmasq is missing: sudo apt-get install -y dnsmasq-base")
    port = free_port()
    args = [binary, "--no-daemon", f"--port={port}", "--listen-address=127.0.0.1",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
            f"--local=/{domain}/", "--pid-file="]
    for name, strings in records.items():
        # one record per text; a text longer than 255 characters goes as several strings
        # (dnsmasq splits at commas), as in a zone file
        for text in strings:
            assert "," not in text
            args.append(f"--txt-record={name}," + ",".join(
                text[i:i + 250] for i in range(0, len(text), 250)))
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lookup = resolver_lookup("127.0.0.1", port, timeout=0.5)
        deadline = time.monotonic() + 10
        while True:  # polling a server that is starting
            try:
                lookup(f"ready.{domain}")
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def one_issue(runner: CliRunner, tmp_path: Path, people: str) -> None:
    """The sample items, the people of the CSV text `people`, and issue 2019-10 over
    them, through the CLI."""
    (tmp_path / "news.txt").write_text(sample_items_text(), encoding="utf-8")
    (tmp_path / "people.csv").write_text(people, encoding="utf-8")
    for args in (["items", "import", str(tmp_path / "news.txt")],
                 ["subscribers", "import", str(tmp_path / "people.csv")],
                 ["issues", "create", "2019-10", "--from", "2019-09-01", "--to", "2019-10-31"]):
        done = runner.invoke(cli, args)
        assert done.exit_code == 0, done.output


def levels(findings: list[Finding]) -> dict[str, str]:
    return {f.check: f.level for f in findings}


def test_the_embedded_defaults_are_blocked_with_what_to_do() -> None:
    found = settings_findings(load_settings(), None, has_key=False)
    assert levels(found) == {"public-url": "blocker", "postal-address": "blocker",
                             "sender": "blocker", "secret-key": "blocker",
                             "dkim-key": "warning"}
    assert all("NEWSLETTER_" in f.message or "dkim keygen" in f.message for f in found)


def test_a_production_setup_has_no_blocker() -> None:
    assert settings_findings(load_settings(**GOOD), None, has_key=False) == [
        Finding("warning", "dkim-key", settings_findings(
            load_settings(**GOOD), None, has_key=False)[0].message)]
    signed = load_settings(**GOOD, dkim_domain="migration-news.org", dkim_selector="s",
                           dkim_key_file="k.pem")
    assert settings_findings(signed, None, has_key=True) == []
    misaligned = load_settings(**GOOD, dkim_domain="other.example", dkim_selector="s",
                               dkim_key_file="k.pem")
    assert levels(settings_findings(misaligned, None, has_key=True)) == {
        "dkim-alignment": "warning"}
    assert levels(settings_findings(load_settings(**GOOD), "the key is encrypted",
                                    has_key=False)) == {"dkim-key": "blocker"}


def test_dns_records_are_checked_against_a_real_dns_server() -> None:
    settings = load_settings(sender_email="news@example.org")
    record = (KEY.record_name, KEY.record)
    other = generate_key("example.org", "news2026", "ed25519")
    with dns_server({"example.org": ["v=spf1 include:relay.example.net -all"],
                     KEY.record_name: [KEY.record],
                     "_dmarc.example.org": ["v=DMARC1; p=none"]}) as port:
        good = dns_findings(settings, record, resolver_lookup("127.0.0.1", port))
        assert levels(good) == {"spf": "ok", "dkim-dns": "ok", "dmarc": "ok"}
        wrong = dns_findings(settings, (KEY.record_name, other.record),
                             resolver_lookup("127.0.0.1", port))
        assert levels(wrong)["dkim-dns"] == "blocker"
    with dns_server({"example.org": ["v=spf1 -all", "v=spf1 ~all"]}) as port:
        bad = dns_findings(settings, record, resolver_lookup("127.0.0.1", port))
        assert levels(bad) == {"spf": "blocker", "dkim-dns": "blocker", "dmarc": "blocker"}
        assert "2 SPF records" in bad[0].message
    nobody = dns_findings(settings, record, resolver_lookup("127.0.0.1", free_port(),
                                                            timeout=0.3))
    assert levels(nobody) == {"dns": "skipped"} and "no DNS server answered" in (
        nobody[0].message)


def test_big_html_warns_and_no_spamassassin_is_said() -> None:
    found = variant_findings([VariantMessage("es-CR", MAX_HTML + 1, b"x")],
                             score=lambda message: None)
    assert levels(found) == {"html-size": "warning", "spamassassin": "skipped"}
    scored = variant_findings([VariantMessage("en-BZ", 1000, b"x")], score=lambda m: 2.5)
    assert levels(scored) == {"spamassassin": "blocker"}


@SQLITE_ONLY
def test_the_command_scores_each_variant_and_exits_1_on_blockers(
    runner: CliRunner, settings: Settings, tmp_path: Path,
) -> None:
    one_issue(runner, tmp_path, "email,country,language\nana@example.net,CR,es\n"
                                "bob@example.net,BZ,en\n")
    result = runner.invoke(cli, ["doctor", "--no-dns", "--json", "--issue", "2019-10"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    checks = {(f["check"], f["level"]) for f in report["findings"]}
    assert ("secret-key", "blocker") not in checks  # the tests' settings set their own
    assert ("postal-address", "blocker") in checks and report["blockers"] >= 1
    scores = {f["message"].split(":")[0]: f["level"] for f in report["findings"]
              if f["check"] == "spamassassin"}
    assert scores == {label: "ok" for label in ("en-regional", "es-regional", "fr-regional",
                                                "es-CR", "en-BZ")}, report["findings"]
    write_key_file(KEY, tmp_path / "dkim.key")
    fine = runner.invoke(cli, ["doctor", "--no-dns"], env={
        "NEWSLETTER_PUBLIC_BASE_URL": "https://news.migration-news.org",
        "NEWSLETTER_SENDER_EMAIL": "news@migration-news.org",
        "NEWSLETTER_POSTAL_ADDRESS": "Apartado 1-1000, San José",
        "NEWSLETTER_DKIM_DOMAIN": "migration-news.org", "NEWSLETTER_DKIM_SELECTOR": "news2026",
        "NEWSLETTER_DKIM_KEY_FILE": str(tmp_path / "dkim.key")})
    assert fine.exit_code == 0, fine.output
    assert "0 blocker(s), 0 warning(s)" in fine.output


@SQLITE_ONLY
@pytest.mark.parametrize("server", ["nonsense:port", "not-an-address", "127.0.0.1:99999"])
def test_a_bad_dns_server_option_is_a_skip_not_a_traceback(
        runner: CliRunner, server: str) -> None:
    result = runner.invoke(cli, ["doctor", "--dns-server", server, "--json"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # blockers
    dns = [f for f in json.loads(result.output)["findings"] if f["check"] == "dns"]
    assert dns and dns[0]["level"] == "skipped"


@SQLITE_ONLY
def test_sending_by_smtp_refuses_while_doctor_finds_a_blocker_unless_forced(
    runner: CliRunner, cli_env: dict[str, str], smtp_server: SmtpServer, tmp_path: Path,
) -> None:
    one_issue(runner, tmp_path, "email,country,language\nana@example.net,CR,es\n")
    real = {**cli_env, "NEWSLETTER_SMTP_URL": smtp_server.url,
            "NEWSLETTER_ALLOW_BLOCKED_SENDING": "false"}
    refused = CliRunner(env=real).invoke(cli, ["issues", "send", "2019-10"])
    assert refused.exit_code == 1, refused.output
    assert "`newsletter doctor` finds what would hurt delivery" in refused.output
    assert "NEWSLETTER_POSTAL_ADDRESS" in refused.output and "--force" in refused.output
    worker = CliRunner(env={**real, "NEWSLETTER_BROKER_URL": "redis://127.0.0.1:9/0"}).invoke(
        cli, ["worker"])
    assert worker.exit_code == 1 and "NEWSLETTER_POSTAL_ADDRESS" in worker.output
    assert smtp_server.messages == []
    forced = CliRunner(env=real).invoke(cli, ["issues", "send", "2019-10", "--force"])
    assert forced.exit_code == 0, forced.output
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ana@example.net"]]
    # a production setup sends without --force; the development secret never does
    fine = {**real, "NEWSLETTER_PUBLIC_BASE_URL": "https://news.migration-news.org",
            "NEWSLETTER_SENDER_EMAIL": "news@migration-news.org",
            "NEWSLETTER_POSTAL_ADDRESS": "Apartado 1-1000, San José"}
    assert load_settings(smtp_url=smtp_server.url, **{
        k.removeprefix("NEWSLETTER_").lower(): v for k, v in fine.items()
        if k in ("NEWSLETTER_PUBLIC_BASE_URL", "NEWSLETTER_SENDER_EMAIL",
                 "NEWSLETTER_POSTAL_ADDRESS")}, secret_key="x" * 40).insecure_for_mailing() is None
    dev = CliRunner(env={**fine, "NEWSLETTER_SECRET_KEY": None}).invoke(
        cli, ["issues", "send", "2019-10", "--force"])  # type: ignore[dict-item]
    assert dev.exit_code == 1 and "NEWSLETTER_SECRET_KEY" in dev.output



@SQLITE_ONLY
def test_sending_by_smtp_waits_for_the_dns_records(
    runner: CliRunner, cli_env: dict[str, str], smtp_server: SmtpServer, tmp_path: Path,
) -> None:
    """A production setup whose domain has SPF and the DKIM record but no DMARC: the send
    is refused naming DMARC; once the record is there it goes (a real DNS server, dnsmasq,
    at NEWSLETTER_DNS_SERVER)."""
    domain = "migration-news.org"
    key = generate_key(domain, "news2026", "ed25519")
    write_key_file(key, tmp_path / "dkim.key")
    one_issue(runner, tmp_path, "email,country,language\nana@example.net,CR,es\n")
    env = {**cli_env, "NEWSLETTER_SMTP_URL": smtp_server.url,
           "NEWSLETTER_ALLOW_BLOCKED_SENDING": "false",
           "NEWSLETTER_PUBLIC_BASE_URL": f"https://news.{domain}",
           "NEWSLETTER_SENDER_EMAIL": f"news@{domain}",
           "NEWSLETTER_POSTAL_ADDRESS": "Apartado 1-1000, San José",
           "NEWSLETTER_DKIM_DOMAIN": domain, "NEWSLETTER_DKIM_SELECTOR": "news2026",
           "NEWSLETTER_DKIM_KEY_FILE": str(tmp_path / "dkim.key")}
    records = {domain: ["v=spf1 ip4:127.0.0.1 -all"], key.record_name: [key.record]}
    with dns_server(records, domain) as port:
        refused = CliRunner(env={**env, "NEWSLETTER_DNS_SERVER": f"127.0.0.1:{port}"}).invoke(
            cli, ["issues", "send", "2019-10"])
    assert refused.exit_code == 1 and f"no DMARC record at _dmarc.{domain}" in refused.output
    assert smtp_server.messages == []
    with dns_server({**records, f"_dmarc.{domain}": ["v=DMARC1; p=none"]}, domain) as port:
        sent = CliRunner(env={**env, "NEWSLETTER_DNS_SERVER": f"127.0.0.1:{port}"}).invoke(
            cli, ["issues", "send", "2019-10"])
    assert sent.exit_code == 0, sent.output
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ana@example.net"]]
    assert smtp_server.messages[0].content.startswith(b"DKIM-Signature: ")
