"""The shared JSON-schema validator (`pilothouse.jsonschema_check`)."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.exceptions import SchemaError
from pilothouse.jsonschema_check import KEYWORDS, compile_schema, validate

OBJECT = {
    "type": "object",
    "required": ["city"],
    "properties": {"city": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("schema", "value", "problem"),
    [
        ({"type": "string"}, "a", None),
        ({"type": "string"}, 1, "1 is not of type string"),
        ({"type": ["string", "null"]}, None, None),
        ({"type": ["string", "null"]}, 2, "2 is not of type string/null"),
        ({"type": "integer"}, True, "True is not of type integer"),
        ({"type": "integer"}, 1.0, "1.0 is not of type integer"),
        ({"type": "number"}, False, "False is not of type number"),
        ({"type": "array"}, (1, 2), None),
        ({"enum": ["a", "b"]}, "c", "'c' is not one of ['a', 'b']"),
        ({"const": 3}, 4, "4 is not 3"),
        ({"enum": [0, 1]}, False, "False is not one of [0, 1]"),  # JSON: false is not 0
        ({"enum": [True, [1]]}, 1, "1 is not one of [True, [1]]"),
        ({"enum": [[1, {"a": True}]]}, [1, {"a": True}], None),
        ({"const": 1}, True, "True is not 1"),
        ({"const": 1}, 1.0, None),
        ({"pattern": "^A\\d$"}, "A1", None),
        ({"pattern": "^A\\d$"}, "B1", "'B1' does not match /^A\\d$/"),
        ({"minimum": 0}, -1, "-1 is not >= 0"),
        ({"maximum": 100}, 500, "500 is not <= 100"),
        ({"exclusiveMinimum": 0}, 0, "0 is not > 0"),
        ({"exclusiveMaximum": 1}, 1, "1 is not < 1"),
        ({"minLength": 2}, "a", "'a' has fewer than 2 characters"),
        ({"maxItems": 1}, [1, 2], "[1, 2] has more than 1 items"),
        ({"items": {"type": "integer"}}, [1, "x"], "item 1: 'x' is not of type integer"),
        ({"not": {"const": "root"}}, "root", "'root' matches a forbidden value"),
        (OBJECT, {"city": "Oslo", "n": 2}, None),
        (OBJECT, {"city": "Oslo", "n": -1}, "property 'n': -1 is not >= 0"),
        (OBJECT, {"n": 1}, "missing required property 'city'"),
        (OBJECT, {"city": "Oslo", "x": 1}, "unexpected property 'x'"),
        (OBJECT, "Oslo", "'Oslo' is not of type object"),
        (
            {"additionalProperties": {"type": "integer"}},
            {"a": "b"},
            "property 'a': 'b' is not of type integer",
        ),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, None, None),
        (
            {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "x",
            "none of the alternatives holds: 'x' is not of type integer; 'x' is not of type null",
        ),
        (
            {"oneOf": [{"minimum": 0}, {"maximum": 10}]},
            5,
            "5 matches 2 of the alternatives, not exactly one",
        ),
        ({"allOf": [{"minimum": 0}, {"maximum": 10}]}, 11, "11 is not <= 10"),
        ({"title": "t", "description": "d", "format": "email", "examples": [1]}, "x", None),
        ({}, object, None),
    ],
)
def test_keywords_and_messages(schema: dict[str, Any], value: Any, problem: str | None) -> None:
    assert compile_schema(schema)(value) == problem
    assert validate(value, schema) == problem


def test_refs_resolve_against_the_root_and_may_recurse() -> None:
    tree = {
        "$ref": "#/$defs/node",
        "$defs": {
            "node": {
                "type": "object",
                "required": ["v"],
                "properties": {
                    "v": {"type": "integer"},
                    "kids": {"items": {"$ref": "#/$defs/node"}},
                },
            }
        },
    }
    check = compile_schema(tree)
    assert check({"v": 1, "kids": [{"v": 2, "kids": []}]}) is None
    assert check({"v": 1, "kids": [{"v": "x"}]}) == (
        "property 'kids': item 0: property 'v': 'x' is not of type integer"
    )
    with pytest.raises(SchemaError, match="points at nothing"):
        compile_schema({"$ref": "#/$defs/missing"})
    with pytest.raises(SchemaError, match="only local references"):
        compile_schema({"$ref": "http://example.com/s.json"})


def test_lenient_ignores_what_does_not_apply_strict_does_not() -> None:
    # the specification: a keyword for another type says nothing about this value
    for schema in (
        {"minimum": 1},
        {"pattern": "a"},
        {"minLength": 1},
        {"items": {}},
        {"required": ["a"]},
    ):
        assert compile_schema(schema)(None) is None
        assert compile_schema(schema, strict=True)(None) is not None
    assert compile_schema({"frobnicate": 1})(1) is None  # unknown keyword: ignored
    assert compile_schema({"description": "d", "maximum": 3}, strict=True)(2) is None
    with pytest.raises(SchemaError, match="unknown keyword 'format'"):
        compile_schema({"format": "uuid"}, strict=True)  # unchecked: would allow anything
    with pytest.raises(SchemaError) as info:
        compile_schema({"items": {"maxi": 3}}, strict=True)
    assert info.value.path == ("items", "maxi")
    assert "unknown keyword 'maxi'" in str(info.value) and str(list(KEYWORDS)) in str(info.value)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "str"}, "type must be one of"),
        ({"enum": []}, "enum must be a non-empty list"),
        ({"pattern": "("}, "invalid regular expression"),
        ({"minimum": "1"}, "minimum must be a number"),
        ({"maxLength": -1}, "maxLength must be a non-negative integer"),
        ({"anyOf": []}, "anyOf must be a non-empty list"),
        ({"required": "a"}, "required must be a list"),
        ({"properties": []}, "properties must map"),
        ({"items": 3}, "a schema must be a mapping"),
    ],
)
def test_malformed_schemas_raise_with_the_path(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        compile_schema(schema)


def test_importing_it_loads_no_heavy_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import pilothouse.jsonschema_check; "
        "print(sorted(m for m in ('re', 'json', 'pydantic', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pydantic" not in out.stdout and "yaml" not in out.stdout


PAYMENT = {  # tau-airline: at most one certificate, one credit card, three gift cards
    "type": "array",
    "uniqueItems": True,
    "items": {
        "type": "object",
        "properties": {"kind": {"enum": ["certificate", "credit_card", "gift_card"]}},
        "required": ["kind"],
    },
    "allOf": [
        {"contains": {"properties": {"kind": {"const": "certificate"}}}, "minContains": 0,
         "maxContains": 1},
        {"contains": {"properties": {"kind": {"const": "credit_card"}}}, "minContains": 0,
         "maxContains": 1},
        {"contains": {"properties": {"kind": {"const": "gift_card"}}}, "minContains": 0,
         "maxContains": 3},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("schema", "value", "problem"),
    [
        ({"contains": {"const": 2}}, [1, 2], None),
        ({"contains": {"const": 2}}, [1], "0 item(s) match the `contains` schema, fewer than 1"),
        ({"contains": {"const": 2}}, [], "0 item(s) match the `contains` schema, fewer than 1"),
        ({"contains": {"const": 2}, "minContains": 0}, [], None),
        (
            {"contains": {"const": 2}, "maxContains": 1},
            [2, 2],
            "2 item(s) match the `contains` schema, more than 1",
        ),
        ({"contains": {"type": "string"}, "minContains": 2}, ["a", 1, "b"], None),
        ({"minContains": 5}, [1], None),  # without `contains` the bounds say nothing
        ({"uniqueItems": True}, [1, 2, 3], None),
        ({"uniqueItems": True}, [1, 1.0], "items 0 and 1 are equal (1.0); items must be unique"),
        ({"uniqueItems": True}, [True, 1], None),  # JSON: true is not 1
        ({"uniqueItems": True}, [{"a": [1]}, {"a": [1.0]}], "items 0 and 1 are equal"
         " ({'a': [1.0]}); items must be unique"),
        ({"uniqueItems": False}, [1, 1], None),
        (PAYMENT, [{"kind": "credit_card"}, {"kind": "gift_card", "id": 1}], None),
        (
            PAYMENT,
            [{"kind": "credit_card", "id": 1}, {"kind": "credit_card", "id": 2}],
            "2 item(s) match the `contains` schema, more than 1",
        ),
        (
            PAYMENT,
            [{"kind": "gift_card", "id": i} for i in range(4)],
            "4 item(s) match the `contains` schema, more than 3",
        ),
    ],
)  # fmt: skip
def test_contains_and_unique_items(schema: dict[str, Any], value: Any, problem: str | None) -> None:
    assert compile_schema(schema)(value) == problem
    assert compile_schema(schema, strict=True)(value) == problem


def test_contains_and_unique_items_strict_and_malformed() -> None:
    assert compile_schema({"uniqueItems": True})("ab") is None  # not a list: lenient says nothing
    assert compile_schema({"uniqueItems": True}, strict=True)("ab") == "'ab' is not a list"
    assert compile_schema({"contains": {}}, strict=True)(3) == "3 is not a list"
    with pytest.raises(SchemaError, match="uniqueItems must be true or false"):
        compile_schema({"uniqueItems": "yes"})
    with pytest.raises(SchemaError, match="maxContains must be a non-negative integer"):
        compile_schema({"contains": {}, "maxContains": -1})
    with pytest.raises(SchemaError, match="minContains must be a non-negative integer"):
        compile_schema({"minContains": 1.5})
    # hostile input: a long list is checked in linear time, and unhashable odd values work
    assert compile_schema({"uniqueItems": True})(list(range(100_000))) is None
    assert compile_schema({"uniqueItems": True})([{"a": {1, 2}}, {"a": {1, 2}}]) is not None


def test_agrees_with_the_jsonschema_library_on_the_new_keywords() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import random
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import jsonschema_differential as diff
    finally:
        sys.path.pop(0)
    rng = random.Random(11)
    checked = 0
    for _ in range(400):
        s = diff.schema(rng)
        if rng.random() < 0.5:
            s.setdefault("contains", diff.schema(rng, 1))
        s.setdefault("uniqueItems", True)
        ours, theirs = compile_schema(s), jsonschema.Draft202012Validator(s)
        for v in diff.VALUES:
            assert (ours(v) is None) == theirs.is_valid(v), (s, v, ours(v))
            checked += 1
    assert checked == 400 * len(diff.VALUES)
