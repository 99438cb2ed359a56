"""The market env: PettingZoo API conformance, determinism, accounting of MECHANISMS.md §1, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pettingzoo.test import api_test

from agents import act_all, make_strategy
from envs import ConfigError, env, parallel_env
from envs.data import CacheError
from mechanisms.first_price import FirstPrice


def play(market, strategy="markup", steps=None):
    """Run one episode with a scripted profile; yield (obs, rewards, infos) per round."""
    policies = {a: make_strategy(strategy, market.layout, seed=k) for k, a in enumerate(market.possible_agents)}
    obs, _ = market.reset()
    while market.agents:
        obs, rewards, _, _, infos = market.step(act_all(policies, obs))
        yield obs, rewards, infos


@pytest.mark.filterwarnings("ignore:Agent.s (minimum|maximum) observation space value")
def test_aec_api():
    api_test(env("capitals", "second_price", seed=0, horizon=50), num_cycles=200)


def test_spaces_identical_and_stable():
    market = parallel_env("capitals", seed=0)
    spaces = {id(market.action_space(a)) for a in market.possible_agents}
    assert len(spaces) == 1 and market.action_space("provider_0") is market.action_space("provider_0")
    assert market.observation_space("provider_0") is market.observation_space("provider_1")
    assert market.layout.size == market.observation_space("provider_0").shape[0]
    with pytest.raises(ValueError, match="unknown agent 'provider_9'"):
        market.action_space("provider_9")


def trajectory(seed, steps=1200):
    market = parallel_env("capitals", "ucb_myerson", seed=seed, horizon=400)
    policies = {a: make_strategy("random", market.layout, seed=k) for k, a in enumerate(market.possible_agents)}
    obs, _ = market.reset(seed=seed)
    out = []
    for _ in range(steps):
        obs, rewards, _, _, infos = market.step(act_all(policies, obs))
        out.append((obs, rewards, infos))
        if not market.agents:
            obs, _ = market.reset()
    return out


def test_determinism_over_many_steps():
    a, b, c = trajectory(7), trajectory(7), trajectory(8)

    def same(x, y):
        return all(
            all(np.array_equal(x_obs[k], y_obs[k]) for k in x_obs) and x_rew == y_rew and x_inf == y_inf
            for (x_obs, x_rew, x_inf), (y_obs, y_rew, y_inf) in zip(x, y)
        )

    assert len(a) == 1200 and same(a, b)
    assert not same(a, c)


def test_honest_action_is_exact_and_accounting_holds():
    market = parallel_env("capitals", "second_price", seed=3)
    cfg = market.config
    for _, rewards, infos in play(market, "truthful"):
        m = infos["provider_0"]["market"]
        for a, info in infos.items():
            assert info["bid"] == info["honest_bid"] and not info["substituted"] and info["inflation"] == 0.0
            if info["won"]:
                assert info["served"] == info["declared"]
                assert info["reported_tokens"] == info["true_tokens"]
                assert rewards[a] == pytest.approx(cfg.eta * info["payment"] - info["cost"])
            else:
                assert rewards[a] == 0.0
        if not m["unserved"]:
            assert m["user_utility"] == pytest.approx(m["value"] - m["payment"])
            assert m["welfare"] == pytest.approx(m["value"] - m["cost"])
            assert m["value"] == pytest.approx(cfg.value_scale * m["score"])
            assert m["welfare"] <= m["best_welfare"] + 1e-9


@pytest.mark.parametrize("billing", ["per_query", "per_token"])
def test_the_bid_codec_has_no_flat_region_and_inverts(billing):
    """a[0] >= 0 marks the honest ask up by a[0] * ask_scale; a[0] < 0 asks the fraction 10^(3 a[0]) of it: strictly
    increasing over the whole box (no interval of actions asks the same), a tenth at -1/3, a thousandth at -1, and
    ``bid_action`` inverts it. The market decodes by the same rule."""
    market = parallel_env("capitals", "first_price", seed=2, billing=billing)
    lay = market.layout
    obs, _ = market.reset()
    honest = np.array([float(lay.honest_ask(obs[a])) for a in market.possible_agents])
    a = np.linspace(-1.0, 1.0, 601)
    asks = lay.decode_asks(a[:, None], honest[None, :])
    assert np.all(np.diff(asks, axis=0) > 0)
    np.testing.assert_allclose(asks[[0, 200, 300, 600]], [honest / 1000, honest / 10, honest, honest + lay.ask_scale])
    for i, agent in enumerate(market.possible_agents):
        np.testing.assert_allclose(lay.bid_action(obs[agent], asks[:, i]), a, atol=1e-12)
    assert lay.bid_action(obs["provider_0"], 0.0) == -np.inf  # unreachable: clipped to -1 by whoever acts on it
    assert lay.bid_action(obs["provider_0"], 0.0, np.float64(0.0)) == 0.0  # an honest ask of 0: a markup of 0
    actions = {agent: np.array([-1 / 3, 0.0, 0.0], dtype=np.float32) for agent in market.possible_agents}
    market.step(actions)
    np.testing.assert_allclose(market.last_round.asks[0], honest / 10, rtol=1e-6)


class ListPriceFirstPrice(FirstPrice):
    """First-price allocation billed per reported token at list prices (MECHANISMS.md §1)."""

    name = "list_price_test"
    billing = "list_price"


def test_list_price_billing_pays_for_reported_tokens():
    market = parallel_env("capitals", ListPriceFirstPrice(), seed=1, max_inflation=0.5)
    mk = market.market
    wins = 0
    for _, _, infos in play(market, "inflate"):
        for a, info in infos.items():
            if not info["won"]:
                continue
            wins += 1
            i = market.possible_agents.index(a)
            q = info["market"]["query"]
            s = info["served"]
            tau_in, tau_out = mk.input_tokens[q, s], mk.output_tokens[q, s]
            reported = min(math.ceil(tau_out * 1.5), mk.max_output_tokens)
            assert info["true_tokens"] == tau_out and info["reported_tokens"] == reported
            assert info["payment"] == pytest.approx(mk.price_in[i] * tau_in + mk.price_out[i] * reported)
    assert wins > 0


@pytest.mark.parametrize("mechanism", ["first_price", "second_price"])
def test_per_token_billing_asks_a_price_per_output_token(mechanism):
    """billing: per_token: the ask is a price per output token, the mechanism ranks ask x expected output tokens of
    the declared model, and the user pays the price times the *reported* tokens (so padding pays)."""
    market = parallel_env("capitals", mechanism, seed=4, billing="per_token", max_inflation=0.5)
    lay = market.layout
    policies = {"provider_0": make_strategy("inflate", lay), "provider_1": make_strategy("truthful", lay)}
    obs, _ = market.reset()
    wins = 0
    while market.agents:
        exp_out = {a: float(lay.expected_output_tokens_declared(obs[a])) for a in obs}
        honest_ask = {a: float(lay.honest_ask(obs[a])) for a in obs}
        obs, _, _, _, infos = market.step(act_all(policies, obs))
        r = market.last_round
        for i, a in enumerate(market.possible_agents):
            assert r.asks[0, i] == pytest.approx(honest_ask[a])  # both ask the break-even price
            assert r.bids[0, i] == pytest.approx(r.asks[0, i] * max(exp_out[a], 1.0))
        m = infos["provider_0"]["market"]
        if m["winner"] >= 0:
            w = m["winner"]
            price = m["payment"] / infos[market.possible_agents[w]]["reported_tokens"]
            if mechanism == "first_price":
                assert price == pytest.approx(r.asks[0, w])
            else:
                assert price >= r.asks[0, w] - 1e-12
            wins += w == 0
    assert wins > 0


def test_substitution_serves_the_cheaper_model_at_its_cost():
    market = parallel_env("capitals", "first_price", seed=2)
    policies = {
        "provider_0": make_strategy("substitute", market.layout),
        "provider_1": make_strategy("truthful", market.layout),
    }
    obs, _ = market.reset()
    mk = market.market
    served = set()
    while market.agents:
        obs, _, _, _, infos = market.step(act_all(policies, obs))
        info = infos["provider_0"]
        assert info["substituted"] and mk.models[info["served"]] == "llama-3.2-1b-instruct"
        served.add(info["won"])
        if info["won"]:
            q, s = info["market"]["query"], mk.models.index("llama-3.2-1b-instruct")
            assert info["market"]["score"] == mk.score[q, s]
    assert served == {True, False}


@pytest.mark.parametrize(
    "bad, message",
    [
        ([np.nan, 0, 0], "NaN or inf"),
        ([np.inf, 0, 0], "NaN or inf"),
        ([0, 0], r"shape \(3,\)"),
        ([[0, 0, 0]], r"shape \(3,\)"),
    ],
)
def test_malformed_actions_are_rejected(bad, message):
    market = parallel_env("capitals", seed=0)
    market.reset()
    with pytest.raises(ValueError, match=message) as err:
        market.step({"provider_0": bad, "provider_1": [0, 0, 0]})
    assert "provider_0" in str(err.value)


def test_unknown_and_missing_agents_are_rejected():
    market = parallel_env("capitals", seed=0)
    market.reset()
    with pytest.raises(ValueError, match="unknown agent"):
        market.step({"provider_0": [0, 0, 0], "provider_1": [0, 0, 0], "mallory": [0, 0, 0]})
    with pytest.raises(ValueError, match=r"missing action.*provider_1"):
        market.step({"provider_0": [0, 0, 0]})


def test_out_of_range_actions_clip_or_raise_per_setting():
    clipped = parallel_env("uniform", "first_price", seed=0)
    clipped.reset()
    _, _, _, _, infos = clipped.step({"provider_0": [5.0, 0, 0], "provider_1": [0, 0, 0]})
    assert infos["provider_0"]["bid"] == pytest.approx(infos["provider_0"]["honest_bid"] + 1.0)
    strict = parallel_env("uniform", "first_price", seed=0, action_mode="strict")
    strict.reset()
    with pytest.raises(ValueError, match=r"provider_0.*outside"):
        strict.step({"provider_0": [5.0, 0, 0], "provider_1": [0, 0, 0]})


def test_bad_configs_name_the_field():
    with pytest.raises(ConfigError, match="unknown scenario 'nope'"):
        parallel_env("nope")
    with pytest.raises(ConfigError, match="value_scale"):
        parallel_env("capitals", value_scale=-1.0)
    with pytest.raises(ConfigError, match=r"'horizon'.*integer"):
        parallel_env("capitals", horizon="long")
    with pytest.raises(ValueError, match=r"unknown parameter.*'bogus'"):
        parallel_env("capitals", bogus=1)
    bad_provider = {"providers": [{"declared": "gpt-9", "cost_per_token": {"gpt-9": 1.0}}]}
    with pytest.raises(ConfigError, match="provider_0 names model 'gpt-9'"):
        parallel_env("capitals", **bad_provider)


def test_llama_scenario_without_data_location_says_what_to_set(monkeypatch):
    monkeypatch.delenv("LLM_ARENA_LLAMA_DIR", raising=False)
    with pytest.raises(CacheError, match="LLM_ARENA_LLAMA_DIR"):
        parallel_env("llama")


def test_llama_scenario_runs_on_real_results(llama_dir):
    market = parallel_env("llama", "second_price", seed=0, cache_dir=llama_dir, horizon=300)
    assert market.market.provenance == "real" and len(market.possible_agents) == 5
    winners = [infos["provider_0"]["market"]["winner"] for _, _, infos in play(market, "truthful")]
    assert len(set(winners)) >= 2  # several providers trade on real results


def test_overrides_change_the_market():
    market = parallel_env("uniform", "first_price", seed=0, n_providers=4)
    obs, _ = market.reset()
    assert len(obs) == 4 and market.layout.agent_id.stop - market.layout.agent_id.start == 4


def test_render_ansi_shows_the_round():
    market = parallel_env("capitals", "first_price", seed=0, render_mode="ansi")
    next(play(market, "truthful"))
    text = market.render()
    assert "provider_0" in text and "provider_1" in text and "user utility" in text


def test_memory_state_is_fixed_size():
    """Nothing in the env grows with steps (history lives in fixed arrays)."""
    market = parallel_env("capitals", "ucb_myerson", seed=0, horizon=10_000)
    gen = play(market, "markup")
    for _ in range(200):
        next(gen)
    sizes = {k: v.nbytes for k, v in vars(market.mechanism).items() if isinstance(v, np.ndarray)}
    for _ in range(2000):
        next(gen)
    assert sizes == {k: v.nbytes for k, v in vars(market.mechanism).items() if isinstance(v, np.ndarray)}
