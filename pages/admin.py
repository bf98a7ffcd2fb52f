"""Admin: users, API keys, the business profile, scoring, the public form, integrations and outbound webhooks."""

import streamlit as st

from core import api_keys, app_settings, errors, integrations, schemas, scoring_preview, uow, users, webhooks
from core.display import plain
from core.profile import FACTOR_FAMILIES, BusinessProfile, ScoringConfig
from pages._common import require

ROLES = ["admin", "manager", "staff", "viewer"]
PREVIEW_LEADS = 200
FAILED_SHOWN = 20
LABELS = {"url": "URL", "event_types": "Event types"}

user = require("admin")
actor = f"user:{user['username']}"


@st.cache_data(ttl=30, show_spinner=False)
def _users() -> list[dict]:
    return [{"id": u.id, "username": u.username, "name": u.name, "email": u.email, "role": u.role.value,
             "active": not u.disabled, "locked until": u.locked_until, "failed sign-ins": u.failed_logins}
            for u in uow.read(users.get_all)]


@st.cache_data(ttl=30, show_spinner=False)
def _keys() -> list[dict]:
    return [{"id": k.id, "name": k.name, "prefix": f"{api_keys.KEY_PREFIX}{k.prefix}_…", "created": k.created_at,
             "created by": k.created_by, "last used": k.last_used_at, "revoked": k.revoked_at}
            for k in uow.read(api_keys.get_all)]


@st.cache_data(ttl=30, show_spinner=False)
def _integrations() -> list[integrations.IntegrationState]:
    return uow.read(integrations.integration_states, settings=uow.settings())


@st.cache_data(ttl=30, show_spinner=False)
def _webhook_endpoints() -> list[webhooks.EndpointState]:
    return uow.read(webhooks.endpoint_states)


@st.cache_data(ttl=30, show_spinner=False)
def _failed_deliveries() -> list[webhooks.FailedDelivery]:
    return uow.read(webhooks.failed_deliveries, limit=FAILED_SHOWN)


def _label(field: str) -> str:
    return LABELS.get(field) or field.replace("_", " ").capitalize()


def _show_errors(problems: list[errors.FieldError], slots: dict | None = None) -> None:
    """Each field's error next to its field when the form has a place for it, otherwise above the form's end."""
    for problem in problems:
        slot = (slots or {}).get(problem.field)
        # "body" is a rule across fields (e.g. budgets in order): its message names the fields itself.
        # The message can quote what someone typed (a username, an address, a URL): shown as text, not markdown.
        message = plain(problem.message)
        text = message if problem.field == "body" else f"{_label(problem.field)}: {message}"
        (slot or st).error(text, icon=":material/error:")


def _saved(message: str) -> None:
    st.cache_data.clear()
    st.toast(message, icon=":material/check_circle:")
    st.success(message)


def _action(service, done: str, gone: str, **kwargs):  # noqa: ANN001, ANN003, ANN202 - a users.*/webhooks.* change
    """Runs one change in its own transaction; shows its errors (`gone` when its target no longer exists) or `done`,
    and returns its result."""
    try:
        with uow.transaction() as session:
            result = service(session=session, actor=actor, **kwargs)
    except errors.ValidationFailed as exc:
        _show_errors(exc.errors)
    except errors.NotFound:
        st.error(gone)
    else:
        _saved(done)
        return result
    return None


def _user_action(service, done: str, **kwargs):  # noqa: ANN001, ANN003, ANN202 - any users.* service
    return _action(service, done, "That user no longer exists.", **kwargs)


def _user_change(service, done: str, **kwargs) -> None:  # noqa: ANN001, ANN003 - users.set_role/set_disabled
    """A change to the chosen user, then a fresh run, so its buttons and confirmation match the new state."""
    if _user_action(service, done, **kwargs) is not None:
        st.session_state["admin_flash"] = done
        st.rerun()


def _webhook_action(service, done: str, **kwargs):  # noqa: ANN001, ANN003, ANN202 - any webhooks.* change
    return _action(service, done, "That endpoint or delivery no longer exists.", **kwargs)


def _show_secret_once(secret: str) -> None:
    st.code(secret, language=None)
    st.warning("Copy this signing secret into the receiver now: it is shown once. The receiver checks each "
               "request's webhook-signature with it.", icon=":material/key:")


st.title("Admin")
users_tab, keys_tab, profile_tab, scoring_tab, form_tab, integrations_tab, webhooks_tab = st.tabs(
    ["Users", "API keys", "Business profile", "Scoring", "Public form", "Integrations", "Webhooks"])

with users_tab:
    if flash := st.session_state.pop("admin_flash", None):
        st.success(flash, icon=":material/check_circle:")
    # The table is drawn last, so it already shows what the buttons below changed in this run.
    table_slot = st.container()

    with st.form("new_user", clear_on_submit=False):
        st.subheader("Add a user")
        left, right = st.columns(2)
        with left:
            new_username = st.text_input("Username *", max_chars=64, key="new_user_username",
                                         help="Lower-case letters, digits, . _ -")
            slots = {"username": st.empty()}
            new_name = st.text_input("Name", max_chars=200, key="new_user_name")
            slots["name"] = st.empty()
            new_email = st.text_input("Email", max_chars=254, key="new_user_email")
            slots["email"] = st.empty()
        with right:
            new_role = st.selectbox("Role *", ROLES, index=ROLES.index("staff"), key="new_user_role")
            slots["role"] = st.empty()
            new_password = st.text_input("Initial password *", type="password", key="new_user_password",
                                         help=f"At least {users.MIN_PASSWORD} characters. Tell them to change it.")
            slots["password"] = st.empty()
        if st.form_submit_button("Add user", type="primary"):
            try:
                with uow.transaction() as session:
                    users.create(session=session, username=new_username, password=new_password, role=new_role,
                                 email=new_email.strip() or None, name=new_name.strip() or None, actor=actor)
            except errors.ValidationFailed as exc:
                _show_errors(exc.errors, slots)
            else:
                _saved("User added: they can sign in now.")

    st.subheader("Manage a user")
    people = _users()
    by_id = {p["id"]: p for p in people}
    chosen_id = st.selectbox("User", list(by_id), format_func=lambda i: by_id[i]["username"], key="manage_user")
    chosen = by_id[chosen_id]
    with st.container(border=True):
        status_slot = st.empty()
        role_col, state_col = st.columns(2)
        with role_col:
            role = st.selectbox("Role", ROLES, index=ROLES.index(chosen["role"]), key=f"role_{chosen_id}")
            if st.button("Change role", key=f"set_role_{chosen_id}", disabled=role == chosen["role"]):
                _user_change(users.set_role, f"Role changed to {role}.", user_id=chosen_id, role=role)
        with state_col:
            disabling = chosen["active"]
            # The key names the action, so a tick given to disable does not also confirm enabling again.
            confirmed = st.checkbox(f"Yes, {'disable' if disabling else 'enable'} this user",
                                    key=f"confirm_{'disable' if disabling else 'enable'}_{chosen_id}",
                                    help="Disabled users are signed out at once and cannot sign in; their leads stay.")
            if st.button("Disable user" if disabling else "Enable user", key=f"set_state_{chosen_id}",
                         disabled=not confirmed):
                _user_change(users.set_disabled, "User disabled." if disabling else "User enabled again.",
                             user_id=chosen_id, disabled=disabling)
        unlock_col, reset_col = st.columns(2)
        with unlock_col:
            if st.button("Unlock sign-in", key=f"unlock_{chosen_id}",
                         help="Clears the failed sign-ins and any lockout."):
                _user_action(users.unlock, "Sign-in unlocked.", user_id=chosen_id)
        with reset_col:
            if st.button("Reset password", key=f"reset_{chosen_id}",
                         help="Gives the user a new random password and clears any lockout."):
                password = _user_action(users.reset_password, "Password reset.", user_id=chosen_id)
                if password:
                    st.code(password, language=None)
                    st.warning("This password is shown once: copy it now and pass it on privately.",
                               icon=":material/visibility_off:")

    fresh = _users()
    current = next((p for p in fresh if p["id"] == chosen_id), chosen)
    status_slot.text(f"{current['username']} · {current['name'] or 'no name'} · {current['role']} · "
                     f"{'active' if current['active'] else 'disabled'} · {current['failed sign-ins']} failed sign-ins")
    with table_slot:
        st.subheader("Users")
        st.dataframe([{k: v for k, v in p.items() if k != "id"} for p in fresh], hide_index=True,
                     width="stretch", column_config={"locked until": st.column_config.DatetimeColumn()})

with keys_tab:
    keys_slot = st.container()
    with st.form("new_key", clear_on_submit=True):
        st.subheader("Create a key")
        key_name = st.text_input("Name *", max_chars=100, key="new_key_name",
                                 placeholder="e.g. website, Zapier", help="Which app will use it: one key per app.")
        if st.form_submit_button("Create key", type="primary"):
            if not key_name.strip():
                st.error("Name: is required")
            else:
                with uow.transaction() as session:
                    _key, secret = api_keys.create(session=session, name=key_name, created_by=actor)
                _saved("Key created.")
                st.code(secret, language=None)
                st.warning("Copy this key now: it cannot be shown again. Only a digest of it is kept.",
                           icon=":material/key:")

    keys = _keys()
    active = {k["id"]: k for k in keys if k["revoked"] is None}
    if active:
        st.subheader("Revoke a key")
        revoke_id = st.selectbox("Key", list(active), key="revoke_key",
                                 format_func=lambda i: f"{active[i]['name']} ({active[i]['prefix']})")
        sure = st.checkbox("Yes, revoke it: apps using this key stop working at once",
                           key=f"confirm_revoke_{revoke_id}")
        if st.button("Revoke key", key="revoke_key_button", disabled=not sure) and sure:
            _action(api_keys.revoke, "Key revoked: it no longer works.", "That key no longer exists.", key_id=revoke_id)

    with keys_slot:
        st.subheader("API keys")
        listed = _keys()
        if listed:
            st.dataframe([{k: v for k, v in key.items() if k != "id"} for key in listed], hide_index=True,
                         width="stretch")
        else:
            st.info("No API keys yet: create one below for each app that calls the HTTP API.",
                    icon=":material/key:")

with profile_tab:
    profile = uow.read(app_settings.get_profile)
    with st.form("profile"):
        st.caption("Both analysis engines read this: what you sell, who fits, and which budgets are small or large.")
        slots = {}
        business_name = st.text_input("Business name", value=profile.business_name, max_chars=120,
                                      key="profile_business_name")
        slots["business_name"] = st.empty()
        what_we_sell = st.text_area("What we sell", value=profile.what_we_sell, max_chars=2000,
                                    key="profile_what_we_sell")
        slots["what_we_sell"] = st.empty()
        ideal_customer = st.text_area("Ideal customer", value=profile.ideal_customer, max_chars=2000,
                                      key="profile_ideal_customer")
        slots["ideal_customer"] = st.empty()
        currency = st.text_input("Currency", value=profile.currency, max_chars=3, key="profile_currency",
                                 help="Three letters, e.g. USD, EUR, GBP")
        slots["currency"] = st.empty()
        low, target, large = st.columns(3)
        min_budget = low.number_input("Smallest viable budget", min_value=0, step=1000, value=profile.min_budget,
                                      key="profile_min_budget", help="Below this, real work is not viable.")
        target_budget = target.number_input("Target budget", min_value=0, step=1000, value=profile.target_budget,
                                            key="profile_target_budget", help="A budget that can make a lead HIGH.")
        large_budget = large.number_input("Large budget", min_value=0, step=1000, value=profile.large_budget,
                                          key="profile_large_budget", help="A large project for this business.")
        budget_slot = st.empty()
        for field in ("min_budget", "target_budget", "large_budget", "body"):
            slots[field] = budget_slot
        if st.form_submit_button("Save profile", type="primary"):
            try:
                new_profile = BusinessProfile(
                    business_name=business_name.strip(), what_we_sell=what_we_sell.strip(),
                    ideal_customer=ideal_customer.strip(), currency=currency.strip().upper(),
                    min_budget=int(min_budget), target_budget=int(target_budget), large_budget=int(large_budget))
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                _show_errors(schemas.field_errors(exc), slots)
            else:
                with uow.transaction() as session:
                    app_settings.set_profile(session=session, profile=new_profile, actor=actor)
                _saved("Business profile saved: new analyses use it at once.")

with scoring_tab:
    scoring = uow.read(app_settings.get_scoring)
    with st.form("scoring"):
        st.caption("A lead's score (0-100) falls into a priority band; each factor family's points are multiplied "
                   "by its weight (1 = as designed, 0 = ignored).")
        high_col, medium_col = st.columns(2)
        high_min = high_col.number_input("HIGH from score", min_value=1, max_value=100, value=scoring.high_min,
                                         key="scoring_high_min")
        medium_min = medium_col.number_input("MEDIUM from score", min_value=0, max_value=99,
                                             value=scoring.medium_min, key="scoring_medium_min")
        slots = {"high_min": st.empty()}
        slots["medium_min"] = slots["body"] = slots["weights"] = slots["high_min"]
        weights = {family: st.slider(f"Weight: {family}", min_value=0.0, max_value=3.0, step=0.1,
                                     value=float(scoring.weight(family)), key=f"scoring_weight_{family}")
                   for family in FACTOR_FAMILIES}
        preview_col, save_col = st.columns(2)
        previewing = preview_col.form_submit_button("Preview", help=f"Re-score the last {PREVIEW_LEADS} leads "
                                                    "with these settings; nothing is saved.")
        saving = save_col.form_submit_button("Save scoring", type="primary")

    if previewing or saving:
        try:
            proposed = ScoringConfig(high_min=int(high_min), medium_min=int(medium_min), weights=weights)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            _show_errors(schemas.field_errors(exc), slots)
            proposed = None
        if proposed is not None and previewing:
            rows = uow.read(scoring_preview.rerank_preview, scoring=proposed,
                            profile=uow.read(app_settings.get_profile), limit=PREVIEW_LEADS)
            if not rows:
                st.info("No leads yet: the preview needs leads to re-rank.", icon=":material/info:")
            else:
                counts = scoring_preview.summary(rows)
                st.subheader(f"Preview over the last {counts.total} leads")
                up, down, same, changed = st.columns(4)
                up.metric("Move up a band", counts.moved_up)
                down.metric("Move down a band", counts.moved_down)
                same.metric("Keep their band", counts.unchanged_band)
                changed.metric("Score changes", counts.score_changed)
                moved = [{"name": r.full_name, "company": r.company, "old score": r.old_score,
                          "new score": r.new_score, "change": r.change, "old priority": r.old_priority.value,
                          "new priority": r.new_priority.value} for r in rows if r.band_move]
                if moved:
                    st.dataframe(moved, hide_index=True, width="stretch",
                                 column_config={"change": st.column_config.NumberColumn(format="%+d")})
                else:
                    st.success("No lead changes priority with these settings.")
                st.caption("Leads analysed by Gemini are re-scored here by the rules engine, so their scores can "
                           "move even with unchanged settings. Saving affects new analyses only.")
        if proposed is not None and saving:
            with uow.transaction() as session:
                app_settings.set_scoring(session=session, scoring=proposed, actor=actor)
            _saved("Scoring saved: new analyses use it at once.")

with form_tab:
    base_url = uow.settings().leadops_base_url.rstrip("/")
    form_url = f"{base_url}/form"
    st.subheader("The public lead form")
    st.text(f"Anyone can send you a lead at {form_url}. To put it on a website, paste this where it should appear:")
    st.code(f'<iframe src="{form_url}" title="Contact us" width="100%" height="720" style="border:0" '
            'loading="lazy"></iframe>', language="html")
    origins = uow.read(app_settings.get_allowed_origins)
    with st.form("origins"):
        st.caption("The embedded form needs nothing here. List the websites (one origin a line, e.g. "
                   "https://www.example.com) whose own pages post leads straight to the form's endpoint.")
        typed = st.text_area("Allowed origins", value="\n".join(origins), height=150, key="allowed_origins",
                             placeholder="https://www.example.com")
        if st.form_submit_button("Save origins", type="primary"):
            try:
                with uow.transaction() as session:
                    app_settings.set_allowed_origins(session=session, actor=actor,
                                                     origins=[line for line in typed.splitlines() if line.strip()])
            except errors.ValidationFailed as exc:
                _show_errors(exc.errors)
            else:
                _saved("Allowed origins saved.")
    if not origins:
        st.info("No other websites may post to the form yet; only the form's own page can.", icon=":material/public:")

with integrations_tab:
    st.caption("Set in the environment (see .env.example) and read when the app starts; secrets are never shown.")
    for state in _integrations():
        with st.container(border=True):
            name_col, state_col = st.columns([3, 1])
            name_col.subheader(state.name)
            if state.configured:
                state_col.success("Configured", icon=":material/check_circle:")
            else:
                state_col.warning("Not configured", icon=":material/do_not_disturb_on:")
            st.text(state.detail)
            if state.last_error:
                # An outside service wrote the error text: shown as code, never as markdown.
                st.error(f"Last error, {state.last_error_at:%d %b %Y %H:%M} UTC:", icon=":material/error:")
                st.code(state.last_error, language=None, wrap_lines=True)
            else:
                st.caption("No errors recorded.")

with webhooks_tab:
    # WEBHOOK_URL may have changed since the jobs process last looked: its endpoint is brought in line first.
    with uow.transaction() as session:
        if webhooks.sync_env_endpoint(session=session, settings=uow.settings()):
            st.cache_data.clear()
    st.caption("Each event (" + ", ".join(webhooks.EVENT_TYPES) + ") is POSTed as JSON to every enabled endpoint "
               "that wants it, signed as the Standard Webhooks specification says. Only a 2xx answer counts; "
               "others are retried for about 18 hours, then the delivery is listed below as failed.")
    endpoints_slot = st.container()

    with st.form("new_webhook"):
        st.subheader("Add an endpoint")
        hook_name = st.text_input("Name *", max_chars=100, key="new_webhook_name", placeholder="e.g. n8n, CRM sync")
        hook_slots = {"name": st.empty()}
        hook_url = st.text_input("URL *", max_chars=2000, key="new_webhook_url",
                                 placeholder="https://n8n.example.com/webhook/leadops")
        hook_slots["url"] = st.empty()
        hook_types = st.multiselect("Event types", webhooks.EVENT_TYPES, key="new_webhook_types",
                                    help="Leave empty for every type, including ones added later.")
        hook_slots["event_types"] = st.empty()
        if st.form_submit_button("Add endpoint", type="primary"):
            try:
                with uow.transaction() as session:
                    _endpoint, hook_secret = webhooks.create_endpoint(session=session, name=hook_name, url=hook_url,
                                                                      event_types=hook_types, actor=actor)
            except errors.ValidationFailed as exc:
                _show_errors(exc.errors, hook_slots)
            else:
                _saved("Endpoint added: new events go to it from now on.")
                _show_secret_once(hook_secret)

    hooks = {h.id: h for h in _webhook_endpoints()}
    if hooks:
        st.subheader("Manage an endpoint")
        hook_id = st.selectbox("Endpoint", list(hooks), key="manage_webhook",
                               format_func=lambda i: f"{hooks[i].name} ({hooks[i].origin})")
        hook = hooks[hook_id]
        with st.container(border=True):
            if hook.from_env:
                st.caption("This endpoint comes from WEBHOOK_URL and is signed with WEBHOOK_SECRET: change those "
                           "variables to move it or give it a new secret.")
            toggle_col, rotate_col, delete_col = st.columns(3)
            with toggle_col:
                # The key names the action, so a click given to disable cannot enable it again after a rerun.
                action = "disable" if hook.enabled else "enable"
                if st.button(f"{action.capitalize()} endpoint", key=f"{action}_webhook_{hook_id}"):
                    _webhook_action(webhooks.update_endpoint, f"Endpoint {action}d.", endpoint_id=hook_id,
                                    enabled=not hook.enabled)
            if not hook.from_env:
                with rotate_col:
                    sure_rotate = st.checkbox("Yes, replace its secret", key=f"confirm_rotate_webhook_{hook_id}",
                                              help="The old secret stops working at once: give the receiver the "
                                                   "new one.")
                    if st.button("Rotate secret", key=f"rotate_webhook_{hook_id}", disabled=not sure_rotate):
                        rotated = _webhook_action(webhooks.rotate_secret, "Secret replaced.", endpoint_id=hook_id)
                        if rotated:
                            _show_secret_once(rotated)
                with delete_col:
                    sure_delete = st.checkbox("Yes, delete it and its queued deliveries",
                                              key=f"confirm_delete_webhook_{hook_id}")
                    if st.button("Delete endpoint", key=f"delete_webhook_{hook_id}", disabled=not sure_delete):
                        _webhook_action(webhooks.delete_endpoint, "Endpoint deleted.", endpoint_id=hook_id)

    failed = _failed_deliveries()
    if failed:
        st.subheader("Failed deliveries")
        st.dataframe([{"failed": f.failed_at, "endpoint": f.endpoint_name, "event": f.event_type,
                       "webhook-id": f.event_id, "attempts": f.attempts, "status": f.last_status_code,
                       "last error": f.last_error} for f in failed],
                     hide_index=True, width="stretch", column_config={"failed": st.column_config.DatetimeColumn()})
        by_delivery = {f.id: f for f in failed}
        retry_id = st.selectbox("Delivery", list(by_delivery), key="retry_delivery",
                                format_func=lambda i: f"{by_delivery[i].event_type} to {by_delivery[i].endpoint_name} "
                                                      f"({by_delivery[i].failed_at:%d %b %H:%M} UTC)")
        if st.button("Retry", key="retry_delivery_button",
                     help="Sends it again on the next webhooks pass, with a fresh set of attempts."):
            _webhook_action(webhooks.redeliver, "Delivery queued again: the next webhooks pass sends it.",
                            delivery_id=retry_id)

    with endpoints_slot:
        st.subheader("Endpoints")
        listed = _webhook_endpoints()
        if listed:
            # A dataframe shows the receivers' error text as plain text, never as markdown.
            st.dataframe([{"name": h.name, "address": h.origin, "events": ", ".join(h.event_types) or "all",
                           "enabled": h.enabled, "source": "WEBHOOK_URL" if h.from_env else "app",
                           "pending": h.pending, "delivered (7 d)": h.delivered_7d, "failed (7 d)": h.failed_7d,
                           "last success": h.last_success_at, "last failure": h.last_failure_at,
                           "last error": h.last_error, "disabled because": h.disabled_reason} for h in listed],
                         hide_index=True, width="stretch",
                         column_config={"last success": st.column_config.DatetimeColumn(),
                                        "last failure": st.column_config.DatetimeColumn()})
        else:
            st.info("No webhook endpoints yet. Add one below with the address of your receiver (an n8n Webhook "
                    "node, Zapier, your own service), or set WEBHOOK_URL and WEBHOOK_SECRET in the environment.",
                    icon=":material/webhook:")
