#!/usr/bin/env bash
# Validates the deploy path without a cluster or a Docker daemon (scripts/test.sh runs it):
# - each Kubernetes overlay rendered (`kubectl kustomize`; where no kubectl with kustomize v4+
#   is installed, scripts/deploy/render.py, which CI checks against kubectl where both exist)
#   and its core kinds checked by kubernetes-validate in strict mode (unknown fields fail);
# - deploy/k8s/base/pgbouncer.ini is the rendering of deploy/pgbouncer/pgbouncer.ini;
# - deploy/nginx.conf rendered with each balancing strategy (`nginx -t`);
# - the compose file, by docker-compose's own parser (`config`);
# - the alert rules (`promtool check rules`, and their unit tests) and the scrape config.
# The names the manifests use (settings, ports, probe paths) are checked against the binary
# and the router by the API suite's `deploy` test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

python3 -c 'import yaml' 2>/dev/null || pip install -q pyyaml
command -v kubernetes-validate >/dev/null 2>&1 || pip install -q kubernetes-validate==1.32.0
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
command -v promtool >/dev/null 2>&1 || apt_install prometheus

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
kustomize=""
if kubectl version --client 2>/dev/null | grep -Eq 'Kustomize Version: v[4-9]'; then kustomize=kubectl; fi
for overlay in deploy/k8s/overlays/*/; do
    name=$(basename "$overlay")
    if [ -n "$kustomize" ]; then
        log "k8s: $name (kubectl kustomize; render.py checked against it)"
        kubectl kustomize "$overlay" >"$rendered/$name.yaml"
        python3 scripts/deploy/render.py --check "$overlay"
    else
        log "k8s: $name (scripts/deploy/render.py: no kubectl with kustomize v4+ here)"
        python3 scripts/deploy/render.py "$overlay" >"$rendered/$name.yaml"
    fi
    # Operators' kinds (CloudNativePG's Cluster) have no schema here: the core kinds only.
    python3 - "$rendered/$name.yaml" <<'PY'
import sys, yaml
path = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
group = lambda d: d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else ""
core = [d for d in docs if group(d) == "" or "." not in group(d) or group(d).endswith(".k8s.io")]
yaml.safe_dump_all(core, open(path, "w"))
print(f"{len(core)} core documents of {len(docs)}")
PY
    kubernetes-validate -k 1.32.0 --strict --quiet "$rendered/$name.yaml"
done

log "PgBouncer: the cluster's pgbouncer.ini is the template's rendering"
diff <(PGBOUNCER_RENDER_ONLY=1 scripts/pgbouncer.sh /run/pgbouncer 0.0.0.0:6432 keel-db-rw:5432) \
    deploy/k8s/base/pgbouncer.ini

log "nginx: deploy/nginx.conf rendered with each balancing strategy"
for balance in least-conn round-robin ip-hash weighted; do
    NGINX_TEST=1 NGINX_BALANCE=$balance NGINX_WEIGHTS=3,1 \
        scripts/nginx.sh "$rendered/nginx-$balance" 127.0.0.1:8080 127.0.0.1:8081 127.0.0.1:8082 2>&1 | tail -1
done

log "compose"
docker-compose -f deploy/compose/compose.yaml config -q

log "Prometheus: alert rules, their tests, the scrape config"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml
promtool check config deploy/prometheus.yml
log "deploy: valid"
