"""What leads, users, imported files and the AI wrote is shown literally wherever Streamlit renders markdown."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import Engine, select, update
from streamlit.testing.v1 import AppTest

from core import learned_score
from core.config import get_settings
from core.display import WORD_JOINER, plain
from db.models import FollowUp, FollowUpStatus, Lead, Suppression
from db.session import get_engine
from tests.core.test_learned_score import add_outcomes
from tests.pages.conftest import click, open_page, values

# Everything a renderer could turn into an image, a link, HTML, colour, an icon or maths, in one piece of text.
EVIL = "![x](http://evil.test/t.png)[win](http://evil.test) <b>b</b> :red[red] :material/bolt: $k$"
EVIL_HEADER = "![h](http://evil.test/h.png)[Region](http://evil.test)"
# An address a mail server accepts, made of markdown: * _ ~ $ ` { } | are all allowed before the @.
EVIL_EMAIL = "dana*bold*_it_~s~$k$`c`{a}|b@evil.test"


def live_markup(markdown: str) -> list[str]:
    """The markdown in `markdown` that would still act: images, links, HTML, autolinks, colours, icons, maths."""
    text = re.sub(r"\\.", "\0", markdown)  # an escaped character starts nothing
    text = re.sub(r"`[^`]*`", "", text)  # our own code spans (their text is not parsed)
    return re.findall(r"!\[|\]\(|<[A-Za-z/!?]|https?://|www\.|[\w.+-]@[\w-]+\.\w|:red\[|:material[/_]|\$[^$]*\$",
                      text)


def rendered_markdown(at: AppTest) -> list[str]:
    """Every text of the page that Streamlit renders as markdown: alerts, captions, headings, metrics, toasts,
    widget labels and help, radio options, and the titles of expanders, tabs and popovers."""
    shown: list[str] = []
    for node in [*at.main, *at.sidebar]:
        kind = getattr(node, "type", None)
        if kind in ("markdown", "caption", "error", "warning", "info", "success", "toast", "title", "header",
                    "subheader"):
            shown.append(str(node.value))
        elif kind == "metric":
            shown += [node.label, node.value, node.proto.delta, node.proto.help]
        elif kind == "popover":
            shown.append(node.proto.popover.label)
        elif kind == "radio":
            shown += list(node.options)
        if kind not in ("text", "code", "dataframe", "metric"):
            shown += [text for name in ("label", "help") if isinstance(text := getattr(node, name, None), str)]
    return [text for text in shown if text]


def assert_shown_literally(at: AppTest) -> list[str]:
    """No markdown on the page acts; returns what was checked."""
    shown = rendered_markdown(at)
    assert shown, "nothing rendered as markdown was found"
    live = {text: found for text in shown if (found := live_markup(text))}
    assert not live, live
    return shown


def app_engine() -> Engine:
    return get_engine(get_settings().database_url)


def csv_file(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "text/csv"))
    return at.run()


# --- plain() ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "![x](http://evil.test/t.png)", "[win](http://evil.test)", "[win][1] [1]: http://evil.test", "<http://evil.test>",
    "see http://evil.test or www.evil.test", "mail dana@evil.test", "<b>bold</b> <img src=x onerror=alert(1)>",
    "$x$", "$$x^2$$", ":red[x]", ":blue-background[x]", ":red-badge[x]", ":material/home:", ":material_home:",
    ":smile: :+1:", ":streamlit:", EVIL, EVIL_HEADER, EVIL_EMAIL,
])
def test_plain_leaves_no_link_image_html_colour_icon_or_maths(text):
    escaped = plain(text)

    assert live_markup(escaped) == []
    assert "](" not in escaped.replace("\\]", "") and "![" not in escaped


@pytest.mark.parametrize(("text", "shown"), [
    ("![x](http://evil.test)", f"!\\[x\\](http:{WORD_JOINER}//evil.test)"),
    ("<b>bold</b>", "\\<b>bold\\</b>"),
    ("$x$", "\\$x\\$"),
    (":red[x]", f":{WORD_JOINER}red\\[x\\]"),
    (":material/home:", f":{WORD_JOINER}material/home:{WORD_JOINER}"),
    ("www.evil.test", f"www{WORD_JOINER}.evil.test"),
    ("dana@evil.test", f"dana@{WORD_JOINER}evil.test"),
    ("# Heading", "\\# Heading"),
    ("### Heading", "\\### Heading"),
    ("> quote", "\\> quote"),
    ("- item", "\\- item"),
    ("+ item", "\\+ item"),
    ("* item", "\\* item"),
    ("1. item", "1\\. item"),
    ("12) item", "12\\) item"),
    ("---", "\\---"),
    ("___", "\\_\\_\\_"),
    ("**bold** *it* _it_ __b__", "\\*\\*bold\\*\\* \\*it\\* \\_it\\_ \\_\\_b\\_\\_"),
    ("~~gone~~ `code` ```fence", "\\~\\~gone\\~\\~ \\`code\\` \\`\\`\\`fence"),
    ("a | b", "a \\| b"),
    ("C:\\Users\\dana\\", f"C:{WORD_JOINER}\\\\Users\\\\dana\\\\"),
    ("&lt;b&gt; &#91;", "\\&lt;b\\&gt; \\&#91;"),
])
def test_plain_escapes_what_markdown_would_act_on(text, shown):
    assert plain(text) == shown


def test_plain_puts_everything_on_one_line():
    # Blank lines would start new blocks, four spaces code, two trailing spaces a line break.
    assert plain("first  \n\n    # second\r\n- third\tend") == "first # second - third end"


@pytest.mark.parametrize("text", [
    "Body template: uses an unknown variable ('nickname' is undefined); known: first_name, full_name",
    "AI unavailable (http_429); rules analysis saved, re-analysis queued",
    "the window must end after it starts.", "min_budget <= target_budget", "lower-case letters, digits, . _ -",
    "Straße, São Paulo · 25k-100k", "Not blended: it does not beat the engine (AUC 0.512 against 0.600).",
])
def test_plain_leaves_ordinary_text_as_it_is(text):
    # Punctuation that starts nothing stays as written: messages read and compare the same.
    assert plain(text) == text


# --- a: the Import page quotes the file's column headers ------------------------------------------------------------


def test_an_import_error_quoting_a_column_header_shows_it_literally(app_db, signed_in):
    file = csv_file([["Name", "Email", EVIL_HEADER], ["Priya Raman", "priya@northwind.example", "EMEA"]])
    at = upload(open_page(signed_in("manager"), "pages/imports.py"), "crm.csv", file)
    assert not at.exception and not at.error
    editor = at.dataframe[0]
    # The person maps the evil column to the email too: the error names both columns.
    at.session_state[editor.key] = {"edited_rows": {2: {"maps to": "email"}}, "added_rows": [], "deleted_rows": []}
    at.run()

    assert not at.exception
    [error] = values(at.error)
    assert error == "Mapping: " + plain(f"both 'Email' and {EVIL_HEADER!r} map to email; map one of them to custom "
                                        "or ignore")
    assert "!\\[h\\](http:" in error
    assert live_markup(error) == [] and "![" not in error and "](" not in error.replace("\\]", "")
    assert_shown_literally(at)


# --- c: the Follow-ups page quotes a suppressed address -------------------------------------------------------------


def test_retrying_a_follow_up_to_an_unsubscribed_address_shows_the_address_literally(app_db, signed_in, add_lead):
    lead = add_lead(full_name="Dana Whitfield", email=EVIL_EMAIL)
    with app_db.session() as session:
        first = session.scalars(select(FollowUp).where(FollowUp.lead_id == lead["id"], FollowUp.number == 1)).one()
        first.status, first.attempts, first.last_error = FollowUpStatus.FAILED, 6, "550 unsubscribed"
        session.add(Suppression(address=EVIL_EMAIL, reason="UNSUBSCRIBED", lead_id=lead["id"]))
    at = open_page(signed_in("staff"), "pages/followups.py")
    failed = next(t for t in at.tabs if t.label == "Failed").dataframe[0]
    at.session_state[failed.key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at = click(at.run(), "Retry")

    assert not at.exception
    [error] = values(at.error)
    assert error == f"Recipient: {plain(EVIL_EMAIL)} unsubscribed; it is not contacted again"
    # Every * ~ $ ` | of the address is escaped, and the address is no mailto link.
    assert re.sub(r"\\.", "", error).count("*") == 0
    assert not re.search(r"(?<!\\)[~$`|]", error) and live_markup(error) == []
    with app_db.session() as session:
        assert session.get(FollowUp, first.id).status == FollowUpStatus.FAILED


# --- every markdown-rendering element of the pages that show imported and lead-written text ------------------------


def test_the_import_page_shows_an_evil_file_literally_from_upload_to_result(app_db, signed_in):
    file = csv_file([["Name", "Email", "Notes", EVIL_HEADER, EVIL],
                     [EVIL, "priya@northwind.example", EVIL, EVIL, EVIL],
                     ["Tomás Ortega", "not-an-address", EVIL, "APAC", "x"]])
    at = upload(open_page(signed_in("admin"), "pages/imports.py"), f"{EVIL}.csv", file)
    assert not at.exception
    assert_shown_literally(at)

    at = click(at, "Import 2 rows")

    assert not at.exception
    assert [m.value for m in at.metric] == ["1", "0", "0", "1"]
    assert_shown_literally(at)
    with app_db.session() as session:
        lead = session.scalars(select(Lead)).one()
    at = open_page(at, "pages/lead.py", id=lead.id)
    assert not at.exception
    assert EVIL in values(at.text)
    assert_shown_literally(at)


def test_the_learned_score_and_lead_pages_show_imported_field_names_literally(app_db, signed_in, add_lead):
    # "Plan" decides every outcome (a leaky field), and every lead has its own "Ref" (an identifier): both renamed.
    add_outcomes(app_engine(), 120, won_share={"enterprise": 1.0, "starter": 0.0})
    plan, ref = EVIL_HEADER, f"Ref {EVIL}"
    with app_db.session() as session:
        for lead in session.scalars(select(Lead)):
            attributes = dict(lead.custom_attributes)
            lead.custom_attributes = {plan: attributes.pop("Plan"), ref: lead.external_id, **attributes}
    learned_score.train(engine=app_engine(), fields=[plan, ref], actor="max")
    # An attribute that only an open lead has: training on it is refused, naming it.
    lonely = add_lead(full_name=EVIL, company=EVIL, message=f"{EVIL} We need a portal.")
    with app_db.session() as session:
        session.execute(update(Lead).where(Lead.id == lonely["id"]).values(custom_attributes={f"Open {EVIL}": "x"}))

    at = open_page(signed_in("manager"), "pages/learned_score.py")

    assert not at.exception and not at.error
    shown = assert_shown_literally(at)
    assert any(f"Fields: {plain(plan)}, {plain(ref)}." in text for text in shown)
    assert any(text.startswith(f"Every lead has its own value of {plain(ref)}") for text in values(at.warning))
    assert any(text.startswith(f"{plain(plan)} alone ranks") for text in values(at.warning))

    at.multiselect[0].set_value([f"Open {EVIL}"])
    at = click(at, "Train now")

    assert not at.exception
    assert values(at.error) == [plain(f"no won or lost lead has {f'Open {EVIL}'!r}")]
    assert_shown_literally(at)

    at = open_page(at, "pages/lead.py", id=lonely["id"])
    assert not at.exception
    assert_shown_literally(at)
