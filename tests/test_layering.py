"""The import direction of STYLE.md: pages -> core -> db, jobs -> core -> db; no streamlit below the UI."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What a page may import besides the standard library: the UI's own packages, core, and the pages' shared helpers.
# Home.py also signs people in through streamlit_authenticator.
UI_ALLOWED = {"streamlit", "pandas", "plotly", "core", "pages"}
HOME_ALLOWED = UI_ALLOWED | {"streamlit_authenticator"}
BELOW_UI = ("core", "db", "jobs", "api")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def ui_files() -> list[Path]:
    return [ROOT / "Home.py", *sorted((ROOT / "pages").glob("*.py"))]


@pytest.mark.parametrize("path", ui_files(), ids=lambda p: p.name)
def test_pages_import_only_streamlit_pandas_plotly_and_core(path: Path) -> None:
    allowed = (HOME_ALLOWED if path.name == "Home.py" else UI_ALLOWED) | sys.stdlib_module_names
    bad = {m for m in imported_modules(path) if m.split(".")[0] not in allowed}
    assert not bad, f"{path.name} imports {sorted(bad)}; pages talk to core only"


@pytest.mark.parametrize("package", BELOW_UI)
def test_services_never_import_streamlit(package: str) -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / package).rglob("*.py")
                 if any(m.split(".")[0] == "streamlit" for m in imported_modules(p))]
    assert not offenders, f"these import streamlit: {offenders}"


def test_core_does_not_import_the_ui_or_jobs() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py")
                 if any(m.split(".")[0] in ("api", "jobs", "pages", "app", "Home") for m in imported_modules(p))]
    assert not offenders, f"core must not depend on the layers above it: {offenders}"
