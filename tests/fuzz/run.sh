#!/bin/bash
# Runs each libFuzzer target for SECONDS, seeded with the golden frames of
# tests/data/vectors.tsv, and prints one result line per target.
#
#   tests/fuzz/run.sh SECONDS TARGET...
#
# Corpora grow in build/fuzz-corpus/NAME and persist between runs. A crash
# leaves its input in build/fuzz-artifacts/ and the fuzzer output in
# build/fuzz-logs/NAME.log. Exits 1 if any target fails.
set -u

usage() {
	echo "usage: $0 SECONDS TARGET..." >&2
	exit 2
}

[ $# -ge 2 ] || usage
seconds=$1
shift
case $seconds in
'' | *[!0-9]*) usage ;;
esac

root=$(cd "$(dirname "$0")/../.." && pwd)
vectors=$root/tests/data/vectors.tsv
build=$root/build

# Writes the bytes of a hex string to a file.
unhex() {
	local hex=$1 out=$2 escaped=""
	local i

	for ((i = 0; i < ${#hex}; i += 2)); do
		escaped+="\\x${hex:i:2}"
	done
	printf '%b' "$escaped" >"$out"
}

# Seeds a corpus with each vector's frame and with its body alone, so that
# targets that read bare CBOR start from well-formed items too.
seed_corpus() {
	local corpus=$1 name hex

	while IFS=$'\t' read -r name hex; do
		[ -n "$name" ] || continue
		unhex "$hex" "$corpus/vector-$name"
		unhex "${hex:18}" "$corpus/vector-$name-body"
	done <"$vectors"
}

# UBSan prints a report and continues unless halt_on_error is set, so
# undefined behaviour would not fail the run.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
passed=0
failed=0
for target in "$@"; do
	name=$(basename "$target")
	corpus=$build/fuzz-corpus/$name
	log=$build/fuzz-logs/$name.log

	if [ ! -x "$target" ]; then
		echo "FAIL $name: $target is not an executable; build it with make fuzz"
		failed=$((failed + 1))
		continue
	fi
	mkdir -p "$corpus"
	seed_corpus "$corpus"

	# A hang past -timeout seconds on one input counts as a crash.
	"$target" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$name-" \
		"$corpus" >"$log" 2>&1
	status=$?

	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	files=$(find "$corpus" -type f | wc -l)
	if [ $status -eq 0 ]; then
		echo "ok $name: ${runs:-?} runs in ${seconds}s, corpus $files files"
		passed=$((passed + 1))
	else
		artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		echo "FAIL $name: exit status $status, input ${artifact:-not saved}, log $log"
		failed=$((failed + 1))
	fi
done

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
