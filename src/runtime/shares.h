/* Host directories and files inside the guest, through virtio-fs.
 *
 * One virtiofsd (Debian's qemu-system-common ships it) serves all of a
 * sandbox's shares: a staging directory holds one entry per share, each a
 * bind mount of the host source, made in a private mount namespace so
 * that the host sees none of it. A read-only share is a read-only bind
 * mount there, so the host kernel enforces it, whatever the guest does.
 *
 * When msb runs as a user other than root, virtiofsd runs in a user
 * namespace that maps the guest's root to that user: files the guest
 * creates belong to the user on the host, not to root. The guest's other
 * ids map to the user's subordinate ids (/etc/subuid), as with rootless
 * containers; without such a range only the guest's root can create files.
 */
#ifndef MSB_RUNTIME_SHARES_H
#define MSB_RUNTIME_SHARES_H

#include <stddef.h>
#include <sys/types.h>

#include "../base/mounts.h"

#define SHARES_TAG "msb_shares"
#define SHARES_VIRTIOFSD "/usr/lib/qemu/virtiofsd"

struct shares {
	pid_t pid;
	char socket_path[PATH_MAX + 32];
};

/* Starts virtiofsd for the host mounts of m (tmpfs ones are skipped);
 * logs go to dir/virtiofsd.log. */
int shares_start(const char *dir, const struct mount_spec *m, size_t n, struct shares *out, msb_error *err);

#endif
