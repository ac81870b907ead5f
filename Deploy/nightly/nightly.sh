#!/usr/bin/env bash
# ChurnGrid's nightly pipeline: import → rescore (and its drift, logged) → export → campaign. One run, top to bottom;
# the first step that fails stops the run with a non-zero exit status and a line saying which
# step failed (systemd then starts churngrid-failure@…, Kubernetes marks the Job failed).
# Run by Deploy/systemd/churngrid-nightly.service and Deploy/k8s/nightly-cronjob.yaml.
#
# Settings (environment; Deploy/systemd/env/nightly.env documents each):
#   CHURNGRID_POSTGRES_URL      PostgreSQL URL WITHOUT a password (the password: PGPASSFILE)
#   PGPASSFILE                  libpq password file (mode 0600), read by churngrid and psql
#   CHURNGRID_COORDINATORS      coordinator endpoints, comma-separated (leader and standbys)
#   CHURNGRID_CURVE_KEY         this job's own key file (NAME.key), authorized as `operator`
#   CHURNGRID_COORDINATOR_KEYS  the coordinators' NAME.pub files, comma-separated, same order
#   CHURNGRID_IMPORT_FILE       tonight's profile CSV (subscriber_id + catalogue features);
#                               refused when older than CHURNGRID_IMPORT_MAX_AGE_HOURS (20);
#                               CHURNGRID_SKIP_IMPORT=1 skips the import on purpose (logged)
#   CHURNGRID_EXPORT_DIR        where churn_scores_YYYY-MM-DD.csv is written (atomically)
#   CHURNGRID_CAMPAIGN_ARGS     words after `churngrid campaign` (e.g. `run --config FILE`), or
#                               `none` for no campaign on purpose; unset, the last step fails
#   CHURNGRID_BIN               the churngrid executable (default: churngrid on PATH)
set -euo pipefail

CHURNGRID=${CHURNGRID_BIN:-churngrid}
step="start"
started=$(date +%s)

log() { printf '%s nightly [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$step" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# Any command that fails stops the run here (set -e), naming the step and the line.
trap 'rc=$?; log "FAILED (exit $rc at line $LINENO): the nightly run stopped; later steps did not run"; exit $rc' ERR

need() { [ -n "${!1:-}" ] || die "$1 is not set (see Deploy/systemd/env/nightly.env)"; }

# ---------------------------------------------------------------------------------------------
step="check"
need CHURNGRID_POSTGRES_URL
need CHURNGRID_COORDINATORS
need CHURNGRID_EXPORT_DIR
command -v "$CHURNGRID" >/dev/null || die "churngrid not found ($CHURNGRID)"
command -v psql >/dev/null || die "psql not found (install postgresql-client)"
# A password in the URL would show in every process list (psql gets the URL as an argument).
# Checked on the URL percent-decoded (a key may be spelt pass%77ord) and lowercased: any key
# ending in "password" (sslpassword too; spaces around '=' allowed), and user info with a password.
decoded=$(printf '%b' "${CHURNGRID_POSTGRES_URL//%/\\x}")
case "${decoded,,}" in
  *password*|*://*:*@*) die "CHURNGRID_POSTGRES_URL carries a password: put it in PGPASSFILE instead" ;;
esac
client=(--coordinator "$CHURNGRID_COORDINATORS")
if [ -n "${CHURNGRID_CURVE_KEY:-}" ]; then
  need CHURNGRID_COORDINATOR_KEYS
  client+=(--curve-keys "$CHURNGRID_CURVE_KEY" --coordinator-key "$CHURNGRID_COORDINATOR_KEYS")
fi
mkdir -p "$CHURNGRID_EXPORT_DIR"
[ -w "$CHURNGRID_EXPORT_DIR" ] || die "cannot write to $CHURNGRID_EXPORT_DIR"
log "coordinators $CHURNGRID_COORDINATORS, export to $CHURNGRID_EXPORT_DIR"

# ---------------------------------------------------------------------------------------------
step="1/4 import"
if [ "${CHURNGRID_SKIP_IMPORT:-0}" = 1 ]; then
  log "NOTICE: skipped on purpose (CHURNGRID_SKIP_IMPORT=1): tonight's scores use yesterday's profiles"
else
  need CHURNGRID_IMPORT_FILE
  [ -r "$CHURNGRID_IMPORT_FILE" ] || die "tonight's profile file $CHURNGRID_IMPORT_FILE is missing or unreadable (set CHURNGRID_SKIP_IMPORT=1 to run without it)"
  [ -s "$CHURNGRID_IMPORT_FILE" ] || die "tonight's profile file $CHURNGRID_IMPORT_FILE is empty"
  # Yesterday's file again means the CRM export did not run: refuse rather than rescore stale data.
  age_h=$(( ($(date +%s) - $(stat -c %Y "$CHURNGRID_IMPORT_FILE")) / 3600 ))
  [ "$age_h" -lt "${CHURNGRID_IMPORT_MAX_AGE_HOURS:-20}" ] \
    || die "$CHURNGRID_IMPORT_FILE is $age_h h old (limit CHURNGRID_IMPORT_MAX_AGE_HOURS=${CHURNGRID_IMPORT_MAX_AGE_HOURS:-20}): the CRM export did not run?"
  log "importing $CHURNGRID_IMPORT_FILE ($(stat -c %s "$CHURNGRID_IMPORT_FILE") bytes)"
  # Upsert by subscriber_id: running it twice is harmless. The URL comes from the environment.
  "$CHURNGRID" profiles import --input "$CHURNGRID_IMPORT_FILE"
  log "done"
fi

# ---------------------------------------------------------------------------------------------
step="2/4 rescore"
log "starting a full rescoring job and waiting for it (progress every few seconds below)"
# --wait exits non-zero unless the job completed (and follows a coordinator takeover).
rc=0
out=$("$CHURNGRID" rescore --wait "${client[@]}") || rc=$?
printf '%s\n' "$out" >&2
[ "$rc" = 0 ] || die "churngrid rescore exited $rc: the job did not complete (its summary and error are above)"
job=$(printf '%s\n' "$out" | sed -n 's/^job \([0-9][0-9]*\) completed:.*/\1/p' | head -1)
[ -n "$job" ] || die "could not read the completed job's id from: $out"
log "job $job completed and published"
# The job's drift against its model version's reference (docs/models.md): logged, never fatal
# here (ChurnGridModelDrift alerts on it; `churngrid drift --fail-on act` would stop the run).
if drift=$("$CHURNGRID" drift --job "$job" --wait "${client[@]}" 2>&1); then
  log "$(printf '%s\n' "$drift" | head -1)"
else
  log "WARNING: the job's drift could not be read: $drift"
fi

# ---------------------------------------------------------------------------------------------
step="3/4 export"
day=$(date -u +%Y-%m-%d)
final="$CHURNGRID_EXPORT_DIR/churn_scores_$day.csv"
partial="$final.partial"
psql_=(psql -X -q -v ON_ERROR_STOP=1 -d "$CHURNGRID_POSTGRES_URL")
published=$("${psql_[@]}" -A -t -c "SELECT job_id FROM churngrid_published")
[ -n "$published" ] || die "no published job in churngrid_published"
if [ "$published" != "$job" ]; then
  log "WARNING: the published job is $published, not $job (another job completed since): exporting $published"
fi
rm -f "$partial"
# One statement, so one snapshot: the view never mixes two jobs. The served model's scores only,
# one row per subscriber: churn_scores_current has a row per model and subscriber once models are
# active beside the served one (docs/models.md); theirs stay in the database.
"${psql_[@]}" -c "\\copy (SELECT s.* FROM churn_scores_current s JOIN scoring_job_models m ON m.job_id = s.job_id AND m.model_name = s.model_name AND m.role = 'served' ORDER BY s.subscriber_id) TO '$partial' WITH (FORMAT csv, HEADER)"
rows=$(( $(wc -l <"$partial") - 1 ))
[ "$rows" -gt 0 ] || die "the export has no rows ($partial kept for inspection)"
expected=$("${psql_[@]}" -A -t -c "SELECT subscribers FROM scoring_job_models WHERE job_id = $published AND role = 'served'")
[ "$rows" = "$expected" ] || die "exported $rows rows but job $published scored $expected subscribers with its served model ($partial kept)"
mv -f "$partial" "$final"
log "wrote $final: $rows rows of job $published (its served model)"

# ---------------------------------------------------------------------------------------------
step="4/4 campaign"
# After the export, so that tonight's scores are written whatever the campaign does. The words
# after `churngrid campaign` (e.g. `run --config /etc/churngrid/campaign.json`); `none` runs no
# campaign on purpose (logged). Unset, the step fails: an upgrade or a lost setting must not
# silently leave campaigns unsent.
need CHURNGRID_CAMPAIGN_ARGS
if [ "$CHURNGRID_CAMPAIGN_ARGS" = none ]; then
  log "NOTICE: no campaign on purpose (CHURNGRID_CAMPAIGN_ARGS=none)"
else
  read -r -a campaign_args <<<"$CHURNGRID_CAMPAIGN_ARGS"
  # One run per night: a re-run of the night (after a failure later on, or by hand) is answered
  # with the run already written instead of contacting the same subscribers again.
  if [ "${campaign_args[0]}" = run ] && [[ " ${campaign_args[*]} " != *" --request-token"* ]]; then
    campaign_args+=(--request-token "nightly-$day")
  fi
  log "running churngrid campaign ${campaign_args[*]}"
  "$CHURNGRID" campaign "${campaign_args[@]}" "${client[@]}"
  log "done"
fi

step="end"
log "nightly run complete in $(( $(date +%s) - started )) s"
