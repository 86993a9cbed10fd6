"""spamq.text.normalize: the obfuscations it must undo, and what it must leave alone."""

from __future__ import annotations

import pytest

from spamq.text import normalize

ORIGINAL = "FREE entry! Call 08001234567 to WIN a prize"
OBFUSCATED = (
    "F R E E en\u200dtry! Call \uff10\uff18\uff10\uff10\u200b1234567 to W.I.N a pr\u200cize"
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("F R E E entry", "FREE entry"),
        ("C-A-L-L now", "CALL now"),
        ("W.I.N a prize", "WIN a prize"),  # the separator must repeat: "a" is a word
        ("W I N a prize", "WIN a prize"),  # a lowercase one-letter word after a capital run
        ("win a F R E E prize", "win a FREE prize"),  # ... and before one
        ("f r e e txt", "free txt"),
        ("call \uff10\uff18\uff10\uff10 now", "call 0800 now"),  # full-width digits
        ("fr\u200bee\u200d \ufeffcash", "free cash"),  # zero-width characters
        ("\u0412\u0410\u041d\u041a account", "BAHK account"),  # Cyrillic look-alikes
        ("that\x92s \x93ok\x94", "that's \"ok\""),  # Windows-1252 C1 controls
        ("  two   spaces\tand\nnewline ", "two spaces and newline"),
        ("Ok lar... Joking wif u oni...", "Ok lar... Joking wif u oni..."),
        ("see u at 5 ok", "see u at 5 ok"),
        ("a b", "a b"),  # two single letters are not collapsed
    ],
)
def test_normalize_examples(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_obfuscated_spam_normalises_to_the_original() -> None:
    assert OBFUSCATED != ORIGINAL
    assert normalize(OBFUSCATED) == normalize(ORIGINAL) == ORIGINAL


def test_normalize_is_idempotent() -> None:
    for text in (OBFUSCATED, ORIGINAL, "F R E E W I N", "x . y . z"):
        once = normalize(text)
        assert normalize(once) == once


def test_obfuscated_spam_gives_identical_token_ids() -> None:
    from spamq.training.convert import load_tokenizer

    tok = load_tokenizer()
    raw = tok([OBFUSCATED, ORIGINAL])["input_ids"]
    assert raw[0] != raw[1]  # without normalisation the model would see other tokens
    ids = tok([normalize(OBFUSCATED), normalize(ORIGINAL)])["input_ids"]
    assert ids[0] == ids[1]
    assert tok.convert_ids_to_tokens(ids[0])[1:4] == ["free", "entry", "!"]
