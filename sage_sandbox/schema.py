"""Validate sandbox responses against the ``definitions`` of Sage's Swagger 2.0 file.

The Swagger file is located through ``SAGE_SWAGGER_PATH`` or, by default, at
``<repo>/../shared/reference/sage-accounting-v3.1.swagger.json``.

Swagger 2.0 cannot express ``null``; Sage nevertheless returns ``null`` for unset fields. The
validator therefore relaxes every *property* to also accept ``null`` (array items stay strict).
In the other direction it is stricter than the file: objects defined with ``properties`` reject
keys the definition does not list, so the sandbox cannot invent fields unnoticed.
Requires the ``jsonschema`` package (only needed by tests and tooling, not by the server).
"""

import copy
import json
import os
from functools import lru_cache
from pathlib import Path

ENV_VAR = "SAGE_SWAGGER_PATH"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sage-accounting-v3.1.swagger.json"


class SwaggerNotFound(FileNotFoundError):
    """The Swagger file could not be found."""


def swagger_path():
    """Path of the Swagger file (``SAGE_SWAGGER_PATH`` wins); raises :class:`SwaggerNotFound`."""
    path = Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)
    if not path.is_file():
        raise SwaggerNotFound(
            f"Sage Swagger file not found at {path}. Set {ENV_VAR} to the path of "
            "sage-accounting-v3.1.swagger.json (Swagger 2.0, Sage Business Cloud Accounting v3.1).")
    return path


@lru_cache(maxsize=4)
def load_swagger(path=None):
    """Parsed Swagger document."""
    with open(path or swagger_path(), encoding="utf-8") as handle:
        return json.load(handle)


def _nullable(prop):
    if "$ref" in prop:
        return {"anyOf": [prop, {"type": "null"}]}
    prop = dict(prop)
    if "type" in prop:
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        prop["type"] = [*types, "null"]
    if "enum" in prop:
        prop["enum"] = [*prop["enum"], None]
    return prop


def relax(schema):
    """Return a copy of a definition with nullable properties and closed objects (see module doc)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                for name, prop in node["properties"].items():
                    walk(prop)
                    node["properties"][name] = _nullable(prop)
                node.setdefault("additionalProperties", False)
            if isinstance(node.get("items"), dict):
                walk(node["items"])
        return node

    return walk(schema)


@lru_cache(maxsize=64)
def validator(definition, path=None):
    """A ``jsonschema`` validator for ``#/definitions/<definition>`` with ``$ref`` resolution."""
    import jsonschema

    definitions = {name: relax(body) for name, body in load_swagger(path)["definitions"].items()}
    if definition not in definitions:
        raise KeyError(f"Swagger has no definition {definition!r}")
    root = {"$ref": f"#/definitions/{definition}", "definitions": definitions}
    return jsonschema.Draft4Validator(root, format_checker=jsonschema.FormatChecker())


def validate(instance, definition):
    """Raise ``jsonschema.ValidationError`` unless ``instance`` matches the definition."""
    validator(definition).validate(instance)
