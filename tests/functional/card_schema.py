"""The subset of Google's Card v1 JSON the Gmail add-on sends, as a JSON Schema, and a validator.

Hand-written from the Card v1 reference
(https://developers.google.com/workspace/add-ons/reference/rpc/google.apps.card.v1): a card has
a `header` (`title`, `subtitle`) and `sections`, each a list of `widgets`; a widget is exactly
one of `textParagraph`, `decoratedText`, `buttonList` or `divider` (Card v1's `data` oneof).
Only the fields Warmline uses are allowed, so a typo (`subTitle`, `openlink`) fails here rather
than rendering as an empty card in Gmail.

The validator covers the draft 2020-12 keywords this schema uses (`$ref` to `$defs`, `type`,
`properties`, `required`, `additionalProperties: false`, `items`, `minItems`, `minProperties`,
`maxProperties`, `minLength`, `pattern`): jsonschema is not installed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_STRING = {"type": "string", "minLength": 1}

CARD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://warmline.invalid/schemas/card-v1-subset.json",
    "$defs": {
        "card": {
            "type": "object",
            "required": ["sections"],
            "additionalProperties": False,
            "properties": {
                "header": {
                    "type": "object",
                    "required": ["title"],
                    "additionalProperties": False,
                    "properties": {"title": _STRING, "subtitle": {"type": "string"}},
                },
                "sections": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/$defs/section"},
                },
            },
        },
        "section": {
            "type": "object",
            "required": ["widgets"],
            "additionalProperties": False,
            "properties": {
                "header": {"type": "string"},
                "widgets": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/widget"}},
            },
        },
        "widget": {
            # Card v1's `data` oneof: exactly one of these keys.
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
            "properties": {
                "textParagraph": {
                    "type": "object",
                    "required": ["text"],
                    "additionalProperties": False,
                    "properties": {"text": _STRING},
                },
                "decoratedText": {
                    "type": "object",
                    "required": ["text"],
                    "additionalProperties": False,
                    "properties": {
                        "topLabel": {"type": "string"},
                        "text": _STRING,
                        "bottomLabel": {"type": "string"},
                        # google.apps.card.v1.DecoratedText.wrapText
                        "wrapText": {"type": "boolean"},
                        "startIcon": {
                            "type": "object",
                            "additionalProperties": False,
                            "minProperties": 1,
                            "maxProperties": 1,
                            "properties": {"knownIcon": _STRING, "iconUrl": _STRING},
                        },
                    },
                },
                "buttonList": {
                    "type": "object",
                    "required": ["buttons"],
                    "additionalProperties": False,
                    "properties": {
                        "buttons": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/$defs/button"},
                        }
                    },
                },
                "divider": {"type": "object", "additionalProperties": False, "properties": {}},
            },
        },
        "button": {
            "type": "object",
            "required": ["text", "onClick"],
            "additionalProperties": False,
            "properties": {
                "text": _STRING,
                "onClick": {
                    "type": "object",
                    "required": ["openLink"],
                    "additionalProperties": False,
                    "properties": {
                        "openLink": {
                            "type": "object",
                            "required": ["url"],
                            "additionalProperties": False,
                            "properties": {
                                "url": {"type": "string", "pattern": r"^https?://[^\s]+$"}
                            },
                        }
                    },
                },
            },
        },
        # The HTTP runtime's answer that pushes one card.
        "push_card": {
            "type": "object",
            "required": ["action"],
            "additionalProperties": False,
            "properties": {
                "action": {
                    "type": "object",
                    "required": ["navigations"],
                    "additionalProperties": False,
                    "properties": {
                        "navigations": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["pushCard"],
                                "additionalProperties": False,
                                "properties": {"pushCard": {"$ref": "#/$defs/card"}},
                            },
                        }
                    },
                }
            },
        },
    },
    "$ref": "#/$defs/push_card",
}

_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def validate(value: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Return the problems of `value` against `schema` (default: the push-card answer)."""
    root = CARD_SCHEMA if schema is None else schema
    return list(_check(value, root, root, "$"))


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> Iterator[str]:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        yield from _check(value, root["$defs"][name], root, where)
    kind = schema.get("type")
    if kind is not None and (
        not isinstance(value, _TYPES[kind]) or (kind != "boolean" and isinstance(value, bool))
    ):
        yield f"{where}: expected {kind}, got {type(value).__name__}"
        return
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                yield f"{where}: missing {name}"
        if len(value) < schema.get("minProperties", 0):
            yield f"{where}: fewer than {schema['minProperties']} properties"
        if len(value) > schema.get("maxProperties", len(value)):
            yield f"{where}: more than {schema['maxProperties']} properties"
        for name, item in value.items():
            if name in props:
                yield from _check(item, props[name], root, f"{where}.{name}")
            elif schema.get("additionalProperties", True) is False:
                yield f"{where}: unexpected {name}"
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield f"{where}: fewer than {schema['minItems']} items"
        for i, item in enumerate(value):
            yield from _check(item, schema.get("items", {}), root, f"{where}[{i}]")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            yield f"{where}: empty string"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            yield f"{where}: {value!r} does not match {schema['pattern']}"
