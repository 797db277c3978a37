/* The writable upper layer of a persistent sandbox: a sparse ext4 image in
 * its directory, made with mkfs.ext4 (Debian's e2fsprogs) on first boot.
 * Only the blocks the guest writes take space on the host. */
#ifndef MSB_GUEST_UPPER_H
#define MSB_GUEST_UPPER_H

#include "msb/msb.h"

int upper_create(const char *path, unsigned size_mib, msb_error *err);

#endif
