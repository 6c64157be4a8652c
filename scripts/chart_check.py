"""Checks the Helm chart charts/fix-operator (run by scripts/test.sh in its own venv):

1. helm lint (strict) with the default values and with a namespaced, IRSA-annotated set;
2. values.schema.json refuses bad values;
3. renders the chart (helm-python-sdk, no cluster) and prints the resource list;
4. kubernetes-validate --strict on every rendered manifest and on the CRD;
5. yamllint on the chart's YAML and the rendered manifests;
   (also: runbooks/*.yaml against runbooks/schema.json, and yamllint on them);
6. the example FixSession against the CRD's OpenAPI v3 schema (unknown fields refused,
   as `kubectl apply --validate=strict` does), and a broken copy of it is refused;
7. with monitoring enabled: the PrometheusRule carries files/alerts.yaml's rules (promtool
   checks and tests that file in scripts/test.sh), the PodMonitor selects the engine pods'
   admin port with the token, the ServiceMonitor and the dashboard ConfigMap are there.
"""

import copy
import json
import pathlib
import subprocess
import sys
import tempfile

import helm_python as helm
import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "fix-operator"
BIN = pathlib.Path(sys.executable).parent
VALUE_SETS = {
    "default": {},
    "namespaced-irsa": {
        "watchNamespace": "trading",
        "aws": {"iamRoleArn": "arn:aws:iam::111122223333:role/fix-operator"},
        "logJson": False,
    },
}


def fail(message):
    print(f"chart check failed: {message}", file=sys.stderr)
    sys.exit(1)


def lint():
    for name, values in VALUE_SETS.items():
        report = helm.lint(str(CHART), values, strict=True, namespace="fix-system")
        bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        if bad or report.get("errors"):
            fail(f"helm lint ({name}): {bad or report['errors']}")
        print(f"helm lint ({name}): ok, {len(report.get('messages', []))} info message(s)")


def schema_refuses_bad_values():
    chart = helm.Chart.load(str(CHART))
    for bad in ({"supervisor": {"pollMs": 1, "statusRefreshSeconds": 2}},
                {"aws": {"iamRoleArn": "not-an-arn"}},
                {"replicas": 3},
                {"monitoring": {"podMonitor": {"enabled": True, "tokenSecret": {"name": "only-a-name"}}}}):
        try:
            chart.validate_schema(bad)
        except helm.HelmValuesError as e:
            print(f"values.schema.json refuses {bad}: {str(e).splitlines()[0]}")
            continue
        fail(f"values.schema.json accepted {bad}")


def render(out):
    chart = helm.Chart.load(str(CHART))
    files = []
    for name, values in VALUE_SETS.items():
        manifests = chart.render(values, name="fix", namespace="fix-system", is_install=True)
        print(f"rendered ({name}):")
        for path, text in sorted(manifests.items()):
            if not path.endswith(".yaml") or not text.strip():
                continue
            f = out / name / pathlib.Path(path).name
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text.strip() + "\n")
            files.append(f)
            for doc in yaml.safe_load_all(text):
                if doc and doc["kind"] == "ServiceAccount" and name == "namespaced-irsa":
                    role = doc["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn")
                    if role != values["aws"]["iamRoleArn"]:
                        fail(f"the ServiceAccount lacks the IRSA annotation: {doc['metadata']}")
                if doc:
                    ns = doc["metadata"].get("namespace", "-")
                    print(f"  {doc['kind']:<20} {ns:<11} {doc['metadata']['name']}")
    return files


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{' '.join(str(a) for a in args)}:\n{r.stdout}{r.stderr}")
    return r.stdout


def strict(schema):
    """Unknown fields refused wherever the CRD lists an object's properties."""
    s = copy.deepcopy(schema)
    if isinstance(s, dict):
        if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s:
            s["additionalProperties"] = False
        for k, v in list(s.items()):
            if isinstance(v, (dict, list)):
                s[k] = strict(v)
    elif isinstance(s, list):
        s = [strict(v) for v in s]
    return s


def example_matches_crd():
    crd = yaml.safe_load((CHART / "crds" / "fixsessions.yaml").read_text())
    version = crd["spec"]["versions"][0]
    schema = strict(version["schema"]["openAPIV3Schema"])
    example = yaml.safe_load((CHART / "examples" / "fixsession.yaml").read_text())
    if example["apiVersion"] != f"{crd['spec']['group']}/{version['name']}":
        fail(f"example apiVersion {example['apiVersion']} is not the CRD's")
    body = {k: v for k, v in example.items() if k not in ("apiVersion", "kind", "metadata")}
    jsonschema.validate(body, schema)
    print("examples/fixsession.yaml: valid against the CRD's openAPIV3Schema")
    lease = dict(body["spec"]["lease"], backend="etcd")
    for broken in (("instances", 0), ("durabilty", "replicated"), ("lease", lease)):
        b = copy.deepcopy(body)
        b["spec"][broken[0]] = broken[1]
        try:
            jsonschema.validate(b, schema)
        except jsonschema.ValidationError as e:
            print(f"  a copy with spec.{broken[0]}={broken[1]!r} is refused: {e.message[:80]}")
            continue
        fail(f"the CRD schema accepted spec.{broken[0]}={broken[1]!r}")


def runbooks_match_their_schema():
    """runbooks/*.yaml against the published runbooks/schema.json, and yamllint."""
    schema = json.loads((ROOT / "runbooks" / "schema.json").read_text())
    books = sorted((ROOT / "runbooks").glob("*.yaml"))
    for p in books:
        jsonschema.validate(yaml.safe_load(p.read_text()), schema)
    broken = {"name": "x", "steps": [{"id": "a", "action": {"action": "reboot"}}]}
    try:
        jsonschema.validate(broken, schema)
        fail("the runbook schema accepted an unknown action")
    except jsonschema.ValidationError:
        pass
    run(BIN / "yamllint", "-c", ROOT / ".yamllint", *books)
    print(f"runbooks: {len(books)} file(s) valid against runbooks/schema.json and yamllint-clean")


def monitoring():
    chart = helm.Chart.load(str(CHART))
    values = {"monitoring": {
        "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
        "podMonitor": {"enabled": True, "tokenSecret": {"name": "fix-admin", "key": "token"}},
        "serviceMonitor": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    }}
    manifests = chart.render(values, name="fix", namespace="fix-system", is_install=True)
    docs = [doc for path, text in manifests.items() if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text) if doc]
    kinds = {d["kind"]: d for d in docs}
    for kind in ("PrometheusRule", "PodMonitor", "ServiceMonitor", "ConfigMap"):
        if kind not in kinds:
            fail(f"monitoring enabled but no {kind} rendered")
    want = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    rule = kinds["PrometheusRule"]
    if rule["spec"] != want:
        fail("the PrometheusRule's spec is not files/alerts.yaml")
    if rule["metadata"]["labels"].get("release") != "prometheus":
        fail(f"the PrometheusRule lacks the configured labels: {rule['metadata']}")
    pod = kinds["PodMonitor"]["spec"]
    # The labels and port name the operator gives engine pods (operator/src/k8s/resources/).
    if pod["selector"]["matchLabels"].get("app.kubernetes.io/name") != "fix-engine":
        fail(f"the PodMonitor does not select engine pods: {pod['selector']}")
    if pod.get("podTargetLabels") != ["app.kubernetes.io/instance"]:
        fail(f"the alert rules group by the FixSession's name: {pod.get('podTargetLabels')}")
    endpoint = pod["podMetricsEndpoints"][0]
    if endpoint["port"] != "admin" or endpoint["authorization"]["credentials"]["name"] != "fix-admin":
        fail(f"the PodMonitor's endpoint: {endpoint}")
    dashboard = json.loads(kinds["ConfigMap"]["data"]["fix-engine.json"])
    if dashboard != json.loads((CHART / "files" / "dashboard.json").read_text()):
        fail("the dashboard ConfigMap is not files/dashboard.json")
    count = sum(len(g["rules"]) for g in want["groups"])
    print(f"monitoring: PrometheusRule ({count} alerts), PodMonitor, ServiceMonitor, "
          f"dashboard ({len(dashboard['panels'])} panels)")


def main():
    runbooks_match_their_schema()
    lint()
    schema_refuses_bad_values()
    with tempfile.TemporaryDirectory() as tmp:
        files = render(pathlib.Path(tmp))
        crd = CHART / "crds" / "fixsessions.yaml"
        run(BIN / "kubernetes-validate", "--strict", "--quiet", "-k", "1.33.0", *files, crd)
        print(f"kubernetes-validate --strict: {len(files) + 1} file(s) valid")
        yamls = [p for p in CHART.rglob("*.yaml") if "templates" not in p.parts]
        run(BIN / "yamllint", "-c", ROOT / ".yamllint", *yamls, *files)
        print(f"yamllint: {len(yamls) + len(files)} file(s) clean")
    example_matches_crd()
    monitoring()


if __name__ == "__main__":
    main()
