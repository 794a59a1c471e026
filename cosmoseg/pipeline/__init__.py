"""Pipelines: TOML config -> checked stage graph -> runner (device, seeds, progress, artifacts, resume)."""

from cosmoseg.pipeline.config import PipelineConfig, RunConfig, StageConfig, load_config, parse_config
from cosmoseg.pipeline.context import RunContext, SilentReporter, derive_seed
from cosmoseg.pipeline.device import resolve_device
from cosmoseg.pipeline.graph import Plan, PlannedStage, plan_pipeline
from cosmoseg.pipeline.params import param, parse_params
from cosmoseg.pipeline.runner import RunResult, StageRecord, run_pipeline
from cosmoseg.pipeline.stage import NoParams, Stage

__all__ = [
    "NoParams",
    "PipelineConfig",
    "Plan",
    "PlannedStage",
    "RunConfig",
    "RunContext",
    "RunResult",
    "SilentReporter",
    "Stage",
    "StageConfig",
    "StageRecord",
    "derive_seed",
    "load_config",
    "param",
    "parse_config",
    "parse_params",
    "plan_pipeline",
    "resolve_device",
    "run_pipeline",
]
