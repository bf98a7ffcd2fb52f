"""Configuration as an operator meets it: `.env.example` copied to `.env`, and the contract's table of variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.config import PROJECT_ROOT, Settings
from db.session import make_engine
from tests.conftest import shared_path

ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
# A variable line of .env.example, set (`NAME=`) or shown commented out (`# NAME=value`).
VARIABLE_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def example_variables() -> dict[str, str]:
    """Every variable .env.example names, with the value written after `=` (commented or not)."""
    found = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = VARIABLE_LINE.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def contract_defaults() -> dict[str, str]:
    """The contract's configuration table: each variable with its default as written there ("unset" or a value)."""
    text = shared_path("CONTRACT.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    defaults = {}
    for row in section.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue  # the header, its rule line, and prose
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0])
        values = [value.strip().strip("`") for value in cells[1].split(",")]
        # One default per name ("unset, `587`, ...") or one default for the whole row ("unset").
        values = values if len(values) == len(names) else values[:1] * len(names)
        defaults.update(zip(names, values, strict=True))
    assert len(defaults) >= 20, f"could not read the configuration table of the contract: {defaults}"
    return defaults


def shown(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_env_example_copied_to_env_gives_the_contract_defaults(tmp_path: Path):
    env = tmp_path / ".env"
    env.write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")

    settings = Settings(_env_file=env)  # type: ignore[call-arg]

    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'data' / 'leadops.db'}"
    assert settings.is_sqlite
    assert settings.gemini_model == "gemini-2.5-flash"
    assert settings.gemini_timeout_s == 20
    assert settings.smtp_port == 587
    assert settings.smtp_starttls is True
    assert settings.leadops_timezone == "UTC"
    assert settings.leadops_base_url == "http://localhost:8501"
    assert settings.leadops_admin_username == "admin"
    # Every `NAME=` left empty there means "not configured": no empty key, no empty SMTP user, no empty secret.
    assert settings.ai_enabled is False
    for name in ("gemini_api_key", "smtp_host", "smtp_username", "smtp_password", "mail_from", "twilio_account_sid",
                 "twilio_auth_token", "twilio_from", "twilio_whatsapp_from", "webhook_url", "webhook_secret",
                 "leadops_api_key", "leadops_admin_password", "leadops_cookie_key"):
        assert getattr(settings, name) is None, f"{name.upper()}= in .env.example should mean unset"


def test_the_default_database_url_opens_a_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The URL .env.example leaves, opened by SQLAlchemy itself (an empty one was an ArgumentError), in a scratch
    # project folder so that the real data/ is left alone.
    monkeypatch.setattr("core.config.PROJECT_ROOT", tmp_path)
    scratch = Settings(_env_file=ENV_EXAMPLE).database_url  # type: ignore[call-arg]
    assert scratch == f"sqlite:///{tmp_path / 'data' / 'leadops.db'}"
    engine = make_engine(scratch)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()


def test_every_variable_left_empty_means_its_default(tmp_path: Path):
    # Also the ones .env.example shows commented out: uncommented with nothing after `=`, none may break start-up.
    env = tmp_path / ".env"
    env.write_text("".join(f"{name}=\n" for name in example_variables()), encoding="utf-8")

    assert Settings(_env_file=env).model_dump() == Settings(_env_file=None).model_dump()  # type: ignore[call-arg]


def test_blank_values_given_in_code_mean_unset_too():
    settings = Settings(_env_file=None, database_url="  ", smtp_username="", webhook_secret=" ")  # type: ignore[call-arg]

    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'data' / 'leadops.db'}"
    assert settings.smtp_username is None and settings.webhook_secret is None


def test_env_example_names_every_variable_of_the_contract():
    contract = contract_defaults()
    example = example_variables()

    missing = sorted(set(contract) - set(example))
    assert not missing, f".env.example does not mention {', '.join(missing)}"
    unknown = sorted(set(example) - set(contract))
    assert not unknown, f".env.example names variables the contract does not have: {', '.join(unknown)}"
    assert set(contract) == {name.upper() for name in Settings.model_fields}, "Settings reads exactly the contract"


def test_defaults_are_the_contracts():
    settings = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]

    for name, default in contract_defaults().items():
        actual = shown(getattr(settings, name.lower()))
        if default == "unset":
            assert actual is None, f"{name} should be unset by default, is {actual!r}"
        else:
            # The contract's text read as that variable would be: "20" is 20.0, "true" is True, a URL is resolved.
            expected = shown(getattr(Settings(_env_file=None, **{name.lower(): default}), name.lower()))  # type: ignore[call-arg]
            assert actual == expected, f"{name}: the contract says {default!r}, the default is {actual!r}"


def test_commented_values_in_env_example_are_the_defaults():
    # `# GEMINI_TIMEOUT_S=20` tells the operator the default: it must be the real one.
    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    for name, written in example_variables().items():
        if written and name != "DATABASE_URL":  # that one is shown as a PostgreSQL example, not as the default
            expected = shown(getattr(Settings(_env_file=None, **{name.lower(): written}), name.lower()))  # type: ignore[call-arg]
            assert shown(getattr(settings, name.lower())) == expected, f"{name}={written} is not the default"
