"""Text that a lead, a user, an imported file or the AI wrote, made to show as itself where Streamlit renders markdown.

Streamlit renders alerts, captions, headings, metrics, toasts, tab and expander titles and widget labels as markdown
(GitHub's, plus `:red[...]` colours, `:material/icon:` icons, emoji shortcodes and `$...$` KaTeX). `plain` escapes
every character that could start any of that, and leaves the rest of the punctuation as written, so an ordinary
message ("Body template: uses an unknown variable ('nickname' is undefined)") reads and compares the same.
"""

from __future__ import annotations

import re

# Invisible and unbreakable (U+2060). Some markdown is found in the rendered text after escapes are undone (web and
# email autolinks, emoji and icon shortcodes), so a backslash cannot stop it: this character splits it instead.
WORD_JOINER = "\u2060"

# Active wherever they stand: escapes, code, emphasis, links and images, strikethrough, tables, KaTeX.
_ALWAYS = frozenset("\\`*[]~|$")
# A line can open a heading, quote, list or thematic break; the start of the text counts as a line start.
_LINE_START = re.compile(r"^ ?(?:[#>+\-=]|\d{1,9}[.)])")
_SPACES = re.compile(r"\s+")


def plain(text: object) -> str:
    """`text` on one line, escaped so that st.error, st.caption, a label or any markdown shows it literally."""
    line = _SPACES.sub(" ", str(text))  # one line: no blocks, hard breaks or indented code from outside text
    opener = _LINE_START.match(line)
    out: list[str] = []
    for i, char in enumerate(line):
        before, after = line[i - 1] if i else "", line[i + 1:i + 2]
        if _active(char, before, after) or (opener and i == opener.end() - 1):
            out.append("\\")
        out.append(char)
        # "http:", ":red[", ":smile:", ":material/home:", "a@b.example", "www.": split after the colon, the @ or www.
        if (char in ":@" and not after.isspace()) or (after in (".", "") and line[i - 2:i + 1].lower() == "www"):
            out.append(WORD_JOINER)
    return "".join(out)


def _active(char: str, before: str, after: str) -> bool:
    """Whether `char`, between `before` and `after` ("" at either end of the text), can start markdown."""
    if char in _ALWAYS:
        return True
    if char == "_":
        # Inside a word (snake_case) or between spaces an underscore can neither open nor close emphasis.
        return not ((before.isalnum() and after.isalnum()) or (before.isspace() and after.isspace()))
    if char == "<":  # an autolink or HTML: "<http://…>", "<b>", "</b>", "<!--"
        return not after or after.isalpha() or after in "/!?"
    if char == "&":  # a character reference: "&lt;", "&#91;"
        return not after or after.isalnum() or after == "#"
    return False
