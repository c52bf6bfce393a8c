"""Validate sandbox responses against the ``definitions`` of Sage's Swagger 2.0 file.

By default the definitions come from ``sage_v31_definitions.json`` beside this module: the part
of Sage's ``sage-accounting-v3.1.swagger.json`` that the sandbox serves, without Sage's prose,
made by ``tools/make_swagger_subset.py`` (run it again when the sandbox serves a new resource).
Set ``SAGE_SWAGGER_PATH`` to the path of Sage's full file to validate against that instead.

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
SUBSET_PATH = Path(__file__).resolve().with_name("sage_v31_definitions.json")


class SwaggerNotFound(FileNotFoundError):
    """The Swagger file could not be found."""


def swagger_path():
    """``SAGE_SWAGGER_PATH`` when set, else the committed subset; raises :class:`SwaggerNotFound`."""
    value = os.environ.get(ENV_VAR)
    path = Path(value).expanduser() if value else SUBSET_PATH
    if not path.is_file():
        if value:
            raise SwaggerNotFound(
                f"{ENV_VAR}={value}: no such file. Point it at sage-accounting-v3.1.swagger.json "
                f"(Swagger 2.0, Sage Business Cloud Accounting v3.1), or unset {ENV_VAR} to use {SUBSET_PATH.name}.")
        raise SwaggerNotFound(f"{path} is missing: restore it from git or set {ENV_VAR} to Sage's Swagger file.")
    return path


def load_swagger(path=None):
    """Parsed Swagger document (the full file or the committed subset: both have ``definitions``)."""
    return _load(str(path or swagger_path()))


@lru_cache(maxsize=4)
def _load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _body_ref(operation):
    for parameter in (operation or {}).get("parameters", ()):
        if parameter.get("in") == "body" and "$ref" in parameter.get("schema", {}):
            return parameter["schema"]["$ref"].rsplit("/", 1)[-1]
    return None


def resource_definitions(doc=None):
    """``{resource: {"item": ..., "post": ..., "put": ...}}``: definition names per resource.

    The subset stores this map; for Sage's full file it is read from ``paths`` (the item is what
    ``GET /<resource>/{key}`` returns, the others the request bodies; absent ones are left out).
    """
    doc = load_swagger() if doc is None else doc
    if "resources" in doc:
        return doc["resources"]
    found = {}
    for path, operations in doc.get("paths", {}).items():
        if path.count("/") != 2 or not path.endswith("/{key}"):
            continue
        resource = path[1:-len("/{key}")]
        item = ((operations.get("get") or {}).get("responses", {}).get("200", {}).get("schema") or {}).get("$ref")
        if not item:
            continue
        entry = {"item": item.rsplit("/", 1)[-1]}
        for verb, operation in (("post", doc["paths"].get("/" + resource, {}).get("post")),
                                ("put", operations.get("put"))):
            if _body_ref(operation):
                entry[verb] = _body_ref(operation)
        found[resource] = entry
    return found


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


def validator(definition, path=None):
    """A ``jsonschema`` validator for ``#/definitions/<definition>`` with ``$ref`` resolution."""
    return _validator(definition, str(path or swagger_path()))


@lru_cache(maxsize=64)
def _validator(definition, path):
    import jsonschema

    definitions = {name: relax(body) for name, body in _load(path)["definitions"].items()}
    if definition not in definitions:
        raise KeyError(f"Swagger has no definition {definition!r}")
    root = {"$ref": f"#/definitions/{definition}", "definitions": definitions}
    return jsonschema.Draft4Validator(root, format_checker=jsonschema.FormatChecker())


def validate(instance, definition):
    """Raise ``jsonschema.ValidationError`` unless ``instance`` matches the definition."""
    validator(definition).validate(instance)
