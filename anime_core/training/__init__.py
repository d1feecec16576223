"""Training: the plugin-side :class:`TrainingTask` contract and the one Accelerate loop."""

from anime_core.training.task import StepContext, TrainingTask

__all__ = ["StepContext", "TrainingTask"]
