/* msb cp HOST_PATH NAME:PATH: writes a host tree to guest files.
 *
 * The host tree is the user's own: its symlinks are copied as they are.
 * Host entries below the top are opened with O_NOFOLLOW relative to their
 * directory, so that a symlink is sent as a symlink, never as what it
 * points to.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/pathcheck.h"
#include "cp.h"

struct uploader {
	msb_client *c;
	int file_fd;    /* the host file being sent */
	int read_error; /* -errno of a failed read of it */
};

static int send_entry(struct uploader *u, int dirfd, const char *name, const char *host, const char *guest,
		      bool follow, msb_error *err);

static long file_source(void *data, void *buf, size_t cap)
{
	struct uploader *u = data;
	ssize_t n;

	if (cp_interrupted())
		return -EINTR;
	do
		n = read(u->file_fd, buf, cap);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		u->read_error = -errno;
		return u->read_error;
	}
	return (long)n;
}

static int set_attrs(struct uploader *u, const char *guest, const struct stat *st, bool with_mode, msb_error *err)
{
	return msb_fs_set_times_mode(u->c, guest, false, with_mode ? (int64_t)(st->st_mode & 07777) : -1,
				     st->st_atim.tv_sec, st->st_mtim.tv_sec, err);
}

static int send_file(struct uploader *u, int fd, const char *host, const char *guest, msb_error *err)
{
	struct cp_file_attrs attrs;
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0)
		return err_sys(err, -errno, "stat %s", host);
	attrs = (struct cp_file_attrs){ .mode = st.st_mode & 07777, .atime = st.st_atim.tv_sec,
					.mtime = st.st_mtim.tv_sec };
	u->file_fd = fd;
	u->read_error = 0;
	rc = cp_guest_write_file(u->c, guest, &attrs, file_source, u, err);
	if (u->read_error < 0)
		rc = err_sys(err, u->read_error, "read %s", host);
	return rc;
}

static int send_children(struct uploader *u, DIR *d, const char *host, const char *guest, msb_error *err)
{
	struct dirent *de;
	int rc = 0;

	while (rc == 0 && (errno = 0, de = readdir(d))) {
		char *child_host, *child_guest;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		child_host = cp_join(host, de->d_name);
		child_guest = cp_join(guest, de->d_name);
		if (child_host && child_guest)
			rc = send_entry(u, dirfd(d), de->d_name, child_host, child_guest, false, err);
		else
			rc = err_set(err, -ENOMEM, "out of memory");
		free(child_host);
		free(child_guest);
	}
	if (rc == 0 && errno)
		rc = err_sys(err, -errno, "read directory %s", host);
	return rc;
}

static int send_dir(struct uploader *u, int fd, const char *host, const char *guest, msb_error *err)
{
	struct stat st;
	DIR *d;
	int rc;

	if (fstat(fd, &st) < 0) {
		rc = err_sys(err, -errno, "stat %s", host);
		close(fd);
		return rc;
	}
	d = fdopendir(fd);
	if (!d) {
		rc = err_sys(err, -errno, "read directory %s", host);
		close(fd);
		return rc;
	}
	rc = cp_guest_make_dir(u->c, guest, err);
	if (rc == 0)
		rc = send_children(u, d, host, guest, err);
	closedir(d);
	/* After the entries, whose creation changes the mtime. */
	return rc < 0 ? rc : set_attrs(u, guest, &st, true, err);
}

static int send_symlink(struct uploader *u, int dirfd, const char *name, const char *host, const char *guest,
			const struct stat *st, msb_error *err)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
	int rc;

	if (n < 0)
		return err_sys(err, -errno, "read symlink %s", host);
	target[n] = 0;
	rc = cp_guest_make_symlink(u->c, target, guest, err);
	return rc < 0 ? rc : set_attrs(u, guest, st, false, err);
}

/* Sends the entry name of dirfd; follow is for the top entry only, which
 * is followed like cp follows its source. */
static int send_entry(struct uploader *u, int dirfd, const char *name, const char *host, const char *guest,
		      bool follow, msb_error *err)
{
	int nofollow = follow ? 0 : O_NOFOLLOW;
	struct stat st;
	char quoted[256];
	int fd, rc = cp_check_interrupted(err);

	if (rc < 0)
		return rc;
	if (fstatat(dirfd, name, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) < 0)
		return err_sys(err, -errno, "stat %s", host);
	if (S_ISLNK(st.st_mode))
		return send_symlink(u, dirfd, name, host, guest, &st, err);
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		if (follow)
			return err_set(err, -EINVAL, "%s is not a file, directory or symlink; msb cp copies only those",
				       host);
		pathcheck_quote(host, quoted, sizeof(quoted));
		fprintf(stderr, "msb: warning: skipping %s: not a file, directory or symlink\n", quoted);
		return 0;
	}
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | nofollow | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
	if (fd < 0)
		return err_sys(err, -errno, "open %s", host);
	if (S_ISDIR(st.st_mode))
		return send_dir(u, fd, host, guest, err); /* closes fd */
	rc = send_file(u, fd, host, guest, err);
	close(fd);
	return rc;
}

/* The name of the host path src: its last component, or for "." and ".."
 * that of the directory they are. */
static char *host_basename(const char *src)
{
	char *name = cp_basename(src), *real;

	if (!name || !pathcheck_name(name))
		return name;
	real = realpath(src, NULL);
	free(name);
	if (!real)
		return NULL;
	name = cp_basename(real);
	free(real);
	return name;
}

/* The guest path of the copy: inside dst under src's name when dst is a
 * directory, else dst itself, whose parent must exist. */
static int guest_destination(msb_client *c, const char *src, const char *dst, char **out, msb_error *err)
{
	msb_file_info info;
	char *name, *parent;
	int rc = msb_fs_stat(c, dst, true, &info, err);

	if (rc == 0 && strcmp(info.kind, "dir") == 0) {
		name = host_basename(src);
		if (!name || pathcheck_name(name)) {
			free(name);
			return err_set(err, -EINVAL, "cannot name the copy of %s after its last component; give DST "
				       "as a new path", src);
		}
		*out = cp_join(dst, name);
		free(name);
		return *out ? 0 : err_set(err, -ENOMEM, "out of memory");
	}
	if (rc < 0 && rc != -ENOENT)
		return rc;
	parent = cp_strip_slashes(dst);
	if (!parent)
		return err_set(err, -ENOMEM, "out of memory");
	*strrchr(parent, '/') = 0;
	rc = msb_fs_stat(c, parent[0] ? parent : "/", true, &info, err);
	if (rc == 0 && strcmp(info.kind, "dir") != 0)
		rc = err_set(err, -ENOTDIR, "%s is not a directory in the guest", parent);
	free(parent);
	if (rc < 0)
		return rc;
	*out = strdup(dst);
	return *out ? 0 : err_set(err, -ENOMEM, "out of memory");
}

int cp_to_guest(msb_client *c, const char *src, const char *dst, msb_error *err)
{
	struct uploader u = { .c = c, .file_fd = -1 };
	char *guest;
	int rc = guest_destination(c, src, dst, &guest, err);

	if (rc < 0)
		return rc;
	cp_catch_signals();
	rc = send_entry(&u, AT_FDCWD, src, src, guest, true, err);
	free(guest);
	cp_exit_if_interrupted();
	return rc;
}
