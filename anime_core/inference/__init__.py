"""Inference: image I/O, padding and tiling, and the pipelines returned by ``anime_core.load``."""

from anime_core.inference.pipeline import GeneratePipeline, Pipeline, RunArgs, RunReport, TranslatePipeline

__all__ = ["GeneratePipeline", "Pipeline", "RunArgs", "RunReport", "TranslatePipeline"]
