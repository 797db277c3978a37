#!/bin/bash
# End-to-end tests of the stop policies: --idle-timeout stops an idle
# sandbox and spares one with a running exec session, and --max-duration
# stops a sandbox even while a command runs.
#
# The three sandboxes boot at once and are watched together, so the suite
# took about 21 s on a 2-core host under TCG. Each case prints "ok NAME" or "FAIL NAME: detail"; the
# last line is "N passed, N failed". Every msb call runs under `timeout`.
set -uo pipefail
cd "$(dirname "$0")/../.."

MSB=${MSB:-$PWD/build/msb}
MSB_TIMEOUT_S=120
IDLE_NAME="pol-idle-$$"
BUSY_NAME="pol-busy-$$"
MAX_NAME="pol-max-$$"
IDLE_TIMEOUT_S=5
MAX_DURATION_S=6
BUSY_SLEEP_S=12
passed=0
failed=0
background_pids=()

work=$(mktemp -d)

cleanup() {
	local pid name

	for pid in "${background_pids[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for name in "$IDLE_NAME" "$BUSY_NAME" "$MAX_NAME"; do
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

show() {
	/usr/bin/python3 -c 'import sys; print(repr(open(sys.argv[1], "rb").read()[:400]))' "$1"
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# Prints the STATE column of sandbox $1 in `msb ls`, e.g. "running" or
# "stopped (idle timeout)".
ls_state() {
	timeout 30 "$MSB" ls | awk -v n="$1" '$1 == n' | sed -E 's/^[^ ]+ +([a-z]+( \([a-z ]+\))?) .*/\1/'
}

# Prints milliseconds as seconds with one decimal.
seconds() {
	printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100))
}

# Runs `msb create ARGS... NAME` in the background. The exit status goes to
# $work/NAME.status and the time it returned to $work/NAME.ready_ms.
create_in_background() {
	local name=${*: -1}

	(
		timeout "$MSB_TIMEOUT_S" "$MSB" create "$@" >"$work/$name.out" 2>"$work/$name.err"
		echo $? >"$work/$name.status"
		now_ms >"$work/$name.ready_ms"
	) &
	background_pids+=($!)
}

# Runs `msb exec NAME -- sleep SECS` in the background. Its exit status
# goes to $work/NAME.exec_status and the time it returned to
# $work/NAME.exec_end_ms.
sleep_in_background() {
	local name=$1 secs=$2

	(
		timeout "$MSB_TIMEOUT_S" "$MSB" exec "$name" -- sleep "$secs" >"$work/$name.exec_out" 2>"$work/$name.exec_err"
		echo $? >"$work/$name.exec_status"
		now_ms >"$work/$name.exec_end_ms"
	) &
	background_pids+=($!)
}

suite_start=$SECONDS
create_in_background --idle-timeout "$IDLE_TIMEOUT_S" "$IDLE_NAME"
create_in_background --idle-timeout "$IDLE_TIMEOUT_S" "$BUSY_NAME"
create_in_background --max-duration "$MAX_DURATION_S" "$MAX_NAME"

# Starts each command as soon as its sandbox is ready, and records when
# each sandbox leaves the running state (NAME.stop_ms) and the state it
# ends in once any draining is over (NAME.stop_state). Polls for at most
# 45 s.
deadline=$(($(now_ms) + 45000))
busy_state_at_10s=""
while [ "$(now_ms)" -lt "$deadline" ]; do
	for name in "$IDLE_NAME" "$BUSY_NAME" "$MAX_NAME"; do
		[ -e "$work/$name.status" ] || continue
		[ "$(cat "$work/$name.status")" -eq 0 ] || continue
		if [ "$name" != "$IDLE_NAME" ] && [ ! -e "$work/$name.exec_started" ]; then
			touch "$work/$name.exec_started"
			if [ "$name" = "$BUSY_NAME" ]; then
				sleep_in_background "$name" "$BUSY_SLEEP_S"
			else
				sleep_in_background "$name" 30
			fi
		fi
		[ -e "$work/$name.stop_state" ] && continue
		state=$(ls_state "$name")
		case $state in
		running) ;;
		draining*)
			[ -e "$work/$name.stop_ms" ] || now_ms >"$work/$name.stop_ms"
			;;
		*)
			[ -e "$work/$name.stop_ms" ] || now_ms >"$work/$name.stop_ms"
			echo "$state" >"$work/$name.stop_state"
			;;
		esac
	done
	if [ -z "$busy_state_at_10s" ] && [ -e "$work/$BUSY_NAME.ready_ms" ] &&
		[ "$(now_ms)" -ge $(($(cat "$work/$BUSY_NAME.ready_ms") + 10000)) ]; then
		busy_state_at_10s=$(ls_state "$BUSY_NAME")
	fi
	done_count=0
	for name in "$IDLE_NAME" "$BUSY_NAME" "$MAX_NAME"; do
		if [ -e "$work/$name.stop_state" ] ||
			{ [ -e "$work/$name.status" ] && [ "$(cat "$work/$name.status")" -ne 0 ]; }; then
			done_count=$((done_count + 1))
		fi
	done
	[ $done_count -eq 3 ] && break
	sleep 0.2
done

# Fails case $1 and returns non-zero unless sandbox $2 was created and
# stopped within the polling time.
check_created_and_stopped() {
	if [ ! -e "$work/$2.status" ] || [ "$(cat "$work/$2.status")" -ne 0 ]; then
		fail "$1" "msb create $2 failed: status $(cat "$work/$2.status" 2>/dev/null), stderr $(show "$work/$2.err")"
		return 1
	fi
	if [ ! -e "$work/$2.stop_state" ]; then
		fail "$1" "$2 still shows '$(ls_state "$2")' 45 s after the creates began"
		return 1
	fi
	return 0
}

test_idle_timeout_stops_idle() {
	local name=idle_timeout_stops_idle after_ms

	check_created_and_stopped $name "$IDLE_NAME" || return
	after_ms=$(($(cat "$work/$IDLE_NAME.stop_ms") - $(cat "$work/$IDLE_NAME.ready_ms")))
	echo "# $IDLE_NAME left the running state $(seconds "$after_ms") s after create returned"
	if [ "$(cat "$work/$IDLE_NAME.stop_state")" != "stopped (idle timeout)" ]; then
		fail $name "state is '$(cat "$work/$IDLE_NAME.stop_state")', expected 'stopped (idle timeout)'"
	elif [ "$after_ms" -lt $(((IDLE_TIMEOUT_S - 1) * 1000)) ] || [ "$after_ms" -gt $(((IDLE_TIMEOUT_S + 4) * 1000)) ]; then
		fail $name "stopped $(seconds "$after_ms") s after boot, expected $((IDLE_TIMEOUT_S - 1))-$((IDLE_TIMEOUT_S + 4)) s"
	else
		pass $name
	fi
}

test_idle_timeout_spares_busy() {
	local name=idle_timeout_spares_busy exec_status after_sleep_ms

	check_created_and_stopped $name "$BUSY_NAME" || return
	exec_status=$(cat "$work/$BUSY_NAME.exec_status" 2>/dev/null)
	if [ "$busy_state_at_10s" != running ]; then
		fail $name "10 s after boot, while 'sleep $BUSY_SLEEP_S' ran, the state was '$busy_state_at_10s', expected running"
		return
	fi
	if [ "$exec_status" != 0 ]; then
		fail $name "'msb exec -- sleep $BUSY_SLEEP_S' exited with '$exec_status', expected 0; stderr $(show "$work/$BUSY_NAME.exec_err")"
		return
	fi
	after_sleep_ms=$(($(cat "$work/$BUSY_NAME.stop_ms") - $(cat "$work/$BUSY_NAME.exec_end_ms")))
	echo "# $BUSY_NAME left the running state $(seconds "$after_sleep_ms") s after the sleep ended"
	if [ "$(cat "$work/$BUSY_NAME.stop_state")" != "stopped (idle timeout)" ]; then
		fail $name "state is '$(cat "$work/$BUSY_NAME.stop_state")', expected 'stopped (idle timeout)'"
	elif [ "$after_sleep_ms" -lt $(((IDLE_TIMEOUT_S - 2) * 1000)) ] || [ "$after_sleep_ms" -gt $(((IDLE_TIMEOUT_S + 4) * 1000)) ]; then
		fail $name "stopped $(seconds "$after_sleep_ms") s after the sleep ended, expected $((IDLE_TIMEOUT_S - 2))-$((IDLE_TIMEOUT_S + 4)) s"
	else
		pass $name
	fi
}

test_max_duration_stops_busy() {
	local name=max_duration_stops_busy after_ms exec_status exec_ms

	check_created_and_stopped $name "$MAX_NAME" || return
	after_ms=$(($(cat "$work/$MAX_NAME.stop_ms") - $(cat "$work/$MAX_NAME.ready_ms")))
	echo "# $MAX_NAME left the running state $(seconds "$after_ms") s after create returned"
	exec_status=$(cat "$work/$MAX_NAME.exec_status" 2>/dev/null)
	if [ "$(cat "$work/$MAX_NAME.stop_state")" != "stopped (max duration)" ]; then
		fail $name "state is '$(cat "$work/$MAX_NAME.stop_state")', expected 'stopped (max duration)'"
	elif [ "$after_ms" -gt $(((MAX_DURATION_S + 3) * 1000)) ]; then
		fail $name "stopped $(seconds "$after_ms") s after create returned, expected at most $((MAX_DURATION_S + 3)) s"
	elif [ -z "$exec_status" ]; then
		fail $name "'msb exec -- sleep 30' still runs after the sandbox stopped"
	elif [ "$exec_status" -eq 0 ]; then
		fail $name "'msb exec -- sleep 30' exited 0 although the sandbox stopped under it"
	else
		exec_ms=$(($(cat "$work/$MAX_NAME.exec_end_ms") - $(cat "$work/$MAX_NAME.stop_ms")))
		if [ "$exec_ms" -gt 3000 ]; then
			fail $name "'msb exec' returned $(seconds "$exec_ms") s after the sandbox stopped, expected at most 3 s"
		else
			pass $name
		fi
	fi
}

# Waits for the background execs, which end once their sandboxes stop.
for name in "$BUSY_NAME" "$MAX_NAME"; do
	for _ in $(seq 1 50); do
		[ -e "$work/$name.exec_started" ] || break
		[ -e "$work/$name.exec_status" ] && break
		sleep 0.1
	done
done

test_idle_timeout_stops_idle
test_idle_timeout_spares_busy
test_max_duration_stops_busy
echo "# suite took $((SECONDS - suite_start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
