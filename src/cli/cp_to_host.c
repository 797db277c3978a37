/* msb cp NAME:PATH HOST_PATH: writes a guest tree to host files.
 *
 * The guest is untrusted. The walker checks the names it sends and this
 * file checks symlink targets. Every host entry is created relative to a
 * directory descriptor with O_NOFOLLOW (files also with O_EXCL). So no
 * symlink can redirect a write, whether it was planted in the destination
 * beforehand or created earlier by this copy. A file is written under a
 * temporary name and renamed into place within its directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/files.h"
#include "../base/pathcheck.h"
#include "cp.h"

/* Set-user-ID and set-group-ID bits are dropped: a guest must not be able
 * to plant a set-ID program on the host. */
#define HOST_MODE_MASK 01777

struct host_writer {
	msb_client *c;
	const char *sandbox;
	const char *dest_dir; /* host directory that receives the top entry */
	int *dir_fds;         /* dir_fds[d]: the directory of entries at depth d */
	size_t n_dir_fds, cap_dir_fds;
	int file_fd;          /* the file being written */
	int write_error;      /* -errno of a failed host write */
};

/* The host path of e with its last component replaced by name, for
 * messages. */
static const char *host_path_as(const struct host_writer *hw, const struct cp_entry *e, const char *name)
{
	static char path[8192];
	int dir_len = (int)(strlen(e->rel_path) - strlen(e->name));

	snprintf(path, sizeof(path), "%s%s%.*s%s", hw->dest_dir, strcmp(hw->dest_dir, "/") == 0 ? "" : "/", dir_len,
		 e->rel_path, name);
	return path;
}

/* The host path of e, for messages. */
static const char *host_path(const struct host_writer *hw, const struct cp_entry *e)
{
	return host_path_as(hw, e, e->name);
}

static int push_dir_fd(struct host_writer *hw, int fd)
{
	if (hw->n_dir_fds == hw->cap_dir_fds) {
		size_t cap = hw->cap_dir_fds ? hw->cap_dir_fds * 2 : 16;
		int *fds = realloc(hw->dir_fds, cap * sizeof(*fds));

		if (!fds)
			return -ENOMEM;
		hw->dir_fds = fds;
		hw->cap_dir_fds = cap;
	}
	hw->dir_fds[hw->n_dir_fds++] = fd;
	return 0;
}

static void close_dir_fds(struct host_writer *hw)
{
	while (hw->n_dir_fds > 0)
		close(hw->dir_fds[--hw->n_dir_fds]);
	free(hw->dir_fds);
}

static void entry_times(const struct cp_entry *e, struct timespec times[2])
{
	times[0] = (struct timespec){ .tv_sec = e->atime };
	times[1] = (struct timespec){ .tv_sec = e->mtime };
}

static int is_a_dir_error(struct host_writer *hw, const struct cp_entry *e, msb_error *err)
{
	return err_set(err, -EISDIR, "%s is a directory on the host; remove it or choose another destination",
		       host_path(hw, e));
}

/* Removes a non-directory at e's name, so that a new entry can take it. */
static int remove_existing(struct host_writer *hw, int parent, const struct cp_entry *e, msb_error *err)
{
	if (unlinkat(parent, e->name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno == EISDIR)
		return is_a_dir_error(hw, e, err);
	return err_sys(err, -errno, "remove %s", host_path(hw, e));
}

/* NOTE: after the sink fails, msb_fs_read_stream still receives the rest
 * of the guest file (and drops it), so an interrupted copy of a large
 * file ends only once the guest has sent all of it. */
static int write_sink(void *data, const void *buf, size_t len)
{
	struct host_writer *hw = data;
	int rc;

	if (cp_interrupted())
		return -EINTR;
	rc = files_write_full(hw->file_fd, buf, len);
	if (rc < 0)
		hw->write_error = rc;
	return rc;
}

/* Streams the guest file into fd and sets its mode and times. */
static int fill_file(struct host_writer *hw, int fd, const struct cp_entry *e, msb_error *err)
{
	struct timespec times[2];
	int rc;

	hw->file_fd = fd;
	hw->write_error = 0;
	rc = msb_fs_read_stream(hw->c, e->guest_path, write_sink, hw, err);
	if (hw->write_error < 0)
		return err_sys(err, hw->write_error, "write %s", host_path(hw, e));
	if (rc < 0)
		return cp_prefix_error(err, rc, "copy %s:%s", hw->sandbox, e->guest_path);
	entry_times(e, times);
	if (fchmod(fd, e->mode & HOST_MODE_MASK) < 0 || futimens(fd, times) < 0)
		return err_sys(err, -errno, "set the mode and times of %s", host_path(hw, e));
	return 0;
}

/* Writes the file into a new temporary file in parent, named partial,
 * and renames that over e's name once it is complete. renameat()
 * replaces a symlink at e's name itself, never what it points to. */
static int write_and_rename(struct host_writer *hw, int parent, const char *partial, const struct cp_entry *e,
			    msb_error *err)
{
	int fd, rc;

	fd = openat(parent, partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(err, -errno, "create the temporary file %s", host_path_as(hw, e, partial));
	rc = fill_file(hw, fd, e, err);
	if (close(fd) < 0 && rc == 0)
		rc = err_sys(err, -errno, "write %s", host_path_as(hw, e, partial));
	if (rc == 0 && renameat(parent, partial, parent, e->name) < 0)
		rc = errno == EISDIR ? is_a_dir_error(hw, e, err)
				     : err_sys(err, -errno, "rename %s to %s", partial, host_path(hw, e));
	if (rc < 0)
		unlinkat(parent, partial, 0);
	return rc;
}

static int host_file(void *data, const struct cp_entry *e, msb_error *err)
{
	struct host_writer *hw = data;
	int parent = hw->dir_fds[e->depth];
	struct stat st;
	char *partial;
	int rc = cp_check_interrupted(err);

	if (rc < 0)
		return rc;
	/* Checked first so that a directory fails before the data is sent. */
	if (fstatat(parent, e->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
		return is_a_dir_error(hw, e, err);
	partial = cp_partial_name(e->name);
	if (!partial)
		return err_set(err, -ENOMEM, "out of memory");
	rc = write_and_rename(hw, parent, partial, e, err);
	free(partial);
	return rc;
}

static int host_symlink(void *data, const struct cp_entry *e, msb_error *err)
{
	struct host_writer *hw = data;
	int parent = hw->dir_fds[e->depth];
	const char *reason = pathcheck_link_target(e->link_target, e->depth ? e->depth - 1 : 0);
	struct timespec times[2];
	char quoted[256];
	int rc = cp_check_interrupted(err);

	if (rc < 0)
		return rc;
	if (reason) {
		pathcheck_quote(e->link_target, quoted, sizeof(quoted));
		return err_set(err, -EINVAL, "refusing symlink %s:%s -> \"%s\" from the guest: %s", hw->sandbox,
			       e->guest_path, quoted, reason);
	}
	rc = remove_existing(hw, parent, e, err);
	if (rc < 0)
		return rc;
	if (symlinkat(e->link_target, parent, e->name) < 0)
		return err_sys(err, -errno, "create symlink %s", host_path(hw, e));
	entry_times(e, times);
	if (utimensat(parent, e->name, times, AT_SYMLINK_NOFOLLOW) < 0)
		return err_sys(err, -errno, "set the times of %s", host_path(hw, e));
	return 0;
}

/* Explains why an existing entry cannot be used as a directory. */
static int not_a_dir(struct host_writer *hw, int parent, const struct cp_entry *e, msb_error *err)
{
	struct stat st;

	if (fstatat(parent, e->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		return err_set(err, -ELOOP,
			       "%s is a symlink on the host and msb cp does not write through symlinks; remove it or "
			       "choose another destination",
			       host_path(hw, e));
	return err_set(err, -ENOTDIR, "%s exists on the host and is not a directory; remove it or choose another "
		       "destination", host_path(hw, e));
}

static int host_dir_enter(void *data, const struct cp_entry *e, msb_error *err)
{
	struct host_writer *hw = data;
	int parent = hw->dir_fds[e->depth];
	int fd, rc = cp_check_interrupted(err);

	if (rc < 0)
		return rc;
	/* 0700 until dir_leave sets the guest's mode, so that the entries
	 * can be written whatever that mode is. */
	if (mkdirat(parent, e->name, 0700) < 0 && errno != EEXIST)
		return err_sys(err, -errno, "create directory %s", host_path(hw, e));
	fd = openat(parent, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
		return not_a_dir(hw, parent, e, err);
	if (fd < 0)
		return err_sys(err, -errno, "open directory %s", host_path(hw, e));
	if (push_dir_fd(hw, fd) < 0) {
		close(fd);
		return err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static int host_dir_leave(void *data, const struct cp_entry *e, msb_error *err)
{
	struct host_writer *hw = data;
	int fd = hw->dir_fds[e->depth + 1];
	struct timespec times[2];
	int rc = 0;

	entry_times(e, times);
	if (fchmod(fd, e->mode & HOST_MODE_MASK) < 0 || futimens(fd, times) < 0)
		rc = err_sys(err, -errno, "set the mode and times of %s", host_path(hw, e));
	close(fd);
	hw->n_dir_fds--;
	return rc;
}

static const struct cp_walk_ops host_ops = {
	.file = host_file,
	.symlink = host_symlink,
	.dir_enter = host_dir_enter,
	.dir_leave = host_dir_leave,
};

/* Splits dst into the directory that receives the copy and its name:
 * inside dst under src's name when dst is a directory, else dst itself. */
static int resolve_destination(const char *src, const char *dst, char **dir, char **name, msb_error *err)
{
	struct stat st;
	char *slash;

	if (stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) {
		*dir = strdup(dst);
		*name = cp_basename(src);
	} else {
		*dir = cp_strip_slashes(dst);
		*name = cp_basename(dst);
		slash = *dir ? strrchr(*dir, '/') : NULL;
		if (*dir && !slash)
			strcpy(*dir, ".");
		else if (slash)
			slash[slash == *dir ? 1 : 0] = 0;
	}
	if (!*dir || !*name) {
		free(*dir);
		free(*name);
		return err_set(err, -ENOMEM, "out of memory");
	}
	if (pathcheck_name(*name)) {
		free(*dir);
		free(*name);
		return err_set(err, -EINVAL, "cannot name the copy of %s after its last component; give DST as a new "
			       "path", src);
	}
	return 0;
}

int cp_to_host(msb_client *c, const char *sandbox, const char *src, const char *dst, msb_error *err)
{
	struct host_writer hw = { .c = c, .sandbox = sandbox, .file_fd = -1 };
	char *dir, *name;
	int fd, rc = resolve_destination(src, dst, &dir, &name, err);

	if (rc < 0)
		return rc;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = err_sys(err, -errno, "open directory %s", dir);
	} else if (push_dir_fd(&hw, fd) < 0) {
		close(fd);
		rc = err_set(err, -ENOMEM, "out of memory");
	} else {
		hw.dest_dir = dir;
		cp_catch_signals();
		rc = cp_walk_guest(c, sandbox, src, name, &host_ops, &hw, err);
	}
	close_dir_fds(&hw);
	free(dir);
	free(name);
	cp_exit_if_interrupted();
	return rc;
}
