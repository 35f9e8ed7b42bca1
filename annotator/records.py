"""The annotation record at our edges: one label or box as it crosses a file boundary (import,
export, prelabel adapters), validated with pydantic and converted to the shared in-memory
`annotator.annotation.Label`. Its JSON Schema lives in schemas/annotation-record.json."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from annotator.annotation import Box, Label


class AnnotationRecord(BaseModel):
    """One whole-image label (no `bbox`) or one box, in pixels of the displayed image."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, description="Image path relative to the dataset root.")
    label: str = Field(min_length=1, description="Class name.")
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="[x, y, w, h]: top-left corner and size in displayed pixels."
    )
    score: float | None = Field(default=None, ge=0, le=1, description="Model confidence.")
    source: str = Field(default="human", description="'human' or the model's name.")
    review: Literal["pending", "accepted", "rejected"] = Field(
        default="accepted", description="Review state; human labels are accepted."
    )
    iscrowd: bool = Field(default=False, description="A crowd region (ignored in training).")

    @field_validator("bbox")
    @classmethod
    def _box(
        cls, value: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if value is None:
            return value
        if not all(math.isfinite(v) for v in value):
            raise ValueError("box values must be finite numbers")
        if value[2] <= 0 or value[3] <= 0:
            raise ValueError(f"box width and height must be > 0, got {value[2]} x {value[3]}")
        return value

    def to_label(self) -> Label:
        box = Box(*self.bbox) if self.bbox else None
        return Label(self.label, box, self.score, self.source, self.review, self.iscrowd)

    @classmethod
    def from_label(cls, image: str, label: Label) -> AnnotationRecord:
        bbox = (label.box.x, label.box.y, label.box.w, label.box.h) if label.box else None
        return cls(image=image, label=label.class_name, bbox=bbox, score=label.score,
                   source=label.source, review=label.review, iscrowd=label.iscrowd)  # fmt: skip
