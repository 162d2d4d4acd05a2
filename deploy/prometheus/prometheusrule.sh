#!/usr/bin/env bash
# Prints rules.yaml wrapped in a Prometheus Operator PrometheusRule, so the one
# rule file serves plain Prometheus (rule_files) and the operator alike:
#   deploy/prometheus/prometheusrule.sh | kubectl apply -n monitoring -f -
# RELEASE sets the "release" label kube-prometheus-stack selects rules by
# (default kube-prometheus-stack).
set -euo pipefail
rules="$(dirname "$0")/rules.yaml"
release="${RELEASE:-kube-prometheus-stack}"
cat <<EOF
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: usher
  labels:
    app.kubernetes.io/part-of: usher
    release: ${release}
spec:
EOF
# Indent the rule file under spec: (its top-level key is "groups:").
sed -e 's/^\(.\)/  \1/' "$rules"
