#!/usr/bin/env bash
# make test-monitoring: the checks Prometheus makes of its files at start, and the alerts' tests.
#   promtool check config  monitoring/prometheus.yml, monitoring/prometheus-cluster.yml (and the rules they load)
#   promtool check rules   monitoring/alerts.yml
#   promtool test rules    monitoring/alerts.test.yml
#   the Grafana dashboard is JSON whose every panel has a query (its queries run in the e2e suite)
# promtool is Debian's prometheus package: sudo bash .ci/install-prometheus.sh. Without it this
# fails with one line saying so (it never skips).
set -euo pipefail
cd "$(dirname "$0")"

command -v promtool >/dev/null || {
  echo "make test-monitoring needs promtool, which is missing: sudo bash .ci/install-prometheus.sh (Debian's prometheus package)" >&2
  exit 1
}
promtool check config prometheus.yml prometheus-cluster.yml
promtool check rules alerts.yml
promtool test rules alerts.test.yml

# Every query of the Grafana dashboard parses: promtool checks them as recording rules.
rules=$(mktemp --suffix=.yml)
trap 'rm -f "$rules"' EXIT
node -e '
  const dash = JSON.parse(require("node:fs").readFileSync("grafana/p2p-registry.json", "utf8"));
  const rules = [];
  for (const panel of dash.panels.filter((p) => p.type !== "row")) {
    if (!panel.targets?.length) throw new Error(`panel ${panel.id} "${panel.title}" has no query`);
    for (const t of panel.targets) rules.push({ record: `dashboard:panel_${panel.id}_${t.refId}`, expr: t.expr });
  }
  process.stdout.write(JSON.stringify({ groups: [{ name: "dashboard", rules }] }));
' >"$rules"
echo "Checking grafana/p2p-registry.json (every panel query, as a rule)"
promtool check rules "$rules"
