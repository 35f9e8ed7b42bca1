"""Model categories onto dataset classes: names, --map rules, and the ImageNet roll-up."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from annotator.errors import InvalidInputError
from annotator.prelabel.mapping import (
    MapRule,
    build_class_map,
    imagenet_hierarchy,
    parse_rules,
)


@pytest.fixture(scope="module")
def imagenet() -> list[str]:
    from torchvision.models import MobileNet_V2_Weights

    return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def _names(categories: list[str], group: str) -> set[str]:
    return {categories[i] for i in imagenet_hierarchy().members(group)}


def test_hierarchy_file_matches_torchvision_categories(imagenet: list[str]) -> None:
    hierarchy = imagenet_hierarchy()
    assert hierarchy.applies_to(imagenet)
    assert all(imagenet[i] == name for i, name in hierarchy.check.items())
    assert _names(imagenet, "cat") == {
        "tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}  # fmt: skip
    dogs = _names(imagenet, "dog")
    assert len(dogs) == 118 and {"Chihuahua", "malamute", "Mexican hairless"} <= dogs
    assert not dogs & {"timber wolf", "red fox", "hyena"}
    birds = _names(imagenet, "bird")
    assert len(birds) == 59 and {"cock", "bald eagle", "black swan", "albatross"} <= birds
    assert _names(imagenet, "person") == {"ballplayer", "groom", "scuba diver"}
    assert {"sports car", "school bus", "canoe", "airliner"} <= _names(imagenet, "vehicle")


def test_hierarchy_groups_list_each_index_once_and_have_known_parents() -> None:
    data = json.loads(
        resources.files("annotator.prelabel").joinpath("imagenet_hierarchy.json").read_text()
    )
    seen: dict[int, str] = {}
    names = {g["name"] for g in data["groups"]}
    for group in data["groups"]:
        assert group["parent"] is None or group["parent"] in names
        for first, last in group["ranges"]:
            assert 0 <= first <= last <= 999
            for i in range(first, last + 1):
                assert i not in seen, f"index {i} in {seen.get(i)} and {group['name']}"
                seen[i] = group["name"]
    assert "WordNet" in data["about"]


def test_roll_up_sends_breeds_to_coarse_classes(imagenet: list[str]) -> None:
    cmap = build_class_map(imagenet, ["cat", "dog", "bird"], [], "mobilenet_v2", "pets")
    by_name = dict(zip(imagenet, cmap.targets, strict=True))
    assert by_name["Egyptian cat"] == "cat"
    assert by_name["malamute"] == "dog"
    assert by_name["bald eagle"] == "bird"
    assert by_name["lion"] is None and by_name["espresso"] is None
    assert cmap.counts() == {"cat": 5, "dog": 118, "bird": 59}


def test_names_match_case_insensitively_and_rules_come_first(imagenet: list[str]) -> None:
    rules = parse_rules(["espresso=Coffee", "Egyptian cat=dog", "big cat=cat"])
    cmap = build_class_map(imagenet, ["Cat", "dog", "coffee", "Zebra"], rules, "m", "pets")
    by_name = dict(zip(imagenet, cmap.targets, strict=True))
    assert by_name["espresso"] == "coffee"
    assert by_name["Egyptian cat"] == "dog"  # a rule naming the category beats its group
    assert by_name["tabby"] == "Cat"
    assert by_name["lion"] == "Cat"  # a rule naming a group
    assert by_name["zebra"] == "Zebra"


def test_detection_categories_map_by_name_never_background() -> None:
    categories = ["__background__", "person", "N/A", "dog"]
    cmap = build_class_map(categories, ["person", "dog", "N/A"], [], "det", "street")
    assert cmap.targets == [None, "person", None, "dog"]


def test_roll_up_only_for_the_imagenet_list() -> None:
    other = [f"class {i}" for i in range(1000)]
    other[151] = "dog"
    cmap = build_class_map(other, ["dog"], [], "m", "d")
    assert cmap.counts() == {"dog": 1}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (["espresso=coffe"], "--map espresso=coffe: dataset 'pets' has no class 'coffe' "
                             "(classes: cat, dog, coffee)"),
        (["espreso=coffee"], "--map espreso=coffee: mobilenet_v2 has no category 'espreso' "
                             "(did you mean 'espresso'?)"),
    ],
)  # fmt: skip
def test_bad_rules_are_refused(imagenet: list[str], rules: list[str], message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_class_map(imagenet, ["cat", "dog", "coffee"], parse_rules(rules), "mobilenet_v2",
                        "pets")  # fmt: skip
    assert str(info.value) == message


@pytest.mark.parametrize("value", ["espresso", "=coffee", "espresso=", "  =  "])
def test_malformed_rules_are_refused(value: str) -> None:
    with pytest.raises(InvalidInputError, match="expected MODEL_CATEGORY=DATASET_CLASS"):
        parse_rules([value])


def test_rule_text_round_trips() -> None:
    assert parse_rules([" Egyptian cat = cat "]) == [MapRule("Egyptian cat", "cat")]
    assert str(MapRule("Egyptian cat", "cat")) == "Egyptian cat=cat"


def test_a_model_reaching_no_class_is_refused(imagenet: list[str]) -> None:
    with pytest.raises(InvalidInputError, match="add --map CATEGORY=CLASS"):
        build_class_map(imagenet, ["widget"], [], "mobilenet_v2", "parts")
