"""Import: leads from a CSV or Excel file; columns mapped, a preview, progress, the result, and undo."""

import pandas as pd
import streamlit as st

from core import errors, imports, uow
from core.display import plain
from pages._common import require

PREVIEW_ROWS = 20
FAILED_SHOWN = 20
KEYS = {"email": "Email address", "external_id": "External id (the other system's row key)"}
ON_EXISTING = {"skip": "Skip the row: the lead stays as it is", "update": "Update the lead with the row's values",
               "create": "Create another lead anyway"}
# The defaults of core.imports, as the page's text inputs show them.
WON_VALUES, LOST_VALUES = (", ".join(k for k, v in imports.DEFAULT_OUTCOMES.items() if v == outcome)
                           for outcome in ("WON", "LOST"))
NO_LABEL = "(none: batch and row number)"

user = require("imports")
actor = f"user:{user['username']}"


@st.cache_data(max_entries=2, show_spinner="Reading the file…")
def _table(data: bytes, name: str) -> pd.DataFrame:
    return imports.read_table(data, name)


@st.cache_data(ttl=30, show_spinner=False)
def _history() -> list[dict]:
    return [{"id": b.id, "when": b.created_at, "file": b.filename, "by": b.created_by, "status": b.status,
             "rows": b.total_rows, "created": b.created, "updated": b.updated, "skipped": b.skipped,
             "failed": b.failed, "undone": b.undone_at} for b in uow.read(imports.get_batches)]


def _show_errors(exc: errors.ValidationFailed) -> None:
    # Messages quote the file's column headers and cells: plain text, never markdown.
    for problem in exc.errors:
        st.error(f"{problem.field.replace('_', ' ').capitalize()}: {plain(problem.message)}", icon=":material/error:")


def _values(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _example(column: pd.Series) -> str:
    return next((v for v in column.head(200) if str(v).strip()), "")


def _failed_download(batch_id: str, label: str, where: str) -> None:
    st.download_button(label, data=lambda: uow.read(imports.failed_rows_csv, batch_id=batch_id),
                       file_name=f"failed-rows-{batch_id}.csv", mime="text/csv", icon=":material/download:",
                       on_click="ignore", key=f"failed_{where}_{batch_id}")


def _mapping(table: pd.DataFrame, signature: str) -> dict[str, str]:
    """The suggested mapping, as the person edited it."""
    suggested = imports.suggest_mapping(table.columns)
    rows = pd.DataFrame({"column": list(table.columns), "example": [_example(table[c]) for c in table.columns],
                         "maps to": [suggested[c] for c in table.columns]})
    edited = st.data_editor(
        rows, key=f"mapping_{signature}", hide_index=True, width="stretch", disabled=["column", "example"],
        column_config={"column": "Column of the file", "example": "First value",
                       "maps to": st.column_config.SelectboxColumn(
                           "Maps to", options=list(imports.TARGETS), required=True,
                           help="A lead field; custom keeps the column on the lead as it is; ignore drops it")})
    return dict(zip(edited["column"], edited["maps to"], strict=True))


def _options(table: pd.DataFrame, mapping: dict[str, str], signature: str) -> dict:
    """The import options from the form's widgets."""
    with st.container(border=True):
        st.subheader("Options")
        left, right = st.columns(2)
        keys = list(KEYS)
        key = left.radio("Row key: how a row finds a lead that is already here", keys, format_func=KEYS.get,
                         index=keys.index(imports.default_key(mapping)),
                         key=f"key_{signature}")
        on_existing = right.radio("When a lead with that key is already here", list(ON_EXISTING),
                                  format_func=ON_EXISTING.get, key=f"existing_{signature}")
        placeholders = st.text_input(
            "Values that mean “missing” (comma-separated)", value=", ".join(p for p in imports.DEFAULT_PLACEHOLDERS
                                                                          if p),
            help="Cells holding one of these (any case) count as empty, e.g. the “Select” a form leaves behind. "
                 "Empty cells always count as missing.", key=f"placeholders_{signature}")
        won_col, lost_col = st.columns(2)
        won = won_col.text_input("Outcome values meaning WON", WON_VALUES, key=f"won_{signature}")
        lost = lost_col.text_input("Outcome values meaning LOST", LOST_VALUES, key=f"lost_{signature}")
        label_col, source_col = st.columns(2)
        label = label_col.selectbox(
            "Column that names leads without a name or email", [NO_LABEL, *table.columns], key=f"label_{signature}",
            help="E.g. a lead number: such a lead is called “Lead 660737” and gets the address "
                 "`lead-660737@import.invalid`.")
        source = source_col.text_input("Source of leads whose row has none", "import", key=f"source_{signature}")
        follow_up = st.toggle("Contact these leads with the automatic follow-up sequences", value=False,
                              key=f"follow_up_{signature}")
        st.caption("Off by default: imported leads are usually old contacts, and an import should not email "
                   "thousands of people at once. Leads without an email address are never contacted.")
    outcomes = {v: "WON" for v in _values(won)} | {v: "LOST" for v in _values(lost)}
    return {"key": key, "on_existing": on_existing, "placeholders": ["", *_values(placeholders)],
            "outcome_values": outcomes, "follow_up": follow_up, "source": source,
            "label_column": None if label == NO_LABEL else label}


def _import_form(table: pd.DataFrame, filename: str, signature: str) -> None:
    st.caption(f"{len(table):,} rows, {len(table.columns)} columns. Check what each column maps to.")
    mapping = _mapping(table, signature)
    choices = _options(table, mapping, signature)
    st.subheader("Preview")
    try:
        options = imports.ImportOptions.of(choices)
        shown = imports.preview(table, mapping, options, n=PREVIEW_ROWS, filename=filename)
    except errors.ValidationFailed as exc:
        _show_errors(exc)
        return
    bad = sum(1 for row in shown if row["problems"])
    if bad:
        st.warning(f"{bad} of the first {len(shown)} rows have problems. Rows with problems are reported as failed "
                   "(downloadable after the import); the others are imported.", icon=":material/warning:")
    st.dataframe(pd.DataFrame(shown), hide_index=True, width="stretch",
                 column_config={"problems": st.column_config.TextColumn("Problems", width="medium")})
    if not st.button(f"Import {len(table):,} rows", type="primary", icon=":material/upload_file:"):
        return
    bar = st.progress(0.0, text="Importing…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Imported {done:,} of {total:,} rows")

    try:
        batch = imports.run(engine=uow.engine(), settings=uow.settings(), df=table, mapping=mapping,
                            options=options, filename=filename, actor=actor, progress=progress)
    except errors.ValidationFailed as exc:
        _show_errors(exc)
        return
    st.session_state["import_batch"] = batch.id
    st.cache_data.clear()
    st.rerun()


def _last_result(batch_id: str) -> None:
    try:
        batch = uow.read(imports.get_batch, batch_id=batch_id)
    except errors.NotFound:
        return
    with st.container(border=True):
        st.subheader("Last import")
        st.text(f"{batch.filename}: {batch.total_rows:,} rows ({batch.status})")
        created, updated, skipped, failed = st.columns(4)
        created.metric("Created", f"{batch.created:,}")
        updated.metric("Updated", f"{batch.updated:,}")
        skipped.metric("Skipped", f"{batch.skipped:,}")
        failed.metric("Failed", f"{batch.failed:,}")
        if batch.failed:
            st.dataframe(uow.read(imports.failed_rows, batch_id=batch.id, limit=FAILED_SHOWN), hide_index=True,
                         width="stretch")
            _failed_download(batch.id, "Download the failed rows (CSV)", "result")


def _history_section() -> None:
    st.subheader("Imports so far")
    flash = st.session_state.pop("import_flash", None)
    if flash:
        st.success(flash, icon=":material/undo:")
    history = _history()
    if not history:
        st.info("Nothing imported yet.")
        return
    st.dataframe([{k: v for k, v in row.items() if k != "id"} for row in history], hide_index=True, width="stretch")
    labels = {row["id"]: f"{row['when']:%Y-%m-%d %H:%M} · {row['file']} · {row['status']}" for row in history}
    chosen = st.selectbox("Import", list(labels), format_func=labels.get, key="import_chosen")
    row = next(r for r in history if r["id"] == chosen)
    if row["failed"]:
        _failed_download(chosen, "Download its failed rows (CSV)", "history")
    if row["status"] not in ("DONE", "FAILED"):
        return
    if st.session_state.get("import_undo") != chosen:
        if st.button("Undo this import…", icon=":material/undo:"):
            st.session_state["import_undo"] = chosen
            st.rerun()
        return
    st.warning(f"Undo deletes the {row['created']:,} lead(s) this import created and gives the {row['updated']:,} "
               "it updated their earlier values back. Leads someone has worked on since (a note, a status change, "
               "an assignment, a message sent) are left as they are.", icon=":material/warning:")
    yes, no, _ = st.columns([1, 1, 3])
    if yes.button("Yes, undo the import", type="primary"):
        try:
            with uow.transaction() as session:
                outcome = imports.undo(session=session, batch_id=chosen, actor=actor)
        except (errors.ValidationFailed, errors.NotFound) as exc:
            st.error(plain(exc))
            return
        st.session_state.pop("import_undo", None)
        st.session_state["import_flash"] = (
            f"Import undone: {outcome.deleted:,} lead(s) deleted, {outcome.restored:,} restored"
            + (f", {outcome.kept:,} kept because someone worked on them since." if outcome.kept else "."))
        st.cache_data.clear()
        st.rerun()
    if no.button("Cancel"):
        st.session_state.pop("import_undo", None)
        st.rerun()


st.title("Import leads")
st.caption("Upload a CSV or Excel (.xlsx) file whose first row names the columns. Columns that match no lead field "
           "are kept on each lead as custom attributes. A row without an email gets an address such as "
           "`lead-660737@import.invalid` (from the column chosen below to name leads), which can never receive "
           "mail; a row without a name is called “Lead 660737”; one without a message gets a message saying which "
           "file and row it came from. Imported leads are scored by the rules engine.")
uploaded = st.file_uploader("CSV or Excel file", type=["csv", "xlsx", "tsv", "txt"])
if uploaded is not None:
    try:
        table = _table(uploaded.getvalue(), uploaded.name)
    except errors.ValidationFailed as exc:
        _show_errors(exc)
    else:
        _import_form(table, uploaded.name, f"{uploaded.name}:{uploaded.size}")
if st.session_state.get("import_batch"):
    _last_result(st.session_state["import_batch"])
_history_section()
