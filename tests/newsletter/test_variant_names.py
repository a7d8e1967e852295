"""One spelling of a variant everywhere: `es-CR` as the preview files say (`es:CR` accepted)."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.render import Variant
from newsletter.settings import Settings
from newsletter.variants import UnknownVariant, parse_variant

LANGUAGES = ["en", "es", "fr"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("es-CR", Variant("es", "CR")),
        ("es:CR", Variant("es", "CR")),
        ("ES-cr", Variant("es", "CR")),
        ("es_CR", Variant("es", "CR")),
        ("en-regional", Variant("en")),
        ("es", Variant("es")),
        (" fr ", Variant("fr")),
    ],
)
def test_a_variant_is_read_as_its_label_is_written(text: str, expected: Variant) -> None:
    assert parse_variant(text, LANGUAGES) == expected
    assert parse_variant(expected.label, LANGUAGES) == expected


@pytest.mark.parametrize("text", ["pt-BR", "de", "es-CRI", "es-", "", "es:1X"])
def test_an_unknown_variant_says_how_variants_are_spelled(text: str) -> None:
    with pytest.raises(UnknownVariant, match="LANGUAGE-COUNTRY") as info:
        parse_variant(text, LANGUAGES)
    assert "language among en, es, fr" in str(info.value)


ITEMS = "10 October, 2019\n\nShelters open in San José\n\nSan José. A paragraph.\n"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no SQL involved
def test_test_send_takes_the_preview_spelling(
    runner: CliRunner, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "items.txt").write_text(ITEMS, encoding="utf-8")
    assert runner.invoke(cli, ["items", "import", str(tmp_path / "items.txt")]).exit_code == 0
    created = runner.invoke(cli, ["issues", "create", "2019-10", "--from", "2019-10-01",
                                  "--to", "2019-10-31"])
    assert created.exit_code == 0, created.output
    for spelling in ("es-CR", "es:CR"):
        result = runner.invoke(cli, ["issues", "test-send", "2019-10", "--to",
                                     "editor@example.org", "--variant", spelling])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("es-CR sent to editor@example.org")
    emls = sorted((settings.var_dir / "outbox").glob("*.eml"))
    assert len(emls) == 2
    subject = message_from_bytes(emls[0].read_bytes(), policy=policy.default)["Subject"]
    assert subject.startswith("[TEST es-CR]")
    wrong = runner.invoke(cli, ["issues", "test-send", "2019-10", "--to", "editor@example.org",
                                "--variant", "pt-BR"])
    assert wrong.exit_code == 2 and "e.g. es-CR or en-regional" in wrong.output
