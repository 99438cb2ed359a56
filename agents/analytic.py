"""Analytic benchmarks of MECHANISMS.md §8 and how to read a policy's bid function off the market.

The reverse first-price auction with n bidders, costs i.i.d. U[0, c_max] and a value that never binds has the
symmetric Bayes-Nash equilibrium b(c) = c + (c_max - c) / n; under second price bidding the cost is dominant.
"""

from __future__ import annotations

import numpy as np

from agents.policy import Policy
from envs.layout import BID
from envs.market import raw_env


def bne_bid(cost: np.ndarray, n: int, c_max: float = 1.0) -> np.ndarray:
    """Equilibrium bid of the reverse first-price auction with uniform costs (MECHANISMS.md §8)."""
    cost = np.asarray(cost, dtype=float)
    return cost + (c_max - cost) / n


def first_price_profit(bid: np.ndarray, cost: np.ndarray, n: int, c_max: float = 1.0) -> np.ndarray:
    """Expected profit per round of asking ``bid`` at ``cost`` in the reverse first-price auction when the n - 1 others
    play the equilibrium ``bne_bid`` (MECHANISMS.md §8): (bid - cost) * P(every other ask is higher).

    An other's ask exceeds b exactly when its cost exceeds (n b - c_max) / (n - 1), which happens with probability
    1 - that / c_max (clipped to [0, 1]); asking ``bne_bid(cost)`` maximises this at every cost.
    """
    bid, cost = np.asarray(bid, dtype=float), np.asarray(cost, dtype=float)
    beaten = np.clip(1.0 - (n * bid - c_max) / ((n - 1) * c_max), 0.0, 1.0)
    return (bid - cost) * beaten ** (n - 1)


def bid_function(
    policy: Policy, market: raw_env, agent: str, costs: np.ndarray, seed: int = 0, n_states: int = 32
) -> np.ndarray:
    """The ask ``policy`` makes at each cost in ``costs``, averaged over ``n_states`` real market states.

    States (context, public signals, time left) are sampled from a truthful rollout; in each, only the agent's own
    expected cost of its declared model is replaced by the grid value, which is what the policy bids on.
    """
    lay = market.layout
    obs, _ = market.reset(seed=seed)
    states = []
    zero = {a: np.zeros(3, dtype=np.float32) for a in market.possible_agents}
    for _ in range(n_states):
        states.append(obs[agent].copy())
        obs, *_ = market.step(zero)
        if not market.agents:
            obs, _ = market.reset()
    state_array = np.array(states)  # [S, D]
    declared = int(state_array[0, lay.declared].argmax())
    grid = np.repeat(state_array[None], len(costs), axis=0)  # [C, S, D]
    grid[:, :, lay.expected_cost.start + declared] = (np.asarray(costs) / lay.value_scale)[:, None]
    flat = grid.reshape(-1, lay.size)
    asks = lay.decode_asks(policy.act(flat)[:, BID], lay.honest_ask(flat)).reshape(len(costs), n_states)
    return asks.mean(axis=1)
