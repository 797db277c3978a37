#!/bin/bash
# End-to-end tests of `msb cp` as a user types it.
#
# One sandbox is booted for all cases and removed at the end. Each case
# prints "ok NAME" or "FAIL NAME: detail"; the last line is
# "N passed, N failed". Every msb call gets `timeout 120`, so that a hang
# fails its case. MSB_TEST_BIG=1 adds a case that copies a 2 GiB file
# each way and checks that msb cp and the sandbox process stay under
# 64 MiB of resident memory (about a minute and 6 GiB of disk).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

MSB=${MSB:-$PWD/build/msb}
MSB_TIMEOUT_S=120
BIG_TIMEOUT_S=600
RSS_LIMIT_KIB=$((64 * 1024))
SANDBOXES_DIR=${MSB_HOME:-$HOME/.msb}/sandboxes
SB="cp-test-$$"
passed=0
failed=0

work=$(mktemp -d)
cleanup() {
	timeout "$MSB_TIMEOUT_S" "$MSB" rm -f "$SB" >/dev/null 2>&1
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
	python3 -c 'import sys; print(repr(open(sys.argv[1], "rb").read()[:400]))' "$1"
}

# Runs `msb cp ARGS...` with stdout and stderr in $work/out and
# $work/err; sets status.
cp_msb() {
	timeout "$MSB_TIMEOUT_S" "$MSB" cp "$@" >"$work/out" 2>"$work/err"
	status=$?
}

# Runs a command in the sandbox.
guest() {
	timeout "$MSB_TIMEOUT_S" "$MSB" exec "$SB" -- "$@"
}

# Checks the last cp_msb call: fails NAME and returns non-zero unless it
# exited with the expected status.
expect_status() {
	local name=$1 expected=$2

	if [ "$status" -eq 124 ]; then
		fail "$name" "msb cp did not finish within $MSB_TIMEOUT_S s; stderr: $(show "$work/err")"
		return 1
	fi
	if [ "$status" -ne "$expected" ]; then
		fail "$name" "exit status $status, expected $expected; stderr: $(show "$work/err")"
		return 1
	fi
	return 0
}

# Prints one line per entry below a directory, given as $1: path, mode,
# mtime, type, and the start of the content's SHA-256 for files or the
# target for symlinks. The same script runs on the host and in the guest.
# Symlink modes are left out because they do not exist on Linux.
# shellcheck disable=SC2016 # expanded by the shell that runs it
LISTING='cd "$1" && find . | LC_ALL=C sort | while IFS= read -r p; do
	t=$(stat -c %F "$p"); m=$(stat -c %a "$p"); extra=
	case $t in
	regular*) extra=$(sha256sum <"$p" | cut -c1-16) ;;
	symbolic*) extra=$(readlink "$p"); m=- ;;
	esac
	echo "$p $m $(stat -c %Y "$p") $t $extra"
done'

host_listing() {
	sh -c "$LISTING" sh "$1"
}

guest_listing() {
	guest sh -c "$LISTING" sh "$1"
}

# Fails NAME unless two listings are equal; shows the first difference.
expect_same_listing() {
	local name=$1 expected=$2 actual=$3

	if [ "$expected" != "$actual" ]; then
		fail "$name" "listings differ: $(diff <(echo "$expected") <(echo "$actual") | head -6 | tr '\n' '|')"
		return 1
	fi
	return 0
}

# Lists everything under $work except the directory $1 and the output
# files of cp_msb, to check that a refused copy wrote nothing outside its
# destination.
snapshot_outside() {
	find "$work" \( -path "$1" -o -path "$work/out" -o -path "$work/err" \) -prune -o -printf '%p %y %s\n' |
		LC_ALL=C sort
}

# A host tree with nested directories, modes, old mtimes and a relative
# symlink inside it.
make_tree() {
	local t=$work/tree

	mkdir -p "$t/sub/deep" "$t/nested/d1/d2"
	printf 'hello\n' >"$t/a.txt"
	: >"$t/empty"
	printf '#!/bin/sh\necho run\n' >"$t/sub/run.sh"
	head -c 100000 /dev/urandom >"$t/sub/deep/x.bin"
	printf 'deep\n' >"$t/nested/d1/d2/f"
	ln -s ../a.txt "$t/sub/link"
	chmod 0600 "$t/a.txt"
	chmod 0755 "$t/sub/run.sh"
	chmod 0750 "$t/sub"
	chmod 0700 "$t/sub/deep"
	touch -h -d '2019-06-01 10:00:00' "$t/sub/link"
	touch -d '2020-01-02 03:04:05' "$t/a.txt" "$t/empty" "$t/sub/run.sh" "$t/sub/deep/x.bin"
	touch -d '2021-02-03 04:05:06' "$t/nested/d1/d2/f" "$t/nested/d1/d2" "$t/nested/d1" "$t/nested"
	touch -d '2022-03-04 05:06:07' "$t/sub/deep" "$t/sub" "$t"
}

test_file_bytes_both_ways() {
	local name=file_bytes_both_ways
	local f want got

	: >"$work/empty.bin"
	head -c $((30 * 1024 * 1024)) /dev/urandom >"$work/random.bin"
	for f in empty.bin random.bin; do
		cp_msb "$work/$f" "$SB:/tmp/$f"
		expect_status $name 0 || return
		cp_msb "$SB:/tmp/$f" "$work/$f.back"
		expect_status $name 0 || return
		want=$(sha256sum <"$work/$f" | cut -d' ' -f1)
		got=$(sha256sum <"$work/$f.back" | cut -d' ' -f1)
		if [ "$want" != "$got" ]; then
			fail $name "$f came back with SHA-256 $got, expected $want"
			return
		fi
		got=$(guest sha256sum "/tmp/$f" | cut -d' ' -f1)
		if [ "$want" != "$got" ]; then
			fail $name "$f in the guest has SHA-256 $got, expected $want"
			return
		fi
	done
	pass $name
}

test_tree_in_keeps_attrs() {
	local name=tree_in_keeps_attrs

	guest mkdir -p /tmp/in
	cp_msb "$work/tree" "$SB:/tmp/in"
	expect_status $name 0 || return
	expect_same_listing $name "$(host_listing "$work/tree")" "$(guest_listing /tmp/in/tree)" || return
	pass $name
}

test_tree_out_keeps_attrs() {
	local name=tree_out_keeps_attrs

	cp_msb "$SB:/tmp/in/tree" "$work/tree.back"
	expect_status $name 0 || return
	expect_same_listing $name "$(host_listing "$work/tree")" "$(host_listing "$work/tree.back")" || return
	pass $name
}

test_symlinks_stay_links() {
	local name=symlinks_stay_links
	local target

	target=$(guest readlink /tmp/in/tree/sub/link)
	if [ "$target" != ../a.txt ]; then
		fail $name "the guest link points to \"$target\", expected \"../a.txt\""
	elif [ ! -L "$work/tree.back/sub/link" ]; then
		fail $name "$work/tree.back/sub/link is not a symlink on the host"
	elif [ "$(readlink "$work/tree.back/sub/link")" != ../a.txt ]; then
		fail $name "the host link points to \"$(readlink "$work/tree.back/sub/link")\", expected \"../a.txt\""
	else
		pass $name
	fi
}

test_tar_out_matches() {
	local name=tar_out_matches
	local members

	cp_msb "$SB:/tmp/in/tree" -
	expect_status $name 0 || return
	members=$(tar -tvf "$work/out" 2>&1)
	if ! grep -q '^drwxr-x--- .* tree/sub/$' <<<"$members"; then
		fail $name "tar -tv shows no 0750 directory tree/sub/: $members"
		return
	fi
	if ! grep -q '^l.* tree/sub/link -> \.\./a\.txt$' <<<"$members"; then
		fail $name "tar -tv shows no symlink tree/sub/link -> ../a.txt: $members"
		return
	fi
	mkdir "$work/tar.x"
	if ! tar -xf "$work/out" -C "$work/tar.x" 2>"$work/tar.err"; then
		fail $name "GNU tar could not extract the stream: $(show "$work/tar.err")"
		return
	fi
	expect_same_listing $name "$(host_listing "$work/tree")" "$(host_listing "$work/tar.x/tree")" || return
	pass $name
}

test_tar_in_long_name() {
	local name=tar_in_long_name
	local long

	long=$(printf 'n%.0s' $(seq 1 150))
	mkdir -p "$work/tarsrc/dir"
	printf 'long\n' >"$work/tarsrc/dir/$long"
	chmod 0640 "$work/tarsrc/dir/$long"
	touch -d '2018-07-08 09:10:11' "$work/tarsrc/dir/$long" "$work/tarsrc/dir"
	guest mkdir -p /tmp/tin
	tar -C "$work/tarsrc" -c dir >"$work/in.tar"
	cp_msb - "$SB:/tmp/tin" <"$work/in.tar"
	expect_status $name 0 || return
	expect_same_listing $name "$(host_listing "$work/tarsrc/dir")" "$(guest_listing /tmp/tin/dir)" || return
	pass $name
}

test_into_dir_or_new_name() {
	local name=into_dir_or_new_name
	local got

	guest mkdir -p /tmp/dest
	cp_msb "$work/tree/a.txt" "$SB:/tmp/dest"
	expect_status $name 0 || return
	cp_msb "$work/tree/a.txt" "$SB:/tmp/dest/renamed.txt"
	expect_status $name 0 || return
	cp_msb "$work/tree/nested" "$SB:/tmp/newdir"
	expect_status $name 0 || return
	got=$(guest sh -c 'cat /tmp/dest/a.txt /tmp/dest/renamed.txt; ls /tmp/newdir' | tr '\n' ' ')
	if [ "$got" != "hello hello d1 " ]; then
		fail $name "the guest has \"$got\", expected \"hello hello d1 \""
		return
	fi

	mkdir "$work/existing"
	cp_msb "$SB:/tmp/dest/a.txt" "$work/existing"
	expect_status $name 0 || return
	cp_msb "$SB:/tmp/dest/a.txt" "$work/existing/other.txt"
	expect_status $name 0 || return
	cp_msb "$SB:/tmp/newdir" "$work/existing"
	expect_status $name 0 || return
	cp_msb "$SB:/tmp/newdir" "$work/fresh"
	expect_status $name 0 || return
	got=$(cd "$work" && { cat existing/a.txt existing/other.txt; ls existing/newdir; ls fresh; } | tr '\n' ' ')
	if [ "$got" != "hello hello d1 d1 " ]; then
		fail $name "the host has \"$got\", expected \"hello hello d1 d1 \""
		return
	fi
	pass $name
}

test_missing_guest_path() {
	local name=missing_guest_path

	cp_msb "$SB:/tmp/no-such-file" "$work/missing"
	expect_status $name 125 || return
	if ! grep -q /tmp/no-such-file "$work/err"; then
		fail $name "stderr does not name /tmp/no-such-file: $(show "$work/err")"
	elif [ -e "$work/missing" ]; then
		fail $name "$work/missing was created"
	else
		pass $name
	fi
}

test_readonly_guest_dest() {
	local name=readonly_guest_dest

	cp_msb "$work/tree/a.txt" "$SB:/proc/x"
	expect_status $name 125 || return
	if ! grep -q '^msb: .*/proc/x' "$work/err"; then
		fail $name "stderr does not name /proc/x: $(show "$work/err")"
	else
		pass $name
	fi
}

# Writes a tar file $1 with members given as Python tuples (name, type,
# data or link target), type being f (file), l (symlink), h (hard link)
# or p (fifo).
make_tar() {
	python3 - "$@" <<'EOF'
import io, sys, tarfile
types = {"l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE, "p": tarfile.FIFOTYPE}
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for spec in sys.argv[2:]:
        name, kind, value = eval(spec)
        info = tarfile.TarInfo(name)
        if kind == "f":
            info.size = len(value)
            t.addfile(info, io.BytesIO(value))
        else:
            info.type = types[kind]
            info.linkname = value or ""
            t.addfile(info)
EOF
}

# Extracts tar file $2 into the guest's /tmp/x and expects a rejection
# naming $3; then checks that the guest path $4 does not exist.
expect_tar_rejected() {
	local name=$1 tar=$2 member=$3 outside=$4

	guest mkdir -p /tmp/x
	cp_msb - "$SB:/tmp/x" <"$tar"
	expect_status "$name" 125 || return
	if ! grep -qF "refusing \"$member\"" "$work/err"; then
		fail "$name" "stderr does not refuse \"$member\": $(show "$work/err")"
	elif guest test -e "$outside"; then
		fail "$name" "$outside was created in the guest"
	else
		pass "$name"
	fi
}

test_tar_in_rejects_hostile() {
	make_tar "$work/dotdot.tar" '("ok.txt", "f", b"ok")' '("../evil", "f", b"evil")'
	expect_tar_rejected tar_in_rejects_dotdot "$work/dotdot.tar" ../evil /tmp/evil
	make_tar "$work/abs.tar" '("/abs-evil", "f", b"evil")'
	expect_tar_rejected tar_in_rejects_absolute "$work/abs.tar" /abs-evil /abs-evil
	make_tar "$work/via-link.tar" '("lnk", "l", "/etc")' '("lnk/evil", "f", b"evil")'
	expect_tar_rejected tar_in_rejects_via_link "$work/via-link.tar" lnk/evil /etc/evil
	make_tar "$work/hard.tar" '("hard", "h", "/etc/passwd")'
	expect_tar_rejected tar_in_rejects_hardlink "$work/hard.tar" hard /tmp/x/hard
	make_tar "$work/fifo.tar" '("fifo", "p", None)'
	expect_tar_rejected tar_in_rejects_fifo "$work/fifo.tar" fifo /tmp/x/fifo
}

# (b): a guest symlink to an absolute path is not created on the host.
test_guest_link_outside() {
	local name=guest_link_outside
	local before after

	guest sh -c 'mkdir -p /tmp/hb && echo a >/tmp/hb/a && ln -sfn /etc /tmp/hb/out'
	mkdir "$work/hb.dest"
	before=$(snapshot_outside "$work/hb.dest")
	cp_msb "$SB:/tmp/hb" "$work/hb.dest"
	after=$(snapshot_outside "$work/hb.dest")
	expect_status $name 125 || return
	if ! grep -q 'refusing symlink .*/tmp/hb/out -> "/etc"' "$work/err"; then
		fail $name "stderr does not refuse the symlink /tmp/hb/out: $(show "$work/err")"
	elif [ -e "$work/hb.dest/hb/out" ] || [ -L "$work/hb.dest/hb/out" ]; then
		fail $name "$work/hb.dest/hb/out was created"
	elif [ "$before" != "$after" ]; then
		fail $name "files outside the destination changed"
	else
		pass $name
	fi
}

# A relative guest symlink that climbs out of the copied tree.
test_guest_link_climbs_out() {
	local name=guest_link_climbs_out

	guest sh -c 'mkdir -p /tmp/hu/d && ln -sfn ../../x /tmp/hu/d/up'
	cp_msb "$SB:/tmp/hu" "$work/hu.dest"
	expect_status $name 125 || return
	if ! grep -q 'refusing symlink .*/tmp/hu/d/up' "$work/err"; then
		fail $name "stderr does not refuse the symlink /tmp/hu/d/up: $(show "$work/err")"
	elif [ -L "$work/hu.dest/d/up" ]; then
		fail $name "$work/hu.dest/d/up was created"
	else
		pass $name
	fi
}

# (c): a symlink already in the host destination is not written through.
test_host_link_not_followed() {
	local name=host_link_not_followed

	guest sh -c 'mkdir -p /tmp/hc/sub && echo secret >/tmp/hc/sub/file'
	mkdir -p "$work/hc.dest/hc" "$work/elsewhere"
	ln -s "$work/elsewhere" "$work/hc.dest/hc/sub"
	cp_msb "$SB:/tmp/hc" "$work/hc.dest"
	if [ "$status" -eq 124 ]; then
		fail $name "msb cp did not finish within $MSB_TIMEOUT_S s"
	elif [ -n "$(ls -A "$work/elsewhere")" ]; then
		fail $name "$work/elsewhere received $(ls -A "$work/elsewhere")"
	elif [ "$status" -ne 125 ] || ! grep -q 'hc/sub is a symlink' "$work/err"; then
		fail $name "exit status $status, expected 125 with a message about hc/sub; stderr: $(show "$work/err")"
	else
		pass $name
	fi
}

test_guest_disk_full() {
	local name=guest_disk_full

	guest sh -c 'mkdir -p /mnt/small && mount -t tmpfs -o size=1m tmpfs /mnt/small'
	head -c $((4 * 1024 * 1024)) /dev/urandom >"$work/four.bin"
	cp_msb "$work/four.bin" "$SB:/mnt/small/four.bin"
	expect_status $name 125 || return
	if ! grep -q '/mnt/small/four.bin.*No space left on device' "$work/err"; then
		fail $name "stderr does not report ENOSPC for /mnt/small/four.bin: $(show "$work/err")"
	elif ! guest true; then
		fail $name "msb exec $SB -- true failed after the copy"
	elif guest test -e /mnt/small/four.bin; then
		fail $name "the partial file /mnt/small/four.bin was left in the guest"
	else
		pass $name
	fi
}

# Reading /proc/1/mem at offset 0 fails with EIO in the guest.
test_guest_read_error() {
	local name=guest_read_error

	cp_msb "$SB:/proc/1/mem" "$work/mem"
	expect_status $name 125 || return
	if ! grep -q '/proc/1/mem' "$work/err"; then
		fail $name "stderr does not name /proc/1/mem: $(show "$work/err")"
	elif [ -e "$work/mem" ]; then
		fail $name "the partial file $work/mem was left on the host"
	else
		pass $name
	fi
}

test_usage_errors() {
	local name=usage_errors

	cp_msb
	expect_status $name 2 || return
	cp_msb "$work/a" "$work/b"
	expect_status $name 2 || return
	cp_msb "$work/a" "$SB:relative/path"
	expect_status $name 2 || return
	cp_msb "$SB:/tmp/x" "$SB:/tmp/y"
	expect_status $name 2 || return
	pass $name
}

# Starts `msb cp ARGS...` in the background, with stdout and stderr in
# $work/out and $work/err; sets cp_pid. Job control is on while it starts
# because a script's background jobs otherwise ignore SIGINT.
cp_start() {
	set -m
	"$MSB" cp "$@" >"$work/out" 2>"$work/err" &
	cp_pid=$!
	set +m
}

# Succeeds while process $1 runs and has not exited yet.
running() {
	[ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

# Succeeds once process $1 has read at least 1 MiB of the host file $2,
# which is past any tar header and one chunk of data.
has_read_mib() {
	local fd pos

	for fd in /proc/"$1"/fd/*; do
		if [ "$(readlink "$fd" 2>/dev/null)" = "$2" ]; then
			pos=$(awk '/^pos:/ { print $2 }' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null)
			[ "${pos:-0}" -ge $((1024 * 1024)) ]
			return
		fi
	done
	return 1
}

# Succeeds once the host directory $1 has a file of more than 1 MiB named
# $2 or named as a temporary file of $2.
has_written_mib() {
	[ -n "$(find "$1" -maxdepth 1 \( -name "$2" -o -name ".$2.msb-partial-*" \) -size +1M 2>/dev/null)" ]
}

# Sends SIGINT to cp_pid once the command "$@" succeeds, which shows that
# data is being copied, then waits for the copy to end; sets status. Sets
# status to "ended" when the copy ended before the command succeeded, and
# kills it with status 124 when it runs longer than $MSB_TIMEOUT_S s.
interrupt_copy() {
	local deadline=$((SECONDS + MSB_TIMEOUT_S))

	until "$@"; do
		if ! running "$cp_pid"; then
			wait "$cp_pid"
			status=ended
			return
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			kill -KILL "$cp_pid"
			wait "$cp_pid"
			status=124
			return
		fi
		sleep 0.01
	done
	kill -INT "$cp_pid"
	wait "$cp_pid"
	status=$?
}

# Reports NAME as skipped and returns non-zero when the copy ended before
# interrupt_copy saw data moving.
copy_was_interrupted() {
	if [ "$status" = ended ]; then
		echo "# skipped $1: the copy ended before data was seen moving; stderr: $(show "$work/err")"
		return 1
	fi
	return 0
}

# Checks the exit of an interrupted copy: fails NAME unless it exited with
# status 130 and reported the interruption on stderr, else passes it.
expect_interrupted_exit() {
	local name=$1

	expect_status "$name" 130 || return
	if ! grep -q 'interrupted by signal 2' "$work/err"; then
		fail "$name" "stderr does not report the interruption: $(show "$work/err")"
		return
	fi
	pass "$name"
}

# Prints the temporary files of msb cp left below a host directory.
host_partials() {
	find "$1" -name '*.msb-partial-*'
}

# Prints the temporary files of msb cp left below a guest directory.
guest_partials() {
	guest find "$1" -name '*.msb-partial-*'
}

# Prints the SHA-256 of a host file.
host_sha() {
	sha256sum <"$1" | cut -d' ' -f1
}

# Prints the SHA-256 of a guest file, or "missing".
# shellcheck disable=SC2016 # expanded by the guest's shell
guest_sha() {
	guest sh -c 'if [ -e "$1" ]; then sha256sum <"$1" | cut -d" " -f1; else echo missing; fi' sh "$1"
}

# Large enough that data still moves when interrupt_copy sees it start:
# about a second at the 60 MB/s that msb cp reached on a development
# machine. A copy that ends before the signal is reported as skipped.
INTERRUPT_BYTES=$((64 * 1024 * 1024))

test_interrupt_to_guest() {
	local name want got leftover

	head -c "$INTERRUPT_BYTES" /dev/urandom >"$work/int.bin"
	guest sh -c 'mkdir -p /tmp/int && echo old >/tmp/int/old.bin'
	want=$(guest_sha /tmp/int/old.bin)

	name=interrupt_to_guest_new
	cp_start "$work/int.bin" "$SB:/tmp/int/new.bin"
	interrupt_copy has_read_mib "$cp_pid" "$work/int.bin"
	if ! copy_was_interrupted $name; then
		:
	elif guest test -e /tmp/int/new.bin; then
		fail $name "/tmp/int/new.bin exists in the guest after the interrupted copy"
	else
		expect_interrupted_exit $name
	fi

	name=interrupt_to_guest_existing
	cp_start "$work/int.bin" "$SB:/tmp/int/old.bin"
	interrupt_copy has_read_mib "$cp_pid" "$work/int.bin"
	got=$(guest_sha /tmp/int/old.bin)
	if ! copy_was_interrupted $name; then
		:
	elif [ "$got" != "$want" ]; then
		fail $name "/tmp/int/old.bin lost its old content: SHA-256 $got, expected $want"
	else
		expect_interrupted_exit $name
	fi

	name=interrupt_tar_in_existing
	tar -C "$work" -cf "$work/int.tar" int.bin
	guest sh -c 'echo old >/tmp/int/int.bin'
	cp_start - "$SB:/tmp/int" <"$work/int.tar"
	interrupt_copy has_read_mib "$cp_pid" "$work/int.tar"
	got=$(guest_sha /tmp/int/int.bin)
	if ! copy_was_interrupted $name; then
		:
	elif [ "$got" != "$want" ]; then
		fail $name "/tmp/int/int.bin lost its old content: SHA-256 $got, expected $want"
	else
		expect_interrupted_exit $name
	fi

	name=interrupt_to_guest_cleans_up
	leftover=$(guest_partials /tmp/int)
	if [ -n "$leftover" ]; then
		fail $name "temporary files were left in the guest: $leftover"
	else
		pass $name
	fi
}

test_interrupt_to_host() {
	local name want got leftover

	cp_msb "$work/int.bin" "$SB:/tmp/int/src.bin"
	expect_status interrupt_to_host 0 || return
	mkdir "$work/int"
	echo old >"$work/int/old.bin"
	want=$(host_sha "$work/int/old.bin")

	name=interrupt_to_host_new
	cp_start "$SB:/tmp/int/src.bin" "$work/int/new.bin"
	interrupt_copy has_written_mib "$work/int" new.bin
	if ! copy_was_interrupted $name; then
		:
	elif [ -e "$work/int/new.bin" ]; then
		fail $name "$work/int/new.bin exists after the interrupted copy"
	else
		expect_interrupted_exit $name
	fi

	name=interrupt_to_host_existing
	cp_start "$SB:/tmp/int/src.bin" "$work/int/old.bin"
	interrupt_copy has_written_mib "$work/int" old.bin
	got=$(host_sha "$work/int/old.bin")
	if ! copy_was_interrupted $name; then
		:
	elif [ "$got" != "$want" ]; then
		fail $name "$work/int/old.bin lost its old content: SHA-256 $got, expected $want"
	else
		expect_interrupted_exit $name
	fi

	name=interrupt_to_host_cleans_up
	leftover=$(host_partials "$work/int")
	if [ -n "$leftover" ]; then
		fail $name "temporary files were left on the host: $leftover"
	else
		pass $name
	fi
	guest rm -f /tmp/int/src.bin
	rm -f "$work/int.bin" "$work/int.tar"
}

# A completed copy replaces an existing file in each direction, and a
# host symlink in the way is replaced, not written through.
test_replace_existing() {
	local name=replace_existing
	local want got leftover

	printf 'new content\n' >"$work/rep.txt"
	chmod 0640 "$work/rep.txt"
	want=$(host_sha "$work/rep.txt")
	guest sh -c 'mkdir -p /tmp/rep && echo old >/tmp/rep/rep.txt && echo old >/tmp/rep/tar.txt'

	cp_msb "$work/rep.txt" "$SB:/tmp/rep/rep.txt"
	expect_status $name 0 || return
	got=$(guest_sha /tmp/rep/rep.txt)
	if [ "$got" != "$want" ]; then
		fail $name "/tmp/rep/rep.txt in the guest has SHA-256 $got, expected $want"
		return
	fi
	got=$(guest stat -c %a /tmp/rep/rep.txt)
	if [ "$got" != 640 ]; then
		fail $name "/tmp/rep/rep.txt in the guest has mode $got, expected 640"
		return
	fi

	cp -p "$work/rep.txt" "$work/tar.txt"
	tar -C "$work" -cf "$work/rep.tar" tar.txt
	cp_msb - "$SB:/tmp/rep" <"$work/rep.tar"
	expect_status $name 0 || return
	got=$(guest_sha /tmp/rep/tar.txt)
	if [ "$got" != "$want" ]; then
		fail $name "/tmp/rep/tar.txt in the guest has SHA-256 $got, expected $want"
		return
	fi
	leftover=$(guest_partials /tmp/rep)
	if [ -n "$leftover" ]; then
		fail $name "temporary files were left in the guest: $leftover"
		return
	fi

	mkdir "$work/rep"
	echo old >"$work/rep/rep.txt"
	echo elsewhere >"$work/rep.target"
	ln -s "$work/rep.target" "$work/rep/link.txt"
	cp_msb "$SB:/tmp/rep/rep.txt" "$work/rep/rep.txt"
	expect_status $name 0 || return
	cp_msb "$SB:/tmp/rep/rep.txt" "$work/rep/link.txt"
	expect_status $name 0 || return
	got=$(host_sha "$work/rep/rep.txt")
	if [ "$got" != "$want" ]; then
		fail $name "$work/rep/rep.txt has SHA-256 $got, expected $want"
		return
	fi
	if [ -L "$work/rep/link.txt" ] || [ "$(host_sha "$work/rep/link.txt")" != "$want" ]; then
		fail $name "$work/rep/link.txt was not replaced by a copy of the guest file"
		return
	fi
	if [ "$(cat "$work/rep.target")" != elsewhere ]; then
		fail $name "the copy was written through the symlink $work/rep/link.txt"
		return
	fi
	leftover=$(host_partials "$work/rep")
	if [ -n "$leftover" ]; then
		fail $name "temporary files were left on the host: $leftover"
		return
	fi
	pass $name
}

# Runs `msb cp ARGS...` in the background and samples its peak resident
# memory; sets status and peak_kib.
cp_sampled() {
	local pid hwm start=$SECONDS

	"$MSB" cp "$@" >"$work/out" 2>"$work/err" &
	pid=$!
	peak_kib=0
	while kill -0 "$pid" 2>/dev/null; do
		hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		if [ -n "$hwm" ] && [ "$hwm" -gt "$peak_kib" ]; then
			peak_kib=$hwm
		fi
		if [ $((SECONDS - start)) -ge "$BIG_TIMEOUT_S" ]; then
			kill "$pid"
		fi
		sleep 0.1
	done
	wait "$pid"
	status=$?
}

sandbox_hwm_kib() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# Checks that peak resident memory $2 (KiB) of $3 is under the limit.
expect_small() {
	local name=$1 kib=$2 what=$3

	if [ "$kib" -ge "$RSS_LIMIT_KIB" ]; then
		fail "$name" "$what peaked at $kib KiB resident, expected under $RSS_LIMIT_KIB KiB"
		return 1
	fi
	return 0
}

test_big_file_memory() {
	local name=big_file_memory
	local spid start in_ms out_ms in_kib out_kib sb_in_kib sb_out_kib off

	if [ "${MSB_TEST_BIG:-0}" != 1 ]; then
		echo "# skipped $name (set MSB_TEST_BIG=1)"
		return
	fi
	spid=$(cat "$SANDBOXES_DIR/$SB/sandbox.pid")
	truncate -s 2G "$work/big.bin"
	for off in 0 700 1400 2040; do
		dd if=/dev/urandom of="$work/big.bin" bs=1M count=4 seek=$off conv=notrunc status=none
	done

	echo 5 >"/proc/$spid/clear_refs" # resets VmHWM
	start=$(date +%s%N)
	cp_sampled "$work/big.bin" "$SB:/tmp/big.bin"
	in_ms=$((($(date +%s%N) - start) / 1000000))
	in_kib=$peak_kib
	sb_in_kib=$(sandbox_hwm_kib "$spid")
	expect_status $name 0 || return

	echo 5 >"/proc/$spid/clear_refs"
	start=$(date +%s%N)
	cp_sampled "$SB:/tmp/big.bin" "$work/big.back"
	out_ms=$((($(date +%s%N) - start) / 1000000))
	out_kib=$peak_kib
	sb_out_kib=$(sandbox_hwm_kib "$spid")
	expect_status $name 0 || return
	guest rm -f /tmp/big.bin

	echo "# 2 GiB in: $in_ms ms, msb cp peak $in_kib KiB, sandbox process peak $sb_in_kib KiB"
	echo "# 2 GiB out: $out_ms ms, msb cp peak $out_kib KiB, sandbox process peak $sb_out_kib KiB"
	expect_small $name "$in_kib" "msb cp (in)" || return
	expect_small $name "$out_kib" "msb cp (out)" || return
	expect_small $name "$sb_in_kib" "the sandbox process (in)" || return
	expect_small $name "$sb_out_kib" "the sandbox process (out)" || return
	if ! cmp -s "$work/big.bin" "$work/big.back"; then
		fail $name "the 2 GiB file came back different"
		return
	fi
	rm -f "$work/big.bin" "$work/big.back"
	pass $name
}

if [ ! -x "$MSB" ]; then
	fail msb_built "$MSB is missing; run make first"
	echo "$passed passed, $failed failed"
	exit 1
fi
if ! timeout "$MSB_TIMEOUT_S" "$MSB" create "$SB" >"$work/out" 2>"$work/err"; then
	fail sandbox_boots "msb create $SB failed: $(show "$work/err")"
	echo "$passed passed, $failed failed"
	exit 1
fi

suite_start=$(date +%s%N)
make_tree
test_file_bytes_both_ways
test_tree_in_keeps_attrs
test_tree_out_keeps_attrs
test_symlinks_stay_links
test_tar_out_matches
test_tar_in_long_name
test_into_dir_or_new_name
test_missing_guest_path
test_readonly_guest_dest
test_tar_in_rejects_hostile
test_guest_link_outside
test_guest_link_climbs_out
test_host_link_not_followed
test_guest_disk_full
test_guest_read_error
test_usage_errors
test_interrupt_to_guest
test_interrupt_to_host
test_replace_existing
test_big_file_memory
echo "# the cases took $((($(date +%s%N) - suite_start) / 1000000)) ms"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
