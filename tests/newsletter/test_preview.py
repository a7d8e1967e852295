"""Previews: a file pair per variant, an index, and screenshots taken in headless Chromium."""

from __future__ import annotations

import re
import struct
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.render import SENDER, sample_content
from newsletter import screenshots
from newsletter.preview import PreviewFile, write_preview
from newsletter.render import Variant
from newsletter.screenshots import (
    BrowserMissing,
    ScreenshotError,
    chromium,
    find_chromium,
    open_page,
    screenshot,
    screenshot_variants,
)

CONTENT = sample_content()
VARIANTS = [Variant("en"), Variant("es", "CR")]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.fixture(scope="module")
def shot_preview(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[PreviewFile]]:
    try:
        return write_preview(CONTENT, VARIANTS, SENDER, tmp_path_factory.mktemp("preview"),
                             screenshots=True)
    except ScreenshotError as exc:  # no Chromium or Playwright: fail with the fix
        pytest.fail(str(exc))


def test_preview_writes_html_and_text_per_variant_and_an_index(tmp_path: Path) -> None:
    index, files = write_preview(CONTENT, VARIANTS, SENDER, tmp_path)  # the CLI's call
    assert index == tmp_path / "index.html"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "en-regional.html", "en-regional.txt", "es-CR.html", "es-CR.txt", "index.html",
    ]
    page = index.read_text(encoding="utf-8")
    for f in files:
        assert f.screenshots == ()
        assert f.html_bytes == len(f.html_path.read_bytes())
        assert f.text_bytes == len(f.text_path.read_bytes())
        assert f'href="{f.html_path.name}"' in page and f'href="{f.text_path.name}"' in page
        assert f"{f.html_bytes / 1024:.1f} KB" in page
        assert f.subject.replace("&", "&amp;") in page
    assert "Costa Rica" in page and "regional" in page  # the country focus, by name
    assert ".png" not in page and "Screenshots" not in page


def test_screenshots_at_375_and_600_px_are_listed_in_the_index(
    shot_preview: tuple[Path, list[PreviewFile]],
) -> None:
    index, files = shot_preview
    for f in files:
        stem = f.variant.label
        assert [p.name for p in f.screenshots] == [f"{stem}-375.png", f"{stem}-600.png"]
        for png, width in zip(f.screenshots, (375, 600), strict=True):
            png_width, png_height = png_size(png)
            assert png_width == width
            assert png_height > 1000  # the full page, not the first screen
    page = index.read_text(encoding="utf-8")
    assert "Screenshots" in page
    for name in ("es-CR-375.png", "es-CR-600.png", "en-regional-375.png"):
        assert re.search(rf'<a href="{name}"><img src="{name}" alt="[^"]+"', page), name


def test_screenshot_of_one_file(tmp_path: Path) -> None:
    html = tmp_path / "page.html"
    html.write_text('<!DOCTYPE html><html lang="en"><body style="margin:0">'
                    '<div style="height:2000px">tall</div></body></html>', encoding="utf-8")
    try:
        out = screenshot(html, tmp_path / "shots" / "page-600.png", 600)
    except ScreenshotError as exc:
        pytest.fail(str(exc))
    assert out == tmp_path / "shots" / "page-600.png"
    assert png_size(out) == (600, 2000)
    assert screenshot_variants([]) == []


class _Counter(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback web server that records every request it gets."""
    hits: list[str] = []
    handler = type("Handler", (_Counter,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_pages_never_fetch_anything(tmp_path: Path, http_server: tuple[str, list[str]]) -> None:
    """Remote stylesheets, fonts, images and tracking pixels are blocked: the server
    the page points at never hears from the browser."""
    base, hits = http_server
    (tmp_path / "local.png").write_bytes(b"")
    html = tmp_path / "remote.html"
    html.write_text(
        f'<!DOCTYPE html><html lang="en"><head><link rel="stylesheet" href="{base}/style.css">'
        f'<style>@import url("{base}/import.css"); body {{ background: url("{base}/bg.png") }}'
        f'</style></head><body><img src="{base}/pixel.gif" alt="">'
        '<img src="local.png" alt="local"></body></html>',
        encoding="utf-8",
    )
    blocked: list[str] = []
    try:
        with chromium() as browser, open_page(browser, html, 375, blocked=blocked):
            pass
        screenshot_variants([html], widths=(375,))
    except ScreenshotError as exc:
        pytest.fail(str(exc))
    assert hits == []
    assert f"{base}/style.css" in blocked and f"{base}/pixel.gif" in blocked
    assert not any("local.png" in url for url in blocked)  # local files load
    assert (tmp_path / "remote-375.png").exists()


def test_missing_chromium_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(screenshots.CHROMIUM_ENV, raising=False)
    monkeypatch.setattr(screenshots, "DEFAULT_PATHS", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserMissing, match="sudo apt-get install -y chromium"):
        find_chromium()
    with pytest.raises(BrowserMissing, match="sudo apt-get install -y chromium"):
        write_preview(CONTENT, VARIANTS[:1], SENDER, tmp_path / "out", screenshots=True)


def test_chromium_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "my-chrome"
    fake.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    monkeypatch.setenv(screenshots.CHROMIUM_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(BrowserMissing, match=r"NEWSLETTER_CHROMIUM=.*nowhere is not an exec"):
        find_chromium()
    monkeypatch.setenv(screenshots.CHROMIUM_ENV, str(fake))
    with pytest.raises(BrowserMissing, match="not an executable"):
        find_chromium()  # not executable yet
    fake.chmod(0o755)
    assert find_chromium() == fake
    page = tmp_path / "x.html"
    with pytest.raises(ScreenshotError, match="no file .*x.html"):
        screenshot_variants([page])
    page.write_text("<!DOCTYPE html><title>x</title>", encoding="utf-8")
    with pytest.raises(ScreenshotError, match="did not start"):  # it exits at once
        screenshot_variants([page])


def test_missing_playwright_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # import fails
    with pytest.raises(BrowserMissing, match="pip install playwright"), chromium():
        pass
