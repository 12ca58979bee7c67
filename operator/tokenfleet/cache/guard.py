"""The semantic-cache guard: refuses a candidate whose question differs from the query in what decides the answer.

Pure functions. Embeddings place "flights from Paris to London" right next to "flights from London
to Paris", and "capital of Germany" near "capital of France"; a cosine threshold cannot tell them
apart. The guard compares what an answer depends on: numbers, units, named entities, negation,
language, direction (from X to Y, X than Y), opposites (before/after, buy/sell) and the kind of
question (when/where/who/why/how many). ``compare`` names the first difference, or None.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from tokenfleet.cache import lexicon as lx

_TOKEN = re.compile(
    r"°[cf]|->|→|[$€£¥%]"
    r"|\d+(?:[.,:/]\d+)*"
    r"|[^\W\d_](?:[\w'-]*[^\W_])?"
    r"|[.!?;:\n]"
)
_SENTENCE_END = frozenset(".!?;:\n")
_DIGIT = re.compile(r"\d")
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")
_DETERMINERS = frozenset({"the", "a", "an", "my", "your", "our", "their", "his", "her", "its", "this", "that"})
_SCRIPTS = (  # (name, first code point, last code point)
    ("cyrillic", 0x0400, 0x052F), ("greek", 0x0370, 0x03FF), ("hebrew", 0x0590, 0x05FF),
    ("arabic", 0x0600, 0x06FF), ("devanagari", 0x0900, 0x097F), ("thai", 0x0E00, 0x0E7F),
    ("hangul", 0xAC00, 0xD7AF), ("kana", 0x3040, 0x30FF), ("han", 0x4E00, 0x9FFF),
)


@dataclass(frozen=True)
class Features:
    """What the guard compares, extracted once per text."""

    language: str
    numbers: tuple[float, ...]
    units: frozenset[str]
    entities: frozenset[str]
    words: frozenset[str]
    negations: int
    items: frozenset[str]  # what direction is judged on: names, numbers (#5) and units (canonical)
    roles: tuple[tuple[str, str], ...]  # (item, role) for items right after a direction marker
    question: frozenset[str]
    mood: str  # "question", "statement" or "" (unknown: no final punctuation, or a request)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return text.replace("’", "'").replace("‘", "'").replace("´", "'").replace("`", "'")


def _word_key(token: str) -> str:
    """Lower case, possessive and apostrophes dropped: "France's" -> "france", "don't" -> "dont"."""
    low = token.lower()
    if low.endswith("'s"):
        low = low[:-2]
    return low.replace("'", "")


def _number(token: str) -> list[float]:
    """The numbers in a digit token: "1,000" -> [1000], "1.5" -> [1.5], "10:30" -> [10, 30]."""
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", token):
        return [float(token.replace(",", ""))]
    parts = re.split(r"[:/]", token)
    out = []
    for part in parts:
        part = part.replace(",", ".") if part.count(",") == 1 and "." not in part else part.replace(",", "")
        try:
            out.append(float(part))
        except ValueError:
            pass
    return out


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(token, starts a sentence) for every token of ``text``."""
    out, start = [], True
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in _SENTENCE_END:
            start = True
            continue
        out.append((token, start))
        start = False
    return out


def _adds_to(current: float | None, value: float) -> bool:
    """Whether a number word continues the number before it: "twenty" + "five", "two hundred" + "fifty"."""
    if current is None:
        return False
    return (current >= 100 and current % 100 == 0 and value < 100) or (
        current >= 20 and current % 10 == 0 and value < 10)


def _numbers(words: list[str]) -> tuple[list[float], list[bool]]:
    """Numbers in digits or words ("twenty five" -> 25, "5 million" -> 5e6); and which tokens are numeric."""
    values: list[float] = []
    numeric = [False] * len(words)
    current: float | None = None  # the number being read, None between numbers
    for i, word in enumerate(words):
        if word[0].isdigit():
            if current is not None:
                values.append(current)
            nums = _number(word)
            values.extend(nums[:-1])
            current = nums[-1] if nums else None
        elif word in lx.NUMBER_WORDS:
            value = lx.NUMBER_WORDS[word]
            if _adds_to(current, value) and not words[i - 1][0].isdigit():
                current += value
            else:
                if current is not None:
                    values.append(current)
                current = value
        elif word in lx.SCALE_WORDS and current is not None and (len(word) > 2 or words[i - 1][0].isdigit()):
            current *= lx.SCALE_WORDS[word]
        elif word == "and" and current is not None and current >= 100:
            continue  # "two hundred and five"
        else:
            if current is not None:
                values.append(current)
            current = None
            continue
        numeric[i] = True
    if current is not None:
        values.append(current)
    return values, numeric


def _units(words: list[str], numeric: list[bool]) -> list[str | None]:
    """Canonical unit of each token (None for tokens that are not units)."""
    out: list[str | None] = []
    for i, word in enumerate(words):
        unit = lx.UNITS.get(word)
        if unit is None and i > 0 and numeric[i - 1]:
            unit = lx.UNITS_AFTER_NUMBER.get(word)
        out.append(unit)
    return out


def _is_entity(token: str, key: str, sentence_start: bool, shouting: bool) -> bool:
    if key in lx.GAZETTEER:
        return True
    if not token[0].isalpha() or key in lx.COMMON_WORDS or key in lx.NEGATIONS:
        return False
    if _DIGIT.search(token):
        return True  # gpt-4o, mp3, b2b
    if shouting:
        return key not in lx.STOPWORDS["en"]  # case says nothing: every uncommon word may be a name
    if token[1:] != token[1:].lower():
        return True  # iPhone, NASA, McDonald
    return token[0].isupper() and not sentence_start


def _script(char: str) -> str:
    code = ord(char)
    if code < 0x250:
        return "latin"
    return next((name for name, lo, hi in _SCRIPTS if lo <= code <= hi), "other")


def _language(text: str, words: list[str]) -> str:
    if text.isascii():
        counts = {"latin": 1} if any(c.isalpha() for c in text) else {}
    else:
        counts = {}
        for char in text:
            if char.isalpha():
                script = _script(char)
                counts[script] = counts.get(script, 0) + 1
    if not counts:
        return "und"
    script = max(counts, key=counts.get)
    if script in ("han", "kana"):
        return "ja" if counts.get("kana") else "zh"
    if script != "latin":
        return script
    present = set(words)
    votes = sorted(((len(present & stop), lang) for lang, stop in lx.STOPWORDS.items()), reverse=True)
    (best, lang), (second, _) = votes[0], votes[1]
    return lang if best >= 2 and best > second else "und"


def _roles(words: list[str], items: list[str | None], units: list[str | None]) -> tuple[tuple[str, str], ...]:
    """(item, role) for items that follow a direction marker, skipping determiners."""
    roles: dict[str, str] = {}
    for i, item in enumerate(items):
        if item is None or item in roles:
            continue
        j = i - 1
        while j >= 0 and words[j] in _DETERMINERS:
            j -= 1
        if j < 0:
            continue
        role = lx.DIRECTION_MARKERS.get(words[j]) or (lx.UNIT_MARKERS.get(words[j]) if units[i] else None)
        if role:
            roles[item] = role
    return tuple(sorted(roles.items()))


def _question(words: list[str]) -> frozenset[str]:
    kinds = {lx.QUESTION_TYPES[w] for w in words if w in lx.QUESTION_TYPES}
    for a, b in zip(words, words[1:]):
        if a == "how" and b in lx.HOW_TYPES:
            kinds.add(lx.HOW_TYPES[b])
    return frozenset("quantity" if k in ("count", "amount") else k for k in kinds)


def _mood(text: str, words: list[str]) -> str:
    end = text.rstrip().rstrip("\"')»” ")[-1:]
    if end == "?":
        return "question"
    if end == "." and words and words[0] not in lx.IMPERATIVES and words[0] not in lx.QUESTION_TYPES:
        return "statement"
    return ""


def _item(word: str, entity: bool, numeric: bool, unit: str | None) -> str | None:
    if numeric:
        values = _number(word) if word[0].isdigit() else [lx.NUMBER_WORDS.get(word, lx.SCALE_WORDS.get(word, 0))]
        return "#" + ",".join(f"{v:g}" for v in values)
    if unit:
        return "unit:" + unit
    return word if entity else None


def features(text: str) -> Features:
    """Everything ``compare`` needs about one text."""
    text = _normalise(text)
    tokens = _tokens(text)
    words = [_word_key(t) for t, _ in tokens]
    upper, lower = len(_UPPER.findall(text)), len(_LOWER.findall(text))
    shouting = upper + lower >= 8 and upper > 0.6 * (upper + lower)
    numbers, numeric = _numbers(words)
    units = _units(words, numeric)
    entity = [_is_entity(t, w, s, shouting) and not numeric[i] and units[i] is None
              for i, ((t, s), w) in enumerate(zip(tokens, words))]
    items = [_item(w, entity[i], numeric[i], units[i]) for i, w in enumerate(words)]
    return Features(
        language=_language(text, words),
        numbers=tuple(sorted(numbers)),
        units=frozenset(u for u in units if u),
        entities=frozenset(w for w, e in zip(words, entity) if e),
        words=frozenset(words),
        negations=sum(w in lx.NEGATIONS for w in words),
        items=frozenset(i for i in items if i),
        roles=_roles(words, items, units),
        question=_question(words),
        mood=_mood(text, words),
    )


def _direction_differs(a: Features, b: Features) -> bool:
    """An item with one role in one text and another (or none, where that text uses the role elsewhere) in the other."""
    ra, rb = dict(a.roles), dict(b.roles)
    used_a, used_b = set(ra.values()), set(rb.values())
    for item in set(ra) | set(rb):
        x, y = ra.get(item), rb.get(item)
        if x == y or item not in a.items or item not in b.items:
            continue
        if (x and y) or (x and x in used_b) or (y and y in used_a):
            return True
    return False


def _opposites(a: Features, b: Features) -> bool:
    for x, y in lx.ANTONYMS:
        if (x in a.words and y not in a.words and y in b.words and x not in b.words) or (
                y in a.words and x not in a.words and x in b.words and y not in b.words):
            return True
    return False


def compare(a: Features, b: Features) -> str | None:
    """The first way ``b`` asks something other than ``a`` (a reason word), or None when none is found."""
    if a.language != b.language and "und" not in (a.language, b.language):
        return "language"
    if a.numbers != b.numbers:
        return "number"
    if a.units != b.units:
        return "unit"
    if (a.entities - b.words) or (b.entities - a.words):
        return "entity"
    if a.negations != b.negations:
        return "negation"
    if _direction_differs(a, b):
        return "direction"
    if _opposites(a, b):
        return "opposite"
    if a.question and b.question and a.question != b.question:
        return "question"
    if {a.mood, b.mood} == {"question", "statement"}:
        return "mood"
    return None


def check(query: str, candidate: str) -> str | None:
    """``compare`` on two texts: None when the candidate's answer may serve the query."""
    return compare(features(query), features(candidate))
