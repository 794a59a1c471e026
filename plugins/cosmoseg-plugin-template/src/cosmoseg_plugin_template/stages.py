"""The plugin face: the library wrapped as a cosmoseg stage and registered with @hookimpl."""

from __future__ import annotations

import dataclasses
from typing import Any

from cosmoseg import Field, Stage, hookimpl, param
from cosmoseg_plugin_template.smoothing import smooth_field


@dataclasses.dataclass(frozen=True)
class SmoothParams:
    radius: float = param(5.0, ge=0, doc="Gaussian standard deviation, Mpc/h")
    channel: str = param("", doc='the channel to smooth ("" = all)')


class SmoothStage(Stage[SmoothParams]):
    """Gaussian smoothing of a field, W(k) = exp(-k²R²/2) (template plugin)."""

    name = "template.smooth"
    inputs = {"field": Field}
    outputs = {"field": Field}

    def run(self, field: Field) -> dict[str, Field]:
        return {"field": smooth_field(field, self.params.radius, self.params.channel)}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"radius": 8.0}


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    register(SmoothStage)
