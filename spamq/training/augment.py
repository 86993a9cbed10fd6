"""Offline augmentation of spam messages in the training split (nlpaug char/word level).

Only augmenters that need no network, NLTK corpus or language model are used:
KeyboardAug, OcrAug, RandomCharAug, RandomWordAug, SplitAug and SpellingAug with the
``spelling_en.txt`` dictionary bundled in nlpaug.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from pathlib import Path

from spamq.text import normalize
from spamq.training.data import Example

AUGMENTERS = (
    "keyboard", "ocr", "char_substitute", "char_swap",
    "word_swap", "word_delete", "split", "spelling",
)


def _build_augmenters() -> list:
    import nlpaug
    import nlpaug.augmenter.char as nac
    import nlpaug.augmenter.word as naw

    spelling = Path(nlpaug.__file__).parent / "res" / "word" / "spelling" / "spelling_en.txt"
    char = {"aug_char_p": 0.1, "aug_char_max": 2, "aug_word_p": 0.1, "aug_word_max": 3}
    word = {"aug_p": 0.1, "aug_max": 3}
    spell = naw.SpellingAug(dict_path=str(spelling), **word)
    # nlpaug dedupes each word's candidates through a set, so their order (and the word it
    # draws) would follow PYTHONHASHSEED: sort them, so that one seed gives one training set.
    for candidates in spell.model.dict.values():
        candidates.sort()
    return [
        nac.KeyboardAug(**char, include_special_char=False),
        nac.OcrAug(**char),
        nac.RandomCharAug(action="substitute", **char),
        nac.RandomCharAug(action="swap", **char),
        naw.RandomWordAug(action="swap", **word),
        naw.RandomWordAug(action="delete", **word),
        naw.SplitAug(**word),
        spell,
    ]


def augment_spam(
    train: list[Example],
    *,
    factor: int,
    seed: int,
    exclude: Collection[str] = frozenset(),
) -> list[Example]:
    """Return ``factor`` augmented copies (at most) of each spam row of ``train``.

    A copy is dropped when its normalised text equals any training text, another copy, or
    any text in ``exclude`` (the normalised validation and test texts), so augmentation can
    never put a validation/test input into training.
    """
    if factor <= 0:
        return []
    import numpy as np

    # nlpaug draws from both global generators; seed them and restore them afterwards.
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        augmenters = _build_augmenters()
        rng = random.Random(seed)
        seen = {normalize(e.text) for e in train} | set(exclude)
        out: list[Example] = []
        for row in train:
            if row.label != 1:
                continue
            for aug in rng.sample(augmenters, k=min(factor, len(augmenters))):
                result = aug.augment(row.text)
                text = result[0] if isinstance(result, list) else result
                key = normalize(text) if text else ""
                if not key or key in seen:
                    continue
                seen.add(key)
                out.append(Example(text=text, label=1, augmented=True))
        return out
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
