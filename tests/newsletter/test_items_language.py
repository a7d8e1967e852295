"""Each imported item's language is detected, among the configured languages, unless
--language (or a JSON item's "language") says it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.ingest.language import detect_language

SPANISH = """10 octubre, 2019

Sequía en Guanacaste

Liberia. Los agricultores del norte informan del mes más seco en cuarenta años.

Los pozos se están quedando sin agua y el gobierno estudia medidas de emergencia.

11 October, 2019

New bridge opens

Managua. A new bridge links the two banks of the river after four years of work.
"""


def languages(runner: CliRunner) -> dict[str, str]:
    rows = json.loads(runner.invoke(cli, ["items", "list", "--json"]).output)
    return {row["title"]: row["language"] for row in rows}


def test_a_file_of_spanish_items_is_stored_as_spanish(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "noticias.txt"
    path.write_text(SPANISH, encoding="utf-8")
    result = runner.invoke(cli, ["items", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "languages detected: 1 en, 1 es" in result.output
    assert languages(runner) == {"Sequía en Guanacaste": "es", "New bridge opens": "en"}


def test_language_option_and_json_field_win_over_detection(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "noticias.txt"
    path.write_text(SPANISH, encoding="utf-8")
    result = runner.invoke(cli, ["items", "import", str(path), "--language", "en"])
    assert result.exit_code == 0 and "detected" not in result.output
    assert set(languages(runner).values()) == {"en"}

    items = [{"date": "2019-10-12", "title": "Lluvias", "language": "en",
              "body": "Las lluvias llegaron por fin a la región norte del país."},
             {"date": "2019-10-13", "title": "Lluvias otra vez",
              "body": "Las lluvias volvieron a la región norte del país esta semana."}]
    json_path = tmp_path / "more.json"
    json_path.write_text(json.dumps(items), encoding="utf-8")
    result = runner.invoke(cli, ["items", "import", str(json_path)])
    assert "languages detected: 1 es" in result.output
    found = languages(runner)
    assert (found["Lluvias"], found["Lluvias otra vez"]) == ("en", "es")


def test_detection_is_among_the_configured_languages() -> None:
    french = "Le gouvernement a annoncé un nouveau plan pour les écoles rurales du pays."
    assert detect_language(french, ["en", "es", "fr"]) == "fr"
    assert detect_language(french, None) == "fr"
    assert detect_language(french, ["en", "es"]) in ("en", "es", None)
    assert detect_language("OK", ["en", "es"]) is None  # too short to tell: the caller decides
    assert detect_language("anything", ["es"]) == "es"
