"""The JSON bodies the console accepts, checked by pydantic before any handler runs (a field out
of range or missing is a 422 naming it)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

Label = Annotated[str, Field(max_length=64, pattern=r"^[^\x00-\x1f]*$")]
Coordinate = Annotated[float, Field(ge=-1e5, le=1e5)]
MAX_MASK_PNG_CHARS = 12_000_000  # base64 of a painted mask


class Stamp(BaseModel):
    sec: int = Field(ge=0, le=2**31 - 1)
    nanosec: int = Field(ge=0, lt=1_000_000_000)

    @property
    def ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec


class PointIn(BaseModel):
    x: Coordinate
    y: Coordinate
    positive: bool = True


class BoxRequest(BaseModel):
    stamp: Stamp
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate]
    class_label: Label = ""


class MaskRequest(BaseModel):
    stamp: Stamp
    mask_png: str = Field(max_length=MAX_MASK_PNG_CHARS)
    class_label: Label = ""


class PointsRequest(BaseModel):
    stamp: Stamp
    points: list[PointIn] = Field(min_length=1, max_length=64)
    class_label: Label = ""


class IdsRequest(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=2**32 - 1)]] = Field(min_length=1, max_length=256)


class RenameRequest(BaseModel):
    id: int = Field(ge=1, le=2**32 - 1)
    label: Label


class SelectRequest(BaseModel):
    node: str = Field(min_length=2, max_length=256, pattern=r"^/[A-Za-z0-9_/]+$")


class PauseRequest(BaseModel):
    stamp: Stamp


class OfflineTarget(BaseModel):
    kind: Literal["box", "points", "mask"]
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] | None = None
    points: list[PointIn] | None = Field(default=None, max_length=64)
    mask_png: str | None = Field(default=None, max_length=MAX_MASK_PNG_CHARS)
    class_label: Label = ""


class RunRequest(BaseModel):
    targets: list[OfflineTarget] = Field(min_length=1, max_length=32)
