"""Every YAML under configs/ loads into its typed config, and malformed ones name the file and field."""

from pathlib import Path

import pytest

from envs import ConfigError, load_scenario
from envs.config import from_dict, load_yaml
from evaluation import EvalConfig
from training import load_train_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted((CONFIGS / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_scenario_presets_load(path):
    assert load_scenario(path).name == path.stem


@pytest.mark.parametrize("path", sorted((CONFIGS / "train").glob("*.yaml")), ids=lambda p: p.stem)
def test_train_configs_load(path):
    cfg = load_train_config(path)
    load_scenario(cfg.scenario, {k: v for k, v in cfg.overrides.items() if k == "n_providers"})
    if cfg.algo == "ppo":  # a minibatch larger than the rollout is cut to the rollout (SB3 warns)
        assert cfg.batch_size <= cfg.n_envs * cfg.n_steps, f"{path.name}: batch_size exceeds one rollout"


@pytest.mark.parametrize("path", sorted((CONFIGS / "evaluate").glob("*.yaml")), ids=lambda p: p.stem)
def test_evaluate_configs_load(path):
    from_dict(EvalConfig, load_yaml(path), str(path))


def test_malformed_yaml_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenario: capitals\ntimesteps: many\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'timesteps'.*integer"):
        load_train_config(bad)
    bad.write_text("scenario: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_train_config(bad)
    bad.write_text("scenario: capitals\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['learning_rat'\]"):
        load_train_config(bad)


@pytest.mark.parametrize("cli, cls", [("train", "TrainConfig"), ("evaluate", "EvalConfig")])
def test_every_config_field_is_a_documented_flag(cli, cls):
    """The scripts' flags are generated from their config dataclasses, each with its docstring line as help, and
    ``--help`` prints them all (argparse %-formats help texts: a docstring's "95%" must not break it)."""
    import dataclasses
    import importlib

    from envs.config import field_docs

    module = importlib.import_module(cli)
    config = getattr(module, cls)
    docs = field_docs(config)
    parser = module.build_parser()
    options = {a.dest: a for a in parser._actions}
    printed = "".join(parser.format_help().split())  # wrapped at any space or hyphen: compared without whitespace
    for f in dataclasses.fields(config):
        assert docs.get(f.name), f"{cls}.{f.name} has no line in the Attributes section"
        assert f"--{f.name.replace('_', '-')}" in options[f.name].option_strings
        assert "".join(docs[f.name].split()) in printed, f"--help does not print {cls}.{f.name}'s docstring line"


def test_flags_keep_their_names_and_types():
    import evaluate as evaluate_cli
    import train as train_cli
    from envs.config import flags_to_dict
    from training import TrainConfig

    args = train_cli.parse_args(
        [
            "--mechanism",
            "second_price",
            "--n-envs",
            "4",
            "--learners",
            "provider_0,provider_1",
            "--net-arch",
            "32,32",
            "--set",
            "n_providers=3",
            "--set",
            "quality=prior",
            "--learning-rate",
            "1e-3",
        ]
    )
    data = flags_to_dict(args, TrainConfig)
    assert data == {
        "mechanism": "second_price",
        "n_envs": 4,
        "learners": ["provider_0", "provider_1"],
        "net_arch": [32, 32],
        "overrides": {"n_providers": 3, "quality": "prior"},
        "learning_rate": 1e-3,
    }
    assert load_train_config(**data).net_arch == [32, 32]
    args = evaluate_cli.parse_args(
        [
            "--mechanism",
            "first_price",
            "--mechanism",
            "myerson,rosa",
            "--run-dir",
            "a",
            "--run-dir",
            "b",
            "--train",
            "--train-timesteps",
            "10",
            "--tolerance",
            "0.01",
        ]
    )
    data = flags_to_dict(args, EvalConfig)
    assert data == {
        "mechanisms": ["first_price", "myerson", "rosa"],
        "run_dirs": ["a", "b"],
        "train": True,
        "train_timesteps": 10,
        "tolerance": 0.01,
    }
    with pytest.raises(ConfigError, match="--net-arch 32,x: expected comma-separated int"):
        flags_to_dict(train_cli.parse_args(["--net-arch", "32,x"]), TrainConfig)
