"""Grade seed 001's capital-city replies, right where the seed's own grader was wrong.

The seed (shared/seeds/001-evaluation-protocol.md) compared capital and continent by exact lower-cased string match
and coordinates by stripping every character but digits, ``.`` and ``-`` and comparing within 0.05 degrees. That
drops the hemisphere letter (``34.61S`` became ``34.61``, so a correct ``-34.61`` failed and a wrong ``34.61N``
passed), rejects ``Bogota`` for ``Bogotá`` and ``Americas`` for ``South America``, and asks for a precision no
language model has. This grader:

* **parses the reply** as the first JSON object in it (surrounding text and code fences are ignored; trailing commas
  and single-quoted Python-style dicts are accepted); keys are matched loosely (``Capital City``, ``capital_city``,
  ``capital``; ``lat``, ``Latitude``). A reply with no object parses to nothing: every field is wrong, score 0,
  and the raw text is kept by the caller.
* **capital**: both sides normalised (Unicode accents folded with NFKD, case folded, apostrophes and dots dropped,
  other punctuation to spaces, ``St``/``Ste`` read as ``Saint``/``Sainte``, a leading ``City of`` or trailing
  ``City`` dropped, so ``Kuwait`` = ``Kuwait City`` and ``San Marino`` = ``City of San Marino``); then equal, or
  equal to one of the truth's alternative names in :data:`CAPITAL_ALTERNATIVES`. ``countryinfo`` (the ground truth)
  lists alternative spellings of countries only, not of capitals, hence that table: English exonyms and common
  transliterations (Kiev, Ulan Bator, Kishinev) and the other constitutional capitals of countries that have
  several (South Africa, Eswatini, Sri Lanka). Former names (Nur-Sultan for Astana) and mere seats of government
  (La Paz, The Hague) are not accepted.
* **continent**: names mapped onto the ground truth's six continents (Africa, Asia, Europe, North America, South
  America, Oceania) through :data:`CONTINENT_ALIASES`: ``Americas`` / ``America`` / ``Latin America`` count for
  both Americas, ``Central America`` and ``Caribbean`` for North America, ``Australia`` for Oceania, and a
  sub-region (``Western Europe``, ``Southeast Asia``, ``East Africa``) for its continent. ``Middle East`` is not a
  continent and is not mapped.
* **latitude / longitude**: parsed with their hemisphere: a JSON number or signed string (``-34.61``), a letter or
  word (``34.61S``, ``34.61 ° S``, ``S 34.61``, ``34.61 South``), degrees-minutes(-seconds) (``24°17'N``,
  ``24° 17′ 30″ N``, ``24 17 30 N``), a decimal comma (``24,28 N``); with both a sign and a letter the letter
  decides. A letter of the other axis (a latitude in ``E``), or a value outside +-90 / +-180, is wrong. Correct
  when within ``tolerance_deg`` of the truth (longitude measured around the antimeridian).

The weighted score is the seed's auction value: (10 capital + 10 continent + 25 latitude + 25 longitude) / 70.
"""

from __future__ import annotations

import ast
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envs.data.make_capitals import FIELDS, HEMISPHERES, SCORE_WEIGHTS

DEFAULT_TOLERANCE_DEG = 1.0
"""Default coordinate tolerance in degrees (about 111 km of latitude): the capital's city area, not its centre."""

# Alternative names of capitals, keyed by the ground truth's capital (any spelling that normalises the same way).
# Accents, case, punctuation, "St."/"Saint" and "City" suffixes are handled by the normalisation, not listed here.
CAPITAL_ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "Kyiv": ("Kiev",),
    "Washington D.C.": ("Washington", "Washington, District of Columbia"),
    "Chișinău": ("Kishinev",),
    "Ulaanbaatar": ("Ulan Bator", "Ulaan Baatar"),
    "Naypyidaw": ("Nay Pyi Taw", "Naypyitaw", "Nay Pyi Daw"),
    "Ashgabat": ("Ashkhabad", "Ashgabad"),
    "Sana'a": ("Sana",),
    "Tehran": ("Teheran",),
    "Addis Ababa": ("Addis Abeba",),
    "Bern": ("Berne",),
    "Hanoi": ("Ha Noi",),
    "Bogotá": ("Santa Fe de Bogotá",),
    "Mexico City": ("Ciudad de México",),
    "Guatemala City": ("Ciudad de Guatemala",),
    "Monaco": ("Monaco-Ville",),
    "South Tarawa": ("Tarawa",),
    "Port Louis": ("Port-Louis",),
    # Countries with several constitutional capitals: the ground truth names one, the others are right too.
    "Pretoria": ("Cape Town", "Bloemfontein"),
    "Lobamba": ("Mbabane",),
    "Colombo": ("Sri Jayawardenepura Kotte", "Kotte"),
}

CONTINENTS = ("Africa", "Asia", "Europe", "North America", "South America", "Oceania")
_AMERICAS = ("North America", "South America")
# Normalised continent answer -> the ground-truth continents it may stand for.
CONTINENT_ALIASES: dict[str, tuple[str, ...]] = {
    "africa": ("Africa",),
    "asia": ("Asia",),
    "europe": ("Europe",),
    "north america": ("North America",),
    "northern america": ("North America",),
    "central america": ("North America",),
    "caribbean": ("North America",),
    "the caribbean": ("North America",),
    "north and central america": ("North America",),
    "north america and the caribbean": ("North America",),
    "south america": ("South America",),
    "americas": _AMERICAS,
    "the americas": _AMERICAS,
    "america": _AMERICAS,
    "latin america": _AMERICAS,
    "latin america and the caribbean": _AMERICAS,
    "oceania": ("Oceania",),
    "australia": ("Oceania",),
    "australasia": ("Oceania",),
    "australia and oceania": ("Oceania",),
    "australia oceania": ("Oceania",),
    "oceania australia": ("Oceania",),
    "pacific": ("Oceania",),
    "melanesia": ("Oceania",),
    "micronesia": ("Oceania",),
    "polynesia": ("Oceania",),
}
# Sub-region prefixes dropped before the alias lookup ("Western Europe" -> "europe", "Sub-Saharan Africa" -> "africa").
_REGION_PREFIX = re.compile(
    r"^(?:north|south|east|west|central|northern|southern|eastern|western|north ?east(?:ern)?|north ?west(?:ern)?|"
    r"south ?east(?:ern)?|south ?west(?:ern)?|sub saharan|subsaharan) (africa|asia|europe)$"
)

# JSON key (normalised: lower case, letters only) -> field.
_KEYS = {
    "capitalcity": "capital",
    "capital": "capital",
    "city": "capital",
    "capitalname": "capital",
    "continent": "continent",
    "region": "continent",
    "latitude": "latitude",
    "lat": "latitude",
    "longitude": "longitude",
    "lon": "longitude",
    "lng": "longitude",
    "long": "longitude",
}


@dataclass
class CapitalsGrade:
    """The grade of one reply.

    Attributes:
        correct: field -> right or wrong (``capital``, ``continent``, ``latitude``, ``longitude``).
        score: weighted score in [0, 1].
        parse_ok: a JSON object was found in the reply.
        values: the parsed answer per field (strings, as the model wrote them; empty when absent).
        error_deg: latitude/longitude -> absolute error in degrees (``None`` when the value did not parse).
    """

    correct: dict[str, bool]
    score: float
    parse_ok: bool
    values: dict[str, str] = field(default_factory=dict)
    error_deg: dict[str, float | None] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------- parsing


def _balanced_spans(text: str) -> list[str]:
    """Every top-level ``{...}`` span of ``text`` with balanced braces (braces inside quoted strings ignored)."""
    spans, depth, start, quote, escaped = [], 0, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'" and depth > 0:
            # An apostrophe inside a word (N'Djamena) is text, not a quote.
            if ch == "'" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum():
                continue
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def extract_json(reply: str) -> dict | None:
    """The first JSON object in ``reply`` (text around it ignored), or ``None``.

    Tried in order at every ``{``: strict JSON; then, on the balanced ``{...}`` spans, JSON without trailing commas
    and a Python-literal dict (single quotes).
    """
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", reply):
        try:
            obj, _ = decoder.raw_decode(reply, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    for span in _balanced_spans(reply):
        for attempt in (lambda s: json.loads(re.sub(r",\s*([}\]])", r"\1", s)), ast.literal_eval):
            try:
                obj = attempt(span)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(obj, dict):
                return obj
    return None


def answer_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    """Map a parsed reply's keys onto the four fields (first matching key wins); values as strings."""
    out: dict[str, str] = {}
    for key, value in obj.items():
        name = _KEYS.get(re.sub(r"[^a-z]", "", str(key).lower()))
        if name is None or name in out or isinstance(value, (dict, list)) or value is None:
            continue
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


# ------------------------------------------------------------------------------------------------- capital, continent


def fold(text: str) -> str:
    """Accents removed (NFKD minus combining marks, plus a few letters NFKD keeps), case folded."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    table: dict[str, str | int | None] = {
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ı": "i",
    }
    return text.translate(str.maketrans(table)).casefold()


_SAINTS = {"st": "saint", "ste": "sainte"}


def normalize_name(text: str) -> str:
    """A place name reduced for comparison: folded, apostrophes and dots dropped, other punctuation to spaces,
    ``St``/``Ste`` spelled out, whitespace collapsed."""
    text = fold(text)
    text = re.sub(r"['’‘`ʻʼ´.]", "", text)
    text = re.sub(r"[^0-9a-z]+", " ", text)
    return " ".join(_SAINTS.get(w, w) for w in text.split())


def _without_city(name: str) -> str:
    name = re.sub(r"^city of ", "", name)
    name = re.sub(r" city$", "", name)
    return name


def capital_names(truth: str) -> set[str]:
    """Normalised names accepted for the capital ``truth`` (with and without a ``City`` suffix or prefix)."""
    key = normalize_name(truth)
    names = {truth}
    for canonical, alternatives in CAPITAL_ALTERNATIVES.items():
        if normalize_name(canonical) == key:
            names.update(alternatives)
    normalized = {normalize_name(n) for n in names}
    return normalized | {_without_city(n) for n in normalized}


def capital_correct(answer: str, truth: str) -> bool:
    """Whether ``answer`` names the capital ``truth`` (normalised, alternatives accepted)."""
    given = normalize_name(answer)
    if not given:
        return False
    return given in capital_names(truth) or _without_city(given) in capital_names(truth)


def continents_of(answer: str) -> tuple[str, ...]:
    """The ground-truth continents a continent answer may stand for (empty when it names none)."""
    name = normalize_name(re.sub(r"\(.*?\)", " ", answer).replace("&", " and "))
    name = re.sub(r"^the ", "", name) if name not in CONTINENT_ALIASES else name
    if name in CONTINENT_ALIASES:
        return CONTINENT_ALIASES[name]
    region = _REGION_PREFIX.match(name)
    return CONTINENT_ALIASES[region.group(1)] if region else ()


def continent_correct(answer: str, truth: str) -> bool:
    """Whether ``answer`` names ``truth`` (one of :data:`CONTINENTS`), under any naming scheme."""
    return truth in continents_of(answer)


# ------------------------------------------------------------------------------------------------------ coordinates

_NUMBER = r"[-+−–]?\s*\d+(?:\.\d*)?|[-+−–]?\s*\.\d+"
_HEMI_WORDS = {"north": "N", "south": "S", "east": "E", "west": "W", "n": "N", "s": "S", "e": "E", "w": "W"}
_DEG = "°º˚"
_MIN = "'′’‘`"
_SEC = '"″”“'


def parse_coordinate(text: str, axis: str) -> float | None:
    """Signed decimal degrees of a latitude (``axis="latitude"``) or longitude written by a model, or ``None``.

    Accepts ``-34.61``, ``34.61S``, ``34.61 ° S``, ``S34.61``, ``34.61 South``, ``24°17'N``, ``24°17'30"N``,
    ``24 17 30 N``, ``24,28 N``; with both a sign and a hemisphere letter the letter decides. A hemisphere of the
    other axis, several contradicting letters, or a value out of range gives ``None``.
    """
    positive, negative = HEMISPHERES[axis]
    limit = 90.0 if axis == "latitude" else 180.0
    s = fold(str(text)).strip()
    s = re.sub(r"\bdeg(?:rees?)?\b", "°", s)
    s = re.sub(r"^(-?\d+),(\d+)(?=\D*$)", r"\1.\2", s)  # a lone decimal comma: "24,28 N"
    letters = [_HEMI_WORDS[w] for w in re.findall(r"(?<![a-z])(north|south|east|west|n|s|e|w)(?![a-z])", s)]
    if len(set(letters)) > 1:
        return None
    letter = letters[0].upper() if letters else None
    if letter is not None and letter not in (positive, negative):
        return None  # a latitude given as east/west, or the reverse
    numbers = [m.group(0) for m in re.finditer(_NUMBER, s)]
    if not numbers or len(numbers) > 3:
        return None
    parts = [float(re.sub(r"\s+", "", n).replace("−", "-").replace("–", "-")) for n in numbers]
    if any(p < 0 for p in parts[1:]):
        return None  # "24-17" or a second signed number: not one coordinate
    negative_sign = math.copysign(1.0, parts[0]) < 0
    value = abs(parts[0])
    if len(parts) > 1:  # degrees, minutes[, seconds]
        if any(p < 0 or p >= 60 for p in parts[1:]) or value != int(value):
            return None
        value += parts[1] / 60.0 + (parts[2] / 3600.0 if len(parts) > 2 else 0.0)
    if letter is not None:
        value = value if letter == positive else -value
    elif negative_sign:
        value = -value
    if not math.isfinite(value) or abs(value) > limit:
        return None
    return value


def coordinate_error(answer: float, truth: float, axis: str) -> float:
    """Absolute difference in degrees; longitudes measured the short way around (179E vs 179W is 2 degrees)."""
    diff = abs(answer - truth)
    return min(diff, 360.0 - diff) if axis == "longitude" else diff


# ----------------------------------------------------------------------------------------------------------- grade


def weighted_score(correct: Mapping[str, bool]) -> float:
    """(10 capital + 10 continent + 25 latitude + 25 longitude) / 70, the seed's auction value in [0, 1]."""
    return sum(SCORE_WEIGHTS[f] * int(bool(correct[f])) for f in FIELDS) / sum(SCORE_WEIGHTS.values())


def grade_capitals(
    reply: str,
    capital: str,
    continent: str,
    latitude: float,
    longitude: float,
    tolerance_deg: float = DEFAULT_TOLERANCE_DEG,
) -> CapitalsGrade:
    """Grade one reply against the ground truth (``latitude``/``longitude`` in signed degrees)."""
    if tolerance_deg < 0:
        raise ValueError(f"tolerance_deg must be >= 0, got {tolerance_deg}")
    obj = extract_json(reply)
    if obj is None:
        return CapitalsGrade(
            correct=dict.fromkeys(FIELDS, False),
            score=0.0,
            parse_ok=False,
            values={},
            error_deg={"latitude": None, "longitude": None},
        )
    values = answer_fields(obj)
    correct = {
        "capital": capital_correct(values.get("capital", ""), capital),
        "continent": continent_correct(values.get("continent", ""), continent),
    }
    errors: dict[str, float | None] = {}
    for axis, truth in (("latitude", latitude), ("longitude", longitude)):
        parsed = parse_coordinate(values.get(axis, ""), axis)
        error = None if parsed is None else coordinate_error(parsed, float(truth), axis)
        errors[axis] = error
        correct[axis] = error is not None and error <= tolerance_deg + 1e-9
    correct = {f: correct[f] for f in FIELDS}
    return CapitalsGrade(correct=correct, score=weighted_score(correct), parse_ok=True, values=values, error_deg=errors)


__all__ = [
    "CAPITAL_ALTERNATIVES",
    "CONTINENTS",
    "CONTINENT_ALIASES",
    "DEFAULT_TOLERANCE_DEG",
    "CapitalsGrade",
    "extract_json",
    "answer_fields",
    "normalize_name",
    "capital_correct",
    "continents_of",
    "continent_correct",
    "parse_coordinate",
    "coordinate_error",
    "weighted_score",
    "grade_capitals",
]
