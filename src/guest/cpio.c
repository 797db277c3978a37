/* newc cpio writer: a 110-byte ASCII header ("070701" and 13 fields of 8
 * hex digits), the NUL-terminated name, then the data; the name and the
 * data are each padded to a multiple of 4 bytes. */
#include "cpio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/files.h"

#define CPIO_HEADER_BYTES 110
#define CPIO_TRAILER "TRAILER!!!"

int cpio_open(struct cpio_writer *w, const char *path)
{
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	w->next_ino = 1;
	w->error = 0;
	return w->fd < 0 ? -errno : 0;
}

static void put(struct cpio_writer *w, const void *data, size_t len)
{
	if (w->error == 0)
		w->error = files_write_full(w->fd, data, len);
}

static void pad4(struct cpio_writer *w, size_t written)
{
	static const char zeros[4];

	if (written % 4)
		put(w, zeros, 4 - written % 4);
}

static void put_header(struct cpio_writer *w, const char *name, unsigned mode, size_t size, unsigned rdev_major,
		       unsigned rdev_minor)
{
	char header[CPIO_HEADER_BYTES + 1];
	size_t name_len = strlen(name) + 1;

	snprintf(header, sizeof(header), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 w->next_ino++, mode, 0u, 0u, (mode & S_IFMT) == S_IFDIR ? 2u : 1u, 0u, (unsigned)size, 0u, 0u,
		 rdev_major, rdev_minor, (unsigned)name_len, 0u);
	put(w, header, CPIO_HEADER_BYTES);
	put(w, name, name_len);
	pad4(w, CPIO_HEADER_BYTES + name_len);
}

int cpio_add_dir(struct cpio_writer *w, const char *name, unsigned mode)
{
	put_header(w, name, S_IFDIR | mode, 0, 0, 0);
	return w->error;
}

int cpio_add_char_device(struct cpio_writer *w, const char *name, unsigned mode, unsigned major, unsigned minor)
{
	put_header(w, name, S_IFCHR | mode, 0, major, minor);
	return w->error;
}

int cpio_add_file_data(struct cpio_writer *w, const char *name, unsigned mode, const void *data, size_t len)
{
	if (len > UINT32_MAX)
		return -EFBIG;
	put_header(w, name, S_IFREG | mode, len, 0, 0);
	put(w, data, len);
	pad4(w, len);
	return w->error;
}

int cpio_add_file(struct cpio_writer *w, const char *name, unsigned mode, const char *src)
{
	char *data;
	size_t len;
	int rc = files_read_all(src, UINT32_MAX, &data, &len);

	if (rc < 0)
		return rc;
	rc = cpio_add_file_data(w, name, mode, data, len);
	free(data);
	return rc;
}

int cpio_finish(struct cpio_writer *w)
{
	int rc;

	put_header(w, CPIO_TRAILER, 0, 0, 0, 0);
	rc = w->error;
	if (close(w->fd) < 0 && rc == 0)
		rc = -errno;
	w->fd = -1;
	return rc;
}

void cpio_abort(struct cpio_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}
