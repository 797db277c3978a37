#!/bin/bash
# End-to-end tests of host directories, files, volumes and tmpfs inside the
# guest. Three boots: one as root with every kind of mount, one that reads a
# volume back, one as an ordinary user for ownership and shared files that
# belong to others.
set -u
cd "$(dirname "$0")/../.."

MSB=$PWD/build/msb
WORK=$(mktemp -d /tmp/msb-mounts-XXXXXX)
VOLUME=mounts-test-$$
TEST_USER=msbtest
passed=0
failed=0

ok() {
	echo "ok   $1"
	passed=$((passed + 1))
}

fail() {
	echo "FAIL $1: $2"
	failed=$((failed + 1))
}

# check NAME EXPECTED ACTUAL
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected \"$2\", got \"$3\""; fi
}

cleanup() {
	"$MSB" volume rm "$VOLUME" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

# ---- Boot 1: as root, every kind of mount ----
mkdir -p "$WORK/rw" "$WORK/ro"
echo from-host >"$WORK/rw/host.txt"
printf '#!/bin/sh\necho script ran\n' >"$WORK/rw/tool.sh"
chmod 755 "$WORK/rw/tool.sh"
touch -d '2020-01-02 03:04:05 UTC' "$WORK/rw/tool.sh"
echo original >"$WORK/ro/keep.txt"
echo 'key = "value"' >"$WORK/config.toml"

out=$(timeout 120 "$MSB" run \
	-v "$WORK/rw:/rw" -v "$WORK/ro:/ro:ro" -v "$WORK/config.toml:/etc/app/config.toml:ro" \
	-v "$VOLUME:/data" --tmpfs /scratch:size=16 -- sh -c '
	echo "read=$(cat /rw/host.txt)"
	echo "tool=$(/rw/tool.sh)"
	echo "tool_mtime=$(stat -c %Y /rw/tool.sh)"
	echo from-guest > /rw/guest.txt
	printf x > /rw/made.sh; chmod 750 /rw/made.sh; touch -d "2021-05-06 07:08:09 UTC" /rw/made.sh
	echo "config=$(cat /etc/app/config.toml)"
	echo changed > /etc/app/config.toml 2>/dev/null && echo config_write=yes || echo config_write=no
	echo changed > /ro/keep.txt 2>/dev/null && echo ro_write=yes || echo ro_write=no
	mount -o remount,rw /ro 2>/dev/null
	echo changed > /ro/keep.txt 2>/dev/null && echo ro_write_after_remount=yes || echo ro_write_after_remount=no
	echo persisted > /data/v.txt
	echo "tmpfs_kib=$(df -k /scratch | awk "NR==2 {print \$2}")"
	echo "tmpfs_type=$(stat -f -c %T /scratch)"
' 2>&1)
status=$?
check run_exit_status 0 "$status"
value() { printf '%s\n' "$out" | sed -n "s/^$1=//p"; }

check dir_read_in_guest from-host "$(value read)"
check exec_bit_into_guest "script ran" "$(value tool)"
check mtime_into_guest "$(date -d '2020-01-02 03:04:05 UTC' +%s)" "$(value tool_mtime)"
check dir_write_to_host from-guest "$(cat "$WORK/rw/guest.txt" 2>&1)"
check mode_to_host 750 "$(stat -c %a "$WORK/rw/made.sh" 2>&1)"
check mtime_to_host "$(date -d '2021-05-06 07:08:09 UTC' +%s)" "$(stat -c %Y "$WORK/rw/made.sh" 2>&1)"
check file_mount_read 'key = "value"' "$(value config)"
check file_mount_read_only no "$(value config_write)"
check file_unchanged_on_host 'key = "value"' "$(cat "$WORK/config.toml")"
check dir_read_only no "$(value ro_write)"
check read_only_enforced_by_host no "$(value ro_write_after_remount)"
check ro_dir_unchanged_on_host original "$(cat "$WORK/ro/keep.txt")"
check tmpfs_size_kib 16384 "$(value tmpfs_kib)"
check tmpfs_type tmpfs "$(value tmpfs_type)"

# ---- Boot 2: a named volume outlives the sandbox ----
if "$MSB" volume ls | grep -qx "$VOLUME"; then ok volume_listed; else fail volume_listed "$VOLUME not in msb volume ls"; fi
check volume_persists persisted "$(timeout 120 "$MSB" run -v "$VOLUME:/data" -- cat /data/v.txt 2>&1)"
"$MSB" volume rm "$VOLUME"
if "$MSB" volume ls | grep -qx "$VOLUME"; then fail volume_removed "still listed"; else ok volume_removed; fi

# ---- Boot 3: as an ordinary user ----
# Ownership only means something when msb runs as someone other than root;
# files of other users and sticky directories need both kinds of user.
if [ "$(id -u)" -ne 0 ]; then
	echo "skip: the ordinary-user cases need root to set up a test user"
else
	id "$TEST_USER" >/dev/null 2>&1 || useradd -m "$TEST_USER"
	user_home=$WORK/user-home
	mkdir -p "$user_home/.msb/cache" "$WORK/checkout" "$WORK/sticky"
	# The guest assets, hard-linked: same files, readable through a path
	# that the test user can reach.
	cache=${MSB_HOME:-$HOME/.msb}/cache
	cp -al "$cache/kernel" "$cache/images" "$user_home/.msb/cache/"
	chown -R "$TEST_USER" "$user_home" "$WORK/checkout"
	chmod 755 "$WORK"
	echo root-owned >"$WORK/others.txt"
	chmod 644 "$WORK/others.txt"
	chmod 1777 "$WORK/sticky"
	echo in-sticky >"$WORK/sticky/note.txt"
	chmod 644 "$WORK/sticky/note.txt"

	out=$(su "$TEST_USER" -s /bin/sh -c "cd /tmp && MSB_HOME=$user_home/.msb timeout 120 $MSB run \
		-v $WORK/checkout:/co -v $WORK/others.txt:/etc/others.txt:ro \
		-v $WORK/sticky/note.txt:/etc/note.txt:ro -- sh -c '
		echo made > /co/new.txt; mkdir /co/dir
		echo \"others=\$(cat /etc/others.txt)\"
		echo \"sticky=\$(cat /etc/note.txt)\"
	'" 2>&1)
	value() { printf '%s\n' "$out" | sed -n "s/^$1=//p"; }
	check user_run_file made "$(cat "$WORK/checkout/new.txt" 2>&1)"
	check file_owned_by_user "$TEST_USER" "$(stat -c %U "$WORK/checkout/new.txt" 2>&1)"
	check dir_owned_by_user "$TEST_USER" "$(stat -c %U "$WORK/checkout/dir" 2>&1)"
	check file_of_other_user root-owned "$(value others)"
	check file_in_sticky_dir in-sticky "$(value sticky)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
