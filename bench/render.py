"""Rendering benchmark: every variant of an issue, per-recipient work, and the MJML compilers.

    .venv/bin/python -m bench.render [--rounds 5] [--items 10] [--no-node]

The issue is the project's sample (newsletter/data): 10 items, Spanish translations of
five, sent in 3 languages (en, es, fr) x (10 countries + the regional order) = 33
variants. Targets: all variants in <= 1 s; per-recipient personalisation <= 20 us.

The official MJML compiler (npm `mjml`, pinned in bench/node/package.json and
installed with `npm ci` on first use) compiles the same 33 MJML sources as
mjml-python, in one node process (start-up excluded), with the same options: no
comments, no web fonts, no minifying or beautifying. Its CLI is also timed once,
start-up included, as a user would meet it. Figures are printed; nothing asserts them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

from mjml import mjml2html

from newsletter import render
from newsletter.cli.demo import DEMO_COUNTRIES, sample_items_text
from newsletter.ingest.text import parse_text
from newsletter.render import (
    IssueContent,
    ItemText,
    ItemView,
    Rendered,
    Sender,
    Variant,
    personalise,
    render_variant,
)
from subscribers.tokens import subscriber_links
from tests.node_tools import NODE_DIR, node, node_tool
from worker import mime

LANGUAGES = ("en", "es", "fr")
COUNTRIES = DEMO_COUNTRIES  # ten
SENDER = Sender(name="Boletín Regional", postal_address="Apartado 123-1000, San José, Costa Rica")
BASE_URL = "https://news.example.org"
SALT = "bench-salt"
SECRET = "bench-secret"

# Compiles every source `rounds` times in one process; prints per-round totals (ms).
NODE_SCRIPT = r"""
const mjml = require("mjml");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const options = {validationLevel: "soft", keepComments: false, fonts: {},
                 minify: false, beautify: false};
(async () => {
  const rounds = [];
  let first = null, bytes = 0, errors = [];
  for (let r = 0; r < input.rounds; r++) {
    const start = process.hrtime.bigint();
    for (const source of input.sources) {
      const t0 = process.hrtime.bigint();
      const out = await mjml(source, options);
      if (first === null) first = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r === 0) { bytes += out.html.length; errors.push(...out.errors); }
    }
    rounds.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  const seen = [...new Set(errors.map(e => e.formattedMessage))];
  console.log(JSON.stringify({rounds, first, bytes, errors: seen}));
})().catch(e => { console.error(e); process.exit(1); });
"""


def sample_content(n_items: int = 10) -> IssueContent:
    """The project's sample items (and their Spanish translations) as an issue, repeated
    with shifted dates and numbered titles when more than the sample's items are asked."""
    parsed = parse_text(sample_items_text(), "sample-items.txt")
    raw = (files("newsletter") / "data" / "sample-translations.json").read_text("utf-8")
    translations = {
        (e["date"], e["title"]): {
            e["language"]: ItemText(e["translation"]["title"], e["translation"].get("place"),
                                    tuple(e["translation"]["paragraphs"]))
        }
        for e in json.loads(raw)
    }
    base = [
        ItemView(p.published, p.title, p.place, p.paragraphs, p.countries, p.language,
                 translations.get((p.published.isoformat(), p.title), {}))
        for p in parsed
    ]
    items = []
    for n in range(n_items):
        item = base[n % len(base)]
        if n >= len(base):
            copy = n // len(base) + 1
            item = replace(item, title=f"{item.title} ({copy})",
                           published=item.published - timedelta(days=copy))
        items.append(item)
    first = min(i.published for i in items)
    return IssueContent("", first.replace(day=1), date(2019, 10, 31), items)


def issue_variants(languages: Sequence[str] = LANGUAGES,
                   countries: Sequence[str] = COUNTRIES) -> list[Variant]:
    return [Variant(lang, country) for lang in languages for country in ("", *countries)]


def mjml_sources(content: IssueContent, variants: Sequence[Variant],
                 sender: Sender = SENDER) -> list[str]:
    """The Jinja-rendered MJML that render_variant compiles for each variant: the input
    both compilers get. Caught on its way into `render.mjml_to_html`, so it is exactly
    what rendering produces, however render.py builds it."""
    sources: list[str] = []
    compile_and_inline = render.mjml_to_html

    def capture(source: str) -> str:
        sources.append(source)
        return compile_and_inline(source)

    render.mjml_to_html = capture
    try:
        for variant in variants:
            render_variant(content, variant, sender)
    finally:
        render.mjml_to_html = compile_and_inline
    return sources


def _timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def _per_call(func: Callable[[], object], n: int) -> float:
    """Seconds per call, best of 5 runs of n calls."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            func()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def _row(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<52} {value:>14}  {note}")


def bench_variants(content: IssueContent, variants: Sequence[Variant], rounds: int) -> None:
    cold = _timed(lambda: [render_variant(content, v, SENDER) for v in variants])
    totals = [_timed(lambda: [render_variant(content, v, SENDER) for v in variants])
              for _ in range(rounds)]
    sources = mjml_sources(content, variants)
    compile_only = min(_timed(lambda: [mjml2html(s, disable_comments=True, fonts={})
                                       for s in sources]) for _ in range(rounds))
    with_premailer = min(_timed(lambda: [render.mjml_to_html(s) for s in sources])
                         for _ in range(rounds))
    sizes = [len(render_variant(content, v, SENDER).html.encode()) for v in variants]
    n = len(variants)
    print(f"\nAll variants: {len(content.items)} items, {n} variants "
          f"({len(LANGUAGES)} languages x ({len(COUNTRIES)} countries + regional))")
    _row("all variants, cold (first call: templates load)", f"{cold * 1e3:.1f} ms")
    _row(f"all variants, warm (median of {rounds})", f"{statistics.median(totals) * 1e3:.1f} ms",
         "target <= 1000 ms")
    _row(f"all variants, warm (best of {rounds})", f"{min(totals) * 1e3:.1f} ms")
    _row("  per variant (median / n)", f"{statistics.median(totals) / n * 1e3:.2f} ms")
    _row("  mjml-python compile, all variants", f"{compile_only * 1e3:.1f} ms")
    _row("  premailer inlining, all variants", f"{(with_premailer - compile_only) * 1e3:.1f} ms")
    _row("  the rest (Jinja2: subject, MJML, text; checks)",
         f"{(min(totals) - with_premailer) * 1e3:.1f} ms", "best round minus the two above")
    _row("HTML size per variant (min / max)",
         f"{min(sizes) / 1024:.1f} / {max(sizes) / 1024:.1f} KB")


def bench_recipient(rendered: Rendered, n: int = 20_000) -> None:
    unsubscribe, preferences = subscriber_links(BASE_URL, SECRET, 12345, SALT)
    personalise_s = _per_call(lambda: personalise(rendered, unsubscribe_url=unsubscribe,
                                                  preferences_url=preferences), n)
    links_s = _per_call(lambda: subscriber_links(BASE_URL, SECRET, 12345, SALT), n // 4)
    headers = mime.Headers(
        from_name=SENDER.name, from_email="news@example.org", to_name="María Pérez",
        to_email="maria@example.org", message_id="<demo.1@example.org>",
        list_id="demo.example.org", unsubscribe_url=unsubscribe,
    )
    personal = personalise(rendered, unsubscribe_url=unsubscribe, preferences_url=preferences)
    build_s = _per_call(lambda: mime.build_message(personal, headers), 500)
    print(f"\nPer recipient (es-CR variant, {len(rendered.html.encode()) / 1024:.1f} KB HTML)")
    _row("render.personalise (str.replace into HTML + text)", f"{personalise_s * 1e6:.1f} us",
         "target <= 20 us (previews, test sends)")
    _row("subscriber_links (two HMAC-signed URLs)", f"{links_s * 1e6:.1f} us", "(information)")
    _row("worker.mime.build_message (whole message, email pkg)", f"{build_s * 1e6:.1f} us",
         "(information)")
    template = mime.MessageTemplate.build(
        rendered, from_name=SENDER.name, from_email="news@example.org",
        list_id="demo.example.org", slots=(render.UNSUBSCRIBE, render.PREFERENCES),
    )
    to = mime.Recipient("María Pérez", "maria@example.org", "<demo.1@example.org>", unsubscribe,
                        {render.UNSUBSCRIBE: unsubscribe, render.PREFERENCES: preferences})
    render_s = _per_call(lambda: template.render(to), n // 4)
    _row("worker.mime.MessageTemplate.render (the send path)", f"{render_s * 1e6:.1f} us",
         "links, To, Message-ID into pre-encoded MIME")


def bench_mjml(sources: Sequence[str], rounds: int) -> None:
    n = len(sources)
    python_rounds = [_timed(lambda: [mjml2html(s, disable_comments=True, fonts={})
                                     for s in sources]) for _ in range(rounds + 1)][1:]
    python_bytes = sum(len(mjml2html(s, disable_comments=True, fonts={})) for s in sources)

    node_exe = node()
    node_tool("mjml")
    result = subprocess.run(
        [str(node_exe), "-e", NODE_SCRIPT], cwd=NODE_DIR, capture_output=True, text=True,
        input=json.dumps({"sources": list(sources), "rounds": rounds + 1}), timeout=600,
        check=True,
    )
    out = json.loads(result.stdout)
    node_rounds = [r / 1e3 for r in out["rounds"][1:]]  # the first round warms the JIT up
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "es-CR.mjml"
        src.write_text(sources[0], encoding="utf-8")
        cli = [str(node_tool("mjml")), str(src), "-s", "--config.keepComments=false",
               "--config.fonts={}", "--config.validationLevel=soft"]
        cli_s = _timed(lambda: subprocess.run(cli, capture_output=True, check=True))

    py_med, node_med = statistics.median(python_rounds), statistics.median(node_rounds)
    print(f"\nMJML -> HTML on the same {n} MJML sources (compile only, no premailer)")
    print(f"  {'':<52} {'mjml-python':>14} {'node mjml':>12} {'ratio':>8}")

    def line(name: str, py: float, js: float, unit: float = 1e3, fmt: str = ".2f") -> None:
        suffix = "ms" if unit == 1e3 else "us"
        print(f"  {name:<52} {py * unit:>11{fmt}} {suffix} {js * unit:>9{fmt}} {suffix} "
              f"{js / py:>7.1f}x")

    line(f"all {n} variants (median of {rounds} warm rounds)", py_med, node_med)
    line(f"all {n} variants (best of {rounds})", min(python_rounds), min(node_rounds))
    line("per variant (median round / n)", py_med / n, node_med / n)
    print(f"  {'node mjml, first compile in its process (cold JIT)':<52} {'':>14} "
          f"{out['first']:>9.2f} ms")
    print(f"  {'node mjml CLI, one file, start-up included':<52} {'':>14} "
          f"{cli_s * 1e3:>9.0f} ms")
    print(f"  {'output size, all variants':<52} {python_bytes / 1024:>11.1f} KB "
          f"{out['bytes'] / 1024:>9.1f} KB")
    print(f"  ratio = node mjml time / mjml-python time; node mjml {version_of_node_mjml()}, "
          f"mjml-python {version('mjml-python')}")
    if out["errors"]:
        print("  node mjml validation (soft) reported:")
        for message in out["errors"]:
            print(f"    - {message}")
    else:
        print("  node mjml validation (soft): no errors in any variant")


def version_of_node_mjml() -> str:
    package = NODE_DIR / "node_modules" / "mjml" / "package.json"
    return str(json.loads(package.read_text("utf-8"))["version"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed repetitions (default 5)")
    parser.add_argument("--items", type=int, default=10, help="items in the issue (default 10)")
    parser.add_argument("--no-node", action="store_true", help="skip the node mjml comparison")
    args = parser.parse_args(argv)
    content = sample_content(args.items)
    variants = issue_variants()
    print(f"newsletter render benchmark: Python {platform.python_version()}, "
          f"{platform.machine()}, mjml-python {version('mjml-python')}, "
          f"premailer {version('premailer')}")
    bench_variants(content, variants, args.rounds)
    bench_recipient(render_variant(content, Variant("es", "CR"), SENDER))
    if not args.no_node:
        es_cr = variants.index(Variant("es", "CR"))
        sources = mjml_sources(content, variants)
        sources.insert(0, sources.pop(es_cr))  # es-CR first: the CLI and "first" figures
        bench_mjml(sources, args.rounds)


if __name__ == "__main__":
    main()
