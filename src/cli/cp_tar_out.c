/* msb cp NAME:PATH -: writes a guest tree as a tar stream, its top member
 * named after PATH's last component (like `tar -C DIR -c NAME`). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../base/pathcheck.h"
#include "cp.h"
#include "tar.h"

struct tar_out {
	msb_client *c;
	const char *sandbox;
	struct tar_writer w;
	struct tar_member m;
	uint64_t expected, written; /* data of the file being read */
	bool grew;
	int write_error;           /* -errno of a failed write to the stream */
};

static int fill_member(struct tar_out *t, const struct cp_entry *e, char type, msb_error *err)
{
	struct tar_member *m = &t->m;
	size_t len = strlen(e->rel_path);
	bool dir = type == TAR_TYPE_DIR;

	memset(m, 0, sizeof(*m));
	if (len + dir > TAR_PATH_MAX)
		return err_set(err, -ENAMETOOLONG, "%s:%s: the member name would exceed %d bytes", t->sandbox,
			       e->guest_path, TAR_PATH_MAX);
	memcpy(m->path, e->rel_path, len);
	if (dir)
		m->path[len++] = '/'; /* as GNU tar names directories */
	m->path_len = len;
	if (e->link_target) {
		m->link_len = strlen(e->link_target);
		if (m->link_len > TAR_PATH_MAX)
			return err_set(err, -ENAMETOOLONG, "%s:%s: the symlink target exceeds %d bytes", t->sandbox,
				       e->guest_path, TAR_PATH_MAX);
		memcpy(m->link, e->link_target, m->link_len);
	}
	m->type = type;
	m->mode = e->mode & 07777;
	m->uid = e->uid;
	m->gid = e->gid;
	m->size = type == TAR_TYPE_FILE ? e->size : 0;
	m->mtime = e->mtime;
	return 0;
}

/* Writes the file's data, at most the size its header announced. */
static int data_sink(void *data, const void *buf, size_t len)
{
	struct tar_out *t = data;
	uint64_t room = t->expected - t->written;
	size_t n = len < room ? len : (size_t)room;
	int rc = tar_write_data(&t->w, buf, n, NULL);

	if (rc < 0) {
		t->write_error = rc;
		return rc;
	}
	t->written += n;
	if (n < len) {
		t->grew = true;
		return -EFBIG;
	}
	return 0;
}

static int out_file(void *data, const struct cp_entry *e, msb_error *err)
{
	struct tar_out *t = data;
	int rc = fill_member(t, e, TAR_TYPE_FILE, err);

	if (rc == 0)
		rc = tar_write_header(&t->w, &t->m, err);
	if (rc < 0)
		return rc;
	t->expected = e->size;
	t->written = 0;
	t->grew = false;
	t->write_error = 0;
	rc = msb_fs_read_stream(t->c, e->guest_path, data_sink, t, err);
	if (t->write_error < 0)
		return err_sys(err, t->write_error, "write the tar stream");
	if (t->grew || (rc == 0 && t->written < t->expected))
		return err_set(err, -EIO, "%s:%s changed size while being read (%" PRIu64 " bytes listed); the tar "
			       "stream is incomplete", t->sandbox, e->guest_path, e->size);
	if (rc < 0)
		return cp_prefix_error(err, rc, "copy %s:%s", t->sandbox, e->guest_path);
	return tar_write_zeros(&t->w, tar_padding(e->size), err);
}

static int out_symlink(void *data, const struct cp_entry *e, msb_error *err)
{
	struct tar_out *t = data;
	int rc = fill_member(t, e, TAR_TYPE_SYMLINK, err);

	return rc < 0 ? rc : tar_write_header(&t->w, &t->m, err);
}

static int out_dir_enter(void *data, const struct cp_entry *e, msb_error *err)
{
	struct tar_out *t = data;
	int rc = fill_member(t, e, TAR_TYPE_DIR, err);

	return rc < 0 ? rc : tar_write_header(&t->w, &t->m, err);
}

static int out_dir_leave(void *data, const struct cp_entry *e, msb_error *err)
{
	return 0;
}

static const struct cp_walk_ops tar_out_ops = {
	.file = out_file,
	.symlink = out_symlink,
	.dir_enter = out_dir_enter,
	.dir_leave = out_dir_leave,
};

int cp_tar_out(msb_client *c, const char *sandbox, const char *src, int fd, msb_error *err)
{
	static struct tar_out t; /* its member contains two 4 KiB names */
	char *name = cp_basename(src);
	int rc;

	if (!name)
		return err_set(err, -ENOMEM, "out of memory");
	if (pathcheck_name(name)) {
		free(name);
		return err_set(err, -EINVAL, "cannot name the top member after %s; give a path with a last component",
			       src);
	}
	t.c = c;
	t.sandbox = sandbox;
	tar_writer_init(&t.w, fd);
	rc = cp_walk_guest(c, sandbox, src, name, &tar_out_ops, &t, err);
	if (rc == 0)
		rc = tar_write_end(&t.w, err);
	free(name);
	return rc;
}
