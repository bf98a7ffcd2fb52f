"""`python -m db import` as an operator runs it: progress, a summary line, and a refusal of unreadable files."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

from sqlalchemy import func, select

from db.models import ImportBatch, Lead, LeadStatus
from db.session import make_engine, session_scope
from tests.conftest import PROJECT, shared_path

MAPPING = str(PROJECT / "bench" / "x_education_mapping.json")


def run(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "LEADOPS_"))}
    environment.update(DATABASE_URL=url)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=PROJECT, env=environment,
                          timeout=120)


def write_csv(path, header: list[str], rows: list[list[str]]) -> str:  # noqa: ANN001 - a pytest tmp_path file
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, *rows])
    path.write_text(out.getvalue(), encoding="utf-8")
    return str(path)


def leads(url: str) -> dict[str, Lead]:
    with session_scope(make_engine(url)) as session:
        return {lead.email: lead for lead in session.scalars(select(Lead))}


def test_import_suggests_the_mapping_reports_progress_and_a_summary(tmp_path, sqlite_url):
    path = write_csv(tmp_path / "crm.csv", ["Name", "Email", "Notes", "Outcome", "Region"], [
        ["Priya Raman", "priya@northwindclinics.example", "Booking app with SMS reminders.", "won", "EMEA"],
        ["No Address", "not-an-address", "Something.", "lost", "APAC"],
    ])

    done = run(["-m", "db", "import", path], sqlite_url)

    assert done.returncode == 0, done.stderr
    assert "importing crm.csv: 2/2 rows" in done.stderr
    assert "row 3: email: is not a valid email address" in done.stderr
    assert "imported crm.csv: 2 rows, 1 created, 0 updated, 0 skipped, 1 failed in " in done.stdout
    priya = leads(sqlite_url)["priya@northwindclinics.example"]
    assert priya.status == LeadStatus.WON and priya.custom_attributes == {"Region": "EMEA"}
    assert not priya.auto_follow_up
    with session_scope(make_engine(sqlite_url)) as session:
        assert session.scalar(select(ImportBatch.created_by)) == "cli"


def test_options_on_the_command_line_update_by_key_and_ask_for_follow_ups(tmp_path, sqlite_url):
    header = ["Email", "Full name", "Notes"]
    first = write_csv(tmp_path / "a.csv", header, [["dana@harborline.example", "Dana W.", "Tracking portal."]])
    second = write_csv(tmp_path / "b.csv", header, [["dana@harborline.example", "Dana Whitfield", "Tracking portal."]])

    assert run(["-m", "db", "import", first, "--follow-up", "--actor", "ops"], sqlite_url).returncode == 0
    skipped = run(["-m", "db", "import", second], sqlite_url)
    updated = run(["-m", "db", "import", second, "--key", "email", "--on-existing", "update"], sqlite_url)

    assert "0 created, 0 updated, 1 skipped" in skipped.stdout
    assert "0 created, 1 updated, 0 skipped" in updated.stdout, updated.stderr
    dana = leads(sqlite_url)["dana@harborline.example"]
    assert dana.full_name == "Dana Whitfield" and dana.auto_follow_up


def test_a_file_that_cannot_be_read_exits_non_zero_with_the_reason(tmp_path, sqlite_url):
    (tmp_path / "quote.pdf").write_bytes(b"%PDF-1.7")
    (tmp_path / "empty.csv").write_bytes(b"")

    wrong_kind = run(["-m", "db", "import", str(tmp_path / "quote.pdf")], sqlite_url)
    empty = run(["-m", "db", "import", str(tmp_path / "empty.csv")], sqlite_url)
    missing = run(["-m", "db", "import", str(tmp_path / "nowhere.csv")], sqlite_url)

    assert wrong_kind.returncode == 2 and "error: file .pdf cannot be imported" in wrong_kind.stderr
    assert empty.returncode == 2 and "error: file the file is empty" in empty.stderr
    assert missing.returncode == 2 and "error: file cannot be read" in missing.stderr
    with session_scope(make_engine(sqlite_url)) as session:
        assert session.scalar(select(func.count()).select_from(ImportBatch)) == 0


def test_the_x_education_mapping_file_works_from_the_command_line(tmp_path, sqlite_url):
    lines = shared_path("datasets", "x-education", "Leads.csv").read_text(encoding="utf-8").splitlines()
    sample = tmp_path / "Leads-sample.csv"  # the first 40 rows, in the test's own temporary directory only
    sample.write_text("\r\n".join(lines[:41]) + "\r\n", encoding="utf-8")

    done = run(["-m", "db", "import", str(sample), "--mapping", MAPPING], sqlite_url)
    again = run(["-m", "db", "import", str(sample), "--mapping", MAPPING], sqlite_url)

    assert done.returncode == 0, done.stderr
    assert "40 rows, 40 created, 0 updated, 0 skipped, 0 failed" in done.stdout
    assert "40 rows, 0 created, 0 updated, 40 skipped, 0 failed" in again.stdout  # Prospect ID finds them
    assert "lead-660737@import.invalid" in leads(sqlite_url)
