/* msb cp: what its parts share.
 *
 * cp.c parses the command line and picks one direction: cp_to_host.c
 * (guest tree to host files), cp_to_guest.c (host tree to guest files),
 * cp_tar_out.c (guest tree to a tar stream), cp_tar_in.c (tar stream to
 * guest files). Guest trees are walked by cp_walk.c, which checks every
 * name the guest sends.
 */
#ifndef MSB_CLI_CP_H
#define MSB_CLI_CP_H

#include <stdbool.h>
#include <stdint.h>

#include "msb/msb.h"

enum cp_kind { CP_FILE, CP_DIR, CP_SYMLINK, CP_OTHER };

/* One entry of a guest tree, as the walker hands it to a visitor. */
struct cp_entry {
	const char *guest_path;
	/* Path below the destination's parent directory: the top entry's
	 * name, then the names below it joined with '/'. */
	const char *rel_path;
	const char *name;        /* last component of rel_path */
	unsigned depth;          /* 0 for the top entry */
	enum cp_kind kind;
	uint32_t mode;           /* permission bits, 07777 */
	uint32_t uid, gid;
	uint64_t size;
	int64_t mtime, atime;
	const char *link_target; /* symlinks only */
};

/* Visitor of a guest tree: each returns 0 or -errno with err filled.
 * dir_leave runs after a directory's entries, for its mode and times. */
struct cp_walk_ops {
	int (*file)(void *data, const struct cp_entry *e, msb_error *err);
	int (*symlink)(void *data, const struct cp_entry *e, msb_error *err);
	int (*dir_enter)(void *data, const struct cp_entry *e, msb_error *err);
	int (*dir_leave)(void *data, const struct cp_entry *e, msb_error *err);
};

/* Walks the guest tree at src (followed when a symlink) in name order,
 * naming its top entry top_name. Entries that are not files, directories
 * or symlinks are skipped with a warning. */
int cp_walk_guest(msb_client *c, const char *sandbox, const char *src, const char *top_name,
		  const struct cp_walk_ops *ops, void *data, msb_error *err);

int cp_to_host(msb_client *c, const char *sandbox, const char *src, const char *dst, msb_error *err);
int cp_to_guest(msb_client *c, const char *src, const char *dst, msb_error *err);
int cp_tar_out(msb_client *c, const char *sandbox, const char *src, int fd, msb_error *err);
int cp_tar_in(msb_client *c, int fd, const char *dir, msb_error *err);

/* ---- Helpers (cp_util.c) ---- */

/* dir joined with name by '/', unless dir already ends with one, as the
 * agent joins listing entries; NULL when out of memory. */
char *cp_join(const char *dir, const char *name);
/* The last component of path, ignoring trailing '/', in a new string;
 * "" for "/", NULL when out of memory. */
char *cp_basename(const char *path);
/* Copy of path without trailing '/' ("/" stays); NULL when out of memory. */
char *cp_strip_slashes(const char *path);
/* Fills err with "refusing \"VALUE\" from SOURCE: REASON" and returns
 * -EINVAL; value is quoted so that control bytes cannot reach a terminal. */
int cp_reject(msb_error *err, const char *source, const char *value, const char *reason);
/* Puts "WHAT: " (printf-style) before err's message; returns code. */
int cp_prefix_error(msb_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Creates directory path in the guest unless it exists, with mode 0700
 * until its own mode is set after its entries. Fails with -ENOTDIR when
 * something else is there. */
int cp_guest_make_dir(msb_client *c, const char *path, msb_error *err);
/* Creates symlink path -> target in the guest, replacing a non-directory. */
int cp_guest_make_symlink(msb_client *c, const char *target, const char *path, msb_error *err);

/* ---- Files written through a temporary name (cp_util.c) ----
 *
 * Each regular file is written under a temporary name in its directory
 * and renamed over its final name only once complete, with its mode and
 * times set. So a failed or interrupted copy leaves the old file or
 * nothing under the final name. The temporary file is removed on failure.
 * One is left only when msb cp is killed or cannot remove it. */

/* Mode and times for a copied file. MSB_FS_TIME_KEEP leaves a time as
 * the write set it. */
struct cp_file_attrs {
	uint32_t mode; /* permission bits, 07777 */
	int64_t atime, mtime;
};

/* Builds the temporary name ".NAME.msb-partial-PID" of a file named name,
 * with name shortened so that the result fits in NAME_MAX. Returns NULL
 * when out of memory. */
char *cp_partial_name(const char *name);
/* Writes the guest file path with what source produces, through a
 * temporary file next to it. Fails with -EISDIR when path is a
 * directory. A symlink or special file at path is replaced, not written
 * through. */
int cp_guest_write_file(msb_client *c, const char *path, const struct cp_file_attrs *attrs, msb_fs_source source,
			void *data, msb_error *err);

/* ---- Signals (cp_util.c) ----
 *
 * During a copy, SIGINT, SIGTERM and SIGHUP only set a flag. Sources and
 * sinks check it at each chunk, and the copy checks it before each entry.
 * Both then fail with -EINTR, and the copy removes its temporary file and
 * calls cp_exit_if_interrupted(). */

/* Installs the handler for each of those signals that is not ignored. */
void cp_catch_signals(void);
/* The signal caught since cp_catch_signals(), or 0. */
int cp_interrupted(void);
/* Fails with -EINTR and fills err once a signal was caught. Returns 0
 * otherwise. */
int cp_check_interrupted(msb_error *err);
/* Exits with status 128 + the signal, after a message, when one was
 * caught; returns otherwise. */
void cp_exit_if_interrupted(void);

#endif
