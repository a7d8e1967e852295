"""docker-compose.yml cannot run here (no Docker engine): check it stays true to the code;
and CI (.ci/run) is exactly what the README tells a new user to run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import yaml

from newsletter.cli import cli
from newsletter.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def resolve(argv: list[str]) -> click.Command:
    """Walk the CLI like the shell would; fail if a subcommand does not exist."""
    assert argv[0] == "newsletter"
    command: click.Command = cli
    ctx = click.Context(cli)
    for word in argv[1:]:
        if word.startswith("-") or not isinstance(command, click.Group):
            break
        sub = command.get_command(ctx, word)
        assert sub is not None, f"`{' '.join(argv)}`: no command {word!r}"
        command = sub
    return command


def test_services_are_the_ones_the_product_needs() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "worker", "scheduler", "web", "mailpit", "migrate"} <= set(
        services)
    assert services["worker"]["deploy"]["replicas"] >= 2


def test_every_command_is_a_real_cli_command_with_real_options() -> None:
    for name, service in compose()["services"].items():
        argv = service.get("command")
        if not argv or not isinstance(argv, list) or argv[0] != "newsletter":
            continue
        command = resolve(argv)
        known = {opt for p in command.params for opt in getattr(p, "opts", [])}
        known |= {"--help"}
        for word in argv[1:]:
            if word.startswith("-"):
                assert word in known, f"service {name}: {command.name} has no option {word}"


def test_environment_names_real_settings() -> None:
    fields = {f"NEWSLETTER_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose()["services"].items():
        for key in (service.get("environment") or {}):
            if key.startswith("NEWSLETTER_"):
                assert key in fields, f"service {name}: {key} is not a setting"
    assert "NEWSLETTER_BROKER_URL" in compose()["services"]["worker"]["environment"]


def test_workers_share_their_journal_and_may_write_it() -> None:
    """A killed worker's replies wait in its journal for the others (worker/journal.py):
    every replica mounts the same volume where the setting says, and the image's user
    owns that directory (a new named volume takes the image directory's owner)."""
    worker = compose()["services"]["worker"]
    journal_dir = worker["environment"]["NEWSLETTER_JOURNAL_DIR"]
    assert any(v.split(":")[1] == journal_dir and not v.startswith(("/", "."))
               for v in worker["volumes"]), "a named volume, shared by the replicas"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"mkdir -p {journal_dir}" in dockerfile
    assert re.search(r"chown -R newsletter " + re.escape(str(Path(journal_dir).parent)),
                     dockerfile)


def test_image_contains_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("newsletter", "subscribers", "worker", "templates"):
        assert f"COPY {package} ./{package}" in dockerfile


def readme_command(number: int) -> str:
    """The shell command under README's "**<number>. ...**" heading."""
    readme = (ROOT / "README.md").read_text()
    heading = re.search(rf"^\*\*{number}\. .*\*\*$", readme, re.M)
    assert heading is not None, f"README has no command {number}"
    block = re.search(r"```sh\n(.*?)\n```", readme[heading.end():], re.S)
    assert block is not None
    return block.group(1).strip()


def test_ci_runs_readme_command_2_and_nothing_more() -> None:
    """CI is what a new user does: the test command sets up whatever the tests need."""
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in script.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', readme_command(2)]
    assert readme_command(2) == (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' "
        "&& .venv/bin/python -m pytest")
