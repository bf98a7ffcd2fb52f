"""Learned score (managers, admins): the fields a model learns from, training, how it ranks leads it never saw
against the naive Bayes baseline and the engine, whether it is blended into lead scores, and its calibration."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import errors, learned_score, uow
from core.display import plain
from pages._common import require

HEIGHT = 340

user = require("learned")
state = st.session_state.setdefault("learned_page", {"flash": None, "level": "success"})

st.title("Learned score")
st.caption("A model trained on your team's own won and lost leads, on the fields you pick (imported columns "
           "included). It is shown beside the rules or AI score on every lead, and blended into the lead's score "
           f"only once it has {learned_score.MIN_OUTCOMES} won and {learned_score.MIN_OUTCOMES} lost leads and ranks "
           "leads it never saw better than the engine does. After every win or loss the learn job retrains it "
           "(within the hour), on the same fields.")


@st.cache_data(ttl=60, show_spinner=False)
def _fields() -> list[learned_score.FieldChoice]:
    return uow.read(learned_score.available_fields)


@st.cache_data(ttl=60, show_spinner=False)
def _report() -> learned_score.ModelReport | None:
    return uow.read(learned_score.report)


@st.cache_data(ttl=60, show_spinner=False)
def _history() -> list[dict]:
    return uow.read(learned_score.history)


@st.cache_data(ttl=60, show_spinner=False)
def _outcomes() -> tuple[int, int, str | None]:
    return uow.read(learned_score.outcome_counts)


def _choice_label(choice: learned_score.FieldChoice) -> str:
    where = "imported" if choice.custom else "lead field"
    return f"{choice.label} ({where}, {choice.kind}; {choice.outcomes:,} won/lost leads have it)"


def _train(fields: list[str], outcomes: int) -> None:
    with st.spinner(f"Training on {outcomes:,} won and lost leads: both models, cross-validation, then rescoring "
                    "the open leads…"):
        try:
            model = learned_score.train(engine=uow.engine(), fields=fields, actor=user["username"])
        except errors.ValidationFailed as exc:
            st.error("; ".join(plain(e.message) for e in exc.errors), icon=":material/error:")
            return
    for cached in (_fields, _report, _history, _outcomes):
        cached.clear()
    auc = model.metrics.get("auc")
    state["level"] = "success"
    state["flash"] = (f"Trained: {learned_score.ALGORITHMS.get(model.algorithm, model.algorithm)}, held-out AUC "
                      f"{auc:.3f}. {model.note}" if auc is not None else f"Trained. {model.note}")
    st.rerun()


def _calibration_chart(rows: list[dict]):  # noqa: ANN202 - a Plotly figure
    frame = pd.DataFrame(rows)
    figure = go.Figure([
        go.Bar(name="Predicted", x=frame["band"], y=frame["predicted"], customdata=frame["leads"],
               hovertemplate="%{x}: predicted %{y}% (%{customdata} leads)<extra></extra>"),
        go.Bar(name="Actual", x=frame["band"], y=frame["actual"], customdata=frame["leads"],
               hovertemplate="%{x}: %{y}% actually won (%{customdata} leads)<extra></extra>"),
    ])
    figure.update_layout(barmode="group", height=HEIGHT, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         legend={"orientation": "h", "y": -0.2}, yaxis={"title": "Conversion (%)", "range": [0, 100]},
                         xaxis={"title": "Learned score band"})
    return figure


def _auc(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "—"


if state["flash"]:
    getattr(st, state["level"])(state["flash"])
    state["flash"] = None

choices = {choice.key: choice for choice in _fields()}
current = _report()
won, lost, _last = _outcomes()

st.subheader("Fields to learn from")
st.caption("Pick what a lead carries when it arrives. A column the sales team fills in after contact (a status, a "
           "tag, a quality rating, the last activity) already knows the outcome: a model that reads it looks "
           "excellent here and predicts nothing for new leads.")
default = [key for key in (current.fields if current else learned_score.DEFAULT_FIELDS) if key in choices]
with st.form("learned_train"):
    picked = st.multiselect("Fields", list(choices), default=default, format_func=lambda key: _choice_label(
        choices[key]), placeholder="Pick one or more fields")
    st.caption(f"{won:,} won and {lost:,} lost leads to learn from; at least {learned_score.MIN_OUTCOMES} of each "
               "are needed.")
    submitted = st.form_submit_button("Train now", type="primary", icon=":material/model_training:")
# Custom fields are named by imported column headers: plain text wherever markdown renders.
ids = [plain(choices[key].label) for key in picked if choices[key].looks_like_id]
if ids:
    st.warning(f"Every lead has its own value of {', '.join(ids)}: an identifier predicts nothing about a new lead.",
               icon=":material/warning:")
if submitted:
    _train(picked, won + lost)

st.subheader("The model in use")
if current is None:
    st.info("No model yet: pick the fields above and train one, or let the learn job train one on the lead fields "
            f"once there are {learned_score.MIN_OUTCOMES} won and {learned_score.MIN_OUTCOMES} lost leads.",
            icon=":material/model_training:")
    st.stop()

metrics = current.metrics
models = metrics.get("models", {})
engine_auc = metrics.get("engine", {}).get("auc")
auc, baseline, engine, accuracy, used = st.columns(5)
auc.metric("Held-out AUC", _auc(metrics.get("auc")), help="How well the model ranks won above lost leads it did "
           "not train on: 0.5 is chance, 1.0 perfect.")
baseline.metric("Baseline AUC", _auc(models.get("naive_bayes", {}).get("auc")),
                help="Odoo's predictive lead scoring: naive Bayes over the field values of won and lost leads.")
engine.metric("Engine AUC", _auc(engine_auc), help="The rules or AI score of the same held-out leads, as a ranking.")
accuracy.metric("Accuracy", f"{metrics['accuracy']:.1%}" if metrics.get("accuracy") is not None else "—",
                help="Held-out leads on the right side of 50 %.")
used.metric("Outcomes used", f"{current.won + current.lost:,}", help=f"{current.won:,} won, {current.lost:,} lost")
lr = models.get("logistic_regression", {})
st.caption(f"{current.algorithm_label} is in use: held-out AUC {_auc(metrics.get('auc'))} against "
           f"{_auc(models.get('naive_bayes', {}).get('auc'))} for naive Bayes and {_auc(lr.get('auc'))} for logistic "
           f"regression (C = {lr.get('c')}). Trained {current.trained_at:%Y-%m-%d %H:%M} UTC on "
           f"{metrics.get('train_leads', 0):,} leads, judged on {metrics.get('test_leads', 0):,} others (a fixed "
           f"random split, seed {metrics.get('seed')}), then refitted on all of them. Fields: "
           f"{', '.join(plain(label) for label in current.field_labels)}.")
if current.blended:
    st.success(current.note, icon=":material/merge:")
else:
    st.info(current.note + " Lead scores stay the engine's; the learned score is shown beside them.",
            icon=":material/info:")
leaky = [plain(learned_score.label_of(name)) for name in metrics.get("leaky_fields", [])]
if leaky:
    st.warning(f"{', '.join(leaky)} alone ranks held-out leads almost perfectly: it was probably filled in after "
               "contact. Train again without it.", icon=":material/warning:")

left, right = st.columns(2)
with left:
    st.subheader("Calibration")
    st.caption("Held-out leads per learned score band: the conversion the model predicted against what happened.")
    st.plotly_chart(_calibration_chart(metrics["calibration"]), width="stretch")
with right:
    st.subheader("Top factors")
    st.caption("The model's strongest weights, against a typical lead: odds above 1 raise the score, below 1 lower "
               "it.")
    st.dataframe(pd.DataFrame(current.weights).rename(columns={"field": "Field", "value": "Value",
                                                               "weight": "Weight", "odds": "Odds ×"}),
                 hide_index=True, width="stretch")

st.subheader("Each field on its own")
field_auc = metrics.get("field_auc", {})
st.dataframe(pd.DataFrame([{"Field": learned_score.label_of(name), "Held-out AUC alone": value}
                           for name, value in sorted(field_auc.items(), key=lambda item: -item[1])]),
             hide_index=True, width="stretch")

st.subheader("Trainings")
st.dataframe(pd.DataFrame(_history()).rename(columns={"trained_at": "Trained", "model": "Model", "won": "Won",
                                                      "lost": "Lost", "blended": "Blended", "active": "In use"}),
             hide_index=True, width="stretch")
