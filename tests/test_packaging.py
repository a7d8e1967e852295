"""What pip installs: the templates inside `newsletter`, nothing written there at run time.

An older version installed the templates as a top-level package named `templates` and
wrote compiled catalogs (.mo) into it when rendering. pip does not remove files it did
not install, so after `pip install .` then `pip install -e .` the leftover
`site-packages/templates/` shadowed the real templates and every send failed with
"template not found". These tests build and install the project as a user would, from
the files the Dockerfile copies, offline (no index, no build isolation).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("newsletter", "subscribers", "worker")


def dockerfile_sources() -> list[str]:
    """What the Dockerfile copies into the image before `pip install .`."""
    copied = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            copied += words[1:-1]
    return copied


def source_copy(tmp_path: Path) -> Path:
    """The files the Dockerfile copies, in a fresh directory (builds never touch ROOT)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in dockerfile_sources():
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.mo", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    return source


def pip(python: Path | str, *args: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input", *args,
         "--no-deps", "--no-index", "--no-build-isolation", "--quiet"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stdout}{result.stderr}"


def shipped_files() -> set[str]:
    """The template and catalog files in the repository, as paths inside the package."""
    return {
        "newsletter/templates/" + str(p.relative_to(ROOT / "templates"))
        for p in (ROOT / "templates").rglob("*")
        if p.is_file() and p.suffix in {".j2", ".po", ".pot"}
    }


def test_the_package_list_names_every_folder_of_code() -> None:
    """Packages are listed by hand in pyproject.toml (for the templates mapping): a new
    folder of code that is not listed would be missing from every installed wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in CODE_PACKAGES
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert set(config["packages"]) == found | {"newsletter.templates"}
    assert config["package-dir"] == {"newsletter.templates": "templates"}


def test_the_wheel_ships_the_templates_inside_newsletter(tmp_path: Path) -> None:
    source = source_copy(tmp_path)
    pip(sys.executable, "wheel", "--wheel-dir", str(tmp_path / "dist"), str(source))
    (wheel,) = (tmp_path / "dist").glob("newsletter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        top_level = {
            line for name in names if name.endswith(".dist-info/top_level.txt")
            for line in archive.read(name).decode().split()
        }
    assert not [n for n in names if n.startswith("templates/")], "a top-level templates/"
    assert top_level == set(CODE_PACKAGES)
    assert shipped_files() <= names
    assert "newsletter/templates/newsletter.mjml.j2" in names
    assert "newsletter/templates/locale/es/LC_MESSAGES/newsletter.po" in names
    assert not [n for n in names if n.endswith(".mo")]


def files_under(directory: Path) -> set[str]:
    """Files a run could leave behind (byte code aside: pip compiles it when installing)."""
    return {str(p.relative_to(directory)) for p in directory.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_upgrading_from_a_wheel_to_an_editable_install_still_sends(tmp_path: Path) -> None:
    """`pip install .`, send, then `pip install -e .` over it (with the .mo files an older
    version left in site-packages/templates/), send, then `pip install .` again and send:
    every demo reaches the outbox.

    The throwaway virtualenv borrows this one's dependencies through a .pth file placed
    after its own site-packages, so nothing is downloaded and pip sees the throwaway
    install of `newsletter` first."""
    source = source_copy(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSLETTER_", "PYTHON", "VIRTUAL_ENV"))}
    workdir = tmp_path / "work"
    workdir.mkdir()

    def demo(run: str) -> None:
        var = tmp_path / run
        result = subprocess.run([str(venv / "bin" / "newsletter"), "demo"],
                                env={**env, "NEWSLETTER_VAR_DIR": str(var)}, cwd=workdir,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"demo after {run}:\n{result.stdout}{result.stderr}"
        assert len(list((var / "outbox").rglob("*.eml"))) == 33, result.stdout

    pip(python, "install", str(source), env=env)
    assert not (site / "templates").exists()
    assert shipped_files() <= {f"newsletter/{f}" for f in files_under(site / "newsletter")}
    before = files_under(site)
    demo("installed")
    assert files_under(site) == before  # nothing written into the installed package

    # what an older version left behind: compiled catalogs pip never knew about
    leftover = site / "templates" / "locale" / "es" / "LC_MESSAGES" / "newsletter.mo"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"")
    pip(python, "install", "--editable", str(source), env=env)
    assert not (site / "newsletter").exists()  # the wheel's files are gone
    demo("editable")

    # and back again: a regular install over the editable one
    pip(python, "install", str(source), env=env)
    assert (site / "newsletter" / "templates" / "newsletter.mjml.j2").is_file()
    demo("reinstalled")
