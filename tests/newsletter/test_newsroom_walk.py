"""Issue 10's walk through the newsroom, in one piece, as a communications team does it.

Debian's Chromium, driven by Playwright, against a real `newsletter serve` on loopback
(tests/newsroom.py), mailing to the outbox. Marta (an editor who reads the newsroom in
Spanish) logs in, uploads an item file, creates an issue that needs approval, previews
its es-CR edition and submits it; she is refused approving it herself. Ana (an approver,
in a browser context of her own) approves it, schedules it in Costa Rica's time, finds it
cannot be sent now while a schedule is ahead, takes it off the calendar, confirms the
send with its audience count and watches the progress page reach "sent" by its script.
The outbox then holds one message per subscriber, each in their language with their
country's item first. Last, in the same served instance: a form without its CSRF token,
a forged session cookie and a wrong role are refused and change nothing.

Set NEWSLETTER_SCREENSHOTS_DIR to keep a screenshot of every page at 375 and 1280 px.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import time
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from newsletter.db import make_engine, session_factory, utcnow
from newsletter.items import find_item, translate_item
from newsletter.screenshots import INSTALL_CHROMIUM
from newsletter.users import find_user
from newsletter.web.auth import SESSION_COOKIE, session_key
from subscribers.people import NewSubscriber, add
from tests.newsroom import add_user, login, serve_newsroom

SLUG = "2026-11"
EDITOR, APPROVER = "marta.solis@example.org", "ana.mora@example.org"

NEWS = """\
24 November, 2026

Mobile clinics reach families in the northern border towns

San José. Two mobile clinics of the Social Security Fund began weekly visits to Upala and
Los Chiles, offering check-ups, vaccinations and help with health insurance enrolment.

The visits will continue until March, when the dry season makes the roads easier.

20 November, 2026

Cooperatives in Managua open a job board for returning workers

Managua. Six cooperatives now publish their openings on one board, with training places
for people who came back from abroad this year.

17 November, 2026

Belize City shelter extends its opening hours

Belize City. The reception shelter will stay open until midnight, so that people arriving
on the late buses get a meal, a phone call and a bed.

12 November, 2026

Panama City schools enrol newly arrived children mid-year

Panama City. The Ministry of Education will accept enrolments until the end of the school
year, with placement tests in Spanish and English.
"""
# the translator's Spanish versions (as `newsletter items translate` adds them)
SPANISH = {
    "Mobile clinics reach families in the northern border towns": (
        "Clínicas móviles llegan a las familias de los pueblos fronterizos del norte",
        ["San José. Dos clínicas móviles de la Caja Costarricense de Seguro Social "
         "comenzaron visitas semanales a Upala y Los Chiles."]),
    "Cooperatives in Managua open a job board for returning workers": (
        "Cooperativas de Managua abren una bolsa de empleo para quienes regresan",
        ["Managua. Seis cooperativas publican sus vacantes en una sola bolsa."]),
    "Belize City shelter extends its opening hours": (
        "El albergue de Ciudad de Belice amplía su horario",
        ["Ciudad de Belice. El albergue abrirá hasta la medianoche."]),
    "Panama City schools enrol newly arrived children mid-year": (
        "Escuelas de Ciudad de Panamá matriculan a niñas y niños recién llegados",
        ["Ciudad de Panamá. El Ministerio de Educación aceptará matrículas todo el año."]),
}
CR_EN, CR_ES = "Mobile clinics reach families", "Clínicas móviles llegan"
# who subscribes: address -> (country, language, the start of the title that must come first)
SUBSCRIBERS = {
    "lucia.vargas@example.org": ("CR", "es", CR_ES),
    "jose.araya@example.org": ("CR", "es", CR_ES),
    "carlos.lopez@example.org": ("NI", "es", "Cooperativas de Managua"),
    "sofia.ruiz@example.org": ("PA", "es", "Escuelas de Ciudad de Panamá"),
    "jenny.young@example.org": ("BZ", "en", "Belize City shelter"),
    "mike.davis@example.org": ("US", "en", CR_EN),  # no US item: the regional edition
}
TITLES = {"es": "Noticias de la región, noviembre", "en": "News from the region, November"}


def launch(playwright: object) -> Browser:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(f"no chromium on PATH: {INSTALL_CHROMIUM}")
    return playwright.chromium.launch(  # type: ignore[attr-defined, no-any-return]
        executable_path=executable, headless=True,
        args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
              "--no-proxy-server"])


def new_context(browser: Browser) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(5000)
    return context, context.new_page()


UNLABELLED = """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
          && !e.getAttribute('aria-labelledby')).map(e => e.outerHTML.slice(0, 80))"""


class Shots:
    """Every page fits a 375 px phone and labels its fields; screenshots at 375 and
    1280 px are kept with NEWSLETTER_SCREENSHOTS_DIR."""

    def __init__(self) -> None:
        keep = os.environ.get("NEWSLETTER_SCREENSHOTS_DIR")
        self.dir = Path(keep) if keep else None
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Page, name: str) -> None:
        page.set_viewport_size({"width": 375, "height": 800})  # a phone: nothing wider
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, name
        assert page.evaluate(UNLABELLED) == [], name  # every field has its label
        page.set_viewport_size({"width": 1280, "height": 800})
        if self.dir is None:
            return
        for width in (375, 1280):
            page.set_viewport_size({"width": width, "height": 800})
            page.screenshot(path=self.dir / f"walk-{name}-{width}.png", full_page=True)
        page.set_viewport_size({"width": 1280, "height": 800})


def add_subscribers_and_translations(env: dict[str, str]) -> None:
    """What the team does outside the browser: subscribers (as `subscribers add`) and the
    translator's Spanish versions of the uploaded items (as `items translate`)."""
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    try:
        with session_factory(engine)() as session, session.begin():
            for address, (country, language, _first) in SUBSCRIBERS.items():
                add(session, NewSubscriber(address, country=country, language=language,
                                           preconfirm=True), default_language="en")
            for english, (title, paragraphs) in SPANISH.items():
                day = {"Mobile": 24, "Cooperatives": 20, "Belize": 17, "Panama": 12}[
                    english.split()[0]]
                item = find_item(session, date(2026, 11, day), english)
                translate_item(session, item.id, "es", title=title, paragraphs=paragraphs)
    finally:
        engine.dispose()


def forged_cookie(env: dict[str, str], address: str) -> str:
    """A session for `address` signed with a guessed key (not the server's)."""
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    try:
        with session_factory(engine)() as session:
            uid = find_user(session, address).id
    finally:
        engine.dispose()
    app = Flask("forger")
    app.secret_key = session_key("guessed-secret")
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    assert serializer is not None
    return str(serializer.dumps({"uid": uid, "at": int(time.time()),
                                 "csrf_token": "forged"}))


def outbox_messages(env: dict[str, str]) -> dict[str, EmailMessage]:
    found: dict[str, EmailMessage] = {}
    for path in (Path(env["NEWSLETTER_VAR_DIR"]) / "outbox").rglob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        to = str(message["To"])
        assert to not in found, f"{to} got the issue twice"
        found[to] = message
    return found


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_the_newsroom_walk(tmp_path: Path) -> None:
    news = tmp_path / "noticias-noviembre.txt"
    news.write_text(NEWS, encoding="utf-8")
    shots = Shots()
    with serve_newsroom(tmp_path, NEWSLETTER_LANGUAGES='["en","es"]',
                        NEWSLETTER_DEFAULT_LANGUAGE="en") as (base_url, env), \
            sync_playwright() as playwright:
        add_user(env, EDITOR, "editor", name="Marta Solís", language="es")
        add_user(env, APPROVER, "approver", name="Ana Mora")
        issue_url = f"{base_url}/admin/issues/{SLUG}"
        browser = launch(playwright)
        try:
            # --- Marta, editor, in Spanish: upload, create, preview, submit ------------
            marta_context, marta = new_context(browser)
            login(marta, base_url, EDITOR)
            expect(marta.locator("html")).to_have_attribute("lang", "es")
            marta.get_by_role("link", name="Noticias", exact=True).click()
            marta.get_by_label("Archivo de noticias").set_input_files(news)
            marta.get_by_label("Idioma de las noticias").select_option("en")
            marta.get_by_role("button", name="Subir").click()
            expect(marta.get_by_role("status")).to_have_text(
                "Noticias leídas: 4; nuevas: 4, actualizadas: 0, ya estaban: 0")
            shots(marta, "items")
            add_subscribers_and_translations(env)

            marta.get_by_role("link", name="Boletines", exact=True).click()
            marta.get_by_label("Nombre (p. ej., 2026-12)").fill(SLUG)
            marta.get_by_label("Desde", exact=True).fill("2026-11-01")
            marta.get_by_label("Hasta", exact=True).fill("2026-11-30")
            marta.get_by_label("Título en es").fill(TITLES["es"])
            marta.get_by_label("Título en en").fill(TITLES["en"])
            marta.get_by_label("Aprobación").select_option(label="necesaria")
            expect(marta.get_by_label("Enfoque por país")).to_have_value("first")
            with marta.expect_navigation():
                marta.get_by_role("button", name="Crear boletín").click()
            assert marta.url.startswith(issue_url)
            facts = marta.locator("dl.facts")
            expect(facts).to_contain_text("4 noticias")
            expect(facts).to_contain_text("6 suscriptores")
            shots(marta, "issue")

            marta.get_by_role("link", name="Vista previa de cada variante").click()
            es_cr = marta.locator("#v-es-CR")
            expect(es_cr.locator("[lang=es]").first).to_have_text(TITLES["es"])
            es_cr.get_by_text("Versión de texto").click()
            text = es_cr.locator("pre.text").inner_text()
            assert text.index(CR_ES) < text.index("Cooperativas de Managua")
            assert text.index(CR_ES) < text.index("Escuelas de Ciudad de Panamá")
            frame = es_cr.frame_locator("iframe").first
            expect(frame.locator("html")).to_have_attribute("lang", "es")
            expect(frame.get_by_text(CR_ES)).to_be_visible()
            shots(marta, "preview")

            # back to the issue by keyboard (a mouse click right after scrolling past the
            # sandboxed frames can land in a frame in headless Chromium)
            marta.get_by_role("link", name=f"Volver al boletín {SLUG}").focus()
            with marta.expect_navigation():
                marta.keyboard.press("Enter")
            marta.get_by_role("link", name="Revisión y aprobación").click()
            expect(marta.locator("[data-review]")).to_have_text("no enviado a revisión")
            marta.get_by_label("Nota (necesaria para rechazar)").fill(
                "Lista: la nota de Costa Rica va primero para Costa Rica.")
            marta.get_by_role("button", name="Enviar a revisión").click()
            expect(marta.get_by_role("status")).to_have_text("Enviado a revisión.")
            # (states are the library's words until they are translated)
            expect(marta.locator("[data-review]")).to_have_text(re.compile("in_review|en revisión"))
            # she may not approve her own issue: no button, and the form is refused
            expect(marta.get_by_role("button", name="Aprobar")).to_have_count(0)
            token = marta.locator("input[name=csrf_token]").first.input_value()
            refused = marta.request.post(f"{issue_url}/review", form={
                "csrf_token": token, "action": "approve", "note": ""})
            assert refused.status == 403
            assert "Su rol no permite esta página." in refused.text()
            shots(marta, "review-submitted")

            # --- Ana, approver: approve, schedule, send, watch ---------------------------
            ana_context, ana = new_context(browser)
            login(ana, base_url, APPROVER)
            ana.goto(issue_url)
            expect(ana.locator("dl.facts")).to_contain_text(re.compile("in.review"))
            ana.get_by_role("link", name="Review and approval").click()
            expect(ana.locator("table")).to_contain_text("Marta Solís")
            ana.get_by_role("button", name="Approve").click()
            expect(ana.get_by_role("status")).to_have_text("Approved.")
            expect(ana.locator("[data-review]")).to_have_text(re.compile("approved|aprobado"))
            shots(ana, "review-approved")

            # approved: withdrawing is the one step left here; the next ones are links
            expect(ana.get_by_role("button", name="Approve")).to_have_count(0)
            expect(ana.get_by_role("button", name="Withdraw")).to_have_count(1)
            ana.locator("[data-next]").get_by_role("link", name="Choose when it goes out").click()
            tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
            ana.get_by_label("At this date and time in the zone below").check()
            ana.get_by_label("Date", exact=True).fill(tomorrow)
            ana.get_by_label("Time", exact=True).fill("09:00")
            ana.get_by_label("Time zone", exact=True).fill("America/Costa_Rica")
            ana.get_by_role("button", name="Schedule", exact=True).click()
            expect(ana.get_by_role("status")).to_have_text("Scheduled.")
            expect(ana.locator("[data-schedule]")).to_have_text(
                f"Scheduled for {tomorrow} 09:00 America/Costa_Rica ({tomorrow} 15:00 UTC).")
            expect(ana.locator("#zones-title + p")).to_have_text("6 deliveries planned.")
            shots(ana, "schedule")

            # sending now while a schedule is ahead: the page says what to do, and links it
            ana.get_by_role("link", name="Send", exact=True).click()
            expect(ana.get_by_role("alert")).to_contain_text("scheduled")
            expect(ana.get_by_role("button", name="Send to 6 subscribers now")).to_have_count(0)
            shots(ana, "send-scheduled")
            ana.get_by_role("link", name="Unschedule it on the Schedule page").click()
            ana.get_by_role("button", name="Unschedule").click()
            expect(ana.get_by_role("status")).to_contain_text("a draft again")

            ana.get_by_role("link", name="Send", exact=True).click()
            expect(ana.locator("[data-audience]")).to_have_text(
                "It goes to 6 subscribers (every active subscriber).")
            shots(ana, "send")
            with ana.expect_navigation():
                ana.get_by_role("button", name="Send to 6 subscribers now").click()
            assert ana.url.endswith("/progress?started=1")
            ana.evaluate("window.notReloaded = true")
            expect(ana.locator('[data-field="status"]')).to_have_text("sent", timeout=15000)
            assert ana.evaluate("window.notReloaded") is True  # updated in place, by script
            expect(ana.locator('[data-count="sent"]')).to_have_text("6")
            expect(ana.locator('[data-field="done"]')).to_have_text("6")
            expect(ana.locator('[data-field="total"]')).to_have_text("6")
            expect(ana.get_by_role("button", name="Cancel the send")).to_be_hidden()
            shots(ana, "progress")

            sent = outbox_messages(env)
            assert sorted(sent) == sorted(SUBSCRIBERS)
            for address, (country, language, first) in SUBSCRIBERS.items():
                message = sent[address]
                assert str(message["Subject"]) == TITLES[language], address
                body = " ".join(text_of(message).split())  # titles wrap in the text part
                edition = f"{language}-{country if country != 'US' else 'regional'}"
                assert f"/v/{SLUG}/{edition} " in body, (address, edition)
                titles = [t for t, _p in SPANISH.values()] if language == "es" \
                    else list(SPANISH)
                positions = sorted((body.index(t), t) for t in titles)
                assert positions[0][1].startswith(first), (address, positions)

            # --- refusals, in the same served instance -----------------------------------
            # a form without the session's CSRF token changes nothing
            no_token = marta.request.post(f"{base_url}/admin/issues/create", form={
                "slug": "2026-12", "from": "2026-12-01", "to": "2026-12-31"})
            assert no_token.status == 400
            assert "sin un código de seguridad válido" in no_token.text()
            assert marta.request.get(f"{base_url}/admin/issues/2026-12").status == 404

            # a session cookie signed with a guessed key is no session: the login page
            forger_context, forger = new_context(browser)
            forger_context.add_cookies([{
                "name": SESSION_COOKIE, "value": forged_cookie(env, APPROVER),
                "url": f"{base_url}/admin/"}])
            forger.goto(f"{issue_url}/send")
            assert "/admin/login" in forger.url
            expect(forger.get_by_role("button", name="Log in")).to_be_visible()
            forged_post = forger.request.post(f"{issue_url}/control", form={
                "csrf_token": "forged", "action": "cancel", "confirm": "yes"})
            assert forged_post.status == 400
            forger_context.close()

            # a role that may not: the editor is refused the approver's pages
            for path in ("schedule", "send"):
                wrong = marta.request.post(f"{issue_url}/{path}", form={
                    "csrf_token": token, "action": "unschedule", "confirm": "yes"})
                assert wrong.status == 403, path
            marta.goto(f"{issue_url}/progress")
            expect(marta.locator('[data-field="status"]')).to_have_text(re.compile("^(sent|enviado)$"))
            expect(marta.get_by_role("button", name="Pausar")).to_have_count(0)
            marta_context.close()
            ana_context.close()
        finally:
            browser.close()
        assert len(outbox_messages(env)) == len(SUBSCRIBERS)  # nothing more went out
