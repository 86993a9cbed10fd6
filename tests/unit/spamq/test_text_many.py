"""normalize_many: a batch normalised at once is each text normalised on its own."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from spamq.text import normalize, normalize_many

# what the normaliser acts on: spaced letters and their separators, whitespace, NFKC
# compatibility and combining characters, zero-width and C1 characters, homoglyphs
ALPHABET = st.sampled_from(list(
    "aAbZ09 ._*-\t\n\u00a0\u3000\u0301\u0308\u0327ｆｒｅｅ\ufb01\u2460\u00ad\u200b\ufeff"
    "\x91\x93\x97АаΕο\u00c5\u212b\u1e9b\x00\x1c\x85\u2028"))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet=ALPHABET, max_size=12), max_size=6))
@example(["W I N", "a F R E E prize"])
@example(["\u0301leading mark", "e", "\u0301"])
@example(["a.b.", "c.d", ""])
def test_a_batch_normalises_as_each_text_alone(texts):
    assert normalize_many(texts) == [normalize(t) for t in texts]
