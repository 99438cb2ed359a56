"""One market of a batched mechanism, driven with scalar arguments: the tests' hand-made histories are written round by
round, as a single market's platform would see them.

``One(mech)`` forwards to the mechanism with E = 1: ``allocate(bids [N], context, group) -> (winner, payment)`` draws
the round's noise from ``self.rng`` (set it, or save and restore its state, to pair draws), ``update`` takes the
outcome's scalars, and the per-market state arrays are seen without their market axis.
"""

from __future__ import annotations

import numpy as np

from mechanisms.base import MarketInfo, Mechanism, Outcome

ONE_CONTEXT = np.ones(1)  # the default one-feature context (never written to)

STATE = ("hist", "n_bids", "wins", "value_sum", "resampled", "tops")


class One:
    def __init__(self, mech: Mechanism, info: MarketInfo | None = None, rng: np.random.Generator | None = None):
        self.mech = mech
        if info is not None:
            self.reset(info, rng if rng is not None else np.random.default_rng(0))

    def reset(self, info: MarketInfo, rng: np.random.Generator) -> None:
        self.rng = rng
        self.mech.reset(info, 1, [rng])

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "mech":  # copying and pickling look for dunders before __init__ ran
            raise AttributeError(name)
        value = getattr(self.mech, name)
        return value[0] if name in STATE and name != "tops" else value

    @staticmethod
    def _ctx(context) -> np.ndarray:
        return np.atleast_2d(np.asarray(context, dtype=float))

    def allocate(self, bids, context=ONE_CONTEXT, group: int = 0) -> tuple[int, float]:
        self.mech.rngs = [self.rng]  # the market's generator, for the coins a mechanism draws only on a tie
        noise = self.rng.random((1, self.mech.noise_dim))
        w, p = self.mech.allocate(np.asarray(bids, dtype=float)[None], self._ctx(context), np.array([group]), noise)
        return int(w[0]), float(p[0])

    def update(
        self,
        winner: int,
        score: float,
        input_tokens: int,
        reported: int,
        payment: float,
        context=ONE_CONTEXT,
        group: int = 0,
    ) -> None:
        self.mech.update(
            Outcome(
                np.array([winner]),
                np.array([float(score)]),
                np.array([input_tokens]),
                np.array([reported]),
                np.array([float(payment)]),
                self._ctx(context),
                np.array([group]),
            )
        )

    def public_state(self, context=ONE_CONTEXT, group: int = 0) -> np.ndarray:
        return self.mech.public_state(self._ctx(context), np.array([group]))[0]

    def diagnostics(self) -> dict[str, float]:
        return {k: float(v[0]) for k, v in self.mech.diagnostics().items()}

    @property
    def quality(self) -> _Quality:
        return _Quality(self.mech.quality)

    def virtual_cost(self, bids) -> np.ndarray:
        return self.mech.virtual_cost(np.asarray(bids, dtype=float)[None])[0]

    def virtual_costs(self, bids) -> np.ndarray:
        return self.mech.virtual_costs(np.asarray(bids, dtype=float)[None])[0]

    def indices(self, bids, group: int = 0) -> np.ndarray:
        return self.mech.indices(np.asarray(bids, dtype=float)[None], np.array([group]))[0]

    def reserves(self, group: int = 0) -> np.ndarray:
        return self.mech.reserves(np.array([group]))[0]

    def ucb(self, t: int | None = None) -> np.ndarray:
        return self.mech.ucb(t)[0]

    def allocation_probabilities(self, bids, group: int = 0) -> np.ndarray:
        return self.mech.allocation_probabilities(np.asarray(bids, dtype=float)[None], np.array([group]))[0]

    def expected_payments(self, bids, group: int = 0) -> np.ndarray:
        return self.mech.expected_payments(np.asarray(bids, dtype=float)[None], np.array([group]))[0]


class _Quality:
    def __init__(self, quality):
        self.q = quality

    def qhat(self, group: int = 0) -> np.ndarray:
        return self.q.qhat(np.array([group]))[0]

    def mean_score(self, group: int = 0) -> np.ndarray:
        return self.q.mean_score(np.array([group]))[0]
