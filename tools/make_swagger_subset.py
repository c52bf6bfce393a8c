"""Regenerate ``sage_sandbox/sage_v31_definitions.json`` from Sage's own Swagger file.

The committed file is the part of Sage's ``sage-accounting-v3.1.swagger.json`` (Swagger 2.0,
Sage Business Cloud Accounting v3.1) that the sandbox's schema tests need, reduced to facts:
field names, types, formats, enums, lengths, bounds, ``required`` and the ``$ref`` structure.
Sage's prose (``description``, ``example``, ``title``) and its ``x-`` extensions are left out.

It holds:

* ``resources``: for each resource, the definitions of its item (``GET /<resource>/{key}``) and of
  its POST and PUT bodies, read from the file's ``paths``;
* ``definitions``: those definitions, ``Base``, and everything they ``$ref``, transitively.

The resources are the sandbox's own registry (``sage_sandbox.store.RESOURCES``), plus
:data:`PLANNED` and any ``--resource`` given. Usage::

    python3 tools/make_swagger_subset.py /path/to/sage-accounting-v3.1.swagger.json
    SAGE_SWAGGER_PATH=/path/to/sage-accounting-v3.1.swagger.json python3 tools/make_swagger_subset.py
    python3 tools/make_swagger_subset.py --check /path/to/...   # exit 1 when the committed file differs
"""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sage_sandbox import schema  # noqa: E402
from sage_sandbox.store import RESOURCES  # noqa: E402

# Resources the sandbox is about to serve: their definitions are committed ahead of the code.
PLANNED = ("sales_credit_notes", "purchase_credit_notes", "sales_quotes", "sales_estimates")
# Definitions the tests use directly, besides those of the resources.
EXTRA_DEFINITIONS = ("Base",)
# Schema keywords kept; every other key of a schema object (prose, x- extensions) is dropped.
KEPT = {"type", "format", "enum", "$ref", "items", "properties", "required", "maxLength", "minLength",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "maxItems", "minItems",
        "uniqueItems", "additionalProperties", "allOf", "anyOf", "oneOf", "default", "multipleOf"}


def facts(node):
    """A schema object without its prose: only :data:`KEPT` keywords, recursively."""
    if isinstance(node, list):
        return [facts(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key not in KEPT:
            continue
        if key == "properties":  # keys here are field names (a field may be called "description")
            out[key] = {name: facts(prop) for name, prop in value.items()}
        elif key in ("enum", "required", "default"):
            out[key] = value
        else:
            out[key] = facts(value)
    return out


def references(node):
    """Names of the definitions a schema object ``$ref``\\ s, directly."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def subset(doc, resources):
    """The subset document for ``resources`` of the Swagger document ``doc``."""
    available = schema.resource_definitions(doc)
    missing = sorted(set(resources) - set(available))
    if missing:
        raise SystemExit(f"The Swagger file has no item definition for: {', '.join(missing)}")
    chosen = {name: available[name] for name in sorted(resources)}
    definitions, todo = {}, [*EXTRA_DEFINITIONS, *(d for entry in chosen.values() for d in entry.values())]
    while todo:
        name = todo.pop()
        if name in definitions:
            continue
        definitions[name] = facts(doc["definitions"][name])
        todo.extend(references(definitions[name]))
    return {
        "swagger_subset_of": {"title": doc.get("info", {}).get("title"),
                              "version": doc.get("info", {}).get("version"),
                              "made_by": "tools/make_swagger_subset.py"},
        "resources": chosen,
        "definitions": dict(sorted(definitions.items())),
    }


def render(document):
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("swagger", nargs="?", default=os.environ.get(schema.ENV_VAR),
                        help=f"Sage's Swagger file (default: ${schema.ENV_VAR})")
    parser.add_argument("--resource", action="append", default=[], help="another resource to include")
    parser.add_argument("--output", type=Path, default=schema.SUBSET_PATH)
    parser.add_argument("--check", action="store_true", help="only compare with the output file")
    args = parser.parse_args(argv)
    if not args.swagger:
        parser.error(f"give the path of sage-accounting-v3.1.swagger.json (argument or {schema.ENV_VAR})")
    with open(args.swagger, encoding="utf-8") as handle:
        doc = json.load(handle)
    text = render(subset(doc, {*RESOURCES, *PLANNED, *args.resource}))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            sys.exit(f"{args.output} is out of date: run tools/make_swagger_subset.py without --check")
        print(f"{args.output} is up to date")
        return
    args.output.write_text(text, encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    print(f"wrote {args.output} ({len(text):,} bytes, sha256 {digest})")


if __name__ == "__main__":
    main()
