"""Rendering tests of the Helm chart in ``helm/callstream`` (no cluster: ``helm lint`` and
``helm template``, whose YAML output is parsed and checked).

Helm must be installed: ``bash helm/install-helm.sh`` puts the pinned version in
``.tools/bin/helm`` (the Makefile's ``helm-lint`` target runs it first). Without helm these tests
FAIL rather than skip, so that a CI without helm cannot pass silently.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "callstream"
TEMPLATES = CHART / "templates"
ALL_ENABLED = CHART / "ci" / "all-enabled-values.yaml"
RELEASE = "cs"
NAMESPACE = "calls"
COMPONENTS = {"dispatcher": ["dispatch"], "gateway": ["gateway"], "normalizer": ["normalize"]}

Doc = dict[str, Any]


@functools.cache
def helm_binary() -> str:
    local = REPO / ".tools" / "bin" / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("helm")
    if found:
        return found
    pytest.fail(
        "helm is not installed: run `bash helm/install-helm.sh` (it builds the pinned helm into "
        ".tools/bin/helm; `make helm-lint` does it first). These tests never skip.",
        pytrace=False,
    )


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False
    )


@functools.cache
def _template_text(values_files: tuple[str, ...], sets: tuple[str, ...]) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for f in values_files:
        args += ["-f", f]
    for s in sets:
        args += ["--set", s]
    result = run_helm(*args)
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def split_by_source(text: str) -> dict[str, list[Doc]]:
    """``# Source: callstream/templates/x.yaml`` -> the documents that template rendered."""
    by_source: dict[str, list[Doc]] = {}
    for chunk in re.split(r"^---\s*$", text, flags=re.M):
        match = re.search(r"^# Source: (\S+)$", chunk, flags=re.M)
        docs = [d for d in yaml.safe_load_all(chunk) if d is not None]
        if match is None:
            assert not docs, f"a rendered document without a # Source line:\n{chunk}"
            continue
        by_source.setdefault(match.group(1), []).extend(docs)
    return by_source


def render(*sets: str, values: tuple[Path, ...] = ()) -> list[Doc]:
    text = _template_text(tuple(str(v) for v in values), tuple(sets))
    return [doc for docs in split_by_source(text).values() for doc in docs]


def render_all(*sets: str) -> list[Doc]:
    return render(*sets, values=(ALL_ENABLED,))


def objects(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


WORKLOAD_KIND = {"dispatcher": "Deployment", "gateway": "Deployment", "normalizer": "StatefulSet"}


def workload(docs: list[Doc], component: str) -> Doc:
    """The component's Deployment (the normalizer's StatefulSet)."""
    return one(docs, WORKLOAD_KIND[component], f"{RELEASE}-callstream-{component}")


def pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def chart_app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


RENDERS = {
    "defaults": lambda: render(),
    "all-enabled": lambda: render_all(),
}


@pytest.fixture(params=sorted(RENDERS))
def docs(request: pytest.FixtureRequest) -> list[Doc]:
    return RENDERS[request.param]()


# --- lint and structure -----------------------------------------------------------------------


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == "0.1.0"


@pytest.mark.parametrize("values", [(), (ALL_ENABLED,)], ids=["defaults", "all-enabled"])
def test_helm_lint_strict(values: tuple[Path, ...]) -> None:
    args = ["lint", "--strict", str(CHART)]
    for v in values:
        args += ["-f", str(v)]
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", [(), (ALL_ENABLED,)], ids=["defaults", "all-enabled"])
def test_one_object_per_template_file(values: tuple[Path, ...]) -> None:
    by_source = split_by_source(_template_text(tuple(str(v) for v in values), ()))
    assert by_source
    for source, docs in by_source.items():
        assert len(docs) == 1, f"{source} renders {len(docs)} objects"
    files = sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.yaml"))
    for f in files:
        text = (TEMPLATES / f).read_text()
        assert len(re.findall(r"^kind:", text, flags=re.M)) == 1, f"{f} declares several kinds"


def test_all_enabled_values_render_every_template() -> None:
    """The all-enabled values really switch everything on: each template file renders."""
    by_source = split_by_source(_template_text((str(ALL_ENABLED),), ()))
    rendered = {s.removeprefix("callstream/templates/") for s in by_source}
    files = {p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.yaml")}
    missing = files - rendered - {"secret.yaml"}  # existingSecret: the chart makes no Secret
    assert not missing, f"templates the all-enabled values do not render: {sorted(missing)}"


def test_default_objects() -> None:
    kinds = Counter(d["kind"] for d in render())
    assert kinds == Counter(
        {
            "Deployment": 2,
            "StatefulSet": 1,  # the normalizer: stable pod names for its transactional ids
            "PodDisruptionBudget": 3,
            "Service": 5,  # the gateway's, the normalizer's headless, one metrics per component
            "ConfigMap": 1,
            "Secret": 1,
            "ServiceAccount": 1,
        }
    )


def test_all_enabled_objects() -> None:
    docs = render_all()
    kinds = Counter(d["kind"] for d in docs)
    assert kinds["Ingress"] == 1
    assert kinds["HorizontalPodAutoscaler"] == 1
    assert kinds["NetworkPolicy"] == 3
    assert kinds["ServiceMonitor"] == 1
    assert kinds["Job"] == 1
    assert kinds["PodDisruptionBudget"] == 3
    assert kinds["Secret"] == 0  # secrets.existingSecret
    assert "replicas" not in workload(docs, "gateway")["spec"]  # the HPA owns it


def test_components_can_be_disabled() -> None:
    docs = render("dispatcher.enabled=false", "normalizer.enabled=false")
    assert [d["metadata"]["name"] for d in objects(docs, "Deployment")] == [
        f"{RELEASE}-callstream-gateway"
    ]
    assert all("dispatcher" not in d["metadata"]["name"] for d in docs)
    assert not objects(docs, "StatefulSet")


def test_every_object_labelled_and_namespaced(docs: list[Doc]) -> None:
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/name"] == "callstream"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert d["metadata"]["namespace"] == NAMESPACE


# --- values documentation and schema ----------------------------------------------------------


def _leaf_paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _leaf_paths(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix


def test_every_value_has_a_param_line() -> None:
    text = (CHART / "values.yaml").read_text()
    params = set(re.findall(r"^\s*## @param (\S+) \S", text, flags=re.M))
    values = yaml.safe_load(text)
    undocumented = [
        path
        for path in _leaf_paths(values)
        if not any(path == p or path.startswith(p + ".") for p in params)
    ]
    assert not undocumented, f"values without a ## @param line: {undocumented}"
    leaves = set(_leaf_paths(values))
    stale = [p for p in params if not any(x == p or x.startswith(p + ".") for x in leaves)]
    assert not stale, f"## @param lines naming no value: {stale}"


def test_schema_knows_every_value() -> None:
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: Doc, value: Any, path: str) -> None:
        if not isinstance(value, dict) or "properties" not in node:
            return
        for k, v in value.items():
            assert k in node["properties"], f"values.schema.json lacks {path}{k}"
            walk(node["properties"][k], v, f"{path}{k}.")

    walk(schema, values, "")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("dispatcher.replicaCount=two",), "replicaCount"),
        (("gateway.replicas=3",), "replicas"),  # a typo of replicaCount
        (("gateway.auth=oauth",), "auth"),
        (("image.pullPolicy=Sometimes",), "pullPolicy"),
        (("config.httpPort=70000",), "httpPort"),
        (("kafka.properties.sasl_mechanism=PLAIN",), "sasl_mechanism"),
    ],
)
def test_schema_violation_fails_template(sets: tuple[str, ...], message: str) -> None:
    args = ["template", RELEASE, str(CHART)]
    for s in sets:
        args += ["--set", s]
    result = run_helm(*args)
    assert result.returncode != 0, f"helm accepted {sets}"
    assert "schema" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("gateway.auth=hmac",), "secrets.gatewayHmacSecret"),
        (("gateway.auth=basic", "secrets.gatewayBasicPassword=p"), "gateway.basicUsername"),
        (("gateway.auth=apikey",), "secrets.gatewayApiKey"),
        (("kafka.sasl.enabled=true", "kafka.sasl.username=u"), "kafka.sasl.password"),
        (("kafka.properties.sasl\\.password=hunter2",), "would land in the ConfigMap"),
        (("config.extra.CALLSTREAM_PLATFORM_SERVICE_KEY=k",), "would land in the ConfigMap"),
        (("dispatcher.terminationGracePeriodSeconds=20",), "must exceed"),
    ],
)
def test_inconsistent_values_fail_with_a_reason(sets: tuple[str, ...], message: str) -> None:
    args = ["template", RELEASE, str(CHART)]
    for s in sets:
        args += ["--set", s]
    result = run_helm(*args)
    assert result.returncode != 0, f"helm accepted {sets}"
    assert message in result.stderr


# --- pods: security, resources, probes, commands -----------------------------------------------


def test_pod_security_defaults(docs: list[Doc]) -> None:
    specs = list(pod_specs(docs))
    assert specs
    for where, spec in specs:
        assert spec["automountServiceAccountToken"] is False, where
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, where
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", where
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], where
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["privileged"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts["/tmp"] == "tmp", where


def test_service_account_token_not_mounted() -> None:
    sa = one(render(), "ServiceAccount", f"{RELEASE}-callstream")
    assert sa["automountServiceAccountToken"] is False


def test_resources_set(docs: list[Doc]) -> None:
    for where, spec in pod_specs(docs):
        for c in spec["containers"]:
            res = c["resources"]
            for part in ("requests", "limits"):
                assert res[part]["cpu"], f"{where}: no {part}.cpu"
                assert res[part]["memory"], f"{where}: no {part}.memory"


def test_probes_on_health_endpoints(docs: list[Doc]) -> None:
    for component in COMPONENTS:
        c = workload(docs, component)["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["metrics"] == 9000
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert c[probe]["httpGet"] == {"path": path, "port": "metrics"}, (component, probe)
            assert c[probe]["periodSeconds"] >= 1
        assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 30


def test_commands_and_image() -> None:
    docs = render()
    for component, args in COMPONENTS.items():
        c = workload(docs, component)["spec"]["template"]["spec"]["containers"][0]
        assert c["command"] == ["callstream"]
        assert c["args"] == args
        assert c["image"] == f"ghcr.io/callstream/callstream:{chart_app_version()}"
        assert c["imagePullPolicy"] == "IfNotPresent"
    job = one(render_all(), "Job", f"{RELEASE}-callstream-topics")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics", "create"]


def test_image_tag_and_digest() -> None:
    docs = render("image.tag=1.2.3", "image.repository=registry.local/cs")
    c = workload(docs, "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "registry.local/cs:1.2.3"
    digest = "sha256:" + "a" * 64
    c = workload(render(f"image.digest={digest}"), "gateway")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert c["image"] == f"ghcr.io/callstream/callstream@{digest}"


def test_graceful_termination() -> None:
    docs = render()
    spec = workload(docs, "dispatcher")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] >= 60
    deadline = env_of(spec["containers"][0])["CALLSTREAM_DISPATCH_SHUTDOWN_DEADLINE_S"]["value"]
    assert spec["terminationGracePeriodSeconds"] > float(deadline)
    for component in COMPONENTS:
        spec = workload(docs, component)["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] >= 30


def test_per_service_scheduling_and_extra_env() -> None:
    docs = render_all()
    spec = workload(docs, "dispatcher")["spec"]["template"]["spec"]
    assert workload(docs, "dispatcher")["spec"]["replicas"] == 3
    assert spec["nodeSelector"] == {"pool": "workers"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    env = env_of(spec["containers"][0])
    assert env["CALLSTREAM_DISPATCH_EXTRA"]["value"] == "1"
    assert env["TZ"]["value"] == "UTC"  # global extraEnv
    assert env["CALLSTREAM_DISPATCH_RATE"]["value"] == "25"
    gateway_env = env_of(workload(docs, "gateway")["spec"]["template"]["spec"]["containers"][0])
    assert "CALLSTREAM_DISPATCH_EXTRA" not in gateway_env


def test_normalizer_transactional_id_from_stable_pod_name() -> None:
    for docs, prefix in (
        (render(), f"callstream-{NAMESPACE}"),
        (render_all(), "callstream-normalizer"),
    ):
        sts = workload(docs, "normalizer")
        env = env_of(sts["spec"]["template"]["spec"]["containers"][0])
        for name in ("CALLSTREAM_POD_NAME", "CALLSTREAM_NORMALIZER_INSTANCE_ID"):
            assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["CALLSTREAM_NORMALIZER_TRANSACTIONAL_ID_PREFIX"]["value"] == prefix
        headless = one(docs, "Service", sts["spec"]["serviceName"])
        assert headless["spec"]["clusterIP"] == "None"


# --- configuration, secrets, checksums ---------------------------------------------------------


def test_config_map_holds_the_shared_configuration() -> None:
    data = one(render_all(), "ConfigMap", f"{RELEASE}-callstream-config")["data"]
    assert data["CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS"] == "kafka-0.kafka:9093,kafka-1.kafka:9093"
    assert data["CALLSTREAM_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["CALLSTREAM_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert data["CALLSTREAM_KAFKA__SASL_USERNAME"] == "callstream"
    assert data["CALLSTREAM_KAFKA__CLIENT_DNS_LOOKUP"] == "use_all_dns_ips"
    assert data["CALLSTREAM_KAFKA__SSL_CA_LOCATION"] == "/etc/callstream/kafka-ca/ca.crt"
    assert data["CALLSTREAM_SCHEMA_REGISTRY_URL"] == "http://schema-registry:8081"
    assert data["CALLSTREAM_NOTIFY_URL"] == "https://callbacks.example.com/callbacks"
    assert data["CALLSTREAM_HTTP_PORT"] == "9000"
    assert data["CALLSTREAM_LOG_LEVEL"] == "DEBUG"
    for topic in (
        "REQUESTS",
        "REQUESTS_RETRY",
        "REQUESTS_DLQ",
        "DISPATCHES",
        "CALLBACKS_RAW",
        "CALLBACKS_DLQ",
        "EVENTS",
    ):
        assert data[f"CALLSTREAM_TOPIC_{topic}"].startswith("calls.")
    assert all(isinstance(v, str) for v in data.values())


def test_every_deployment_reads_the_config_map(docs: list[Doc]) -> None:
    for component in COMPONENTS:
        c = workload(docs, component)["spec"]["template"]["spec"]["containers"][0]
        refs = [e["configMapRef"]["name"] for e in c["envFrom"] if "configMapRef" in e]
        assert f"{RELEASE}-callstream-config" in refs


SENTINELS = {
    "secrets.platformServiceKey": "svc-key-SENTINEL-1",
    "secrets.gatewayHmacSecret": "hmac-SENTINEL-2",
    "secrets.gatewayBasicPassword": "basic-SENTINEL-3",
    "secrets.gatewayApiKey": "apikey-SENTINEL-4",
    "kafka.sasl.password": "sasl-SENTINEL-5",
}
SECRET_ENV = {
    "hmac": "CALLSTREAM_GATEWAY_HMAC_SECRET",
    "basic": "CALLSTREAM_GATEWAY_BASIC_PASSWORD",
    "apikey": "CALLSTREAM_GATEWAY_APIKEY",
}


@pytest.mark.parametrize("auth", ["none", "hmac", "basic", "apikey"])
def test_secrets_only_in_the_secret(auth: str) -> None:
    sets = [f"{k}={v}" for k, v in SENTINELS.items()]
    sets += [
        f"gateway.auth={auth}",
        "gateway.basicUsername=platform",
        "kafka.sasl.enabled=true",
        "kafka.sasl.username=callstream",
        "topicsJob.enabled=true",
    ]
    docs = render(*sets)
    for d in docs:
        if d["kind"] == "Secret":
            continue
        dumped = yaml.safe_dump(d)
        for value in SENTINELS.values():
            assert value not in dumped, f"{d['kind']}/{d['metadata']['name']} holds a secret"
            assert base64.b64encode(value.encode()).decode() not in dumped
    secret = one(docs, "Secret", f"{RELEASE}-callstream-secrets")
    stored = {base64.b64decode(v).decode() for v in secret["data"].values()}
    assert set(SENTINELS.values()) <= stored

    secret_name = secret["metadata"]["name"]
    expected = {
        "dispatcher": {"CALLSTREAM_PLATFORM_SERVICE_KEY", "CALLSTREAM_KAFKA__SASL_PASSWORD"},
        "gateway": {"CALLSTREAM_KAFKA__SASL_PASSWORD"}
        | ({SECRET_ENV[auth]} if auth in SECRET_ENV else set()),
        "normalizer": {"CALLSTREAM_KAFKA__SASL_PASSWORD"},
    }
    for component, names in expected.items():
        env = env_of(workload(docs, component)["spec"]["template"]["spec"]["containers"][0])
        for name in names:
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == secret_name, (component, name)
            assert "value" not in env[name]
        for other in set(SECRET_ENV.values()) - names:
            assert other not in env, f"{component} gets {other} with gateway.auth={auth}"
    gateway_env = env_of(workload(docs, "gateway")["spec"]["template"]["spec"]["containers"][0])
    assert gateway_env["CALLSTREAM_GATEWAY_AUTH"]["value"] == auth


def test_existing_secret_is_used_and_no_secret_rendered() -> None:
    docs = render_all()
    assert not objects(docs, "Secret")
    for _, spec in pod_specs(docs):
        for c in spec["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["name"] == "callstream-credentials"
    env = env_of(workload(docs, "dispatcher")["spec"]["template"]["spec"]["containers"][0])
    ref = env["CALLSTREAM_PLATFORM_SERVICE_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "callstream-credentials", "key": "platform-service-key"}


def _checksums(docs: list[Doc], component: str) -> dict[str, str]:
    annotations = workload(docs, component)["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_checksum_annotations_roll_pods_on_config_and_secret_change(docs: list[Doc]) -> None:
    for component in COMPONENTS:
        sums = _checksums(docs, component)
        assert set(sums) == {"checksum/config", "checksum/secret"}
        assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in sums.values())
    base = render()
    changed_config = render("config.logLevel=DEBUG")
    changed_secret = render("secrets.platformServiceKey=new-key")
    for component in COMPONENTS:
        before = _checksums(base, component)
        assert _checksums(changed_config, component)["checksum/config"] != before["checksum/config"]
        assert _checksums(changed_config, component)["checksum/secret"] == before["checksum/secret"]
        assert _checksums(changed_secret, component)["checksum/secret"] != before["checksum/secret"]


# --- optional objects --------------------------------------------------------------------------


def test_gateway_service_and_ingress() -> None:
    docs = render_all()
    svc = one(docs, "Service", f"{RELEASE}-callstream-gateway")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    c = workload(docs, "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["http"] == 8080
    assert env_of(c)["CALLSTREAM_GATEWAY_PORT"]["value"] == "8080"
    assert env_of(c)["CALLSTREAM_GATEWAY_PATH"]["value"] == "/callbacks"
    ing = one(docs, "Ingress", f"{RELEASE}-callstream-gateway")
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "callbacks.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == svc["metadata"]["name"]
    assert ing["spec"]["tls"][0]["hosts"] == ["callbacks.example.com"]


def test_hpa_targets_the_gateway() -> None:
    hpa = one(render_all(), "HorizontalPodAutoscaler", f"{RELEASE}-callstream-gateway")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-callstream-gateway"
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    names = {m["resource"]["name"] for m in hpa["spec"]["metrics"]}
    assert names == {"cpu", "memory"}


def test_pdb_per_service(docs: list[Doc]) -> None:
    pdbs = {p["metadata"]["name"]: p for p in objects(docs, "PodDisruptionBudget")}
    for component in COMPONENTS:
        pdb = pdbs[f"{RELEASE}-callstream-{component}"]
        sel = pdb["spec"]["selector"]["matchLabels"]
        assert sel == workload(docs, component)["spec"]["selector"]["matchLabels"]
        assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])


def test_network_policies() -> None:
    docs = render_all()
    for component in COMPONENTS:
        pol = one(docs, "NetworkPolicy", f"{RELEASE}-callstream-{component}")
        assert pol["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
        assert set(pol["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        egress_ports = {p["port"] for rule in pol["spec"]["egress"] for p in rule["ports"]}
        assert {53, 9092, 9093} <= egress_ports
        ingress_ports = {p["port"] for rule in pol["spec"]["ingress"] for p in rule["ports"]}
        assert 9000 in ingress_ports
        assert (8080 in ingress_ports) == (component == "gateway")
    open_docs = render("networkPolicy.enabled=true")
    pol = one(open_docs, "NetworkPolicy", f"{RELEASE}-callstream-dispatcher")
    assert pol["spec"]["egress"] == [{}]  # allowExternalEgress: Kafka and the platform anywhere


def test_service_monitor_selects_metrics_services() -> None:
    docs = render_all()
    sm = one(docs, "ServiceMonitor", f"{RELEASE}-callstream")
    selector = sm["spec"]["selector"]["matchLabels"]
    selected = [
        s for s in objects(docs, "Service") if selector.items() <= s["metadata"]["labels"].items()
    ]
    assert sorted(s["metadata"]["name"] for s in selected) == sorted(
        f"{RELEASE}-callstream-{c}-metrics" for c in COMPONENTS
    )
    assert all(s["spec"]["ports"][0]["name"] == "metrics" for s in selected)
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert sm["metadata"]["labels"]["release"] == "prometheus"


def test_topics_job_is_a_configurable_hook() -> None:
    job = one(render_all(), "Job", f"{RELEASE}-callstream-topics")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    # inline, not from the ConfigMap, which a pre-upgrade hook would see un-upgraded
    assert env["CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS"]["value"].startswith("kafka-0")
    assert env["CALLSTREAM_TOPIC_PARTITIONS"]["value"] == "6"
    assert "secretKeyRef" in env["CALLSTREAM_KAFKA__SASL_PASSWORD"]["valueFrom"]
    job = one(
        render("topicsJob.enabled=true", "topicsJob.hooks=pre-install\\,pre-upgrade"),
        "Job",
        f"{RELEASE}-callstream-topics",
    )
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "default"


NOTES_PROBE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes-probe
data:
  notes: {{ include (print .Template.BasePath "/NOTES.txt") . | quote }}
"""


def render_notes(tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` would print it (that command needs a cluster; a copy of the
    chart with one more template that includes NOTES.txt does not)."""
    chart = tmp_path / "callstream"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "notes-probe.yaml").write_text(NOTES_PROBE)
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    args += ["--show-only", "templates/notes-probe.yaml"]
    for s in sets:
        args += ["--set", s]
    result = run_helm(*args)
    assert result.returncode == 0, result.stderr
    return str(yaml.safe_load(result.stdout)["data"]["notes"])


def test_notes_warn_about_missing_service_key_and_open_gateway(tmp_path: Path) -> None:
    notes = render_notes(tmp_path)
    assert f"-l app.kubernetes.io/instance={RELEASE}" in notes
    assert "WARNING: no platform service key" in notes
    assert 'gateway.auth is "none"' in notes
    quiet = render_notes(
        tmp_path / "2",
        "secrets.platformServiceKey=k",
        "gateway.auth=hmac",
        "secrets.gatewayHmacSecret=s",
        "gateway.ingress.enabled=true",
        "gateway.ingress.hostname=cb.example.com",
    )
    assert "WARNING" not in quiet
    assert "http://cb.example.com/callbacks" in quiet
