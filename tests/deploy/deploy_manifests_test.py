"""The Kubernetes manifests (deploy/kubernetes) and the Helm chart (deploy/helm/sculpt), checked
without a cluster.

- yamllint (deploy/.yamllint) on every plain manifest and on every rendered template;
- the chart rendered by Helm's own engine (its Go SDK, through helm-python-sdk) with several sets
  of values, and `helm lint --strict`;
- every object against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: an unknown
  field is an error) for the oldest Kubernetes the chart supports and the newest the package
  ships; the ServiceMonitor and ScaledObject against schemas written below from those projects'
  CRDs;
- the facts that matter for serving: probes, shutdown timing, GPUs, keys, TLS, autoscaling.

Every fact check is also run on a broken copy, which it must refuse. Skips (exit 77) when a
package of requirements-dev.txt it needs is missing.
"""

from __future__ import annotations

import copy
import importlib
import json
import pathlib
import re
import sys
import unittest

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = SOURCE_DIR / "deploy"
MANIFESTS = DEPLOY / "kubernetes"
CHART = DEPLOY / "helm" / "sculpt"
YAMLLINT_CONFIG = DEPLOY / ".yamllint"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion: gRPC probes are GA from
# 1.27) and the newest kubernetes-validate 1.37 ships.
KUBERNETES_VERSIONS = ("1.27", "1.37")
RELEASE, NAMESPACE = "demo", "serving"

NEEDED = {
    "yaml": "PyYAML",
    "yamllint": "yamllint",
    "jsonschema": "jsonschema",
    "kubernetes_validate": "kubernetes-validate",
    "helm_python": "helm-python-sdk",
}
MISSING = []
for module_name, package in NEEDED.items():
    try:
        importlib.import_module(module_name)
    except ImportError:
        MISSING.append(package)
if not MISSING:
    import helm_python
    import jsonschema
    import kubernetes_validate
    import yaml
    from yamllint import linter as yamllint_linter
    from yamllint.config import YamlLintConfig

# Keys the server accepts (server/api_keys.cc): 16 to 512 visible ASCII characters.
API_KEY = re.compile(r"^[!-~]{16,512}$")
KEY_A = "k" * 24
KEY_B = "0123456789abcdef0123456789abcdef"

# --- Schemas of the two custom resources -------------------------------------------------------
# The API server validates a custom resource against its CRD's openAPIV3Schema and, with
# `kubectl apply --validate=strict` (the default), refuses fields the schema does not name;
# additionalProperties: false stands for that here. Only fields the CRDs define are listed.


def _object(properties: dict, required: tuple = ()) -> dict:
    schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_INT = {"type": "integer"}
_STRINGS = {"type": "array", "items": _STRING}
_STRING_MAP = {"type": "object", "additionalProperties": _STRING}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _STRING, "labels": _STRING_MAP, "annotations": _STRING_MAP},
}
_LABEL_SELECTOR = _object(
    {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": _object(
                {"key": _STRING, "operator": _STRING, "values": _STRINGS}, ("key", "operator")
            ),
        },
    }
)

# prometheus-operator/prometheus-operator,
# example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml (operator 0.84.1).
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    r"(([0-9]+)ms)?)$",
}
_SECRET_KEY = _object({"name": _STRING, "key": _STRING, "optional": _BOOL}, ("key",))
_SECRET_OR_CONFIG_MAP = _object({"secret": _SECRET_KEY, "configMap": _SECRET_KEY})
_TLS_VERSION = {"enum": ["TLS10", "TLS11", "TLS12", "TLS13"]}
_RELABELING = _object(
    {
        "action": {
            "enum": [
                spelling
                for pair in (
                    ("replace", "Replace"),
                    ("keep", "Keep"),
                    ("drop", "Drop"),
                    ("hashmod", "HashMod"),
                    ("labelmap", "LabelMap"),
                    ("labeldrop", "LabelDrop"),
                    ("labelkeep", "LabelKeep"),
                    ("lowercase", "Lowercase"),
                    ("uppercase", "Uppercase"),
                    ("keepequal", "KeepEqual"),
                    ("dropequal", "DropEqual"),
                )
                for spelling in pair
            ]
        },
        "modulus": _INT,
        "regex": _STRING,
        "replacement": _STRING,
        "separator": _STRING,
        "sourceLabels": {"type": "array", "items": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
        "targetLabel": _STRING,
    }
)
SERVICE_MONITOR_SCHEMA = _object(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": _object(
            {
                "endpoints": {
                    "type": "array",
                    "items": _object(
                        {
                            "authorization": _object({"type": _STRING, "credentials": _SECRET_KEY}),
                            "enableHttp2": _BOOL,
                            "filterRunning": _BOOL,
                            "followRedirects": _BOOL,
                            "honorLabels": _BOOL,
                            "honorTimestamps": _BOOL,
                            "interval": _DURATION,
                            "metricRelabelings": {"type": "array", "items": _RELABELING},
                            "params": {"type": "object", "additionalProperties": _STRINGS},
                            "path": _STRING,
                            "port": _STRING,
                            "relabelings": {"type": "array", "items": _RELABELING},
                            "scheme": {"enum": ["http", "https"]},
                            "scrapeTimeout": _DURATION,
                            "targetPort": {"type": ["integer", "string"]},
                            "tlsConfig": _object(
                                {
                                    "ca": _SECRET_OR_CONFIG_MAP,
                                    "caFile": _STRING,
                                    "cert": _SECRET_OR_CONFIG_MAP,
                                    "certFile": _STRING,
                                    "insecureSkipVerify": _BOOL,
                                    "keyFile": _STRING,
                                    "keySecret": _SECRET_KEY,
                                    "maxVersion": _TLS_VERSION,
                                    "minVersion": _TLS_VERSION,
                                    "serverName": _STRING,
                                }
                            ),
                        }
                    ),
                },
                "jobLabel": _STRING,
                "namespaceSelector": _object({"any": _BOOL, "matchNames": _STRINGS}),
                "podTargetLabels": _STRINGS,
                "sampleLimit": _INT,
                "scrapeClass": {"type": "string", "minLength": 1},
                "selector": _LABEL_SELECTOR,
                "targetLabels": _STRINGS,
                "targetLimit": _INT,
            },
            ("endpoints", "selector"),
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)

# kedacore/keda, apis/keda/v1alpha1/scaledobject_types.go and scaletriggers_types.go (the Go
# types config/crd/bases/keda.sh_scaledobjects.yaml is generated from). The HPA behavior KEDA
# passes on is autoscaling/v2's type, checked with Kubernetes' own schema (see validate_object).
_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
SCALED_OBJECT_SCHEMA = _object(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": _object(
            {
                "scaleTargetRef": _object(
                    {
                        "name": _STRING,
                        "apiVersion": _STRING,
                        "kind": _STRING,
                        "envSourceContainerName": _STRING,
                    },
                    ("name",),
                ),
                "pollingInterval": _INT32,
                "initialCooldownPeriod": _INT32,
                "cooldownPeriod": _INT32,
                "idleReplicaCount": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": _INT32,
                "advanced": _object(
                    {
                        "horizontalPodAutoscalerConfig": _object(
                            {"behavior": {"type": "object"}, "name": _STRING}
                        ),
                        "restoreToOriginalReplicaCount": _BOOL,
                        "scalingModifiers": _object(
                            {
                                "formula": _STRING,
                                "target": _STRING,
                                "activationTarget": _STRING,
                                "metricType": {"enum": ["AverageValue", "Value"]},
                            }
                        ),
                    }
                ),
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        {
                            "type": _STRING,
                            "name": _STRING,
                            "useCachedMetrics": _BOOL,
                            # map[string]string: a number here is refused by the API server.
                            "metadata": _STRING_MAP,
                            "authenticationRef": _object(
                                {"name": _STRING, "kind": _STRING}, ("name",)
                            ),
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                        },
                        ("type", "metadata"),
                    ),
                },
                "fallback": _object(
                    {
                        "failureThreshold": _INT32,
                        "replicas": _INT32,
                        "behavior": {
                            "enum": [
                                "static",
                                "currentReplicas",
                                "currentReplicasIfHigher",
                                "currentReplicasIfLower",
                            ]
                        },
                    },
                    ("failureThreshold", "replicas"),
                ),
            },
            ("scaleTargetRef", "triggers"),
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)
# The prometheus scaler's metadata (keda.sh, "Scalers: Prometheus").
PROMETHEUS_TRIGGER_METADATA_SCHEMA = _object(
    {
        name: _STRING
        for name in (
            "serverAddress",
            "query",
            "threshold",
            "activationThreshold",
            "namespace",
            "customHeaders",
            "ignoreNullValues",
            "queryParameters",
            "unsafeSsl",
            "timeout",
            "authModes",
        )
    },
    ("serverAddress", "query", "threshold"),
)
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA,
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT_SCHEMA,
}


# --- Loading, rendering, validating --------------------------------------------------------------


def load_documents(text: str) -> list[dict]:
    return [document for document in yaml.safe_load_all(text) if document]


def plain_manifests(*folders: str) -> list[dict]:
    objects = []
    for folder in folders:
        for path in sorted((MANIFESTS / folder).glob("*.yaml")):
            objects.extend(load_documents(path.read_text()))
    return objects


class Rendered:
    """The chart rendered with `values` as `helm template demo deploy/helm/sculpt -n serving`."""

    def __init__(self, values: dict, release: str = RELEASE):
        with helm_python.Chart.load(str(CHART)) as chart:
            self.files = chart.render(values, name=release, namespace=NAMESPACE)
        self.notes = self.files.pop("sculpt/templates/NOTES.txt", "")
        self.objects = [obj for text in self.files.values() for obj in load_documents(text)]

    def texts(self) -> dict[str, str]:
        return {name: text for name, text in self.files.items() if text.strip()}


def render_error(values: dict) -> str:
    try:
        Rendered(values)
    except helm_python.HelmError as error:
        return str(error)
    raise AssertionError(f"the chart rendered {values}; it should have refused them")


def validate_object(obj: dict) -> None:
    """Raises jsonschema.ValidationError (kubernetes_validate's is one) when `obj` would be
    refused, SchemaNotFoundError for a kind neither knows."""
    schema = CRD_SCHEMAS.get((obj.get("apiVersion"), obj.get("kind")))
    if schema is None:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        return
    jsonschema.validate(obj, schema)
    if obj["kind"] == "ScaledObject":
        for trigger in obj["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                jsonschema.validate(trigger["metadata"], PROMETHEUS_TRIGGER_METADATA_SCHEMA)
        hpa_config = obj["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
        if "behavior" in hpa_config:
            validate_object(
                {
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "behavior"},
                    "spec": {
                        "scaleTargetRef": {"kind": "Deployment", "name": "x"},
                        "maxReplicas": 1,
                        "behavior": hpa_config["behavior"],
                    },
                }
            )


def lint_problems(text: str, name: str) -> list[str]:
    config = YamlLintConfig(file=str(YAMLLINT_CONFIG))
    return [f"{name}:{p.line}:{p.column}: {p.desc}" for p in yamllint_linter.run(text, config)]


# --- Facts ---------------------------------------------------------------------------------------


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def one(objects: list[dict], kind: str) -> dict:
    found = [obj for obj in objects if obj["kind"] == kind]
    expect(len(found) == 1, f"{len(found)} objects of kind {kind}, want 1")
    return found[0]


def container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    expect(len(containers) == 1, "one container per pod")
    return containers[0]


def env(deployment: dict) -> dict[str, dict]:
    entries = container(deployment).get("env", [])
    names = [entry["name"] for entry in entries]
    expect(len(names) == len(set(names)), f"environment variables set twice: {names}")
    return {entry["name"]: entry for entry in entries}


def env_value(deployment: dict, name: str) -> str | None:
    entry = env(deployment).get(name)
    return None if entry is None else entry.get("value")


def container_port(deployment: dict, port: int | str) -> int:
    """A probe's or Service's port, resolved to the container port number it names."""
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    expect(port in ports, f"no container port named {port!r}")
    return ports[port]


def server_ports(deployment: dict) -> tuple[int, int]:
    """(gRPC, HTTP) as the server will listen: its flags as environment variables."""
    grpc_port = int(env_value(deployment, "SCULPT_GRPC_PORT") or 50051)
    http_port = int(env_value(deployment, "SCULPT_HTTP_PORT") or 8080)
    expect(container_port(deployment, "grpc") == grpc_port, "container port grpc != --grpc-port")
    expect(container_port(deployment, "http") == http_port, "container port http != --http-port")
    return grpc_port, http_port


def check_probes(deployment: dict, tls: str) -> None:
    """tls: plain, tls or mtls (what the kubelet can use: its gRPC probe has no TLS, and it
    presents no client certificate)."""
    grpc_port, http_port = server_ports(deployment)
    main = container(deployment)
    startup, live, ready = (
        main.get(p) for p in ("startupProbe", "livenessProbe", "readinessProbe")
    )
    expect(None not in (startup, live, ready), "startup, liveness and readiness probes")
    # A model load may take minutes: at least 10 of them before the container is restarted.
    expect(
        startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3) >= 600,
        "the startup probe gives the model load at least 600 s",
    )
    if tls == "mtls":
        for probe, port in ((startup, grpc_port), (ready, grpc_port), (live, http_port)):
            expect(set(probe) & {"httpGet", "grpc"} == set(), "mTLS: no HTTP or gRPC probe")
            expect(container_port(deployment, probe["tcpSocket"]["port"]) == port, "tcp port")
        return
    scheme = "HTTPS" if tls == "tls" else "HTTP"
    http_probes = [(live, "/live"), (ready, "/health")]
    if tls == "tls":
        http_probes.append((startup, "/health"))
    for probe, path in http_probes:
        expect("httpGet" in probe, f"an httpGet probe, got {sorted(probe)}")
        get = probe["httpGet"]
        expect(get["path"] == path, f"probe path {get['path']}, want {path}")
        expect(container_port(deployment, get["port"]) == http_port, "probe on the HTTP port")
        expect(get.get("scheme", "HTTP") == scheme, f"probe scheme {get.get('scheme')}")
    if tls == "plain":
        for probe in (startup,):
            expect("grpc" in probe, f"a gRPC health probe, got {sorted(probe)}")
            expect(probe["grpc"]["port"] == grpc_port, "gRPC probe on the gRPC port")
            expect(
                probe["grpc"].get("service", "") in ("", "sculpt.v1.TextDiffusion"),
                "a service the server reports",
            )


def check_shutdown(deployment: dict) -> None:
    spec = deployment["spec"]
    rolling = spec["strategy"]
    expect(rolling["type"] == "RollingUpdate", "rolling updates")
    expect(rolling["rollingUpdate"]["maxUnavailable"] == 0, "maxUnavailable 0")
    expect(rolling["rollingUpdate"].get("maxSurge", 1) not in (0, "0%"), "maxSurge above 0")
    command = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    expect(command[0] == "/bin/sleep" and len(command) == 2, f"preStop {command}")
    pre_stop = float(command[1])
    expect(pre_stop > 0, "preStop sleeps")
    shutdown = float(env_value(deployment, "SCULPT_SHUTDOWN_TIMEOUT"))
    grace = spec["template"]["spec"]["terminationGracePeriodSeconds"]
    # The grace period counts from the start of preStop; after the shutdown timeout the server
    # takes up to 10 s to cancel and 5 s to deliver final messages.
    expect(
        grace > pre_stop + shutdown + 15,
        f"terminationGracePeriodSeconds {grace} <= preStop {pre_stop} + shutdown {shutdown} + 15",
    )


def check_security(deployment: dict) -> None:
    pod = deployment["spec"]["template"]["spec"]
    expect(pod["securityContext"]["runAsNonRoot"] is True, "runAsNonRoot")
    expect(pod["securityContext"].get("runAsUser") == 10001, "the image's uid")
    expect(pod.get("automountServiceAccountToken") is False, "no service account token")
    context = container(deployment)["securityContext"]
    expect(context["readOnlyRootFilesystem"] is True, "read-only root")
    expect(context["allowPrivilegeEscalation"] is False, "no privilege escalation")
    expect(context["capabilities"]["drop"] == ["ALL"], "all capabilities dropped")
    mounts = {m["mountPath"] for m in container(deployment).get("volumeMounts", [])}
    expect("/tmp" in mounts, "a writable /tmp under the read-only root")


def check_device(deployment: dict, device: str) -> None:
    resources = container(deployment)["resources"]
    image = container(deployment)["image"]
    expect(image.endswith(f"-{device}"), f"image {image} for {device}")
    expect(env_value(deployment, "SCULPT_DEVICE") == device, "SCULPT_DEVICE")
    expect(resources["requests"] == resources["limits"], "requests equal limits (Guaranteed)")
    gpus = resources["limits"].get("nvidia.com/gpu")
    if device == "cuda":
        expect(gpus is not None and int(gpus) >= 1, "a GPU per pod")
    else:
        expect("nvidia.com/gpu" not in json.dumps(deployment), "no GPU asked for on CPU")
    threads = env(deployment).get("SCULPT_THREADS", {})
    field = threads.get("valueFrom", {}).get("resourceFieldRef", {}).get("resource")
    expect(field == "limits.cpu", "threads follow the CPU limit")


def mounted_file(deployment: dict, path: str) -> tuple[dict, str]:
    """The volume holding the file at `path`, and the file's name in it."""
    pod = deployment["spec"]["template"]["spec"]
    directory, _, name = path.rpartition("/")
    mounts = [m for m in container(deployment)["volumeMounts"] if m["mountPath"] == directory]
    expect(len(mounts) == 1, f"{directory} is mounted")
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[0]["name"])
    return volume, name


def check_api_keys(deployment: dict, objects: list[dict], secret_name: str | None) -> None:
    """secret_name: the Secret that must hold the keys, or None for a server without keys."""
    key_file = env_value(deployment, "SCULPT_API_KEY_FILE")
    if secret_name is None:
        expect(key_file is None, "no key file without keys")
        return
    expect(key_file is not None, "SCULPT_API_KEY_FILE set")
    volume, name = mounted_file(deployment, key_file)
    expect(volume.get("secret", {}).get("secretName") == secret_name, "mounted from the Secret")
    items = volume["secret"].get("items")
    if items:
        expect(name in {item["path"] for item in items}, f"{name} among the Secret's items")
    secrets = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == secret_name]
    for secret in secrets:
        key = next((i["key"] for i in items or [] if i["path"] == name), name)
        data = {**secret.get("stringData", {}), **secret.get("data", {})}
        expect(key in data, f"the Secret holds {key}")


def api_key_lines(secret: dict, key: str) -> list[str]:
    text = secret["stringData"][key]
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def check_tls(deployment: dict, tls: str) -> None:
    flags = {
        "SCULPT_TLS_CERT": "tls.crt",
        "SCULPT_TLS_KEY": "tls.key",
        "SCULPT_TLS_CLIENT_CA": "ca.crt",
    }
    for variable, file_name in flags.items():
        wanted = tls == "mtls" or (tls == "tls" and variable != "SCULPT_TLS_CLIENT_CA")
        path = env_value(deployment, variable)
        if not wanted:
            expect(path is None, f"{variable} unset with {tls}")
            continue
        expect(path is not None, f"{variable} set with {tls}")
        volume, name = mounted_file(deployment, path)
        expect(name == file_name, f"{variable} names {name}, the Secret holds {file_name}")
        expect("secret" in volume, f"{variable} from a Secret")


def check_service(service: dict, deployment: dict, tls: str = "plain") -> None:
    grpc_port, http_port = server_ports(deployment)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    expect(selector.items() <= pod_labels.items(), "the Service selects the pods")
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    expect(ports["grpc"].get("appProtocol") == "grpc", "the gRPC port says appProtocol grpc")
    expect(container_port(deployment, ports["grpc"]["targetPort"]) == grpc_port, "gRPC target")
    if "http" in ports:
        want = "https" if tls != "plain" else "http"
        expect(ports["http"].get("appProtocol") == want, f"the HTTP port says {want}")
        expect(container_port(deployment, ports["http"]["targetPort"]) == http_port, "target")


def check_selects(selector: dict, deployment: dict) -> None:
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    expect(selector["matchLabels"].items() <= pod_labels.items(), "the selector selects the pods")


def check_hpa(hpa: dict, deployment: dict) -> None:
    target = hpa["spec"]["scaleTargetRef"]
    expect(target["kind"] == "Deployment", "scales the Deployment")
    expect(target["name"] == deployment["metadata"]["name"], "scales this Deployment")
    expect(1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], "replica bounds")
    expect(all(m["type"] == "Pods" for m in hpa["spec"]["metrics"]), "Pods metrics only")
    metrics = {m["pods"]["metric"]["name"]: m["pods"]["target"] for m in hpa["spec"]["metrics"]}
    expect("sculpt_num_requests_waiting" in metrics, "scales on the waiting queue")
    for name, target in metrics.items():
        expect(name.startswith("sculpt_num_requests_"), f"a server gauge, not {name}")
        expect(target["type"] == "AverageValue", "a per-pod value")
    expect("replicas" not in deployment["spec"], "the autoscaler owns the replica count")


def check_scaled_object(scaled: dict, deployment: dict) -> None:
    spec = scaled["spec"]
    expect(spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"], "scales this one")
    queries = {t["name"]: t["metadata"]["query"] for t in spec["triggers"]}
    expect("sculpt_num_requests_waiting" in queries.get("waiting", ""), "the waiting queue")
    for trigger in spec["triggers"]:
        expect(trigger["type"] == "prometheus", "prometheus triggers")
        expect(float(trigger["metadata"]["threshold"]) > 0, "a threshold above 0")
    expect(1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], "replica bounds")


def check_service_monitor(monitor: dict, services: list[dict], tls: str) -> None:
    selector = monitor["spec"]["selector"]["matchLabels"]
    chosen = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
    expect(len(chosen) == 1, f"the ServiceMonitor selects {len(chosen)} Services, want 1")
    ports = {port["name"] for port in chosen[0]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        expect(endpoint["port"] in ports, f"port {endpoint['port']} of the Service")
        expect(endpoint["port"] == "http", "metrics are on the HTTP port")
        expect(endpoint.get("path", "/metrics") == "/metrics", "/metrics")
        want = "https" if tls != "plain" else "http"
        expect(endpoint.get("scheme", "http") == want, f"scrapes over {want}")


def check_network_policy(policy: dict, deployment: dict, monitoring: str = "monitoring") -> None:
    check_selects(policy["spec"]["podSelector"], deployment)
    expect(policy["spec"]["policyTypes"] == ["Ingress"], "an ingress policy")
    ports = set()
    metrics_from_monitoring = False
    for rule in policy["spec"]["ingress"]:
        rule_ports = {container_port(deployment, p["port"]) for p in rule["ports"]}
        ports |= rule_ports
        for peer in rule.get("from", []):
            labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
            if labels.get("kubernetes.io/metadata.name") == monitoring:
                metrics_from_monitoring |= server_ports(deployment)[1] in rule_ports
    expect(ports == set(server_ports(deployment)), f"ingress to the two ports only, got {ports}")
    expect(metrics_from_monitoring, f"/metrics open to the {monitoring} namespace")


def check_no_namespace(objects: list[dict]) -> None:
    for obj in objects:
        expect("namespace" not in obj["metadata"], f"{obj['kind']} names no namespace")


def check_deployment(objects: list[dict], device: str, tls: str, secret: str | None) -> dict:
    """All the facts of one rendering or set of manifests; returns its Deployment."""
    deployment = one(objects, "Deployment")
    check_selects(deployment["spec"]["selector"], deployment)
    check_probes(deployment, tls)
    check_shutdown(deployment)
    check_security(deployment)
    check_device(deployment, device)
    check_api_keys(deployment, objects, secret)
    check_tls(deployment, tls)
    services = [o for o in objects if o["kind"] == "Service"]
    for service in services:
        check_service(service, deployment, tls)
    check_no_namespace(objects)
    return deployment


def broken(obj: dict, change) -> dict:
    """A deep copy of `obj` with `change` applied to it."""
    copied = copy.deepcopy(obj)
    change(copied)
    return copied


def set_env(obj: dict, name: str, value: str) -> None:
    next(e for e in main_of(obj)["env"] if e["name"] == name)["value"] = value


def without(items: list[dict], name: str) -> list[dict]:
    return [item for item in items if item["name"] != name]


def pod_of(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def main_of(obj: dict) -> dict:
    return pod_of(obj)["containers"][0]


# --- Tests ---------------------------------------------------------------------------------------

VALUE_SETS = {
    "cpu": {},
    "cuda": {"device": "cuda"},
    "hpa": {"autoscaling": {"enabled": True, "kind": "hpa"}},
    "keda": {"device": "cuda", "autoscaling": {"enabled": True, "kind": "keda"}},
    "api-keys": {
        "apiKeys": {
            "keys": [KEY_A, KEY_B],
            "maxRequestsPerKey": 4,
            "rateLimitPerKey": 2.5,
            "protectMetrics": True,
        },
        "serviceMonitor": {
            "enabled": True,
            "authorization": {"secretName": "prometheus-sculpt-key", "secretKey": "key"},
        },
    },
    "api-keys-existing": {"apiKeys": {"existingSecret": "my-keys", "secretKey": "keys.txt"}},
    "tls": {
        "tls": {"enabled": True, "existingSecret": "sculpt-tls"},
        "serviceMonitor": {"enabled": True},
    },
    "mtls": {
        "tls": {"enabled": True, "existingSecret": "sculpt-tls", "clientCA": True},
        "serviceMonitor": {
            "enabled": True,
            "tlsConfig": {
                "ca": {"secret": {"name": "sculpt-tls", "key": "ca.crt"}},
                "cert": {"secret": {"name": "prometheus-client", "key": "tls.crt"}},
                "keySecret": {"name": "prometheus-client", "key": "tls.key"},
                "serverName": "demo-sculpt.serving.svc",
            },
        },
    },
    "observability": {
        "networkPolicy": {"enabled": True},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "service": {"headless": True},
    },
    "model": {
        "model": {
            "name": "llada-8b-instruct",
            "servedName": "llada",
            "volume": {"persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
        },
        "config": {"max-num-seqs": 32, "kv-cache-memory": "4GiB"},
        "extraArgs": ["--log-level", "debug"],
        "server": {"shutdownTimeoutSeconds": 120, "preStopSleepSeconds": 10},
    },
}
TLS_OF = {"tls": "tls", "mtls": "mtls"}
DEVICE_OF = {"cuda": "cuda", "keda": "cuda"}
SECRET_OF = {"api-keys": "demo-sculpt-api-keys", "api-keys-existing": "my-keys"}


class PlainManifestsTest(unittest.TestCase):
    def test_yamllint(self):
        files = sorted(MANIFESTS.rglob("*.yaml")) + [CHART / "values.yaml", CHART / "Chart.yaml"]
        self.assertGreater(len(files), 8)
        problems = [
            p for f in files for p in lint_problems(f.read_text(), str(f.relative_to(SOURCE_DIR)))
        ]
        self.assertEqual(problems, [])

    def test_schemas(self):
        objects = plain_manifests("common", "cpu", "cuda", "hpa", "keda", "monitoring")
        kinds = sorted(obj["kind"] for obj in objects)
        self.assertEqual(
            kinds,
            sorted(
                ["Deployment", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy"]
                + ["PodDisruptionBudget", "ScaledObject", "Secret", "Service", "Service"]
                + ["ServiceMonitor"]
            ),
        )
        for obj in objects:
            with self.subTest(kind=obj["kind"], name=obj["metadata"]["name"]):
                validate_object(obj)

    def test_cpu_and_cuda(self):
        for device in ("cpu", "cuda"):
            with self.subTest(device=device):
                objects = plain_manifests("common", device)
                deployment = check_deployment(objects, device, "plain", "sculpt-api-keys")
                check_selects(one(objects, "PodDisruptionBudget")["spec"]["selector"], deployment)
                check_network_policy(one(objects, "NetworkPolicy"), deployment)

    def test_placeholder_key_stops_the_server(self):
        # Applied unchanged, the Secret must not leave a guessable key: the server refuses a key
        # file whose line is not a valid key, and one that holds no key.
        secret = one(plain_manifests("common"), "Secret")
        lines = api_key_lines(secret, "api-keys")
        self.assertEqual(len(lines), 1)
        self.assertIn("REPLACE", lines[0])
        self.assertIsNone(API_KEY.match(lines[0]))

    def test_autoscalers_and_monitoring(self):
        deployment = one(plain_manifests("cpu"), "Deployment")
        deployment = broken(deployment, lambda d: d["spec"].pop("replicas"))
        check_hpa(one(plain_manifests("hpa"), "HorizontalPodAutoscaler"), deployment)
        check_scaled_object(one(plain_manifests("keda"), "ScaledObject"), deployment)
        services = [o for o in plain_manifests("common") if o["kind"] == "Service"]
        check_service_monitor(
            one(plain_manifests("monitoring"), "ServiceMonitor"), services, "plain"
        )

    def test_prometheus_adapter_rule(self):
        values = yaml.safe_load((MANIFESTS / "prometheus-adapter" / "values.yaml").read_text())
        hpa = one(plain_manifests("hpa"), "HorizontalPodAutoscaler")
        wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]}
        (rule,) = values["rules"]["custom"]
        self.assertEqual(rule["resources"]["overrides"]["namespace"], {"resource": "namespace"})
        self.assertEqual(rule["resources"]["overrides"]["pod"], {"resource": "pod"})
        for marker in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
            self.assertIn(marker, rule["metricsQuery"])
        # The series the rule discovers and the names it serves them as are what the HPA asks.
        series = re.search(r'__name__=~"([^"]+)"', rule["seriesQuery"]).group(1)
        for metric in wanted:
            self.assertTrue(re.fullmatch(series, metric), metric)
            served = re.sub(
                rule["name"]["matches"], rule["name"]["as"].replace("${1}", r"\1"), metric
            )
            self.assertEqual(served, metric)


class ChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.renders = {name: Rendered(values) for name, values in VALUE_SETS.items()}

    def test_helm_lint(self):
        for name, values in VALUE_SETS.items():
            with self.subTest(values=name):
                report = helm_python.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
                self.assertEqual(report["errors"], [])
                # Severity 1 is information (Chart.yaml has no icon).
                self.assertEqual([m for m in report["messages"] if m["severity"] > 1], [])

    def test_yamllint_of_the_rendering(self):
        for name, rendered in self.renders.items():
            with self.subTest(values=name):
                problems = [
                    p for file, text in rendered.texts().items() for p in lint_problems(text, file)
                ]
                self.assertEqual(problems, [])

    def test_schemas(self):
        for name, rendered in self.renders.items():
            for obj in rendered.objects:
                with self.subTest(values=name, kind=obj["kind"]):
                    validate_object(obj)

    def test_facts(self):
        for name, rendered in self.renders.items():
            with self.subTest(values=name):
                objects = rendered.objects
                tls = TLS_OF.get(name, "plain")
                deployment = check_deployment(
                    objects, DEVICE_OF.get(name, "cpu"), tls, SECRET_OF.get(name)
                )
                check_selects(one(objects, "PodDisruptionBudget")["spec"]["selector"], deployment)
                services = [o for o in objects if o["kind"] == "Service"]
                monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
                for monitor in monitors:
                    check_service_monitor(monitor, services, tls)
                for policy in [o for o in objects if o["kind"] == "NetworkPolicy"]:
                    check_network_policy(policy, deployment)
                kinds = {o["kind"] for o in objects}
                self.assertEqual("HorizontalPodAutoscaler" in kinds, name == "hpa")
                self.assertEqual("ScaledObject" in kinds, name == "keda")
                self.assertEqual(bool(monitors), "serviceMonitor" in VALUE_SETS[name])
                if name == "hpa":
                    check_hpa(one(objects, "HorizontalPodAutoscaler"), deployment)
                if name == "keda":
                    check_scaled_object(one(objects, "ScaledObject"), deployment)

    def test_api_keys_inline(self):
        objects = self.renders["api-keys"].objects
        secret = one(objects, "Secret")
        self.assertEqual(api_key_lines(secret, "api-keys"), [KEY_A, KEY_B])
        deployment = one(objects, "Deployment")
        self.assertEqual(env_value(deployment, "SCULPT_MAX_REQUESTS_PER_KEY"), "4")
        self.assertEqual(env_value(deployment, "SCULPT_RATE_LIMIT_PER_KEY"), "2.5")
        self.assertEqual(env_value(deployment, "SCULPT_PROTECT_METRICS"), "true")
        # New keys roll the pods.
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        self.assertRegex(annotations["checksum/api-keys"], "^[0-9a-f]{64}$")
        other = Rendered({"apiKeys": {"keys": [KEY_B]}})
        self.assertNotEqual(
            annotations["checksum/api-keys"],
            one(other.objects, "Deployment")["spec"]["template"]["metadata"]["annotations"][
                "checksum/api-keys"
            ],
        )
        endpoint = one(objects, "ServiceMonitor")["spec"]["endpoints"][0]
        self.assertEqual(endpoint["authorization"]["credentials"]["name"], "prometheus-sculpt-key")
        self.assertNotIn("Secret", {o["kind"] for o in self.renders["cpu"].objects})
        self.assertIn("no API keys", self.renders["cpu"].notes)

    def test_model_config_and_shutdown_values(self):
        deployment = one(self.renders["model"].objects, "Deployment")
        self.assertEqual(env_value(deployment, "SCULPT_MODEL"), "/models/llada-8b-instruct")
        self.assertEqual(env_value(deployment, "SCULPT_SERVED_MODEL_NAME"), "llada")
        self.assertEqual(env_value(deployment, "SCULPT_MAX_NUM_SEQS"), "32")
        self.assertEqual(env_value(deployment, "SCULPT_KV_CACHE_MEMORY"), "4GiB")
        self.assertEqual(env_value(deployment, "SCULPT_SHUTDOWN_TIMEOUT"), "120")
        self.assertEqual(main_of(deployment)["args"], ["--log-level", "debug"])
        volume, _ = mounted_file(deployment, "/models/llada-8b-instruct")
        self.assertEqual(volume["persistentVolumeClaim"]["claimName"], "models")

    def test_tls_switches_probes_and_scrapes(self):
        deployment = one(self.renders["tls"].objects, "Deployment")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            self.assertEqual(main_of(deployment)[probe]["httpGet"]["scheme"], "HTTPS")
        endpoint = one(self.renders["tls"].objects, "ServiceMonitor")["spec"]["endpoints"][0]
        self.assertEqual(
            endpoint["tlsConfig"]["ca"]["secret"], {"name": "sculpt-tls", "key": "ca.crt"}
        )

    def test_plain_manifests_match_the_chart(self):
        # deploy/kubernetes/cpu is what the chart renders for a release named sculpt with the
        # key Secret of deploy/kubernetes/common; the fields that decide serving must agree.
        rendered = Rendered({"apiKeys": {"existingSecret": "sculpt-api-keys"}}, release="sculpt")
        chart = one(rendered.objects, "Deployment")
        plain = one(plain_manifests("cpu"), "Deployment")
        for field in (
            "ports",
            "startupProbe",
            "lifecycle",
            "resources",
            "securityContext",
        ):
            self.assertEqual(main_of(chart)[field], main_of(plain)[field], field)
        for probe in ("livenessProbe", "readinessProbe"):
            # The chart spells out the default scheme.
            rendered_probe = copy.deepcopy(main_of(chart)[probe])
            self.assertEqual(rendered_probe["httpGet"].pop("scheme"), "HTTP")
            self.assertEqual(rendered_probe, main_of(plain)[probe], probe)
        self.assertEqual(env(chart).keys(), env(plain).keys())
        for name in ("strategy", "selector"):
            self.assertEqual(chart["spec"][name], plain["spec"][name], name)
        for name in (
            "terminationGracePeriodSeconds",
            "securityContext",
            "topologySpreadConstraints",
        ):
            self.assertEqual(pod_of(chart)[name], pod_of(plain)[name], name)

    def test_chart_refuses_what_would_not_work(self):
        refusals = {
            "device": ({"device": "tpu"}, "device"),
            "unknown value": ({"replicas": 3}, "replicas"),
            "TLS without its Secret": ({"tls": {"enabled": True}}, "tls.existingSecret"),
            "mTLS without TLS": ({"tls": {"clientCA": True}}, "tls.enabled"),
            "short key": ({"apiKeys": {"keys": ["short"]}}, "16 to 512"),
            "key with a space": ({"apiKeys": {"keys": ["a key with spaces inside"]}}, "16 to 512"),
            "limits without keys": ({"apiKeys": {"maxRequestsPerKey": 2}}, "need keys"),
            "a flag the chart sets": (
                {"config": {"shutdown-timeout": 90}},
                "config.shutdown-timeout",
            ),
            "model without volume": ({"model": {"name": "m"}}, "model.volume"),
            "mTLS scrape without a client certificate": (
                {
                    "tls": {"enabled": True, "existingSecret": "s", "clientCA": True},
                    "serviceMonitor": {"enabled": True},
                },
                "serviceMonitor.tlsConfig.cert",
            ),
        }
        for case, (values, message) in refusals.items():
            with self.subTest(case=case):
                self.assertIn(message, render_error(values))


class CheckersRefuseBrokenManifestsTest(unittest.TestCase):
    """The negative controls: each validator and fact check refuses a manifest broken on purpose."""

    @classmethod
    def setUpClass(cls):
        cls.objects = plain_manifests("common", "cpu")
        cls.deployment = one(cls.objects, "Deployment")
        cls.cuda = one(plain_manifests("cuda"), "Deployment")
        cls.tls = one(Rendered(VALUE_SETS["tls"]).objects, "Deployment")

    def assert_refused(self, check, *args):
        with self.assertRaises(AssertionError):
            check(*args)

    def test_kubernetes_schema_refuses_unknown_and_mistyped_fields(self):
        misspelt = broken(
            self.deployment,
            lambda d: main_of(d)["readinessProbe"]["httpGet"].update(paht="/health"),
        )
        with self.assertRaises(kubernetes_validate.ValidationError):
            validate_object(misspelt)
        mistyped = broken(
            self.deployment, lambda d: pod_of(d).update(terminationGracePeriodSeconds="60s")
        )
        with self.assertRaises(kubernetes_validate.ValidationError):
            validate_object(mistyped)

    def test_crd_schemas_refuse_unknown_and_mistyped_fields(self):
        monitor = one(plain_manifests("monitoring"), "ServiceMonitor")
        validate_object(monitor)
        for change in (
            lambda m: m["spec"]["endpoints"][0].update(scheme="HTTP"),
            lambda m: m["spec"]["endpoints"][0].update(intervall="15s"),
            lambda m: m["spec"].pop("selector"),
        ):
            with self.assertRaises(jsonschema.ValidationError):
                validate_object(broken(monitor, change))
        scaled = one(plain_manifests("keda"), "ScaledObject")
        validate_object(scaled)
        for change in (
            lambda s: s["spec"]["triggers"][0]["metadata"].update(threshold=2),
            lambda s: s["spec"]["triggers"][0]["metadata"].update(serverAdress="http://p:9090"),
            lambda s: s["spec"].update(minReplicas=2),
        ):
            with self.assertRaises(jsonschema.ValidationError):
                validate_object(broken(scaled, change))
        behavior = broken(
            scaled,
            lambda s: s["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"][
                "scaleUp"
            ].update(stabilisationWindowSeconds=0),
        )
        with self.assertRaises(kubernetes_validate.ValidationError):
            validate_object(behavior)

    def test_yamllint_refuses_bad_yaml(self):
        bad = "apiVersion: v1\nkind: ConfigMap\nkind: Secret\ndata:\n  on: yes\n   x: 1\n"
        self.assertGreaterEqual(len(lint_problems(bad, "bad.yaml")), 3)

    def test_probe_checks(self):
        check_probes(self.deployment, "plain")
        for change in (
            lambda d: main_of(d)["readinessProbe"]["httpGet"].update(path="/live"),
            lambda d: main_of(d)["readinessProbe"]["httpGet"].update(port=50051),
            lambda d: main_of(d)["livenessProbe"]["httpGet"].update(path="/health"),
            lambda d: main_of(d)["startupProbe"]["grpc"].update(port=8080),
            lambda d: main_of(d)["startupProbe"].update(failureThreshold=10),
            lambda d: main_of(d).pop("startupProbe"),
            lambda d: main_of(d)["ports"][0].update(containerPort=50052),
        ):
            self.assert_refused(check_probes, broken(self.deployment, change), "plain")
        check_probes(self.tls, "tls")
        self.assert_refused(check_probes, self.deployment, "tls")
        self.assert_refused(
            check_probes,
            broken(
                self.tls, lambda d: main_of(d)["readinessProbe"]["httpGet"].update(scheme="HTTP")
            ),
            "tls",
        )
        self.assert_refused(check_probes, self.tls, "mtls")

    def test_shutdown_checks(self):
        check_shutdown(self.deployment)
        for change in (
            lambda d: pod_of(d).update(terminationGracePeriodSeconds=50),
            lambda d: set_env(d, "SCULPT_SHUTDOWN_TIMEOUT", "45"),
            lambda d: main_of(d)["lifecycle"]["preStop"]["exec"].update(
                command=["/bin/sleep", "25"]
            ),
            lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=1),
        ):
            self.assert_refused(check_shutdown, broken(self.deployment, change))

    def test_security_checks(self):
        check_security(self.deployment)
        for change in (
            lambda d: pod_of(d)["securityContext"].update(runAsNonRoot=False),
            lambda d: main_of(d)["securityContext"].update(readOnlyRootFilesystem=False),
            lambda d: main_of(d)["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
        ):
            self.assert_refused(check_security, broken(self.deployment, change))

    def test_device_checks(self):
        check_device(self.deployment, "cpu")
        check_device(self.cuda, "cuda")
        self.assert_refused(check_device, self.cuda, "cpu")
        self.assert_refused(check_device, self.deployment, "cuda")
        no_gpu = broken(
            self.cuda,
            lambda d: [
                main_of(d)["resources"][k].pop("nvidia.com/gpu") for k in ("limits", "requests")
            ],
        )
        self.assert_refused(check_device, no_gpu, "cuda")
        gpu_on_cpu = broken(
            self.deployment,
            lambda d: main_of(d)["resources"]["limits"].update({"nvidia.com/gpu": 1}),
        )
        self.assert_refused(check_device, gpu_on_cpu, "cpu")

    def test_key_and_tls_checks(self):
        check_api_keys(self.deployment, self.objects, "sculpt-api-keys")
        self.assert_refused(check_api_keys, self.deployment, self.objects, None)
        self.assert_refused(check_api_keys, self.deployment, self.objects, "other-secret")
        unset = broken(
            self.deployment,
            lambda d: main_of(d).update(env=without(main_of(d)["env"], "SCULPT_API_KEY_FILE")),
        )
        self.assert_refused(check_api_keys, unset, self.objects, "sculpt-api-keys")
        unmounted = broken(
            self.deployment,
            lambda d: main_of(d).update(
                volumeMounts=without(main_of(d)["volumeMounts"], "api-keys")
            ),
        )
        self.assert_refused(check_api_keys, unmounted, self.objects, "sculpt-api-keys")
        check_tls(self.tls, "tls")
        self.assert_refused(check_tls, self.tls, "mtls")
        self.assert_refused(check_tls, self.deployment, "tls")
        wrong_file = broken(
            self.tls, lambda d: set_env(d, "SCULPT_TLS_KEY", "/etc/sculpt/tls/key.pem")
        )
        self.assert_refused(check_tls, wrong_file, "tls")

    def test_service_autoscaler_and_policy_checks(self):
        service = next(
            o for o in self.objects if o["kind"] == "Service" and o["metadata"]["name"] == "sculpt"
        )
        check_service(service, self.deployment)
        self.assert_refused(
            check_service,
            broken(service, lambda s: s["spec"]["ports"][0].pop("appProtocol")),
            self.deployment,
        )
        self.assert_refused(
            check_service,
            broken(service, lambda s: s["spec"]["selector"].update(app="x")),
            self.deployment,
        )
        scaled_deployment = broken(self.deployment, lambda d: d["spec"].pop("replicas"))
        hpa = one(plain_manifests("hpa"), "HorizontalPodAutoscaler")
        check_hpa(hpa, scaled_deployment)
        self.assert_refused(check_hpa, hpa, self.deployment)
        for change in (
            lambda h: h["spec"]["metrics"][0]["pods"]["metric"].update(
                name="sculpt_num_requests_queued"
            ),
            lambda h: h["spec"].update(metrics=[{"type": "Resource", "resource": {"name": "cpu"}}]),
            lambda h: h["spec"]["scaleTargetRef"].update(name="other"),
        ):
            self.assert_refused(check_hpa, broken(hpa, change), scaled_deployment)
        scaled = one(plain_manifests("keda"), "ScaledObject")
        self.assert_refused(
            check_scaled_object,
            broken(scaled, lambda s: s["spec"]["triggers"][0]["metadata"].update(query="sum(up)")),
            scaled_deployment,
        )
        services = [o for o in self.objects if o["kind"] == "Service"]
        monitor = one(plain_manifests("monitoring"), "ServiceMonitor")
        all_services = broken(
            monitor,
            lambda m: m["spec"]["selector"]["matchLabels"].pop("app.kubernetes.io/component"),
        )
        self.assert_refused(check_service_monitor, all_services, services, "plain")
        self.assert_refused(check_service_monitor, monitor, services, "tls")
        policy = one(self.objects, "NetworkPolicy")
        self.assert_refused(
            check_network_policy,
            broken(policy, lambda p: p["spec"]["ingress"].pop()),
            self.deployment,
        )
        extra_port = broken(
            policy,
            lambda p: p["spec"]["ingress"][0]["ports"].append({"port": 9090, "protocol": "TCP"}),
        )
        self.assert_refused(check_network_policy, extra_port, self.deployment)
        self.assert_refused(
            check_no_namespace,
            [broken(policy, lambda p: p["metadata"].update(namespace="default"))],
        )


if __name__ == "__main__":
    if MISSING:
        print(
            f"SKIPPED: the deploy manifest checks need {', '.join(MISSING)} "
            "(scripts/install_deps.sh installs requirements-dev.txt into .venv)"
        )
        sys.exit(77)
    unittest.main()
