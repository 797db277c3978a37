#!/bin/bash
# End-to-end tests of `msb run` as a user types it.
#
# Each case prints "ok NAME" or "FAIL NAME: detail", and the last line is
# "N passed, N failed". Every `msb run` boots a VM (seconds under TCG), so
# the cases share boots where they can, and each run gets `timeout 120` so
# that a hang fails its case.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

MSB=${MSB:-$PWD/build/msb}
MSB_TIMEOUT_S=120
SANDBOXES_DIR=${MSB_HOME:-$HOME/.msb}/sandboxes
# Every sandbox of this run is named with this prefix, so that the last
# case can look for leftovers of these runs only.
NAME_PREFIX="cli-test-$$"
run_count=0
passed=0
failed=0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The runs must not read the caller's terminal. The stdin cases redirect
# their own input.
exec </dev/null

pass() {
	echo "ok $1"
	passed=$((passed + 1))
}

fail() {
	echo "FAIL $1: $2"
	failed=$((failed + 1))
}

# Prints the start of a file as a Python bytes literal, for messages.
show() {
	python3 -c 'import sys; print(repr(open(sys.argv[1], "rb").read()[:300]))' "$1"
}

# Checks that FILE contains exactly the bytes that `printf FORMAT ARGS...`
# writes.
same_bytes() {
	local file=$1

	shift
	# shellcheck disable=SC2059 # the format is the expected text
	printf "$@" | cmp -s - "$file"
}

# Runs `msb run --name NAME ARGS...` with stdout and stderr in files, and
# sets status and elapsed_ms.
run_msb() {
	local start end

	run_count=$((run_count + 1))
	start=$(date +%s%N)
	timeout -k 10 "$MSB_TIMEOUT_S" "$MSB" run --name "$NAME_PREFIX-$run_count" "$@" >"$work/out" 2>"$work/err"
	status=$?
	end=$(date +%s%N)
	elapsed_ms=$(((end - start) / 1000000))
}

# Fails NAME and returns non-zero when the last run timed out. `msb run`
# passes SIGTERM on to the command, so timeout sends SIGKILL 10 s later and
# the status can then be 137 as well as 124.
check_no_timeout() {
	if [ "$status" -eq 124 ] || [ "$elapsed_ms" -ge $((MSB_TIMEOUT_S * 1000)) ]; then
		fail "$1" "msb run did not finish within $MSB_TIMEOUT_S s; stderr: $(show "$work/err")"
		return 1
	fi
	return 0
}

test_python_prints_42() {
	local name=python_prints_42

	run_msb -- python3 -c 'print(6*7)'
	check_no_timeout $name || return
	if [ "$status" -ne 0 ]; then
		fail $name "exit status $status, expected 0; stderr: $(show "$work/err")"
	elif ! same_bytes "$work/out" '42\n'; then
		fail $name "stdout is $(show "$work/out"), expected b'42\\n'"
	else
		pass $name
	fi
}

test_stdin_reaches_command() {
	local name=stdin_reaches_command

	run_msb -- python3 -c 'import sys;print(sys.stdin.read().upper())' <<<hi
	check_no_timeout $name || return
	if [ "$status" -ne 0 ]; then
		fail $name "exit status $status, expected 0; stderr: $(show "$work/err")"
	elif ! same_bytes "$work/out" 'HI\n\n'; then
		fail $name "stdout is $(show "$work/out"), expected b'HI\\n\\n'"
	else
		pass $name
	fi
}

# An agent without stdin flow control queued at most 16 MiB of unread stdin
# and dropped the rest, and `msb run` then never closed stdin and hung. The
# command sleeps before it reads, so that 24 MiB piles up.
test_stdin_24mib_slow_reader() {
	local name=stdin_24mib_slow_reader
	local hash

	head -c $((24 * 1024 * 1024)) /dev/urandom >"$work/input"
	hash=$(sha256sum <"$work/input")
	run_msb -- sh -c 'sleep 3; sha256sum' <"$work/input"
	check_no_timeout $name || return
	if [ "$status" -ne 0 ]; then
		fail $name "exit status $status, expected 0; stderr: $(show "$work/err")"
	elif ! same_bytes "$work/out" '%s\n' "$hash"; then
		fail $name "sha256sum in the guest printed $(show "$work/out"), expected $hash"
	else
		pass $name
	fi
	rm -f "$work/input"
}

test_streams_and_exit_3() {
	local name=streams_and_exit_3

	run_msb -- sh -c 'echo out; echo err >&2; exit 3'
	check_no_timeout $name || return
	if [ "$status" -ne 3 ]; then
		fail $name "exit status $status, expected 3; stderr: $(show "$work/err")"
	elif ! same_bytes "$work/out" 'out\n'; then
		fail $name "stdout is $(show "$work/out"), expected b'out\\n'"
	elif ! same_bytes "$work/err" 'err\n'; then
		fail $name "stderr is $(show "$work/err"), expected b'err\\n'"
	else
		pass $name
	fi
}

# Checks that a shell killing itself with SIGNAL makes msb exit with CODE.
expect_signal_status() {
	local name=$1 signal=$2 code=$3

	run_msb -- sh -c "kill -$signal \$\$"
	check_no_timeout "$name" || return
	if [ "$status" -ne "$code" ]; then
		fail "$name" "exit status $status, expected $code; stderr: $(show "$work/err")"
	else
		pass "$name"
	fi
}

test_missing_program_127() {
	local name=missing_program_127

	run_msb -- /nonexistent
	check_no_timeout $name || return
	if [ "$status" -ne 127 ]; then
		fail $name "exit status $status, expected 127; stderr: $(show "$work/err")"
	elif ! grep -q /nonexistent "$work/err"; then
		fail $name "stderr does not mention /nonexistent: $(show "$work/err")"
	else
		pass $name
	fi
}

test_workdir_missing() {
	local name=workdir_missing

	run_msb --workdir /nope -- pwd
	check_no_timeout $name || return
	if [ "$status" -eq 0 ]; then
		fail $name "exit status 0, expected non-zero; stdout: $(show "$work/out")"
	elif [ "$status" -ne 125 ]; then
		fail $name "exit status $status, expected 125 (a start failure); stderr: $(show "$work/err")"
	elif ! grep -q /nope "$work/err"; then
		fail $name "stderr does not name /nope: $(show "$work/err")"
	else
		pass $name
	fi
}

test_env_values_exact() {
	local name=env_values_exact
	local expected="['x=y==', '{\"k\":\"v w\"}', '', 'line one\\nline two', 'from the caller']"

	COPIED_VALUE='from the caller' run_msb \
		-e 'A=x=y==' -e 'Q={"k":"v w"}' -e 'E=' -e $'NL=line one\nline two' -e COPIED_VALUE -- \
		python3 -c 'import os; print(repr([os.environ[k] for k in ("A", "Q", "E", "NL", "COPIED_VALUE")]))'
	check_no_timeout $name || return
	if [ "$status" -ne 0 ]; then
		fail $name "exit status $status, expected 0; stderr: $(show "$work/err")"
	elif ! same_bytes "$work/out" '%s\n' "$expected"; then
		fail $name "the guest saw $(show "$work/out"), expected $expected"
	else
		pass $name
	fi
}

# A single argument or environment string is limited to 128 KiB by Linux
# (MAX_ARG_STRLEN), so the 5 MB request is 40 variables of 120,000 bytes and
# one larger variable, which the error must name. The stack limit is raised
# in a subshell because the kernel caps the total of arguments and
# environment at a quarter of it.
test_oversized_env_rejected() {
	local name=oversized_env_rejected
	local filler huge before after start end
	local args=()

	filler=$(head -c 120000 /dev/zero | tr '\0' v)
	huge=$(head -c 130000 /dev/zero | tr '\0' h)
	for i in $(seq 1 40); do
		args+=(-e "FILL_$i=$filler")
	done
	args+=(-e "HUGE_VALUE=$huge")

	before=$(ls -A "$SANDBOXES_DIR" 2>/dev/null)
	run_count=$((run_count + 1))
	start=$(date +%s%N)
	(
		ulimit -s 65536 &&
			exec timeout -k 10 "$MSB_TIMEOUT_S" "$MSB" run --name "$NAME_PREFIX-$run_count" "${args[@]}" -- true
	) >"$work/out" 2>"$work/err"
	status=$?
	end=$(date +%s%N)
	elapsed_ms=$(((end - start) / 1000000))
	after=$(ls -A "$SANDBOXES_DIR" 2>/dev/null)

	if [ "$status" -ne 2 ]; then
		fail $name "exit status $status, expected 2; stderr: $(show "$work/err")"
	elif ! grep -q HUGE_VALUE "$work/err"; then
		fail $name "stderr does not name HUGE_VALUE: $(show "$work/err")"
	elif [ "$elapsed_ms" -ge 1000 ]; then
		fail $name "took $elapsed_ms ms, expected well under 1 s (no boot)"
	elif [ "$before" != "$after" ]; then
		fail $name "the sandboxes directory changed: before [$before], after [$after]"
	else
		pass $name
	fi
}

# Lists qemu processes whose -name belongs to this run's sandboxes.
list_our_qemu() {
	local pid cmdline

	for pid in $(pgrep -f qemu-system); do
		cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
		case $cmdline in
		*"msb-$NAME_PREFIX-"*) echo "$pid" ;;
		esac
	done
}

test_nothing_left_behind() {
	local name=nothing_left_behind
	local dirs qemu

	dirs=$(cd "$SANDBOXES_DIR" 2>/dev/null && ls -d "$NAME_PREFIX"-* 2>/dev/null)
	qemu=$(list_our_qemu)
	if [ -n "$dirs" ]; then
		fail $name "sandbox directories left in $SANDBOXES_DIR: ${dirs//$'\n'/ }"
	elif [ -n "$qemu" ]; then
		fail $name "qemu processes left running: pids ${qemu//$'\n'/ }"
	else
		pass $name
	fi
}

if [ ! -x "$MSB" ]; then
	fail msb_built "$MSB is missing; run make first"
	echo "$passed passed, $failed failed"
	exit 1
fi

suite_start=$(date +%s%N)
test_python_prints_42
test_stdin_reaches_command
test_stdin_24mib_slow_reader
test_streams_and_exit_3
expect_signal_status sigkill_137 9 137
expect_signal_status sigterm_143 TERM 143
test_missing_program_127
test_workdir_missing
test_env_values_exact
test_oversized_env_rejected
echo "# oversized request rejected in $elapsed_ms ms"
test_nothing_left_behind
echo "# $run_count runs of msb took $((($(date +%s%N) - suite_start) / 1000000)) ms"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
