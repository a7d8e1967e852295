"""`newsletter dkim ...`: the key that signs every message, and its DNS record."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, json_option
from worker.dkim import Key, generate_key, load_key, write_key_file, zone_line


@click.group()
def dkim() -> None:
    """Sign every message with DKIM, as Gmail and Yahoo require of bulk senders.

    Make a key, publish its DNS record, then set NEWSLETTER_DKIM_DOMAIN,
    NEWSLETTER_DKIM_SELECTOR and NEWSLETTER_DKIM_KEY_FILE: from then on every message
    (issues, test sends, confirmations) leaves signed.

    \b
    Example:
      newsletter dkim keygen --selector news2026 --domain example.org
      newsletter dkim show
    """


def _describe(key: Key, path: Path | None) -> dict[str, str]:
    found = {"domain": key.domain, "selector": key.selector, "algorithm": key.algorithm,
             "record_name": key.record_name, "record_type": "TXT", "record": key.record,
             "zone_line": zone_line(key)}
    if path is not None:
        found["key_file"] = str(path)
    return found


def _print_record(key: Key) -> None:
    click.echo(f"\nPublish this TXT record at {key.record_name}:\n")
    click.echo(f"  {key.record}\n")
    click.echo("In a zone file (the value split into strings of at most 255 characters):\n")
    click.echo(f"  {zone_line(key)}")


@dkim.command("keygen")
@click.option("--selector", required=True,
              help="A name for this key (e.g. news2026): a new key gets a new selector.")
@click.option("--domain", required=True, help="The domain of the From address (d=).")
@click.option("--algorithm", type=click.Choice(["rsa", "ed25519"]), default="rsa",
              show_default=True,
              help="rsa (2048 bits) is checked by every receiver; many, Gmail among them, "
                   "do not check ed25519 yet.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the private key (default: "
                   "$NEWSLETTER_VAR_DIR/dkim/SELECTOR.DOMAIN.key).")
@click.option("--force", is_flag=True, help="Replace a key file that exists.")
@json_option
@pass_app
@user_errors
def keygen(app: App, selector: str, domain: str, algorithm: str, out: Path | None,
           force: bool, as_json: bool) -> None:
    """Make a DKIM key, write it (readable by its owner only) and print its DNS record.

    \b
    Example:
      newsletter dkim keygen --selector news2026 --domain example.org
      newsletter dkim keygen --selector ed2026 --domain example.org --algorithm ed25519 \\
        --out /etc/newsletter/ed2026.key --json
    """
    key = generate_key(domain.strip().lower(), selector.strip(),
                       "rsa" if algorithm == "rsa" else "ed25519")
    path = out or app.settings.var_dir / "dkim" / f"{key.selector}.{key.domain}.key"
    write_key_file(key, path, overwrite=force)
    if as_json:
        emit_json(_describe(key, path))
        return
    click.echo(f"wrote the private key ({key.algorithm}) to {path}")
    _print_record(key)
    click.echo("\nThen sign with it:\n")
    click.echo(f"  NEWSLETTER_DKIM_DOMAIN={key.domain}")
    click.echo(f"  NEWSLETTER_DKIM_SELECTOR={key.selector}")
    click.echo(f"  NEWSLETTER_DKIM_KEY_FILE={path.resolve()}")


@dkim.command("show")
@json_option
@pass_app
@user_errors
def show(app: App, as_json: bool) -> None:
    """The configured key and the DNS record it needs (nothing is signed without one).

    \b
    Example:
      NEWSLETTER_DKIM_DOMAIN=example.org NEWSLETTER_DKIM_SELECTOR=news2026 \\
      NEWSLETTER_DKIM_KEY_FILE=var/dkim/news2026.example.org.key newsletter dkim show
    """
    key = load_key(app.settings)
    if key is None:
        if as_json:
            emit_json({"configured": False})
            return
        click.echo("DKIM is not configured: messages leave unsigned (unless the relay signs "
                   "them). Make a key with `newsletter dkim keygen`.")
        return
    if as_json:
        emit_json({"configured": True, **_describe(key, app.settings.dkim_key_file)})
        return
    click.echo(f"signing as d={key.domain} s={key.selector} ({key.algorithm}) with "
               f"{app.settings.dkim_key_file}")
    _print_record(key)
