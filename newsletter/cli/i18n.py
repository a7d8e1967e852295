"""`newsletter i18n ...`: keep the templates' translation catalogs complete."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter import i18n as catalogs
from newsletter import templating
from newsletter.cli.context import App, pass_app, user_errors
from newsletter.render import template_problems
from newsletter.users import LANGUAGES as NEWSROOM_LANGUAGES

_templates_option = click.option(
    "--templates", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="A custom template directory (default: NEWSLETTER_TEMPLATE_DIR, else the shipped one).",
)
_language_option = click.option(
    "-l", "--language", "languages", multiple=True,
    help="A language to work on (repeatable; default: the configured languages and every "
         "language that has a catalog).",
)


def _languages(app: App, directory: Path | None, chosen: tuple[str, ...]) -> list[str]:
    if chosen:
        return sorted(set(chosen) - {catalogs.SOURCE_LANGUAGE})
    dirs = catalogs.locale_dirs(directory)
    found = {lang for d in dirs for lang in catalogs.catalog_languages(d)}
    return sorted((found | set(app.settings.languages)) - {catalogs.SOURCE_LANGUAGE})


@click.group()
def i18n() -> None:
    """Translate the email: extract the templates' strings, check the catalogs.

    Catalogs are gettext .po files in <templates>/locale/<lang>/LC_MESSAGES/; they are
    read as they are (no .mo to compile, nothing written at run time).

    \b
    Example:
      newsletter i18n extract
      newsletter i18n check
    """


@i18n.command("extract")
@_templates_option
@_language_option
@pass_app
@user_errors
def extract(app: App, directory: Path | None, languages: tuple[str, ...]) -> None:
    """Collect the templates' strings into newsletter.pot and merge them into each .po.

    New strings arrive untranslated, changed ones fuzzy; translate them, then run
    `newsletter i18n check`. The newsroom's strings (templates/web/admin,
    newsletter/web) missing from newsroom.pot and newsroom.po are appended to them. For
    a custom template directory, new entries start with
    the shipped translation where there is one. The shipped catalogs are changed only in
    a clone of the repository, never inside an installed package.

    \b
    Example:
      newsletter i18n extract
      newsletter i18n extract --templates ./my-templates --language fr
    """
    directory = directory or app.settings.template_dir
    source = directory or templating.package_dir()
    if source.resolve() == templating.package_dir().resolve():  # a team's own may be anywhere
        catalogs.refuse_installed(source)
    locale_dir = catalogs.locale_dirs(directory)[0]
    pot, updates = catalogs.update_catalogs(
        templating.extract_messages(source), locale_dir, _languages(app, directory, languages),
        fill_from=catalogs.package_locale_dir() if directory is not None else None,
    )
    if directory is None:  # the newsroom's catalog ships with the package only
        updates += catalogs.update_newsroom(templating.newsroom_messages(), NEWSROOM_LANGUAGES)
    click.echo(f"template: {pot}")
    for update in updates:
        click.echo(f"{update.path}: {update.state}, {update.untranslated} to translate")


@i18n.command("check")
@_templates_option
@_language_option
@pass_app
@user_errors
def check(app: App, directory: Path | None, languages: tuple[str, ...]) -> None:
    """List every string without a translation, and any other template problem.

    Exits with status 1 if there is one: each untranslated or fuzzy entry is named with
    its .po file and line, each string missing from a catalog with its template and line.
    The newsroom's catalog is checked too: every string of its pages and Python
    (templates/web/admin, newsletter/web) in newsroom.pot, and every entry of the .pot
    translated in newsroom.po, not fuzzy, with the English's placeholders.

    \b
    Example:
      newsletter i18n check
      NEWSLETTER_TEMPLATE_DIR=./my-templates newsletter i18n check --language es
    """
    directory = directory or app.settings.template_dir
    langs = _languages(app, directory, languages)
    missing = catalogs.check_catalogs(templating.used_messages(directory), langs, directory)
    # the newsroom's own catalog (newsroom.pot and .po), in the languages it speaks
    missing += catalogs.check_newsroom(
        templating.newsroom_messages(),
        [lang for lang in NEWSROOM_LANGUAGES if not languages or lang in languages])
    problems = {
        str(p): None
        for lang in (catalogs.SOURCE_LANGUAGE, *langs)
        for p in template_problems(directory, lang, translations=False)
    }
    for line in [*map(str, missing), *problems]:
        click.echo(line)
    if missing or problems:
        raise click.ClickException(
            f"{len(missing)} untranslated string(s), {len(problems)} other template problem(s)"
        )
    click.echo(f"all strings translated in {', '.join(langs) or 'no language but English'}")
