#!/usr/bin/env python3
"""Generate the Kubernetes 1.32 OpenAPI definitions Skiff's apiserver embeds.

Usage:
    scripts/gen-openapi.py [WHEEL]

WHEEL is a kubernetes-validate wheel (PyPI, Apache-2.0). Without it the script
runs `pip download --no-deps kubernetes-validate==1.37.0` into a temporary
directory. The wheel ships upstream's OpenAPI definitions converted to JSON
Schema 2020-12 in
`kubernetes_validate/kubernetes-json-schema/v1.32.0-local/_definitions.json`.
This script converts them back to the OpenAPI (swagger 2.0) form that
kube-apiserver serves:

- `type: ["string", "null"]` becomes `type: "string"`;
- `$ref: "#/$defs/<name>"` becomes `$ref: "#/definitions/<name>"` (the server
  rewrites it to `#/components/schemas/<name>` for OpenAPI v3);
- IntOrString (a `oneOf`) becomes
  `{"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": true}`
  and Quantity (a `oneOf`) becomes `{"type": "string"}`, as upstream has them;
- the `enum` the converter added to every `apiVersion` and `kind` is dropped.

Everything else (descriptions, `required`, `x-kubernetes-*` extensions) is
kept. The output, `{"definitions": {...}}` with sorted keys and no whitespace
(so regenerating gives the same bytes), is compressed with the `zstd` command
line tool (Debian package `zstd`) at level 19 into
`server/openapi/kubernetes-v1.32-definitions.json.zst`.

Only the Python standard library is used.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "kubernetes-validate==1.37.0"
MEMBER = "kubernetes_validate/kubernetes-json-schema/v1.32.0-local/_definitions.json"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "server", "openapi", "kubernetes-v1.32-definitions.json.zst")

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

# The JSON Schema conversion lost these two descriptions; these summarize
# upstream's.
INT_OR_STRING_DESCRIPTION = (
    "IntOrString is a type that can hold an int32 or a string.  When used in JSON "
    "or YAML marshalling and unmarshalling, it produces or consumes the inner type.  "
    "This allows you to have, for example, a JSON field that can accept a name or number."
)
QUANTITY_DESCRIPTION = (
    "Quantity is a fixed-point representation of a number. It provides convenient "
    "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() "
    "accessors.\n\nThe serialization format is:\n\n"
    "<quantity> ::= <signedNumber><suffix>\n\n"
    "<suffix> ::= <binarySI> | <decimalExponent> | <decimalSI>\n\n"
    "<binarySI> ::= Ki | Mi | Gi | Ti | Pi | Ei\n\n"
    "<decimalSI> ::= m | \"\" | k | M | G | T | P | E\n\n"
    "<decimalExponent> ::= \"e\" <signedNumber> | \"E\" <signedNumber>"
)


def read_definitions(wheel):
    """Returns the parsed `_definitions.json` of the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        with archive.open(MEMBER) as member:
            return json.load(member)


def download_wheel(directory):
    """Downloads the kubernetes-validate wheel with pip; returns its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
         "--dest", directory, PACKAGE],
        check=True,
    )
    for name in os.listdir(directory):
        if name.endswith(".whl"):
            return os.path.join(directory, name)
    sys.exit("gen-openapi: pip downloaded no wheel")


def convert_type(value):
    """`["string", "null"]` -> `"string"`."""
    if isinstance(value, list):
        kinds = [kind for kind in value if kind != "null"]
        if len(kinds) != 1:
            sys.exit(f"gen-openapi: unexpected type {value!r}")
        return kinds[0]
    return value


def convert_schema(schema, where):
    """Converts one JSON Schema node (and its children) to OpenAPI form."""
    if "oneOf" in schema or "anyOf" in schema or "allOf" in schema:
        sys.exit(f"gen-openapi: unexpected composition at {where}")
    out = {}
    for key, value in schema.items():
        if key == "type":
            out[key] = convert_type(value)
        elif key == "$ref":
            prefix = "#/$defs/"
            if not value.startswith(prefix):
                sys.exit(f"gen-openapi: unexpected $ref {value!r} at {where}")
            out[key] = "#/definitions/" + value[len(prefix):]
        elif key == "properties":
            props = {}
            for name, prop in value.items():
                prop = convert_schema(prop, f"{where}.{name}")
                if name in ("apiVersion", "kind"):
                    prop.pop("enum", None)
                props[name] = prop
            out[key] = props
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = convert_schema(value, f"{where}[{key}]")
        else:
            out[key] = value
    return out


def convert(document):
    """Returns `{"definitions": ...}` in OpenAPI form."""
    definitions = {}
    for name, schema in document["$defs"].items():
        if name == INT_OR_STRING:
            definitions[name] = {
                "description": INT_OR_STRING_DESCRIPTION,
                "format": "int-or-string",
                "type": "string",
                "x-kubernetes-int-or-string": True,
            }
        elif name == QUANTITY:
            definitions[name] = {"description": QUANTITY_DESCRIPTION, "type": "string"}
        else:
            definitions[name] = convert_schema(schema, name)
    return {"definitions": definitions}


def compress(data, output):
    """Writes `data` zstd-compressed (level 19) to `output`."""
    zstd = shutil.which("zstd")
    if zstd is None:
        sys.exit("gen-openapi: the zstd command is missing (apt-get install zstd)")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    result = subprocess.run(
        [zstd, "-19", "-q", "-c", "--no-progress"], input=data, stdout=subprocess.PIPE, check=True
    )
    with open(output, "wb") as out:
        out.write(result.stdout)


def main():
    if len(sys.argv) > 2:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as scratch:
        wheel = sys.argv[1] if len(sys.argv) == 2 else download_wheel(scratch)
        document = read_definitions(wheel)
    converted = convert(document)
    data = json.dumps(converted, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    compress(data.encode("utf-8"), OUTPUT)
    print(f"gen-openapi: {len(converted['definitions'])} definitions, "
          f"{len(data)} bytes of JSON -> {os.path.relpath(OUTPUT, ROOT)} "
          f"({os.path.getsize(OUTPUT)} bytes)")


if __name__ == "__main__":
    main()
