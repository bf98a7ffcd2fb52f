"""Parse the free-text budget a lead typed into a web form ("$20-40k", "ca. 15.000 €", "2 crore")."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Period = Literal["once", "month", "year", "hour"]

# Budget fields are short; anything past this is prose that only adds false matches and work.
MAX_INPUT_CHARS = 200
# No lead budget is a trillion; bigger figures are typos, phone numbers or junk.
MAX_AMOUNT = Decimal(10**12)

# Approximate USD value of one unit of each currency (mid-2024 levels). They are only good
# enough to rank and filter leads, not for invoicing; callers may pass fresher rates from
# settings to ParsedBudget.usd(). Every code the parser can produce is listed here.
DEFAULT_USD_RATES: dict[str, float] = {
    "USD": 1.0,
    "EUR": 1.08,
    "GBP": 1.27,
    "INR": 0.012,
    "BRL": 0.19,
    "SGD": 0.74,
    "AUD": 0.66,
    "CAD": 0.73,
    "CHF": 1.12,
    "SEK": 0.095,
    "NOK": 0.093,
    "DKK": 0.145,
    "JPY": 0.0067,
    "AED": 0.272,
    "ZAR": 0.054,
    "NZD": 0.61,
    "MXN": 0.058,
    "PLN": 0.25,
    "CNY": 0.14,
    "HKD": 0.128,
    "KRW": 0.00074,
    "NGN": 0.00068,
    "KES": 0.0077,
    "IDR": 0.000062,
    "MYR": 0.21,
    "THB": 0.028,
    "PHP": 0.017,
    "ILS": 0.27,
    "TRY": 0.031,
    "CZK": 0.043,
    "HUF": 0.0028,
    "RON": 0.22,
    "ARS": 0.0011,
    "CLP": 0.0011,
    "COP": 0.00025,
    "PEN": 0.27,
    "SAR": 0.267,
    "QAR": 0.275,
    "EGP": 0.021,
    "PKR": 0.0036,
    "BDT": 0.0085,
    "VND": 0.000039,
    "UAH": 0.025,
}

_PERIODS_PER_YEAR: dict[str, int] = {"once": 1, "year": 1, "month": 12}
_CENT = Decimal("0.01")
_ONE = Decimal(1)


class ParsedBudget(BaseModel):
    """Amount range, currency and period read from a typed budget."""

    model_config = ConfigDict(frozen=True)

    amount_min: Decimal | None = None  # in the stated currency; None for "under $2k"
    amount_max: Decimal | None = None  # equals amount_min for one figure; None for "$100k+"
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")  # ISO 4217; None if not stated
    period: Period = "once"
    approx: bool = False

    @model_validator(mode="after")
    def _check_amounts(self) -> ParsedBudget:
        """Reject budgets with no amount, negative amounts or an inverted range."""
        amounts = [a for a in (self.amount_min, self.amount_max) if a is not None]
        if not amounts:
            raise ValueError("a budget needs at least one amount")
        if any(a < 0 for a in amounts):
            raise ValueError("budget amounts cannot be negative")
        if len(amounts) == 2 and amounts[0] > amounts[1]:
            raise ValueError("amount_min is above amount_max")
        return self

    def usd(self, rates: Mapping[str, float] | None = None) -> Decimal | None:
        """Representative yearly-or-one-off amount in USD, or None for hourly rates and unknown currencies."""
        # An hourly rate says what a person costs, not what the project is worth.
        if self.period == "hour":
            return None
        rate = _usd_rate(self.currency or "USD", DEFAULT_USD_RATES if rates is None else rates)
        if rate is None:
            return None
        value = self._representative() * rate * _PERIODS_PER_YEAR[self.period]
        try:
            return value.quantize(_CENT)
        except InvalidOperation:  # absurd caller-supplied rates overflow the decimal context
            return value

    def _representative(self) -> Decimal:
        """Midpoint of a closed range, otherwise whichever end is known."""
        if self.amount_min is not None and self.amount_max is not None:
            return (self.amount_min + self.amount_max) / 2
        return self.amount_min if self.amount_min is not None else self.amount_max  # type: ignore[return-value]


def _usd_rate(code: str, rates: Mapping[str, float]) -> Decimal | None:
    """USD value of one unit of `code`, or None when the table has no usable rate."""
    if code == "USD":
        return _ONE  # a caller's table need not list USD itself
    rate = rates.get(code)
    if rate is None or not math.isfinite(rate) or rate <= 0:
        return None
    return Decimal(str(rate))  # via str so 1.08 stays 1.08, not its binary approximation


# --- text patterns ---------------------------------------------------------------------------

_NOT_LETTER_BEFORE = r"(?<![^\W\d_])"
_NOT_LETTER_AFTER = r"(?![^\W\d_])"


def _word(pattern: str) -> str:
    """Regex for `pattern` as whole words: not glued to letters on either side (digits are fine)."""
    return f"{_NOT_LETTER_BEFORE}(?:{pattern}){_NOT_LETTER_AFTER}"


# Leads type every dash there is; one ASCII hyphen keeps the range pattern simple. Each
# replacement is one character so match positions stay valid for the original text.
_NORMALISE = str.maketrans(
    {
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2212": "-", "\u00a0": " ", "\u202f": " ", "\u2009": " ",
    }
)

# (pattern, ISO code). Where two could start at the same place the longer one comes first,
# so "R$" is Brazilian reais rather than "R" followed by dollars.
_CURRENCY_MARKERS: tuple[tuple[str, str], ...] = (
    (_NOT_LETTER_BEFORE + r"r\$", "BRL"),
    (_NOT_LETTER_BEFORE + r"us\$", "USD"),
    (_NOT_LETTER_BEFORE + r"au?\$", "AUD"),
    (_NOT_LETTER_BEFORE + r"ca?\$", "CAD"),
    (_NOT_LETTER_BEFORE + r"sg?\$", "SGD"),
    (_NOT_LETTER_BEFORE + r"nz\$", "NZD"),
    (_NOT_LETTER_BEFORE + r"mx\$", "MXN"),
    (_NOT_LETTER_BEFORE + r"hk\$", "HKD"),
    (r"\$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("₹", "INR"),
    ("[¥円]", "JPY"),
    ("₩", "KRW"),
    ("₦", "NGN"),
    ("₱", "PHP"),
    ("₺", "TRY"),
    ("₪", "ILS"),
    ("฿", "THB"),
    ("₫", "VND"),
    ("₴", "UAH"),
    (_word(r"(?:australian|aussie) dollars?"), "AUD"),
    (_word(r"canadian dollars?"), "CAD"),
    (_word(r"singapore(?:an)? dollars?"), "SGD"),
    (_word(r"new zealand dollars?"), "NZD"),
    (_word(r"hong kong dollars?"), "HKD"),
    (_word(r"(?:us |american )?dollars?|bucks"), "USD"),
    (_word(r"euros?"), "EUR"),
    (_word(r"(?:british )?pounds?(?: sterling)?|sterling|quid"), "GBP"),
    (_word(r"rupees?|rs\.?"), "INR"),
    (_word(r"reais"), "BRL"),
    (_word(r"yen"), "JPY"),
    (_word(r"(?:swiss )?francs?"), "CHF"),
    (_word(r"pesos?"), "MXN"),
    (_word(r"rand"), "ZAR"),
    (_word(r"dirhams?"), "AED"),
    (_word(r"z[łl]oty(?:ch)?|zł"), "PLN"),
    (_word(r"kronor"), "SEK"),
    (_word(r"kroner"), "NOK"),
    (_word(r"yuan|rmb|renminbi"), "CNY"),
    # A bare "R" is the rand only when glued to a figure ("R120k"); elsewhere it is a letter.
    (_NOT_LETTER_BEFORE + r"r(?=[0-9])", "ZAR"),
)
# These codes are also everyday words ("try", "pen", "cad"), so only their upper-case form counts.
_CODES_THAT_ARE_WORDS = frozenset({"CAD", "TRY", "PHP", "PEN", "COP", "RON", "SAR", "ARS"})
_ISO_PATTERN = (
    _word("|".join(c for c in DEFAULT_USD_RATES if c not in _CODES_THAT_ARE_WORDS))
    + "|"
    + _word("(?-i:" + "|".join(sorted(_CODES_THAT_ARE_WORDS)) + ")")
)
_CURRENCY = re.compile(
    "|".join(f"(?P<m{i}>{pattern})" for i, (pattern, _) in enumerate(_CURRENCY_MARKERS))
    + f"|(?P<iso>{_ISO_PATTERN})",
    re.IGNORECASE,
)

# Currencies whose speakers write "mil" for thousand ("R$ 120 mil"); in English "mil" is million.
_MIL_IS_THOUSAND_CURRENCIES = frozenset({"BRL", "MXN", "ARS", "CLP", "COP", "PEN"})
_MIL_IS_THOUSAND_PHRASE = re.compile(r"mil\s+(?:reais|pesos|euros|d[oó]lares)", re.IGNORECASE)

_THOUSAND, _LAKH, _MILLION, _CRORE, _BILLION = (Decimal(10) ** n for n in (3, 5, 6, 7, 9))
_MULTIPLIER_FACTORS: dict[str, Decimal] = {
    **dict.fromkeys(["k", "thousand", "grand", "tausend", "tsd", "mille", "mila"], _THOUSAND),
    **dict.fromkeys(["lakh", "lakhs", "lac", "lacs", "l"], _LAKH),
    **dict.fromkeys(
        ["m", "mm", "mn", "mln", "mio", "million", "millions", "millionen",
         "millón", "millon", "millones", "milhão", "milhao", "milhões", "milhoes"],
        _MILLION,
    ),
    **dict.fromkeys(["crore", "crores", "cr"], _CRORE),
    **dict.fromkeys(["b", "bn", "billion", "billions", "mrd", "milliarden"], _BILLION),
}
# Lakh and crore are only used for rupees, so they name the currency when nothing else does.
_INDIAN_MULTIPLIERS = frozenset({"lakh", "lakhs", "lac", "lacs", "l", "crore", "crores", "cr"})
_MULTIPLIER = re.compile(
    r"\s*(?P<word>"
    + "|".join(re.escape(w) for w in sorted([*_MULTIPLIER_FACTORS, "mil"], key=len, reverse=True))
    + ")"
    + _NOT_LETTER_AFTER,
    re.IGNORECASE,
)

# "50 000" and "50'000": only exact groups of three, so "3 100k" is not read as 3,100k.
_SPACE_GROUPED_NUMBER = re.compile(r"[0-9]{1,3}(?: [0-9]{3})+(?![0-9])")
_NUMBER = re.compile(r"[0-9]+(?:[.,'’][0-9]+)*")
_DIGIT = re.compile(r"[0-9]")

# A bare figure followed by one of these counts time, people or pages, not money ("3 months",
# and "3-4 weeks", where the unit comes after the second figure).
_NOT_MONEY_AFTER = re.compile(
    r"(?:\s*(?:-|to)\s*[0-9]+(?:[.,][0-9]+)?)?\s*(?:%|"
    + _word(
        r"percent|per ?cent|x|months?|mos?|weeks?|wks?|days?|years?|yrs?|hours?|hrs?|h"
        r"|minutes?|mins?|people|persons?|users?|employees?|seats?|licen[cs]es?|pages?"
        r"|devs?|developers?|engineers?|members?|st|nd|rd|th|am|pm"
    )
    + ")",
    re.IGNORECASE,
)
_RANGE_SEPARATOR = re.compile(
    r"\s*(?:-+|" + _word(r"to|and|or|bis|a|à|até|hasta|till|until|through|thru") + r")\s*",
    re.IGNORECASE,
)
_UPPER_BOUND_BEFORE = re.compile(
    _word(
        r"under|below|less than|up to|upto|max(?:imum)?\.?|no more than|not more than|at most"
        r"|within|capped at|bis|até|hasta"
    )
    + r"\s*:?\s*$|[<≤]\s*$",
    re.IGNORECASE,
)
_UPPER_BOUND_AFTER = re.compile(r"\s*" + _word(r"max(?:imum)?|tops|or less|at most|or under"), re.IGNORECASE)
_LOWER_BOUND_BEFORE = re.compile(
    _word(r"over|above|more than|at least|min(?:imum)?\.?|starting (?:at|from)|from")
    + r"\s*:?\s*$|[>≥]\s*$",
    re.IGNORECASE,
)
_LOWER_BOUND_AFTER = re.compile(
    r"\s*(?:\+|"
    + _word(r"plus|and (?:up|above|more|over)|or (?:more|above|higher|over)|upwards|min(?:imum)?|at least")
    + ")",
    re.IGNORECASE,
)

_PERIOD_PATTERNS: tuple[tuple[Period, re.Pattern[str]], ...] = (
    (
        "hour",
        re.compile(
            r"/\s*h(?:ou)?r?s?" + _NOT_LETTER_AFTER
            + "|" + _word(r"per\s+h(?:ou)?r|an\s+hour|hourly|pro\s+stunde|st[üu]ndlich|por\s+hora"),
            re.IGNORECASE,
        ),
    ),
    (
        "month",
        re.compile(
            r"/\s*(?:m|mo|mos|mth|mths|mon|month|months|monat|mes|mês)" + _NOT_LETTER_AFTER
            + "|" + _word(
                r"per\s+(?:mo|mth|month)|(?:a|each|every)\s+month|monthly|pro\s+monat|monatlich"
                r"|mensal|mensual|por\s+m[eê]s|al\s+mes"
            ),
            re.IGNORECASE,
        ),
    ),
    (
        "year",
        re.compile(
            r"/\s*(?:y|yr|yrs|year|years|annum|jahr|año|ano)" + _NOT_LETTER_AFTER
            + "|" + _word(
                r"per\s+(?:year|yr|annum)|(?:a|each|every)\s+year|annual(?:ly)?|yearly|p\.\s?a\.?"
                r"|pro\s+jahr|j[äa]hrlich|anual(?:mente)?|por\s+a[ñn]o|al\s+a[ñn]o"
            ),
            re.IGNORECASE,
        ),
    ),
)

_APPROX = re.compile(
    _word(
        r"around|about|approx(?:\.|imately|imate)?|roughly|circa|ca\.|ballpark|give or take"
        r"|more or less|or so|est\.|estimated|etwa|ungef[äa]hr|rund|environ"
        r"|aprox(?:\.|imadamente)?|cerca de|alrededor de|mais ou menos"
    )
    + r"|[~≈±]|(?:(?<=[0-9])|(?<=[0-9][kKmM]))\s?-?ish" + _NOT_LETTER_AFTER,
    re.IGNORECASE,
)


# --- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Marker:
    """A currency symbol, code or name found in the text."""

    start: int
    end: int
    code: str


@dataclass(frozen=True)
class _Amount:
    """One figure as written, with the multiplier and currency glued to it."""

    start: int  # includes a leading currency marker ("$" in "$40k")
    end: int  # includes the multiplier and a trailing currency marker ("k €")
    value: Decimal  # the figure without its multiplier
    multiplier: Decimal | None
    multiplier_word: str | None
    currency: str | None

    @property
    def is_money_like(self) -> bool:
        """A currency or multiplier makes a figure far more likely to be the budget than a bare number."""
        return self.currency is not None or self.multiplier is not None


def parse_budget(text: str | None) -> ParsedBudget | None:
    """Amount range and currency in a typed budget, or None when it holds no amount."""
    if not isinstance(text, str):
        return None
    text = text[:MAX_INPUT_CHARS].translate(_NORMALISE)
    markers = _find_currency_markers(text)
    if figures := _figures_budget(text, markers):
        return figures
    amounts = _find_amounts(text, markers, _mil_means_thousand(text, markers))
    if not amounts:
        return None
    group = _pick_group(text, amounts)
    low, high = _group_bounds(text, group)
    if any(v is not None and v > MAX_AMOUNT for v in (low, high)):
        return None
    return ParsedBudget(
        amount_min=_tidy(low),
        amount_max=_tidy(high),
        currency=_group_currency(group, markers),
        period=_find_period(text),
        approx=_APPROX.search(text) is not None,
    )


# "5-figure", "low five figures", "six figures": the number of digits, not an amount.
_FIGURES = re.compile(r"\b(?:(?P<part>low|mid|high)[- ]?)?(?P<digits>5|6|7|five|six|seven)[- ]figures?\b", re.I)
_FIGURE_DIGITS = {"5": 5, "6": 6, "7": 7, "five": 5, "six": 6, "seven": 7}
# Which part of the decade each word covers, as multiples of its lowest amount (10,000 for five figures). A bare
# "five figures" is read as its lower half: people near the top of the range say "high five figures" or the amount.
_FIGURE_PARTS = {None: (1, 5), "low": (1, 3), "mid": (3, 7), "high": (7, 10)}


def _figures_budget(text: str, markers: list[_Marker]) -> ParsedBudget | None:
    """A budget given as its number of digits ("low five figures" is 10,000-30,000), or None."""
    match = _FIGURES.search(text)
    if match is None or _DIGIT.search(text[: match.start()] + text[match.end():]):
        return None
    base = Decimal(10) ** (_FIGURE_DIGITS[match["digits"].lower()] - 1)
    low, high = _FIGURE_PARTS[match["part"].lower() if match["part"] else None]
    top = base * high - (1 if high == 10 else 0)  # five figures end at 99,999
    return ParsedBudget(amount_min=base * low, amount_max=top,
                        currency=markers[0].code if markers else None, period=_find_period(text), approx=True)


def _find_currency_markers(text: str) -> list[_Marker]:
    """Every currency symbol, ISO code and currency name, left to right."""
    markers = []
    for match in _CURRENCY.finditer(text):
        name = match.lastgroup or ""
        code = match.group().upper() if name == "iso" else _CURRENCY_MARKERS[int(name[1:])][1]
        markers.append(_Marker(match.start(), match.end(), code))
    return markers


def _mil_means_thousand(text: str, markers: list[_Marker]) -> bool:
    """True when the text is Portuguese or Spanish money talk, where "120 mil" is 120 thousand."""
    return any(m.code in _MIL_IS_THOUSAND_CURRENCIES for m in markers) or bool(
        _MIL_IS_THOUSAND_PHRASE.search(text)
    )


def _find_amounts(text: str, markers: list[_Marker], mil_is_thousand: bool) -> list[_Amount]:
    """Every figure in the text that could be money, left to right."""
    ending_at = {m.end: m for m in markers}
    starting_at = {m.start: m for m in markers}
    amounts: list[_Amount] = []
    pos = 0
    while (digit := _DIGIT.search(text, pos)) is not None:
        amount, pos = _read_amount(text, digit.start(), ending_at, starting_at, mil_is_thousand)
        if amount is not None:
            amounts.append(amount)
    return amounts


def _read_amount(
    text: str,
    start: int,
    ending_at: dict[int, _Marker],
    starting_at: dict[int, _Marker],
    mil_is_thousand: bool,
) -> tuple[_Amount | None, int]:
    """The amount whose first digit is at `start` (None if it is not money) and where to read on."""
    token, end = _read_number(text, start)
    multiplier = _MULTIPLIER.match(text, end)
    word = multiplier.group("word").lower() if multiplier else None
    factor = _multiplier_factor(word, mil_is_thousand) if word else None
    end = multiplier.end() if multiplier else end
    value = _to_decimal(token, has_multiplier=factor is not None)
    # Letters glued in front ("Q3", "v2.0", "covid19") mean a label, unless they are a currency ("USD75k").
    if value is None or (start > 0 and text[start - 1].isalpha() and start not in ending_at):
        return None, end

    leading = ending_at.get(_skip_back(text, start, " \t:"))
    trailing = None if leading else starting_at.get(_skip_forward(text, end, " \t."))
    currency = (leading or trailing).code if (leading or trailing) else None
    if currency is None and factor is None and _NOT_MONEY_AFTER.match(text, end):
        return None, end
    amount = _Amount(
        start=leading.start if leading else start,
        end=trailing.end if trailing else end,
        value=value,
        multiplier=factor,
        multiplier_word=word,
        currency=currency,
    )
    return amount, end


def _read_number(text: str, start: int) -> tuple[str, int]:
    """The digits-and-separators token at `start` and where it ends."""
    spaced = _SPACE_GROUPED_NUMBER.match(text, start)
    # "50 000 €" is one figure, but "3 100k" is two: a multiplier never follows space grouping.
    if spaced and not _MULTIPLIER.match(text, spaced.end()):
        return spaced.group(), spaced.end()
    plain = _NUMBER.match(text, start)
    assert plain is not None  # the caller found a digit at `start`
    return plain.group(), plain.end()


def _multiplier_factor(word: str, mil_is_thousand: bool) -> Decimal:
    """What a multiplier word ("k", "lakh", "Mio") multiplies by."""
    if word == "mil":
        return _THOUSAND if mil_is_thousand else _MILLION
    return _MULTIPLIER_FACTORS[word]


def _to_decimal(token: str, has_multiplier: bool) -> Decimal | None:
    """Read "1,500", "60.000", "1.234,56" or "1,2" whichever convention it uses; None if it is not a number."""
    token = re.sub(r"[ '’]", "", token)  # spaces and apostrophes only ever group thousands
    separators = [c for c in token if c in ".,"]
    if not separators:
        return Decimal(token)
    if len(set(separators)) == 2:
        # Both kinds present: the last one is the decimal mark ("1.234,56", "1,234.56").
        decimal_mark = separators[-1]
        if separators.count(decimal_mark) > 1:
            return None
        grouping_mark = "," if decimal_mark == "." else "."
        whole, fraction = token.replace(grouping_mark, "").split(decimal_mark)
        return Decimal(f"{whole}.{fraction}")
    head, *groups = token.split(separators[0])
    if len(groups) > 1:
        # One mark repeated is thousands grouping ("1.234.567"); anything else is a date or version.
        return Decimal(head + "".join(groups)) if _is_thousands_grouping(head, groups) else None
    # A single mark before three digits groups thousands ("60.000 €", "$1,500"), except before a
    # multiplier, where "1.250M" is one and a quarter million.
    if not has_multiplier and _is_thousands_grouping(head, groups):
        return Decimal(head + groups[0])
    return Decimal(f"{head}.{groups[0]}")


def _is_thousands_grouping(head: str, groups: list[str]) -> bool:
    """True for digit groups shaped like "1" + "234" + "567"."""
    return 1 <= len(head) <= 3 and head != "0" and all(len(g) == 3 for g in groups)


def _skip_back(text: str, pos: int, chars: str) -> int:
    """Position before a run of `chars` that ends at `pos`."""
    while pos > 0 and text[pos - 1] in chars:
        pos -= 1
    return pos


def _skip_forward(text: str, pos: int, chars: str) -> int:
    """Position after a run of `chars` that starts at `pos`."""
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _pick_group(text: str, amounts: list[_Amount]) -> tuple[_Amount, ...]:
    """The range or single figure that is the budget: the first money-like one, else the first."""
    groups: list[tuple[_Amount, ...]] = []
    i = 0
    while i < len(amounts):
        if i + 1 < len(amounts) and _RANGE_SEPARATOR.fullmatch(text, amounts[i].end, amounts[i + 1].start):
            groups.append((amounts[i], amounts[i + 1]))
            i += 2
        else:
            groups.append((amounts[i],))
            i += 1
    # "Q3 2024, $50k" should give $50k: a currency or multiplier beats a bare number.
    return next((g for g in groups if any(a.is_money_like for a in g)), groups[0])


def _group_bounds(text: str, group: tuple[_Amount, ...]) -> tuple[Decimal | None, Decimal | None]:
    """Lowest and highest amount a group allows; None for an open end ("$100k+", "under $2k")."""
    if len(group) == 2:
        return _range_bounds(*group)
    amount = group[0]
    value = amount.value * (amount.multiplier or 1)
    before, after = text[: amount.start], text[amount.end :]
    if _UPPER_BOUND_BEFORE.search(before) or _UPPER_BOUND_AFTER.match(after):
        return None, value
    if _LOWER_BOUND_BEFORE.search(before) or _LOWER_BOUND_AFTER.match(after):
        return value, None
    return value, value


def _range_bounds(first: _Amount, second: _Amount) -> tuple[Decimal, Decimal]:
    """Both ends of "10-20k", "$8k-12k" or "10k-15", sharing a multiplier written only once."""
    first_factor, second_factor = first.multiplier, second.multiplier
    # "10-20k": the trailing multiplier covers both ends; "500-2k" keeps 500 as written.
    if first_factor is None and second_factor is not None and first.value <= second.value:
        first_factor = second_factor
    low = first.value * (first_factor or 1)
    # "10k-15": the leading multiplier carries over when the bare end would otherwise be smaller.
    if second_factor is None and first.multiplier is not None and second.value < low:
        second_factor = first.multiplier
    high = second.value * (second_factor or 1)
    return (low, high) if low <= high else (high, low)


def _group_currency(group: tuple[_Amount, ...], markers: list[_Marker]) -> str | None:
    """Currency glued to the chosen figures, else the first one named anywhere, else INR for lakh/crore."""
    for amount in group:
        if amount.currency:
            return amount.currency
    if markers:
        return markers[0].code
    if any(a.multiplier_word in _INDIAN_MULTIPLIERS for a in group):
        return "INR"
    return None


def _find_period(text: str) -> Period:
    """The first billing period mentioned ("/month", "per year", "/hr"), else "once"."""
    found = [(m.start(), period) for period, pattern in _PERIOD_PATTERNS if (m := pattern.search(text))]
    return min(found)[1] if found else "once"


def _tidy(value: Decimal | None) -> Decimal | None:
    """Round to cents and drop a zero fraction, so 1.5 lakh reads 150000 rather than 150000.0."""
    if value is None:
        return None
    value = value.quantize(_CENT)  # sub-cent precision in a typed budget is noise
    return value.quantize(_ONE) if value == value.to_integral_value() else value
