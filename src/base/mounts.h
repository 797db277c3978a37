/* Mounts of a sandbox: host directories and files shared through
 * virtio-fs, named volumes (directories under $MSB_HOME/volumes), and
 * tmpfs. They are parsed from the command line, stored in the index as
 * text, and turned into the guest's boot configuration. */
#ifndef MSB_BASE_MOUNTS_H
#define MSB_BASE_MOUNTS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "msb/msb.h"

#define MOUNTS_MAX 32
#define MOUNT_DEFAULT_TMPFS_MIB 64

enum mount_kind {
	MOUNT_DIR,   /* a host directory (named volumes too) */
	MOUNT_FILE,  /* a single host file */
	MOUNT_TMPFS, /* memory in the guest */
};

struct mount_spec {
	enum mount_kind kind;
	char source[PATH_MAX]; /* host path; empty for tmpfs */
	char guest[PATH_MAX];
	bool read_only;
	unsigned size_mib; /* tmpfs only */
};

/* Parses -v HOST_PATH:GUEST_PATH[:ro|:rw] or -v VOLUME:GUEST_PATH[:ro|:rw].
 * A host path must exist; a volume is created if it does not. */
int mounts_parse_volume(const char *arg, struct mount_spec *out, msb_error *err);
/* Parses --tmpfs GUEST_PATH[:size=MIB]. */
int mounts_parse_tmpfs(const char *arg, struct mount_spec *out, msb_error *err);

/* Rejects two mounts at one guest path. */
int mounts_check_distinct(const struct mount_spec *m, size_t n, msb_error *err);

/* One line per mount: "kind TAB source TAB guest TAB ro|rw TAB size". */
int mounts_serialize(const struct mount_spec *m, size_t n, char **out, msb_error *err);
int mounts_deserialize(const char *text, struct mount_spec *m, size_t max, size_t *n, msb_error *err);

/* Named volumes: directories under $MSB_HOME/volumes. */
int volumes_path(const char *name, char *out, size_t len, msb_error *err);
int volumes_create(const char *name, msb_error *err);
int volumes_remove(const char *name, msb_error *err);

#endif
