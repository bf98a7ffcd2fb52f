"""Follow-ups: what goes out today, what went, what failed, the calls to make, and (managers) the sequences."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.express as px
import streamlit as st

from core import errors, followup_views, followups, message_copy, sequences, uow, users
from core.display import plain
from pages._common import may, require

PAGE_SIZE = 100
PERIODS = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90}
LISTS = {"due_today": "Due today", "scheduled": "Scheduled", "sent": "Sent", "failed": "Failed",
         "calls": "Calls to make"}
# The columns each list shows, in order (the rows carry more, for the detail panel).
COLUMNS = {
    "due_today": ["due_at", "lead", "company", "priority", "channel", "number", "attempts", "last_error", "assignee"],
    "scheduled": ["due_at", "lead", "company", "priority", "channel", "number", "attempts", "assignee"],
    "sent": ["sent_at", "lead", "company", "channel", "number", "subject", "copy_source", "attempts", "assignee"],
    "failed": ["lead", "company", "channel", "number", "attempts", "last_error", "assignee"],
    "calls": ["due_at", "lead", "company", "phone", "priority", "number", "assignee"],
}
CHANNEL_NAMES = {"EMAIL": "Email", "SMS": "SMS", "WHATSAPP": "WhatsApp", "CALL": "Calls"}
COPY_MODES = {"TEMPLATE": "The step's template", "AI": "Written by the AI (the template when it is unavailable)"}

user = require("followups")
actor = f"user:{user['username']}"
manager = may(user, "followups.manage")
settings = uow.settings()
timezone = settings.leadops_timezone

# The page's small state in one place: the paging of each list, the filters they belong to, a version that resets
# row selections after a change (a selected row index must never point at another follow-up), and a message.
state = st.session_state.setdefault("followups_page", {"signature": None, "offsets": {}, "version": 0,
                                                       "flash": None, "flash_detail": None})


@st.cache_data(ttl=30, show_spinner=False)
def _people() -> dict[str, str]:
    return {u.id: u.username for u in uow.read(users.get_all) if not u.disabled}


@st.cache_data(ttl=15, show_spinner=False)
def _list(view: str, filters: followup_views.FollowUpFilters, offset: int, zone: str) -> tuple[list[dict], int]:
    return uow.read(followup_views.follow_up_list, view=view, filters=filters, now=datetime.now(UTC),
                    timezone=zone, limit=PAGE_SIZE, offset=offset)


@st.cache_data(ttl=30, show_spinner=False)
def _figures(days: int, filters: followup_views.FollowUpFilters) -> list[dict]:
    return uow.read(followup_views.delivery_figures, since=datetime.now(UTC) - timedelta(days=days), filters=filters)


@st.cache_data(ttl=15, show_spinner=False)
def _detail(follow_up_id: str, user_id: str, role: str) -> dict:
    return uow.read(followup_views.detail, settings=uow.settings(), follow_up_id=follow_up_id, user_id=user_id,
                    role=role)


@st.cache_data(ttl=30, show_spinner=False)
def _sequences() -> dict[str, list[dict]]:
    return uow.read(followup_views.sequence_overview)


@st.cache_data(ttl=30, show_spinner=False)
def _window() -> dict:
    window = uow.read(sequences.get_send_window)
    return {**window.model_dump(), "text": window.describe()}


def _label(field: str) -> str:
    return field.replace("_", " ").capitalize()


def _show_errors(problems: list[errors.FieldError], slots: dict | None = None) -> None:
    """Each field's error right under its field when the form has a place for it, otherwise here."""
    # A message can quote a lead's address or what a manager typed into a template: plain text, never markdown.
    for problem in problems:
        slot = (slots or {}).get(problem.field)
        (slot or st).error(f"{_label(problem.field)}: {plain(problem.message)}", icon=":material/error:")


def _changed(message: str, detail: str | None = None) -> None:
    """After a write: fresh reads, selections cleared, the message (and a plain-text detail) on the next run."""
    st.cache_data.clear()
    state["version"] += 1
    state["flash"], state["flash_detail"] = message, detail
    st.toast(message, icon=":material/check_circle:")
    st.rerun()


def _write(service, done: str, slots: dict | None = None, **kwargs) -> None:  # noqa: ANN001, ANN003
    """One core call in its own transaction; its errors next to the fields, or `done` after a rerun."""
    try:
        with uow.transaction() as session:
            service(session=session, **kwargs)
    except errors.ValidationFailed as exc:
        _show_errors(exc.errors, slots)
    except errors.NotFound:
        st.error("It no longer exists, or its lead is now assigned to someone else. The lists are refreshed.")
        st.cache_data.clear()
    else:
        _changed(done)


def _act(follow_up_id: str, action: str, done: str, slots: dict | None = None, **fields: str | None) -> None:
    _write(followup_views.act, done, slots, follow_up_id=follow_up_id, user_id=user["id"], role=user["role"],
           actor=actor, action=action, **fields)


# --- header, notes, filters ------------------------------------------------------------------------------------------

st.title("Follow-ups")
if state["flash"]:
    st.success(state["flash"], icon=":material/check_circle:")
    if state["flash_detail"]:
        st.text(state["flash_detail"])  # a pass's summary can quote a mail server's answer: plain text
    state["flash"] = state["flash_detail"] = None

unconfigured = followup_views.channel_notes(settings)
if unconfigured:
    st.info("Not configured, so their due follow-ups wait in the queue until it is: "
            + "; ".join(f"{CHANNEL_NAMES[c]} ({problem.removeprefix('waiting: ')})"
                        for c, problem in unconfigured.items()) + ".", icon=":material/settings_alert:")

with st.container(border=True):
    search, channel_col, priority_col, owner_col, period_col = st.columns([3, 2, 2, 2, 2])
    text = search.text_input("Search lead name or company", placeholder="e.g. harbor", key="filter_text")
    channel = channel_col.selectbox("Channel", ["All", *followup_views.CHANNELS], key="filter_channel")
    priority = priority_col.selectbox("Priority", ["All", *followup_views.PRIORITIES], key="filter_priority")
    people = _people() if may(user, "lead.view_all") else {}
    owner = (owner_col.selectbox("Assignee", ["Anyone", "Unassigned", *people.values()], key="filter_assignee")
             if people else "Anyone")
    period = period_col.selectbox("Figures for", list(PERIODS), index=1, key="filter_period")

owner_id = next((i for i, name in people.items() if name == owner), None)
filters = followup_views.visible_filters(followup_views.FollowUpFilters(
    channel=followup_views.Channel(channel) if channel != "All" else None,
    priority=followup_views.Priority(priority) if priority != "All" else None,
    assignee_id=owner_id, unassigned=owner == "Unassigned", text=text.strip()[:100] or None,
), user_id=user["id"], role=user["role"])
if state["signature"] != repr(filters):
    state["signature"], state["offsets"] = repr(filters), {}

# --- figures -------------------------------------------------------------------------------------------------------

figures = _figures(PERIODS[period], filters)
for column, figure in zip(st.columns(len(figures)), figures, strict=True):
    with column.container(border=True):
        name = CHANNEL_NAMES[figure["channel"]]
        if figure["channel"] == "CALL":
            st.metric("Calls to make", figure["calls_open"], help="Call tasks waiting for a person now")
            st.caption(f"{figure['calls_done']} done · {figure['pending']} planned")
        else:
            st.metric(f"{name} sent", figure["sent"], help=f"{name} messages sent in the period")
            rate = figure["delivery_rate"]
            st.caption(f"{figure['failed']} failed · {figure['bounced']} bounced · {figure['pending']} waiting · "
                       f"delivered {'—' if rate is None else f'{rate:.0%}'}")

outcomes = [{"channel": f["channel"], "outcome": outcome, "attempts": n}
            for f in figures for outcome, n in sorted(f["attempts"].items())]
if outcomes:
    chart = px.bar(outcomes, x="channel", y="attempts", color="outcome", barmode="stack", height=260,
                   title=f"Attempts by outcome, {period.lower()}")
    chart.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10}, xaxis_title=None)
    st.plotly_chart(chart, key="outcomes_chart")
else:
    st.caption(f"No attempts in the {period.lower()}: the chart fills in as follow-ups go out.")
if manager and st.button("Run the follow-ups pass now", icon=":material/send:",
                         help="Sends what is due inside the send window, as the jobs process does every minute"):
    with st.spinner("Sending what is due…"):
        summary = followups.run_pass(engine=uow.engine(), settings=settings)
    _changed("The follow-ups pass ran.", summary.line())

# --- the lists -----------------------------------------------------------------------------------------------------

EMPTY = {
    "due_today": "No follow-ups due today. New leads get their sequence when they are qualified; sequences are on "
                 "the Sequences tab." if manager else
                 "No follow-ups due today. New leads get their sequence when they are qualified; a manager sets "
                 "the sequences.",
    "scheduled": "Nothing is scheduled. Follow-ups are planned for new leads that are not contacted yet; a lead "
                 "that moves on from NEW stops its sequence.",
    "sent": "Nothing sent yet. Follow-ups go out with the jobs process (python -m jobs), inside the send window.",
    "failed": "No failed follow-ups. A message that fails for good shows here, with its error and a Retry button.",
    "calls": "No calls to make. Call steps of a sequence turn into tasks here when they come due.",
}
COLUMN_CONFIG = {
    "due_at": st.column_config.DatetimeColumn("Due", format="D MMM, HH:mm", timezone=timezone),
    "sent_at": st.column_config.DatetimeColumn("Sent", format="D MMM, HH:mm", timezone=timezone),
    "lead": "Lead", "company": "Company", "priority": st.column_config.TextColumn("Priority", width=75),
    "channel": st.column_config.TextColumn("Channel", width=90), "number": st.column_config.NumberColumn("Step",
                                                                                                         width=50),
    "attempts": st.column_config.NumberColumn("Tries", width=50), "last_error": "Last error", "assignee": "Assignee",
    "subject": "Subject", "copy_source": st.column_config.TextColumn("Copy", width=80), "phone": "Phone",
}


def _detail_panel(view: str, follow_up_id: str) -> None:
    """The message as it will go (or went), its attempts, and what this user can do with it."""
    try:
        item = _detail(follow_up_id, user["id"], user["role"])
    except errors.NotFound:
        st.warning("This follow-up no longer exists, or its lead is now assigned to someone else.")
        return
    key = f"{view}_{item['id']}"
    with st.container(border=True):
        st.subheader(f"Follow-up {item['number']} · {item['channel'].lower()} · {item['status'].lower()}",
                     anchor=False)
        # The lead's name and company, and every word of the message, are data: plain text only.
        st.text(" · ".join(filter(None, [item["lead"], item["company"], item["priority"],
                                          f"assigned to {item['assignee']}" if item["assignee"] else "unassigned"])))
        when = item["sent_at"] or item["due_at"]
        st.caption(("Done" if item["status"] == "DONE" else "Sent" if item["sent_at"] else "Due")
                   + f" {pd.Timestamp(when).tz_convert(timezone):%d %b %Y, %H:%M} ({timezone})")
        if item["channel"] == "CALL":
            st.caption("The call to make")
            st.text(" · ".join(filter(None, [item["phone"] or "no phone number", item["email"]])))
            st.text(item["body"])
        else:
            went = item["status"] in ("SENT", "FAILED")
            st.caption(f"The message as it {'went' if went else 'will go'} out · copy: {item['source']}")
            if item["recipient"]:
                st.text(f"To: {item['recipient']}")
            if item["subject"]:
                st.text(f"Subject: {item['subject']}")
            st.text(item["body"])
            if item["copy_mode"] == "AI" and item["status"] == "SCHEDULED" and not item["edited"]:
                st.caption("This step's copy is written by the AI when it goes out; shown here is its template.")
        if item["note"]:
            st.text(item["note"])
        if item["last_error"]:
            st.caption("Last error")
            st.text(item["last_error"])
        if item["cancel_reason"]:
            st.caption("Stopped because")
            st.text(item["cancel_reason"])
        st.caption("Attempts")
        if item["attempts_log"]:
            st.dataframe(item["attempts_log"], hide_index=True, width="stretch",
                         column_config={"when": st.column_config.DatetimeColumn("When", format="D MMM, HH:mm:ss",
                                                                                 timezone=timezone),
                                        "outcome": "Outcome", "detail": "Detail", "took_ms": "ms"})
        else:
            st.text("No attempts yet.")
        _actions(view, item, key)


def _actions(view: str, item: dict, key: str) -> None:
    actions = item["actions"]
    open_col, retry_col, cancel_col = st.columns(3)
    if open_col.button("Open lead", key=f"open_{key}", icon=":material/person:"):
        st.switch_page("pages/lead.py", query_params={"id": item["lead_id"]})
    if "retry" in actions and retry_col.button("Retry", key=f"retry_{key}", type="primary",
                                               icon=":material/replay:"):
        _act(item["id"], "retry", f"Follow-up {item['number']} queued again: it goes out with the next pass.")
    if "cancel" in actions:
        with cancel_col.popover("Stop this follow-up", icon=":material/cancel:"):
            st.write("It will not go out; the rest of the sequence is not affected.")
            sure = st.checkbox("Yes, stop it", key=f"sure_{key}")
            if st.button("Stop it", key=f"cancel_{key}", disabled=not sure):
                _act(item["id"], "cancel", f"Follow-up {item['number']} stopped.")
    if "complete_call" in actions:
        with st.form(f"call_{key}", clear_on_submit=True):
            note = st.text_area("What came of the call? (optional)", max_chars=2000, height=80)
            if st.form_submit_button("Mark the call as done", type="primary"):
                _act(item["id"], "complete_call", "Call marked as done.", note=note)
    if "edit" in actions:
        with st.form(f"edit_{key}"):
            st.caption("Edit the message: it goes out exactly as written here")
            slots = {}
            subject = None
            if item["channel"] == "EMAIL":
                subject = st.text_input("Subject", value=item["subject"] or "",
                                        max_chars=message_copy.MAX_SUBJECT)
                slots["subject"] = st.empty()
            body = st.text_area("Message", value=item["body"], height=200)
            slots["body"] = st.empty()
            if st.form_submit_button("Save the message"):
                _act(item["id"], "edit", f"Follow-up {item['number']} rewritten.", slots, subject=subject, body=body)


def _list_tab(view: str) -> None:
    offset = state["offsets"].get(view, 0)
    rows, total = _list(view, filters, offset, timezone)
    if total and not rows:  # the list shrank under the page: back to its start
        state["offsets"][view] = 0
        rows, total = _list(view, filters, 0, timezone)
        offset = 0
    if total == 0:
        st.info(EMPTY[view], icon=":material/inbox:")
        return
    table = st.dataframe([{c: row[c] for c in COLUMNS[view]} for row in rows], hide_index=True, width="stretch",
                         column_config=COLUMN_CONFIG, on_select="rerun", selection_mode="single-row",
                         key=f"list_{view}_{offset}_{state['version']}")
    caption, back, forward = st.columns([4, 1, 1])
    caption.caption(f"{offset + 1:,}–{offset + len(rows):,} of {total:,} · select a row to see the message and "
                    "what you can do")
    if back.button("← Previous", key=f"back_{view}", disabled=offset == 0):
        state["offsets"][view] = max(0, offset - PAGE_SIZE)
        st.rerun()
    if forward.button("Next →", key=f"next_{view}", disabled=offset + len(rows) >= total):
        state["offsets"][view] = offset + PAGE_SIZE
        st.rerun()
    if table.selection.rows:
        _detail_panel(view, rows[table.selection.rows[0]]["id"])


# --- the sequences (managers) --------------------------------------------------------------------------------------

def _step_form(priority: str, step: dict | None) -> None:
    """Adds a step to `priority` (step None) or changes one; template errors show under their field."""
    # The version in the key resets the form to what is stored after every change.
    key = f"step_{step['id']}_{state['version']}" if step else f"new_step_{priority}_{state['version']}"
    units = list(followup_views.DELAY_UNITS)
    with st.form(key, clear_on_submit=False):
        amount_col, unit_col, channel_col = st.columns(3)
        amount = amount_col.number_input("After", min_value=0, step=1, key=f"{key}_amount",
                                         value=step["delay_amount"] if step else 1)
        unit = unit_col.selectbox("Unit", units, key=f"{key}_unit",
                                  index=units.index(step["delay_unit"]) if step else units.index("days"))
        channel = channel_col.selectbox("Channel", followup_views.CHANNELS, key=f"{key}_channel",
                                        index=followup_views.CHANNELS.index(step["channel"]) if step else 0)
        slots = {"delay_minutes": st.empty(), "channel": st.empty()}
        mode = st.radio("Copy", list(COPY_MODES), format_func=COPY_MODES.get, horizontal=True, key=f"{key}_mode",
                        index=list(COPY_MODES).index(step["copy_mode"]) if step else 0)
        slots["copy_mode"] = st.empty()
        subject = st.text_input("Subject template (emails only)", key=f"{key}_subject",
                                value=step["subject_template"] if step else "")
        slots["subject_template"] = st.empty()
        body = st.text_area("Body template *", key=f"{key}_body", height=160,
                            value=step["body_template"] if step else "",
                            help="For a call: what the caller should do. Use the variables listed above.")
        slots["body_template"] = st.empty()
        enabled = st.checkbox("Enabled", key=f"{key}_enabled", value=step["enabled"] if step else True)
        slots["steps"] = st.empty()
        submitted = st.form_submit_button("Save the step" if step else "Add the step", type="primary")
    if not submitted:
        return
    try:
        step_in = followup_views.parse_step(delay_amount=amount, delay_unit=unit, channel=channel, copy_mode=mode,
                                            subject_template=subject, body_template=body, enabled=enabled)
    except errors.ValidationFailed as exc:
        _show_errors(exc.errors, slots)
        return
    if step:
        _write(sequences.update_step, "Step saved; follow-ups not yet sent use it.", slots, step_id=step["id"],
               step_in=step_in, actor=actor)
    else:
        _write(sequences.add_step, f"Step added to the {priority} sequence; new leads get it.", slots,
               priority=followup_views.Priority(priority), step_in=step_in, actor=actor)


def _step_tools(priority: str, steps: list[dict], index: int) -> None:
    step = steps[index]
    with st.container(border=True):
        st.caption(f"Step {step['position']} of the {priority} sequence")
        up, down, remove = st.columns(3)
        if up.button("Move up", key=f"up_{step['id']}", icon=":material/arrow_upward:", disabled=index == 0):
            _write(sequences.move_step, "Step moved up.", step_id=step["id"], direction=-1, actor=actor)
        if down.button("Move down", key=f"down_{step['id']}", icon=":material/arrow_downward:",
                       disabled=index == len(steps) - 1):
            _write(sequences.move_step, "Step moved down.", step_id=step["id"], direction=1, actor=actor)
        with remove.popover("Remove step", icon=":material/delete:"):
            st.write("Follow-ups of this step that have not gone out are stopped; sent ones keep their history.")
            sure = st.checkbox("Yes, remove this step", key=f"sure_remove_{step['id']}")
            if st.button("Remove for good", key=f"remove_{step['id']}", disabled=not sure):
                _write(sequences.archive_step, "Step removed.", step_id=step["id"], actor=actor)
        _step_form(priority, step)


def _sequences_tab() -> None:
    overview = _sequences()
    st.caption("Each new lead gets the sequence of its priority. A step waits its delay after the lead arrived; "
               "messages go out only inside the send window.")
    with st.expander("Template variables"):
        st.text("Write {{ variable }} in a subject or body, e.g. Hi {{ first_name }}. Example values:")
        st.dataframe([{"variable": "{{ " + name + " }}", "example": value}
                      for name, value in message_copy.VARIABLES.items()], hide_index=True, width="stretch")
    for priority in followup_views.PRIORITIES:
        st.subheader(f"{priority} priority", anchor=False)
        steps = overview[priority]
        if steps:
            table = st.dataframe(
                [{"position": s["position"], "after": s["after"], "channel": s["channel"],
                  "copy": s["copy_mode"].lower(), "subject": s["subject_template"], "enabled": s["enabled"]}
                 for s in steps],
                hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                key=f"steps_{priority}_{state['version']}",
                column_config={"position": st.column_config.NumberColumn("#", width=40), "after": "After",
                               "channel": "Channel", "copy": "Copy", "subject": "Subject",
                               "enabled": st.column_config.CheckboxColumn("On", width=50)})
            if table.selection.rows:
                _step_tools(priority, steps, table.selection.rows[0])
            else:
                st.caption("Select a step to change, move or remove it.")
        else:
            st.info(f"No steps: {priority} leads get no automatic follow-ups. Add one below.")
        with st.expander(f"Add a step to the {priority} sequence"):
            _step_form(priority, None)

    st.subheader("Send window", anchor=False)
    window = _window()
    st.caption(f"Messages go out only inside this window, in {timezone} time (LEADOPS_TIMEZONE). "
               f"Now: {window['text']}.")
    days = list(range(len(sequences.DAY_NAMES)))
    with st.form("send_window"):
        chosen = st.multiselect("Days", days, default=window["days"], format_func=lambda d: sequences.DAY_NAMES[d])
        slots = {"days": st.empty()}
        start_col, end_col = st.columns(2)
        start = start_col.time_input(f"From ({timezone})", value=window["start"], step=900)
        end = end_col.time_input(f"Until ({timezone})", value=window["end"], step=900)
        slots["end"] = st.empty()
        if st.form_submit_button("Save the send window", type="primary"):
            _write(sequences.set_send_window, "Send window saved.", slots, days=chosen, start=start, end=end,
                   actor=actor)


tabs = st.tabs([*LISTS.values(), *(["Sequences"] if manager else [])])
for tab, view in zip(tabs, LISTS, strict=False):
    with tab:
        _list_tab(view)
if manager:
    with tabs[-1]:
        _sequences_tab()
