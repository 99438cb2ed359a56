"""Bad input sweep of the market: NaN and infinities in every float setting (every scenario field, every parameter of
every mechanism, found from their annotations), values of the wrong type, ``KEY=VALUE`` pairs parsed as YAML 1.2,
and malformed actions into the PettingZoo, AEC, batched and single-agent envs.

Each case asserts the error type and a message that names the field, parameter, file or agent and what was expected.
(The data layer's files have their own sweep: ``test_data_bad_input.py``.) Cases are data: add a line to a table.
"""

from __future__ import annotations

import math
import re
import typing

import numpy as np
import pytest

import mechanisms
from ecosystem import SingleAgentMarket
from envs import env as aec_env
from envs import load_scenario, make_batched, parallel_env
from envs.config import ConfigError, dump_yaml, parse_overrides, parse_yaml
from envs.scenarios import SCENARIO_DIR, ScenarioConfig
from tests.envs.test_data_bad_input import snapshot

NON_FINITE = [pytest.param(v, id=str(v)) for v in (math.nan, math.inf, -math.inf)]


def accepts_float(hint) -> bool:
    return hint is float or float in typing.get_args(hint)


MECHANISM_FLOATS = [
    pytest.param(name, key, id=f"{name}.{key}")
    for name, cls in mechanisms.REGISTRY.items()
    for key, hint in typing.get_type_hints(cls.__init__).items()
    if accepts_float(hint)
]
SCENARIO_FLOATS = [
    pytest.param(key, id=key) for key, hint in typing.get_type_hints(ScenarioConfig).items() if accepts_float(hint)
]


def test_the_tables_cover_every_float_setting():
    assert len(MECHANISM_FLOATS) >= 19 and len(SCENARIO_FLOATS) >= 7
    assert {p.values[1] for p in MECHANISM_FLOATS} >= {"reserve", "exploration", "temperature", "mu", "prior_weight"}


# ------------------------------------------------------------------------------------------ mechanism parameters


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("name, key", MECHANISM_FLOATS)
def test_non_finite_mechanism_parameters_are_refused_by_make(name, key, value):
    with pytest.raises(ValueError, match=rf"mechanism '{name}': parameter '{key}': expected a finite number"):
        mechanisms.make(name, **{key: value})


@pytest.mark.parametrize(
    "name, params, pattern",
    [
        pytest.param(
            "soft_rochet",
            {"weights": [1.0, math.inf]},
            "'weights': expected a list, each a finite number",
            id="weights-inf",
        ),
        pytest.param("soft_rochet", {"weights": [1.0, "a"]}, "'weights': expected a list", id="weights-string"),
        pytest.param("soft_rochet", {"weights": np.array([1.0, np.nan])}, "'weights'", id="weights-array-nan"),
        pytest.param(
            "ucb_myerson", {"reserve": "high"}, "'reserve': expected a finite number or null", id="reserve-word"
        ),
        pytest.param("ucb_myerson", {"reserve": True}, "'reserve': expected a finite number", id="reserve-bool"),
        pytest.param("ucb_myerson", {"bins": 2.5}, "'bins': expected an integer", id="bins-float"),
        pytest.param("ucb_myerson", {"ironed": "no"}, "'ironed': expected true or false", id="ironed-word"),
        pytest.param("ucb_myerson", {"payment": "cheapest"}, "'payment': expected one of", id="payment-unknown"),
        pytest.param("first_price", {"quality": "trusted"}, "'quality': expected one of", id="quality-unknown"),
        pytest.param("second_best", {"T": 1e6}, "'T': expected an integer or null", id="T-float"),
        pytest.param(
            "rosa",
            {"allocation": 3},
            "'allocation': expected a string or an instance of Allocation",
            id="allocation-int",
        ),
        pytest.param("myerson", {"support_cap": 1}, "'support_cap': expected true or false", id="support-cap-int"),
        pytest.param("first_price", {"reserve": 1.0}, r"unknown parameter\(s\) \['reserve'\]", id="unknown-parameter"),
    ],
)
def test_mechanism_parameters_of_the_wrong_type_are_refused(name, params, pattern):
    with pytest.raises(ValueError, match=rf"mechanism '{name}': .*{pattern}"):
        mechanisms.make(name, **params)


@pytest.mark.parametrize(
    "mechanism, key, value, spelled",
    [
        pytest.param("ucb_myerson", "reserve", math.nan, "nan", id="reserve-nan"),
        pytest.param("soft_rochet", "temperature", math.inf, "inf", id="temperature-inf"),
        pytest.param("rosa", "cbar", -math.inf, "-inf", id="cbar-neg-inf"),
    ],
)
def test_mechanism_keywords_of_the_env_name_the_override(mechanism, key, value, spelled):
    with pytest.raises(ConfigError, match=rf"override {key}={spelled}: mechanism '{mechanism}': parameter '{key}'"):
        parallel_env("uniform", mechanism, **{key: value})


# --------------------------------------------------------------------------------------------- scenario fields


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("key", SCENARIO_FLOATS)
def test_non_finite_scenario_fields_are_refused(key, value):
    with pytest.raises(ConfigError, match=rf"override {key}={value}: field '{key}': expected a finite number"):
        parallel_env("uniform", "first_price", **{key: value})


PRESET = (SCENARIO_DIR / "uniform.yaml").read_text()


@pytest.mark.parametrize(
    "text, pattern",
    [
        pytest.param(
            PRESET.replace("bid_scale: 1.0", "bid_scale: .nan"),
            "field 'bid_scale': expected a finite number",
            id="bid_scale-nan",
        ),
        pytest.param(
            PRESET.replace("value_scale: 1.0", "value_scale: -.inf"), "field 'value_scale'", id="value_scale-neg-inf"
        ),
        pytest.param(
            PRESET.replace("{ideal: 1.0}", "{ideal: .inf}"),
            r"'providers'\[0\]: field 'cost_per_token'\.ideal",
            id="provider-cost-inf",
        ),
        pytest.param(
            PRESET.replace("horizon: 256", "horizon: 2.5e2"), "field 'horizon': expected an integer", id="horizon-float"
        ),
        pytest.param(
            PRESET.replace("cost_high: 1.0", "cost_high: 1e-3\ncost_low: 0.5"),
            "'cost_low' <= 'cost_high'",
            id="cost-range-reversed",
        ),
        pytest.param(PRESET + "price: 3\n", r"unknown field\(s\) \['price'\]", id="unknown-field"),
    ],
)
def test_a_scenario_file_names_itself_and_the_field(tmp_path, text, pattern):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=rf"mine\.yaml: .*{pattern}"):
        load_scenario(path)
    assert snapshot(tmp_path) == before


def test_an_override_is_blamed_not_the_preset_it_breaks():
    with pytest.raises(ConfigError) as err:
        load_scenario("uniform", {"cost_low": 2.0})
    assert str(err.value).startswith("override cost_low=2.0: ") and "uniform.yaml" not in str(err.value)


# ---------------------------------------------------------------------------------------------- YAML 1.2 values


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-3", 1e-3),
        ("1E5", 1e5),
        (".5", 0.5),
        ("-2e-1", -0.2),
        ("+1.5e+2", 150.0),
        ("3.", 3.0),
        ("7", 7),
        ("-7", -7),
        ("017", 17),
        ("0o17", 15),
        ("0x1F", 31),
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        ("true", True),
        ("False", False),
        ("null", None),
        ("~", None),
        ("", None),
        ("yes", "yes"),
        ("on", "on"),
        ("1_000", "1_000"),
        ("2024-01-01", "2024-01-01"),
        ("nan", "nan"),
        ("0b11", "0b11"),
        ("[1e-3, .5]", [1e-3, 0.5]),
    ],
)
def test_set_values_are_yaml_1_2_scalars(text, value):
    assert parse_overrides([f"x={text}"]) == {"x": value}


def test_set_nan_is_yaml_nan():
    assert math.isnan(parse_overrides(["x=.nan"])["x"])


@pytest.mark.parametrize("value", ["1e3", "yes", "on", "017", "0o7", "2024-01-01", ".5", "null", "True", "1_0"])
def test_strings_that_look_like_other_types_survive_a_round_trip(value):
    assert parse_yaml(dump_yaml({"v": value})) == {"v": value}


@pytest.mark.parametrize(
    "item",
    [
        pytest.param("x=!!python/object/apply:os.system ['true']", id="python-tag"),
        pytest.param("x=[1, 2", id="unclosed"),
        pytest.param("x={a: 1", id="unclosed-mapping"),
        pytest.param("x=a: b: c", id="nested-mapping"),
    ],
)
def test_unparsable_set_values_name_the_pair(item):
    with pytest.raises(ConfigError, match=rf"--set {re.escape(repr(item))}: cannot parse the value"):
        parse_overrides([item])


# ------------------------------------------------------------------------------------------------------ actions

OK = [0.0, 0.0, 0.0]
NUMBERS = "must be 3 numbers"
SHAPE = r"must have shape \(3,\)"
NOT_FINITE = "contains NaN or inf"
ACTION_CASES = [
    pytest.param([math.nan, 0, 0], NOT_FINITE, id="nan"),
    pytest.param([0, math.inf, 0], NOT_FINITE, id="inf"),
    pytest.param([0, 0, -math.inf], NOT_FINITE, id="neg-inf"),
    pytest.param(np.array([np.nan, 0, 0], dtype=np.float32), NOT_FINITE, id="float32-nan"),
    pytest.param([0, 0], SHAPE, id="too-short"),
    pytest.param([0, 0, 0, 0], SHAPE, id="too-long"),
    pytest.param([], SHAPE, id="empty"),
    pytest.param([[0, 0, 0]], SHAPE, id="nested"),
    pytest.param(np.zeros((1, 3)), SHAPE, id="2d-array"),
    pytest.param(0.0, SHAPE, id="scalar"),
    pytest.param("abc", NUMBERS, id="string"),
    pytest.param(["a", "b", "c"], NUMBERS, id="strings"),
    pytest.param(["1", "2", "3"], NUMBERS, id="numeric-strings"),
    pytest.param(np.array(["1", "2", "3"]), NUMBERS, id="string-array"),
    pytest.param(None, NUMBERS, id="none"),
    pytest.param([None, 0, 0], NUMBERS, id="none-inside"),
    pytest.param({"bid": 0}, NUMBERS, id="mapping"),
    pytest.param([1j, 0, 0], NUMBERS, id="complex"),
    pytest.param(np.array([object(), 0, 0], dtype=object), NUMBERS, id="object-array"),
]


@pytest.mark.parametrize("action, pattern", ACTION_CASES)
def test_malformed_actions_name_the_agent(action, pattern):
    market = parallel_env("capitals", seed=0)
    market.reset()
    with pytest.raises(ValueError, match=rf"^provider_1: action {pattern}"):
        market.step({"provider_0": OK, "provider_1": action})


@pytest.mark.parametrize(
    "actions, pattern",
    [
        pytest.param([OK, OK], "actions must be a dict of agent -> action", id="a-list"),
        pytest.param(None, "actions must be a dict of agent -> action", id="none"),
        pytest.param({"provider_0": OK}, r"missing action\(s\) for \['provider_1'\]", id="missing-agent"),
        pytest.param(
            {"provider_0": OK, "provider_1": OK, "mallory": OK}, r"unknown agent\(s\) \['mallory'\]", id="unknown-agent"
        ),
        pytest.param({0: OK, 1: OK}, r"unknown agent\(s\) \[0, 1\]", id="int-keys"),
    ],
)
def test_malformed_joint_actions_say_what_is_expected(actions, pattern):
    market = parallel_env("capitals", seed=0)
    market.reset()
    with pytest.raises(ValueError, match=pattern):
        market.step(actions)


@pytest.mark.parametrize("action", [pytest.param([1.5, 0, 0], id="above"), pytest.param([0, -1.01, 0], id="below")])
def test_out_of_bounds_actions_are_refused_in_strict_mode(action):
    market = parallel_env("capitals", seed=0, action_mode="strict")
    market.reset()
    with pytest.raises(ValueError, match=r"provider_0: action .* outside \[-1, 1\] \(action_mode='strict'"):
        market.step({"provider_0": action, "provider_1": OK})


def joint(market: int, provider: int, value: float) -> np.ndarray:
    """Honest joint actions of 2 markets x 2 providers but one entry."""
    actions = np.zeros((2, 2, 3))
    actions[market, provider, 1] = value
    return actions


@pytest.mark.parametrize(
    "actions, pattern",
    [
        pytest.param(np.zeros((2, 2, 2)), r"joint actions must have shape \(2, 2, 3\)", id="shape"),
        pytest.param(np.full((2, 2, 3), "a"), "joint actions must be numbers", id="strings"),
        pytest.param(np.full((2, 2, 3), None), "joint actions must be numbers", id="objects"),
        pytest.param(
            [[[0, 0, 0], [0, 0]], [[0, 0, 0], [0, 0, 0]]],
            r"must be an array of numbers of shape \(2, 2, 3\)",
            id="ragged",
        ),
        pytest.param(joint(0, 0, np.nan), "market 0, provider_0: action contains NaN or inf", id="nan"),
        pytest.param(
            joint(1, 1, -np.inf), "market 1, provider_1: action contains NaN or inf", id="inf-in-the-last-market"
        ),
    ],
)
def test_malformed_batched_actions_name_market_and_provider(actions, pattern):
    market = make_batched("capitals", "first_price", 2)
    market.reset()
    with pytest.raises(ValueError, match=pattern):
        market.step(actions)


def test_out_of_bounds_batched_actions_are_refused_in_strict_mode():
    market = make_batched("capitals", "first_price", 2, action_mode="strict")
    market.reset()
    with pytest.raises(ValueError, match=r"market 1, provider_0: action .* outside \[-1, 1\]"):
        market.step(joint(1, 0, 2.0))


@pytest.mark.parametrize(
    "action, pattern",
    [
        pytest.param(np.array([np.nan, 0, 0]), NOT_FINITE, id="nan"),
        pytest.param(np.zeros(2), SHAPE, id="too-short"),
        pytest.param("abc", NUMBERS, id="string"),
    ],
)
def test_malformed_aec_actions_name_the_agent(action, pattern):
    market = aec_env("capitals", seed=0)
    market.reset()
    market.step(np.zeros(3))  # provider_0 acts, the round resolves when provider_1 does
    with pytest.raises(ValueError, match=rf"provider_1: action {pattern}"):
        market.step(action)


@pytest.mark.parametrize(
    "action, pattern",
    [
        pytest.param([np.nan, 0, 0], NOT_FINITE, id="nan"),
        pytest.param(np.zeros(4), SHAPE, id="too-long"),
        pytest.param(None, NUMBERS, id="none"),
        pytest.param("abc", NUMBERS, id="string"),
    ],
)
def test_malformed_single_agent_actions_name_the_learner(action, pattern):
    market = SingleAgentMarket(scenario="uniform", mechanism="first_price", opponents="truthful", n_providers=2)
    market.reset(seed=0)
    with pytest.raises(ValueError, match=rf"provider_0: action {pattern}"):
        market.step(action)
