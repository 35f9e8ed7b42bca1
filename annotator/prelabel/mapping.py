"""From a model's category names to a dataset's classes. For each category, in this order:
a `--map SRC=DST` rule naming the category; the category's own name being a class (case
ignored); then, for ImageNet-1k models, the category's groups in the ImageNet hierarchy from the
innermost out (`imagenet_hierarchy.json`: every dog breed is in 'dog', the domestic cats in
'cat', ...), each taken by a rule naming the group or by a class of the group's name. A category
that reaches no class is unmapped and its predictions are dropped. Pure Python."""

from __future__ import annotations

import difflib
import functools
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources

from annotator.errors import InvalidInputError

NEVER_MAPPED = frozenset({"__background__", "n/a"})
HIERARCHY_FILE = "imagenet_hierarchy.json"


@dataclass(frozen=True, slots=True)
class MapRule:
    """`--map "SRC=DST"`: model category (or hierarchy group) SRC becomes dataset class DST."""

    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source}={self.target}"


def parse_rules(values: Iterable[str]) -> list[MapRule]:
    rules = []
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise InvalidInputError(f"--map {value!r}: expected MODEL_CATEGORY=DATASET_CLASS")
        rules.append(MapRule(source.strip(), target.strip()))
    return rules


@dataclass(frozen=True)
class Hierarchy:
    """Groups of ImageNet-1k class indices. `owner[i]` is the innermost group listing index i."""

    parent: dict[str, str | None]
    owner: dict[int, str]
    check: dict[int, str]

    def applies_to(self, categories: Sequence[str]) -> bool:
        """Whether `categories` is the ImageNet-1k list the groups are written for."""
        return len(categories) == 1000 and all(
            categories[i] == name for i, name in self.check.items()
        )

    def chain(self, index: int) -> list[str]:
        """The groups of a category, innermost first."""
        groups: list[str] = []
        group = self.owner.get(index)
        while group is not None:
            groups.append(group)
            group = self.parent[group]
        return groups

    def members(self, group: str) -> set[int]:
        return {i for i in self.owner if group in self.chain(i)}


@functools.cache
def imagenet_hierarchy() -> Hierarchy:
    data = json.loads(resources.files(__package__).joinpath(HIERARCHY_FILE).read_text("utf-8"))
    parent: dict[str, str | None] = {}
    owner: dict[int, str] = {}
    for group in data["groups"]:
        parent[group["name"]] = group["parent"]
        for first, last in group["ranges"]:
            owner.update(dict.fromkeys(range(first, last + 1), group["name"]))
    check = {int(k): v for k, v in data["check"].items()}
    return Hierarchy(parent, owner, check)


@dataclass
class ClassMap:
    """The dataset class (or None) of each model category, by category index."""

    categories: list[str]
    classes: list[str]
    targets: list[str | None]
    rules: list[MapRule] = field(default_factory=list)

    def target(self, index: int) -> str | None:
        return self.targets[index] if 0 <= index < len(self.targets) else None

    def counts(self) -> dict[str, int]:
        """How many model categories reach each dataset class (classes reached only)."""
        reached = Counter(t for t in self.targets if t is not None)
        return {c: reached[c] for c in self.classes if reached[c]}

    def category_name(self, index: int) -> str:
        return self.categories[index] if 0 <= index < len(self.categories) else f"#{index}"


def build_class_map(
    categories: Sequence[str], classes: Sequence[str], rules: Sequence[MapRule], model: str,
    dataset: str,
) -> ClassMap:  # fmt: skip
    """Map `categories` onto `classes`; a rule naming a missing class or category is refused,
    and so is a model none of whose categories reaches a class."""
    by_class = {c.casefold(): c for c in classes}
    hierarchy = imagenet_hierarchy()
    hier = hierarchy if hierarchy.applies_to(categories) else None
    for_category, for_group = _resolve_rules(categories, rules, by_class, hier, model, dataset)
    targets = [
        _target(i, name, by_class, for_category, for_group, hier)
        for i, name in enumerate(categories)
    ]
    cmap = ClassMap(list(categories), list(classes), targets, list(rules))
    if not cmap.counts():
        raise InvalidInputError(
            f"none of the {len(categories)} categories of {model} matches a class of dataset "
            f"{dataset!r} ({', '.join(classes) or 'no classes'}): add --map CATEGORY=CLASS rules"
        )
    return cmap


def _resolve_rules(
    categories: Sequence[str], rules: Sequence[MapRule], by_class: dict[str, str],
    hier: Hierarchy | None, model: str, dataset: str,
) -> tuple[dict[int, str], dict[str, str]]:  # fmt: skip
    by_category: dict[str, int] = {}
    for i, name in enumerate(categories):
        by_category.setdefault(name.casefold(), i)
    groups = {g.casefold(): g for g in hier.parent} if hier else {}
    for_category: dict[int, str] = {}
    for_group: dict[str, str] = {}
    for rule in rules:
        target = by_class.get(rule.target.casefold())
        if target is None:
            known = ", ".join(by_class.values()) or "none"
            raise InvalidInputError(
                f"--map {rule}: dataset {dataset!r} has no class {rule.target!r} (classes: {known})"
            )
        key = rule.source.casefold()
        if key in by_category:
            for_category[by_category[key]] = target
        elif key in groups:
            for_group[groups[key]] = target
        else:
            hint = _did_you_mean(rule.source, [*categories, *groups.values()])
            raise InvalidInputError(f"--map {rule}: {model} has no category {rule.source!r}{hint}")
    return for_category, for_group


def _did_you_mean(word: str, names: list[str]) -> str:
    close = difflib.get_close_matches(word, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _target(
    index: int, name: str, by_class: dict[str, str], for_category: dict[int, str],
    for_group: dict[str, str], hier: Hierarchy | None,
) -> str | None:  # fmt: skip
    if name.casefold() in NEVER_MAPPED:
        return None
    if index in for_category:
        return for_category[index]
    if name.casefold() in by_class:
        return by_class[name.casefold()]
    for group in hier.chain(index) if hier else []:
        if group in for_group:
            return for_group[group]
        if group.casefold() in by_class:
            return by_class[group.casefold()]
    return None
