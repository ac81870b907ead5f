#!/usr/bin/env bash
# Checks everything under Deploy/ that can be checked without a container engine or a
# Kubernetes cluster; exits non-zero if any check fails, listing what failed.
#   bash Deploy/check.sh          (from anywhere; `make test-deps` installs the tools)
# Checks:
#   scripts      bash -n on every Deploy script; shellcheck -S warning when installed
#   systemd      systemd-analyze verify of every unit (in a scratch root with a stub churngrid,
#                since verify needs ExecStart's binary to exist); any warning fails too;
#                systemd-analyze security --offline: exposure ≤ 2.0 for the cluster's units
#   compose      docker-compose config (Deploy/compose/docker-compose.yml)
#   yaml         yamllint (Deploy/.yamllint) on compose, k8s and prometheus files
#   k8s          kubernetes-validate --strict (offline, bundled schemas) on Deploy/k8s/*.yaml
#   prometheus   promtool check rules / check config / test rules
# Not checked here: building the image, running containers, applying to a cluster (nothing of
# that runs on these machines; docs/operations.md, "Not verified here").
set -uo pipefail
deploy=$(cd "$(dirname "$0")" && pwd)
cd "$deploy" || exit 1
failed=()
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# check NAME COMMAND…: runs it, prints PASS or FAIL with its output.
check() {
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then
    printf 'PASS  %s\n' "$name"
  else
    printf 'FAIL  %s\n' "$name"; printf '%s\n' "$out" | sed 's/^/      /'
    failed+=("$name")
  fi
}
# check_quiet NAME COMMAND…: as check, but any output at all is a failure as well.
check_quiet() {
  local name=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" = 0 ] && [ -z "$out" ]; then
    printf 'PASS  %s\n' "$name"
  else
    printf 'FAIL  %s (exit %s)\n' "$name" "$rc"; printf '%s\n' "$out" | sed 's/^/      /'
    failed+=("$name")
  fi
}
missing() { printf 'FAIL  %s: %s not installed (make test-deps)\n' "$1" "$2"; failed+=("$1"); }
have() { command -v "$1" >/dev/null 2>&1; }

# --- scripts ---------------------------------------------------------------------------------
mapfile -t scripts < <(find "$deploy" -name '*.sh' -not -path '*/secrets/*' | sort)
for s in "${scripts[@]}"; do check "bash -n ${s#"$deploy"/}" bash -n "$s"; done
if have shellcheck; then
  check "shellcheck (${#scripts[@]} scripts)" shellcheck -S warning "${scripts[@]}"
else
  printf 'SKIP  shellcheck: not installed\n'
fi

# --- systemd ---------------------------------------------------------------------------------
if have systemd-analyze; then
  root="$scratch/root"
  mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/usr/local/bin" \
           "$root/usr/local/lib/churngrid" "$root/bin" "$root/usr/bin"
  # The distribution's own units (sysinit.target, …) and the commands the units name.
  cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
  cp "$(command -v kill)" "$root/bin/kill" 2>/dev/null || printf '#!/bin/sh\n' >"$root/bin/kill"
  chmod +x "$root/bin/kill"
  printf '#!/bin/sh\nexit 0\n' >"$root/usr/local/bin/churngrid"
  chmod +x "$root/usr/local/bin/churngrid"
  cp "$deploy"/nightly/*.sh "$root/usr/local/lib/churngrid/"
  cp "$deploy"/systemd/*.service "$deploy"/systemd/*.timer "$root/etc/systemd/system/"
  units=()
  for f in "$deploy"/systemd/*.service "$deploy"/systemd/*.timer; do
    u=$(basename "$f")
    # Templates are verified as an instance.
    case "$u" in *@.service) u="${u%@.service}@example.service" ;; esac
    units+=("$u")
  done
  for u in "${units[@]}"; do
    check_quiet "systemd-analyze verify $u" \
      systemd-analyze verify --root="$root" --man=no --generators=no "$u"
  done
  for u in churngrid-coordinator.service churngrid-worker@example.service churngrid-nightly.service; do
    check "systemd-analyze security $u (exposure <= 2.0)" \
      systemd-analyze security --offline=yes --root="$root" --threshold=20 --no-pager "$u"
  done
else
  missing systemd "systemd-analyze"
fi

# --- compose ---------------------------------------------------------------------------------
if have docker-compose; then
  check "docker-compose config" docker-compose --project-directory "$deploy/compose" \
    -f "$deploy/compose/docker-compose.yml" config -q
else
  missing compose docker-compose
fi

# --- yaml ------------------------------------------------------------------------------------
if have yamllint; then
  check "yamllint compose k8s prometheus" yamllint -s -c "$deploy/.yamllint" compose k8s prometheus
else
  missing yamllint yamllint
fi

# --- k8s schema ------------------------------------------------------------------------------
if python3 -c 'import kubernetes_validate' 2>/dev/null; then
  for f in k8s/*.yaml; do
    check "kubernetes-validate --strict $f" python3 -m kubernetes_validate --strict --quiet "$f"
  done
else
  missing k8s "kubernetes-validate (pip)"
fi

# --- prometheus ------------------------------------------------------------------------------
if have promtool; then
  check "promtool check rules alerts.yml" promtool check rules prometheus/alerts.yml
  check "promtool check config prometheus.yml" promtool check config prometheus/prometheus.yml
  check "promtool test rules alerts_test.yml" promtool test rules prometheus/alerts_test.yml
else
  missing prometheus promtool
fi

echo
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'Deploy/check.sh: %d check(s) FAILED:\n' "${#failed[@]}"
  printf '  - %s\n' "${failed[@]}"
  exit 1
fi
echo "Deploy/check.sh: all checks passed"
