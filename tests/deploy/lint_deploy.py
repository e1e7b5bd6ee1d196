#!/usr/bin/env python3
"""Lints deploy/ and the Dockerfile where no cluster or Docker engine runs.

    python3 tests/deploy/lint_deploy.py REPO_ROOT

Checks, each failure reported with its file:
  - every YAML file in deploy/ parses (all documents);
  - Kubernetes objects have apiVersion, kind and metadata.name and no
    namespace; the StatefulSet has one replica, startup/readiness/liveness
    probes, runs as non-root with a read-only root file system, mounts a
    volumeClaimTemplate at the data dir and sets resources; the Service
    exposes 7443 and 9464;
  - deploy's cohortd configs are in step with config/cohortd.yaml
    (deploy/sync-config.py --check) and point at the paths the manifests
    mount;
  - compose publishes every port on 127.0.0.1 only;
  - Grafana dashboards are valid JSON, use a provisioned datasource uid,
    and their PromQL parses (promtool) and names only metrics cohortd
    exposes (KNOWN_METRICS); a panel or variable on the dashboards'
    datasource names only DASHBOARD_METRICS (no record-derived series);
  - the dashboards' datasource leads (compose service, mounted config) to
    a dashboards' Prometheus, whose jobs scrape only metrics_listen (static
    targets on 9464, no credentials, no service discovery) and load no rule
    on an operator series; an operators' job off loopback carries a token;
    the pod's prometheus.io annotations name the dashboards' port only;
  - the Prometheus rules name only known metrics;
  - the ClickHouse variants (deploy/compose-clickhouse.yaml and the
    overlay deploy/k8s/clickhouse): their cohortd config selects the
    ClickHouse backend at the address of the ClickHouse they deploy, which
    publishes no port, runs non-root on a read-only root with its data on
    a volume and probes, and which only cohortd reaches (an internal
    compose network; a NetworkPolicy); cohortd's liveness does not follow
    gRPC health there (NOT_SERVING while the outbox is full);
  - the Dockerfile: FROM pinned to debian:12 tags, a non-root USER in the
    final stage, HEALTHCHECK, no `curl | sh`, no ADD of URLs, apt lists
    removed in every RUN that runs apt-get update.
Exits 1 listing every problem, 0 when clean.
"""
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml

# What cohortd exposes (README "Dashboards: publications and metrics",
# server/metrics/metrics.h "Two endpoints"). A histogram family FOO also has
# FOO_bucket, FOO_sum and FOO_count.
#
# server.metrics_listen (the dashboards'): published DP figures and series
# that depend on no record.
DASHBOARD_METRICS = {
    "cohortd_rpc_requests_total",        # query/admin methods only
    "cohortd_rpc_duration_seconds",
    "cohortd_budget_spent_epsilon",
    "cohortd_budget_remaining_epsilon",
    "cohortd_budget_total_epsilon",
    "cohortd_published_sessions",
    "cohortd_published_accounts",
    "cohortd_published_sum",
    "cohortd_published_mean",
    "cohortd_published_rate",
    "cohortd_published_quantile",
    "cohortd_publication_budget_exhausted",
    "cohortd_publication_last_release_timestamp_seconds",
    "cohortd_publication_releases_total",
    "cohortd_build_info",
    "cohortd_start_time_seconds",
    # Prometheus's own, per scrape target.
    "up",
}
# server.operator_metrics_listen (the operators'): record-derived series.
OPERATOR_METRICS = {
    "cohortd_rpc_requests_total",        # ingest methods
    "cohortd_rpc_duration_seconds",
    "cohortd_ingest_observations_total",
    "cohortd_ingest_rejections_total",
    "cohortd_ingest_push_duration_seconds",
    "cohortd_ingest_commit_group_observations",
    "cohortd_ingest_commit_duration_seconds",
    "cohortd_store_live_data_bytes",
    "cohortd_store_wal_syncs",
    "cohortd_store_pending_compaction_bytes",
    "cohortd_index_memory_bytes",
    "cohortd_index_sessions",
    "cohortd_query_releases_total",
    "cohortd_query_cache_hits_total",
    "cohortd_query_execute_seconds",
    # The ClickHouse backend (README "Scaling out").
    "cohortd_clickhouse_outbox_batches",
    "cohortd_clickhouse_outbox_bytes",
    "cohortd_clickhouse_outbox_refusals_total",
    "cohortd_clickhouse_errors_total",
    "cohortd_clickhouse_pushdown_seconds",
    "up",
}
KNOWN_METRICS = DASHBOARD_METRICS | OPERATOR_METRICS
DASHBOARD_PORT = 9464
OPERATOR_PORT = 9465
# Grafana datasources: the dashboards' may reach only DASHBOARD_METRICS.
DASHBOARD_DATASOURCE_UID = "cohortd-prometheus"
OPERATOR_DATASOURCE_UID = "cohortd-operator-prometheus"
DATASOURCE_UIDS = {DASHBOARD_DATASOURCE_UID, OPERATOR_DATASOURCE_UID}
# Every Prometheus config in deploy/prometheus, by whose it is. A config in
# neither set is an error, so a new one cannot escape the checks.
DASHBOARD_PROMETHEUS_CONFIGS = {"prometheus.yml", "prometheus-compose.yml"}
OPERATOR_PROMETHEUS_CONFIGS = {"prometheus-operator.yml"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
DATA_DIR = "/var/lib/cohortd"

# PromQL words that look like metric names but are not.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile", "by", "without", "on",
    "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "rate", "irate", "increase", "delta", "idelta", "deriv",
    "histogram_quantile", "clamp", "clamp_min", "clamp_max", "abs", "ceil",
    "floor", "round", "vector", "scalar", "time", "timestamp", "absent",
    "absent_over_time", "label_replace", "label_join", "sort", "sort_desc",
    "avg_over_time", "max_over_time", "min_over_time", "sum_over_time",
    "last_over_time", "count_over_time", "changes", "resets", "exp", "ln",
    "log2", "log10", "sqrt", "le", "inf", "nan",
}


class Lint:
    def __init__(self, root: pathlib.Path):
        self.root = root
        self.problems = []
        self.exprs = []   # (file, panel, PromQL) of every dashboard query

    def fail(self, path, message):
        rel = path.relative_to(self.root) if isinstance(path, pathlib.Path) else path
        self.problems.append(f"{rel}: {message}")


def metric_names(expr: str):
    """Metric names in a PromQL expression: identifiers not followed by '('
    and not inside label matchers, strings, or after by/without/on/..."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)       # strings
    expr = re.sub(r"\{[^}]*\}", "{}", expr)                # label matchers
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)               # ranges
    # Label lists of by/without/on/ignoring/group_left/group_right.
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
                  r"\1()", expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)                # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", expr):
        word = match.group(1)
        if word.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def known_metric(name: str, known=None) -> bool:
    known = KNOWN_METRICS if known is None else known
    if name in known:
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in known:
            return True
    return False


def dashboard_metric(name: str) -> bool:
    """Whether the dashboards' endpoint serves `name`."""
    return known_metric(name, DASHBOARD_METRICS)


def load_yaml_docs(lint, path):
    try:
        with open(path) as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        lint.fail(path, f"invalid YAML: {e}")
        return []


def check_k8s_object(lint, path, obj):
    for key in ("apiVersion", "kind"):
        if not obj.get(key):
            lint.fail(path, f"object without {key}")
    meta = obj.get("metadata") or {}
    if obj.get("kind") != "Kustomization":
        if not meta.get("name"):
            lint.fail(path, f"{obj.get('kind')} without metadata.name")
        if "namespace" in meta:
            lint.fail(path, f"{obj.get('kind')} sets a namespace; the manifests "
                            "are namespace-free")


def check_statefulset(lint, path, sts):
    spec = sts.get("spec", {})
    if spec.get("replicas") != 1:
        lint.fail(path, "StatefulSet must have exactly 1 replica (one budget ledger)")
    pod = spec.get("template", {}).get("spec", {})
    pod_sc = pod.get("securityContext", {})
    containers = pod.get("containers", [])
    if not containers:
        lint.fail(path, "StatefulSet has no containers")
        return
    claims = {c.get("metadata", {}).get("name")
              for c in spec.get("volumeClaimTemplates", [])}
    if not claims:
        lint.fail(path, "StatefulSet has no volumeClaimTemplates")
    for c in pod.get("initContainers", []) + containers:
        name = c.get("name")
        sc = c.get("securityContext", {})
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            lint.fail(path, f"container {name}: runAsNonRoot is not set")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) in (0, None):
            lint.fail(path, f"container {name}: needs a non-zero runAsUser")
        if not sc.get("readOnlyRootFilesystem"):
            lint.fail(path, f"container {name}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            lint.fail(path, f"container {name}: allowPrivilegeEscalation must be false")
        if "limits" not in c.get("resources", {}) or "requests" not in c.get("resources", {}):
            lint.fail(path, f"container {name}: resources need requests and limits")
    annotations = spec.get("template", {}).get("metadata", {}).get("annotations") or {}
    if annotations.get("prometheus.io/scrape") == "true" and \
            str(annotations.get("prometheus.io/port")) != str(DASHBOARD_PORT):
        lint.fail(path, "prometheus.io/port must be the dashboards' port "
                        f"{DASHBOARD_PORT}: annotation scrapers feed dashboards")
    main = next((c for c in containers if c.get("name") == "cohortd"), containers[0])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = main.get(probe)
        if not p:
            lint.fail(path, f"container {main.get('name')} has no {probe}")
        elif p.get("grpc", {}).get("port") != 7443:
            lint.fail(path, f"{probe} must be a grpc probe on port 7443")
    mounts = {m.get("mountPath"): m.get("name") for m in main.get("volumeMounts", [])}
    if mounts.get(DATA_DIR) not in claims:
        lint.fail(path, f"the data dir {DATA_DIR} is not mounted from a "
                        "volumeClaimTemplate")
    for needed in ("/etc/cohortd", "/etc/cohortd/secrets", "/run/cohortd"):
        if needed not in mounts:
            lint.fail(path, f"nothing mounted at {needed}, which the config names")


def check_service(lint, path, svc):
    ports = {p.get("port") for p in svc.get("spec", {}).get("ports", [])}
    for port in (7443, 9464):
        if port not in ports:
            lint.fail(path, f"Service does not expose port {port}")
    if svc.get("spec", {}).get("type", "ClusterIP") != "ClusterIP":
        lint.fail(path, "Service must be ClusterIP (see configmap.yaml on TLS)")


def check_cohortd_config(lint, path, text, principals_file, key_file):
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        lint.fail(path, f"embedded cohortd config is invalid YAML: {e}")
        return
    server = config.get("server", {})
    if not str(server.get("data_dir", "")).startswith(DATA_DIR + "/"):
        lint.fail(path, f"server.data_dir must be under the volume {DATA_DIR}")
    if server.get("pseudonymization_key_file") != key_file:
        lint.fail(path, f"server.pseudonymization_key_file must be {key_file}")
    if config.get("principals_file") != principals_file:
        lint.fail(path, f"principals_file must be {principals_file}")
    if "principals" in config:
        lint.fail(path, "principals belong in the secret principals file")
    for key, port in (("listen", 7443), ("metrics_listen", DASHBOARD_PORT),
                      ("operator_metrics_listen", OPERATOR_PORT)):
        if not str(server.get(key, "")).endswith(f":{port}"):
            lint.fail(path, f"server.{key} must use the image's port {port}")


def check_k8s(lint, k8s_dir):
    kinds = {}
    for path in sorted(k8s_dir.glob("*.yaml")):
        for obj in load_yaml_docs(lint, path):
            check_k8s_object(lint, path, obj)
            kinds.setdefault(obj.get("kind"), []).append((path, obj))
    for kind in ("StatefulSet", "Service", "ConfigMap", "Secret", "Kustomization"):
        if kind not in kinds:
            lint.fail(k8s_dir, f"no {kind} manifest")
    for path, sts in kinds.get("StatefulSet", []):
        check_statefulset(lint, path, sts)
    for path, svc in kinds.get("Service", []):
        check_service(lint, path, svc)
    for path, cm in kinds.get("ConfigMap", []):
        text = (cm.get("data") or {}).get("cohortd.yaml")
        if text is None:
            lint.fail(path, "ConfigMap has no cohortd.yaml")
        else:
            check_cohortd_config(lint, path, text,
                                 "/etc/cohortd/secrets/principals.yaml",
                                 "/run/cohortd/pseudonymization.key")
    for path, secret in kinds.get("Secret", []):
        values = list((secret.get("data") or {}).values()) + \
            list((secret.get("stringData") or {}).values())
        if not all("REPLACE_WITH" in str(v) for v in values):
            lint.fail(path, "the Secret template may hold only placeholders")
    for path, kust in kinds.get("Kustomization", []):
        for res in kust.get("resources", []):
            if not (k8s_dir / res).exists():
                lint.fail(path, f"resource {res} does not exist")
            if res == "secret.yaml":
                lint.fail(path, "the Secret template must not be applied")


def check_compose(lint, path):
    docs = load_yaml_docs(lint, path)
    if not docs:
        return
    compose = docs[0]
    for name, service in (compose.get("services") or {}).items():
        for port in service.get("ports", []):
            spec = port if isinstance(port, str) else \
                f"{port.get('host_ip', '')}:{port.get('published', '')}:{port.get('target', '')}"
            if not spec.startswith("127.0.0.1:"):
                lint.fail(path, f"service {name} publishes {spec!r}: bind it "
                                "to 127.0.0.1")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                if not (path.parent / source).exists():
                    lint.fail(path, f"service {name} mounts missing {source}")
    for name, secret in (compose.get("secrets") or {}).items():
        if "file" not in secret:
            lint.fail(path, f"secret {name} must come from a file")
    config = path.parent / "compose" / "cohortd.yaml"
    check_cohortd_config(lint, config, config.read_text(),
                         "/run/cohortd/principals.yaml",
                         DATA_DIR + "/pseudonymization.key")


CLICKHOUSE_DATA_DIR = "/var/lib/clickhouse"


def check_clickhouse_storage(lint, path, text, host):
    """The cohortd config `text` selects the ClickHouse backend at
    http://HOST:8123."""
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return  # check_cohortd_config reports it
    storage = config.get("storage") or {}
    if storage.get("engine") != "clickhouse":
        lint.fail(path, "storage.engine must be clickhouse in the ClickHouse "
                        "variant")
    url = str((storage.get("clickhouse") or {}).get("url", ""))
    if url != f"http://{host}:8123":
        lint.fail(path, f"storage.clickhouse.url is {url!r}, not the deployed "
                        f"ClickHouse http://{host}:8123")


def check_clickhouse_xml(lint, path):
    import xml.etree.ElementTree as ElementTree
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as e:
        lint.fail(path, f"invalid XML: {e}")
        return
    if root.findtext("http_port") != "8123":
        lint.fail(path, "http_port must be 8123 (storage.clickhouse.url)")
    for key in ("path", "tmp_path", "user_files_path", "format_schema_path"):
        if not (root.findtext(key) or "").startswith(CLICKHOUSE_DATA_DIR + "/"):
            lint.fail(path, f"{key} must be under the volume {CLICKHOUSE_DATA_DIR}")
    logger = root.find("logger")
    if logger is None or logger.findtext("console") != "1" or \
            logger.find("log") is not None:
        lint.fail(path, "logger must write to the console only (read-only root)")


def check_container_security(lint, path, pod, containers):
    pod_sc = pod.get("securityContext", {})
    for c in containers:
        name = c.get("name")
        sc = c.get("securityContext", {})
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            lint.fail(path, f"container {name}: runAsNonRoot is not set")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) in (0, None):
            lint.fail(path, f"container {name}: needs a non-zero runAsUser")
        if not sc.get("readOnlyRootFilesystem"):
            lint.fail(path, f"container {name}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            lint.fail(path, f"container {name}: allowPrivilegeEscalation must be false")
        if "limits" not in c.get("resources", {}) or "requests" not in c.get("resources", {}):
            lint.fail(path, f"container {name}: resources need requests and limits")


def check_k8s_clickhouse(lint, overlay):
    """The overlay deploy/k8s/clickhouse: the base plus one ClickHouse."""
    objects = {}
    for path in sorted(overlay.glob("*.yaml")):
        for obj in load_yaml_docs(lint, path):
            check_k8s_object(lint, path, obj)
            objects.setdefault(obj.get("kind"), []).append((path, obj))
    kust = [o for _, o in objects.get("Kustomization", [])]
    if len(kust) != 1:
        lint.fail(overlay, "expected one kustomization.yaml")
        return
    kust = kust[0]
    kpath = overlay / "kustomization.yaml"
    if "../" not in kust.get("resources", []) and ".." not in kust.get("resources", []):
        lint.fail(kpath, "the overlay must build on the base (resources: ../)")
    for entry in kust.get("resources", []) + [p.get("path") for p in kust.get("patches", [])]:
        if not (overlay / entry).exists():
            lint.fail(kpath, f"{entry} does not exist")
    for gen in kust.get("configMapGenerator", []):
        for f in gen.get("files", []):
            if not (overlay / f).exists():
                lint.fail(kpath, f"configMapGenerator file {f} does not exist")
    check_clickhouse_xml(lint, overlay / "config.xml")
    services = {o.get("metadata", {}).get("name"): (p, o)
                for p, o in objects.get("Service", [])}
    if "clickhouse" not in services:
        lint.fail(overlay, "no Service clickhouse")
    else:
        spath, svc = services["clickhouse"]
        if svc.get("spec", {}).get("type", "ClusterIP") != "ClusterIP":
            lint.fail(spath, "the clickhouse Service must be ClusterIP")
        if 8123 not in {p.get("port") for p in svc.get("spec", {}).get("ports", [])}:
            lint.fail(spath, "the clickhouse Service does not expose 8123")
    stateful = {o.get("metadata", {}).get("name"): (p, o)
                for p, o in objects.get("StatefulSet", [])}
    if "clickhouse" not in stateful:
        lint.fail(overlay, "no StatefulSet clickhouse")
    else:
        path, sts = stateful["clickhouse"]
        spec = sts.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        containers = pod.get("containers", [])
        check_container_security(lint, path, pod, containers)
        claims = {c.get("metadata", {}).get("name")
                  for c in spec.get("volumeClaimTemplates", [])}
        for c in containers:
            mounts = {m.get("mountPath"): m.get("name")
                      for m in c.get("volumeMounts", [])}
            if mounts.get(CLICKHOUSE_DATA_DIR) not in claims:
                lint.fail(path, f"{CLICKHOUSE_DATA_DIR} is not mounted from a "
                                "volumeClaimTemplate")
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if not c.get(probe):
                    lint.fail(path, f"container {c.get('name')} has no {probe}")
            if c.get("ports") and any("hostPort" in p for p in c["ports"]):
                lint.fail(path, "ClickHouse must not take a hostPort")
    policies = [o for _, o in objects.get("NetworkPolicy", [])]
    admitted = [peer.get("podSelector", {}).get("matchLabels", {})
                for pol in policies
                if pol.get("spec", {}).get("podSelector", {}).get("matchLabels", {})
                .get("app.kubernetes.io/name") == "clickhouse"
                for rule in pol.get("spec", {}).get("ingress", [])
                for peer in rule.get("from", [{}])]
    if not admitted or any(m.get("app.kubernetes.io/name") != "cohortd"
                           for m in admitted):
        lint.fail(overlay, "a NetworkPolicy must admit only cohortd's pods to "
                           "ClickHouse")
    for path, cm in objects.get("ConfigMap", []):
        text = (cm.get("data") or {}).get("cohortd.yaml")
        if cm.get("metadata", {}).get("name") != "cohortd-config" or text is None:
            lint.fail(path, "the config patch must be ConfigMap cohortd-config "
                            "with cohortd.yaml")
            continue
        check_cohortd_config(lint, path, text,
                             "/etc/cohortd/secrets/principals.yaml",
                             "/run/cohortd/pseudonymization.key")
        check_clickhouse_storage(lint, path, text, "clickhouse")
    for path, sts in stateful.values():
        if sts.get("metadata", {}).get("name") != "cohortd":
            continue
        for c in sts.get("spec", {}).get("template", {}).get("spec", {}) \
                .get("containers", []):
            if c.get("name") == "cohortd" and \
                    "grpc" in (c.get("livenessProbe") or {"grpc": 1}):
                lint.fail(path, "cohortd's livenessProbe must not be gRPC health "
                                "with ClickHouse (NOT_SERVING while the outbox is "
                                "full would restart it)")
    if not any(o.get("metadata", {}).get("name") == "cohortd"
               for _, o in objects.get("StatefulSet", [])):
        lint.fail(overlay, "no patch of cohortd's liveness probe")


def check_compose_clickhouse(lint, path):
    """deploy/compose-clickhouse.yaml, an override of compose.yaml."""
    docs = load_yaml_docs(lint, path)
    if not docs:
        return
    compose = docs[0]
    services = compose.get("services") or {}
    ch = services.get("clickhouse")
    if ch is None:
        lint.fail(path, "no service clickhouse")
        return
    if ch.get("ports"):
        lint.fail(path, "the clickhouse service must publish no port")
    if not ch.get("read_only"):
        lint.fail(path, "the clickhouse service must have a read-only root")
    if str(ch.get("user", "root")).split(":")[0] in ("root", "0"):
        lint.fail(path, "the clickhouse service must not run as root")
    if "healthcheck" not in ch:
        lint.fail(path, "the clickhouse service needs a healthcheck "
                        "(cohortd waits for it)")
    networks = compose.get("networks") or {}
    for net in ch.get("networks") or ["default"]:
        if not (networks.get(net) or {}).get("internal"):
            lint.fail(path, f"clickhouse's network {net} must be internal")
    targets = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                lint.fail(path, f"service {name} publishes {port!r}: bind it "
                                "to 127.0.0.1")
        for volume in service.get("volumes", []):
            source, _, target = str(volume).partition(":")
            if source.startswith(".") and not (path.parent / source).exists():
                lint.fail(path, f"service {name} mounts missing {source}")
            targets[(name, target.split(":")[0])] = source
    if targets.get(("clickhouse", CLICKHOUSE_DATA_DIR)) is None:
        lint.fail(path, f"clickhouse's {CLICKHOUSE_DATA_DIR} is not a volume")
    config = targets.get(("cohortd", "/etc/cohortd/cohortd.yaml"))
    if config is None:
        lint.fail(path, "cohortd does not get the ClickHouse config")
        return
    config_path = path.parent / config
    if config_path.exists():
        text = config_path.read_text()
        check_cohortd_config(lint, config_path, text,
                             "/run/cohortd/principals.yaml",
                             DATA_DIR + "/pseudonymization.key")
        check_clickhouse_storage(lint, config_path, text, "clickhouse")


def check_dashboards(lint, dash_dir):
    files = sorted(dash_dir.glob("*.json"))
    if not files:
        lint.fail(dash_dir, "no dashboards")
    uids = set()
    for path in files:
        try:
            dash = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            lint.fail(path, f"invalid JSON: {e}")
            continue
        for key in ("uid", "title", "panels", "schemaVersion"):
            if key not in dash:
                lint.fail(path, f"dashboard without {key}")
        if dash.get("uid") in uids:
            lint.fail(path, f"dashboard uid {dash.get('uid')} used twice")
        uids.add(dash.get("uid"))
        if not 36 <= dash.get("schemaVersion", 0) <= 39:
            lint.fail(path, "schemaVersion should be 36-39")
        panels = list(dash.get("panels", []))
        for p in list(panels):
            panels.extend(p.get("panels", []))       # collapsed rows
        ids = [p.get("id") for p in panels]
        if len(ids) != len(set(ids)):
            lint.fail(path, "panel ids are not unique")
        queries = 0
        for p in panels:
            if p.get("type") in ("row", "text"):
                continue
            title = p.get("title", p.get("id"))
            if "gridPos" not in p:
                lint.fail(path, f"panel {title!r} has no gridPos")
            panel_uid = (p.get("datasource") or {}).get("uid")
            if panel_uid not in DATASOURCE_UIDS:
                lint.fail(path, f"panel {title!r} does not use datasource "
                                f"uid {DASHBOARD_DATASOURCE_UID} or "
                                f"{OPERATOR_DATASOURCE_UID}")
            targets = p.get("targets", [])
            if not targets:
                lint.fail(path, f"panel {title!r} has no queries")
            for t in targets:
                expr = t.get("expr", "")
                if not expr:
                    lint.fail(path, f"panel {title!r} has a query without expr")
                queries += 1
                lint.exprs.append((path, title, expr))
                # A target may name its own datasource; else the panel's.
                uid = (t.get("datasource") or {}).get("uid", panel_uid)
                if uid not in DATASOURCE_UIDS and "uid" in (t.get("datasource") or {}):
                    lint.fail(path, f"panel {title!r} has a query on unknown "
                                    f"datasource {uid!r}")
                for name in metric_names(expr):
                    if not known_metric(name):
                        lint.fail(path, f"panel {title!r} queries unknown "
                                        f"metric {name!r}")
                    elif uid == DASHBOARD_DATASOURCE_UID and not dashboard_metric(name):
                        lint.fail(path, f"panel {title!r} queries the "
                                        f"operator-only series {name!r} from the "
                                        f"dashboards' datasource {uid}")
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                query = v.get("query")
                query = query.get("query", "") if isinstance(query, dict) else str(query)
                uid = (v.get("datasource") or {}).get("uid", DASHBOARD_DATASOURCE_UID)
                for name in re.findall(r"label_values\(\s*([a-zA-Z_:][\w:]*)", query):
                    if not known_metric(name):
                        lint.fail(path, f"variable {v.get('name')} queries "
                                        f"unknown metric {name!r}")
                    elif uid == DASHBOARD_DATASOURCE_UID and not dashboard_metric(name):
                        lint.fail(path, f"variable {v.get('name')} queries the "
                                        f"operator-only series {name!r} from the "
                                        f"dashboards' datasource {uid}")
        if queries == 0:
            lint.fail(path, "dashboard has no queries")


def check_promql_syntax(lint):
    """Parses every dashboard query with promtool, as recording rules, with
    Grafana's variables replaced by plausible values."""
    import shutil
    import tempfile
    promtool = shutil.which("promtool")
    if not promtool:
        print("lint_deploy: promtool not found, dashboard PromQL not parsed "
              "(install the Debian package prometheus: scripts/setup)")
        return
    for path, title, expr in lint.exprs:
        concrete = (expr.replace("$__rate_interval", "5m")
                        .replace("$__interval", "1m")
                        .replace("$__range", "1h"))
        concrete = re.sub(r"\$\{?(\w+)\}?", "x", concrete)
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": "dashboard:query", "expr": concrete}]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump(rules, f)
            f.flush()
            result = subprocess.run([promtool, "check", "rules", f.name],
                                    capture_output=True, text=True)
        if result.returncode != 0:
            lint.fail(path, f"panel {title!r}: PromQL does not parse: "
                            f"{(result.stdout + result.stderr).strip()}")


def target_host_port(target: str):
    """("host", port) of a static target "host:port" / "[v6]:port"."""
    host, _, port = str(target).rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return host.strip("[]"), None


def is_loopback_host(host: str) -> bool:
    return host == "localhost" or host == "::1" or re.fullmatch(
        r"127\.\d+\.\d+\.\d+", host) is not None


def dashboard_scrape_problems(config) -> list:
    """Why the Prometheus config `config` (parsed YAML) could reach an
    operator series; [] when it reaches only server.metrics_listen."""
    problems = []
    for job in (config or {}).get("scrape_configs") or []:
        name = job.get("job_name")
        discovery = [k for k in job if k.endswith("_sd_configs")]
        if discovery:
            problems.append(f"dashboard job {name} uses {discovery[0]}, which "
                            "can discover the operator endpoint: use "
                            "static_configs on the metrics_listen port")
        for key in ("authorization", "bearer_token", "bearer_token_file",
                    "basic_auth", "oauth2"):
            if key in job:
                problems.append(f"dashboard job {name} carries credentials "
                                f"({key}): an admin token would open the "
                                "operator endpoint to it")
        if job.get("metrics_path", "/metrics") != "/metrics":
            problems.append(f"dashboard job {name} scrapes "
                            f"{job.get('metrics_path')}, not /metrics")
        if "params" in job or "relabel_configs" in job:
            problems.append(f"dashboard job {name} rewrites its targets "
                            "(params/relabel_configs); keep them literal")
        targets = [t for sc in job.get("static_configs") or []
                   for t in sc.get("targets") or []]
        if not targets:
            problems.append(f"dashboard job {name} has no static targets")
        for target in targets:
            _, port = target_host_port(target)
            if port != DASHBOARD_PORT:
                problems.append(f"dashboard job {name} scrapes {target}: only "
                                f"metrics_listen (port {DASHBOARD_PORT}) may be "
                                "scraped for dashboards")
    return problems


def operator_scrape_problems(config) -> list:
    """An operator job off loopback without a bearer token is refused
    (401) by cohortd; catch it here instead of in production."""
    problems = []
    for job in (config or {}).get("scrape_configs") or []:
        targets = [t for sc in job.get("static_configs") or []
                   for t in sc.get("targets") or []]
        for target in targets:
            host, port = target_host_port(target)
            if port == OPERATOR_PORT and not is_loopback_host(host) and \
                    "authorization" not in job:
                problems.append(f"job {job.get('job_name')} scrapes the operator "
                                f"endpoint {target} off loopback without an "
                                "authorization (admin bearer token)")
    return problems


def rule_metric_names(lint, path):
    names = []
    for doc in load_yaml_docs(lint, path):
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                for name in metric_names(rule.get("expr", "")):
                    names.append((rule.get("alert") or rule.get("record"), name))
    return names


def check_prometheus_configs(lint, prom_dir):
    """Each Prometheus config is the dashboards' (reaches only
    metrics_listen) or the operators'; the dashboards' loads no rule on an
    operator series."""
    for path in sorted(prom_dir.glob("*.yml")) + sorted(prom_dir.glob("*.yaml")):
        docs = load_yaml_docs(lint, path)
        if not docs or "scrape_configs" not in docs[0]:
            continue
        config = docs[0]
        if path.name in DASHBOARD_PROMETHEUS_CONFIGS:
            for problem in dashboard_scrape_problems(config):
                lint.fail(path, problem)
            for rule_file in config.get("rule_files") or []:
                for rule, name in rule_metric_names(lint, path.parent / rule_file):
                    if not dashboard_metric(name):
                        lint.fail(path, f"loads rule {rule} on the operator-only "
                                        f"series {name!r}")
        elif path.name in OPERATOR_PROMETHEUS_CONFIGS:
            for problem in operator_scrape_problems(config):
                lint.fail(path, problem)
        else:
            lint.fail(path, "a Prometheus config that is neither a dashboards' "
                            "nor an operators' one (lint_deploy.py lists them)")


def check_datasource(lint, path, compose_path):
    """Follows each datasource to the Prometheus it reads: the dashboards'
    datasource must lead to a compose service running a dashboards'
    Prometheus config."""
    docs = load_yaml_docs(lint, path)
    sources = {d.get("uid"): d for doc in docs for d in doc.get("datasources", [])}
    for uid in DATASOURCE_UIDS:
        if uid not in sources:
            lint.fail(path, f"no datasource with uid {uid}")
    compose = (load_yaml_docs(lint, compose_path) or [{}])[0]
    services = compose.get("services") or {}
    for uid, source in sources.items():
        host, port = target_host_port(
            re.sub(r"^https?://", "", str(source.get("url", ""))).split("/")[0])
        # A service in another's network namespace answers at that name.
        candidates = [name for name, svc in services.items()
                      if name == host or svc.get("network_mode") == f"service:{host}"]
        configs = []
        for name in candidates:
            svc = services[name]
            command = " ".join(svc.get("command") or [])
            listen = re.search(r"--web\.listen-address=\S*:(\d+)", command)
            if int(listen.group(1) if listen else 9090) != port:
                continue
            for volume in svc.get("volumes") or []:
                source_path, _, target = str(volume).partition(":")
                if target.split(":")[0] == "/etc/prometheus/prometheus.yml":
                    configs.append(pathlib.Path(source_path).name)
        if len(configs) != 1:
            lint.fail(path, f"datasource {uid} ({source.get('url')}) does not "
                            "lead to exactly one compose Prometheus")
            continue
        if uid == DASHBOARD_DATASOURCE_UID and \
                configs[0] not in DASHBOARD_PROMETHEUS_CONFIGS:
            lint.fail(path, f"the dashboards' datasource {uid} reads a "
                            f"Prometheus running {configs[0]}, which is not a "
                            "dashboards' config: it could reach operator series")


def check_rules(lint, path):
    for rule, name in rule_metric_names(lint, path):
        if not known_metric(name):
            lint.fail(path, f"rule {rule} uses unknown metric {name!r}")


def self_test(lint):
    """The operator-series checks must fail on what they exist to catch, so
    a slip in them cannot pass everything silently."""
    bad_jobs = [
        {"job_name": "a", "static_configs": [{"targets": ["cohortd:9465"]}]},
        {"job_name": "b", "static_configs": [{"targets": ["cohortd:9464"]}],
         "authorization": {"type": "Bearer", "credentials": "x"}},
        {"job_name": "c", "kubernetes_sd_configs": [{"role": "pod"}]},
    ]
    for job in bad_jobs:
        if not dashboard_scrape_problems({"scrape_configs": [job]}):
            lint.fail("lint_deploy.py", f"self-test: dashboard job {job} passed")
    good = {"scrape_configs": [{"job_name": "d", "static_configs": [
        {"targets": ["127.0.0.1:9464"]}]}]}
    if dashboard_scrape_problems(good):
        lint.fail("lint_deploy.py", "self-test: a plain dashboard job failed")
    if not operator_scrape_problems({"scrape_configs": [
            {"job_name": "e", "static_configs": [{"targets": ["cohortd:9465"]}]}]}):
        lint.fail("lint_deploy.py", "self-test: a token-less remote operator "
                                    "job passed")
    if dashboard_metric("cohortd_index_sessions") or \
            dashboard_metric("cohortd_ingest_observations_total") or \
            not dashboard_metric("cohortd_rpc_duration_seconds_bucket"):
        lint.fail("lint_deploy.py", "self-test: dashboard_metric is wrong")
    with tempfile.TemporaryDirectory() as tmp:
        dash_dir = pathlib.Path(tmp)
        probe = Lint(dash_dir)
        (dash_dir / "probe.json").write_text(json.dumps({
            "uid": "probe", "title": "probe", "schemaVersion": 39,
            "panels": [{"id": 1, "type": "timeseries", "title": "leak",
                        "gridPos": {},
                        "datasource": {"uid": DASHBOARD_DATASOURCE_UID},
                        "targets": [{"expr": "cohortd_index_memory_bytes"}]}]}))
        check_dashboards(probe, dash_dir)
    if not any("operator-only" in p for p in probe.problems):
        lint.fail("lint_deploy.py", "self-test: a dashboards' panel on "
                                    "cohortd_index_memory_bytes passed")


def dockerfile_instructions(text):
    """(keyword, arguments) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def check_dockerfile(lint, path):
    text = path.read_text()
    instructions = dockerfile_instructions(text)
    stages = []
    for keyword, args in instructions:
        if keyword == "FROM":
            image = args.split()[0]
            if not re.fullmatch(r"debian:12(\.\d+)?(-slim)?(@sha256:[0-9a-f]{64})?", image):
                lint.fail(path, f"FROM {image}: use a debian:12 tag")
            stages.append([])
        elif stages:
            stages[-1].append((keyword, args))
    if len(stages) < 2:
        lint.fail(path, "expected a build stage and a runtime stage")
        return
    final = stages[-1]
    users = [args for keyword, args in final if keyword == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        lint.fail(path, "the final stage must switch to a non-root USER")
    for keyword in ("HEALTHCHECK", "ENTRYPOINT", "VOLUME", "EXPOSE"):
        if not any(k == keyword for k, _ in final):
            lint.fail(path, f"the final stage has no {keyword}")
    if not any(k == "VOLUME" and DATA_DIR in a for k, a in final):
        lint.fail(path, f"{DATA_DIR} must be a VOLUME")
    exposed = " ".join(a for k, a in final if k == "EXPOSE").split()
    for port in ("7443", "9464"):
        if port not in exposed:
            lint.fail(path, f"port {port} is not EXPOSEd")
    if not any(k == "RUN" and "deploy/runtime-packages.txt" in a or
               k == "COPY" and "deploy/runtime-packages.txt" in a for k, a in final):
        lint.fail(path, "the runtime stage must install deploy/runtime-packages.txt")
    for stage in stages:
        for keyword, args in stage:
            if keyword == "ADD" and re.search(r"https?://", args):
                lint.fail(path, f"ADD of a URL: {args}")
            if keyword == "RUN":
                if re.search(r"(curl|wget)[^|;&]*\|\s*(ba|z|da)?sh\b", args):
                    lint.fail(path, f"pipes a download into a shell: {args}")
                runs_apt = "apt-get update" in args or re.search(r"scripts/setup\b", args)
                if runs_apt and "rm -rf /var/lib/apt/lists" not in args:
                    lint.fail(path, f"RUN updates apt but leaves its lists: {args}")
                if "apt-get install" in args and "--no-install-recommends" not in args:
                    lint.fail(path, f"apt-get install without --no-install-recommends")
            if keyword == "USER" and stage is final and args.split(":")[0] in ("root", "0"):
                lint.fail(path, "USER root in the final stage")
    dockerignore = path.parent / ".dockerignore"
    if not dockerignore.exists():
        lint.fail(path, "no .dockerignore")
    else:
        ignored = dockerignore.read_text()
        for needed in ("secrets/", "build*/", ".git"):
            if needed not in ignored:
                lint.fail(dockerignore, f"must ignore {needed}")


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    lint = Lint(root)
    deploy = root / "deploy"

    yaml_files = sorted(p for p in deploy.rglob("*") if p.suffix in (".yaml", ".yml"))
    for path in yaml_files:
        load_yaml_docs(lint, path)

    sync = subprocess.run([sys.executable, str(deploy / "sync-config.py"), "--check"],
                          capture_output=True, text=True)
    if sync.returncode != 0:
        lint.fail(deploy / "sync-config.py", (sync.stdout + sync.stderr).strip())

    check_k8s(lint, deploy / "k8s")
    check_compose(lint, deploy / "compose.yaml")
    check_compose_clickhouse(lint, deploy / "compose-clickhouse.yaml")
    check_k8s_clickhouse(lint, deploy / "k8s" / "clickhouse")
    check_datasource(lint, deploy / "grafana/provisioning/datasources/prometheus.yaml",
                     deploy / "compose.yaml")
    check_dashboards(lint, deploy / "grafana/dashboards")
    check_promql_syntax(lint)
    check_prometheus_configs(lint, deploy / "prometheus")
    check_rules(lint, deploy / "prometheus/rules.yml")
    self_test(lint)
    check_dockerfile(lint, root / "Dockerfile")

    # Self-test of the metric-name extraction, so a regex slip cannot pass
    # everything silently.
    probe = metric_names('sum by (le) (rate(bogus_metric_bucket{a="b"}[5m])) / up')
    if probe != {"bogus_metric_bucket", "up"}:
        lint.fail("lint_deploy.py", f"metric_names self-test got {probe}")

    if lint.problems:
        print(f"lint_deploy: {len(lint.problems)} problem(s):")
        for p in lint.problems:
            print("  " + p)
        return 1
    print(f"lint_deploy: OK ({len(yaml_files)} YAML files, dashboards, Dockerfile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
