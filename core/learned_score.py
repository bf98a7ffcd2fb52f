"""The learned score: a model trained on the team's own WON and LOST leads, kept as data, blended in once it earns it.

Two models are fitted on a fixed 70 % of the outcomes and compared on the other 30 %:
- the baseline, Odoo's predictive lead scoring: naive Bayes over how often each field value appears among won and
  lost leads, per field, Laplace-smoothed, numbers in quantile bins;
- an L2 logistic regression over one-hot levels (rare ones pooled), quantile bins, a missing indicator and a
  standardised value per number, its C tuned by cross-validation on the training part.
The one with the better held-out AUC is refitted on every outcome and stored as an additive log-odds table (an
intercept and a weight per field value): scoring a lead takes a few look-ups, a sum and a sigmoid, with no
scikit-learn object and no pickle (which would run code when read back).

Every open lead's analysis carries the learned score beside the engine's (rules or AI). It is blended into the
lead's score (the average of both) only while the model has MIN_OUTCOMES won and lost leads and ranks the held-out
leads better than the engine did; `engine_score` keeps the engine's own score, so blending can be switched off.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import phonenumbers
from sqlalchemy import Engine, distinct, func, select, true, update
from sqlalchemy.orm import Session

from core import activities, app_settings, audit, followups
from core.analysis.rules import FREE_MAIL
from core.config import Settings
from core.errors import FieldError, ValidationFailed
from core.profile import ScoringConfig
from db.models import ActivityKind, Lead, LeadAnalysis, LeadStatus, LearnedModel, utcnow
from db.session import session_scope

SEED = 42  # the fixed random split and the cross-validation folds
TEST_SHARE = 0.3
MIN_OUTCOMES = 40  # won and lost leads each, to train and to blend
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
CV_FOLDS = 5
# A few hundred features at most: Newton steps on the exact Hessian converge in a handful of iterations.
SOLVER = "newton-cholesky"
LAPLACE = 1.0
MAX_LEVELS = 50  # per field: the most frequent values, the rest pooled as "(other)"
MAX_BINS = 30
LEADS_PER_BIN = 200
RESCORE_BATCH = 500
TOP_FACTORS = 5
LEAK_AUC = 0.9  # one field alone ranking held-out leads this well was probably filled in after contact
BANDS = ((0, 19), (20, 39), (40, 59), (60, 79), (80, 100))
ACTOR = "system:learn"
MISSING = "(missing)"
OTHER = "(other)"
FORMAT = "additive-logit/1"
ALGORITHMS = {"logistic_regression": "Logistic regression (L2)",
              "naive_bayes": "Naive Bayes (Odoo's predictive lead scoring)"}

# Lead fields a model may read, besides any custom attribute (an imported column) named as it was imported.
LEAD_FIELDS: dict[str, str] = {
    "source": "Source",
    "project_type": "Project type",
    "budget_usd": "Budget (USD)",
    "has_company": "Has a company",
    "email_domain": "Email: company domain or free mail",
    "phone_country": "Phone country",
    "message_length": "Message length",
}
NUMERIC_LEAD_FIELDS = frozenset({"budget_usd", "message_length"})
DEFAULT_FIELDS = tuple(LEAD_FIELDS)
OUTCOMES = (LeadStatus.WON, LeadStatus.LOST)


class NotEnoughOutcomes(ValidationFailed):
    """Too few won or lost leads to train (or to judge) a model."""


# --- what a model reads of a lead ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LeadView:
    """The parts of a lead a model may read."""

    source: str | None = None
    project_type: str | None = None
    budget_usd: float | None = None
    company: str | None = None
    email: str | None = None
    phone: str | None = None
    message_length: int = 0
    custom: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, lead: Lead) -> LeadView:
        """The view of a stored lead."""
        return cls(source=lead.source, project_type=lead.project_type, budget_usd=_float(lead.budget_usd),
                   company=lead.company, email=lead.email, phone=lead.phone, message_length=len(lead.message or ""),
                   custom=dict(lead.custom_attributes or {}))


def label_of(name: str) -> str:
    """A field's name as people read it (custom attributes keep their column name)."""
    return LEAD_FIELDS.get(name, name)


def value_of(view: LeadView, name: str) -> Any:
    """The value of one field for a lead: text, a number, or None when the lead has none."""
    if name not in LEAD_FIELDS:
        value = view.custom.get(name)
        return None if value is None or (isinstance(value, str) and not value.strip()) else value
    if name == "has_company":
        return "yes" if (view.company or "").strip() else "no"
    if name == "email_domain":
        domain = (view.email or "").rpartition("@")[2].lower()
        if not domain or domain.endswith(".invalid"):
            return None  # imports without an address get one on a domain that cannot exist
        return "free mail" if domain in FREE_MAIL else "company domain"
    if name == "phone_country":
        return _phone_country(view.phone)
    if name == "message_length":
        return view.message_length
    value = getattr(view, name)
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _phone_country(phone: str | None) -> str | None:
    if not phone or not phone.strip().startswith("+"):
        return None  # without the country code the country is a guess
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None)) or None
    except phonenumbers.NumberParseException:
        return None


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        number = float(value)
        return number if math.isfinite(number) else None
    try:
        number = float(str(value).strip().replace(",", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _level(value: Any) -> str:
    """A categorical value as its level's name."""
    if value is None:
        return MISSING
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()[:100]
    return text or MISSING


# --- features: one spec per field, the same layout for both models ------------------------------------------------

def _spec(name: str, values: list[Any], n_rows: int) -> dict[str, Any]:
    """How one field becomes features, learned from the training values (never from the outcomes).

    Categorical: a slot per kept level, then "(other)" and "(missing)". Numeric: a slot per quantile bin, then
    "(missing)", then the standardised value (clipped to the 1st-99th percentile so one outlier cannot dominate).
    """
    present = [v for v in values if v is not None]
    numeric = name in NUMERIC_LEAD_FIELDS or (name not in LEAD_FIELDS and bool(present)
                                              and all(_is_number(v) for v in present))
    if numeric:
        numbers = np.array([float(v) for v in present if _float(v) is not None], dtype=float)
        bins = max(2, min(MAX_BINS, n_rows // LEADS_PER_BIN))
        edges = sorted(set(np.quantile(numbers, np.arange(1, bins) / bins).round(6).tolist())) if len(numbers) else []
        low, high = (np.quantile(numbers, [0.01, 0.99]).tolist() if len(numbers) else [0.0, 0.0])
        clipped = np.clip(numbers, low, high) if len(numbers) else numbers
        mean, std = (float(clipped.mean()), float(clipped.std())) if len(numbers) else (0.0, 0.0)
        return {"name": name, "kind": "numeric", "edges": edges, "clip": [float(low), float(high)],
                "mean": mean, "std": std}
    counts = Counter(_level(v) for v in values)
    counts.pop(MISSING, None)
    min_count = max(2, min(20, n_rows // 100))
    levels = [level for level, n in counts.most_common(MAX_LEVELS) if n >= min_count and level != OTHER]
    return {"name": name, "kind": "categorical", "levels": levels}


def _width(spec: dict[str, Any]) -> int:
    if spec["kind"] == "numeric":
        return len(spec["edges"]) + 3  # bins, missing, value
    return len(spec["levels"]) + 2  # levels, other, missing


def _slots(spec: dict[str, Any], value: Any) -> list[tuple[int, float]]:
    """The features one value switches on within its field: (slot, value) pairs."""
    if spec["kind"] == "numeric":
        number = _float(value)
        n_bins = len(spec["edges"]) + 1
        if number is None:
            return [(n_bins, 1.0)]
        low, high = spec["clip"]
        z = (min(max(number, low), high) - spec["mean"]) / spec["std"] if spec["std"] > 0 else 0.0
        return [(bisect.bisect_right(spec["edges"], number), 1.0), (n_bins + 1, z)]
    level = _level(value)
    if level == MISSING:
        return [(len(spec["levels"]) + 1, 1.0)]
    try:
        return [(spec["levels"].index(level), 1.0)]
    except ValueError:
        return [(len(spec["levels"]), 1.0)]


def _slot_names(spec: dict[str, Any]) -> list[str]:
    """What each slot of a field means, for the weights table."""
    if spec["kind"] == "categorical":
        return [*spec["levels"], OTHER, MISSING]
    edges = spec["edges"]
    if not edges:
        bins = ["any value"]
    else:
        bins = [f"< {_num(edges[0])}"] + [f"{_num(a)} to < {_num(b)}" for a, b in zip(edges, edges[1:], strict=False)]
        bins.append(f"≥ {_num(edges[-1])}")
    return [*bins, MISSING, "per standard deviation"]


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _design(specs: list[dict[str, Any]], columns: list[list[Any]]) -> Any:
    """The (sparse) feature matrix of rows given as one list of values per field."""
    from scipy.sparse import csr_matrix

    n = len(columns[0]) if columns else 0
    rows, cols, data = [], [], []
    offset = 0
    for spec, values in zip(specs, columns, strict=True):
        for row, value in enumerate(values):
            for slot, x in _slots(spec, value):
                rows.append(row)
                cols.append(offset + slot)
                data.append(x)
        offset += _width(spec)
    # A lead switches on a few slots per field: sparse rows make each solver step many times cheaper.
    return csr_matrix((data, (rows, cols)), shape=(n, offset))


# --- the stored model: an intercept plus a weight per slot --------------------------------------------------------

def _contribution(spec: dict[str, Any], value: Any) -> float:
    weights = spec["weights"]
    return sum(weights[slot] * x for slot, x in _slots(spec, value))


def probability(parameters: dict[str, Any], view: LeadView) -> float:
    """The model's probability that the lead is won, from its stored parameters alone."""
    logit = parameters["intercept"] + sum(_contribution(s, value_of(view, s["name"])) for s in parameters["fields"])
    return _sigmoid(logit)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _centred(specs: list[dict[str, Any]], intercept: float, columns: list[list[Any]]) -> float:
    """Shifts each field's weights so the average training lead gets 0 from it (the intercept absorbs the shift).

    Predictions do not change; a factor's weight then reads as "compared with a typical lead".
    """
    for spec, values in zip(specs, columns, strict=True):
        mean = sum(_contribution(spec, v) for v in values) / max(len(values), 1)
        # Every value switches on exactly one level, bin or missing slot: shifting those shifts every contribution.
        shifted = _width(spec) - (1 if spec["kind"] == "numeric" else 0)
        spec["weights"] = [w - mean if i < shifted else w for i, w in enumerate(spec["weights"])]
        intercept += mean
    return intercept


def _parameters(algorithm: str, specs: list[dict[str, Any]], intercept: float,
                columns: list[list[Any]]) -> dict[str, Any]:
    intercept = _centred(specs, intercept, columns)
    for spec in specs:
        spec["weights"] = [float(w) for w in spec["weights"]]
        spec["label"] = label_of(spec["name"])
    return {"format": FORMAT, "algorithm": algorithm, "intercept": float(intercept), "fields": specs}


def fit_naive_bayes(names: Sequence[str], columns: list[list[Any]], outcomes: Sequence[int]) -> dict[str, Any]:
    """Odoo's baseline: per field, log P(value | won) - log P(value | lost), Laplace-smoothed, plus the prior odds."""
    y = np.asarray(outcomes)
    won, lost = int(y.sum()), int(len(y) - y.sum())
    specs = [_spec(name, values, len(y)) for name, values in zip(names, columns, strict=True)]
    for spec, values in zip(specs, columns, strict=True):
        width = _width(spec)
        # The numeric "value" slot is not a level: naive Bayes only counts the bin (or missing) a value falls in.
        levels = width - 1 if spec["kind"] == "numeric" else width
        won_counts, lost_counts = np.zeros(width), np.zeros(width)
        for value, outcome in zip(values, y, strict=True):
            slot = _slots(spec, value)[0][0]
            (won_counts if outcome else lost_counts)[slot] += 1
        ratio = (np.log((won_counts + LAPLACE) / (won + LAPLACE * levels))
                 - np.log((lost_counts + LAPLACE) / (lost + LAPLACE * levels)))
        if spec["kind"] == "numeric":
            ratio[-1] = 0.0
        spec["weights"] = ratio.tolist()
    return _parameters("naive_bayes", specs, math.log(won / lost), columns)


@dataclass
class LogisticFit:
    """A fitted logistic regression: the parameters to store, and what produced them (for checking)."""

    parameters: dict[str, Any]
    estimator: Any
    matrix: Any
    c: float


def fit_logistic(names: Sequence[str], columns: list[list[Any]], outcomes: Sequence[int],
                 c: float | None = None) -> LogisticFit:
    """L2 logistic regression over the fields' features; C tuned by stratified cross-validation unless given."""
    # Imported here: the web process scores leads from stored parameters and never needs scikit-learn loaded.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    y = np.asarray(outcomes)
    specs = [_spec(name, values, len(y)) for name, values in zip(names, columns, strict=True)]
    matrix = _design(specs, columns)
    if c is None:
        folds = max(2, min(CV_FOLDS, int(y.sum()), int(len(y) - y.sum())))
        # Tuned on log loss, not AUC: AUC ties across C whenever one field dominates, and the smallest C would then
        # win and squash every probability towards the base rate; log loss also keeps the score calibrated.
        search = GridSearchCV(LogisticRegression(solver=SOLVER, max_iter=1000), {"C": list(C_GRID)},
                              scoring="neg_log_loss", cv=StratifiedKFold(folds, shuffle=True, random_state=SEED))
        c = float(search.fit(matrix, y).best_params_["C"])
    estimator = LogisticRegression(C=c, solver=SOLVER, max_iter=1000).fit(matrix, y)
    coef, offset = estimator.coef_[0], 0
    for spec in specs:
        spec["weights"] = coef[offset:offset + _width(spec)].tolist()
        offset += _width(spec)
    return LogisticFit(parameters=_parameters("logistic_regression", specs, float(estimator.intercept_[0]), columns),
                       estimator=estimator, matrix=matrix, c=c)


def _fit(algorithm: str, names: Sequence[str], columns: list[list[Any]], outcomes: Sequence[int],
         c: float | None = None) -> tuple[dict[str, Any], float | None]:
    if algorithm == "naive_bayes":
        return fit_naive_bayes(names, columns, outcomes), None
    fitted = fit_logistic(names, columns, outcomes, c)
    return fitted.parameters, fitted.c


# --- scoring and explaining one lead ------------------------------------------------------------------------------

def explain(parameters: dict[str, Any], view: LeadView) -> tuple[int, list[dict[str, Any]]]:
    """The score (0-100) and the fields that moved it most, in points against a typical lead."""
    parts = [(s, value_of(view, s["name"])) for s in parameters["fields"]]
    contributions = [_contribution(s, v) for s, v in parts]
    logit = parameters["intercept"] + sum(contributions)
    p = _sigmoid(logit)
    factors = []
    for (spec, value), c in zip(parts, contributions, strict=True):
        impact = round(100 * (p - _sigmoid(logit - c)))
        if impact:
            label = spec.get("label") or label_of(spec["name"])
            factors.append({"name": label, "impact": impact, "detail": f"{label}: {_shown(spec, value)}"[:200]})
    factors.sort(key=lambda f: (-abs(f["impact"]), f["name"]))
    return _score(p), factors[:TOP_FACTORS]


def _shown(spec: dict[str, Any], value: Any) -> str:
    if spec["kind"] == "numeric":
        number = _float(value)
        return _num(number) if number is not None else "not given"
    level = _level(value)
    return "not given" if level == MISSING else level


def _score(p: float) -> int:
    return max(0, min(100, round(100 * p)))


def score(model: LearnedModel, lead: Lead) -> tuple[int, list[dict[str, Any]]]:
    """The model's score for a lead (0-100) and its top factors [{name, impact, detail}]."""
    return explain(model.parameters, LeadView.of(lead))


def blend(engine_score: int, learned: int) -> int:
    """The lead's score when the learned score is blended in: the average of both."""
    return round((engine_score + learned) / 2)


def top_weights(parameters: dict[str, Any], n: int = 15) -> list[dict[str, Any]]:
    """The model's strongest weights: field, value, weight in log-odds, and the odds multiplier it stands for."""
    rows = []
    for spec in parameters["fields"]:
        for name, weight in zip(_slot_names(spec), spec["weights"], strict=True):
            if weight:
                rows.append({"field": spec.get("label") or label_of(spec["name"]), "value": name,
                             "weight": round(weight, 3), "odds": round(math.exp(weight), 2)})
    rows.sort(key=lambda r: -abs(r["weight"]))
    return rows[:n]


# --- evaluation ---------------------------------------------------------------------------------------------------

def split(keys: Sequence[str], outcomes: Sequence[int], seed: int = SEED,
          test_share: float = TEST_SHARE) -> tuple[list[int], list[int]]:
    """A fixed random split, stratified: within each outcome, rows ordered by a seeded hash of their key, the first
    `test_share` held out. The same data always splits the same way, and a lead keeps its side as data grows."""
    train, test = [], []
    for outcome in (0, 1):
        rows = sorted((i for i, y in enumerate(outcomes) if y == outcome),
                      key=lambda i: hashlib.sha256(f"{seed}:{keys[i]}".encode()).hexdigest())
        cut = round(len(rows) * test_share)
        test += rows[:cut]
        train += rows[cut:]
    return sorted(train), sorted(test)


def _auc(outcomes: Sequence[int], scores: Sequence[float]) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(outcomes, scores)) if len(set(outcomes)) == 2 else None


def _held_out(parameters: dict[str, Any], views: list[LeadView], outcomes: list[int]) -> dict[str, Any]:
    from sklearn.metrics import log_loss

    p = [probability(parameters, v) for v in views]
    return {"auc": _auc(outcomes, p), "accuracy": float(np.mean([(q >= 0.5) == bool(y) for q, y in
                                                                  zip(p, outcomes, strict=True)])),
            "log_loss": float(log_loss(outcomes, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])), "predictions": p}


def calibration(predictions: Sequence[float], outcomes: Sequence[int]) -> list[dict[str, Any]]:
    """Per score band: how many held-out leads, the mean predicted and the actual conversion (percent)."""
    table = []
    for low, high in BANDS:
        rows = [(p, y) for p, y in zip(predictions, outcomes, strict=True) if low <= _score(p) <= high]
        table.append({"band": f"{low}-{high}", "leads": len(rows),
                      "predicted": round(100 * sum(p for p, _ in rows) / len(rows), 1) if rows else None,
                      "actual": round(100 * sum(y for _, y in rows) / len(rows), 1) if rows else None})
    return table


def _field_aucs(parameters: dict[str, Any], views: list[LeadView], outcomes: list[int]) -> dict[str, float]:
    """How well each field alone ranks the held-out leads (its naive Bayes weight as the score)."""
    aucs = {}
    for spec in parameters["fields"]:
        auc = _auc(outcomes, [_contribution(spec, value_of(v, spec["name"])) for v in views])
        if auc is not None:
            aucs[spec["name"]] = round(auc, 4)
    return aucs


@dataclass
class Evaluation:
    """What training found on the held-out leads, and the model it chose."""

    algorithm: str
    c: float | None
    metrics: dict[str, Any]


def evaluate(names: Sequence[str], views: list[LeadView], outcomes: list[int], keys: Sequence[str],
             engine_scores: Sequence[int | None]) -> Evaluation:
    """Fits both models on the training part, compares them on the held-out part, and picks the better one."""
    train_rows, test_rows = split(keys, outcomes)
    train_cols = [[value_of(views[i], name) for i in train_rows] for name in names]
    y_train = [outcomes[i] for i in train_rows]
    test_views, y_test = [views[i] for i in test_rows], [outcomes[i] for i in test_rows]
    baseline = fit_naive_bayes(names, train_cols, y_train)
    logistic = fit_logistic(names, train_cols, y_train)
    results = {"naive_bayes": _held_out(baseline, test_views, y_test),
               "logistic_regression": _held_out(logistic.parameters, test_views, y_test)}
    chosen = "logistic_regression" if ((results["logistic_regression"]["auc"] or 0)
                                       > (results["naive_bayes"]["auc"] or 0)) else "naive_bayes"
    engine = [(engine_scores[i], outcomes[i]) for i in test_rows if engine_scores[i] is not None]
    engine_auc = _auc([y for _, y in engine], [s for s, _ in engine]) if engine else None
    best = results[chosen]
    models = {name: {k: v for k, v in r.items() if k != "predictions"} for name, r in results.items()}
    models["logistic_regression"]["c"] = logistic.c
    models["naive_bayes"]["laplace"] = LAPLACE
    metrics = {
        "chosen": chosen, "seed": SEED, "test_share": TEST_SHARE, "train_leads": len(train_rows),
        "test_leads": len(test_rows), "auc": best["auc"], "accuracy": best["accuracy"],
        "log_loss": best["log_loss"],
        "models": models,
        "engine": {"auc": engine_auc, "leads": len(engine)},
        "calibration": calibration(best["predictions"], y_test),
        "field_auc": _field_aucs(baseline, test_views, y_test),
    }
    return Evaluation(algorithm=chosen, c=logistic.c if chosen == "logistic_regression" else None, metrics=metrics)


def blend_decision(*, won: int, lost: int, auc: float | None, engine_auc: float | None) -> tuple[bool, str]:
    """Whether the model may be blended into the lead score, and why (or why not) in a sentence."""
    reasons = []
    if won < MIN_OUTCOMES or lost < MIN_OUTCOMES:
        reasons.append(f"not enough outcomes yet ({won} won and {lost} lost; {MIN_OUTCOMES} of each needed)")
    against = engine_auc if engine_auc is not None else 0.5
    if auc is None or auc <= against:
        shown = f"{auc:.3f}" if auc is not None else "unknown"
        reasons.append(f"it does not beat the engine on held-out leads (AUC {shown} against {against:.3f})")
    if reasons:
        return False, "Not blended: " + "; ".join(reasons) + "."
    engine_text = f"the engine's {engine_auc:.3f}" if engine_auc is not None else "chance (the engine scored none)"
    return True, f"Blended into the lead score: held-out AUC {auc:.3f} beats {engine_text}."


# --- training on the team's outcomes ------------------------------------------------------------------------------

@dataclass
class _Outcomes:
    keys: list[str] = field(default_factory=list)
    views: list[LeadView] = field(default_factory=list)
    outcomes: list[int] = field(default_factory=list)
    engine_scores: list[int | None] = field(default_factory=list)


def _load_outcomes(session: Session) -> _Outcomes:
    """Every WON and LOST lead as a view, its outcome and the engine's own score of it."""
    stmt = (select(Lead.id, Lead.external_id, Lead.status, Lead.source, Lead.project_type, Lead.budget_usd,
                   Lead.company, Lead.email, Lead.phone, func.length(Lead.message).label("message_length"),
                   Lead.custom_attributes,
                   func.coalesce(LeadAnalysis.engine_score, LeadAnalysis.score).label("engine_score"))
            .outerjoin(LeadAnalysis, LeadAnalysis.lead_id == Lead.id)
            .where(Lead.status.in_(OUTCOMES)))
    data = _Outcomes()
    rows = list(session.execute(stmt))
    # Ordered by the split key in Python (not by a database collation): the same data then trains the same model,
    # cross-validation folds included, on SQLite and PostgreSQL alike.
    rows.sort(key=lambda row: (row.external_id or row.id, row.id))
    for row in rows:
        data.keys.append(row.external_id or row.id)
        data.views.append(LeadView(source=row.source, project_type=row.project_type,
                                   budget_usd=_float(row.budget_usd), company=row.company, email=row.email,
                                   phone=row.phone, message_length=row.message_length or 0,
                                   custom=row.custom_attributes or {}))
        data.outcomes.append(1 if row.status == LeadStatus.WON else 0)
        data.engine_scores.append(row.engine_score)
    return data


def outcome_counts(*, session: Session) -> tuple[int, int, str | None]:
    """How many leads are WON and LOST, and when the latest of them closed (the learn job's cheap check)."""
    won, lost, last = session.execute(select(
        func.count().filter(Lead.status == LeadStatus.WON), func.count().filter(Lead.status == LeadStatus.LOST),
        func.max(Lead.closed_at).filter(Lead.status.in_(OUTCOMES))).select_from(Lead)).one()
    return int(won or 0), int(lost or 0), _iso(last)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _check_fields(fields: Iterable[str], data: _Outcomes) -> list[str]:
    names = list(dict.fromkeys(f.strip() for f in fields if f and f.strip()))
    if not names:
        raise ValidationFailed([FieldError("fields", "pick at least one field to learn from")])
    unknown = [n for n in names if n not in LEAD_FIELDS and not any(n in v.custom for v in data.views)]
    if unknown:
        raise ValidationFailed([FieldError("fields", f"no won or lost lead has {', '.join(map(repr, unknown))}")])
    return names


def train(*, engine: Engine, fields: Sequence[str], actor: str, min_outcomes: int = MIN_OUTCOMES) -> LearnedModel:
    """Trains on every WON and LOST lead, keeps the better model as the active one and rescores the open leads.

    Raises NotEnoughOutcomes below `min_outcomes` won or lost leads, ValidationFailed for fields no outcome has.
    """
    started = time.monotonic()
    with session_scope(engine) as session:
        data = _load_outcomes(session)
        _won, _lost, last_closed = outcome_counts(session=session)
    won, lost = sum(data.outcomes), len(data.outcomes) - sum(data.outcomes)
    if won < min_outcomes or lost < min_outcomes:
        raise NotEnoughOutcomes([FieldError("outcomes", f"{won} won and {lost} lost leads: a model needs at least "
                                                        f"{min_outcomes} of each to learn from")])
    names = _check_fields(fields, data)
    evaluation = evaluate(names, data.views, data.outcomes, data.keys, data.engine_scores)
    columns = [[value_of(v, name) for v in data.views] for name in names]
    parameters, _c = _fit(evaluation.algorithm, names, columns, data.outcomes, evaluation.c)
    metrics = evaluation.metrics
    blended, note = blend_decision(won=won, lost=lost, auc=metrics["auc"], engine_auc=metrics["engine"]["auc"])
    metrics.update(won=won, lost=lost, last_closed_at=last_closed, train_seconds=round(time.monotonic() - started, 2),
                   leaky_fields=[n for n, auc in metrics["field_auc"].items() if auc >= LEAK_AUC])
    with session_scope(engine) as session:
        # The newest active model is the one used; older ones stay for the history.
        session.execute(update(LearnedModel).where(LearnedModel.active.is_(True)).values(active=False))
        model = LearnedModel(algorithm=evaluation.algorithm, fields=names, won=won, lost=lost, metrics=metrics,
                             parameters=parameters, active=True, blended=blended, note=note[:500],
                             trained_at=utcnow())
        session.add(model)
        session.flush()
        audit.record(session=session, actor=actor, action="learned_model.trained", target_type="learned_model",
                     target_id=model.id, detail={"algorithm": model.algorithm, "fields": names, "won": won,
                                                 "lost": lost, "auc": metrics["auc"], "blended": blended})
    rescore_open(engine=engine)
    return model


def active(*, session: Session) -> LearnedModel | None:
    """The model in use: the newest active one, or None before the first training."""
    return session.scalars(select(LearnedModel).where(LearnedModel.active.is_(True))
                           .order_by(LearnedModel.trained_at.desc(), LearnedModel.id.desc()).limit(1)).first()


def _active_cached(session: Session) -> LearnedModel | None:
    # One look-up per transaction: a pass that analyses many leads reads the model (and its weights) once.
    if "learned_model" not in session.info:
        # No autoflush: a lead being created is still half-built when its analysis asks for the model.
        with session.no_autoflush:
            session.info["learned_model"] = active(session=session)
    return session.info["learned_model"]


# --- applying the model to leads ----------------------------------------------------------------------------------

def attach(*, session: Session, lead: Lead, analysis: LeadAnalysis) -> str | None:
    """Puts the active model's score on a freshly stored analysis (whose score is the engine's) and blends it into
    the lead's score when the model earned that; returns a note for the timeline when it blended."""
    analysis.engine_score = analysis.score
    return _apply(session, lead, analysis, _active_cached(session))


def _apply(session: Session, lead: Lead, analysis: LeadAnalysis, model: LearnedModel | None,
           scoring: ScoringConfig | None = None) -> str | None:
    """Sets the learned score (and the blended score and priority); `scoring` is read when not given."""
    engine_score = analysis.engine_score if analysis.engine_score is not None else analysis.score
    analysis.engine_score = engine_score
    if model is None:
        analysis.learned_score, analysis.learned_factors = None, []
        final = engine_score
    else:
        analysis.learned_score, analysis.learned_factors = score(model, lead)
        final = blend(engine_score, analysis.learned_score) if model.blended else engine_score
    if final == analysis.score and final == lead.score:
        return None
    priority = (scoring or app_settings.get_scoring(session=session)).priority_for(final)
    analysis.score = lead.score = final
    analysis.priority = lead.priority = priority
    if final == engine_score:
        return f"learned score no longer blended: score back to the engine's {engine_score} ({priority.value})"
    return f"learned score {analysis.learned_score} blended in: score {final} ({priority.value})"


@dataclass(frozen=True)
class RescoreSummary:
    """What a rescoring of the open leads did."""

    scored: int
    changed: int


def rescore_open(*, engine: Engine, batch: int = RESCORE_BATCH, unscored_only: bool = False) -> RescoreSummary:
    """Gives every open lead (or only those without a learned score yet) the active model's score, blending it in or
    taking the blend away, a batch per transaction; leads whose priority moves get the new priority's sequence."""
    scored = changed = 0
    after = ""
    while True:
        with session_scope(engine) as session:
            model = active(session=session)
            # Read once per batch, not once per lead whose score moves.
            scoring = app_settings.get_scoring(session=session)
            stmt = select(Lead).where(Lead.status.not_in(OUTCOMES), Lead.id > after)
            if unscored_only:
                stmt = stmt.join(LeadAnalysis, LeadAnalysis.lead_id == Lead.id).where(
                    LeadAnalysis.learned_score.is_(None))
            leads = list(session.scalars(stmt.order_by(Lead.id).limit(batch)))
            for lead in leads:
                if lead.analysis is None:
                    continue
                before = lead.priority
                note = _apply(session, lead, lead.analysis, model, scoring)
                scored += 1
                if note:
                    changed += 1
                    activities.record(session=session, lead_id=lead.id, kind=ActivityKind.ANALYZED, actor=ACTOR,
                                      body=note[:1].upper() + note[1:],
                                      data={"score": lead.score, "priority": lead.priority.value, "engine": "learned"})
                    if lead.priority != before:
                        followups.replan(session=session, lead=lead)
        if len(leads) < batch:
            return RescoreSummary(scored=scored, changed=changed)
        after = leads[-1].id


# --- the learn job ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LearnSummary:
    """What one pass of the learn job did."""

    action: str  # trained, unchanged, waiting
    won: int
    lost: int
    auc: float | None = None
    algorithm: str | None = None
    blended: bool = False
    newly_scored: int = 0

    def line(self) -> str:
        """The one-line summary a job prints."""
        counts = f"{self.won} won, {self.lost} lost"
        if self.action == "trained":
            return (f"learn: trained {self.algorithm} on {counts}: held-out AUC {self.auc:.3f}, "
                    + ("blended" if self.blended else "not blended"))
        if self.action == "waiting":
            return f"learn: waiting for outcomes ({counts}; {MIN_OUTCOMES} of each needed)"
        scored = f"; {self.newly_scored} new open lead(s) scored" if self.newly_scored else ""
        return f"learn: outcomes unchanged since the last training ({counts}){scored}"


def run_pass(*, engine: Engine, settings: Settings) -> LearnSummary:
    """Retrains when WON/LOST outcomes changed since the active model was trained (counted first: cheap); otherwise
    scores the open leads that arrived without the hook (imports) and have no learned score yet."""
    del settings  # training reads only the database
    with session_scope(engine) as session:
        current = active(session=session)
        won, lost, last = outcome_counts(session=session)
        fields = list(current.fields) if current else list(DEFAULT_FIELDS)
        seen = (current.won, current.lost, current.metrics.get("last_closed_at")) if current else None
    if seen == (won, lost, last):
        return LearnSummary("unchanged", won, lost, newly_scored=rescore_open(engine=engine, unscored_only=True).scored)
    if won < MIN_OUTCOMES or lost < MIN_OUTCOMES:
        return LearnSummary("waiting", won, lost)
    model = train(engine=engine, fields=fields, actor=ACTOR)
    return LearnSummary("trained", model.won, model.lost, model.metrics.get("auc"), model.algorithm, model.blended)


# --- what the screens read ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldChoice:
    """A field a model can learn from, with how many leads (and won or lost leads) have a value for it."""

    key: str
    label: str
    kind: str  # text or number
    leads: int
    outcomes: int
    distinct: int | None = None
    custom: bool = False

    @property
    def looks_like_id(self) -> bool:
        """Every lead has its own value: an identifier, which predicts nothing about a new lead."""
        return self.custom and self.distinct is not None and self.leads >= 20 and self.distinct >= self.leads


def available_fields(*, session: Session) -> list[FieldChoice]:
    """The lead fields and every custom attribute found on leads, with their counts (computed by the database)."""
    closed = Lead.status.in_(OUTCOMES)

    def given(column: Any) -> Any:
        return column.is_not(None)

    conditions = {"source": given(Lead.source), "project_type": given(Lead.project_type),
                  "budget_usd": given(Lead.budget_usd), "has_company": true(),
                  "email_domain": Lead.email.not_like("%.invalid"), "phone_country": Lead.phone.like("+%"),
                  "message_length": true()}
    row = session.execute(select(*(func.count().filter(c) for c in conditions.values()),
                                 *(func.count().filter(c & closed) for c in conditions.values()))
                          .select_from(Lead)).one()
    n = len(conditions)
    choices = [FieldChoice(key=key, label=LEAD_FIELDS[key], kind="number" if key in NUMERIC_LEAD_FIELDS else "text",
                           leads=int(row[i] or 0), outcomes=int(row[n + i] or 0))
               for i, key in enumerate(conditions)]
    return choices + _attribute_choices(session)


def _attribute_choices(session: Session) -> list[FieldChoice]:
    if session.get_bind().dialect.name == "postgresql":
        pairs = func.jsonb_each(Lead.custom_attributes).table_valued("key", "value").lateral()
        numeric = func.jsonb_typeof(pairs.c.value) == "number"
    else:
        pairs = func.json_each(Lead.custom_attributes).table_valued("key", "value", "type")
        numeric = pairs.c.type.in_(("integer", "real"))
    stmt = (select(pairs.c.key, func.count(), func.count().filter(Lead.status.in_(OUTCOMES)),
                   func.count().filter(numeric), func.count(distinct(pairs.c.value)))
            .select_from(Lead).join(pairs, true()).group_by(pairs.c.key).order_by(pairs.c.key))
    return [FieldChoice(key=key, label=key, kind="number" if numbers == total else "text", leads=total,
                        outcomes=outcomes, distinct=distinct_values, custom=True)
            for key, total, outcomes, numbers, distinct_values in session.execute(stmt)
            if key not in LEAD_FIELDS]


@dataclass(frozen=True)
class ModelReport:
    """The active model as the Learned score page shows it."""

    id: str
    algorithm: str
    algorithm_label: str
    fields: list[str]
    field_labels: list[str]
    won: int
    lost: int
    blended: bool
    note: str
    trained_at: datetime
    metrics: dict[str, Any]
    weights: list[dict[str, Any]]


def report(*, session: Session) -> ModelReport | None:
    """The active model's figures, blend decision and strongest weights; None before the first training."""
    model = active(session=session)
    if model is None:
        return None
    return ModelReport(id=model.id, algorithm=model.algorithm,
                       algorithm_label=ALGORITHMS.get(model.algorithm, model.algorithm), fields=list(model.fields),
                       field_labels=[label_of(f) for f in model.fields], won=model.won, lost=model.lost,
                       blended=model.blended, note=model.note or "", trained_at=model.trained_at,
                       metrics=dict(model.metrics), weights=top_weights(model.parameters))


def history(*, session: Session, limit: int = 10) -> list[dict[str, Any]]:
    """The latest trainings, newest first, as table rows."""
    models = session.scalars(select(LearnedModel).order_by(LearnedModel.trained_at.desc(), LearnedModel.id.desc())
                             .limit(limit))
    return [{"trained_at": m.trained_at, "model": ALGORITHMS.get(m.algorithm, m.algorithm),
             "held-out AUC": m.metrics.get("auc"), "won": m.won, "lost": m.lost, "blended": m.blended,
             "active": m.active} for m in models]


def card(*, session: Session, lead_id: str) -> dict[str, Any] | None:
    """A lead's learned score for its analysis card: the score, whether it is blended in, and its top factors."""
    analysis = session.scalars(select(LeadAnalysis).where(LeadAnalysis.lead_id == lead_id)).first()
    if analysis is None or analysis.learned_score is None:
        return None
    model = active(session=session)
    blended = bool(model and model.blended) and analysis.score == blend(
        analysis.engine_score if analysis.engine_score is not None else analysis.score, analysis.learned_score)
    return {"score": analysis.learned_score, "blended": blended, "engine_score": analysis.engine_score,
            "factors": list(analysis.learned_factors or [])}
