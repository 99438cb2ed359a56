"""Bad input sweep of training: train.py's flags, ``--set`` pairs, ``--algo-kwargs``, ``--opponents``, config files,
run dirs and ``--resume`` of an edited run, and :class:`training.TrainConfig` built in Python.

Each case asserts a clear error (exit code 2 and one ``error:`` line, or argparse's usage error naming the flag, or a
ConfigError) whose message names the flag, ``--set`` pair, file or field and what was expected, and that nothing on
disk changed (every file, link and directory under the test's folder, byte for byte): no run dir, config.yaml or
checkpoint is written before the input is known to be good. Cases are data: add a line to a table to add a case.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import train as train_cli
from envs.config import ConfigError
from tests.envs.test_data_bad_input import snapshot
from training import TrainConfig, train

RUN = [
    "--scenario",
    "uniform",
    "--mechanism",
    "first_price",
    "--timesteps",
    "64",
    "--n-envs",
    "2",
    "--n-steps",
    "16",
    "--batch-size",
    "32",
    "--eval-every",
    "32",
    "--eval-episodes",
    "1",
    "--checkpoint-every",
    "0",
    "--no-progress",
]
PRESET = "configs/scenarios/uniform.yaml"


def run_train(argv: list[str], capsys) -> tuple[int, str]:
    """train.py's exit code and stderr (argparse's usage errors exit with 2 and name the flag)."""
    try:
        code = train_cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def check_error(code: int, err: str, patterns: tuple[str, ...]) -> None:
    """Exit code 2 and a message matching every pattern (``!pattern``: must not match), never a traceback."""
    assert code == 2, err
    assert "Traceback" not in err, err
    for pattern in patterns:
        if pattern.startswith("!"):
            assert not re.search(pattern[1:], err), (pattern, err)
        else:
            assert re.search(pattern, err), (pattern, err)


def nan_cases(flag: str, field: str) -> list:
    """A float flag given NaN, +inf and -inf (``--flag=-inf``: argparse would read ``-inf`` as a flag)."""
    return [
        pytest.param([f"{flag}={v}"], (f"{flag}: ", f"'{field}'", "finite number", v), id=f"{flag[2:]}-{v}")
        for v in ("nan", "inf", "-inf")
    ]


def set_cases(mechanism: str, key: str, values=(".nan", ".inf", "-.inf")) -> list:
    """A scenario field or mechanism parameter given NaN and infinities through ``--set`` (YAML spellings)."""
    spelled = {".nan": "nan", ".inf": "inf", "-.inf": "-inf"}
    return [
        pytest.param(
            ["--mechanism", mechanism, "--set", f"{key}={v}"],
            (f"--set {key}={spelled[v]}: ", f"'{key}'", "finite number", f"!{PRESET}"),
            id=f"set-{mechanism}-{key}={spelled[v]}",
        )
        for v in values
    ]


# ------------------------------------------------------------------------------------------------- flags
# A case is (extra argv, patterns the error must match). Later flags win over RUN's.

FLAG_CASES = [
    # NaN and infinities in every float field of TrainConfig
    *nan_cases("--learning-rate", "learning_rate"),
    *nan_cases("--gamma", "gamma"),
    *nan_cases("--ent-coef", "ent_coef"),
    *nan_cases("--log-std-init", "log_std_init"),
    *nan_cases("--target", "target"),
    # ranges of floats
    pytest.param(["--learning-rate", "0"], ("--learning-rate: ", "'learning_rate' must be > 0"), id="lr-zero"),
    pytest.param(["--learning-rate=-1e-3"], ("--learning-rate: ", "'learning_rate' must be > 0"), id="lr-negative"),
    pytest.param(["--gamma", "1.5"], ("--gamma: ", r"'gamma' must be in \[0, 1\]"), id="gamma-above-1"),
    pytest.param(["--gamma=-0.1"], ("--gamma: ", r"'gamma' must be in \[0, 1\]"), id="gamma-negative"),
    pytest.param(["--target", "many"], ("--target: ", "'target'", "finite number or one of"), id="target-word"),
    pytest.param(["--target", "1", "--eval-every", "0"], ("'target' needs eval_every > 0",), id="target-no-eval"),
    # counts: zero, negative, not integers
    *[
        pytest.param(
            [flag, value], (f"{flag}: ", f"'{flag[2:].replace('-', '_')}' must be >= 1"), id=f"{flag[2:]}-{value}"
        )
        for flag in (
            "--timesteps",
            "--n-envs",
            "--rounds",
            "--eval-episodes",
            "--n-steps",
            "--batch-size",
            "--n-epochs",
            "--torch-threads",
        )
        for value in ("0", "-3")
    ],
    *[
        pytest.param(
            [f"{flag}=-1"], (f"{flag}: ", f"'{flag[2:].replace('-', '_')}' must be >= 0"), id=f"{flag[2:]}-neg"
        )
        for flag in ("--checkpoint-every", "--eval-every", "--seed", "--selection-seed")
    ],
    pytest.param(["--timesteps", "1.5"], ("argument --timesteps: invalid int value",), id="timesteps-float"),
    pytest.param(["--n-envs", "many"], ("argument --n-envs: invalid int value",), id="n-envs-word"),
    pytest.param(["--mode", "greedy"], ("argument --mode: invalid choice",), id="mode-unknown"),
    pytest.param(["--algo", "dqn"], ("argument --algo: invalid choice",), id="algo-unknown"),
    # lists
    pytest.param(["--learners", ""], ("--learners: ", "'learners': expected agent ids or 'all'"), id="learners-empty"),
    pytest.param(["--learners", "provider_9"], ("'learners': unknown agent", "provider_9"), id="learners-unknown"),
    pytest.param(["--levers", ""], ("--levers: ", "'levers': expected a non-empty subset"), id="levers-empty"),
    pytest.param(["--levers", "bid,price"], ("--levers: ", "'levers'", "price"), id="levers-unknown"),
    pytest.param(["--net-arch", ""], ("--net-arch: ", "'net_arch': expected hidden layer sizes"), id="net-arch-empty"),
    pytest.param(["--net-arch", "64,0"], ("--net-arch: ", "'net_arch'", r"\[64, 0\]"), id="net-arch-zero"),
    pytest.param(["--net-arch", "64,x"], ("--net-arch 64,x: expected comma-separated int",), id="net-arch-word"),
    # --set: NaN and infinities in scenario fields and mechanism parameters, blamed on the pair, not the preset
    *set_cases("first_price", "bid_scale"),
    *set_cases("first_price", "value_scale"),
    *set_cases("first_price", "cost_high", (".inf",)),
    *set_cases("first_price", "max_inflation", (".inf",)),
    *set_cases("first_price", "list_price_scale", (".nan",)),
    *set_cases("first_price", "eta", (".nan",)),
    *set_cases("first_price", "prior_weight", (".nan", ".inf")),
    *set_cases("ucb_myerson", "reserve"),
    *set_cases("ucb_myerson", "exploration", (".nan", ".inf")),
    *set_cases("soft_rochet", "temperature", (".nan", ".inf")),
    *set_cases("soft_rochet", "w0", (".inf",)),
    *set_cases("rosa", "mu", (".nan",)),
    *set_cases("rosa", "cbar", (".inf",)),
    *set_cases("rosa", "alpha", (".nan",)),
    *set_cases("second_best", "gamma", (".inf",)),
    *set_cases("second_best", "b", (".nan",)),
    *set_cases("second_best", "delta_1", ("-.inf",)),
    *set_cases("myerson", "prior_weight", (".inf",)),
    pytest.param(
        ["--mechanism", "soft_rochet", "--set", "weights=[1, .inf]"],
        ("--set weights=", "'weights'", "finite number"),
        id="set-soft_rochet-weights-inf",
    ),
    pytest.param(
        ["--set", "bid_scale=-1"],
        ("--set bid_scale=-1: ", "'bid_scale' must be > 0", f"!{PRESET}"),
        id="set-bid_scale-negative",
    ),
    pytest.param(
        ["--set", "horizon=0"], ("--set horizon=0: ", "'horizon' must be >= 1", f"!{PRESET}"), id="set-horizon-zero"
    ),
    pytest.param(
        ["--set", "horizon=long"], ("--set horizon=long: ", "'horizon': expected an integer"), id="set-horizon-word"
    ),
    pytest.param(
        ["--set", "horizon=1e3"], ("--set horizon=1000.0: ", "'horizon': expected an integer"), id="set-horizon-float"
    ),
    pytest.param(
        ["--set", "n_providers=0"], ("--set n_providers=0: ", "'n_providers' must be >= 1"), id="set-n_providers-zero"
    ),
    pytest.param(
        ["--set", "cost_resample=never"], ("--set cost_resample=never: ", "one of"), id="set-cost_resample-unknown"
    ),
    pytest.param(
        ["--set", "quality=trusted"],
        ("--set quality=trusted: ", "parameter 'quality'", "one of"),
        id="set-quality-unknown",
    ),
    pytest.param(
        ["--set", "prior_weight=heavy"], ("--set prior_weight=heavy: ", "finite number"), id="set-prior_weight-word"
    ),
    pytest.param(
        ["--mechanism", "ucb_myerson", "--set", "bins=2.5"],
        ("--set bins=2.5: ", "'bins'", "integer"),
        id="set-bins-float",
    ),
    pytest.param(
        ["--mechanism", "ucb_myerson", "--set", "ironed=maybe"],
        ("--set ironed=maybe: ", "true or false"),
        id="set-ironed-word",
    ),
    pytest.param(["--set", "bogus=1"], ("--set bogus=1: ", r"unknown parameter\(s\) \['bogus'\]"), id="set-unknown"),
    pytest.param(["--set", "bid_scale"], ("--set 'bid_scale': expected KEY=VALUE",), id="set-no-equals"),
    pytest.param(["--set", "=1"], ("expected KEY=VALUE",), id="set-no-key"),
    pytest.param(["--set", "bid_scale=[1,"], ("--set 'bid_scale=\\[1,': cannot parse",), id="set-bad-yaml"),
    pytest.param(
        ["--set", "n_providers=3", "--set", "bid_scale=.nan"],
        ("--set bid_scale=nan: ", "!n_providers=3"),
        id="set-blames-the-bad-pair",
    ),
    # --algo-kwargs: keys checked against the SB3 class's signature, values finite
    pytest.param(
        ["--algo-kwargs", "n_epoch=3"],
        ("--algo-kwargs: ", r"unknown key\(s\) \['n_epoch'\]", "PPO accepts", "'n_epochs'", "'clip_range'"),
        id="algo-kwargs-ppo",
    ),
    pytest.param(
        ["--algo", "sac", "--algo-kwargs", "n_epochs=3"],
        (r"unknown key\(s\) \['n_epochs'\]", "SAC accepts", "'buffer_size'"),
        id="algo-kwargs-sac",
    ),
    pytest.param(
        ["--algo-kwargs", "policy_kwargs={}"],
        (r"unknown key\(s\) \['policy_kwargs'\]",),
        id="algo-kwargs-set-by-trainer",
    ),
    pytest.param(["--algo-kwargs", "device=cuda"], (r"unknown key\(s\) \['device'\]",), id="algo-kwargs-device"),
    pytest.param(
        ["--algo-kwargs", "clip_range=.nan"], ("--algo-kwargs: ", "'clip_range'", "finite number"), id="algo-kwargs-nan"
    ),
    pytest.param(["--algo-kwargs", "max_grad_norm=.inf"], ("'max_grad_norm'", "finite number"), id="algo-kwargs-inf"),
    pytest.param(
        ["--algo-kwargs", "rollout_buffer_kwargs={a: [1, -.inf]}"],
        ("'rollout_buffer_kwargs'", "finite number"),
        id="algo-kwargs-nested-inf",
    ),
    pytest.param(
        ["--algo-kwargs", "n_epochs"], ("--algo-kwargs 'n_epochs': expected KEY=VALUE",), id="algo-kwargs-no-equals"
    ),
    *[
        pytest.param(
            ["--mode", "simultaneous", "--learners", "all", "--algo", "qlearning", "--algo-kwargs", kwarg],
            ("--algo-kwargs: ", *patterns),
            id=f"qlearning-{kwarg}",
        )
        for kwarg, patterns in [
            ("bogus=1", (r"unknown key\(s\) \['bogus'\]", "QConfig accepts", "'alpha'")),
            ("alpha=.nan", ("'alpha'", "finite number")),
            ("gamma=1", ("'algo_kwargs'", "gamma must be in")),
            ("grid=[0.5, 0.2]", ("'algo_kwargs'", "increasing")),
            ("basis=relative", ("'basis'", "one of")),
        ]
    ],
    pytest.param(
        ["--mode", "simultaneous", "--algo", "qlearning"],
        ("every provider learns",),
        id="qlearning-with-fixed-opponents",
    ),
    pytest.param(["--algo", "qlearning"], ("runs in mode 'simultaneous' only",), id="qlearning-not-simultaneous"),
    pytest.param(
        ["--mode", "simultaneous", "--algo", "sac"], ("supports algo 'ppo' or 'qlearning'",), id="simultaneous-sac"
    ),
    # --opponents
    pytest.param(["--opponents", "a=b,c"], ("opponents 'a=b,c': 'c' is not an agent=spec pair",), id="opponents-a=b,c"),
    pytest.param(["--opponents", "provider_1=bne,"], ("is not an agent=spec pair",), id="opponents-trailing-comma"),
    pytest.param(
        ["--opponents", "greedy"], ("'greedy' is neither a strategy", "nor a run dir"), id="opponents-unknown-strategy"
    ),
    pytest.param(
        ["--opponents", "provider_7=bne"], (r"unknown agent\(s\) \['provider_7'\]",), id="opponents-unknown-agent"
    ),
    pytest.param(
        ["--learners", "provider_0", "--opponents", "provider_0=bne"],
        ("no strategy given for provider_1",),
        id="opponents-missing-agent",
    ),
    pytest.param(["--opponents", ""], ("give a strategy name, a run dir, or agent=spec pairs",), id="opponents-empty"),
    pytest.param(
        ["--mode", "simultaneous", "--learners", "provider_0", "--opponents", "bogus"],
        ("'bogus' is neither a strategy",),
        id="simultaneous-opponents-unknown",
    ),
    # --resume takes no other settings
    pytest.param(
        ["--resume", "--timesteps", "99"], ("--resume continues the run", "--timesteps"), id="resume-with-flags"
    ),
    pytest.param(
        ["--resume", "--set", "bid_scale=2"], ("--resume continues the run", "takes no .*--set"), id="resume-with-set"
    ),
]


@pytest.mark.parametrize("extra, patterns", FLAG_CASES)
def test_bad_flags_are_named_and_nothing_is_written(tmp_path, capsys, extra, patterns):
    before = snapshot(tmp_path)
    code, err = run_train([*RUN, "--run-dir", str(tmp_path / "run"), *extra], capsys)
    check_error(code, err, patterns)
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------------- files: configs and run dirs
# A case is (files to create under the test's folder, extra argv with {tmp} for that folder, patterns).

CFG = ["--config", "{tmp}/cfg.yaml"]
FILE_CASES = [
    pytest.param(
        {"cfg.yaml": "learning_rate: .nan\n"},
        CFG,
        ("cfg.yaml: ", "'learning_rate'", "finite number"),
        id="config-lr-nan",
    ),
    pytest.param(
        {"cfg.yaml": "gamma: -.inf\n"}, CFG, ("cfg.yaml: ", "'gamma'", "finite number"), id="config-gamma-inf"
    ),
    pytest.param(
        {"cfg.yaml": "rounds: many\n"}, CFG, ("cfg.yaml: ", "'rounds': expected an integer"), id="config-rounds-word"
    ),
    pytest.param({"cfg.yaml": "rounds: 0\n"}, CFG, ("cfg.yaml: ", "'rounds' must be >= 1"), id="config-rounds-zero"),
    pytest.param(
        {"cfg.yaml": "learning_rat: 0.1\n"},
        CFG,
        ("cfg.yaml: ", r"unknown field\(s\) \['learning_rat'\]"),
        id="config-unknown-field",
    ),
    pytest.param(
        {"cfg.yaml": "levers: bid\n"}, CFG, ("cfg.yaml: ", "'levers': expected a list"), id="config-levers-not-a-list"
    ),
    pytest.param(
        {"cfg.yaml": "overrides: [1, 2]\n"},
        CFG,
        ("cfg.yaml: ", "'overrides': expected a mapping"),
        id="config-overrides-not-a-mapping",
    ),
    pytest.param(
        {"cfg.yaml": "algo_kwargs: {n_epoch: 3}\n"},
        CFG,
        ("cfg.yaml: ", r"unknown key\(s\) \['n_epoch'\]"),
        id="config-algo-kwargs-unknown",
    ),
    pytest.param(
        {"cfg.yaml": "overrides: {bid_scale: .inf}\n"},
        CFG,
        ("cfg.yaml: field 'overrides': ", "'bid_scale'", "finite number", "!--set"),
        id="config-overrides-inf",
    ),
    pytest.param(
        {"cfg.yaml": "overrides: {bogus: 1}\n"},
        CFG,
        ("cfg.yaml: field 'overrides': ", "'bogus'"),
        id="config-overrides-unknown",
    ),
    pytest.param(
        {"cfg.yaml": "overrides: {n_providers: 3}\n"},
        [*CFG, "--set", "bid_scale=.nan"],
        ("--set bid_scale=nan: ", "!cfg.yaml"),
        id="config-then-set-blames-set",
    ),
    pytest.param(
        {"cfg.yaml": "learning_rate: 0.01\n"},
        [*CFG, "--learning-rate", "nan"],
        ("--learning-rate: ", "!cfg.yaml"),
        id="config-then-flag-blames-flag",
    ),
    pytest.param({"cfg.yaml": "scenario: [unclosed\n"}, CFG, ("cfg.yaml: not valid YAML",), id="config-bad-yaml"),
    pytest.param(
        {"cfg.yaml": "- 1\n- 2\n"}, CFG, ("cfg.yaml: expected a mapping at the top level",), id="config-a-list"
    ),
    pytest.param(
        {"cfg.yaml": "scenario: !!python/object/apply:os.system ['touch pwned']\n"},
        CFG,
        ("cfg.yaml: not valid YAML",),
        id="config-python-tag",
    ),
    pytest.param({"cfg.yaml": b"scenario: caf\xe9\n"}, CFG, ("cfg.yaml: not UTF-8",), id="config-not-utf8"),
    pytest.param({}, CFG, ("cfg.yaml: config file not found",), id="config-missing"),
    pytest.param({"cfg.yaml/x": "a: 1\n"}, CFG, ("cfg.yaml: is a directory",), id="config-a-directory"),
    pytest.param(
        {"runfile": "not a dir"},
        ["--run-dir", "{tmp}/runfile"],
        ("runfile is a file, not a directory",),
        id="run-dir-is-a-file",
    ),
    pytest.param(
        {"runfile": "not a dir"},
        ["--run-dir", "{tmp}/runfile", "--mode", "simultaneous", "--learners", "all"],
        ("runfile is a file, not a directory",),
        id="simultaneous-run-dir-is-a-file",
    ),
    pytest.param(
        {"run/config.yaml": "seed: 0\n"}, ["--run-dir", "{tmp}/run"], ("already holds a run",), id="run-dir-holds-a-run"
    ),
    pytest.param(
        {"run/manifest.json": "{}"},
        ["--run-dir", "{tmp}/run", "--mode", "simultaneous", "--learners", "all"],
        ("already holds a run",),
        id="simultaneous-run-dir-holds-a-run",
    ),
    pytest.param(
        {"cfg.yaml": "seed: 1\n"},
        ["--resume", "--run-dir", "{tmp}/run", *CFG],
        ("takes no --config",),
        id="resume-with-config",
    ),
    pytest.param(
        {},
        ["--resume", "--run-dir", "{tmp}/nothing"],
        ("nothing has no config.yaml; nothing to resume",),
        id="resume-without-a-run",
    ),
    pytest.param(
        {"runfile": "x"},
        ["--resume", "--run-dir", "{tmp}/runfile"],
        ("runfile is a file",),
        id="resume-run-dir-is-a-file",
    ),
    pytest.param({}, ["--resume"], ("--resume needs --run-dir",), id="resume-without-run-dir"),
]


def make_files(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


@pytest.mark.parametrize("files, extra, patterns", FILE_CASES)
def test_bad_config_files_and_run_dirs_are_named_and_left_alone(tmp_path, capsys, monkeypatch, files, extra, patterns):
    monkeypatch.chdir(tmp_path)  # a YAML tag that ran would leave 'pwned' here
    make_files(tmp_path, files)
    before = snapshot(tmp_path)
    extra = [a.format(tmp=tmp_path) for a in extra]
    # --resume takes no other settings: those cases get only their own flags
    argv = extra if "--resume" in extra else [*RUN, "--run-dir", str(tmp_path / "run"), *extra]
    code, err = run_train(argv, capsys)
    check_error(code, err, patterns)
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------------------------ trained runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished best-response run (provider_0 learned against truthful provider_1)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train(
        TrainConfig(
            scenario="uniform",
            mechanism="first_price",
            timesteps=64,
            n_envs=2,
            n_steps=16,
            batch_size=32,
            eval_every=0,
            eval_episodes=1,
            checkpoint_every=0,
            run_dir=str(run),
        ),
        progress=False,
    )
    return run


def edit_config(**changes) -> Callable[[Path], None]:
    """Edit the run's config.yaml: ``None`` removes a key."""

    def edit(run: Path) -> None:
        saved = yaml.safe_load((run / "config.yaml").read_text())
        saved.update(changes)
        (run / "config.yaml").write_text(yaml.safe_dump({k: v for k, v in saved.items() if v is not None}))

    return edit


def write(name: str, text: str) -> Callable[[Path], None]:
    return lambda run: (run / name).write_text(text)


def edit_state(**changes) -> Callable[[Path], None]:
    """Edit the run's checkpoints/state.json."""

    def edit(run: Path) -> None:
        path = run / "checkpoints" / "state.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return edit


RESUME_CASES = [
    pytest.param(
        edit_config(n_envs=32), ("config.yaml: ", r"\['n_envs'\] changed since the run started"), id="edited-n_envs"
    ),
    pytest.param(edit_config(timestep=9), ("config.yaml: ", r"unknown key\(s\) \['timestep'\]"), id="unknown-key"),
    pytest.param(edit_config(timesteps=32), ("config.yaml: ", "can go further, not back"), id="fewer-timesteps"),
    pytest.param(
        edit_config(learning_rate=math.nan),
        ("config.yaml: ", "'learning_rate'", "finite number"),
        id="learning-rate-nan",
    ),
    pytest.param(edit_config(gamma=math.inf), ("config.yaml: ", "'gamma'", "finite number"), id="gamma-inf"),
    pytest.param(
        edit_config(timesteps="64"), ("config.yaml: ", "'timesteps': expected an integer"), id="timesteps-as-string"
    ),
    pytest.param(edit_config(mode="solo"), ("config.yaml: ", "'mode': expected one of"), id="mode-unknown"),
    pytest.param(edit_config(levers=["bid", "price"]), ("config.yaml: ", "'levers'"), id="levers-unknown"),
    pytest.param(
        edit_config(overrides={"bid_scale": math.nan}),
        ("config.yaml: field 'overrides': field 'bid_scale'", "finite number"),
        id="overrides-nan",
    ),
    pytest.param(
        edit_config(overrides={"bogus": 1}), ("config.yaml: field 'overrides'", "'bogus'"), id="overrides-unknown"
    ),
    pytest.param(
        edit_config(algo_kwargs={"n_epoch": 3}),
        ("config.yaml: ", r"unknown key\(s\) \['n_epoch'\]"),
        id="algo-kwargs-unknown",
    ),
    pytest.param(write("config.yaml", "seed: [unclosed\n"), ("config.yaml: not valid YAML",), id="not-yaml"),
    pytest.param(write("config.yaml", "- a list\n"), ("config.yaml: expected a mapping",), id="a-list"),
    pytest.param(
        write("config.yaml", "seed: !!python/object/apply:os.system ['true']\n"),
        ("config.yaml: not valid YAML",),
        id="python-tag",
    ),
    pytest.param(write("checkpoints/state.json", "{not json"), ("state.json: not valid JSON",), id="state-not-json"),
    pytest.param(write("checkpoints/state.json", "[1]"), ("state.json: expected a mapping",), id="state-a-list"),
    pytest.param(
        edit_state(completed_stages="1"),
        ("state.json: field 'completed_stages': expected an integer",),
        id="state-completed-stages-string",
    ),
    pytest.param(
        edit_state(model_steps={"provider_0": "64"}),
        (r"state.json: field 'model_steps'\.provider_0",),
        id="state-model-steps-string",
    ),
    pytest.param(
        edit_state(stages="provider_0"), ("state.json: field 'stages': expected a list",), id="state-stages-string"
    ),
    pytest.param(edit_state(evil=1), (r"state.json: unknown field\(s\) \['evil'\]",), id="state-unknown-field"),
]


@pytest.mark.parametrize("edit, patterns", RESUME_CASES)
def test_resume_of_an_edited_run_is_refused_and_leaves_it_alone(trained, tmp_path, capsys, edit, patterns):
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    edit(run)
    before = snapshot(tmp_path)
    code, err = run_train(["--resume", "--run-dir", str(run), "--no-progress"], capsys)
    check_error(code, err, patterns)
    assert snapshot(tmp_path) == before


def tamper_manifest(**changes) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        manifest = json.loads((run / "manifest.json").read_text())
        (run / "manifest.json").write_text(json.dumps({**manifest, **changes}))

    return edit


OPPONENT_CASES = [
    pytest.param(write("manifest.json", "{not json"), ("manifest.json: not valid JSON",), id="manifest-not-json"),
    pytest.param(
        tamper_manifest(policies={"provider_0": "../../x.zip"}),
        ("manifest.json: ", "'policies'", r"'\.\."),
        id="policy-outside",
    ),
    pytest.param(
        tamper_manifest(levers="bid"), ("manifest.json: ", "'levers': expected a list"), id="levers-not-a-list"
    ),
    pytest.param(
        tamper_manifest(mechanism="second_price"),
        ("manifest.json: field 'mechanism'", "config.yaml says"),
        id="mechanism-disagrees",
    ),
    pytest.param(
        write("policies/provider_0.zip", "not a zip"),
        ("provider_0.zip: cannot read the policy weights",),
        id="policy-not-a-zip",
    ),
]


@pytest.mark.parametrize("edit, patterns", OPPONENT_CASES)
def test_a_tampered_opponent_run_dir_is_refused(trained, tmp_path, capsys, edit, patterns):
    opponent = tmp_path / "opponent"
    shutil.copytree(trained, opponent, symlinks=True)
    edit(opponent)
    before = snapshot(tmp_path)
    code, err = run_train(
        [
            *RUN,
            "--run-dir",
            str(tmp_path / "run"),
            "--learners",
            "provider_1",
            "--opponents",
            f"provider_0={opponent},provider_1=truthful",
        ],
        capsys,
    )
    check_error(code, err, patterns)
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------------------- TrainConfig in Python

PYTHON_CASES = [
    *[
        pytest.param({name: value}, (f"train config: field '{name}'", "finite number"), id=f"{name}={value}")
        for name in ("learning_rate", "gamma", "ent_coef", "log_std_init", "target")
        for value in (math.nan, math.inf, -math.inf)
    ],
    pytest.param({"timesteps": "1000"}, ("field 'timesteps': expected an integer",), id="timesteps-string"),
    pytest.param({"timesteps": True}, ("field 'timesteps': expected an integer",), id="timesteps-bool"),
    pytest.param({"net_arch": [64, "x"]}, (r"field 'net_arch'\[1\]: expected an integer",), id="net-arch-string"),
    pytest.param({"overrides": ["bid_scale"]}, ("field 'overrides': expected a mapping",), id="overrides-list"),
    pytest.param({"algo_kwargs": {"gae_lambda": math.nan}}, ("'gae_lambda'", "finite number"), id="algo-kwargs-nan"),
]


@pytest.mark.parametrize("fields, patterns", PYTHON_CASES)
def test_train_config_built_in_python_is_checked_the_same_way(fields, patterns):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**fields)
    for pattern in patterns:
        assert re.search(pattern, str(err.value)), (pattern, str(err.value))
