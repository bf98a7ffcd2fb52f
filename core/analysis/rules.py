"""The rules engine: an explainable score from weighted signals, used when no AI is configured or it fails."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from core.analysis.base import AnalysisResult, Factor, LeadFacts
from core.analysis.injection import find_injection
from core.profile import BusinessProfile, ScoringConfig
from db.models import Priority

BASE_SCORE = 30
# A stated budget this many times the business's large project ("9999999", "$100M" on a one-line ask) is noise.
IMPLAUSIBLE_BUDGET_FACTOR = 50

FREE_MAIL = frozenset("""gmail.com googlemail.com yahoo.com yahoo.co.uk yahoo.fr ymail.com hotmail.com hotmail.co.uk
hotmail.fr outlook.com live.com msn.com aol.com icloud.com me.com mac.com proton.me protonmail.com gmx.com gmx.de
gmx.net web.de mail.com yandex.com yandex.ru zoho.com qq.com 163.com 126.com rediffmail.com mail.ru libero.it
orange.fr free.fr laposte.net btinternet.com comcast.net verizon.net att.net sbcglobal.net""".split())

def _any(*alternatives: str, boundary: bool = True) -> re.Pattern[str]:
    """One case-insensitive pattern matching any of the phrases (each may hold regex), as whole words."""
    body = "|".join(alternatives)
    return re.compile(rf"\b({body})\b" if boundary else f"({body})", re.I)


_URL = re.compile(r"(https?://|www\.)\S+", re.I)
_URL_HOST = re.compile(r"(?:https?://)?(?:www\.)?([^/\s\"'<>:?#]+)", re.I)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

# Words that name a concrete deliverable, integration or constraint: the more a message has, the clearer its scope.
_SCOPE_TERMS = _any(
    "api", "apis", "rest", "sso", "oauth", "saml", "azure", "aws", "gcp", "firebase", "react", "node", "flutter",
    "swift", "kotlin", "php", "laravel", "django", "ios", "android", "pwa", "offline", "mqtt", "telemetry",
    "dashboard", "portal", "back[ -]?office", "admin", "crm", "erp", "pos", "pms", "wms", "tms", "ehr", "fhir",
    "epic", "stripe", "paypal", "bizum", "quickbooks", "xero", "shopify", "woocommerce", "klaviyo", "docusign",
    "clio", "sap", "dynamics", "salesforce", "hubspot", "toast", r"integrat\w*", r"sync\w*", r"migrat\w*", "import",
    "export", r"upload\w*", "payments?", "checkout", "subscriptions?", "billing", r"invoic\w*", "loyalty",
    r"booking\w*", "bookings", "scheduling", "calendar", "notifications?", "reminders?", "messaging", "chat",
    "search", "reports?", "reporting", "analytics", "multi[- ]tenant", "role[- ]based", "permissions?", "logins?",
    "accounts?", "sign[- ]?up", "registration", "onboarding", "kyc", r"e-?sign\w*", r"forecast\w*", r"classif\w*",
    r"extract\w*", r"ingest\w*", "alerts?", "alerting", "tracking", "maps?", "qr", "wallet", "configurator", "quiz",
    "referral", r"catalog\w*", "skus?", "inventory", "stock", "orders?", "ordering", "appointments?", "queue",
    "workflow", "accessibility", "wcag", "hipaa", "gdpr", "soc ?2", "compliance", "encryption", "figma", "designs?",
    "mvp", "pilot", "phase", "cms", "wordpress", "theme", "plugin", "agendamento", "lembretes", "relatórios",
    "prontuário", "tienda", "pago", "integrad[ao]", "onlineshop", "zahlung", "bestellungen", "vorbestellungen",
    r"\w*portal", r"\w*upload", r"\w*erinnerung\w*", "anbindung", r"schnittstelle\w*", "datev", r"buchung\w*",
    "termine", "rechnungen", "reservas?", "facturaci[oó]n", "inventario", "citas", "r[ée]servations?",
    "paiements?", "facturation", "prenotazion[ei]", "pagamenti", "fatturazione", "koppeling", "facturatie",
)

# Sizes of an organisation or a user base: "14 restaurants", "~3k users", "140 staff", "$1.4B credit union".
_SCALE_UNITS = (
    "restaurants", "stores", "shops", "tiendas", "filialen", "clinics", "clínicas", "hospitals", "hotels",
    "properties", "locations", "branches", "offices", "warehouses", "gyms", "schools", "trucks", "vehicles",
    "employees", "staff", "attorneys?", "lawyers", "engineers", "technicians", "agents", "members", "customers",
    "clients", "users", "subscribers", "patients", "students", "teachers", "farmers", "volunteers", "visitors", "skus",
    "products", "productos", "sites", "parks", "rooftops",
)
_SCALE = _any(
    rf"\d[\d,.]*\s*(k|\+)?\s*({'|'.join(_SCALE_UNITS)})",
    r"\d+-(attorney|person|people|location|store)",
    r"[$€£]\s?\d[\d.,]*\s?(m|bn?|million|billion)",
)

_SENIORITY = _any(
    "ceo", "cto", "coo", "cfo", "cio", "cmo", "cmio", "cpo", "vp", "vice president", "president", "founder",
    "co-?founder", "owner", "managing (director|partner)", "director", "head of", "chief", "partner", "principal",
    "general manager", "product manager", "programme director", "program director",
    "(i|we) (lead|run|own|operate|manage)", "directora?", "gerente", "geschäftsführer", "propriétaire",
)

_TIMELINE_VERBS = (
    "by", "before", "until", "no later than", "deadline", "due", "go[- ]live", r"launch\w*", "live", "ship",
    "kick[- ]?off", "start", "begin", "pilot", "cut[- ]?over", "sunset", "ready", "ends?", "expires?", "opens?",
    "closes?", "spent by", "antes", "até", "bis", "vor", "avant", "lanzar", "empezar", "começar",
)
_TIMELINE_WHEN = (
    r"jan\w*", r"feb\w*", r"mar\w*", r"apr\w*", "may", r"jun\w*", r"jul\w*", r"aug\w*", r"sep\w*", r"oct\w*",
    r"nov\w*", r"dec\w*", "q[1-4]", "spring", "summer", "autumn", "fall", "winter", "christmas", "navidad",
    "black friday", "ramadan", "season", "week", "weeks", "month", "months", "quarter", "trimestre", "year-end",
    "end of", r"\d{1,2}(st|nd|rd|th)?", r"\d{4}", "september", "septiembre", "setembro", "junio", "junho", "janeiro",
    "enero", "tomorrow", "today", "monday", "tuesday", "wednesday", "thursday", "friday",
)
_TIMELINE = re.compile(rf"\b({'|'.join(_TIMELINE_VERBS)})\b[^.!?\n]{{0,60}}\b({'|'.join(_TIMELINE_WHEN)})\b", re.I)
_URGENT = _any(
    "this week", "next week", "this month", "next month", "asap", r"urgent\w*", "immediately", "right away",
    "hard deadline", "must (ship|be live|go live)", "must sunset", "in (two|2|three|3|four|4) weeks",
    r"in \d+[–-]\d+ weeks", "within (30|60) days", "kick ?off in", "start (in two weeks|next month|this month)",
    "today under nda", "la próxima semana", "próxima semana", "diese woche",
    "(can|could) you start (on )?(monday|tuesday|wednesday|thursday|friday|tomorrow|next week|this week)",
)
_NO_RUSH = re.compile(r"\b(no rush|not in a hurry|no hurry|no fixed (date|deadline)|sometime next year|"
                      r"not sure (on|about)? ?(budget or )?timing|no timeline|einen festen termin haben wir "
                      r"noch nicht|no deadline)\b", re.I)

_COMMITMENT = re.compile(r"\b(approved|signed[- ]off|committed|commit \$|earmarked|allocated|allocates|set aside|"
                         r"grant|funded|closed a|raised|board approved|aprobado|aprovado|genehmigt)\b", re.I)
# Phrases of a vague ask; the pattern is not bounded at its end so "how much?" matches too.
_VAGUE = re.compile(r"\b(" + "|".join((
    "not sure (what|exactly|on features|yet)", "just exploring", "exploring (some )?options", "some options",
    "open to ideas", "whatever", "maybe adding", "some info", "send (me |us )?(some )?info",
    "how much (would|does|will) it cost", r"how much\??$", "an? (app|site) like", "like uber", "uber (for|but)",
    "instagram", "tiktok", "capabilities statement", "rate card", "your guidance on what to build", "combien",
    "idée d'application", "idea for an app", "million dollar idea",
    "(haven't|have not|not yet) decided what", "still figuring out", "could be either", r"maybe [^.?!\n]{3,60}, maybe",
    "no idea what (we|to)", "(don't|do not) know (yet )?what (we|to)", "no project (is )?planned",
    r"benchmark(ing)? of [\w ]{0,20}pricing", "standard (day|hourly) rates",
)) + ")", re.I)
_BIG_IDEA = _any(
    "like uber", "uber clone", "exactly like uber", "marketplace", "social (app|network)", "instagram", "tiktok",
    "facebook", "airbnb", "amazon clone", "driver app",
)

_SPAM = _any(
    "bonus", "casino", "jackpot", "(won|win) (the|a|our) lottery", "lottery (winner|prize|jackpot)",
    "crypto signals?", "pump", "viagra", "cialis", "cheap meds",
    "pharmacy online", "make money", r"earn \$", "work from home", "free money", "winner", "click here",
    "limited offer", "act now", "100% free", "confirm your (details|account)", "account will be suspended",
    "verify your account", r"payment of \$[\d,]+ is pending", "unsubscribe", "seo errors", "page 1 of google",
    "first page of google", "guaranteed (ranking|results)", "backlinks",
    # Scams addressed to us: invoicing, events and marketplaces speak of "amount due" or a "registration fee" too.
    r"your domain (name |registration )?(and [\w -]{0,30})?(will )?expir\w*", "failure to renew",
    r"domain[\w ]{0,40} expir\w* in \d+ (hours|days)", "search[- ]engine (listing|submission)",
    r"certified (cheque|check)", r"when the (cheque|check) clears", "you are required to pay",
    "contract award letter", r"forward \$?[\d,]+ (to|by wire)",
)
_VENDOR = _any(
    "we (offer|provide|can bring you|can help you (rank|grow)|specialize in providing)",
    r"white[- ]label (development|services|solutions|partner\w*)", "(dedicated|offshore|remote) (developers?|team)",
    r"outsourc\w*", "staff augmentation", "agencies like yours", "partnership",
    r"our (packages|services|team of \d+)", r"\d+\+? (member|developer|people) (development )?team",
    "we checked your website", "scale your delivery", "per hour rates?", r"(at|from) \$\d+\s*/\s*(h|hr|hour)",
    r"(agency|reseller|affiliate) partner program\w*", r"(reseller|affiliate) program\w* for (agencies|you)",
    "revenue share for", "co-marketing",
    "for every client you (bring|refer)",
    r"would you like to (join our|become (a|an|our)) (\w+ )?(partner|reseller|affiliate)",
    "white[- ]label for agencies",
    "under your brand", r"overflow (design |development )?work", "partner (margin|pricing)",
)
_JOB_SEEKER = _any(
    "(my|attached|see my) (cv|resume|résumé|portfolio)", "cv and portfolio", "join your team", "hire me",
    "looking for (a )?(job|work|position|internship)", "years of experience", "my (hourly )?rate is", "i can start",
    "open to (full-time|contract)", r"job (opening|opportunit\w*)", "internship",
)
_STUDENT = _any(
    r"(i am|i'm|im) (a |an )?([\w-]+ ){0,2}(student|undergrad\w*|cs (junior|senior|major)|sophomore|freshman)",
    "capstone", "class project", "course project", "homework", "my assignment", "thesis", "dissertation",
    "university project", "college project", "school project", "student project", "for my class",
    "final year project",
)
_FREE_WORK = re.compile(r"\b(for free|free of charge|no budget(?! (yet|set|decided|defined|approved))|unpaid|"
                        r"equity only|for exposure|0 \(student)\b", re.I)


@dataclass(frozen=True)
class _Signals:
    """What the rules engine reads off a lead once, shared by every factor."""

    text: str
    words: list[str]
    links: int
    domain: str
    free_mail: bool
    usd: float | None
    period: str | None


def _signals(lead: LeadFacts) -> _Signals:
    text = "\n".join(t for t in (lead.message, lead.project_type) if t)
    domain = lead.email.rsplit("@", 1)[-1].lower()
    budget = lead.parsed_budget
    usd = budget.usd() if budget else None
    return _Signals(text=text, words=_WORD.findall(lead.message), links=_foreign_links(text, domain), domain=domain,
                    free_mail=domain in FREE_MAIL, usd=float(usd) if usd is not None else None,
                    period=budget.period if budget else None)


def _foreign_links(text: str, own_domain: str) -> int:
    """Links to other sites: a sender's link to their own website (a signature) is not link stuffing."""
    hosts = (_URL_HOST.match(m.group(0)) for m in _URL.finditer(text))
    own = own_domain.lower()
    # A link's host as written, less the punctuation of the sentence around it ("see acme.com.").
    names = (h.group(1).lower().rstrip(".,;:!)") if h else "" for h in hosts)
    return sum(1 for name in names if not (name == own or name.endswith("." + own)))


def _budget(lead: LeadFacts, s: _Signals, p: BusinessProfile) -> Factor:
    committed = bool(_COMMITMENT.search(f"{lead.budget or ''} {s.text}"))
    if s.period == "hour":
        return Factor(name="budget", impact=0, detail=f"an hourly rate ({lead.budget}), not a project budget")
    if s.usd is None:
        if committed:
            return Factor(name="budget", impact=14, detail="budget approved but no amount given")
        return Factor(name="budget", impact=0, detail="no budget amount stated")
    usd = s.usd
    if usd > IMPLAUSIBLE_BUDGET_FACTOR * p.large_budget:
        return Factor(name="budget", impact=0, detail=f"{lead.budget}: not a believable project budget"[:200])
    if usd >= p.large_budget:
        impact = 30
    elif usd >= p.target_budget:
        impact = 24 + round(6 * (usd - p.target_budget) / max(p.large_budget - p.target_budget, 1))
    elif usd >= p.min_budget:
        impact = 4 + round(18 * (usd - p.min_budget) / max(p.target_budget - p.min_budget, 1))
    elif usd >= p.min_budget / 2:
        impact = -4
    else:
        impact = -14 if usd >= p.min_budget / 10 else -22
    if committed and usd >= p.min_budget:
        impact += 4
    shown = f"{lead.budget}" + (f" (about ${usd:,.0f})" if s.period != "once" or lead.parsed_budget.currency not in
                                (None, "USD") else "")
    return Factor(name="budget", impact=impact, detail=f"{shown}{', approved' if committed else ''}"[:200])


def _scope(lead: LeadFacts, s: _Signals) -> Factor:
    terms = {m.group(0).lower() for m in _SCOPE_TERMS.finditer(s.text)}
    scale = bool(_SCALE.search(s.text))
    n_words = len(s.words)
    points = min(len(terms), 8) * 2 + (4 if scale else 0) + min(n_words // 20, 4)
    vague = _VAGUE.search(s.text)
    if vague:
        points -= 12
    if n_words < 8:
        points -= 8
    points = max(min(points, 24), -16)
    detail = (f"{len(terms)} concrete requirement(s)" + (", stated size or volume" if scale else "")
              + f", {n_words} words" + (f"; vague: “{vague.group(0).strip()}”" if vague else ""))
    return Factor(name="scope", impact=points, detail=detail[:200])


def _urgency(lead: LeadFacts, s: _Signals) -> Factor:
    if _NO_RUSH.search(s.text):
        return Factor(name="urgency", impact=-3, detail="says there is no rush or no date")
    shouting = _shouting(lead.message)
    date = _TIMELINE.search(s.text)
    urgent = _URGENT.search(s.text)
    if shouting and not date:
        return Factor(name="urgency", impact=0, detail="urgency claimed without any date or plan")
    points = (8 if date else 0) + (5 if urgent else 0)
    if not points:
        return Factor(name="urgency", impact=0, detail="no timeline given")
    found = (date or urgent).group(0).strip()  # type: ignore[union-attr]
    return Factor(name="urgency", impact=points, detail=f"timeline: “{found[:80]}”")


def _placeholder_domain(domain: str) -> bool:
    # `.invalid` (RFC 6761) can never receive mail: a placeholder an import wrote, not a company's domain.
    return domain == "invalid" or domain.endswith(".invalid")


def _legitimacy(lead: LeadFacts, s: _Signals) -> Factor:
    points, reasons = 0, []
    if lead.company and len(_WORD.findall(lead.company)) >= 1 and not _looks_like_markup(lead.company):
        points += 4
        reasons.append("company named")
    if _placeholder_domain(s.domain):
        reasons.append("no email address given")  # an import's lead-<n>@import.invalid says nothing about them
    elif not s.free_mail:
        points += 6
        reasons.append("company email domain")
    else:
        reasons.append("free email address")
    if lead.phone and sum(c.isdigit() for c in lead.phone) >= 7:
        points += 3
        reasons.append("phone given")
    if _SENIORITY.search(s.text):
        points += 4
        reasons.append("decision maker writing")
    if _professional(lead.message):
        points += 3
        reasons.append("professional tone")
    return Factor(name="legitimacy", impact=points, detail=", ".join(reasons))


def _negatives(lead: LeadFacts, s: _Signals) -> list[Factor]:
    text = f"{lead.full_name}\n{lead.company or ''}\n{s.text}"
    found: list[Factor] = []
    checks: list[tuple[str, int, Callable[[], str | None]]] = [
        ("spam", -45, lambda: _first(_SPAM, text)),
        ("link stuffing", -25, lambda: f"{s.links} links in the message" if s.links >= 2 else None),
        ("vendor pitch", -45, lambda: _first(_VENDOR, text)),
        ("job seeker", -50, lambda: _first(_JOB_SEEKER, text)),
        ("student", -40, lambda: _first(_STUDENT, text) or (
            "a student email address" if re.search(r"[@.]stud(ent)?s?\.", lead.email) else None)),
        ("free work asked", -15, lambda: _first(_FREE_WORK, f"{text}\n{lead.budget or ''}")),
        ("gibberish", -45, lambda: "mostly non-words" if _gibberish(lead.message) else None),
        ("shouting", -15, lambda: "written in capitals and exclamation marks" if _shouting(lead.message) else None),
        ("budget far below the idea", -10, lambda: _mismatch(lead, s)),
        ("markup in fields", -6, lambda: "HTML or a formula typed into a name field"
         if _looks_like_markup(lead.full_name) or _looks_like_markup(lead.company or "") else None),
    ]
    for name, impact, check in checks:
        hit = check()
        if hit:
            found.append(Factor(name=name, impact=impact, detail=f"“{hit}”"[:200] if not hit.endswith(
                ("message", "non-words", "marks", "field")) else hit))
    return found


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    m = pattern.search(text)
    return m.group(0).strip()[:80] if m else None


def _shouting(message: str) -> bool:
    letters = [c for c in message if c.isalpha()]
    caps = sum(c.isupper() for c in letters) / max(len(letters), 1)
    return (caps > 0.6 and len(letters) > 15) or message.count("!!") >= 2


def _gibberish(message: str) -> bool:
    words = _WORD.findall(message.lower())
    if not words:
        return True
    odd = sum(1 for w in words if len(w) >= 4 and (not re.search(r"[aeiouyäöüéèáíóúãõâêô]", w) or
                                                  re.search(r"[^aeiouy\W]{5,}", w)))
    junk = sum(1 for w in words if w in {"test", "asdf", "lol", "qwerty", "xxx", "aaa"})
    return (odd + junk) / len(words) >= 0.4


def _professional(message: str) -> bool:
    sentences = [x for x in re.split(r"[.!?]\s", message) if x.strip()]
    starts_capital = sum(1 for x in sentences if x.strip()[0].isupper()) / max(len(sentences), 1)
    return len(_WORD.findall(message)) >= 25 and starts_capital >= 0.6 and not _shouting(message)


def _looks_like_markup(text: str) -> bool:
    return bool(re.search(r"<\s*[a-z!/]|^\s*[=+@]|javascript:|onerror\s*=", text, re.I))


def _mismatch(lead: LeadFacts, s: _Signals) -> str | None:
    idea = _BIG_IDEA.search(s.text)
    if idea and s.usd is not None and s.usd < 5000:
        return f"“{idea.group(0)}” on {lead.budget}"
    return None


def _summary(lead: LeadFacts, factors: list[Factor], priority: Priority) -> str:
    who = lead.full_name + (f" of {lead.company}" if lead.company and not _looks_like_markup(lead.company) else "")
    what = lead.project_type or "a project"
    budget = f"budget {lead.budget}" if lead.budget else "no budget given"
    strongest = sorted((f for f in factors if f.impact), key=lambda f: -abs(f.impact))[:3]
    reasons = "; ".join(f"{f.name} {f.impact:+d} ({f.detail})" for f in strongest)
    return f"{who} asks about {what.lower()}, {budget}. Rated {priority.value} by the rules: {reasons}."[:1200]


def _recommendation(priority: Priority, negatives: list[Factor], scope: Factor, injection: list[str]) -> str:
    names = {f.name for f in negatives}
    if names & {"spam", "link stuffing", "gibberish"}:
        return "Do not reply: this looks like spam. Mark it LOST or delete it."
    if "vendor pitch" in names:
        return "Not a buyer: a vendor pitching its services. Archive it; no sales follow-up."
    if "job seeker" in names:
        return "Not a client: someone looking for work. Forward to hiring if relevant and close the lead."
    if "student" in names:
        return "A student request: reply with a polite template and close the lead."
    advice = {
        Priority.HIGH: "Call within the hour: confirm budget, decision process and the deadline, then book a scoping "
                       "session.",
        Priority.MEDIUM: "Reply today with two or three qualifying questions (scope, budget range, timing) and offer a "
                         "short call.",
        Priority.LOW: "Send the standard information pack with price ranges; follow up only if they answer.",
    }[priority]
    if scope.impact < 4 and priority != Priority.LOW:
        advice += " Ask them to describe the must-have features first."
    if injection:
        advice += " The message contains instructions aimed at an AI: check it by hand."
    return advice


class RulesEngine:
    """Scores a lead from weighted, explainable signals; needs no network."""

    name = "rules"

    def analyze(self, lead: LeadFacts, *, profile: BusinessProfile, scoring: ScoringConfig) -> AnalysisResult:
        """The rules analysis of one lead."""
        s = _signals(lead)
        scope = _scope(lead, s)
        positives = [_budget(lead, s, profile), scope, _urgency(lead, s), _legitimacy(lead, s)]
        negatives = _negatives(lead, s)
        factors = [_weighted(f, scoring.weight(f.name)) for f in positives]
        factors += [_weighted(f, scoring.weight("negative")) for f in negatives]
        score = max(0, min(100, BASE_SCORE + sum(f.impact for f in factors)))
        gate = _high_gate(score, s, factors, profile, scoring)
        if gate:
            factors.append(gate)
            score += gate.impact
        priority = scoring.priority_for(score)
        injection = find_injection(lead.full_name, lead.company, lead.budget, lead.project_type, lead.message)
        usd = lead.budget_usd()
        return AnalysisResult(
            score=score, priority=priority,
            budget_category=profile.budget_category(float(usd) if usd is not None else None),
            summary=_summary(lead, factors, priority),
            recommendation=_recommendation(priority, negatives, scope, injection),
            engine="rules", model=None,
            factors=[Factor(name="base", impact=BASE_SCORE, detail="starting point"), *factors],
            injection_suspected=bool(injection),
            review_reason=f"possible prompt injection: {', '.join(injection)}" if injection else None,
        )


def _high_gate(score: int, s: _Signals, factors: list[Factor], profile: BusinessProfile,
               scoring: ScoringConfig) -> Factor | None:
    """The rubric's HIGH needs a substantial budget and a timeline; points elsewhere cannot stand in for them."""
    if score < scoring.high_min:
        return None
    budget = next(f for f in factors if f.name == "budget")
    urgency = next(f for f in factors if f.name == "urgency")
    approved_without_amount = s.usd is None and budget.impact > 0
    reason = None
    if s.usd is None and not approved_without_amount:
        reason = "HIGH needs a stated or approved budget"
    elif s.usd is not None and s.usd < 0.9 * profile.target_budget:
        reason = f"HIGH needs a budget of about {profile.target_budget:,} {profile.currency} or more"
    elif urgency.impact <= 0 and (s.usd is None or s.usd < 2 * profile.target_budget):
        reason = "no timeline: HIGH needs a date, or a budget of twice the usual size"
    if reason is None:
        return None
    return Factor(name="high gate", impact=scoring.high_min - 1 - score, detail=reason)


def _weighted(factor: Factor, weight: float) -> Factor:
    return factor if weight == 1.0 else factor.model_copy(update={"impact": round(factor.impact * weight)})
