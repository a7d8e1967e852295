"""Previews for the communications team: every variant as files, and an index to open.

With screenshots, each variant also gets full-page PNGs at a phone's and a desktop's
width (`es-CR-375.png`, `es-CR-600.png`), taken in headless Chromium and shown as
thumbnails in the index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path

from newsletter import geo
from newsletter.render import (
    IssueContent,
    Rendered,
    Sender,
    Variant,
    personalise,
    render_variant,
)
from newsletter.screenshots import WIDTHS, png_path, screenshot_variants
from subscribers.validate import best_edition

PREVIEW_LINK = "#preview-link"


@dataclass(frozen=True)
class PreviewFile:
    variant: Variant
    subject: str
    html_path: Path
    text_path: Path
    html_bytes: int
    text_bytes: int = 0
    screenshots: tuple[Path, ...] = ()  # one per width, narrowest first


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
        lang = best_edition(language, languages, default_language)
        variants.add(Variant(lang, country if country in focus else ""))
    return sorted(variants, key=lambda v: (v.language, v.country))


def write_preview(
    content: IssueContent,
    variants: Sequence[Variant],
    sender: Sender,
    out_dir: Path,
    *,
    screenshots: bool = False,
    widths: Sequence[int] = WIDTHS,
    template_dir: Path | None = None,
    slug: str = "",
) -> tuple[Path, list[PreviewFile]]:
    """Write `<lang>-<country>.html/.txt` per variant and an `index.html` linking them;
    with `screenshots`, also `<lang>-<country>-<width>.png` per width (needs Chromium)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[PreviewFile] = []
    for variant in variants:
        rendered = personalise(
            render_variant(content, variant, sender, directory=template_dir,
                           view_url=PREVIEW_LINK),
            unsubscribe_url=PREVIEW_LINK,
            preferences_url=PREVIEW_LINK,
        )
        html_path = out_dir / f"{variant.label}.html"
        text_path = out_dir / f"{variant.label}.txt"
        html_path.write_text(rendered.html, encoding="utf-8")
        text_path.write_text(rendered.text, encoding="utf-8")
        files.append(
            PreviewFile(variant, rendered.subject, html_path, text_path,
                        len(rendered.html.encode()), len(rendered.text.encode()))
        )
    if screenshots:
        files = add_screenshots(files, widths)
    index = out_dir / "index.html"
    index.write_text(_index_html(files, slug, content), encoding="utf-8")
    return index, files


def add_screenshots(
    files: Sequence[PreviewFile], widths: Sequence[int] = WIDTHS
) -> list[PreviewFile]:
    """Take the PNGs of written previews (one browser for all) and list them in each file."""
    screenshot_variants([f.html_path for f in files], widths)
    ordered = sorted(widths)
    return [
        replace(f, screenshots=tuple(png_path(f.html_path, w) for w in ordered)) for f in files
    ]


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


def _thumbnails(f: PreviewFile) -> str:
    links = []
    for png in f.screenshots:
        width = png.stem.rpartition("-")[2]
        alt = f"{f.variant.label} at {width} px"
        links.append(
            f'<a href="{escape(png.name)}"><img src="{escape(png.name)}" alt="{escape(alt)}" '
            f'width="96" height="128" loading="lazy"></a>'
        )
    return f'<td class="shots">{" ".join(links)}</td>'


def _titles_html(files: Sequence[PreviewFile], content: IssueContent) -> str:
    """Each language's title (or that it gets the default subject line)."""
    languages = sorted({f.variant.language for f in files})
    rows = "".join(
        f"<li><strong>{escape(lang)}</strong>: "
        + (escape(content.title_in(lang)) if content.title_in(lang)
           else "<em>no title: the default subject line</em>")
        + ("" if not content.intro_in(lang) else " (with an introduction)")
        + "</li>"
        for lang in languages
    )
    return f"<h2>Title in each language</h2><ul>{rows}</ul>"


def _index_html(files: Sequence[PreviewFile], slug: str, content: IssueContent) -> str:
    name = f"Issue {slug} preview" if slug else "Issue preview"
    shots = any(f.screenshots for f in files)
    rows = "\n".join(
        f"<tr><td>{escape(f.variant.language)}</td>"
        f"<td>{escape(geo.country_name(f.variant.country) if f.variant.country else 'regional')}"
        f"</td><td>{escape(f.subject)}</td>"
        f'<td><a href="{escape(f.html_path.name)}">HTML</a> ({_kb(f.html_bytes)})</td>'
        f'<td><a href="{escape(f.text_path.name)}">text</a>'
        f"{f' ({_kb(f.text_bytes)})' if f.text_bytes else ''}</td>"
        f"{_thumbnails(f) if shots else ''}</tr>"
        for f in files
    )
    shots_heading = '<th scope="col">Screenshots</th>' if shots else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}
td.shots{{white-space:nowrap}}
img{{object-fit:cover;object-position:top;border:1px solid #ccc;vertical-align:top}}</style>
</head><body><h1>{escape(name)}</h1>
{_titles_html(files, content)}
<table><thead><tr><th scope="col">Language</th><th scope="col">Country focus</th>
<th scope="col">Subject</th><th scope="col">HTML</th><th scope="col">Text</th>{shots_heading}
</tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""


def render_preview(
    content: IssueContent, variant: Variant, sender: Sender, template_dir: Path | None = None
) -> Rendered:
    """One variant as a reader would get it, its personal links pointing nowhere (the
    newsroom's preview page shows it in a frame)."""
    return personalise(
        render_variant(content, variant, sender, directory=template_dir, view_url=PREVIEW_LINK),
        unsubscribe_url=PREVIEW_LINK,
        preferences_url=PREVIEW_LINK,
    )
