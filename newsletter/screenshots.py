"""Screenshots of rendered variants in headless Chromium, for previews and layout tests.

Playwright drives the system's Chromium (Debian's `chromium` package), never a browser
Playwright downloads itself. A page may load local files only: every other request is
aborted, so a preview never fetches a web font, an image or a tracking pixel, and
JavaScript is off, as in a mail client.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

CHROMIUM_ENV = "NEWSLETTER_CHROMIUM"
DEFAULT_PATHS: tuple[Path, ...] = (Path("/usr/bin/chromium"),)
PATH_NAMES = ("chromium", "chromium-browser", "google-chrome")
WIDTHS = (375, 600)  # a phone, and the template's desktop width
VIEWPORT_HEIGHT = 800  # the screenshots are full-page; this only sets the first fold
# Without the background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # a second wall behind the request routing (which a background image once slipped
    # past): every http(s) request, loopback included, goes to a proxy that is not there
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)
INSTALL_CHROMIUM = "install it: sudo apt-get install -y chromium"


class ScreenshotError(NewsletterError):
    """A screenshot cannot be taken."""


class BrowserMissing(ScreenshotError):
    """No Chromium, or no Playwright to drive it."""


def find_chromium() -> Path:
    """$NEWSLETTER_CHROMIUM, else /usr/bin/chromium, else chromium, chromium-browser or
    google-chrome on PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        path = Path(configured)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise BrowserMissing(
            f"{CHROMIUM_ENV}={configured} is not an executable file: point it at a Chromium "
            f"or Chrome binary, or unset it to use /usr/bin/chromium ({INSTALL_CHROMIUM})"
        )
    for path in DEFAULT_PATHS:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    for name in PATH_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    looked = ", ".join([*(str(p) for p in DEFAULT_PATHS), *PATH_NAMES])
    raise BrowserMissing(
        f"screenshots need Chromium and none was found (looked for ${CHROMIUM_ENV}, {looked}): "
        f"{INSTALL_CHROMIUM} (or set {CHROMIUM_ENV} to a Chromium or Chrome binary)"
    )


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for as long as the block runs."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserMissing(
            "screenshots need the Playwright package to drive Chromium: pip install playwright "
            "(Chromium itself comes from the system; do not run `playwright install`)"
        ) from exc
    executable = find_chromium()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=str(executable), args=list(CHROMIUM_ARGS), headless=True
            )
        except PlaywrightError as exc:
            raise ScreenshotError(
                f"Chromium at {executable} did not start ({_first_line(exc)}); check that it runs "
                f"(`{executable} --headless --version`) or {INSTALL_CHROMIUM}"
            ) from exc
        try:
            yield browser
        finally:
            browser.close()


def _is_local(url: str) -> bool:
    return url.startswith(("file:", "data:", "about:"))


@contextmanager
def open_page(
    browser: Browser, html_path: Path, width: int, *, blocked: list[str] | None = None
) -> Iterator[Page]:
    """`html_path` loaded at a viewport `width` px wide; remote requests are aborted (and
    their URLs appended to `blocked`)."""
    context = browser.new_context(
        viewport={"width": width, "height": VIEWPORT_HEIGHT},
        device_scale_factor=1,
        java_script_enabled=False,
        service_workers="block",
    )

    def abort(route: Route) -> None:
        if blocked is not None:
            blocked.append(route.request.url)
        route.abort("blockedbyclient")

    try:
        context.route(lambda url: not _is_local(url), abort)
        page = context.new_page()
        page.goto(html_path.resolve().as_uri(), wait_until="load")
        yield page
    finally:
        context.close()


def png_path(html_path: Path, width: int, out_dir: Path | None = None) -> Path:
    """Where the screenshot of `es-CR.html` at 375 px goes: `es-CR-375.png`."""
    return (out_dir or html_path.parent) / f"{html_path.stem}-{width}.png"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def _shoot(browser: Browser, html_path: Path, out: Path, width: int) -> Path:
    from playwright.sync_api import Error as PlaywrightError

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open_page(browser, html_path, width) as page:
            page.screenshot(path=str(out), full_page=True, animations="disabled")
    except PlaywrightError as exc:
        raise ScreenshotError(
            f"no screenshot of {html_path} at {width} px: {_first_line(exc)}"
        ) from exc
    return out


def _existing(paths: Iterable[Path]) -> list[Path]:
    found = list(paths)
    missing = [str(p) for p in found if not p.is_file()]
    if missing:
        raise ScreenshotError(f"nothing to screenshot: no file {', '.join(missing)}")
    return found


def screenshot(html_path: Path, out: Path, width: int) -> Path:
    """A full-page PNG of `html_path` at a viewport `width` px wide, written to `out`."""
    _existing([html_path])
    with chromium() as browser:
        return _shoot(browser, html_path, out, width)


def screenshot_variants(
    paths: Iterable[Path], widths: Sequence[int] = WIDTHS, out_dir: Path | None = None
) -> list[Path]:
    """Full-page PNGs of every HTML file at every width (`es-CR-375.png`), beside the
    files or in `out_dir`; one browser for all of them."""
    html_paths = _existing(paths)
    if not html_paths:
        return []
    with chromium() as browser:
        return [
            _shoot(browser, path, png_path(path, width, out_dir), width)
            for path in html_paths
            for width in widths
        ]
