"""Training provider agents with Stable-Baselines3 against a mechanism (best response, iterated best response,
parameter sharing), logged to TensorBoard. The game (``envs``, ``mechanisms``) and the strategies (``agents``) know
nothing of it."""

from training.config import TrainConfig, load_train_config
from training.grid import train_learners
from training.trainer import TrainResult, format_summary, train

__all__ = ["TrainConfig", "load_train_config", "train", "TrainResult", "format_summary", "train_learners"]
