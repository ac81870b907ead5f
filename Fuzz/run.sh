#!/usr/bin/env bash
# Runs libFuzzer targets built by `make fuzz-build` (docs/fuzzing.md).
#   Fuzz/run.sh SECONDS [TARGET...]     TARGET ∈ wire frame xgboost lightgbm csv schema (default: all)
# Each target starts from its committed seeds (Fuzz/Corpus/TARGET, never written to) plus what
# earlier runs found (.build-fuzz/runs/corpus/TARGET). A crash, a timeout (25 s for one input), a
# leak or an allocation of 128 MB or more fails the target; the input that did it is kept in
# .build-fuzz/runs/crashes/TARGET/, the log in .build-fuzz/runs/logs/TARGET.log. Prints one line
# per target, then 'fuzz: N passed, M failed'. (Not under .build-fuzz/artifacts: SwiftPM owns that.)
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(wire frame xgboost lightgbm csv schema)
declare -A exe=([wire]=FuzzWire [frame]=FuzzFrame [xgboost]=FuzzXGBoost [lightgbm]=FuzzLightGBM [csv]=FuzzCSV [schema]=FuzzSchema)
bin=.build-fuzz/release
passed=0
failed=0
for t in "${targets[@]}"; do
    if [ -z "${exe[$t]:-}" ]; then echo "unknown fuzz target '$t' (wire frame xgboost lightgbm csv schema)" >&2; exit 2; fi
    work=.build-fuzz/runs/corpus/$t
    artifacts=.build-fuzz/runs/crashes/$t/
    log=.build-fuzz/runs/logs/$t.log
    mkdir -p "$work" "$artifacts" .build-fuzz/runs/logs
    args=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=128
          -print_final_stats=1 -artifact_prefix="$artifacts")
    [ -f "Fuzz/Dictionaries/$t.dict" ] && args+=(-dict="Fuzz/Dictionaries/$t.dict")
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
        "$bin/${exe[$t]}" "${args[@]}" "$work" "Fuzz/Corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        printf '%-9s ok      %s s, %s execs, %s exec/s, %s, peak RSS %s MB\n' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${rss:-?}"
    else
        failed=$((failed + 1))
        printf '%-9s FAILED  exit %s after %s execs; log %s, input in %s\n' "$t" "$rc" "${execs:-?}" "$log" "$artifacts"
        grep -m5 -E 'ERROR|Fatal error|SUMMARY|==[0-9]+==' "$log" | sed 's/^/          /'
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
