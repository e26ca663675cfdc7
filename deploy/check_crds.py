#!/usr/bin/env python3
"""Validates the KEDA objects of Kubernetes manifests offline, against KEDA's own CRDs.

Usage: deploy/check_crds.py MANIFEST.yaml...

The schemas are the openAPIV3Schema of the CustomResourceDefinitions KEDA
ships, vendored in deploy/schemas/keda/ from the Go module
github.com/kedacore/keda/v2 (config/crd/bases; see the README there). Each
keda.sh object is validated as the API server would, and strictly: a field the
schema does not name is an error (the server would prune it without a word,
so a misspelt field would silently do nothing). A self-test first shows that a
misspelt field and a wrongly typed one are refused, so the check can fail.
Needs PyYAML and jsonschema (scripts/deploy-check.sh's tools venv).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas" / "keda"


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused where it lists the known ones."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def load_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the JSON schema of every vendored CRD version served."""
    out = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            if v.get("served"):
                schema = strict(v["schema"]["openAPIV3Schema"])
                # The API server checks these for every object; the CRD omits them.
                schema.setdefault("required", [])
                schema["required"] = sorted(set(schema["required"]) | {"apiVersion", "kind", "metadata"})
                out[(f"{group}/{v['name']}", kind)] = schema
    return out


def errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    v = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in v.iter_errors(doc)]


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    schemas = load_schemas()
    failed = 0
    checked = 0
    for name in sys.argv[1:]:
        for doc in yaml.safe_load_all(Path(name).read_text()):
            if not doc or not str(doc.get("apiVersion", "")).startswith("keda.sh/"):
                continue
            key = (doc["apiVersion"], doc["kind"])
            label = f"{name}: {doc['kind']} {doc.get('metadata', {}).get('name')}"
            if key not in schemas:
                print(f"FAIL  {label}: no vendored CRD serves {key[0]} {key[1]}")
                failed += 1
                continue
            if key[1] == "ScaledObject":
                # The self-test: the validator refuses what the server would drop or reject.
                typo = copy.deepcopy(doc)
                typo["spec"]["minReplicaCont"] = typo["spec"].pop("minReplicaCount", 0)
                wrong = copy.deepcopy(doc)
                wrong["spec"]["maxReplicaCount"] = "twenty"
                for what, bad in (("a misspelt field", typo), ("a string replica count", wrong)):
                    if not errors(schemas[key], bad):
                        print(f"FAIL  {label}: the schema accepts {what}: the check proves nothing")
                        failed += 1
            errs = errors(schemas[key], doc)
            checked += 1
            print(("ok    " if not errs else "FAIL  ") + f"{label} against {key[0]} {key[1]}")
            for e in errs:
                print("        " + e)
            failed += bool(errs)
    if checked == 0:
        raise SystemExit("check_crds.py: no keda.sh object found")
    if failed:
        raise SystemExit(f"check_crds.py: {failed} failure(s)")


if __name__ == "__main__":
    main()
