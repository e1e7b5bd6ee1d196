#!/usr/bin/env python3
"""Writes deploy's cohortd configs from config/cohortd.yaml.

    deploy/compose/cohortd.yaml   mounted by deploy/compose.yaml
    deploy/k8s/configmap.yaml     the same config inside a ConfigMap
    deploy/compose/cohortd-clickhouse.yaml, deploy/k8s/clickhouse/configmap.yaml
                                  the ClickHouse variants (README "Scaling
                                  out"): the same plus a storage section

Each keeps config/cohortd.yaml's text from its datasets on (datasets,
publications and their comments) verbatim and replaces the server section
and principals_file with the container's addresses and paths. Run it after
editing config/cohortd.yaml; tests/deploy/lint_deploy.py fails while the
copies differ from it.

    deploy/sync-config.py          # rewrite both files
    deploy/sync-config.py --check  # exit 1 if either is out of date
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "config" / "cohortd.yaml"
# config/cohortd.yaml from this comment on is copied verbatim.
MARKER = "# The datasets cohortd accepts"

COMPOSE_HEAD = """\
# cohortd config for deploy/compose.yaml, written by deploy/sync-config.py
# from config/cohortd.yaml (which documents every key): edit that file and
# rerun the script, not this one. Only the server section and the
# principals file differ.
#
# Inside the container cohortd listens on all interfaces so that compose can
# publish its ports; compose.yaml publishes them on the host's 127.0.0.1
# only, which is why TLS is off here and allow_plaintext says so. Before
# exposing the port beyond this host, enable server.tls as in
# config/cohortd.yaml and drop allow_plaintext.
server:
  listen: 0.0.0.0:7443
  # The dashboards' endpoint (no record-derived series), for the compose
  # service `prometheus`.
  metrics_listen: 0.0.0.0:9464
  # The operators' endpoint stays on loopback: the compose service
  # `prometheus-operator` shares cohortd's network namespace and scrapes it
  # there, without a token; nothing else on the compose network reaches it.
  operator_metrics_listen: 127.0.0.1:9465
  # gRPC without TLS on 0.0.0.0 (see above): published on 127.0.0.1 only.
  allow_plaintext: true
  # The volume cohortd-data: the store and the pseudonymisation key, which
  # cohortd creates on first start (mode 0600). Back them up together.
  data_dir: /var/lib/cohortd/store
  pseudonymization_key_file: /var/lib/cohortd/pseudonymization.key
  max_batch_size: 10000
  tls:
    enabled: false

# Copied by the compose service cohortd-secrets from the compose secret
# `principals` (../secrets/dev-principals.yaml; see scripts/dev-secrets).
principals_file: /run/cohortd/principals.yaml

"""

K8S_HEAD = """\
# cohortd config for Kubernetes, written by deploy/sync-config.py from
# config/cohortd.yaml (which documents every key): edit that file and rerun
# the script, not this one. Only the server section and the principals file
# differ. The secrets it names come from the Secret `cohortd-secrets`
# (secret.yaml).
#
# TLS is off because the kubelet's built-in gRPC probes cannot speak TLS:
# the Service is ClusterIP only, and traffic beyond the pod network should
# pass a TLS-terminating ingress or mesh. To terminate TLS in cohortd
# itself, enable server.tls with files from a kubernetes.io/tls Secret and
# replace the grpc probes in statefulset.yaml with exec probes running
# `cohortctl --tls-ca ... --target 127.0.0.1:7443 health`.
server:
  listen: 0.0.0.0:7443
  # The dashboards' endpoint (no record-derived series): the pod's
  # prometheus.io annotations point here.
  metrics_listen: 0.0.0.0:9464
  # The operators' endpoint (record-derived series): off loopback, so every
  # scrape needs an admin bearer token (operator_metrics_require_token is
  # true by default here); see service.yaml for the operator scrape job.
  operator_metrics_listen: 0.0.0.0:9465
  # Plaintext gRPC and operator token inside the pod network (see above):
  # put a TLS-terminating mesh in front of anything beyond it.
  allow_plaintext: true
  # The PersistentVolume of the StatefulSet's volumeClaimTemplate.
  data_dir: /var/lib/cohortd/store
  # Copied from the Secret with mode 0600 by the init container (a Secret
  # volume cannot give a non-root owner mode 0600 when fsGroup is set, and
  # cohortd refuses a key readable by its group). The copy must fail
  # rather than let cohortd make a new key: that would split every
  # account's pseudonym.
  pseudonymization_key_file: /run/cohortd/pseudonymization.key
  max_batch_size: 10000
  tls:
    enabled: false

# Token hashes (SHA-256), from the Secret cohortd-secrets.
principals_file: /etc/cohortd/secrets/principals.yaml

"""

K8S_WRAP = """\
# The cohortd config file, mounted at /etc/cohortd/cohortd.yaml by
# statefulset.yaml. Written by deploy/sync-config.py: edit
# config/cohortd.yaml and rerun it.
apiVersion: v1
kind: ConfigMap
metadata:
  name: cohortd-config
  labels:
    app.kubernetes.io/name: cohortd
data:
  cohortd.yaml: |
"""


# The ClickHouse variants' storage section (config/cohortd.yaml documents
# each key), after the server section and before principals_file.
CLICKHOUSE_NOTE = """\
# The ClickHouse variant: as the config without ClickHouse, plus the
# storage section below (README "Scaling out").
"""

CLICKHOUSE_STORAGE = """\
# Sessions also go to ClickHouse (through the outbox in
# data_dir/clickhouse-outbox, on the same volume as the store), and each
# query's account-level work runs there; noise, budget ledger, cache and
# audit stay in cohortd. ClickHouse: {where}
storage:
  engine: clickhouse
  clickhouse:
    url: http://clickhouse:8123
    database: cohortd
    user: default
    password_file: ""
    # Rows take ~150 bytes per label or measure of a session (measured by
    # bench/backend/outage_drill), so 1 GiB queues ~300,000 sessions of 20
    # fields; past it, pushes get UNAVAILABLE until ClickHouse confirms.
    max_outbox_bytes: 1073741824

"""

CLICKHOUSE_WHERE_COMPOSE = (
    "the compose service\n# `clickhouse` (deploy/compose-clickhouse.yaml) "
    "on the internal network\n# `clickhouse`.")
CLICKHOUSE_WHERE_K8S = (
    "the Service `clickhouse`\n# (deploy/k8s/clickhouse), which only "
    "cohortd's pods may reach.")

K8S_CLICKHOUSE_WRAP = """\
# Patch of the base ConfigMap cohortd-config: the cohortd config with the
# ClickHouse backend. Written by deploy/sync-config.py: edit
# config/cohortd.yaml and rerun it.
apiVersion: v1
kind: ConfigMap
metadata:
  name: cohortd-config
  labels:
    app.kubernetes.io/name: cohortd
data:
  cohortd.yaml: |
"""


def with_storage(head: str, where: str) -> str:
    """head with the ClickHouse storage section before principals_file."""
    at = head.find("\n# ", head.find("  tls:\n"))
    return (CLICKHOUSE_NOTE + head[:at + 1]
            + CLICKHOUSE_STORAGE.format(where=where) + head[at + 1:])


def indent(text: str) -> str:
    return "".join(("    " + line if line.strip() else "\n")
                   for line in text.splitlines(keepends=True))


def tail() -> str:
    text = SOURCE.read_text()
    at = text.find(MARKER)
    if at < 0:
        sys.exit(f"sync-config: {SOURCE} has no line starting {MARKER!r}")
    return text[at:]


def outputs() -> dict:
    body = tail()
    compose = COMPOSE_HEAD + body
    k8s_config = K8S_HEAD + body
    compose_ch = with_storage(COMPOSE_HEAD, CLICKHOUSE_WHERE_COMPOSE) + body
    k8s_ch = with_storage(K8S_HEAD, CLICKHOUSE_WHERE_K8S) + body
    deploy = ROOT / "deploy"
    return {
        deploy / "compose" / "cohortd.yaml": compose,
        deploy / "k8s" / "configmap.yaml": K8S_WRAP + indent(k8s_config),
        deploy / "compose" / "cohortd-clickhouse.yaml": compose_ch,
        deploy / "k8s" / "clickhouse" / "configmap.yaml":
            K8S_CLICKHOUSE_WRAP + indent(k8s_ch),
    }


def main() -> int:
    check = sys.argv[1:] == ["--check"]
    stale = []
    for path, text in outputs().items():
        if path.exists() and path.read_text() == text:
            continue
        if check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"sync-config: wrote {path.relative_to(ROOT)}")
    if stale:
        print("sync-config: out of date with config/cohortd.yaml: "
              + ", ".join(stale) + "; run deploy/sync-config.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
