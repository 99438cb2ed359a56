"""Every YAML under configs/ loads into its typed config, and malformed ones name the file and field."""

from pathlib import Path

import pytest

import evaluate as evaluate_cli
from agents.training import load_train_config
from envs import ConfigError, load_scenario
from envs.config import from_dict, load_yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted((CONFIGS / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_scenario_presets_load(path):
    assert load_scenario(path).name == path.stem


@pytest.mark.parametrize("path", sorted((CONFIGS / "train").glob("*.yaml")), ids=lambda p: p.stem)
def test_train_configs_load(path):
    cfg = load_train_config(path)
    load_scenario(cfg.scenario, {k: v for k, v in cfg.overrides.items() if k == "n_providers"})


@pytest.mark.parametrize("path", sorted((CONFIGS / "evaluate").glob("*.yaml")), ids=lambda p: p.stem)
def test_evaluate_configs_load(path):
    from_dict(evaluate_cli.EvalConfig, load_yaml(path), str(path))


def test_malformed_yaml_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenario: capitals\ntimesteps: many\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'timesteps'.*integer"):
        load_train_config(bad)
    bad.write_text("scenario: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_train_config(bad)
    bad.write_text("scenario: capitals\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['learning_rat'\]"):
        load_train_config(bad)
