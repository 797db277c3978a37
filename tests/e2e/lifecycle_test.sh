#!/bin/bash
# End-to-end tests of a long-lived sandbox: create, exec, stop and start,
# kill, a crash of the sandbox process, rm, logs, and a boot failure.
#
# One sandbox carries most cases, so the suite boots few VMs (seconds each
# under TCG). Each case prints "ok NAME" or "FAIL NAME: detail"; the last
# line is "N passed, N failed". Every msb call runs under `timeout`, so a
# hang fails its case instead of stopping the suite.
set -uo pipefail
cd "$(dirname "$0")/../.."

MSB=${MSB:-$PWD/build/msb}
MSB_TIMEOUT_S=120
NAME="lc-test-$$"
RACE_NAME="lc-race-$$"
BOOT_FAIL_NAME="lc-bootfail-$$"
CPUS=2
MEMORY_MIB=640
passed=0
failed=0
follower_pids=()

work=$(mktemp -d)

cleanup() {
	local pid name

	for pid in "${follower_pids[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for name in "$NAME" "$RACE_NAME" "$BOOT_FAIL_NAME"; do
		timeout 60 "$MSB" rm --force "$name" >/dev/null 2>&1
	done
	rm -rf "$work"
}
trap cleanup EXIT
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
	/usr/bin/python3 -c 'import sys; print(repr(open(sys.argv[1], "rb").read()[:400]))' "$1"
}

# Runs `msb ARGS...` with stdout and stderr in $work/out and $work/err,
# and sets status (124 when the timeout hit).
run_msb() {
	timeout "$MSB_TIMEOUT_S" "$MSB" "$@" >"$work/out" 2>"$work/err"
	status=$?
}

# Describes the last run for a failure message.
last_run() {
	echo "exit status $status, stdout $(show "$work/out"), stderr $(show "$work/err")"
}

# Prints the `msb ls` row of sandbox $1, or nothing when it is not listed.
ls_row() {
	timeout 30 "$MSB" ls | awk -v n="$1" '$1 == n'
}

# Prints the STATE column of sandbox $1 in `msb ls`, e.g. "running" or
# "stopped (idle timeout)".
ls_state() {
	ls_row "$1" | sed -E 's/^[^ ]+ +([a-z]+( \([a-z ]+\))?) .*/\1/'
}

# Prints field $2 of `msb inspect $1`.
inspect_field() {
	timeout 30 "$MSB" inspect "$1" |
		/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2"
}

# Waits up to $3 seconds for sandbox $1 to show state $2 in `msb ls`, and
# returns non-zero when it does not.
wait_for_state() {
	local deadline=$((SECONDS + $3))

	while [ "$(ls_state "$1")" != "$2" ]; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.2
	done
	return 0
}

# Prints the pids of the QEMU processes of sandbox $1: those whose argv
# contains "msb-$1" as a whole argument (QEMU's -name).
qemu_pids() {
	/usr/bin/python3 - "msb-$1" <<'EOF'
import glob, os, sys

for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        with open(path, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        continue
    if b"qemu-system" in os.path.basename(argv[0]) and sys.argv[1].encode() in argv:
        print(path.split("/")[2])
EOF
}

# Checks that `msb exec NAME -- echo probe` works, for cases that restart
# the sandbox.
exec_works() {
	run_msb exec "$NAME" -- echo probe
	[ "$status" -eq 0 ] && [ "$(cat "$work/out")" = probe ]
}

# ---- Create, ls and exec ----

test_create_prints_name() {
	local name=create_prints_name

	run_msb create --cpus "$CPUS" --memory "$MEMORY_MIB" -e GREETING=hi -w /tmp "$NAME"
	if [ "$status" -ne 0 ]; then
		fail $name "$(last_run)"
		return 1
	fi
	if [ "$(cat "$work/out")" != "$NAME" ]; then
		fail $name "stdout is $(show "$work/out"), expected the name $NAME"
	else
		pass $name
	fi
	return 0
}

test_ls_running_row() {
	local name=ls_running_row row accel cols

	row=$(ls_row "$NAME")
	accel=$(inspect_field "$NAME" accelerator)
	# Columns: NAME STATE IMAGE CPUS MEMORY UPTIME ACCEL.
	read -r -a cols <<<"$row"
	if [ -z "$row" ]; then
		fail $name "msb ls has no row for $NAME"
	elif [ "${cols[1]}" != running ]; then
		fail $name "state is '${cols[1]}', expected running; row: $row"
	elif [ "${cols[3]}" != "$CPUS" ]; then
		fail $name "CPUS is '${cols[3]}', expected $CPUS; row: $row"
	elif [ "${cols[4]}" != "${MEMORY_MIB}M" ]; then
		fail $name "MEMORY is '${cols[4]}', expected ${MEMORY_MIB}M; row: $row"
	elif [ "${cols[6]}" != kvm ] && [ "${cols[6]}" != tcg ]; then
		fail $name "ACCEL is '${cols[6]}', expected kvm or tcg; row: $row"
	elif [ "${cols[6]}" != "$accel" ]; then
		fail $name "ACCEL is '${cols[6]}' but msb inspect says '$accel'; row: $row"
	else
		pass $name
	fi
}

test_exec_sandbox_env_workdir() {
	local name=exec_sandbox_env_workdir

	# shellcheck disable=SC2016 # expanded in the guest
	run_msb exec "$NAME" -- sh -c 'echo "$GREETING"; pwd'
	if [ "$status" -ne 0 ]; then
		fail $name "$(last_run)"
	elif [ "$(cat "$work/out")" != "$(printf 'hi\n/tmp')" ]; then
		fail $name "stdout is $(show "$work/out"), expected b'hi\\n/tmp\\n'"
	else
		pass $name
	fi
}

test_exec_overrides_env_workdir() {
	local name=exec_overrides_env_workdir

	# shellcheck disable=SC2016 # expanded in the guest
	run_msb exec -e GREETING=yo -w / "$NAME" -- sh -c 'echo "$GREETING"; pwd'
	if [ "$status" -ne 0 ]; then
		fail $name "$(last_run)"
	elif [ "$(cat "$work/out")" != "$(printf 'yo\n/')" ]; then
		fail $name "stdout is $(show "$work/out"), expected b'yo\\n/\\n'"
	else
		pass $name
	fi
}

test_exec_20_in_a_row() {
	local name=exec_20_in_a_row i

	for i in $(seq 1 20); do
		# shellcheck disable=SC2016 # expanded in the guest
		run_msb exec "$NAME" -- sh -c 'echo "run $1"; echo "err $1" >&2' sh "$i"
		if [ "$status" -ne 0 ]; then
			fail $name "exec $i: $(last_run)"
			return
		fi
		if [ "$(cat "$work/out")" != "run $i" ] || [ "$(cat "$work/err")" != "err $i" ]; then
			fail $name "exec $i: $(last_run), expected stdout 'run $i' and stderr 'err $i'"
			return
		fi
	done
	pass $name
}

# ---- Logs ----

test_logs_runtime() {
	local name=logs_runtime dir

	dir=$(inspect_field "$NAME" dir)
	run_msb logs "$NAME"
	if [ "$status" -ne 0 ]; then
		fail $name "$(last_run)"
	elif [ ! -s "$work/out" ]; then
		fail $name "msb logs printed nothing"
	elif ! cmp -s "$work/out" "$dir/runtime.log"; then
		fail $name "output differs from $dir/runtime.log: $(show "$work/out")"
	elif ! grep -q "ready in" "$work/out"; then
		fail $name "the runtime log has no 'ready in' line: $(show "$work/out")"
	else
		pass $name
	fi
}

test_logs_kernel() {
	local name=logs_kernel dir

	dir=$(inspect_field "$NAME" dir)
	run_msb logs --source kernel "$NAME"
	if [ "$status" -ne 0 ]; then
		fail $name "$(last_run)"
	elif ! cmp -s "$work/out" "$dir/kernel.log"; then
		fail $name "output differs from $dir/kernel.log: $(show "$work/out")"
	else
		pass $name
	fi
}

# The exec prints U+2615 (e2 98 95) in two writes 0.3 s apart, so the
# exec log receives the character split across two chunks.
test_logs_exec_utf8_joined() {
	local name=logs_exec_utf8_joined marker="utf8-case-$$" verdict

	run_msb exec "$NAME" -- sh -c "printf '\\342\\230'; sleep 0.3; printf '\\225\\n'; : $marker"
	if [ "$status" -ne 0 ]; then
		fail $name "exec: $(last_run)"
		return
	fi
	if ! printf '\342\230\225\n' | cmp -s - "$work/out"; then
		fail $name "exec stdout is $(show "$work/out"), expected the bytes e2 98 95 0a"
		return
	fi
	run_msb logs --source exec "$NAME"
	if [ "$status" -ne 0 ]; then
		fail $name "msb logs --source exec: $(last_run)"
		return
	fi
	# Prints "ok" or what is wrong with the session whose start marker
	# names the marker. Session ids are per connection, so the session is
	# the records after that start marker with its id.
	verdict=$(/usr/bin/python3 - "$work/out" "$marker" <<'EOF'
import json, sys

path, marker = sys.argv[1], sys.argv[2]
records = []
with open(path, "rb") as f:
    for number, raw in enumerate(f, 1):
        try:
            record = json.loads(raw)
        except ValueError as e:
            print(f"line {number} is not JSON ({e}): {raw[:200]!r}")
            sys.exit()
        for key in ("t", "s", "d", "id"):
            if key not in record:
                print(f"line {number} lacks key {key!r}: {raw[:200]!r}")
                sys.exit()
        records.append(record)
starts = [i for i, r in enumerate(records)
          if r["s"] == "system" and r["d"].startswith("exec started") and marker in r["d"]]
if len(starts) != 1:
    print(f"{len(starts)} start markers name {marker}, expected 1")
    sys.exit()
session = records[starts[0]]["id"]
stdout = ""
end = None
for r in records[starts[0] + 1:]:
    if r["id"] != session:
        continue
    if r["s"] == "system":
        end = r
        break
    if r["s"] in ("stdout", "output"):
        stdout += r["d"]
if end is None:
    print(f"no end marker for session {session}")
elif "exited" not in end["d"] or "code 0" not in end["d"]:
    print(f"the end marker is {end['d']!r}, expected 'exec exited: code 0'")
elif "\ufffd" in stdout:
    print(f"stdout has a replacement character: {stdout!r}")
elif stdout != "\u2615\n":
    print(f"stdout records join to {stdout!r}, expected '\\u2615\\n'")
else:
    print("ok")
EOF
)
	if [ "$verdict" != ok ]; then
		fail $name "$verdict"
	else
		pass $name
	fi
}

# Follows the runtime log and the exec log at once, runs one exec, and
# checks that both followers print the new lines while still running.
test_logs_follow() {
	local name=logs_follow marker="follow-case-$$" runtime_pid exec_pid before deadline

	timeout 60 "$MSB" logs -f "$NAME" >"$work/follow-runtime" 2>&1 &
	runtime_pid=$!
	timeout 60 "$MSB" logs -f --source exec "$NAME" >"$work/follow-exec" 2>&1 &
	exec_pid=$!
	follower_pids+=("$runtime_pid" "$exec_pid")
	sleep 1
	before=$(grep -c "client connected" "$work/follow-runtime")

	run_msb exec "$NAME" -- echo "$marker"
	if [ "$status" -ne 0 ]; then
		fail $name "exec: $(last_run)"
		return
	fi
	deadline=$((SECONDS + 5))
	while [ $SECONDS -lt $deadline ]; do
		if grep -q "\"d\": \"$marker\\\\n\"" "$work/follow-exec" &&
			[ "$(grep -c "client connected" "$work/follow-runtime")" -gt "$before" ]; then
			break
		fi
		sleep 0.2
	done

	if ! kill -0 "$exec_pid" 2>/dev/null || ! kill -0 "$runtime_pid" 2>/dev/null; then
		fail $name "a follower exited; runtime: $(show "$work/follow-runtime"), exec: $(show "$work/follow-exec")"
	elif ! grep -q "\"d\": \"$marker\\\\n\"" "$work/follow-exec"; then
		fail $name "msb logs -f --source exec did not print the exec's stdout record within 5 s: $(show "$work/follow-exec")"
	elif [ "$(grep -c "client connected" "$work/follow-runtime")" -le "$before" ]; then
		fail $name "msb logs -f did not print the new 'client connected' line within 5 s: $(show "$work/follow-runtime")"
	else
		pass $name
	fi
	kill "$runtime_pid" "$exec_pid" 2>/dev/null
	wait "$runtime_pid" "$exec_pid" 2>/dev/null
	follower_pids=()
}

# ---- Stop, start, kill ----

test_stop_reason_stop() {
	local name=stop_reason_stop state reason pid

	run_msb exec "$NAME" -- sh -c "echo kept-$$ > /root/kept.txt && sync"
	if [ "$status" -ne 0 ]; then
		fail $name "writing /root/kept.txt: $(last_run)"
		return
	fi
	run_msb stop "$NAME"
	if [ "$status" -ne 0 ]; then
		fail $name "msb stop: $(last_run)"
		return
	fi
	state=$(inspect_field "$NAME" state)
	reason=$(inspect_field "$NAME" stop_reason)
	pid=$(inspect_field "$NAME" pid)
	if [ "$(ls_state "$NAME")" != "stopped (stop)" ]; then
		fail $name "msb ls shows '$(ls_state "$NAME")', expected 'stopped (stop)'"
	elif [ "$state" != stopped ] || [ "$reason" != stop ]; then
		fail $name "msb inspect shows state '$state' reason '$reason', expected stopped and stop"
	elif [ "$pid" != 0 ]; then
		fail $name "msb inspect shows pid $pid for a stopped sandbox, expected 0"
	else
		pass $name
	fi
}

test_exec_stopped_fails() {
	local name=exec_stopped_fails

	run_msb exec "$NAME" -- echo should-not-run
	if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
		fail $name "$(last_run), expected a prompt non-zero exit"
	elif [ -s "$work/out" ]; then
		fail $name "stdout is not empty: $(show "$work/out")"
	elif ! grep -q "is stopped (stop); start it with" "$work/err"; then
		fail $name "stderr does not say the sandbox is stopped and how to start it: $(show "$work/err")"
	else
		pass $name
	fi
}

test_start_keeps_file() {
	local name=start_keeps_file

	run_msb start "$NAME"
	if [ "$status" -ne 0 ]; then
		fail $name "msb start: $(last_run)"
		return
	fi
	if [ "$(ls_state "$NAME")" != running ]; then
		fail $name "msb ls shows '$(ls_state "$NAME")' after start, expected running"
		return
	fi
	run_msb exec "$NAME" -- cat /root/kept.txt
	if [ "$status" -ne 0 ]; then
		fail $name "cat /root/kept.txt: $(last_run)"
	elif [ "$(cat "$work/out")" != "kept-$$" ]; then
		fail $name "/root/kept.txt holds $(show "$work/out"), expected kept-$$"
	else
		pass $name
	fi
}

test_kill_reason_kill() {
	local name=kill_reason_kill state reason

	run_msb kill "$NAME"
	if [ "$status" -ne 0 ]; then
		fail $name "msb kill: $(last_run)"
		return
	fi
	state=$(inspect_field "$NAME" state)
	reason=$(inspect_field "$NAME" stop_reason)
	if [ "$(ls_state "$NAME")" != "stopped (kill)" ]; then
		fail $name "msb ls shows '$(ls_state "$NAME")', expected 'stopped (kill)'"
	elif [ "$state" != stopped ] || [ "$reason" != kill ]; then
		fail $name "msb inspect shows state '$state' reason '$reason', expected stopped and kill"
	elif [ -n "$(qemu_pids "$NAME")" ]; then
		fail $name "QEMU still runs after msb kill: pids $(qemu_pids "$NAME")"
	else
		pass $name
	fi
}

test_start_after_kill() {
	local name=start_after_kill

	run_msb start "$NAME"
	if [ "$status" -ne 0 ]; then
		fail $name "msb start: $(last_run)"
	elif [ "$(ls_state "$NAME")" != running ]; then
		fail $name "msb ls shows '$(ls_state "$NAME")', expected running"
	elif ! exec_works; then
		fail $name "exec after start: $(last_run)"
	else
		pass $name
	fi
}

# ---- A crash of the sandbox process ----

test_kill9_reaps_qemu() {
	local name=kill9_reaps_qemu dir pid qemu deadline

	dir=$(inspect_field "$NAME" dir)
	pid=$(cat "$dir/sandbox.pid" 2>/dev/null)
	qemu=$(qemu_pids "$NAME")
	if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
		fail $name "no live sandbox process in $dir/sandbox.pid (content '$pid')"
		return
	fi
	if [ -z "$qemu" ]; then
		fail $name "no QEMU process with msb-$NAME in its command line before the kill"
		return
	fi
	kill -9 "$pid"
	deadline=$((SECONDS + 5))
	while [ -n "$(qemu_pids "$NAME")" ] && [ $SECONDS -lt $deadline ]; do
		sleep 0.2
	done
	if [ -n "$(qemu_pids "$NAME")" ]; then
		fail $name "QEMU (pids $(qemu_pids "$NAME")) still runs 5 s after kill -9 of sandbox process $pid"
	else
		pass $name
	fi
}

test_kill9_state_crashed() {
	local name=kill9_state_crashed reason

	if ! wait_for_state "$NAME" "crashed (crash)" 5; then
		fail $name "msb ls shows '$(ls_state "$NAME")', expected 'crashed (crash)'"
		return
	fi
	reason=$(inspect_field "$NAME" stop_reason)
	if [ "$(inspect_field "$NAME" state)" != crashed ] || [ "$reason" != crash ]; then
		fail $name "msb inspect shows state '$(inspect_field "$NAME" state)' reason '$reason'"
	else
		pass $name
	fi
}

test_start_after_crash() {
	local name=start_after_crash

	run_msb start "$NAME"
	if [ "$status" -ne 0 ]; then
		fail $name "msb start: $(last_run)"
	elif [ "$(ls_state "$NAME")" != running ]; then
		fail $name "msb ls shows '$(ls_state "$NAME")', expected running"
	elif ! exec_works; then
		fail $name "exec after start: $(last_run)"
	else
		pass $name
	fi
}

# ---- Two creates of one name at the same time ----

test_create_race_one_wins() {
	local name=create_race_one_wins s1 s2 winner loser rows

	timeout "$MSB_TIMEOUT_S" "$MSB" create "$RACE_NAME" >"$work/race1.out" 2>"$work/race1.err" &
	s1=$!
	timeout "$MSB_TIMEOUT_S" "$MSB" create "$RACE_NAME" >"$work/race2.out" 2>"$work/race2.err" &
	s2=$!
	wait "$s1"
	s1=$?
	wait "$s2"
	s2=$?

	if [ "$s1" -eq 0 ] && [ "$s2" -ne 0 ]; then
		winner=1 loser=2
	elif [ "$s2" -eq 0 ] && [ "$s1" -ne 0 ]; then
		winner=2 loser=1
	else
		fail $name "exit statuses $s1 and $s2, expected one 0 and one non-zero; stderr: $(show "$work/race1.err") $(show "$work/race2.err")"
		return
	fi
	rows=$(timeout 30 "$MSB" ls 2>"$work/err")
	status=$?
	if [ "$(cat "$work/race$winner.out")" != "$RACE_NAME" ]; then
		fail $name "the winner printed $(show "$work/race$winner.out"), expected $RACE_NAME"
	elif ! grep -q "already exists" "$work/race$loser.err"; then
		fail $name "the loser's stderr does not say 'already exists': $(show "$work/race$loser.err")"
	elif [ "$status" -ne 0 ]; then
		fail $name "msb ls fails afterwards: exit status $status, stderr $(show "$work/err")"
	elif [ "$(awk -v n="$RACE_NAME" '$1 == n' <<<"$rows" | wc -l)" -ne 1 ]; then
		fail $name "msb ls lists $RACE_NAME $(awk -v n="$RACE_NAME" '$1 == n' <<<"$rows" | wc -l) times, expected once"
	elif [ "$(ls_state "$RACE_NAME")" != running ]; then
		fail $name "the winner's sandbox shows '$(ls_state "$RACE_NAME")', expected running"
	else
		pass $name
	fi
	timeout 60 "$MSB" rm --force "$RACE_NAME" >/dev/null 2>&1
}

# ---- Boot failure ----

test_boot_failure_junk_image() {
	local name=boot_failure_junk_image image="$work/junk.img" dir verdict

	head -c $((4 * 1024 * 1024)) /dev/urandom >"$image"
	run_msb create --image "$image" "$BOOT_FAIL_NAME"
	dir=$(inspect_field "$BOOT_FAIL_NAME" dir)
	if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
		fail $name "$(last_run), expected a prompt non-zero exit"
		return
	fi
	if ! grep -q "failed to boot" "$work/err"; then
		fail $name "stderr does not say 'failed to boot': $(show "$work/err")"
		return
	fi
	if [ -z "$dir" ] || ! grep -qF "$dir" "$work/err"; then
		fail $name "stderr does not name the logs directory '$dir': $(show "$work/err")"
		return
	fi
	verdict=$(/usr/bin/python3 -c '
import json, sys
try:
    error = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print(f"cannot read boot-error.json: {e}")
    sys.exit()
for key in ("stage", "message"):
    if not isinstance(error.get(key), str) or not error[key]:
        print(f"boot-error.json has no non-empty {key!r}: {error!r}")
        sys.exit()
print("ok")' "$dir/boot-error.json")
	if [ "$verdict" != ok ]; then
		fail $name "$verdict"
	elif [ "$(ls_state "$BOOT_FAIL_NAME")" != "crashed (boot failure)" ]; then
		fail $name "msb ls shows '$(ls_state "$BOOT_FAIL_NAME")', expected 'crashed (boot failure)'"
	else
		pass $name
	fi
	timeout 60 "$MSB" rm --force "$BOOT_FAIL_NAME" >/dev/null 2>&1
}

# ---- Remove ----

test_rm_running_needs_force() {
	local name=rm_running_needs_force dir

	dir=$(inspect_field "$NAME" dir)
	run_msb rm "$NAME"
	if [ "$status" -eq 0 ]; then
		fail $name "msb rm of a running sandbox succeeded without --force"
		return
	fi
	if ! grep -q -- "--force" "$work/err"; then
		fail $name "stderr does not point to --force: $(show "$work/err")"
		return
	fi
	if [ "$(ls_state "$NAME")" != running ]; then
		fail $name "after the rejected rm, msb ls shows '$(ls_state "$NAME")', expected running"
		return
	fi
	run_msb rm --force "$NAME"
	if [ "$status" -ne 0 ]; then
		fail $name "msb rm --force: $(last_run)"
	elif [ -n "$(ls_row "$NAME")" ]; then
		fail $name "msb ls still lists it: $(ls_row "$NAME")"
	elif [ -e "$dir" ]; then
		fail $name "its directory $dir still exists"
	elif [ -n "$(qemu_pids "$NAME")" ]; then
		fail $name "QEMU still runs: pids $(qemu_pids "$NAME")"
	else
		pass $name
	fi
}

suite_start=$SECONDS
if test_create_prints_name; then
	test_ls_running_row
	test_exec_sandbox_env_workdir
	test_exec_overrides_env_workdir
	test_exec_20_in_a_row
	test_logs_runtime
	test_logs_kernel
	test_logs_exec_utf8_joined
	test_logs_follow
	test_stop_reason_stop
	test_exec_stopped_fails
	test_start_keeps_file
	test_kill_reason_kill
	test_start_after_kill
	test_kill9_reaps_qemu
	test_kill9_state_crashed
	test_start_after_crash
fi
test_create_race_one_wins
test_boot_failure_junk_image
if [ "$(ls_state "$NAME")" = running ]; then
	test_rm_running_needs_force
else
	fail rm_running_needs_force "$NAME is not running (msb ls shows '$(ls_state "$NAME")')"
fi
echo "# suite took $((SECONDS - suite_start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
