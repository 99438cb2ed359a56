"""The meta-game: each mechanism's equilibrium over strategy populations, and how exploitable play is (PSRO).

Game. Each provider i has a population of pure strategies S_i - truthful, the scripted deviations of
:mod:`agents.scripted`, and learned best responses added by PSRO. A profile (one pure strategy per provider) is played
on the same ``seeds`` markets as every other profile (common random numbers: same queries, costs and mechanism coins),
one episode each, and u_i(profile) is provider i's mean profit per round; the *payoff table* holds every profile's
per-seed payoffs and market figures (user utility, payment, welfare), so every expectation under a mixture and every
difference between strategies has a paired 95% CI over seeds. Strategies whose every per-seed payoff (of every
provider, against every profile) equals an earlier one's are payoff-equivalent duplicates and are dropped (e.g.
``inflate`` under per-query billing is truthful play).

Equilibrium of the table (:mod:`evaluation.equilibrium`): two providers - every Nash equilibrium found by support
enumeration (one LP per support pair) up to ``max_support``; *selected*: the one with the highest joint provider payoff
(payoff dominance: the equilibrium providers would coordinate on; ties to the smallest support), the others listed.
More providers: replicator dynamics.

Exploitability. NashConv(sigma) = sum_i [max over all strategies of u_i(s, sigma_-i) - u_i(sigma)]. Against the
population it is computed exactly from the table; against *all* strategies it is estimated with an oracle - a PPO best
response trained against sigma_-i - whose gain u_i(BR, sigma_-i) - u_i(sigma) is measured on the table's seeds with a
paired CI (a lower bound on the true NashConv: the learner may not find the best deviation).

PSRO (:func:`psro`): iteration 0 trains every provider's best response to all-truthful play (NashConv of truthful
play: the mechanism's exploitability) and adds it; then, repeatedly, solve the table's equilibrium sigma, train each
provider's best response to sigma_-i, add it, and stop when no best response gains more than its CI (every gain's 95%
CI reaches 0) or after ``max_iterations``. The report gives, per mechanism, NashConv of all-truthful play, NashConv of
the found equilibrium, and the user's utility, payments and welfare at that equilibrium: which mechanism serves users
best when everyone is strategic.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.mixed import MixedPolicy, RowDispatch
from agents.policy import Policy
from agents.registry import make_strategy
from envs.batched import BatchedMarket
from envs.market import make_batched
from evaluation.equilibrium import expected_payoffs, nash_conv, replicator, two_player_equilibria
from evaluation.rollout import play
from evaluation.statistics import mean_ci

if TYPE_CHECKING:  # matplotlib is imported lazily, only to plot
    from matplotlib.figure import Figure

MARKET_FIGURES = ("user_utility", "payment", "welfare", "allocative_efficiency", "unserved_share")


@dataclass
class Strategy:
    """A pure strategy of one provider: ``build(market)`` gives its policy in a market (scripted strategies are
    rebuilt per market; learned ones are one object)."""

    name: str
    build: Callable[[BatchedMarket], Policy]
    kind: str = "scripted"


def scripted(name: str, seed: int = 0, **params: Any) -> Strategy:
    """A registered scripted strategy as a meta-game strategy."""
    return Strategy(name, lambda m: make_strategy(name, m.layout, seed=seed, **params))


def learned(name: str, policy: Policy) -> Strategy:
    """A trained policy as a meta-game strategy."""
    return Strategy(name, lambda m: policy, kind="learned")


@dataclass
class MetaSpec:
    """The market of a meta-game and the paired seeds of its payoff table."""

    scenario: str
    mechanism: str
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: int = 16
    base_seed: int = 50_000

    def market(self, n_markets: int) -> BatchedMarket:
        return make_batched(self.scenario, self.mechanism, n_markets, **self.overrides)

    def seed_list(self) -> list[int]:
        return [self.base_seed + k for k in range(self.seeds)]

    @property
    def agents(self) -> list[str]:
        return self.market(1).possible_agents


def default_population(spec: MetaSpec, agent: str) -> list[Strategy]:
    """truthful, then the scripted deviations that can differ from it for this provider: markup, bne (the first-price
    equilibrium bid rule of the uniform market: shading), substitute (only with a cheaper model on the menu),
    inflate."""
    market = spec.market(1)
    k = market.possible_agents.index(agent)
    names = ["truthful", "markup", "bne", "inflate"]
    if market.market.n_substitutes[k] > 0:
        names.insert(3, "substitute")
    return [scripted(n, seed=k) for n in names]


class PayoffTable:
    """Per-seed outcomes of every profile of the populations, played on the spec's seeds (filled lazily)."""

    def __init__(self, spec: MetaSpec, populations: Sequence[Sequence[Strategy]]):
        self.spec = spec
        self.agents = spec.agents
        if len(populations) != len(self.agents):
            raise ValueError(f"{len(populations)} populations for {len(self.agents)} providers")
        self.populations = [list(p) for p in populations]
        self.outcomes: dict[tuple[int, ...], dict[str, np.ndarray]] = {}

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(p) for p in self.populations)

    def names(self, player: int) -> list[str]:
        return [s.name for s in self.populations[player]]

    def add(self, player: int, strategy: Strategy) -> int:
        """Add a strategy to a provider's population; its index."""
        if strategy.name in self.names(player):
            raise ValueError(f"provider {self.agents[player]} already has a strategy named {strategy.name!r}")
        self.populations[player].append(strategy)
        return len(self.populations[player]) - 1

    def fill(self) -> int:
        """Play every profile not yet played (all of them as one batched market: profiles x seeds); the number
        played."""
        missing = [p for p in itertools.product(*(range(n) for n in self.shape)) if p not in self.outcomes]
        if not missing:
            return 0
        seeds = self.spec.seed_list()
        S = len(seeds)
        market = self.spec.market(len(missing) * S)
        prof = np.repeat(np.array(missing, dtype=np.int64), S, axis=0)  # [P * S, N]
        policies = {
            a: RowDispatch([s.build(market) for s in self.populations[i]], prof[:, i], name=a)
            for i, a in enumerate(self.agents)
        }
        rows = play(market, policies, seeds * len(missing))
        for k, profile in enumerate(missing):
            block = rows[k * S : (k + 1) * S]
            out = {"profit": np.array([[r[f"{a}/profit"] for a in self.agents] for r in block])}  # [S, N]
            for key in MARKET_FIGURES:
                out[key] = np.array([r[f"market/{key}"] for r in block])
            self.outcomes[profile] = out
        return len(missing)

    def per_seed(self, key: str = "profit") -> np.ndarray:
        """[*shape, S, N] per-seed profits (key ``profit``) or [*shape, S] a market figure."""
        self.fill()
        first = next(iter(self.outcomes.values()))[key]
        out = np.empty(self.shape + first.shape)
        for profile in itertools.product(*(range(n) for n in self.shape)):
            out[profile] = self.outcomes[profile][key]
        return out

    def payoffs(self) -> list[np.ndarray]:
        """Mean payoff tensors, one per provider ([*shape])."""
        per = self.per_seed("profit").mean(axis=-2)
        return [per[..., i] for i in range(len(self.agents))]

    def drop_duplicates(self, tol: float = 1e-12) -> list[str]:
        """Remove strategies payoff-equivalent (per seed, every provider, every profile) to an earlier one of the same
        provider; the removed names."""
        self.fill()
        removed = []
        for i in range(len(self.agents)):
            per = np.moveaxis(self.per_seed("profit"), i, 0)  # [S_i, ..., S, N]
            keep: list[int] = []
            for s in range(per.shape[0]):
                if any(np.max(np.abs(per[s] - per[k])) <= tol for k in keep):
                    removed.append(f"{self.populations[i][s].name}@{self.agents[i]}")
                else:
                    keep.append(s)
            if len(keep) < per.shape[0]:
                self._restrict(i, keep)
        return removed

    def _restrict(self, player: int, keep: list[int]) -> None:
        index = {old: new for new, old in enumerate(keep)}
        self.populations[player] = [self.populations[player][k] for k in keep]
        self.outcomes = {
            tuple(index[s] if n == player else s for n, s in enumerate(p)): v
            for p, v in self.outcomes.items()
            if p[player] in index
        }


# ---------------------------------------------------------------------------------------------- equilibria


def pure(shape: Sequence[int], indices: Sequence[int]) -> list[np.ndarray]:
    """The pure profile playing ``indices`` as mixtures."""
    out = []
    for n, k in zip(shape, indices):
        x = np.zeros(n)
        x[k] = 1.0
        out.append(x)
    return out


@dataclass
class SolvedGame:
    """The selected equilibrium of a table, every equilibrium found (two providers), and how it was computed."""

    profile: list[np.ndarray]
    values: np.ndarray
    method: str
    nash_conv: float
    alternatives: list[dict[str, Any]] = field(default_factory=list)


def solve(table: PayoffTable, max_support: int | None = 4) -> SolvedGame:
    """The table's equilibrium (see the module docstring for the selection rule)."""
    U = table.payoffs()
    if len(U) == 2:
        found = two_player_equilibria(U[0], U[1], max_support=max_support)
        if not found:
            raise RuntimeError("no equilibrium found within the support limit; raise max_support")
        order = sorted(
            range(len(found)),
            key=lambda k: (-round(float(found[k].values.sum()), 12), sum(len(s) for s in found[k].supports)),
        )
        best = found[order[0]]
        alternatives = [
            {"profile": [p.tolist() for p in found[k].profile], "values": found[k].values.tolist()} for k in order
        ]
        return SolvedGame(
            best.profile,
            best.values,
            "support enumeration (LP per support pair)",
            nash_conv(U, best.profile),
            alternatives,
        )
    profile = replicator(U)
    return SolvedGame(profile, expected_payoffs(U, profile), "replicator dynamics", nash_conv(U, profile))


def profile_weights(profile: Sequence[np.ndarray]) -> np.ndarray:
    """[*shape] probability of every pure profile under the product of the mixtures."""
    w = np.ones(())
    for p in profile:
        w = np.multiply.outer(w, p)
    return w


def mixture_figures(table: PayoffTable, profile: Sequence[np.ndarray]) -> dict[str, tuple[float, float]]:
    """Expected market figures and provider profits under a mixed profile, each (mean, 95% CI half-width) over the
    table's seeds (the per-seed expectation, exact given the table)."""
    w = profile_weights(profile)
    axes = tuple(range(w.ndim))
    out = {}
    for key in MARKET_FIGURES:
        per = np.tensordot(w, table.per_seed(key), axes=(axes, axes))  # [S]
        out[key] = mean_ci(per)
    profits = np.tensordot(w, table.per_seed("profit"), axes=(axes, axes))  # [S, N]
    for i, a in enumerate(table.agents):
        out[f"{a}/profit"] = mean_ci(profits[:, i])
    out["joint_profit"] = mean_ci(profits.sum(axis=1))
    return out


def deviation_gain(
    table: PayoffTable, player: int, strategy: int, profile: Sequence[np.ndarray]
) -> tuple[float, float]:
    """Paired gain of ``player`` switching from its mixture to pure ``strategy`` against the others' mixtures:
    (mean, 95% CI half-width) over seeds."""
    per = table.per_seed("profit")[..., player]  # [*shape, S]
    others = [p if k != player else None for k, p in enumerate(profile)]
    v = np.moveaxis(per, player, 0)  # [S_i, (others...), S]
    for p in [p for p in others if p is not None]:
        v = np.tensordot(v, p, axes=(1, 0))  # contract the next opponent axis
    # v: [S_i, S] payoff of each own strategy against the others' mixtures, per seed
    gain = v[strategy] - profile[player] @ v
    return mean_ci(gain)


# ------------------------------------------------------------------------------------------------------ PSRO

BestResponse = Callable[[MetaSpec, str, dict[str, Policy], int], Policy]
"""``oracle(spec, learner, opponents, seed) -> policy``: a best response of ``learner`` to fixed opponents."""


@dataclass
class Iteration:
    """One PSRO step: best responses to ``target`` (all-truthful, or the table's equilibrium), their gains with CIs,
    and the NashConv estimate sum_i max(0, gain_i)."""

    iteration: int
    target: str
    target_profile: list[list[float]]
    population: list[list[str]]
    gains: list[float]
    gain_cis: list[float]
    added: list[str]
    nash_conv: float
    table_nash_conv: float


@dataclass
class MetaGameResult:
    """Everything the report shows for one mechanism's meta-game."""

    scenario: str
    mechanism: str
    agents: list[str]
    seeds: list[int]
    populations: list[list[str]]
    payoffs: list[list]
    payoff_cis: list[list]
    dropped: list[str]
    truthful_nash_conv_population: float
    truthful_nash_conv: float | None
    truthful_gains: list[float] | None
    truthful_gain_cis: list[float] | None
    equilibrium: list[list[float]]
    equilibrium_method: str
    equilibrium_nash_conv_population: float
    equilibrium_nash_conv: float | None
    equilibrium_gains: list[float] | None
    equilibrium_gain_cis: list[float] | None
    converged: bool
    stop_reason: str
    alternatives: list[dict[str, Any]]
    at_equilibrium: dict[str, list[float]]
    at_truthful: dict[str, list[float]]
    iterations: list[Iteration]

    def record(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=float))


def _opponent_mixtures(
    spec: MetaSpec, table: PayoffTable, profile: Sequence[np.ndarray], player: int, seed: int, market: BatchedMarket
) -> dict[str, Policy]:
    out = {}
    for k, a in enumerate(table.agents):
        if k == player:
            continue
        support = np.flatnonzero(profile[k] > 1e-12)
        pols = [table.populations[k][s].build(market) for s in support]
        out[a] = (
            pols[0]
            if support.size == 1
            else MixedPolicy(market.layout, pols, profile[k][support], seed=seed + 31 * k, name=f"mix@{a}")
        )
    return out


def psro(
    spec: MetaSpec,
    populations: Sequence[Sequence[Strategy]] | None = None,
    best_response: BestResponse | None = None,
    max_iterations: int = 3,
    seed: int = 0,
    max_support: int | None = 4,
    progress: Callable[[str], None] | None = None,
) -> MetaGameResult:
    """Build the payoff table, solve it, and (with an oracle) run PSRO; see the module docstring.

    Args:
        spec: the market and the table's seeds.
        populations: initial strategies per provider (default: :func:`default_population`).
        best_response: the oracle (e.g. a PPO trainer, :func:`training.best_response.ppo_best_response`); None to
            solve the initial table only.
        max_iterations: PSRO iterations after iteration 0 (best responses to all-truthful play).
        seed: seeds the oracle's runs (iteration k, provider i: seed + 100 k + i) and the mixtures' draws.
        max_support: largest support per provider in the equilibrium search.
        progress: called with a line of text after each step.
    """
    say = progress or (lambda _: None)
    agents = spec.agents
    N = len(agents)
    pops = [list(p) for p in populations] if populations is not None else [default_population(spec, a) for a in agents]
    table = PayoffTable(spec, pops)
    table.fill()
    dropped = table.drop_duplicates()
    truth_idx = []
    for i in range(N):
        names = table.names(i)
        if "truthful" not in names:
            raise ValueError(f"provider {agents[i]}: the population needs 'truthful' (the exploitability baseline)")
        truth_idx.append(names.index("truthful"))
    truthful = pure(table.shape, truth_idx)
    truthful_nc_pop = nash_conv(table.payoffs(), truthful)
    say(
        f"{spec.mechanism}: table {table.shape}, dropped {dropped}; NashConv(truthful) vs population "
        f"{truthful_nc_pop:.4f}"
    )
    iterations: list[Iteration] = []
    truthful_gains = truthful_cis = None
    eq_gains = eq_cis = None
    converged, reason = False, "no best-response oracle: equilibrium of the initial populations"
    solved = solve(table, max_support)
    target_profile = truthful
    market1 = spec.market(spec.seeds)
    for k in range(max_iterations + 1 if best_response is not None else 0):
        if k > 0:
            solved = solve(table, max_support)
            target_profile = solved.profile
        target = "all-truthful" if k == 0 else f"equilibrium of iteration {k}"
        added, new_idx = [], []
        for i, a in enumerate(agents):
            opponents = _opponent_mixtures(spec, table, target_profile, i, seed + 100 * k + i, market1)
            assert best_response is not None  # the loop runs only with an oracle
            policy = best_response(spec, a, opponents, seed + 100 * k + i)
            name = f"br{k}"
            while name in table.names(i):
                name += "'"
            new_idx.append(table.add(i, learned(name, policy)))
            added.append(f"{name}@{a}")
        table.fill()
        profile = [np.concatenate([p, np.zeros(table.shape[i] - p.size)]) for i, p in enumerate(target_profile)]
        gains, cis = zip(*(deviation_gain(table, i, new_idx[i], profile) for i in range(N)))
        nc = float(sum(max(0.0, g) for g in gains))
        iterations.append(
            Iteration(
                k,
                target,
                [p.tolist() for p in profile],
                [table.names(i) for i in range(N)],
                list(gains),
                list(cis),
                added,
                nc,
                nash_conv(table.payoffs(), profile),
            )
        )
        say(
            f"{spec.mechanism} iteration {k} ({target}): gains "
            + ", ".join(f"{g:+.4f} ± {c:.4f}" for g, c in zip(gains, cis))
            + f"; NashConv {nc:.4f}"
        )
        if k == 0:
            truthful_gains, truthful_cis = list(gains), list(cis)
            continue
        eq_gains, eq_cis = list(gains), list(cis)
        if all(g <= c for g, c in zip(gains, cis)):
            converged, reason = True, f"iteration {k}: no best response gains more than its 95% CI"
            break
    if best_response is not None and max_iterations > 0:
        # The reported equilibrium is the one the last best responses were trained against, with their gains.
        eq_profile = [np.array(p) for p in iterations[-1].target_profile]
        if not converged:
            reason = f"stopped after {max_iterations} iterations with a best response still gaining"
    else:
        if best_response is not None:  # iteration 0 only: the equilibrium of the table with those best responses
            solved = solve(table, max_support)
            reason = "best responses to all-truthful play only (max_iterations = 0)"
        eq_profile = [np.concatenate([p, np.zeros(table.shape[i] - p.size)]) for i, p in enumerate(solved.profile)]
    truthful_full = [np.concatenate([p, np.zeros(table.shape[i] - p.size)]) for i, p in enumerate(truthful)]
    U = table.payoffs()
    per = table.per_seed("profit")
    payoffs = [U[i].tolist() for i in range(N)]
    payoff_cis = [np.apply_along_axis(lambda v: mean_ci(v)[1], -1, per[..., i]).tolist() for i in range(N)]
    return MetaGameResult(
        scenario=spec.market(1).config.name,
        mechanism=spec.mechanism,
        agents=agents,
        seeds=spec.seed_list(),
        populations=[table.names(i) for i in range(N)],
        payoffs=payoffs,
        payoff_cis=payoff_cis,
        dropped=dropped,
        truthful_nash_conv_population=truthful_nc_pop,
        truthful_nash_conv=None if truthful_gains is None else float(sum(max(0.0, g) for g in truthful_gains)),
        truthful_gains=truthful_gains,
        truthful_gain_cis=truthful_cis,
        equilibrium=[p.tolist() for p in eq_profile],
        equilibrium_method=solved.method,
        equilibrium_nash_conv_population=nash_conv(U, eq_profile),
        equilibrium_nash_conv=None if eq_gains is None else float(sum(max(0.0, g) for g in eq_gains)),
        equilibrium_gains=eq_gains,
        equilibrium_gain_cis=eq_cis,
        converged=converged,
        stop_reason=reason,
        alternatives=solved.alternatives,
        at_equilibrium={k: list(v) for k, v in mixture_figures(table, eq_profile).items()},
        at_truthful={k: list(v) for k, v in mixture_figures(table, truthful_full).items()},
        iterations=iterations,
    )


# ---------------------------------------------------------------------------------------------------- report


def _mix(names: list[str], p: list[float]) -> str:
    return ", ".join(f"{n} {w:.2f}" for n, w in zip(names, p) if w > 1e-6)


def _fmt(x: float | None, ci: float | None = None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4f}" if ci is None else f"{x:.4f} ± {ci:.4f}"


def _psro_cell(r: MetaGameResult) -> str:
    if not r.iterations:
        return "scripted populations only"
    return f"{'converged' if r.converged else 'not converged'}, {len(r.iterations)} it."


def metagame_table(results: Sequence[MetaGameResult]) -> str:
    """Markdown: per mechanism the exploitability of truthful play, the equilibrium found, its NashConv and what the
    user gets there."""
    lines = [
        (
            "| mechanism | NashConv(truthful) PPO [population] | equilibrium | NashConv(eq) PPO [population] | "
            "user utility at eq (truthful) | payment at eq | welfare at eq | PSRO |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        eq = "; ".join(f"{a}: {_mix(r.populations[i], r.equilibrium[i])}" for i, a in enumerate(r.agents))
        u, p, w = r.at_equilibrium["user_utility"], r.at_equilibrium["payment"], r.at_equilibrium["welfare"]
        lines.append(
            f"| {r.mechanism} | {_fmt(r.truthful_nash_conv)} [{r.truthful_nash_conv_population:.4f}] | {eq} | "
            f"{_fmt(r.equilibrium_nash_conv)} [{r.equilibrium_nash_conv_population:.4f}] | "
            f"{u[0]:.4f} ± {u[1]:.4f} ({r.at_truthful['user_utility'][0]:.4f}) | {p[0]:.4f} ± {p[1]:.4f} | "
            f"{w[0]:.4f} ± {w[1]:.4f} | {_psro_cell(r)} |"
        )
    return "\n".join(lines)


def plot_payoffs(r: MetaGameResult, path: Path | None = None) -> Figure:
    """Heat maps of both providers' payoff tables (two providers), annotated with means and CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(r.agents) != 2:
        raise ValueError("payoff heat maps are drawn for two providers")
    fig, axes = plt.subplots(
        1, 2, figsize=(4 + 0.9 * len(r.populations[1]) * 2, 1.5 + 0.6 * len(r.populations[0])), squeeze=False
    )
    for i, ax in enumerate(axes[0]):
        M, C = np.array(r.payoffs[i]), np.array(r.payoff_cis[i])
        im = ax.imshow(M, cmap="viridis", aspect="auto")
        for (a, b), v in np.ndenumerate(M):
            ax.text(b, a, f"{v:.3f}\n±{C[a, b]:.3f}", ha="center", va="center", fontsize=6, color="w")
        ax.set_xticks(range(M.shape[1]), r.populations[1], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(M.shape[0]), r.populations[0], fontsize=7)
        ax.set_xlabel(r.agents[1])
        ax.set_ylabel(r.agents[0])
        ax.set_title(f"{r.mechanism}: payoff of {r.agents[i]}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_nash_conv(results: Sequence[MetaGameResult], path: Path | None = None) -> Figure:
    """The PSRO NashConv curve of every mechanism (iteration 0: all-truthful play)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in results:
        if r.iterations:
            ax.plot(
                [it.iteration for it in r.iterations], [it.nash_conv for it in r.iterations], "o-", label=r.mechanism
            )
    ax.set_xlabel("PSRO iteration (0: best responses to all-truthful play)")
    ax.set_ylabel("NashConv (sum of best-response gains)")
    if any(r.iterations for r in results):
        ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def write_metagame_report(out: str | Path, results: Sequence[MetaGameResult], header: dict[str, Any]) -> str:
    """Write ``metagame.md``, ``metagame.json``, ``plots/payoffs_<mechanism>.png``, ``plots/nash_conv.png`` and
    TensorBoard summaries (``tb/``: the NashConv curve per mechanism, the payoff tables as images); returns the
    markdown table."""
    import matplotlib.pyplot as plt
    from torch.utils.tensorboard import SummaryWriter

    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(out / "tb"))
    table = metagame_table(results)
    md = [
        f"# Meta-game: {header.get('scenario', '')}",
        "",
        (
            "Payoff = mean profit per round; every profile is played on the same seeds (paired CIs). NashConv against "
            "PPO best responses (a lower bound on the true exploitability) and, in brackets, against the population. "
            "Equilibrium: the payoff-dominant Nash equilibrium of the table (two providers; support enumeration). "
            f"Settings: {json.dumps(header)}"
        ),
        "",
        table,
        "",
    ]
    for r in results:
        m = r.mechanism
        fig = plot_payoffs(r, out / "plots" / f"payoffs_{m}.png") if len(r.agents) == 2 else None
        if fig is not None:
            writer.add_figure(f"metagame/{m}/payoff_table", fig)
            plt.close(fig)
        for it in r.iterations:
            writer.add_scalar(f"metagame/{m}/nash_conv", it.nash_conv, it.iteration)
            for a, g in zip(r.agents, it.gains):
                writer.add_scalar(f"metagame/{m}/br_gain/{a}", g, it.iteration)
        for key, (v, _) in r.at_equilibrium.items():
            writer.add_scalar(f"metagame/{m}/at_equilibrium/{key}", v)
        md += [
            f"## {m}",
            "",
            "Populations: " + "; ".join(f"{a}: {', '.join(r.populations[i])}" for i, a in enumerate(r.agents)),
            f"Dropped as payoff-equivalent duplicates: {', '.join(r.dropped) or 'none'}. PSRO: {r.stop_reason}.",
            "",
            "| iteration | best responses to | gains (95% CI) | NashConv |",
            "|---|---|---|---|",
        ]
        for it in r.iterations:
            md.append(
                f"| {it.iteration} | {it.target} | "
                + ", ".join(f"{g:+.4f} ± {c:.4f}" for g, c in zip(it.gains, it.gain_cis))
                + f" | {it.nash_conv:.4f} |"
            )
        md += [
            "",
            "At the equilibrium: " + ", ".join(f"{k} {v[0]:.4f} ± {v[1]:.4f}" for k, v in r.at_equilibrium.items()),
            "",
            f"All equilibria found ({len(r.alternatives)}): "
            + "; ".join(f"values {np.round(a['values'], 4).tolist()}" for a in r.alternatives[:6]),
            "",
            f"![payoffs](plots/payoffs_{m}.png)",
            "",
        ]
    fig = plot_nash_conv(results, out / "plots" / "nash_conv.png")
    writer.add_figure("metagame/nash_conv", fig)
    plt.close(fig)
    writer.close()
    md.append("![NashConv](plots/nash_conv.png)")
    (out / "metagame.md").write_text("\n".join(md), encoding="utf-8")
    (out / "metagame.json").write_text(
        json.dumps({"header": header, "results": [r.record() for r in results]}, indent=2, default=float),
        encoding="utf-8",
    )
    return table
