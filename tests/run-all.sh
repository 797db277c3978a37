#!/bin/bash
# Runs every test suite and sums their "N passed, N failed" lines into one.
#
#   tests/run-all.sh            all suites
#   MSB_SKIP_E2E=1 tests/...    only the suites that need no guest
#   FUZZ_SECONDS=N              fuzz each decoder for N seconds (default 15)
set -uo pipefail
cd "$(dirname "$0")/.."

total_passed=0
total_failed=0
failed_suites=()

run_suite() {
	local name=$1
	shift
	local log summary passed failed
	log=$(mktemp)
	echo "== $name"
	"$@" 2>&1 | tee "$log"
	local status=${PIPESTATUS[0]}
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
	rm -f "$log"
	if [ -z "$summary" ]; then
		echo "== $name: no summary line (exit status $status); counted as one failure"
		total_failed=$((total_failed + 1))
		failed_suites+=("$name")
		return
	fi
	passed=${summary%% passed*}
	failed=${summary#*, }
	failed=${failed%% failed}
	total_passed=$((total_passed + passed))
	total_failed=$((total_failed + failed))
	if [ "$failed" -ne 0 ] || [ "$status" -ne 0 ]; then
		failed_suites+=("$name")
		[ "$failed" -eq 0 ] && total_failed=$((total_failed + 1))
	fi
}

run_suite unit build/tests/unit-tests
run_suite cbor-crosscheck /usr/bin/python3 tests/cbor_crosscheck.py
# The decoders read bytes from guests and clients; every run fuzzes them a
# little (FUZZ_SECONDS per target, 0 to skip).
if [ "${FUZZ_SECONDS:-15}" -gt 0 ] && ls build/fuzz/fuzz_* >/dev/null 2>&1; then
	run_suite fuzz tests/fuzz/run.sh "${FUZZ_SECONDS:-15}" build/fuzz/fuzz_*
fi
if [ -z "${MSB_SKIP_E2E:-}" ]; then
	for t in build/tests/e2e_*; do
		[ -x "$t" ] && run_suite "$(basename "$t")" "$t"
	done
	for t in tests/e2e/*_test.sh; do
		[ -x "$t" ] && run_suite "$(basename "$t" .sh)" "$t"
	done
fi

[ ${#failed_suites[@]} -gt 0 ] && echo "failed suites: ${failed_suites[*]}"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
