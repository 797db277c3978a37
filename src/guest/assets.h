/* Guest assets: the kernel, its modules, the root images and the
 * initramfs, all under $MSB_HOME/cache.
 *
 *   kernel/current              the version in use, e.g. 6.1.0-57-amd64
 *   kernel/VERSION/vmlinux      the uncompressed kernel (boots faster
 *                               under TCG than the compressed vmlinuz)
 *   kernel/VERSION/modules/     NAME.ko files and GROUP.order lists
 *   images/default.erofs        the default root image
 *   initramfs/HASH.cpio         the agent plus modules, composed on demand
 *
 * `make setup` (src/guest/setup.sh) fills the cache; the initramfs is
 * composed here, from the agent embedded in msb, whenever the agent or
 * the kernel changes.
 */
#ifndef MSB_GUEST_ASSETS_H
#define MSB_GUEST_ASSETS_H

#include <limits.h>

#include "msb/msb.h"

struct guest_assets {
	char kernel_version[64];
	char kernel[PATH_MAX];
	char modules_dir[PATH_MAX];
	char root_image[PATH_MAX];
	char initramfs[PATH_MAX];
};

/* Finds the kernel and the root image (image, or the default one when
 * NULL). Errors name what is missing and how to get it. */
int assets_find(struct guest_assets *a, const char *image, msb_error *err);
/* Composes the initramfs if the cache lacks it; fills a->initramfs. */
int assets_prepare_initramfs(struct guest_assets *a, msb_error *err);

#endif
