#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds and runs the libFuzzer targets of Fuzz/ (docs/security.md#fuzzing).
#
#   scripts/fuzz.sh build          build the targets (release, ASan + libFuzzer)
#   scripts/fuzz.sh smoke [SECS]   every target for SECS seconds (default 30), two at a time;
#                                  exits non-zero on any crash, hang (-timeout), leak or OOM
#   scripts/fuzz.sh long [RUNS [TARGET…]]   every target (or those named), one after the other
#                                  under nice, until RUNS executions each (default 1000000, in
#                                  sessions of FUZZ_SESSION=250000); prints a table
#   scripts/fuzz.sh run TARGET [libFuzzer args…]   one target on its corpus, e.g. to replay
#                                  a crash: scripts/fuzz.sh run fuzz-config crash-…
#
# New inputs found during a run go to a scratch directory (FUZZ_WORK, default
# $TMPDIR/vaultkeeper-fuzz), never into Fuzz/Corpus: the corpora in git stay small and reviewed.
# A crashing input is written to FUZZ_WORK/artifacts/TARGET/; add its minimised form to
# Fuzz/Corpus/TARGET/ with the fix, as a regression seed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/Fuzz"
SWIFT="${SWIFT:-swift}"
if ! command -v "$SWIFT" >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then SWIFT=/opt/swift/usr/bin/swift; fi
LOCK="${VK_SWIFT_LOCK:-/tmp/vk-swift.lock}"
WORK="${FUZZ_WORK:-${TMPDIR:-/tmp}/vaultkeeper-fuzz}"
BIN="${FUZZ_BIN:-$FUZZ/.build/release}"
TARGETS=(fuzz-config fuzz-toml fuzz-keyshares fuzz-vault-json fuzz-certificates fuzz-snapshot-tar fuzz-snapshot-gzip fuzz-age-file fuzz-age-keys fuzz-s3-xml)

# A crash must end the run quickly and visibly: no interactive Swift backtracer (it would
# spend the -timeout budget symbolicating), ASan aborts so libFuzzer records the input, and
# a dependency's known leak, if one is ever listed in Fuzz/lsan.supp, is suppressed by name
# only, so any other leak still fails the run.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export LSAN_OPTIONS="suppressions=$FUZZ/lsan.supp:print_suppressions=0"

# libFuzzer options common to every run: a hang of 10 s or an input using more than 2 GiB is
# a failure like a crash.
COMMON=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

build() {
  # Root's Package.resolved pins the same dependency versions the daemon is built with.
  # Copied only when it differs: a new timestamp alone makes SwiftPM rebuild everything.
  if [ -f "$ROOT/Package.resolved" ] && ! cmp -s "$ROOT/Package.resolved" "$FUZZ/Package.resolved"; then
    cp "$ROOT/Package.resolved" "$FUZZ/Package.resolved"
  fi
  if [ -n "${FUZZ_NO_BUILD:-}" ]; then return 0; fi
  # Swift code is instrumented by -sanitize=fuzzer,address (SwiftPM's --sanitize fuzzer does
  # not reach the Swift frontend); --sanitize instruments the C/C++ dependencies (BoringSSL,
  # zlib's shim) as well. -enable-testing lets the targets `@testable import` the
  # internal parsers. Through the shared build lock, like every Swift build here.
  flock "$LOCK" "$SWIFT" build --package-path "$FUZZ" -c release \
    --sanitize fuzzer --sanitize address \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -parse-as-library
}

# run_target TARGET SECONDS RUNS LOG: fuzzes TARGET from its seeds for at most SECONDS
# (0: no limit) or RUNS executions (-1: no limit); new inputs go to the scratch corpus.
run_target() {
  local target=$1 seconds=$2 runs=$3 log=$4
  local scratch="$WORK/corpus/$target" artifacts="$WORK/artifacts/$target/"
  mkdir -p "$scratch" "$artifacts"
  local args=("${COMMON[@]}" -max_total_time="$seconds" -runs="$runs" -artifact_prefix="$artifacts")
  if [ -f "$FUZZ/Dictionaries/$target.dict" ]; then args+=(-dict="$FUZZ/Dictionaries/$target.dict"); fi
  # SnapshotVerifierThread's worker is a detached thread that drops the last reference to its state
  # as it exits, after `finish` has returned: libFuzzer's per-input leak check can run in that
  # moment and take the state for a leak (seen once in 34,000 inputs under load). Its leaks are
  # still caught by the check at exit, when every worker is long gone.
  if [ "$target" = fuzz-snapshot-gzip ]; then args+=(-detect_leaks=0); fi
  "$BIN/$target" "${args[@]}" "$scratch" "$FUZZ/Corpus/$target" >"$log" 2>&1
}

summary() {  # TARGET LOG RC: one table row
  local target=$1 log=$2 rc=$3
  local execs secs crashes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1 || true)
  crashes=$(find "$WORK/artifacts/$target" -type f 2>/dev/null | wc -l)
  printf '%-20s %12s %8s %8s %s\n' "$target" "${execs:-?}" "${secs:-?}" "$crashes" "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc, see $log)")"
}

case "${1:-smoke}" in
  build)
    build
    ;;
  smoke)
    seconds="${2:-30}"
    build
    # From the committed seeds only, so that every smoke run starts from the same place.
    rm -rf "$WORK/artifacts" "$WORK/corpus"
    mkdir -p "$WORK/logs"
    failed=0
    printf '%-20s %12s %8s %8s %s\n' target executions seconds crashes result
    # Two at a time (the machine has two cores); each run is bounded by -max_total_time, and
    # -timeout turns a hang into a failure, so the wall time does not depend on luck.
    for ((i = 0; i < ${#TARGETS[@]}; i += 2)); do
      pids=()
      for t in "${TARGETS[@]:i:2}"; do
        run_target "$t" "$seconds" -1 "$WORK/logs/$t.smoke.log" &
        pids+=("$!:$t")
      done
      for entry in "${pids[@]}"; do
        pid=${entry%%:*} t=${entry#*:} rc=0
        wait "$pid" || rc=$?
        summary "$t" "$WORK/logs/$t.smoke.log" "$rc"
        if [ "$rc" -ne 0 ]; then failed=1; tail -n 40 "$WORK/logs/$t.smoke.log" >&2; fi
      done
    done
    exit "$failed"
    ;;
  long)
    runs="${2:-1000000}"
    if [ $# -gt 2 ]; then TARGETS=("${@:3}"); fi
    build
    rm -rf "$WORK/artifacts"
    mkdir -p "$WORK/logs"
    failed=0
    printf '%-20s %12s %8s %8s %s\n' target executions seconds crashes result
    # One at a time and niced: this is background work on a machine others build on. Each
    # target runs in sessions of at most SESSION executions, each a fresh process continuing
    # from the corpus the previous one grew: under ASan, every SecretBytes allocation (an
    # madvise(MADV_DONTDUMP) + mlock'ed range) splits a mapping that ASan's allocator does not
    # reuse soon, so one process accumulates mappings towards vm.max_map_count (65530) after
    # about a million inputs that allocate key material. That is the sanitizer's allocator, not
    # the daemon (glibc reuses the pages; see docs/security.md#fuzzing).
    session="${FUZZ_SESSION:-250000}"
    for t in "${TARGETS[@]}"; do
      done_runs=0 seconds=0 rc=0 n=0
      : >"$WORK/logs/$t.long.log"
      while [ "$done_runs" -lt "$runs" ] && [ "$rc" -eq 0 ]; do
        n=$((n + 1))
        this=$((runs - done_runs < session ? runs - done_runs : session))
        log="$WORK/logs/$t.long.$n.log"
        nice -n 10 bash -c "$(declare -f run_target); $(declare -p COMMON WORK FUZZ BIN); run_target $t 0 $this $log" || rc=$?
        cat "$log" >>"$WORK/logs/$t.long.log"
        got=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
        secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1 || true)
        done_runs=$((done_runs + ${got:-0}))
        seconds=$((seconds + ${secs:-0}))
        # A session that ran nothing would loop forever: count it as a failure.
        if [ "${got:-0}" -eq 0 ] && [ "$rc" -eq 0 ]; then rc=1; fi
      done
      crashes=$(find "$WORK/artifacts/$t" -type f 2>/dev/null | wc -l)
      printf '%-20s %12s %8s %8s %s\n' "$t" "$done_runs" "$seconds" "$crashes" \
        "$([ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ] && echo "ok ($n sessions)" || echo "FAILED (exit $rc, see $WORK/logs/$t.long.*.log)")"
      if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then failed=1; fi
    done
    exit "$failed"
    ;;
  run)
    shift
    target=$1
    shift
    exec "$BIN/$target" "${COMMON[@]}" "$@"
    ;;
  *)
    echo "usage: $0 build | smoke [SECONDS] | long [RUNS] | run TARGET [ARGS…]" >&2
    exit 2
    ;;
esac
