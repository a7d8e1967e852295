"""Every variant of the sample issue passes html-validate, accessibility rules included.

html-validate (npm, pinned in bench/node) runs with its recommended, a11y and document
presets. Email HTML has to break a few web rules to work in mail clients; exactly those
rules are off, each with its reason. The accessibility rules (image alt text, heading
levels, link text, table headers, ARIA) stay on. What html-validate does not check is
checked here directly: the document's language and that of items left untranslated
(WCAG 3.1.1, 3.1.2), and role="presentation" on every layout table, Outlook's included.
A rule the current template breaks is listed in TEMPLATE_PROBLEMS: its own test case is
a strict xfail that says what to fix, and every variant is still checked against all
the other rules.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bench.render import SENDER, issue_variants, sample_content
from newsletter.render import Logo, Sender, Variant, personalise, render_variant
from tests.node_tools import NodeToolError, node_tool

# Rules that contradict what email clients need; everything else stays as the presets set it.
EMAIL_CLIENT_CONFLICTS = {
    "no-inline-style": "Gmail and Outlook drop or ignore <style>: premailer inlines on purpose",
    "no-deprecated-attr": "Outlook's Word engine lays tables out from align, bgcolor, "
                          "cellpadding, cellspacing, valign and width attributes only",
    "no-conditional-comment": "<!--[if mso]> blocks give Outlook its fixed-width tables",
    "doctype-style": "case only: render.py writes <!doctype html> (premailer drops it); "
                     "every client reads both cases",
    "long-title": "<title> is the email's subject line (render.subject_for), an editorial "
                  "choice; 70 characters is a search-results limit, not an accessibility one",
}
RULES: dict[str, Any] = {
    **{rule: "off" for rule in EMAIL_CLIENT_CONFLICTS},
    # MJML wraps the body in <div role="article" aria-roledescription="email">, the
    # email-accessibility convention, because older clients do not know <article>.
    "prefer-native-element": ["error", {"exclude": ["article"]}],
}
CONFIG = {
    "root": True,
    "extends": ["html-validate:recommended", "html-validate:a11y", "html-validate:document"],
    "rules": RULES,
}
# Accessibility rules that must never be turned off here.
A11Y_RULES = ("wcag/h30", "wcag/h32", "wcag/h36", "wcag/h37", "wcag/h63", "wcag/h67",
              "wcag/h71", "heading-level", "empty-heading", "empty-title", "text-content",
              "aria-label-misuse", "hidden-focusable", "no-redundant-role", "unique-landmark",
              "area-alt", "input-missing-label", "element-required-attributes")
# Rules the current template breaks: rule -> what to change in templates/newsletter.mjml.j2.
# Each gets a strict xfail below; once the template is fixed it passes, fails the run as
# XPASS, and its entry goes. (The masthead was an <h2>-first page, "heading-level",
# until the template made it an <h1>.)
TEMPLATE_PROBLEMS: dict[str, str] = {}
UNSUBSCRIBE_URL = "https://news.example.org/u/MTIzNDU.c2lnbmF0dXJl"
PREFERENCES_URL = "https://news.example.org/p/MTIzNDU.c2lnbmF0dXJl"
VARIANTS = issue_variants()
CONTENT = sample_content()
# the masthead with a logo (NEWSLETTER_LOGO_*), checked as one more document
WITH_LOGO = Sender(SENDER.name, SENDER.postal_address,
                   Logo("https://news.example.org/logo.png", SENDER.name, 160, 40))


@cache
def as_sent(variant: Variant, sender: Sender = SENDER) -> str:
    rendered = render_variant(CONTENT, variant, sender)
    return personalise(rendered, unsubscribe_url=UNSUBSCRIBE_URL,
                       preferences_url=PREFERENCES_URL).html


Messages = dict[str, list[dict[str, Any]]]  # file name -> html-validate's messages


def html_validate(paths: Iterable[Path], config: dict[str, Any], work: Path) -> Messages:
    """Messages per file name, from one html-validate run over all files."""
    paths = list(paths)
    try:
        binary = node_tool("html-validate")
    except NodeToolError as exc:
        pytest.fail(str(exc))
    config_path, report = work / "htmlvalidate.json", work / "report.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    result = subprocess.run(
        [str(binary), "--config", str(config_path), f"--formatter=json={report}",
         *map(str, paths)],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode not in (0, 1) or not report.exists():  # 1: the files have errors
        pytest.fail(f"html-validate did not run (exit {result.returncode}): {result.stderr}")
    results = json.loads(report.read_text(encoding="utf-8"))
    messages: Messages = {Path(p).name: [] for p in paths}
    for entry in results:
        messages[Path(entry["filePath"]).name].extend(entry["messages"])
    return messages


def summary(messages: Iterable[dict[str, Any]]) -> list[str]:
    return [f"{m['ruleId']} line {m['line']}: {m['message']} ({m.get('selector')})"
            for m in messages]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Messages:
    """html-validate's messages for every variant of the sample issue, as sent."""
    out = tmp_path_factory.mktemp("a11y")
    paths = []
    for variant in VARIANTS:
        path = out / f"{variant.label}.html"
        path.write_text(as_sent(variant), encoding="utf-8")
        paths.append(path)
    logo = out / "es-CR-logo.html"
    logo.write_text(as_sent(Variant("es", "CR"), WITH_LOGO), encoding="utf-8")
    return html_validate([*paths, logo], CONFIG, out)


@pytest.mark.parametrize("label", [*(v.label for v in VARIANTS), "es-CR-logo"])
def test_variant_passes_html_validate(report: Messages, label: str) -> None:
    messages = [m for m in report[f"{label}.html"] if m["ruleId"] not in TEMPLATE_PROBLEMS]
    assert summary(messages) == []


if TEMPLATE_PROBLEMS:  # (pytest would report an empty parametrisation as a skip)

    @pytest.mark.parametrize("rule", [
        pytest.param(rule, marks=pytest.mark.xfail(strict=True, reason=f"template: {fix}"))
        for rule, fix in TEMPLATE_PROBLEMS.items()
    ])
    def test_known_template_problem_is_fixed(
        report: Messages, rule: str
    ) -> None:
        """Passes (and so fails as a strict xfail) once the template is fixed: then remove
        the rule from TEMPLATE_PROBLEMS."""
        broken = {name: summary(m for m in messages if m["ruleId"] == rule)
                  for name, messages in report.items()}
        assert {name: found for name, found in broken.items() if found} == {}


def test_accessibility_rules_stay_on() -> None:
    assert not set(A11Y_RULES) & set(EMAIL_CLIENT_CONFLICTS)
    assert not set(A11Y_RULES) & {r for r, v in RULES.items() if v == "off"}


def test_the_configuration_catches_accessibility_faults(tmp_path: Path) -> None:
    """The email configuration still has teeth: a page with typical faults fails."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html>\n<html lang="en"><head><title>Faults</title></head><body>'
        "<h1>News</h1><h3>Skipped a level</h3>"
        '<table role="presentation"><tbody><tr><td>'
        '<img src="logo.png" width="100" height="40">'
        '<a href="https://example.org/u"></a>'
        '<input type="email" name="email">'
        "</td></tr></tbody></table></body></html>\n",
        encoding="utf-8",
    )
    rules = {m["ruleId"] for m in html_validate([bad], CONFIG, tmp_path)["bad.html"]}
    assert {"heading-level", "wcag/h37", "wcag/h30", "input-missing-label"} <= rules, rules


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.label)
def test_layout_tables_are_presentational_and_images_have_alt(variant: Variant) -> None:
    """Screen readers read layout tables as data tables unless told otherwise; the
    Outlook-only tables inside conditional comments count too (html-validate skips them)."""
    html = as_sent(variant)
    tables = re.findall(r"<table\b[^>]*>", html, re.IGNORECASE)
    assert tables
    assert [t for t in tables if not re.search(r'\brole="presentation"', t)] == []
    images = re.findall(r"<img\b[^>]*>", html, re.IGNORECASE)
    assert [i for i in images if not re.search(r'\balt="', i)] == []


class _Languages(HTMLParser):
    """Each piece of text with the language it is marked as (the nearest lang attribute)."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
                      "meta", "source", "track", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str]] = []  # (tag, lang)
        self.root_lang = ""
        self.chunks: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        lang = dict(attrs).get("lang")
        if tag == "html":
            self.root_lang = lang or ""
        if tag not in self.VOID:
            self.stack.append((tag, lang or (self.stack[-1][1] if self.stack else "")))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                break

    def handle_data(self, data: str) -> None:
        if data.strip() and self.stack:
            self.chunks.append((self.stack[-1][1], data))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.label)
def test_languages_are_marked(variant: Variant) -> None:
    """WCAG 3.1.1 and 3.1.2, which html-validate does not check: the document is in the
    reader's language, and an item left in its source language is marked as such."""
    parser = _Languages()
    parser.feed(as_sent(variant))
    assert parser.root_lang == variant.language
    fallbacks = [i.in_language(variant.language) for i in CONTENT.items]
    fallbacks = [i for i in fallbacks if i.language != variant.language]
    if variant.language != "en":
        assert fallbacks, "the sample should have untranslated items to check"
    for item in fallbacks:
        for text in (item.title, *item.paragraphs):
            marked = {lang for lang, chunk in parser.chunks if text in chunk}
            assert marked == {item.language}, (text, marked)
