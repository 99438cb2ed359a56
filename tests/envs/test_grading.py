"""The capitals grader is right where seed 001's was wrong: hemispheres, degree formats, accents, continent names,
alternative capital names, JSON wrapped in text; and an unparseable reply scores 0."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envs.data import make_capitals as mc
from envs.data.grading import (
    CAPITAL_ALTERNATIVES,
    capital_correct,
    continent_correct,
    continents_of,
    extract_json,
    grade_capitals,
    normalize_name,
    parse_coordinate,
    weighted_score,
)

BUENOS_AIRES = dict(capital="Buenos Aires", continent="South America", latitude=-34.61, longitude=-58.38)


def reply(capital="Buenos Aires", continent="South America", latitude="34.61S", longitude="58.38W") -> str:
    return json.dumps(
        {"Capital City": capital, "Continent": continent, "Latitude": latitude, "Longitude": longitude},
        ensure_ascii=False,
    )


# ----------------------------------------------------------------------------------------------------- hemispheres


@pytest.mark.parametrize(
    "text, axis, value",
    [
        ("34.61S", "latitude", -34.61),
        ("-34.61", "latitude", -34.61),
        ("34.61 S", "latitude", -34.61),
        ("S 34.61", "latitude", -34.61),
        ("34.61 South", "latitude", -34.61),
        ("58.38W", "longitude", -58.38),
        ("-58.38", "longitude", -58.38),
        ("58.38 west", "longitude", -58.38),
        ("24.28 N", "latitude", 24.28),
        ("24.28N", "latitude", 24.28),
        ("24.28", "latitude", 24.28),
        ("+24.28", "latitude", 24.28),
        ("54.37E", "longitude", 54.37),
        ("−34.61", "latitude", -34.61),  # Unicode minus
        ("-58.38W", "longitude", -58.38),  # sign and letter agree
        ("58.38° W", "longitude", -58.38),
        ("24.28°N", "latitude", 24.28),
        ("24.28 ° N", "latitude", 24.28),
        ("24.28 degrees N", "latitude", 24.28),
        ("24°17'N", "latitude", 24 + 17 / 60),
        ("24° 17′ 30″ N", "latitude", 24 + 17 / 60 + 30 / 3600),
        ("34°36'S", "latitude", -(34 + 36 / 60)),
        ("24 17 30 N", "latitude", 24 + 17 / 60 + 30 / 3600),
        ("-0°13'", "latitude", -13 / 60),  # Quito: a negative zero degree keeps its sign
        ("24,28 N", "latitude", 24.28),
    ],
)
def test_coordinates_parse_with_their_hemisphere(text: str, axis: str, value: float) -> None:
    assert parse_coordinate(text, axis) == pytest.approx(value)


@pytest.mark.parametrize(
    "text, axis",
    [
        ("24.28E", "latitude"),  # the other axis's hemisphere
        ("54.37N", "longitude"),
        ("95N", "latitude"),  # out of range
        ("181W", "longitude"),
        ("24.28 N 54.37 E", "latitude"),  # two hemispheres
        ("north", "latitude"),
        ("", "latitude"),
        ("unknown", "longitude"),
        ("24°75'N", "latitude"),  # 75 minutes
    ],
)
def test_impossible_coordinates_do_not_parse(text: str, axis: str) -> None:
    assert parse_coordinate(text, axis) is None


def test_the_seeds_hemisphere_failures_are_graded_right() -> None:
    # The seed stripped "S"/"W" from the truth (34.61S -> 34.61), failing a correct signed answer ...
    signed = grade_capitals(reply(latitude="-34.61", longitude="-58.38"), **BUENOS_AIRES)
    assert signed.correct == {"capital": True, "continent": True, "latitude": True, "longitude": True}
    assert signed.score == 1.0
    # ... and accepting the mirror image in the wrong hemisphere.
    mirrored = grade_capitals(reply(latitude="34.61N", longitude="58.38E"), **BUENOS_AIRES)
    assert not mirrored.correct["latitude"] and not mirrored.correct["longitude"]
    assert mirrored.error_deg["latitude"] == pytest.approx(69.22)
    # The seed's letter-blind rule grades these the other way round.
    truth = {"capital": "Buenos Aires", "continent": "South America", "latitude": "34.61S", "longitude": "58.38W"}
    assert mc.seed_grade(reply(latitude="-34.61"), truth)["latitude"] is False
    assert mc.seed_grade(reply(latitude="34.61N"), truth)["latitude"] is True


def test_json_numbers_are_coordinates() -> None:
    text = '{"Capital City": "Buenos Aires", "Continent": "South America", "Latitude": -34.6, "Longitude": -58.4}'
    assert grade_capitals(text, **BUENOS_AIRES).score == 1.0


def test_tolerance_is_configurable_and_longitude_wraps() -> None:
    off = reply(latitude="35.5S", longitude="58.38W")  # 0.89 degrees off
    assert grade_capitals(off, **BUENOS_AIRES, tolerance_deg=1.0).correct["latitude"]
    assert not grade_capitals(off, **BUENOS_AIRES, tolerance_deg=0.5).correct["latitude"]
    assert not grade_capitals(reply(latitude="34.70S"), **BUENOS_AIRES, tolerance_deg=0.05).correct["latitude"]
    # Suva-like longitudes near the antimeridian: 179.9E is 0.6 degrees from 179.5W.
    fiji = dict(capital="Suva", continent="Oceania", latitude=-18.14, longitude=-179.5)
    g = grade_capitals(reply("Suva", "Oceania", "18.14S", "179.9E"), **fiji)
    assert g.correct["longitude"] and g.error_deg["longitude"] == pytest.approx(0.6)


@given(st.floats(-90, 90, allow_nan=False), st.sampled_from(["lettered", "signed", "degree"]))
def test_any_latitude_round_trips(value: float, style: str) -> None:
    if style == "lettered":
        text = mc.format_coordinate(value, "N", "S")
    elif style == "signed":
        text = f"{value:.2f}"
    else:
        text = f"{abs(value):.2f}°{'N' if value >= 0 else 'S'}"
    assert parse_coordinate(text, "latitude") == pytest.approx(round(value, 2), abs=0.006)


# ---------------------------------------------------------------------------------------------- capital, continent


@pytest.mark.parametrize(
    "answer, truth",
    [
        ("Bogota", "Bogotá"),
        ("BOGOTÁ", "Bogotá"),
        ("bogota", "Bogotá"),
        ("Brasilia", "Brasília"),
        ("Yaounde", "Yaoundé"),
        ("Chisinau", "Chișinău"),
        ("Sao Tome", "São Tomé"),
        ("Reykjavík", "Reykjavik"),
        ("Kiev", "Kyiv"),
        ("Washington, D.C.", "Washington D.C."),
        ("Washington DC", "Washington D.C."),
        ("Washington", "Washington D.C."),
        ("St. John's", "Saint John's"),
        ("Saint George's", "St. George's"),
        ("Ndjamena", "N'Djamena"),
        ("Port au Prince", "Port-au-Prince"),
        ("Port-of-Spain", "Port of Spain"),
        ("Kuwait", "Kuwait City"),
        ("San Marino", "City of San Marino"),
        ("Vatican", "Vatican City"),
        ("Ulan Bator", "Ulaanbaatar"),
        ("Nay Pyi Taw", "Naypyidaw"),
        ("Mbabane", "Lobamba"),
        ("Sanaa", "Sana'a"),
        ("  paris  ", "Paris"),
    ],
)
def test_capital_names_are_normalised(answer: str, truth: str) -> None:
    assert capital_correct(answer, truth)


@pytest.mark.parametrize(
    "answer, truth",
    [
        ("Sydney", "Canberra"),
        ("Nur-Sultan", "Astana"),  # a former name
        ("La Paz", "Sucre"),  # a seat of government, not the capital
        ("", "Paris"),
        ("Kyiv Oblast", "Kyiv"),
    ],
)
def test_wrong_capitals_stay_wrong(answer: str, truth: str) -> None:
    assert not capital_correct(answer, truth)


def test_alternative_table_keys_are_ground_truth_capitals() -> None:
    capitals = {normalize_name(c.capital) for c in mc.load_countries()}
    assert {normalize_name(k) for k in CAPITAL_ALTERNATIVES} <= capitals


@pytest.mark.parametrize(
    "answer, truth",
    [
        ("Americas", "South America"),
        ("Americas", "North America"),
        ("The Americas", "South America"),
        ("America", "North America"),
        ("Latin America", "South America"),
        ("Central America", "North America"),
        ("Caribbean", "North America"),
        ("north america", "North America"),
        ("SOUTH AMERICA", "South America"),
        ("Australia", "Oceania"),
        ("Australia/Oceania", "Oceania"),
        ("Western Europe", "Europe"),
        ("Southeast Asia", "Asia"),
        ("Sub-Saharan Africa", "Africa"),
        ("Asia (Middle East)", "Asia"),
    ],
)
def test_continent_naming_schemes_map(answer: str, truth: str) -> None:
    assert continent_correct(answer, truth)


@pytest.mark.parametrize(
    "answer, truth",
    [
        ("North America", "South America"),
        ("South America", "North America"),
        ("Europe", "Asia"),
        ("Middle East", "Asia"),
        ("Antarctica", "Oceania"),
    ],
)
def test_wrong_continents_stay_wrong(answer: str, truth: str) -> None:
    assert not continent_correct(answer, truth)
    assert continents_of("Americas") == ("North America", "South America")


# ---------------------------------------------------------------------------------------------------- reply parsing


def test_json_wrapped_in_text_and_fences_is_found() -> None:
    text = "Sure! Here is the data:\n```json\n" + reply(continent="Americas") + "\n```\nHope this helps {really}."
    g = grade_capitals(text, **BUENOS_AIRES)
    assert g.parse_ok and g.score == 1.0
    assert g.values["continent"] == "Americas"


def test_lenient_json_forms() -> None:
    trailing = (
        '{"Capital City": "Buenos Aires", "Continent": "South America", "Latitude": "34.61S", "Longitude": "58.38W",}'
    )
    python = "{'capital': 'Buenos Aires', 'continent': 'South America', 'lat': '34.61 S', 'lon': '58.38 W'}"
    for text in (trailing, python):
        assert grade_capitals(text, **BUENOS_AIRES).score == 1.0
    assert extract_json("{'Capital City': \"N'Djamena\"}") == {"Capital City": "N'Djamena"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I cannot help with that.",
        "{not json at all",
        "Capital: Buenos Aires",
        "[1, 2, 3]",
        "ÿ" * 50 + "{" * 30,
    ],
)
def test_unparseable_replies_score_zero(text: str) -> None:
    g = grade_capitals(text, **BUENOS_AIRES)
    assert not g.parse_ok and g.score == 0.0
    assert g.correct == {"capital": False, "continent": False, "latitude": False, "longitude": False}


def test_partial_answers_score_by_field_weights() -> None:
    g = grade_capitals(reply(latitude="10N", longitude="10E"), **BUENOS_AIRES)
    assert g.correct == {"capital": True, "continent": True, "latitude": False, "longitude": False}
    assert g.score == pytest.approx(20 / 70)
    assert weighted_score({"capital": False, "continent": False, "latitude": True, "longitude": True}) == 50 / 70
    missing = grade_capitals('{"Capital City": "Buenos Aires"}', **BUENOS_AIRES)
    assert missing.parse_ok and missing.score == pytest.approx(10 / 70)


def test_the_calibrated_caches_right_answers_grade_right() -> None:
    """Every field the seed's grader counted right in the embedded cache is right under the new grader too."""
    from envs.data.cache import load_cache

    cache = load_cache(mc.DEFAULT_OUT)
    for q in range(cache.n_queries):
        truth = {k: cache.context[k][q] for k in ("capital", "continent", "latitude", "longitude")}
        for m in range(len(cache.models)):
            g = grade_capitals(
                cache.extra["answer"][q, m],
                truth["capital"],
                truth["continent"],
                float(truth["latitude"]),
                float(truth["longitude"]),
            )
            assert g.parse_ok
            for f in mc.FIELDS:
                if cache.extra[f"correct_{f}"][q, m] == "1":
                    assert g.correct[f], (cache.query_ids[q], f, cache.extra["answer"][q, m])
