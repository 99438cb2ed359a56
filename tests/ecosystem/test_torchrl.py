"""TorchRL's PettingZooWrapper on the parallel market: specs (observations, actions, the public state, the numeric flat
infos) and a rollout whose infos carry every provider's profit, payment and the round's winner.

TorchRL builds one tensor spec per info key from the reset infos and cannot hold a nested dict (``torch.as_tensor``
of the ``market`` dict fails), hence ``info_format="flat"``."""

from __future__ import annotations

import numpy as np
import pytest

torchrl = pytest.importorskip(
    "torchrl", reason="TorchRL is not installed (the optional extra: pip install torch==2.13.0 -e '.[torchrl]')"
)

import torch  # noqa: E402
from torchrl.envs.libs.pettingzoo import PettingZooWrapper  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

from envs import parallel_env  # noqa: E402

HORIZON = 12

# TorchRL says which PettingZoo version it was tested with whenever it wraps an env.
pytestmark = pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested using version:UserWarning")


def wrapped(**kw) -> PettingZooWrapper:
    market = parallel_env("uniform", "first_price", seed=0, n_providers=3, horizon=HORIZON, info_format="flat", **kw)
    return PettingZooWrapper(env=market, return_state=True, use_mask=False)


def test_specs_carry_observations_actions_state_and_numeric_infos():
    env = wrapped()
    market = env._env
    N, D, S = 3, market.layout.size, market.state_layout.size
    assert env.group_map == {"provider": market.possible_agents}
    obs_spec = env.observation_spec["provider"]
    assert obs_spec["observation"].shape == (N, D)
    action = env.full_action_spec["provider", "action"]
    assert action.shape == (N, 3)
    assert torch.equal(action.space.low, -torch.ones(N, 3)) and torch.equal(action.space.high, torch.ones(N, 3))
    assert env.observation_spec["state"].shape == (S,)
    _, infos = market.reset(seed=0)
    assert set(obs_spec["info"].keys()) == set(infos["provider_0"])  # every flat key, mechanism diagnostics too
    assert {"profit", "payment", "won", "market_winner", "market_payment"} <= set(obs_spec["info"].keys())
    check_env_specs(env)


def test_rollout_shows_profit_payment_and_winner():
    env = wrapped()
    steps = HORIZON + 4  # across an episode's end: the wrapper resets the market
    td = env.rollout(steps, break_when_any_done=False)
    nxt = td["next"]
    info = nxt["provider", "info"]
    reward = nxt["provider", "reward"].squeeze(-1)
    assert reward.shape == (steps, 3)
    torch.testing.assert_close(info["profit"], reward)
    winner = info["market_winner"][:, 0]
    assert (info["market_winner"] == winner[:, None]).all()  # the same round for every provider
    won = info["won"].bool()
    served = winner >= 0
    assert served.any()
    assert torch.equal(won[served], torch.nn.functional.one_hot(winner[served].long(), 3).bool())
    assert not won[~served].any()
    torch.testing.assert_close(info["payment"].sum(-1), info["market_payment"][:, 0])
    torch.testing.assert_close(info["payment"][won], info["bid"][won])  # first price: the winner is paid its bid
    # the public state after a round names its winner (unless the episode just ended: the wrapper has reset then)
    slay = env._env.state_layout
    state = nxt["state"]
    ended = nxt["done"].squeeze(-1)
    for t in np.flatnonzero(~ended.numpy()):
        expected = torch.zeros(3)
        if winner[t] >= 0:
            expected[int(winner[t])] = 1.0
        assert torch.equal(state[t, slay.last_winner], expected)
    assert int(ended.sum()) == 1 and bool(ended[HORIZON - 1])
