"""Spotting lead text that tries to instruct the model instead of describing a project."""

from __future__ import annotations

import re

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("asks to ignore instructions", re.compile(
        r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}"
        r"\b(instructions?|prompts?|rules|guidelines|scoring)\b", re.I)),
    ("addresses the AI", re.compile(
        r"\b(if an ai is reading|note (for|to) (your|the) (ai|assistant|model|bot)|instruction to the [\w -]*model|"
        r"(dear|hey|attention) (ai|chatgpt|gemini|assistant|model)|as an ai(,| (language )?model\b| assistant\b)|"
        r"(?<=<!--)\s*ai instructions?\b|(?<=<!-- )ai instructions?\b|"
        r"(assistant|chatgpt|gemini|claude|ai), (when|if|please|rate|mark|score|ignore|treat)\b|"
        r"note (for|to) (the |any )?(automated|ai|llm)[\w -]{0,30}\b(screen\w*|review\w*|scor\w*|filter\w*)|"
        r"if you use (chatgpt|gpt|gemini|claude|an? ai|an? llm)[^.\n]{0,40}\btell (it|them)\b|"
        # Role-play only when the role is an AI's: "act as a bridge", "you are now on our shortlist" are ordinary.
        r"(you are now|act as|pretend to be) (an? |the )?([\w-]+ ){0,2}"
        r"(ai|assistant|model|bot|scorer|grader|qualifier)\b)",
        re.I)),
    # The verb must point at the lead itself ("rate this lead 100", "score=98", "mark it as HIGH"): a free gap let
    # ordinary text through ("set up high availability", "our NPS score is 92", "label 100 SKUs").
    ("dictates its own score", re.compile(
        r"\b(rate|score|mark|classify|label|treat|assign|award|output|"
        r"set(?=\s*(this|it|me|us|my|lead|priority|score)\b))\b"
        r"(\s*((this|it|me|us|the|my|lead|request|message|inquiry|enquiry|submission|one|as|to|with|at|priority|"
        r"score|\d{1,3})\b|[:=\"',])){0,8}"
        r"\s*((high|hot)\b|(100|9\d)\b(?!\s*(%|percent|k\b|,000|(?!high|hot|priority|points?)[a-z])))", re.I)),
    # A verdict is 0-100: "minimum credit score: 650" in a lending app's requirements is not one.
    ("fake verdict", re.compile(r"[\"']?\b(score|priority)[\"']?\s*[:=]\s*[\"']?(100|\d{2}|high|medium|low)\b",
                                re.I)),
    ("fake system or admin line", re.compile(
        # Only at the start of a line: "our current system: a spreadsheet", "Admin: approve refunds" are requirements.
        r"(^|\n)\s*(system|assistant)\s*[:>]|<\s*/?\s*(system|admin|lead|instructions?)\s*>|"
        r"\[\s*(system|inst|admin)\b|<\|im_(start|end)\|>|###\s*(system|instruction)", re.I)),
    ("asks for a fixed reply", re.compile(r"\brespond (only )?with\b|\boutput only\b|\breply with exactly\b", re.I)),
]


def find_injection(*texts: str | None) -> list[str]:
    """The kinds of instruction attempt found in the given texts (empty when none)."""
    joined = "\n".join(t for t in texts if t)
    return [label for label, pattern in _PATTERNS if pattern.search(joined)]
