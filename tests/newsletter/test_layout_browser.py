"""The template's layout in a real browser: headless Chromium at 375, 600 and 1024 px.

Everything is measured from element boxes (getBoundingClientRect), not from pixels:
the body column is 600 px and centred on a desktop and fills a 375 px phone without
horizontal scrolling; item cards stack; multi-column sections go side by side on a
desktop and stack on a phone; the footer's unsubscribe link is visible below the last
card; no text runs out of its box. Cards are found through the template's
`item-title` class (the column around it is the card).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from bench.render import SENDER, sample_content
from newsletter.render import ItemView, Variant, personalise, render_variant
from newsletter.screenshots import ScreenshotError, chromium, open_page

PHONE, DESKTOP, WIDE = 375, 600, 1024
BODY_WIDTH = 600  # mj-body width
MJML_BREAKPOINT = 480  # columns stack below this viewport width
UNSUBSCRIBE_URL = "https://news.example.org/u/MTIzNDU.c2lnbmF0dXJl"
PREFERENCES_URL = "https://news.example.org/p/MTIzNDU.c2lnbmF0dXJl"
VARIANTS = (Variant("en"), Variant("es", "CR"), Variant("en", "BZ"))
# Long words must wrap inside the card on a phone rather than widen the page.
STRESS = ItemView(
    date(2019, 10, 1),
    "Donaudampfschifffahrtsgesellschaftskapitänsmützenabzeichenhersteller visit the coast",
    "Belize City",
    ("Details: https://example.org/a/very/long/path/without/any/break/opportunities/"
     "whatsoever/index.html?campaign=newsletter-2019-10&country=BZ",),
    ("BZ",),
)

MEASURE = """(unsubscribe) => {
  const box = (e) => {
    const r = e.getBoundingClientRect();
    return {x: r.left, y: r.top, w: r.width, h: r.height, right: r.right, bottom: r.bottom};
  };
  const shown = (e) => e.getClientRects().length > 0
    && getComputedStyle(e).visibility !== "hidden" && getComputedStyle(e).display !== "none";
  const describe = (e) => e.outerHTML.slice(0, 120);
  const root = document.querySelector('[role="article"]') || document.body;
  const sectionEls = Array.from(root.children).filter((e) => e.tagName === "DIV" && shown(e));
  const sections = sectionEls.map((s) => ({
    box: box(s),
    columns: Array.from(s.querySelectorAll('[class*="mj-column-"]')).filter(shown).map(box),
  }));
  const cards = Array.from(document.querySelectorAll(".item-title"))
    .map((t) => t.closest('[class*="mj-column-"]')).map(box);
  const clipped = [];
  for (const e of document.querySelectorAll("td > div, h1, h2, h3, p")) {
    if (!shown(e) || !e.textContent.trim()) continue;
    const b = box(e);
    if (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1) {
      clipped.push({element: describe(e), why: "content larger than its box"});
      continue;
    }
    for (let a = e.parentElement; a && a !== document.documentElement; a = a.parentElement) {
      const style = getComputedStyle(a);
      const ab = box(a);
      const hidesX = style.overflowX !== "visible", hidesY = style.overflowY !== "visible";
      if ((hidesX && (b.x < ab.x - 0.5 || b.right > ab.right + 0.5))
          || (hidesY && (b.y < ab.y - 0.5 || b.bottom > ab.bottom + 0.5))) {
        clipped.push({element: describe(e), why: "cut by " + describe(a)});
        break;
      }
    }
    if (b.x < -0.5 || b.right > innerWidth + 0.5) {
      clipped.push({element: describe(e), why: "outside the viewport"});
    }
  }
  const link = Array.from(document.querySelectorAll("a")).find((a) => a.href === unsubscribe);
  const titles = Array.from(document.querySelectorAll(".item-title h2"));
  return {
    viewport: innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    sections, cards, clipped,
    unsubscribe: link ? box(link) : null,
    titleFontSizes: titles.map((t) => parseFloat(getComputedStyle(t).fontSize)),
  };
}"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample issue plus one item of long words, rendered and personalised like a send."""
    content = sample_content()
    content = replace(content, items=[*content.items, STRESS])
    out = tmp_path_factory.mktemp("layout")
    written = {}
    for variant in VARIANTS:
        rendered = personalise(render_variant(content, variant, SENDER),
                               unsubscribe_url=UNSUBSCRIBE_URL, preferences_url=PREFERENCES_URL)
        path = out / f"{variant.label}.html"
        path.write_text(rendered.html, encoding="utf-8")
        written[variant.label] = path
    return written


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        with chromium() as b:
            yield b
    except ScreenshotError as exc:  # missing Chromium or Playwright: fail, with the fix
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def measured(browser: Browser, pages: dict[str, Path]) -> dict[tuple[str, int], dict[str, Any]]:
    boxes = {}
    for label, path in pages.items():
        for width in (PHONE, DESKTOP, WIDE):
            with open_page(browser, path, width) as page:
                boxes[label, width] = page.evaluate(MEASURE, UNSUBSCRIBE_URL)
    return boxes


LABELS = [v.label for v in VARIANTS]


def near(a: float, b: float) -> bool:
    return abs(a - b) <= 1


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("width", [DESKTOP, WIDE])
def test_body_is_a_centred_600px_column_on_a_desktop(
    measured: dict[tuple[str, int], dict[str, Any]], label: str, width: int
) -> None:
    m = measured[label, width]
    assert len(m["sections"]) >= 3, "expected header, item and footer sections"
    for section in m["sections"]:
        box = section["box"]
        assert near(box["w"], BODY_WIDTH), section
        assert near(box["x"], (width - BODY_WIDTH) / 2), section  # centred
    assert m["scrollWidth"] <= width


@pytest.mark.parametrize("label", LABELS)
def test_body_fills_a_phone_without_horizontal_scrolling(
    measured: dict[tuple[str, int], dict[str, Any]], label: str
) -> None:
    m = measured[label, PHONE]
    assert m["viewport"] == PHONE
    assert m["scrollWidth"] <= PHONE, "the page scrolls sideways on a 375 px phone"
    for section in m["sections"]:
        assert near(section["box"]["x"], 0) and near(section["box"]["w"], PHONE), section


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_item_cards_stack_one_per_row(
    measured: dict[tuple[str, int], dict[str, Any]], label: str, width: int
) -> None:
    cards = measured[label, width]["cards"]
    assert len(cards) == len(sample_content().items) + 1  # the sample and the long words
    for above, below in zip(cards, cards[1:], strict=False):
        assert below["y"] >= above["bottom"] - 0.5, (above, below)
        assert near(below["x"], above["x"]) and near(below["w"], above["w"])
    for card in cards:
        assert card["w"] >= 0.9 * min(width, BODY_WIDTH), card  # one card fills the row
        assert card["x"] >= 0 and card["right"] <= width, card


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_columns_side_by_side_on_a_desktop_and_stacked_on_a_phone(
    measured: dict[tuple[str, int], dict[str, Any]], label: str, width: int
) -> None:
    """Generic over the template: a one-column section's column fills it; columns of a
    multi-column section share a row at 600 px and stack at 375 px."""
    for section in measured[label, width]["sections"]:
        columns, box = section["columns"], section["box"]
        assert columns, section
        if len(columns) == 1:
            assert columns[0]["w"] >= 0.8 * box["w"], section
            continue
        for left, right in zip(columns, columns[1:], strict=False):
            if width >= MJML_BREAKPOINT:
                assert near(left["y"], right["y"]) and right["x"] >= left["right"] - 0.5, section
            else:
                assert right["y"] >= left["bottom"] - 0.5, section
                assert near(right["w"], left["w"]), section


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_footer_unsubscribe_link_is_visible_below_the_last_card(
    measured: dict[tuple[str, int], dict[str, Any]], label: str, width: int
) -> None:
    m = measured[label, width]
    link = m["unsubscribe"]
    assert link is not None, "no link to the recipient's unsubscribe URL"
    assert link["w"] > 0 and link["h"] > 0
    assert link["y"] >= m["cards"][-1]["bottom"]
    assert link["x"] >= 0 and link["right"] <= width


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_no_text_is_clipped(
    measured: dict[tuple[str, int], dict[str, Any]], label: str, width: int
) -> None:
    assert measured[label, width]["clipped"] == []


@pytest.mark.parametrize("label", LABELS)
def test_phone_styles_apply(
    measured: dict[tuple[str, int], dict[str, Any]], label: str
) -> None:
    """The template's @media rule (with !important, which premailer must keep) shrinks
    item titles on a phone."""
    phone = measured[label, PHONE]["titleFontSizes"]
    desktop = measured[label, DESKTOP]["titleFontSizes"]
    assert phone and all(p < d for p, d in zip(phone, desktop, strict=True)), (phone, desktop)
