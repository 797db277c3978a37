/* msb cp - NAME:DIR: extracts a tar stream into an existing guest
 * directory.
 *
 * The stream is untrusted. Member paths that are absolute or contain ".."
 * are rejected, and so is a member below a symlink that the stream itself
 * created, because the agent's open() follows symlinks and such a member
 * could be written anywhere in the guest. Symlink targets are kept as
 * they are (nothing is written through them). Hard links, device nodes
 * and fifos are rejected with an error, not skipped. Directory modes and
 * times are set at the end, after their entries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../base/pathcheck.h"
#include "cp.h"
#include "strset.h"
#include "tar.h"

static const char stream_source[] = "the tar stream";

struct dir_attrs {
	char *path;
	uint32_t mode;
	int64_t mtime;
};

struct tar_in {
	msb_client *c;
	const char *dir;
	struct tar_reader r;
	struct tar_member m;
	char clean[TAR_PATH_MAX + 1]; /* the member path without "." parts */
	struct strset symlinks;       /* clean paths of symlinks created */
	struct dir_attrs *dirs;       /* directories, for their attributes */
	size_t n_dirs, cap_dirs;
	bool source_called;           /* the guest opened the member's file */
	msb_error read_err;           /* a failed read of that data */
};

/* Checks the member path; fills t->clean. */
static int check_member_path(struct tar_in *t, msb_error *err)
{
	unsigned depth;
	const char *reason = pathcheck_relative(t->m.path, t->m.path_len, t->clean, sizeof(t->clean), &depth);

	if (reason)
		return cp_reject(err, stream_source, t->m.path, reason);
	for (size_t i = 0; t->clean[i]; i++)
		if (t->clean[i] == '/' && strset_contains(&t->symlinks, t->clean, i))
			return cp_reject(err, stream_source, t->m.path,
					 "the path goes through a symlink that the same stream created");
	if (!t->clean[0] && t->m.type != TAR_TYPE_DIR)
		return cp_reject(err, stream_source, t->m.path, "the path names the destination directory itself");
	return 0;
}

static int check_member_type(struct tar_in *t, msb_error *err)
{
	char reason[96];

	switch (t->m.type) {
	case TAR_TYPE_FILE:
	case TAR_TYPE_DIR:
	case TAR_TYPE_SYMLINK:
		return 0;
	case TAR_TYPE_HARDLINK:
		return cp_reject(err, stream_source, t->m.path, "hard links are not supported");
	case TAR_TYPE_CHAR:
	case TAR_TYPE_BLOCK:
	case TAR_TYPE_FIFO:
		return cp_reject(err, stream_source, t->m.path, "device nodes and fifos are not supported");
	default:
		snprintf(reason, sizeof(reason), "member type '%c' is not supported", t->m.type);
		return cp_reject(err, stream_source, t->m.path, reason);
	}
}

static long member_source(void *data, void *buf, size_t cap)
{
	struct tar_in *t = data;

	t->source_called = true;
	if (cp_interrupted())
		return -EINTR;
	return tar_read_data(&t->r, buf, cap, &t->read_err);
}

/* Creates the parent directories of guest path, for a stream that lists
 * a member before (or without) its directory. */
static int make_parents(struct tar_in *t, const char *path, msb_error *err)
{
	char *parent = strdup(path);
	int rc;

	if (!parent)
		return err_set(err, -ENOMEM, "out of memory");
	*strrchr(parent, '/') = 0;
	rc = msb_fs_mkdir(t->c, parent, 0755, err);
	free(parent);
	return rc;
}

static int write_member(struct tar_in *t, const char *path, msb_error *err)
{
	const struct cp_file_attrs attrs = { .mode = t->m.mode, .atime = MSB_FS_TIME_KEEP, .mtime = t->m.mtime };
	int rc;

	t->source_called = false;
	err_clear(&t->read_err);
	rc = cp_guest_write_file(t->c, path, &attrs, member_source, t, err);
	if (t->read_err.code < 0) {
		rc = t->read_err.code;
		if (err)
			*err = t->read_err;
	}
	return rc;
}

static int extract_file(struct tar_in *t, const char *path, msb_error *err)
{
	int rc = write_member(t, path, err);

	/* The guest opens the file before it calls the source: a missing
	 * parent fails before any data is consumed. */
	if (rc == -ENOENT && !t->source_called) {
		rc = make_parents(t, path, err);
		if (rc == 0)
			rc = write_member(t, path, err);
	}
	return rc;
}

static int extract_symlink(struct tar_in *t, const char *path, msb_error *err)
{
	int rc;

	if (t->m.link_len == 0 || memchr(t->m.link, 0, t->m.link_len))
		return cp_reject(err, stream_source, t->m.path, "the symlink target is empty or contains a NUL byte");
	rc = cp_guest_make_symlink(t->c, t->m.link, path, err);
	if (rc == -ENOENT) {
		rc = make_parents(t, path, err);
		if (rc == 0)
			rc = cp_guest_make_symlink(t->c, t->m.link, path, err);
	}
	if (rc == 0)
		rc = msb_fs_set_times_mode(t->c, path, false, -1, MSB_FS_TIME_KEEP, t->m.mtime, err);
	if (rc == 0 && strset_add(&t->symlinks, t->clean) < 0)
		rc = err_set(err, -ENOMEM, "out of memory");
	return rc;
}

static int extract_dir(struct tar_in *t, const char *path, msb_error *err)
{
	int rc;

	if (!t->clean[0])
		return 0; /* "./": the destination, which keeps its attributes */
	rc = cp_guest_make_dir(t->c, path, err);
	if (rc < 0)
		return rc;
	if (t->n_dirs == t->cap_dirs) {
		size_t cap = t->cap_dirs ? t->cap_dirs * 2 : 64;
		struct dir_attrs *dirs = realloc(t->dirs, cap * sizeof(*dirs));

		if (!dirs)
			return err_set(err, -ENOMEM, "out of memory");
		t->dirs = dirs;
		t->cap_dirs = cap;
	}
	t->dirs[t->n_dirs].path = strdup(path);
	if (!t->dirs[t->n_dirs].path)
		return err_set(err, -ENOMEM, "out of memory");
	t->dirs[t->n_dirs].mode = t->m.mode;
	t->dirs[t->n_dirs].mtime = t->m.mtime;
	t->n_dirs++;
	return 0;
}

static int extract_member(struct tar_in *t, msb_error *err)
{
	char *path;
	int rc = check_member_path(t, err);

	if (rc == 0)
		rc = check_member_type(t, err);
	if (rc < 0)
		return rc;
	path = t->clean[0] ? cp_join(t->dir, t->clean) : strdup(t->dir);
	if (!path)
		return err_set(err, -ENOMEM, "out of memory");
	if (t->m.type == TAR_TYPE_FILE)
		rc = extract_file(t, path, err);
	else if (t->m.type == TAR_TYPE_SYMLINK)
		rc = extract_symlink(t, path, err);
	else
		rc = extract_dir(t, path, err);
	free(path);
	return rc;
}

/* Sets directory attributes, deepest first (the reverse of the stream's
 * order, where a directory comes before its entries). */
static int apply_dir_attrs(struct tar_in *t, msb_error *err)
{
	int rc = 0;

	for (size_t i = t->n_dirs; rc == 0 && i > 0; i--) {
		const struct dir_attrs *d = &t->dirs[i - 1];

		rc = msb_fs_set_times_mode(t->c, d->path, false, d->mode, MSB_FS_TIME_KEEP, d->mtime, err);
	}
	return rc;
}

static void free_tar_in(struct tar_in *t)
{
	for (size_t i = 0; i < t->n_dirs; i++)
		free(t->dirs[i].path);
	free(t->dirs);
	strset_free(&t->symlinks);
}

static int check_destination(msb_client *c, const char *dir, msb_error *err)
{
	msb_file_info info;
	int rc = msb_fs_stat(c, dir, true, &info, err);

	if (rc == 0 && strcmp(info.kind, "dir") != 0)
		rc = err_set(err, -ENOTDIR, "%s is not a directory in the guest; a tar stream is extracted into an "
			     "existing directory", dir);
	return rc;
}

int cp_tar_in(msb_client *c, int fd, const char *dir, msb_error *err)
{
	static struct tar_in t; /* its member contains two 4 KiB names */
	int rc = check_destination(c, dir, err);

	if (rc < 0)
		return rc;
	memset(&t, 0, sizeof(t));
	t.c = c;
	t.dir = dir;
	tar_reader_init(&t.r, fd);
	cp_catch_signals();
	while ((rc = tar_read_next(&t.r, &t.m, err)) > 0) {
		rc = cp_check_interrupted(err);
		if (rc == 0)
			rc = extract_member(&t, err);
		if (rc < 0)
			break;
	}
	/* Also after a failure, so that no directory is left at 0700; the
	 * first error is the one reported. */
	if (rc == 0)
		rc = apply_dir_attrs(&t, err);
	else
		apply_dir_attrs(&t, NULL);
	free_tar_in(&t);
	cp_exit_if_interrupted();
	return rc;
}
