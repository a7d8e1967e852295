"""Email templates: where they are found, the Jinja environments, and their static checks.

A template directory (the `template_dir` setting) overrides the shipped templates file by
file; anything it lacks comes from the package, and `default/<name>` always names the
shipped file, so a custom template can `{% extends "default/newsletter.mjml.j2" %}` and
replace one block. There is one environment per (directory, language), with that
language's gettext installed: environments are immutable once built, so renders in
different languages on different threads never share a translation.

Checks here read template *sources* and so can name the file and line at fault: Jinja
syntax, MJML tags mjml-python does not know (it passes them through silently), images
without alt text, layout tables without role="presentation", blocks that override
nothing, and strings without a translation. What a template *produces* (the unsubscribe
link is really there, the text part carries every item) is checked by rendering it:
see `newsletter.render.check_templates`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from jinja2 import nodes
from jinja2.ext import extract_from_ast
from jinja2.runtime import Context
from markupsafe import Markup

from newsletter import geo
from newsletter.errors import NewsletterError
from newsletter.i18n import (
    DOMAIN,
    SOURCE_LANGUAGE,
    Translations,
    format_date,
    language_name,
    locale_dirs,
    missing_languages,
    po_path,
    shipped_templates_dir,
    translated_in,
    translations_for,
)
from newsletter.ingest.model import UNUSABLE

HTML_TEMPLATE = "newsletter.mjml.j2"
TEXT_TEMPLATE = "newsletter.txt.j2"
SUBJECT_TEMPLATE = "subject.txt.j2"
ENTRY_TEMPLATES = (HTML_TEMPLATE, TEXT_TEMPLATE, SUBJECT_TEMPLATE)
DEFAULT_PREFIX = "default"
GETTEXT_FUNCTIONS = ("_", "gettext", "ngettext")

# What mjml-python (MRML) 1.4 compiles; anything else named mj-* is copied through as raw
# HTML that no email client understands. mj-html-attributes is MJML's but not MRML's;
# mj-include needs an include loader we do not give it (Jinja's include does the job).
MJML_TAGS = frozenset({
    "mjml", "mj-head", "mj-body", "mj-attributes", "mj-all", "mj-class", "mj-breakpoint",
    "mj-font", "mj-preview", "mj-raw", "mj-style", "mj-title", "mj-accordion",
    "mj-accordion-element", "mj-accordion-title", "mj-accordion-text", "mj-button",
    "mj-carousel", "mj-carousel-image", "mj-column", "mj-divider", "mj-group", "mj-hero",
    "mj-image", "mj-navbar", "mj-navbar-link", "mj-section", "mj-social",
    "mj-social-element", "mj-spacer", "mj-table", "mj-text", "mj-wrapper",
})  # fmt: skip
IMAGE_TAGS = frozenset({"img", "mj-image", "mj-carousel-image"})
_EXTRACT_OPTIONS = {
    "extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true",
    "newstyle_gettext": "true", "silent": "false",
}  # fmt: skip
_KEYWORDS: dict[str, tuple[int, ...] | None] = {"_": None, "gettext": None, "ngettext": (1, 2)}
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_JINJA_OR_QUOTED = r"\{\{.*?\}\}|\{%.*?%\}|\"[^\"]*\"|'[^']*'"
_TAG = re.compile(
    rf"<(?P<name>/?(?:mj-[\w-]+|mjml|img|table))\b(?P<attrs>(?:{_JINJA_OR_QUOTED}|[^>\"'])*)>",
    re.DOTALL | re.IGNORECASE,
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a template, where it is, and what to do about it."""

    path: str
    line: int | None
    message: str
    kind: str = "template"  # or "translation": a string without a translation

    def __str__(self) -> str:
        where = f"{self.path}, line {self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class TemplateError(NewsletterError):
    """Templates that must not be used; the message lists each problem with file and line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        listing = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the email templates cannot be used:\n{listing}")


def package_dir() -> Path:
    """The shipped templates (`newsletter/templates/` once installed)."""
    return shipped_templates_dir()


def search_path(directory: Path | None) -> tuple[Path, ...]:
    """Where templates are looked up, first match wins: a custom directory, then ours."""
    return (package_dir(),) if directory is None else (directory, package_dir())


def _loader(search: tuple[Path, ...]) -> jinja2.BaseLoader:
    shipped = jinja2.FileSystemLoader(str(search[-1]))
    return jinja2.ChoiceLoader([
        *(jinja2.FileSystemLoader(str(d)) for d in search[:-1]),
        shipped,
        jinja2.PrefixLoader({DEFAULT_PREFIX: shipped}),
    ])


def _format(context: Context, text: str, variables: Mapping[str, Any]) -> str:
    """Translations are text, never markup: escaped in HTML, as are their variables."""
    if context.eval_ctx.autoescape:
        return Markup.escape(text) % variables
    return text % variables


def _gettext_callables(
    translations: Translations,
) -> tuple[Callable[..., str], Callable[..., str]]:
    @jinja2.pass_context
    def gettext(context: Context, message: str, **variables: Any) -> str:
        return _format(context, translations.gettext(message), variables)

    @jinja2.pass_context
    def ngettext(
        context: Context, singular: str, plural: str, num: int, **variables: Any
    ) -> str:
        variables.setdefault("num", num)
        return _format(context, translations.ngettext(singular, plural, num), variables)

    return gettext, ngettext


def environment(directory: Path | None, language: str) -> jinja2.Environment:
    """The environment for one template directory and one reader's language (cached)."""
    return _environment(search_path(directory), translations_for(language, directory))


def printable(value: Any) -> Any:
    """Jinja's finalize: every value a template prints loses the characters no email can
    carry (control characters, non-characters; see UNUSABLE). Imports refuse them, but an
    item stored before that, or edited in the database, must not stop a whole issue."""
    if isinstance(value, str) and UNUSABLE.search(value):
        cleaned = UNUSABLE.sub("", value)
        return Markup(cleaned) if isinstance(value, Markup) else cleaned
    return value


@lru_cache(maxsize=32)
def _environment(search: tuple[Path, ...], translations: Translations) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_loader(search),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("mjml.j2", "mjml", "html.j2", "html"), default_for_string=True
        ),
        undefined=jinja2.StrictUndefined,
        finalize=printable,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # newstyle: `{% trans %}` passes its variables to gettext, which formats and escapes
    setattr(env, "newstyle_gettext", True)  # noqa: B010 (added by the extension, untyped)
    gettext, ngettext = _gettext_callables(translations)
    lang = translations.language
    env.globals.update(
        gettext=gettext,
        ngettext=ngettext,
        format_date=lambda value: format_date(value, lang),
        language_name=lambda code: language_name(code, lang),
        country_name=lambda code: geo.country_name(code, lang),
    )
    return env


# --- reading the template set -------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One template file in use, parsed."""

    name: str  # the name Jinja knows it by
    path: str  # the file, for messages
    text: str
    tree: nodes.Template
    html: bool  # part of the HTML (MJML) template, so MJML rules apply


def read_sources(env: jinja2.Environment) -> tuple[list[Source], list[Problem]]:
    """The entry templates and everything they extend, include or import, each once.

    The HTML template is walked first, so every file it reaches is marked `html`.
    """
    assert env.loader is not None
    sources: dict[str, Source] = {}
    problems: list[Problem] = []
    for entry in ENTRY_TEMPLATES:
        html = entry == HTML_TEMPLATE
        queue: list[tuple[str, Problem | None]] = [(entry, None)]
        while queue:
            name, missing = queue.pop(0)
            if name in sources:
                continue
            try:
                text, filename, _ = env.loader.get_source(env, name)
            except jinja2.TemplateNotFound:
                problems.append(missing or Problem(name, None, "template not found"))
                continue
            path = filename or name
            try:
                tree = env.parse(text, name, path)
            except jinja2.TemplateSyntaxError as exc:
                problems.append(Problem(path, exc.lineno, f"Jinja syntax error: {exc.message}"))
                continue
            sources[name] = Source(name, path, text, tree, html)
            queue += [
                (ref, Problem(path, line, f'"{ref}" is not a template here: check the name '
                              "and the template directory"))
                for ref, line in _references(tree)
            ]
    return list(sources.values()), problems


def _references(tree: nodes.Template) -> Iterator[tuple[str, int]]:
    kinds = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
    for node in tree.find_all(kinds):
        assert isinstance(node, kinds)
        template = node.template
        if isinstance(template, nodes.Const) and isinstance(template.value, str):
            yield template.value, node.lineno


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


# --- static checks ------------------------------------------------------------------


def markup_problems(source: Source) -> list[Problem]:
    """MJML tags mjml-python knows, alt text on images, role on layout tables."""
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), source.text)
    problems: list[Problem] = []
    for match in _TAG.finditer(text):
        name = match.group("name").lower()
        closing = name.startswith("/")
        tag, attrs = name.lstrip("/"), match.group("attrs")
        line = _line_of(text, match.start())
        if tag.startswith("mj") and tag not in MJML_TAGS:
            if closing:
                continue  # its opening tag is reported
            problems.append(Problem(source.path, line, _unknown_tag(tag)))
        elif closing:
            continue
        elif tag in IMAGE_TAGS and not re.search(r"\balt\s*=", attrs, re.IGNORECASE):
            problems.append(Problem(source.path, line, f"<{tag}> has no alt attribute: add "
                                    'alt="…" describing it, or alt="" if it is decoration'))
        elif tag == "table" and not re.search(r"\brole\s*=", attrs, re.IGNORECASE):
            problems.append(Problem(source.path, line, '<table> has no role: add '
                                    'role="presentation" so screen readers skip layout tables'))
    return problems


def _unknown_tag(tag: str) -> str:
    if tag == "mj-html-attributes":
        return ("<mj-html-attributes> is not supported by mjml-python: put the attributes "
                "in the markup, or use css-class")
    if tag == "mj-include":
        return '<mj-include> is not supported here: use Jinja\'s {% include "file" %}'
    close = difflib.get_close_matches(tag, MJML_TAGS, n=1)
    hint = f"did you mean <{close[0]}>?" if close else "see the MJML documentation for its tags"
    return (f"<{tag}> is not an MJML tag mjml-python knows, so it would reach readers as raw "
            f"HTML: {hint}")


def block_problems(sources: Sequence[Source]) -> list[Problem]:
    """A block the parent does not have is silently ignored by Jinja: say so instead."""
    by_name = {s.name: s for s in sources}
    problems: list[Problem] = []
    for source in sources:
        parent = next(iter(_extended(source.tree)), None)
        if parent is None or parent not in by_name:
            continue  # a missing parent is reported where it is named
        available = _blocks_up(by_name, parent)
        for block in source.tree.find_all(nodes.Block):
            if block.name not in available:
                problems.append(Problem(
                    source.path, block.lineno,
                    f'block "{block.name}" is not in {parent}, so it would never show: '
                    f"use one of {', '.join(sorted(available))}",
                ))
    return problems


def _extended(tree: nodes.Template) -> set[str]:
    return {n.template.value for n in tree.find_all(nodes.Extends)
            if isinstance(n.template, nodes.Const)}


def _blocks_up(by_name: Mapping[str, Source], name: str) -> set[str]:
    found: set[str] = set()
    seen: set[str] = set()
    while name in by_name and name not in seen:
        seen.add(name)
        tree = by_name[name].tree
        found |= {b.name for b in tree.find_all(nodes.Block)}
        parents = _extended(tree)
        if not parents:
            break
        name = next(iter(parents))
    return found


def messages_in(source: Source) -> Iterator[tuple[int, str]]:
    """(line, msgid) for every constant string the template translates."""
    for line, _func, message in extract_from_ast(source.tree, GETTEXT_FUNCTIONS):
        msgid = message if isinstance(message, str) else (message[0] if message else None)
        if isinstance(msgid, str) and msgid:
            yield line, msgid


def translation_problems(
    sources: Sequence[Source], language: str, directory: Path | None
) -> list[Problem]:
    """Strings a reader of `language` would see in English."""
    if language == SOURCE_LANGUAGE:
        return []
    if missing_languages([language], directory):
        expected = po_path(locale_dirs(directory)[0], language)
        return [Problem(str(expected), None, f"there is no {language} catalog: run "
                        f"`newsletter i18n extract --language {language}` and translate it",
                        "translation")]
    translated = translated_in(language, directory)
    target = po_path(locale_dirs(directory)[0], language)
    return [
        Problem(source.path, line, f'"{msgid}" has no {language} translation: add it to '
                f"{target} (`newsletter i18n extract` adds the entry) and translate it",
                "translation")
        for source in sources
        for line, msgid in messages_in(source)
        if msgid not in translated
    ]


def static_problems(directory: Path | None, language: str) -> tuple[list[Problem], bool]:
    """Problems found by reading the sources, and whether every template could be read
    (only then is it worth rendering them)."""
    env = environment(directory, language)
    sources, problems = read_sources(env)
    complete = not problems
    for source in sources:
        if source.html:
            problems += markup_problems(source)
    problems += block_problems(sources)
    problems += translation_problems(sources, language, directory)
    return problems, complete


def used_messages(directory: Path | None) -> list[tuple[str, int, str]]:
    """(file, line, msgid) for every string the templates in use translate."""
    sources, problems = read_sources(environment(directory, SOURCE_LANGUAGE))
    if problems:
        raise TemplateError(problems)
    return [(s.path, line, msgid) for s in sources for line, msgid in messages_in(s)]


def fingerprint(directory: Path | None, language: str) -> tuple[tuple[str, int], ...]:
    """Every file a render in `language` depends on, with its modification time: checks
    cached under this key are redone as soon as a template or catalog changes."""
    paths = template_files(package_dir())
    if directory is not None:
        paths += template_files(directory)
    paths += [po_path(d, language) for d in locale_dirs(directory)]
    stamps = []
    for path in paths:
        try:
            stamps.append((str(path), path.stat().st_mtime_ns))
        except OSError:
            stamps.append((str(path), 0))
    return tuple(stamps)


# --- catalogs: extraction -----------------------------------------------------------


NEWSROOM = ("web", "admin")  # the newsroom's pages: a catalog of their own (newsroom.po)


def template_files(directory: Path) -> list[Path]:
    """The email's and the subscriber pages' templates (not the newsroom's)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*.j2") if "locale" not in p.parts
                  and p.relative_to(directory).parts[:2] != NEWSROOM)


def extract_messages(directory: Path) -> Catalog:
    """Every translatable string in a directory's templates, as a .pot catalog.

    Uses Babel with Jinja's extractor, so translator comments
    (`{# Translators: ... #}`) reach the catalog too.
    """
    catalog = Catalog(
        domain=DOMAIN, project="newsletter", fuzzy=False,
        header_comment="# The strings of the newsletter's email templates.\n"
                       "# Made by `newsletter i18n extract`; edit the templates, not this file.\n#",
    )
    for path in template_files(directory):
        relative = path.relative_to(directory).as_posix()
        try:
            found = extract_from_file(
                "jinja2.ext:babel_extract", path, keywords=_KEYWORDS,
                comment_tags=("Translators:",), options=_EXTRACT_OPTIONS,
            )
        except jinja2.TemplateSyntaxError as exc:
            problem = Problem(str(path), exc.lineno, exc.message or "syntax error")
            raise TemplateError([problem]) from exc
        for line, message, comments, context in found:
            catalog.add(message, None, [(relative, line)], auto_comments=comments,
                        context=context)
    return catalog


# --- the newsroom's catalog (newsroom.pot / <lang>/LC_MESSAGES/newsroom.po) ----------

NEWSROOM_KEYWORDS: dict[str, tuple[int, ...] | None] = {**_KEYWORDS, "N_": None}
NEWSROOM_SOURCES = Path(__file__).resolve().parent / "web"  # newsletter/web/**/*.py


def newsroom_messages() -> list[tuple[str, int, str | tuple[str, ...]]]:
    """(file, line, msgid) for every string the newsroom translates: its templates
    (templates/web/admin/*.j2, Jinja's extractor) and its Python (newsletter/web/**/*.py,
    keywords _, gettext, ngettext and N_); a plural is (singular, plural)."""
    found: list[tuple[str, int, str | tuple[str, ...]]] = []
    sources = [("jinja2.ext:babel_extract", p)
               for p in sorted(package_dir().joinpath(*NEWSROOM).glob("*.j2"))]
    sources += [("python", p) for p in sorted(NEWSROOM_SOURCES.rglob("*.py"))]
    for method, path in sources:
        try:
            extracted = extract_from_file(method, path, keywords=NEWSROOM_KEYWORDS,
                                          options=_EXTRACT_OPTIONS if method != "python"
                                          else None)
        except jinja2.TemplateSyntaxError as exc:
            problem = Problem(str(path), exc.lineno, exc.message or "syntax error")
            raise TemplateError([problem]) from exc
        for line, message, _comments, _context in extracted:
            if isinstance(message, str):
                found.append((str(path), line, message))
            elif message and message[0]:
                found.append((str(path), line, tuple(m or "" for m in message)))
    return found
