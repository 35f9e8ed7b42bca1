"""The records our importers accept, as pydantic models: a COCO image, category and annotation,
a YOLO label row and `data.yaml`. Every record read from a label file is validated here before it
is converted; a record that fails becomes a `Problem` naming the file, the record and the reason.

Lists of records are validated in one call (`validate_records`), which is fast on clean input and
falls back to naming each bad record on dirty input. The models are pydantic dataclasses (half
the validation cost of BaseModel at 100,000 records). Depends on pydantic and the store's
`Problem` only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from annotator.store.incoming import Problem

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Id = int | str
T = TypeVar("T")
INF = float("inf")

_CONFIG = ConfigDict(extra="ignore")


@dataclass(slots=True, config=_CONFIG)
class CocoImage:
    """An entry of `images`: `file_name` relative to the images folder; the size is optional
    (the file is measured) but, when given, must match the image as displayed."""

    id: Id
    file_name: Annotated[str, Field(min_length=1)]
    width: Annotated[int, Field(gt=0)] | None = None
    height: Annotated[int, Field(gt=0)] | None = None


@dataclass(slots=True, config=_CONFIG)
class CocoCategory:
    id: Id
    name: Annotated[str, Field(min_length=1)]
    supercategory: str | None = None

    @field_validator("name")
    @classmethod
    def _clean(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ch in value for ch in "\n\r\t"):
            raise ValueError("a category name must be non-empty, without control characters")
        return value


@dataclass(slots=True, config=_CONFIG)
class CocoAnnotation:
    """An entry of `annotations`: a box (`bbox` [x, y, w, h] in displayed pixels) or, without
    `bbox`, a whole-image label unless it has a polygon `segmentation` (the box is then the
    polygon's)."""

    image_id: Id
    category_id: Id
    id: Id | None = None
    bbox: tuple[Finite, Finite, Positive, Positive] | None = None
    iscrowd: Annotated[int, Field(ge=0, le=1)] = 0
    segmentation: Any = None


@dataclass(slots=True, config=_CONFIG)
class YoloRow:
    """One line of a YOLO label file: `class cx cy w h`, fractions of the displayed image."""

    class_id: Annotated[int, Field(ge=0)]
    cx: Finite
    cy: Finite
    w: Positive
    h: Positive


@dataclass(config=_CONFIG)
class YoloDataYaml:
    """`data.yaml`: split folders (a path or a list of paths, relative to the YAML's folder or
    to `path`) and class names (a list, or a dict with keys exactly 0..n-1)."""

    names: list[str] | dict[int, str]
    path: str | None = None
    train: str | list[str] | None = None
    val: str | list[str] | None = None
    test: str | list[str] | None = None
    nc: int | None = None

    @field_validator("names")
    @classmethod
    def _contiguous(cls, value: list[str] | dict[int, str]) -> list[str] | dict[int, str]:
        if isinstance(value, dict) and sorted(value) != list(range(len(value))):
            raise ValueError(f"names keys must be exactly 0..{len(value) - 1}")
        return value

    def class_names(self) -> list[str]:
        if isinstance(self.names, dict):
            return [str(self.names[i]).strip() for i in range(len(self.names))]
        return [str(n).strip() for n in self.names]


COCO_IMAGES = TypeAdapter(list[CocoImage])
COCO_CATEGORIES = TypeAdapter(list[CocoCategory])
COCO_ANNOTATIONS = TypeAdapter(list[CocoAnnotation])
YOLO_ROWS = TypeAdapter(list[YoloRow])

_FIELD_NAMES = {
    ("bbox", 0): "bbox x", ("bbox", 1): "bbox y", ("bbox", 2): "bbox width",
    ("bbox", 3): "bbox height", ("w",): "box width", ("h",): "box height",
}  # fmt: skip
_SIZES = {("bbox", 2), ("bbox", 3), ("w",), ("h",)}


def describe(error: Any) -> str:
    """A pydantic error as one short phrase: the field, then what is wrong with it."""
    loc = tuple(error["loc"][1:])
    name = _FIELD_NAMES.get(loc[:2], ".".join(str(p) for p in loc) or "record")
    if error["type"] == "greater_than" and loc[:2] in _SIZES:
        return f"{name} {error['input']!r}: zero or negative box size"
    if error["type"] == "missing":
        return f"{name}: missing"
    return f"{name}: {error['msg']}"


def where_of(what: str, record: Any, index: int) -> str:
    """How a message names a record: by its id when it has one, else by position."""
    if isinstance(record, dict) and isinstance(record.get("id"), int | str):
        return f"{what} id {record['id']}"
    return f"{what}s[{index}]"


def validate_records(
    adapter: TypeAdapter[list[T]],
    records: Sequence[Any],
    file: str,
    what: str,
    wheres: Sequence[str] | None = None,
) -> tuple[list[T], list[int], list[Problem]]:
    """Validate every record; returns the good ones, their positions, and a Problem per bad
    one (named by `wheres[i]`, else by its id or position)."""
    try:
        return adapter.validate_python(records), list(range(len(records))), []
    except ValidationError as exc:
        reasons: dict[int, str] = {}
        for error in exc.errors():
            index = error["loc"][0]
            if isinstance(index, int) and index not in reasons:
                reasons[index] = describe(error)
    problems = [
        Problem(file, wheres[i] if wheres else where_of(what, records[i], i), reason)
        for i, reason in sorted(reasons.items())
    ]
    keep = [i for i in range(len(records)) if i not in reasons]
    return adapter.validate_python([records[i] for i in keep]), keep, problems


def polygon_box(points: Sequence[float]) -> tuple[float, float, float, float]:
    """The box [x, y, w, h] around a polygon's x0, y0, x1, y1, ... (the min/max of its points)."""
    xs, ys = points[0::2], points[1::2]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def coco_polygons(seg: Any) -> tuple[list[list[float]] | None, str]:
    """The parts of a COCO polygon segmentation ([[x0, y0, x1, y1, ...], ...]), or None with
    the reason it is not one (an RLE mask, a part with fewer than 3 points, a non-number)."""
    if isinstance(seg, dict):
        return None, "an RLE mask without bbox: masks are not imported"
    if not isinstance(seg, list) or not seg or not all(isinstance(p, list) for p in seg):
        return None, "segmentation: neither a list of polygons nor an RLE mask"
    parts: list[list[float]] = []
    for part in seg:
        points = _numbers(part)
        if points is None or len(points) < 6 or len(points) % 2:
            return None, "segmentation: a polygon needs 3 or more x, y pairs of numbers"
        parts.append(points)
    return parts, ""


def _numbers(values: Sequence[Any]) -> list[float] | None:
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or v != v or abs(v) == INF:
            return None
        out.append(float(v))
    return out


def yolo_polygon(parts: Sequence[str]) -> tuple[int, list[float]] | str:
    """A YOLO segmentation row `class x0 y0 x1 y1 ...` (fractions) as (class id, points), or
    the reason it is refused."""
    try:
        class_id = int(parts[0])
    except ValueError:
        return f"class id {parts[0]!r}: not a whole number"
    if class_id < 0:
        return f"class id {class_id}: negative"
    points: list[float] = []
    for column, text in enumerate(parts[1:], 2):
        try:
            value = float(text)
        except ValueError:
            return f"polygon row: column {column} {text!r} is not a number"
        if value != value or abs(value) == INF:
            return f"polygon row: column {column} {text!r} is not a finite number"
        points.append(value)
    return class_id, points
