"""Text normalisation applied before tokenising, in training and in serving alike.

It undoes the cheap obfuscations spammers use: full-width and other compatibility
characters (NFKC), zero-width characters, Cyrillic/Greek look-alike letters, Windows-1252
smart quotes left as C1 controls, and letters spaced or dotted apart ("F R E E").
"""

from __future__ import annotations

import re
import unicodedata

_ZERO_WIDTH = dict.fromkeys(
    map(ord, "\u00ad\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\ufeff")
)
# C1 controls that are Windows-1252 punctuation in disguise (the corpus has them).
_C1_PUNCT = {0x91: "'", 0x92: "'", 0x93: '"', 0x94: '"', 0x95: "*", 0x96: "-", 0x97: "-"}
# Cyrillic and Greek letters that render like Latin ones.
_HOMOGLYPHS = str.maketrans(
    "АВЕКМНОРСТУХаеорсуухіјѕԁԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧαβεικνορτυχ",
    "ABEKMHOPCTYXaeopcyyxijsdqwABEZHIKMNOPTYXabeikvoptux",
)
_TABLE = {**_ZERO_WIDTH, **_C1_PUNCT}
# Both tables as one substitution for normalize_many (their outputs are ASCII, outside both
# tables' keys, so one pass equals the two): a match costs a call, a text without any nothing.
_FOLD = {chr(k): v or "" for k, v in _TABLE.items()} | {
    chr(k): chr(v) for k, v in _HOMOGLYPHS.items()}
_FOLDED = re.compile("[" + re.escape("".join(_FOLD)) + "]")
# Three or more single letters/digits joined by the same one of space, dot, hyphen,
# underscore or star ("W.I.N a prize" -> "WIN a prize", not "WINa prize").
_SPACED = re.compile(r"(?<![^\W_])[^\W_]([ ._*\-])(?:[^\W_]\1)+[^\W_](?![^\W_])")
_SEPARATORS = re.compile(r"[ ._*\-]")
_WHITESPACE = re.compile(r"\s+")


def _collapse(match: re.Match) -> str:
    """Join a spaced run; a lowercase one-letter word next to a capital run stays a word
    ("win a F R E E prize" -> "win a FREE prize", "W I N a prize" -> "WIN a prize")."""
    chars = match.group(0).split(match.group(1))
    head = chars.pop(0) if chars[0].islower() and "".join(chars[1:]).isupper() else ""
    tail = chars.pop() if chars[-1].islower() and "".join(chars[:-1]).isupper() else ""
    if len(chars) < 3:  # what is left is not a spaced word after all
        return match.group(0)
    return " ".join(p for p in (head, "".join(chars), tail) if p)


def normalize(text: str) -> str:
    """Return ``text`` folded to the form the model sees."""
    text = unicodedata.normalize("NFKC", text).translate(_TABLE).translate(_HOMOGLYPHS)
    text = _SPACED.sub(_collapse, text)
    return _WHITESPACE.sub(" ", text).strip()


def normalize_many(texts: list[str]) -> list[str]:
    """``[normalize(t) for t in texts]``, each step run once over the texts joined by NUL
    (a starter with no compositions, outside every pattern and table here, so nothing crosses
    it): a batch's normalising costs a few C calls, not Python per text. Texts holding a
    NUL themselves are normalised one by one."""
    joined = "\x00".join(texts)
    if joined.count("\x00") != len(texts) - 1:
        return [normalize(t) for t in texts]
    joined = _FOLDED.sub(_fold, unicodedata.normalize("NFKC", joined))
    # str.split() splits at exactly re's \s (both Py_UNICODE_ISSPACE), in a third the time
    joined = " ".join(_SPACED.sub(_collapse, joined).split())
    return list(map(str.strip, joined.split("\x00")))


def _fold(match: re.Match) -> str:
    return _FOLD[match.group()]
