"""Text from strangers is data: the one character set for names, and escaping where text is shown.

Anyone can post a task (its name and description), propose a spec (its name) or write any
string into a description file without going through this client. So every such string is
escaped where it is rendered (Markdown in the app and the model card, the terminal), whatever it
holds; and names, which this client writes, are also checked where they enter (`task create`,
a spec), so that an honest name never needs escaping to read well.
"""

from __future__ import annotations

import re
import unicodedata

from bountytree.errors import UserError

# A name: letters and digits of any script, space and a little punctuation; no line breaks, no
# Markdown or HTML syntax ([]()`*<>!|~ and the like), at most MAX_NAME characters.
MAX_NAME = 100
NAME = re.compile(r"^[\w .,:;+\-/'%@#()]{1," + str(MAX_NAME) + "}$")
NAME_RULE = (
    f"1 to {MAX_NAME} letters, digits, spaces and . , : ; + - / ' % @ # ( ) "
    "(no line breaks or Markdown)"
)

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~>&$:=])")


def check_name(value: str, what: str) -> str:
    """`value` if it is a name by NAME_RULE, else a one-line UserError naming `what`."""
    if not isinstance(value, str) or not NAME.match(value) or value != value.strip():
        shown = value if isinstance(value, str) else type(value).__name__
        raise UserError(f"{what} {shown[:60]!r}: use {NAME_RULE}")
    return value


def _printable(value: str, keep_newlines: bool) -> str:
    """Control and format characters (escape sequences, bidi overrides, NULs) become U+FFFD;
    newlines stay only where asked."""
    out = []
    for ch in value:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch in "\t\n\r":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def markdown(value: str, *, block: bool = False) -> str:
    """`value` as literal text in Markdown (Streamlit's and a README's): every character that
    could start syntax (links, images, code spans, headings, emphasis, HTML, tables) is
    backslash-escaped, and control characters are made visible. Inline (the default) keeps it
    on one line; `block` keeps its line breaks as hard breaks within one paragraph."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", _printable(value, keep_newlines=block))
    return text.replace("\n", "  \n") if block else text


def terminal(value: str) -> str:
    """`value` safe to print on one terminal line: no escape sequences, no line breaks."""
    return _printable(value, keep_newlines=False)
