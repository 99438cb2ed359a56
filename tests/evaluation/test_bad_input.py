"""Bad input sweep of evaluation: evaluate.py's flags, ``--set`` pairs and config files, and tampered train.py run
dirs read by ``agents.learned.load_policies``, ``evaluation.profiles.learned_profiles`` and ``evaluate.py --run-dir``.

Each case asserts a clear error (exit code 2 and one ``error:`` line, argparse's usage error naming the flag, a
ConfigError or a RunDirError) whose message names the flag, ``--set`` pair, file and field and what was expected, and
that nothing on disk changed (every file, link and directory under the test's folder, byte for byte: the run dir, the
report folder, and any file a hostile payload would create). No payload in a run dir is ever unpickled or run. Cases
are data: add a line to a table to add a case.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

import evaluate as evaluate_cli
from agents.learned import RunDirError, load_policies
from envs.market import make_batched
from evaluation.profiles import learned_profiles
from tests.envs.test_data_bad_input import snapshot
from tests.training.test_bad_input import check_error
from tests.training.test_training import _Pwn
from training import TrainConfig, train

# Flags of a small evaluation; a case's flags replace these (``None`` drops one), so list flags are not appended to.
EVAL = {
    "--scenario": "uniform",
    "--mechanism": "first_price",
    "--strategies": "markup",
    "--seeds": "2",
    "--max-seeds": "2",
    "--horizons": "8",
    "--billings": "per_query",
    "--workers": "1",
}
PRESET = "configs/scenarios/uniform.yaml"


def evaluate_argv(tmp: Path, flags: dict[str, str | None], extra: list[str] = ()) -> list[str]:
    argv = [f"--out={tmp / 'out'}", "--no-progress"]
    for flag, value in {**EVAL, **flags}.items():
        if value is not None:
            argv.append(f"{flag}={value}")  # one token: values such as -5 are not read as flags
    return [*argv, *[a.format(tmp=tmp) for a in extra]]


def run_evaluate(argv: list[str], capsys) -> tuple[int, str]:
    """evaluate.py's exit code and stderr (argparse's usage errors exit with 2 and name the flag)."""
    try:
        code = evaluate_cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def case(flags: dict[str, str | None], patterns: tuple[str, ...], extra: list[str] | None = None, *, id: str):
    """A flags case: ``flags`` replace EVAL's, ``extra`` argv ({tmp}: the test's folder) follows them."""
    return pytest.param(flags, patterns, extra or [], id=id)


def nan_cases(flag: str, field: str) -> list:
    return [
        case({flag: v}, (f"{flag}: ", f"'{field}'", "finite number", v), id=f"{flag[2:]}-{v}")
        for v in ("nan", "inf", "-inf")
    ]


def set_case(mechanism: str, pair: str, patterns: tuple[str, ...]):
    return case({"--mechanism": mechanism}, (*patterns, f"!{PRESET}"), ["--set", pair], id=f"set-{mechanism}-{pair}")


# ------------------------------------------------------------------------------------------------- flags
# A case is (flags replacing EVAL's, patterns the error must match, extra argv).

FLAG_CASES = [
    *nan_cases("--tolerance", "tolerance"),
    *nan_cases("--target-half-width", "target_half_width"),
    case(
        {"--tolerance": "-0.1"}, ("--tolerance: ", "'tolerance' must be a finite number >= 0"), id="tolerance-negative"
    ),
    case(
        {"--target-half-width": "-1"},
        ("--target-half-width: ", "'target_half_width' must be"),
        id="target-half-width-negative",
    ),
    *[
        case({flag: value}, (f"{flag}: ", f"'{flag[2:].replace('-', '_')}' must be >= 1"), id=f"{flag[2:]}-{value}")
        for flag in (
            "--seeds",
            "--episodes",
            "--train-seeds",
            "--train-timesteps",
            "--train-horizon",
            "--selection-episodes",
            "--workers",
            "--collusion-timesteps",
        )
        for value in ("0", "-3")
    ],
    case({"--max-seeds": "0"}, ("--max-seeds: ", "'max_seeds' must be >= 1"), id="max-seeds-0"),
    case(
        {"--seeds": "4"}, ("--max-seeds: ", r"'max_seeds' \(2\) must be >= 'seeds' \(4\)"), id="seeds-above-max-seeds"
    ),
    case(
        {"--decision-seeds": "1"},
        ("--decision-seeds: ", r"'decision_seeds' \(1\) must be between 'max_seeds' \(2\) and 4999"),
        id="decision-seeds-below-max-seeds",
    ),
    case({"--decision-seeds": "5000"}, ("--decision-seeds: ", "and 4999", "selection seeds"), id="decision-seeds-5000"),
    case({"--seed": "-1"}, ("--seed: ", "'seed' must be >= 0"), id="seed-negative"),
    case({"--seeds": "many"}, ("argument --seeds: invalid int value",), id="seeds-word"),
    case({"--episodes": "1.5"}, ("argument --episodes: invalid int value",), id="episodes-float"),
    case({"--tolerance": "small"}, ("argument --tolerance: invalid float value",), id="tolerance-word"),
    case({"--horizons": "0"}, ("--horizons: ", "'horizons' must list positive integers"), id="horizons-0"),
    case({"--horizons": "8,-5"}, ("--horizons: ", "'horizons'", "-5"), id="horizons-negative"),
    case({"--horizons": ""}, ("--horizons: ", "'horizons' must list positive integers"), id="horizons-empty"),
    case({"--horizons": "8,x"}, ("--horizons 8,x: expected comma-separated int",), id="horizons-word"),
    case({"--billings": ""}, ("--billings: ", "'billings' must name per_query and/or per_token"), id="billings-empty"),
    case({"--billings": "per_year"}, ("--billings: ", "one of", "per_year"), id="billings-unknown"),
    case({"--mechanism": ""}, ("--mechanism: ", "'mechanisms'", "none given"), id="mechanism-empty"),
    case({"--mechanism": "vickrey"}, ("--mechanism: ", "'mechanisms'", "vickrey"), id="mechanism-unknown"),
    case({"--strategies": "bogus"}, ("--strategies: ", "'strategies'", "bogus"), id="strategies-unknown"),
    case({"--strategies": ""}, ("--strategies: ", "nothing to evaluate"), id="strategies-empty"),
    case(
        {"--train-learners": ""},
        ("--train-learners: ", "'train_learners': expected agent ids"),
        id="train-learners-empty",
    ),
    # --set: NaN and infinities, types, unknown keys; blamed on the pair, not the preset
    set_case("first_price", "bid_scale=.nan", ("--set bid_scale=nan: ", "'bid_scale'", "finite number")),
    set_case("first_price", "bid_scale=-.inf", ("--set bid_scale=-inf: ", "'bid_scale'", "finite number")),
    set_case("first_price", "value_scale=.inf", ("--set value_scale=inf: ", "finite number")),
    set_case("first_price", "cost_low=.nan", ("--set cost_low=nan: ", "finite number")),
    set_case("first_price", "horizon=long", ("--set horizon=long: ", "'horizon': expected an integer")),
    set_case("first_price", "bid_scale=0", ("--set bid_scale=0: ", "'bid_scale' must be > 0")),
    set_case("first_price", "bogus=1", ("--set bogus=1: ", r"unknown parameter\(s\) \['bogus'\]")),
    set_case("ucb_myerson", "reserve=.nan", ("--set reserve=nan: ", "parameter 'reserve'", "finite number")),
    set_case("ucb_myerson", "exploration=.inf", ("--set exploration=inf: ", "parameter 'exploration'")),
    set_case("ucb_myerson", "payment=cheapest", ("--set payment=cheapest: ", "one of")),
    set_case("soft_rochet", "temperature=.inf", ("--set temperature=inf: ", "parameter 'temperature'")),
    set_case("soft_rochet", "temperature=0", ("--set temperature=0: ", "temperature must be a finite number > 0")),
    set_case("rosa", "mu=.nan", ("--set mu=nan: ", "parameter 'mu'", "finite number")),
    set_case("second_best", "epsilon=.inf", ("--set epsilon=inf: ", "parameter 'epsilon'")),
    set_case("first_price,ucb_myerson", "reserve=2", ("--set reserve=2: ", "mechanism 'first_price'")),
    case({}, ("--set 'x': expected KEY=VALUE",), ["--set", "x"], id="set-no-equals"),
    # files
    case({}, ("--out .*outfile: is a file, not a directory",), ["--out={tmp}/outfile"], id="out-is-a-file"),
    case({}, ("run dir .*nowhere does not exist",), ["--run-dir={tmp}/nowhere"], id="run-dir-missing"),
    case({}, ("run dir .*outfile is a file, not a directory",), ["--run-dir={tmp}/outfile"], id="run-dir-is-a-file"),
    case({}, ("cfg.yaml: ", "'tolerance'", "finite number"), ["--config={tmp}/cfg.yaml"], id="config-tolerance-nan"),
    case({}, ("bad.yaml: ", r"unknown field\(s\)"), ["--config={tmp}/bad.yaml"], id="config-unknown-field"),
    case(
        {},
        ("over.yaml: field 'overrides': ", "'bid_scale'", "finite number", "!--set"),
        ["--config={tmp}/over.yaml"],
        id="config-overrides-inf",
    ),
    case(
        {},
        ("--set bid_scale=nan: ", "!over.yaml"),
        ["--config={tmp}/ok.yaml", "--set", "bid_scale=.nan"],
        id="config-then-set-blames-set",
    ),
    case({}, ("list.yaml: expected a mapping",), ["--config={tmp}/list.yaml"], id="config-a-list"),
    case({}, ("missing.yaml: config file not found",), ["--config={tmp}/missing.yaml"], id="config-missing"),
]
FILES = {
    "outfile": "not a directory",
    "cfg.yaml": "tolerance: .nan\n",
    "bad.yaml": "seeds: 2\ntolerence: 0.1\n",
    "over.yaml": "overrides: {bid_scale: .inf}\n",
    "ok.yaml": "overrides: {n_providers: 2}\n",
    "list.yaml": "- seeds\n",
}


@pytest.mark.parametrize("flags, patterns, extra", FLAG_CASES)
def test_bad_flags_are_named_and_nothing_is_written(tmp_path, capsys, flags, patterns, extra):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    before = snapshot(tmp_path)
    code, err = run_evaluate(evaluate_argv(tmp_path, flags, extra), capsys)
    check_error(code, err, patterns)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------- tampered run dirs

RUN = dict(
    scenario="uniform",
    mechanism="first_price",
    timesteps=64,
    n_envs=2,
    n_steps=16,
    batch_size=32,
    eval_every=0,
    eval_episodes=1,
    checkpoint_every=0,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished PPO best-response run (provider_0 learned) and a tabular Q-learning run (both providers)."""
    root = tmp_path_factory.mktemp("runs")
    train(TrainConfig(**RUN, run_dir=str(root / "ppo")), progress=False)
    train(
        TrainConfig(**RUN, mode="simultaneous", algo="qlearning", learners=["all"], run_dir=str(root / "q")),
        progress=False,
    )
    return {"ppo": root / "ppo", "q": root / "q"}


def manifest(**changes) -> Callable[[Path], None]:
    """Set manifest.json fields (``None`` removes one)."""

    def edit(run: Path) -> None:
        data = json.loads((run / "manifest.json").read_text())
        data.update(changes)
        (run / "manifest.json").write_text(json.dumps({k: v for k, v in data.items() if v is not None}))

    return edit


def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        path = run / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    return edit


def make_dir(name: str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()

    return edit


def remove(name: str) -> Callable[[Path], None]:
    return lambda run: (run / name).unlink()


def link_outside(run: Path) -> None:
    """policies/evil.zip -> a policy file outside the run dir, listed in the manifest."""
    outside = run.parent / "outside.zip"
    shutil.copy(run / "policies" / "provider_0.zip", outside)
    (run / "policies" / "evil.zip").symlink_to(outside)
    manifest(policies={"provider_0": "evil.zip"})(run)


def policies_dir_outside(run: Path) -> None:
    """The whole policies/ folder replaced by a link to a copy outside the run dir."""
    outside = run.parent / "outside"
    shutil.move(run / "policies", outside)
    (run / "policies").symlink_to(outside, target_is_directory=True)


def zip_members(edit: Callable[[dict[str, bytes]], None], name: str = "provider_0.zip") -> Callable[[Path], None]:
    """Rewrite the members of a policy zip."""

    def apply(run: Path) -> None:
        path = run / "policies" / name
        with zipfile.ZipFile(path) as archive:
            members = {m: archive.read(m) for m in archive.namelist()}
        edit(members)
        with zipfile.ZipFile(path, "w") as archive:
            for member, blob in members.items():
                archive.writestr(member, blob)

    return apply


def pickled_payload(members: dict[str, bytes]) -> None:
    """The weights replaced by a pickle that would create ``pwned`` beside the run dir if anything unpickled it."""
    members["policy.pth"] = pickle.dumps(_Pwn(Path("pwned").resolve()))


def truncate(name: str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])

    return edit


def config(**changes) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        data = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**data, **changes}))

    return edit


def npz(**arrays) -> Callable[[Path], None]:
    """Replace arrays of provider_0's Q tables (``None`` drops one)."""

    def edit(run: Path) -> None:
        path = run / "policies" / "provider_0.npz"
        with np.load(path, allow_pickle=False) as data:
            content = {k: data[k] for k in data.files}
        content.update(arrays)
        buffer = io.BytesIO()
        np.savez(buffer, **{k: v for k, v in content.items() if v is not None})
        path.write_bytes(buffer.getvalue())

    return edit


M = "manifest.json: "
# A case is (run: ppo or q, edit of a copy of the run dir, patterns the error must match).
TAMPER_CASES = [
    # manifest.json as a file
    pytest.param("ppo", write("manifest.json", "{not json"), ("manifest.json: not valid JSON",), id="not-json"),
    pytest.param("ppo", write("manifest.json", ""), ("manifest.json: not valid JSON",), id="empty"),
    pytest.param("ppo", write("manifest.json", b'{"env": "\xff"}'), ("manifest.json: not UTF-8",), id="not-utf8"),
    pytest.param("ppo", write("manifest.json", "[1, 2]"), ("manifest.json: expected a JSON object",), id="a-list"),
    pytest.param("ppo", write("manifest.json", "[" * 200_000), ("manifest.json: not valid JSON",), id="deep-nesting"),
    pytest.param("ppo", make_dir("manifest.json"), (r"no manifest\.json",), id="manifest-is-a-dir"),
    pytest.param("ppo", remove("manifest.json"), (r"no manifest\.json",), id="manifest-missing"),
    # fields of the wrong type or value
    pytest.param("ppo", manifest(policies=None), (M, r"missing field\(s\) \['policies'\]"), id="policies-missing"),
    pytest.param("ppo", manifest(mechanism=None), (M, r"missing field\(s\) \['mechanism'\]"), id="mechanism-missing"),
    pytest.param(
        "ppo", manifest(policies=["provider_0.zip"]), (M, "'policies': expected a mapping"), id="policies-not-a-dict"
    ),
    pytest.param(
        "ppo",
        manifest(policies={"provider_0": 3}),
        (M, r"'policies'\.provider_0: expected a string"),
        id="policy-not-a-string",
    ),
    pytest.param(
        "ppo",
        manifest(policies={"provider_9": "provider_0.zip"}),
        (M, "'policies'", "provider_9"),
        id="policy-of-unknown-agent",
    ),
    pytest.param(
        "ppo",
        manifest(policies={"provider_0": "/etc/passwd"}),
        (M, "'policies'", "/etc/passwd"),
        id="policy-absolute-path",
    ),
    pytest.param(
        "ppo", manifest(policies={"provider_0": "../manifest.json"}), (M, "'policies'", r"'\.\./"), id="policy-dotdot"
    ),
    pytest.param("ppo", manifest(policies={"provider_0": ""}), (M, "'policies'", "''"), id="policy-empty-name"),
    pytest.param("ppo", link_outside, (M, "'policies'", "evil.zip' leads outside"), id="policy-link-outside"),
    pytest.param("ppo", policies_dir_outside, (M, "'policies'", "leads outside"), id="policies-dir-link-outside"),
    pytest.param(
        "ppo",
        remove("policies/provider_0.zip"),
        ("provider_0.zip listed in the manifest is missing",),
        id="policy-file-missing",
    ),
    pytest.param(
        "ppo",
        make_dir("policies/provider_0.zip"),
        ("provider_0.zip listed in the manifest is missing",),
        id="policy-file-is-a-dir",
    ),
    pytest.param("ppo", manifest(levers="bid"), (M, "'levers': expected a list"), id="levers-not-a-list"),
    pytest.param("ppo", manifest(levers=["bid", "price"]), (M, r"'levers'\[1\]: expected one of"), id="levers-unknown"),
    pytest.param("ppo", manifest(levers=[]), (M, "'levers': expected a non-empty subset"), id="levers-empty"),
    pytest.param("ppo", manifest(mode="solo"), (M, "'mode': expected one of"), id="mode-unknown"),
    pytest.param("ppo", manifest(mode=3), (M, "'mode': expected one of"), id="mode-a-number"),
    pytest.param("ppo", manifest(algo="dqn"), (M, "'algo': expected one of"), id="algo-unknown"),
    pytest.param(
        "ppo", manifest(mechanism="vickrey"), (M, "'mechanism': unknown mechanism 'vickrey'"), id="mechanism-unknown"
    ),
    pytest.param(
        "ppo",
        manifest(timesteps="64"),
        (M, "'timesteps': expected an integer or null, got '64'"),
        id="timesteps-a-string",
    ),
    pytest.param("ppo", manifest(seed=math.nan), (M, "'seed': expected an integer"), id="seed-nan"),
    pytest.param("ppo", manifest(seed=1.5), (M, "'seed': expected an integer"), id="seed-a-float"),
    pytest.param("ppo", manifest(agents="provider_0"), (M, "'agents': expected a list"), id="agents-not-a-list"),
    pytest.param(
        "ppo", manifest(action={"dim": "3"}), (M, "'action': expected an integer 'dim'"), id="action-dim-a-string"
    ),
    pytest.param(
        "ppo",
        manifest(observation_layout=[]),
        (M, "'observation_layout': expected a mapping"),
        id="layout-not-a-mapping",
    ),
    pytest.param(
        "ppo",
        manifest(policy_kwargs={"net_arch": ["64"]}),
        (M, r"'net_arch'\[0\]: expected an integer"),
        id="net-arch-strings",
    ),
    pytest.param(
        "ppo",
        manifest(policy_kwargs={"net_arch": [0]}),
        (M, "'net_arch': expected hidden layer sizes"),
        id="net-arch-zero",
    ),
    pytest.param(
        "ppo",
        manifest(policy_kwargs={"activation_fn": "os.system"}),
        (M, r"unknown field\(s\)", "activation_fn"),
        id="policy-kwargs-unknown",
    ),
    pytest.param(
        "ppo",
        manifest(policy_kwargs={"log_std_init": math.inf}),
        (M, "'log_std_init'", "finite number"),
        id="log-std-init-inf",
    ),
    pytest.param(
        "ppo", manifest(policy_kwargs="net_arch"), (M, "'policy_kwargs'", "mapping"), id="policy-kwargs-a-string"
    ),
    pytest.param(
        "ppo", manifest(opponents=["truthful"]), (M, "'opponents': expected a string"), id="opponents-not-a-string"
    ),
    pytest.param(
        "ppo", manifest(overrides="n_providers=3"), (M, "'overrides': expected a mapping"), id="overrides-not-a-mapping"
    ),
    pytest.param("ppo", manifest(evil=1), (M, r"unknown field\(s\) \['evil'\]"), id="unknown-field"),
    # labels that disagree with config.yaml, or with the market
    pytest.param(
        "ppo",
        manifest(scenario="capitals"),
        (M, "field 'scenario' is 'capitals'", "config.yaml says"),
        id="scenario-disagrees",
    ),
    pytest.param(
        "ppo",
        manifest(mechanism="second_price"),
        (M, "field 'mechanism'", "config.yaml says"),
        id="mechanism-disagrees",
    ),
    pytest.param("ppo", manifest(mode="independent"), (M, "field 'mode'", "config.yaml says"), id="mode-disagrees"),
    pytest.param("ppo", manifest(algo="sac"), (M, "field 'algo'", "config.yaml says"), id="algo-disagrees"),
    pytest.param(
        "ppo",
        manifest(overrides={"bid_scale": 2.0}),
        (M, "field 'overrides'", "config.yaml says"),
        id="overrides-disagree",
    ),
    pytest.param("ppo", manifest(levers=["bid"]), (M, "field 'levers'", "config.yaml says"), id="levers-disagree"),
    pytest.param(
        "ppo",
        config(mechanism="myerson"),
        (M, "field 'mechanism'", "config.yaml says 'myerson'"),
        id="config-yaml-disagrees",
    ),
    pytest.param(
        "ppo",
        write("config.yaml", "mechanism: [unclosed\n"),
        ("config.yaml: not valid YAML",),
        id="config-yaml-not-yaml",
    ),
    pytest.param("ppo", write("config.yaml", "- 1\n"), ("config.yaml: expected a mapping",), id="config-yaml-a-list"),
    pytest.param(
        "ppo",
        manifest(agents=["provider_0"], non_learners=[]),
        ("does not match this market", "agents"),
        id="agents-disagree-with-market",
    ),
    pytest.param(
        "ppo", manifest(env="llm_market_v0"), ("does not match this market", "env"), id="env-disagrees-with-market"
    ),
    pytest.param(
        "ppo",
        manifest(action={"dim": 3, "encoding": ["bid", "substitution", "inflation"], "low": -1.0, "high": 1.0}),
        ("does not match this market", "bid codec 'max.0, honest_ask", "retrain the policy"),
        id="trained-with-the-old-bid-codec",
    ),
    # the policy zip
    pytest.param(
        "ppo",
        write("policies/provider_0.zip", "not a zip"),
        ("provider_0.zip: cannot read the policy weights",),
        id="zip-garbage",
    ),
    pytest.param(
        "ppo",
        write("policies/provider_0.zip", b""),
        ("provider_0.zip: cannot read the policy weights",),
        id="zip-empty",
    ),
    pytest.param(
        "ppo",
        truncate("policies/provider_0.zip"),
        ("provider_0.zip: cannot read the policy weights",),
        id="zip-truncated",
    ),
    pytest.param(
        "ppo",
        zip_members(lambda m: m.pop("policy.pth")),
        ("provider_0.zip: cannot read the policy weights",),
        id="zip-without-weights",
    ),
    pytest.param(
        "ppo",
        zip_members(pickled_payload),
        ("provider_0.zip: cannot read the policy weights", "UnpicklingError"),
        id="zip-pickled-payload",
    ),
    pytest.param(
        "ppo",
        zip_members(lambda m: m.update({"policy.pth": b"\x00" * 64})),
        ("provider_0.zip: cannot read the policy weights",),
        id="zip-garbage-weights",
    ),
    pytest.param(
        "ppo",
        manifest(policy_kwargs={"net_arch": [8]}),
        ("provider_0.zip: cannot read the policy weights", "size mismatch"),
        id="zip-wrong-network",
    ),
    # Q tables
    pytest.param(
        "q",
        write("policies/provider_0.npz", "not an npz"),
        ("provider_0.npz: cannot read the Q tables",),
        id="npz-garbage",
    ),
    pytest.param(
        "q",
        npz(tables=np.array([object()] * 19, dtype=object)),
        ("provider_0.npz: cannot read the Q tables", "pickle"),
        id="npz-object-array",
    ),
    pytest.param("q", npz(tables=np.full((2, 19), np.nan)), ("provider_0.npz: 'tables' must be finite",), id="npz-nan"),
    pytest.param(
        "q", npz(tables=np.zeros((2, 3))), ("provider_0.npz: 'tables'", r"shape \(2, 3\)"), id="npz-wrong-shape"
    ),
    pytest.param(
        "q", npz(grid=np.linspace(0.1, 0.9, 19)), ("provider_0.npz: its ask grid differs",), id="npz-grid-differs"
    ),
    pytest.param("q", npz(tables=None), ("provider_0.npz: cannot read the Q tables",), id="npz-no-tables"),
    pytest.param(
        "q",
        manifest(qlearning={"alpha": "x"}),
        (M, "'qlearning'", "'alpha': expected a finite number"),
        id="qlearning-alpha-string",
    ),
    pytest.param(
        "q",
        manifest(qlearning={"alpha": 0.1, "momentum": 1}),
        (M, "'qlearning'", "momentum"),
        id="qlearning-unknown-field",
    ),
    pytest.param(
        "q", manifest(qlearning={"grid": [0.5, 0.1]}), (M, "'qlearning'", "increasing"), id="qlearning-grid-decreasing"
    ),
    pytest.param(
        "q", manifest(converged_share=math.nan), (M, "'converged_share'", "finite number"), id="converged-share-nan"
    ),
]


def load_direct(run: Path) -> None:
    load_policies(run, make_batched("uniform", "first_price", 1))


def profiles(run: Path) -> None:
    learned_profiles(run, make_batched("uniform", "first_price", 1))


ENTRY_POINTS = [
    pytest.param(load_direct, id="load_policies"),
    pytest.param(profiles, id="learned_profiles"),
    pytest.param(None, id="evaluate.py"),
]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind, edit, patterns", TAMPER_CASES)
def test_a_tampered_run_dir_is_refused_naming_file_and_field(
    runs, tmp_path, capsys, monkeypatch, kind, edit, patterns, entry
):
    monkeypatch.chdir(tmp_path)  # a payload that ran would leave 'pwned' here
    run = tmp_path / "run"
    shutil.copytree(runs[kind], run, symlinks=True)
    edit(run)
    before = snapshot(tmp_path)
    if entry is None:
        code, err = run_evaluate(evaluate_argv(tmp_path, {"--strategies": "markup"}, [f"--run-dir={run}"]), capsys)
        check_error(code, err, patterns)
    else:
        with pytest.raises(RunDirError) as err:
            entry(run)
        for pattern in patterns:
            assert re.search(pattern, str(err.value)), (pattern, str(err.value))
    assert snapshot(tmp_path) == before
    assert not os.path.exists(tmp_path / "pwned")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_the_untampered_runs_load(runs, tmp_path, capsys, entry):
    """The runs the tampering cases start from are accepted by every entry point."""
    for run in runs.values():
        if entry is None:
            code, err = run_evaluate(evaluate_argv(tmp_path, {}, ["--no-levers", f"--run-dir={run}"]), capsys)
            assert code == 0, err
        else:
            entry(run)
