#!/bin/bash
# Installs what msb needs on a Debian 12 host, then builds the guest assets
# into $MSB_HOME/cache (default ~/.msb/cache). Safe to run again: each step
# is skipped when its result is already in place.
#
#   kernel/VERSION/vmlinux     Debian's generic kernel, uncompressed
#   kernel/VERSION/modules/    the modules the agent loads, by group
#   kernel/current             the version in use
#   images/default.erofs       a small Debian with Python 3
set -euo pipefail

MSB_HOME=${MSB_HOME:-$HOME/.msb}
CACHE=$MSB_HOME/cache
SUITE=bookworm
HOST_PACKAGES=(make gcc uidmap qemu-system-x86 qemu-utils musl-tools debootstrap erofs-utils e2fsprogs kmod cpio xz-utils
	zstd libsqlite3-dev python3-cbor2 clang libclang-rt-14-dev)
# Packages of the default root image beyond debootstrap's minbase.
IMAGE_PACKAGES=python3,ca-certificates
# Module groups: the agent loads "base" at every boot and the others when
# a sandbox needs them. Dependencies are resolved from modules.dep.
declare -A MODULE_GROUPS=(
	[base]="crc32c_generic virtio_pci virtio_console virtio_blk erofs overlay"
	[ext4]="ext4"
	[virtiofs]="virtiofs"
	[net]="virtio_net"
)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "'$*' needs root; run as root or install sudo"
	fi
}

install_host_packages() {
	local missing=()
	for p in "${HOST_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		log "host packages present"
		return
	fi
	log "installing ${missing[*]}"
	as_root apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# linux-image-amd64 is a metapackage; the kernel is the one versioned
# package it depends on. Downloading only that one avoids the gigabytes
# that a wildcard over every kernel in the archive would pull.
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

# Debian signs its modules. The guest checks each signature at load time,
# which under TCG costs about a third of the module load time; the modules
# come from the same verified package as the kernel, so the copies in the
# cache carry no signature.
strip_module_signature() {
	local f=$1 size siglen
	[ "$(tail -c 28 "$f")" = "~Module signature appended~" ] || return 0
	size=$(stat -c %s "$f")
	# struct module_signature (12 bytes, sig_len a big-endian u32 at its
	# offset 8) sits right before the 28-byte marker.
	siglen=$(tail -c 32 "$f" | head -c 4 | od -An -tu1 | awk '{ print $1*16777216 + $2*65536 + $3*256 + $4 }')
	truncate -s $((size - 28 - 12 - siglen)) "$f"
}

# Prints the load order of a module and its dependencies, dependencies first.
resolve_module() {
	local tree=$1 name=$2 line path dep
	line=$(grep -E "(^|/)${name}\.ko:" "$tree/modules.dep") || die "module $name not found in $tree/modules.dep"
	path=${line%%:*}
	for dep in ${line#*:}; do
		resolve_module "$tree" "$(basename "$dep" .ko)"
	done
	echo "$path"
}

extract_vmlinux() {
	local vmlinuz=$1 out=$2 offset
	# The compressed kernel is a stub followed by an xz stream; booting the
	# ELF inside saves decompression (about 2.5 s per boot under TCG).
	offset=$(grep -abo $'\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1)
	[ -n "$offset" ] || die "no xz stream in $vmlinuz"
	tail -c +$((offset + 1)) "$vmlinuz" | xz -dc --single-stream >"$out" 2>/dev/null || true
	[ "$(head -c 4 "$out" | tail -c 3)" = "ELF" ] || die "could not extract an ELF kernel from $vmlinuz"
}

install_kernel() {
	local pkg version dir tmp tree group
	pkg=$(kernel_package)
	[ -n "$pkg" ] || { as_root apt-get update -q; pkg=$(kernel_package); }
	[ -n "$pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
	version=${pkg#linux-image-}
	dir=$CACHE/kernel/$version
	if [ -s "$dir/vmlinux" ] && [ -s "$dir/modules/base.order" ]; then
		log "kernel $version present"
		echo "$version" >"$CACHE/kernel/current"
		return
	fi

	log "downloading $pkg"
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
	ls "$tmp"/*.deb >/dev/null 2>&1 || die "apt-get download $pkg failed"
	dpkg-deb -x "$tmp"/*.deb "$tmp/root"
	tree=$tmp/root/lib/modules/$version
	depmod -b "$tmp/root" "$version"

	rm -rf "$dir.new"
	mkdir -p "$dir.new/modules"
	extract_vmlinux "$tmp/root/boot/vmlinuz-$version" "$dir.new/vmlinux"
	for group in "${!MODULE_GROUPS[@]}"; do
		: >"$dir.new/modules/$group.order"
		for m in ${MODULE_GROUPS[$group]}; do
			for path in $(resolve_module "$tree" "$m"); do
				name=$(basename "$path")
				grep -qx "$name" "$dir.new/modules/$group.order" && continue
				echo "$name" >>"$dir.new/modules/$group.order"
				cp "$tree/$path" "$dir.new/modules/$name"
				strip_module_signature "$dir.new/modules/$name"
			done
		done
	done
	rm -rf "$dir" "$tmp"
	mv "$dir.new" "$dir"
	echo "$version" >"$CACHE/kernel/current"
	log "kernel $version installed in $dir"
}

debian_mirror() {
	local uri
	uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{ print $2 }' |
		grep -v security | head -1)
	[ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{ print $2 }' |
		grep -v security | head -1)
	echo "${MSB_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

install_image() {
	local image=$CACHE/images/default.erofs tmp mirror
	if [ -s "$image" ]; then
		log "default root image present"
		return
	fi
	mirror=$(debian_mirror)
	tmp=$(mktemp -d)
	log "building the default root image with debootstrap from $mirror (about a minute)"
	as_root debootstrap --variant=minbase --include="$IMAGE_PACKAGES" "$SUITE" "$tmp/rootfs" "$mirror" >&2 ||
		die "debootstrap failed; see $tmp/rootfs/debootstrap/debootstrap.log"
	# What a sandbox does not need: package lists and caches, docs, locales.
	as_root rm -rf "$tmp"/rootfs/var/lib/apt/lists/* "$tmp"/rootfs/var/cache/apt/* \
		"$tmp"/rootfs/usr/share/doc/* "$tmp"/rootfs/usr/share/man/* "$tmp"/rootfs/usr/share/info/* \
		"$tmp"/rootfs/usr/share/locale/* "$tmp"/rootfs/var/log/*
	mkdir -p "$CACHE/images"
	as_root mkfs.erofs --quiet "$tmp/image.erofs" "$tmp/rootfs" >&2
	as_root chown "$(id -u):$(id -g)" "$tmp/image.erofs"
	mv "$tmp/image.erofs" "$image"
	as_root rm -rf "$tmp"
	log "default root image: $image ($(du -h "$image" | cut -f1))"
}

main() {
	cd "$(dirname "$0")/../.."
	install_host_packages
	log "building msb"
	make -s all >&2
	mkdir -p "$CACHE/kernel" "$CACHE/images"
	install_kernel
	install_image
	log "checking the accelerator (msb doctor)"
	build/msb doctor >&2 || true
	log "done"
}

main "$@"
