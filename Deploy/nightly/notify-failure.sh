#!/usr/bin/env bash
# Raises the alarm for a ChurnGrid unit that failed: started by systemd as
# churngrid-failure@UNIT.service (OnFailure= of the nightly pipeline, the coordinator and the
# workers). Writes a critical journal entry with the failed unit's last log lines and, when
# CHURNGRID_ALERT_WEBHOOK is set (/etc/churngrid/alert.env), POSTs the same text to it
# (Slack/Teams/Alertmanager-webhook style: {"text": "..."}).
set -euo pipefail
unit=${1:?usage: notify-failure.sh UNIT}
host=$(hostname)
tail=$(journalctl -u "$unit" -n 30 --no-pager -o cat 2>/dev/null || echo "(journal not readable)")
text="ChurnGrid: $unit FAILED on $host at $(date -u +%Y-%m-%dT%H:%M:%SZ). Last lines:
$tail"
# <2> = critical for journald (SyslogLevelPrefix): shows in red in journalctl -p crit.
printf '<2>%s\n' "$text"
if [ -n "${CHURNGRID_ALERT_WEBHOOK:-}" ]; then
  body=$(python3 -c 'import json,sys; print(json.dumps({"text": sys.stdin.read()}))' <<<"$text" 2>/dev/null \
         || printf '{"text": "ChurnGrid: %s FAILED on %s (see its journal)"}' "$unit" "$host")
  # The webhook URL is often a secret: given to curl on standard input (a config line), never in
  # its argv, which any local user can read in /proc.
  url=${CHURNGRID_ALERT_WEBHOOK//\\/\\\\}
  url=${url//\"/\\\"}
  printf 'url = "%s"\n' "$url" | curl -fsS -m 20 -K - -H 'Content-Type: application/json' --data-binary "$body" >/dev/null
fi
