#!/usr/bin/env python3
"""Generate the protobuf schema Skiff's apiserver uses to read kubectl's bodies.

Usage:
    scripts/gen-protobuf.py [--k8s-pb DIR] [--kubectl PATH]

kubectl 1.32's typed commands (`kubectl create deployment`, `create secret`,
...) send `application/vnd.kubernetes.protobuf` bodies. The apiserver
(`server/src/apiserver/protobuf.rs`) turns them into the JSON kube-apiserver
would print for the same object, driven by the table this script writes:
`server/openapi/kubernetes-v1.32-protobuf.json.zst`.

Inputs:

- The crates.io crate `k8s-pb` 0.9.0 (Apache-2.0): prost-generated Rust for
  every Kubernetes .proto file. It gives each message's fields: tag, wire
  kind, repeated or map, and the message type of message fields. The script
  looks for it in `$CARGO_HOME/registry/src/*/k8s-pb-0.9.0` (CARGO_HOME
  defaults to ~/.cargo); when it is not there, fetch it with
      cargo new --lib /tmp/k8spb && cd /tmp/k8spb && cargo add k8s-pb@=0.9.0 && cargo fetch
  or pass the unpacked crate with `--k8s-pb DIR`.
- `server/openapi/kubernetes-v1.32-definitions.json.zst` (see the README
  there): it names each message (`io.k8s.api.apps.v1.DeploymentSpec`), gives
  each field its JSON name (the OpenAPI property whose name equals the Rust
  field's, ignoring case and `_`, `-`, `$`), and the group-version-kinds.
  k8s-pb follows a newer Kubernetes than 1.32: fields the 1.32 definitions do
  not have are left out (kube-apiserver 1.32 skips them too).
- The kubectl 1.32 binary (`--kubectl`, default: `kubectl.1.32` next to the
  `kubectl` on PATH, else `kubectl` itself if it is 1.32). Whether Go prints
  a zero value (`replicas: 0`, `optional: false`, `value: ""`) depends on the
  Go field: a pointer, or a field whose json tag lacks `omitempty`, keeps it;
  other zero scalars are left out. The .proto files do not say which is
  which, so the script reads the Go type metadata that the Go runtime keeps in
  the binary for encoding/json (struct fields with their type and tags) and
  joins it to the messages by protobuf tag. Packages kubectl does not link
  (apiextensions-apiserver, kube-aggregator) fall back to the OpenAPI
  `required` lists plus POINTER_FIELDS below.

Output, `{"kinds": {...}, "messages": {...}}` with sorted keys and no
whitespace, compressed with the `zstd` command line tool (Debian package
`zstd`) at level 19, so a rerun gives the same bytes:

- `kinds`: `"<apiVersion>/<kind>"` (`"v1/Pod"`, `"apps/v1/Deployment"`) to
  the message's definition name.
- `messages`: definition name to `{"fields": [...]}`, each field
  `{"tag": 1, "json": "replicas", "kind": K}` with K one of string, bytes,
  bool, int32, int64, uint32, double, message, map; plus `"message"` (the
  message type, for message fields and map values), `"repeated": true`,
  `"key"`/`"value"` (map key and value kinds), `"keep_zero": true` where
  Go prints the field's zero value, and `"inline": true` (with `"json": ""`)
  for a struct Go embeds with `json:",inline"` (a Volume's VolumeSource, a
  Probe's ProbeHandler): its fields print as the parent's. Messages with
  their own JSON form carry
  `"encoding"`: time, micro_time, duration, int_or_string, quantity,
  raw_json, string_list, schema_or_array, schema_or_bool,
  schema_or_string_array.

Only the Python standard library is used.
"""

import argparse
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFINITIONS = os.path.join(ROOT, "server", "openapi", "kubernetes-v1.32-definitions.json.zst")
OUTPUT = os.path.join(ROOT, "server", "openapi", "kubernetes-v1.32-protobuf.json.zst")
K8S_PB = "k8s-pb-0.9.0"

# Rust module root (k8s-pb) to definition-name prefix and Go package prefix.
MODULE_ROOTS = {
    "api": ("io.k8s.api", "k8s.io/api"),
    "apimachinery": ("io.k8s.apimachinery", "k8s.io/apimachinery"),
    "apiextensions_apiserver": ("io.k8s.apiextensions-apiserver", "k8s.io/apiextensions-apiserver"),
    "kube_aggregator": ("io.k8s.kube-aggregator", "k8s.io/kube-aggregator"),
}

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
APIEXT = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."

# Messages whose JSON form is not an object of their fields (custom
# MarshalJSON in Go, or a Go slice type wrapped in a message).
ENCODINGS = {
    META + "Time": "time",
    META + "MicroTime": "micro_time",
    META + "Duration": "duration",
    META + "FieldsV1": "raw_json",
    META + "Verbs": "string_list",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "int_or_string",
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "quantity",
    "io.k8s.apimachinery.pkg.api.resource.QuantityValue": "quantity",
    "io.k8s.apimachinery.pkg.runtime.RawExtension": "raw_json",
    "io.k8s.api.authentication.v1.ExtraValue": "string_list",
    "io.k8s.api.authentication.v1beta1.ExtraValue": "string_list",
    "io.k8s.api.authorization.v1.ExtraValue": "string_list",
    "io.k8s.api.authorization.v1beta1.ExtraValue": "string_list",
    "io.k8s.api.certificates.v1.ExtraValue": "string_list",
    "io.k8s.api.certificates.v1beta1.ExtraValue": "string_list",
}
ENCODINGS[APIEXT + "JSON"] = "raw_json"
ENCODINGS[APIEXT + "JSONSchemaPropsOrArray"] = "schema_or_array"
ENCODINGS[APIEXT + "JSONSchemaPropsOrBool"] = "schema_or_bool"
ENCODINGS[APIEXT + "JSONSchemaPropsOrStringArray"] = "schema_or_string_array"

# Pointer fields (Go prints their zero value) of packages kubectl does not
# link, so their Go types cannot be read: "<definition suffix>.<json name>".
# Non-pointer fields without `omitempty` come from the OpenAPI `required`.
POINTER_FIELDS = {
    "apiextensions.v1.JSONSchemaProps.maxLength", "apiextensions.v1.JSONSchemaProps.minLength",
    "apiextensions.v1.JSONSchemaProps.maxItems", "apiextensions.v1.JSONSchemaProps.minItems",
    "apiextensions.v1.JSONSchemaProps.maxProperties", "apiextensions.v1.JSONSchemaProps.minProperties",
    "apiextensions.v1.JSONSchemaProps.maximum", "apiextensions.v1.JSONSchemaProps.minimum",
    "apiextensions.v1.JSONSchemaProps.multipleOf",
    "apiextensions.v1.JSONSchemaProps.x-kubernetes-preserve-unknown-fields",
    "apiextensions.v1.JSONSchemaProps.x-kubernetes-list-type",
    "apiextensions.v1.JSONSchemaProps.x-kubernetes-map-type",
    "apiextensions.v1.CustomResourceSubresourceScale.labelSelectorPath",
    "apiextensions.v1.CustomResourceDefinitionVersion.deprecationWarning",
    "apiextensions.v1.WebhookClientConfig.url",
    "apiextensions.v1.ServiceReference.path", "apiextensions.v1.ServiceReference.port",
    "apiextensions.v1.ValidationRule.optionalOldSelf", "apiextensions.v1.ValidationRule.reason",
    "apiregistration.v1.ServiceReference.port",
}


def fail(message):
    sys.exit(f"gen-protobuf: {message}")


def norm(name):
    """A field or type name compared without case, `_`, `-` or `$`."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


# --- k8s-pb ---------------------------------------------------------------

FIELD_RE = re.compile(r"#\[prost\((?P<attrs>[^\]]*)\)\]\s*pub (?:r#)?(?P<name>\w+):\s*(?P<type>[^;{}]*?),\s*(?=(?:///|#\[|pub |\}))", re.S)
STRUCT_RE = re.compile(r"::prost::Message\)\]\s*pub struct (\w+) \{\n(.*?)\n\}|::prost::Message\)\]\s*pub struct (\w+) \{\}", re.S)


def find_k8s_pb(explicit):
    if explicit:
        return explicit
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = sorted(glob.glob(os.path.join(cargo_home, "registry", "src", "*", K8S_PB)))
    if not found:
        fail(f"{K8S_PB} is not in {cargo_home}/registry/src; fetch it with\n"
             "    cargo new --lib /tmp/k8spb && cd /tmp/k8spb && cargo add k8s-pb@=0.9.0 && cargo fetch\n"
             "or pass --k8s-pb DIR")
    return found[0]


def resolve_type(module, rust_type):
    """The module path and name of a message type named in `module`."""
    t = rust_type
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        t = t.replace(wrapper, "")
    t = t.replace(">", "").replace(" ", "")
    if t.startswith("::prost::alloc::collections::BTreeMap<"):
        t = t.split(",", 1)[1]
    t = t.strip(",")
    parts = t.split("::")
    path = list(module)
    while parts and parts[0] == "super":
        path.pop()
        parts.pop(0)
    return tuple(path + parts[:-1]), parts[-1]


def parse_k8s_pb(root):
    """{(module, RustName): [field]} for every message of the crate."""
    messages = {}
    src = os.path.join(root, "src")
    for dirpath, _, files in os.walk(src):
        if "mod.rs" not in files:
            continue
        module = tuple(os.path.relpath(dirpath, src).split(os.sep))
        if module[0] not in MODULE_ROOTS:
            continue
        with open(os.path.join(dirpath, "mod.rs"), encoding="utf-8") as f:
            text = f.read()
        for m in STRUCT_RE.finditer(text):
            name = m.group(1) or m.group(3)
            body = m.group(2) or ""
            body = re.sub(r"^\s*///.*$", "", body, flags=re.M) + "\n}"
            fields = []
            for fm in FIELD_RE.finditer(body):
                fields.append(parse_field(module, fm.group("name"), fm.group("attrs"), " ".join(fm.group("type").split())))
            declared = body.count("#[prost(")
            if declared != len(fields):
                fail(f"parsed {len(fields)} of {declared} fields of {'::'.join(module)}::{name}")
            messages[(module, name)] = fields
    if not messages:
        fail(f"no prost messages under {src}")
    return messages


def parse_field(module, name, attrs, rust_type):
    tag = int(re.search(r'tag = "(\d+)"', attrs).group(1))
    first = attrs.split(",")[0].strip()
    field = {"rust": name, "tag": tag}
    m = re.match(r'(?:btree_map|map) = "(\w+), (\w+)"', attrs)
    if m:
        field["kind"] = "map"
        field["key"] = m.group(1)
        field["value"] = m.group(2)
        if m.group(2) == "message":
            field["message"] = resolve_type(module, rust_type)
        return field
    kind = "bytes" if first.startswith("bytes") else first
    if kind not in ("string", "bytes", "bool", "int32", "int64", "uint32", "double", "message"):
        fail(f"field {name} of {'::'.join(module)}: unsupported prost kind {attrs!r}")
    field["kind"] = kind
    if "repeated" in attrs.split(", "):
        field["repeated"] = True
    if kind == "message":
        field["message"] = resolve_type(module, rust_type)
    return field


# --- Go type metadata in the kubectl binary --------------------------------

class Elf:
    """Just enough of a 64-bit little-endian ELF file to read Go's rodata."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            fail(f"{path} is not a 64-bit little-endian ELF file")
        shoff, = struct.unpack_from("<Q", d, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
        raw = [struct.unpack_from("<IIQQQQ", d, shoff + i * shentsize) for i in range(shnum)]
        names = raw[shstrndx][4]
        self.sections = {}
        for name, typ, _, addr, off, size in raw:
            end = d.index(b"\0", names + name)
            self.sections[d[names + name:end].decode()] = (addr, off, size, typ)

    def offset(self, addr):
        for addr0, off, size, typ in self.sections.values():
            if addr0 and addr0 <= addr < addr0 + size and typ != 8:  # 8: NOBITS
                return off + addr - addr0
        raise ValueError(f"address {addr:#x} is in no section")

    def u8(self, addr):
        return self.data[self.offset(addr)]

    def u64(self, addr):
        return struct.unpack_from("<Q", self.data, self.offset(addr))[0]

    def i32(self, addr):
        return struct.unpack_from("<i", self.data, self.offset(addr))[0]

    def varint(self, addr):
        value = shift = 0
        while True:
            b = self.u8(addr)
            addr += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value, addr

    def name(self, addr):
        """A Go runtime `abi.Name`: flags byte, varint length, bytes, optional tag."""
        flags = self.u8(addr)
        n, p = self.varint(addr + 1)
        o = self.offset(p)
        name = self.data[o:o + n].decode()
        tag = ""
        if flags & 2:
            t, p = self.varint(p + n)
            o = self.offset(p)
            tag = self.data[o:o + t].decode()
        return name, tag


# abi.Type (Go 1.20-1.24, 64-bit): Size, PtrBytes, Hash u32, TFlag u8, Align,
# FieldAlign, Kind u8, Equal, GCData, Str int32, PtrToThis int32 = 48 bytes.
KIND_ARRAY, KIND_CHAN, KIND_MAP, KIND_PTR, KIND_SLICE, KIND_STRUCT = 17, 18, 21, 22, 23, 25
TFLAG_UNCOMMON, TFLAG_EXTRA_STAR, TFLAG_NAMED = 1, 2, 4


class GoTypes:
    """The named struct types of a Go binary, found from its typelinks."""

    def __init__(self, path):
        self.elf = Elf(path)
        self.types, typelinks = self.moduledata()
        self.structs = {}
        self.walk([self.types + o for o in typelinks])

    def moduledata(self):
        """`runtime.firstmoduledata`: found by its first word, the pclntab address."""
        elf = self.elf
        pclntab = elf.sections[".gopclntab"][0]
        links, _, links_size, _ = elf.sections[".typelink"]
        needle = struct.pack("<Q", pclntab)
        for section in (".noptrdata", ".data"):
            addr, off, size, _ = elf.sections[section]
            blob = elf.data[off:off + size]
            i = blob.find(needle)
            while i >= 0:
                md = addr + i
                # types at +296, typelinks slice at +352 (Go 1.21-1.24 layout).
                if elf.u64(md + 352) == links and elf.u64(md + 360) == links_size // 4:
                    return elf.u64(md + 296), [elf.i32(links + 4 * k) for k in range(links_size // 4)]
                i = blob.find(needle, i + 8)
        fail("no Go moduledata found (not a Go 1.21-1.24 binary?)")

    def header(self, t):
        elf = self.elf
        tflag, kind = elf.u8(t + 20), elf.u8(t + 23) & 0x1F
        name, _ = elf.name(self.types + elf.i32(t + 40))
        return kind, name[1:] if tflag & TFLAG_EXTRA_STAR else name, tflag

    def walk(self, stack):
        elf, seen = self.elf, set()
        while stack:
            t = stack.pop()
            if not t or t in seen:
                continue
            seen.add(t)
            kind, name, tflag = self.header(t)
            if kind in (KIND_PTR, KIND_SLICE, KIND_CHAN, KIND_ARRAY):
                stack.append(elf.u64(t + 48))
            elif kind == KIND_MAP:
                stack += [elf.u64(t + 48), elf.u64(t + 56)]
            elif kind == KIND_STRUCT:
                fields, count = elf.u64(t + 56), elf.u64(t + 64)
                stack += [elf.u64(fields + 24 * i + 8) for i in range(count)]
                if tflag & TFLAG_NAMED and tflag & TFLAG_UNCOMMON:
                    pkg = elf.i32(t + 80)  # uncommonType.PkgPath follows structType
                    if pkg:
                        self.structs[(elf.name(self.types + pkg)[0], name.split(".", 1)[-1])] = t
            ptr_to_this = elf.i32(t + 44)
            if ptr_to_this:
                stack.append(self.types + ptr_to_this)

    def fields(self, t):
        """{protobuf tag: (json name, keeps its zero value, inline)} of a struct type."""
        elf, out = self.elf, {}
        fields, count = elf.u64(t + 56), elf.u64(t + 64)
        for i in range(count):
            _, tag = elf.name(elf.u64(fields + 24 * i))
            kind, _, _ = self.header(elf.u64(fields + 24 * i + 8))
            pb = re.search(r'protobuf:"\w+,(\d+),', tag)
            js = re.search(r'json:"([^"]*)"', tag)
            if not pb or not js:
                continue
            options = js.group(1).split(",")
            keep = kind == KIND_PTR or "omitempty" not in options[1:]
            out[int(pb.group(1))] = (options[0], keep, "inline" in options[1:])
        return out


def find_kubectl(explicit):
    if explicit:
        return explicit
    on_path = shutil.which("kubectl")
    if on_path:
        versioned = os.path.join(os.path.dirname(os.path.realpath(on_path)), "kubectl.1.32")
        if os.path.exists(versioned):
            return versioned
        out = subprocess.run([on_path, "version", "--client", "-o", "json"], capture_output=True, text=True)
        if '"minor": "32"' in out.stdout:
            return on_path
    fail("kubectl 1.32 not found; pass --kubectl PATH")


# --- joining ---------------------------------------------------------------

def definition_name(module, rust_name, by_norm):
    prefix, _ = MODULE_ROOTS[module[0]]
    dotted = ".".join((prefix,) + module[1:])
    return by_norm.get(norm(dotted + "." + rust_name)), dotted


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k8s-pb", help="the unpacked k8s-pb 0.9.0 crate")
    parser.add_argument("--kubectl", help="a kubectl 1.32 binary")
    args = parser.parse_args()

    if not shutil.which("zstd"):
        fail("the zstd command is missing (apt-get install zstd)")
    definitions = json.loads(subprocess.run(["zstd", "-dc", DEFINITIONS], check=True, capture_output=True).stdout)["definitions"]
    by_norm = {norm(name): name for name in definitions}
    k8s_pb = parse_k8s_pb(find_k8s_pb(args.k8s_pb))
    kubectl = find_kubectl(args.kubectl)
    go = GoTypes(kubectl)
    print(f"k8s-pb: {len(k8s_pb)} messages; {kubectl}: {len(go.structs)} Go structs", file=sys.stderr)

    # Name every message: its definition, else `<package>.<Go or Rust name>`.
    names = {}
    go_names = {}
    for (pkg, go_name) in go.structs:
        go_names[norm(pkg.replace("/", ".") + "." + go_name)] = go_name
    for module, rust_name in k8s_pb:
        name, dotted = definition_name(module, rust_name, by_norm)
        if name is None:
            go_pkg = MODULE_ROOTS[module[0]][1] + "/" + "/".join(module[1:])
            name = dotted + "." + go_names.get(norm(go_pkg.replace("/", ".") + "." + rust_name), rust_name)
        names[(module, rust_name)] = name

    # Messages with a definition, and every message they reach.
    wanted = [key for key in k8s_pb if names[key] in definitions]
    included = set()
    while wanted:
        key = wanted.pop()
        if key in included:
            continue
        included.add(key)
        wanted += [f["message"] for f in k8s_pb[key] if "message" in f]

    messages, dropped, go_checked, go_mismatch = {}, [], 0, []
    for key in sorted(included, key=lambda k: names[k]):
        module, rust_name = key
        name = names[key]
        definition = definitions.get(name, {})
        properties = {norm(p): p for p in definition.get("properties", {})}
        required = set(definition.get("required", []))
        go_pkg = MODULE_ROOTS[module[0]][1] + "/" + "/".join(module[1:])
        go_struct = go.structs.get((go_pkg, name.rsplit(".", 1)[1]))
        go_fields = go.fields(go_struct) if go_struct and name not in ENCODINGS else {}
        suffix = ".".join(name.split(".")[-3:])
        fields = []
        for f in k8s_pb[key]:
            go_field = go_fields.get(f["tag"])
            if go_field and go_field[2]:
                json_name = ""
            elif properties:
                json_name = properties.get(norm(f["rust"]))
            elif go_fields:
                json_name = go_field[0] if go_field else None
            else:
                json_name = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), f["rust"])
            if json_name is None:
                dropped.append(f"{name}.{f['rust']}")
                continue
            out = {"tag": f["tag"], "json": json_name, "kind": f["kind"]}
            for attr in ("repeated", "key", "value"):
                if attr in f:
                    out[attr] = f[attr]
            if "message" in f:
                out["message"] = names[f["message"]]
            if go_fields:
                if go_field is None:
                    go_mismatch.append(f"{name}.{json_name}: tag {f['tag']} not in the Go struct")
                    keep = json_name in required
                else:
                    go_checked += 1
                    if go_field[0] != json_name:
                        go_mismatch.append(f"{name}: tag {f['tag']} is {json_name!r}, Go says {go_field[0]!r}")
                    keep = go_field[1]
            else:
                keep = json_name in required or f"{suffix}.{json_name}" in POINTER_FIELDS
            if json_name == "":
                if f["kind"] != "message" or "repeated" in f:
                    fail(f"{name}: inline field {f['rust']} is not a single message")
                out["inline"] = True
            elif keep and "repeated" not in f and f["kind"] != "map" and (
                    f["kind"] != "message" or names[f["message"]] in ENCODINGS):
                # Only single scalars and messages printed as scalars have a zero to keep.
                out["keep_zero"] = True
            fields.append(out)
        pb_tags = {f["tag"] for f in k8s_pb[key]}
        for tag, (json_name, _, _) in sorted(go_fields.items()):
            if tag not in pb_tags:
                go_mismatch.append(f"{name}.{json_name}: tag {tag} is not in k8s-pb")
        message = {"fields": sorted(fields, key=lambda f: f["tag"])}
        if name in ENCODINGS:
            message["encoding"] = ENCODINGS[name]
        messages[name] = message

    # Keep what 1.32's messages reach once left-out fields are gone.
    reached, stack = set(), [name for name in messages if name in definitions]
    while stack:
        name = stack.pop()
        if name not in reached:
            reached.add(name)
            stack += [f["message"] for f in messages[name]["fields"] if "message" in f]
    messages = {name: message for name, message in messages.items() if name in reached}

    missing = sorted(set(ENCODINGS) - set(names.values()))
    if missing:
        fail(f"special messages not found: {missing}")

    kinds = {}
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            key = f"{api_version}/{gvk['kind']}"
            if name not in messages:
                continue
            if key in kinds and kinds[key] != name:
                fail(f"{key} is both {kinds[key]} and {name}")
            kinds[key] = name

    print(f"{len(messages)} messages, {sum(len(m['fields']) for m in messages.values())} fields, "
          f"{len(kinds)} kinds; {go_checked} fields joined to Go struct fields", file=sys.stderr)
    print(f"left out (not in Kubernetes 1.32): {len(dropped)} fields", file=sys.stderr)
    if os.environ.get("VERBOSE"):
        for line in dropped:
            print(f"  left out: {line}", file=sys.stderr)
    for line in go_mismatch:
        print(f"Go mismatch: {line}", file=sys.stderr)

    document = json.dumps({"kinds": kinds, "messages": messages}, sort_keys=True, separators=(",", ":"))
    subprocess.run(["zstd", "-19", "-q", "-f", "-o", OUTPUT], input=document.encode(), check=True)
    print(f"wrote {os.path.relpath(OUTPUT, ROOT)} ({len(document)} bytes of JSON)", file=sys.stderr)


if __name__ == "__main__":
    main()
