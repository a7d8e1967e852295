"""Previews for the communications team: every variant as files, and an index to open."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from newsletter import geo
from newsletter.render import IssueContent, Sender, Variant, personalise, render_variant

PREVIEW_LINK = "#preview-link"


@dataclass(frozen=True)
class PreviewFile:
    variant: Variant
    subject: str
    html_path: Path
    text_path: Path
    html_bytes: int


def preview_variants(
    audience: Iterable[tuple[str, str | None]],
    languages: Sequence[str],
    default_language: str,
    focus_countries: Iterable[str],
) -> list[Variant]:
    """A regional variant per language, plus each country-first variant subscribers will get."""
    focus = set(focus_countries)
    variants = {Variant(lang) for lang in languages}
    for language, country in audience:
        lang = language if language in languages else default_language
        variants.add(Variant(lang, country if country in focus else ""))
    return sorted(variants, key=lambda v: (v.language, v.country))


def write_preview(
    content: IssueContent, variants: Sequence[Variant], sender: Sender, out_dir: Path
) -> tuple[Path, list[PreviewFile]]:
    """Write `<lang>-<country>.html/.txt` per variant and an `index.html` linking them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[PreviewFile] = []
    for variant in variants:
        rendered = personalise(
            render_variant(content, variant, sender),
            unsubscribe_url=PREVIEW_LINK,
            preferences_url=PREVIEW_LINK,
        )
        html_path = out_dir / f"{variant.label}.html"
        text_path = out_dir / f"{variant.label}.txt"
        html_path.write_text(rendered.html, encoding="utf-8")
        text_path.write_text(rendered.text, encoding="utf-8")
        files.append(
            PreviewFile(variant, rendered.subject, html_path, text_path,
                        len(rendered.html.encode()))
        )
    index = out_dir / "index.html"
    index.write_text(_index_html(files), encoding="utf-8")
    return index, files


def _index_html(files: Sequence[PreviewFile]) -> str:
    rows = "\n".join(
        f"<tr><td>{escape(f.variant.language)}</td>"
        f"<td>{escape(geo.country_name(f.variant.country) if f.variant.country else 'regional')}"
        f"</td><td>{escape(f.subject)}</td>"
        f'<td><a href="{escape(f.html_path.name)}">HTML</a> ({f.html_bytes / 1024:.1f} KB)</td>'
        f'<td><a href="{escape(f.text_path.name)}">text</a></td></tr>'
        for f in files
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Issue preview</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}</style>
</head><body><h1>Issue preview</h1>
<table><thead><tr><th>Language</th><th>Country focus</th><th>Subject</th><th>HTML</th>
<th>Text</th></tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""
