/* File operations: core.fs.request, whose response is zero or more
 * core.fs.data frames and one core.fs.response.
 *
 * Reads stream chunks of at most FS_CHUNK_BYTES from a job that the event
 * loop advances while the channel to the host has room, so a large file
 * never sits in memory and never stalls exec sessions. Writes arrive as
 * core.fs.data frames on the request's id; an empty frame ends them.
 *
 * Handles belong to the id range of the client that opened them (at most
 * FS_MAX_HANDLES_PER_CLIENT each) and are closed when it disconnects.
 */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "../proto/errname.h"
#include "../proto/frame.h"

/* Each core.fs.data frame carries at most this much; the protocol allows
 * 3 MiB, and smaller chunks keep memory low and interleave better with
 * other sessions. */
#define FS_CHUNK_BYTES (1024 * 1024)
#define FS_MAX_HANDLES_PER_CLIENT 1024
#define FS_DEFAULT_READDIR_LIMIT 128
#define FS_MAX_READDIR_LIMIT 4096
#define FS_COPY_CHUNK_BYTES (1024 * 1024)

struct fs_handle {
	uint64_t id;
	uint32_t owner_start, owner_end; /* the client's id range */
	int fd;
	DIR *dir;
	char *path;
	struct fs_handle *next;
};

struct fs_read_job {
	uint32_t id; /* the request's id */
	int fd;      /* a duplicate, so closing the handle cannot pull it away */
	uint64_t offset;
	uint64_t remaining; /* UINT64_MAX: to the end of the file */
	struct fs_read_job *next;
};

struct fs_write_job {
	uint32_t id;
	int fd;
	uint64_t offset;
	uint64_t remaining; /* UINT64_MAX: until the empty frame */
	int error;          /* the first error; the rest of the data is dropped */
	char *path;
	struct fs_write_job *next;
};

struct fs_state {
	struct fs_handle *handles;
	uint64_t next_handle;
	struct fs_read_job *reads;
	struct fs_write_job *writes;
};

static struct fs_state *state(struct agent *a)
{
	if (!a->fs) {
		a->fs = calloc(1, sizeof(*a->fs));
		if (a->fs)
			a->fs->next_handle = 1;
	}
	return a->fs;
}

/* ---- Replies ---- */

static void reply_error(struct agent *a, uint32_t id, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void reply_error(struct agent *a, uint32_t id, int err, const char *fmt, ...)
{
	char message[PATH_MAX + 256];
	struct msg m;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (err && n >= 0 && (size_t)n < sizeof(message))
		snprintf(message + n, sizeof(message) - (size_t)n, ": %s", strerror(err));

	memset(&m, 0, sizeof(m));
	m.type = MSG_FS_RESPONSE;
	m.id = id;
	m.u.fs_response.ok = false;
	m.u.fs_response.error = span_cstr(message);
	if (err) {
		m.u.fs_response.err = (struct opt_i32){ true, err };
		m.u.fs_response.errno_name = span_cstr(errno_name(err));
	}
	agent_send(a, &m);
}

static void reply(struct agent *a, uint32_t id, struct msg_fs_response *r)
{
	struct msg m;

	memset(&m, 0, sizeof(m));
	m.type = MSG_FS_RESPONSE;
	m.id = id;
	r->ok = true;
	m.u.fs_response = *r;

	/* A response must reach the client, or it waits forever: one too
	 * large for a frame (List of a huge directory) becomes an error.
	 * A failed encode leaves the output queue as it was. */
	if (agent_send(a, &m) == -EMSGSIZE)
		reply_error(a, id, E2BIG, "the response exceeds the 4 MiB frame limit; page through the directory "
					  "with OpenDir and ReadDir");
}

static void reply_ok(struct agent *a, uint32_t id)
{
	struct msg_fs_response r;

	memset(&r, 0, sizeof(r));
	reply(a, id, &r);
}

static void reply_path(struct agent *a, uint32_t id, const char *path)
{
	struct msg_fs_response r;

	memset(&r, 0, sizeof(r));
	r.data_kind = FS_DATA_PATH;
	r.path = span_cstr(path);
	reply(a, id, &r);
}

/* ---- Entries ---- */

static enum fs_kind kind_of(mode_t mode)
{
	if (S_ISREG(mode))
		return FS_KIND_FILE;
	if (S_ISDIR(mode))
		return FS_KIND_DIR;
	if (S_ISLNK(mode))
		return FS_KIND_SYMLINK;
	return FS_KIND_OTHER;
}

/* Mode is the permission bits (07777); the kind gives the type. */
static void entry_from_stat(struct fs_entry *e, const char *path, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->path = span_cstr(path);
	e->kind = kind_of(st->st_mode);
	e->size = (uint64_t)st->st_size;
	e->mode = st->st_mode & 07777;
	e->modified = (struct opt_i64){ true, st->st_mtim.tv_sec };
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->atime = (struct opt_i64){ true, st->st_atim.tv_sec };
	e->mtime = (struct opt_i64){ true, st->st_mtim.tv_sec };
}

static void reply_stat(struct agent *a, uint32_t id, const char *path, const struct stat *st)
{
	struct msg_fs_response r;

	memset(&r, 0, sizeof(r));
	r.data_kind = FS_DATA_STAT;
	entry_from_stat(&r.stat, path, st);
	reply(a, id, &r);
}

/* Entries of dir (paths joined with dir), up to limit. Names are kept in
 * names[] for the lifetime of the reply. */
static int list_dir(DIR *d, const char *dir_path, unsigned limit, struct fs_entry **out, char ***names_out,
		    size_t *count)
{
	struct fs_entry *entries = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	while (n < limit && (errno = 0, de = readdir(d))) {
		struct stat st;
		char *path;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* removed while listing */
		if (n == cap) {
			size_t new_cap = cap ? cap * 2 : 64;
			struct fs_entry *e2 = realloc(entries, new_cap * sizeof(*entries));
			char **n2 = realloc(names, new_cap * sizeof(*names));

			if (e2)
				entries = e2;
			if (n2)
				names = n2;
			if (!e2 || !n2)
				goto oom;
			cap = new_cap;
		}
		if (asprintf(&path, "%s%s%s", dir_path, dir_path[strlen(dir_path) - 1] == '/' ? "" : "/", de->d_name) < 0)
			goto oom;
		names[n] = path;
		entry_from_stat(&entries[n], path, &st);
		n++;
	}
	*out = entries;
	*names_out = names;
	*count = n;
	return 0;

oom:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(entries);
	return -ENOMEM;
}

static void reply_list(struct agent *a, uint32_t id, struct fs_entry *entries, char **names, size_t n)
{
	struct msg_fs_response r;

	memset(&r, 0, sizeof(r));
	r.data_kind = FS_DATA_LIST;
	r.list = entries;
	r.n_list = n;
	reply(a, id, &r);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(entries);
}

/* ---- Handles ---- */

static struct fs_handle *find_handle(struct agent *a, uint32_t req_id, uint64_t handle)
{
	for (struct fs_handle *h = state(a)->handles; h; h = h->next)
		if (h->id == handle && req_id >= h->owner_start && req_id < h->owner_end)
			return h;
	return NULL;
}

static unsigned handles_of(struct agent *a, uint32_t owner_start)
{
	unsigned n = 0;

	for (struct fs_handle *h = state(a)->handles; h; h = h->next)
		n += h->owner_start == owner_start;
	return n;
}

/* The id range of the client that sent id, as the relay assigns them. */
static void owner_range(uint32_t id, uint32_t *start, uint32_t *end)
{
	*start = frame_client_id_start(id / FRAME_CLIENT_ID_STEP);
	*end = frame_client_id_end(id / FRAME_CLIENT_ID_STEP);
}

static void free_handle(struct fs_handle *h)
{
	if (h->dir)
		closedir(h->dir);
	else if (h->fd >= 0)
		close(h->fd);
	free(h->path);
	free(h);
}

static void add_handle(struct agent *a, uint32_t req_id, int fd, DIR *dir, const char *path)
{
	struct fs_state *fs = state(a);
	struct msg_fs_response r;
	struct fs_handle *h;
	uint32_t start, end;

	owner_range(req_id, &start, &end);
	if (handles_of(a, start) >= FS_MAX_HANDLES_PER_CLIENT) {
		if (dir)
			closedir(dir);
		else
			close(fd);
		reply_error(a, req_id, EMFILE, "open %s: this client already holds %d handles", path,
			    FS_MAX_HANDLES_PER_CLIENT);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h || !(h->path = strdup(path))) {
		free(h);
		if (dir)
			closedir(dir);
		else
			close(fd);
		reply_error(a, req_id, ENOMEM, "open %s", path);
		return;
	}
	h->id = fs->next_handle++;
	h->owner_start = start;
	h->owner_end = end;
	h->fd = fd;
	h->dir = dir;
	h->next = fs->handles;
	fs->handles = h;

	memset(&r, 0, sizeof(r));
	r.data_kind = FS_DATA_HANDLE;
	r.handle = h->id;
	reply(a, req_id, &r);
}

static void close_handle(struct agent *a, struct fs_handle *target)
{
	for (struct fs_handle **p = &state(a)->handles; *p; p = &(*p)->next) {
		if (*p == target) {
			*p = target->next;
			free_handle(target);
			return;
		}
	}
}

/* ---- Attributes ---- */

static int apply_attrs(int dirfd_or_fd, const char *path, bool follow, const struct fs_attrs *at, bool by_fd)
{
	int flags = follow ? 0 : AT_SYMLINK_NOFOLLOW;
	struct stat st;

	/* A symlink has no mode or size of its own; rather than change its
	 * target's when asked not to follow, say so. */
	if (!by_fd && !follow && (at->mode.set || at->size.set) && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
		return -EOPNOTSUPP;

	if (at->uid.set || at->gid.set) {
		uid_t uid = at->uid.set ? at->uid.v : (uid_t)-1;
		gid_t gid = at->gid.set ? at->gid.v : (gid_t)-1;

		if ((by_fd ? fchown(dirfd_or_fd, uid, gid) : fchownat(AT_FDCWD, path, uid, gid, flags)) < 0)
			return -errno;
	}
	/* After chown, which clears set-id bits. */
	if (at->mode.set) {
		if (by_fd ? fchmod(dirfd_or_fd, at->mode.v & 07777) < 0
			  : fchmodat(AT_FDCWD, path, at->mode.v & 07777, 0) < 0)
			return -errno;
	}
	if (at->size.set) {
		if (by_fd ? ftruncate(dirfd_or_fd, (off_t)at->size.v) < 0 : truncate(path, (off_t)at->size.v) < 0)
			return -errno;
	}
	if (at->atime.set || at->mtime.set) {
		struct timespec times[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };

		if (at->atime.set)
			times[0] = (struct timespec){ (time_t)at->atime.v, 0 };
		if (at->mtime.set)
			times[1] = (struct timespec){ (time_t)at->mtime.v, 0 };
		if (by_fd ? futimens(dirfd_or_fd, times) < 0 : utimensat(AT_FDCWD, path, times, flags) < 0)
			return -errno;
	}
	return 0;
}

/* ---- Operations on paths ---- */

static int mkdir_parents(char *path, mode_t mode)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	if (mkdir(path, mode) < 0) {
		struct stat st;

		if (errno != EEXIST || stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			return errno == EEXIST ? -EEXIST : -errno;
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int copy_file(const char *src, const char *dst, const struct stat *st)
{
	int in = open(src, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	int out, rc = 0;

	if (in < 0)
		return -errno;
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, st->st_mode & 07777);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, FS_COPY_CHUNK_BYTES, 0);

		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS)) {
			char buf[65536];

			n = read(in, buf, sizeof(buf));
			if (n > 0 && write(out, buf, (size_t)n) != n)
				n = -1;
		}
		if (n == 0)
			break;
		if (n < 0) {
			rc = -errno;
			break;
		}
	}
	close(in);
	if (close(out) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Copies src to dst: a file, a symlink as a symlink, a directory with all
 * it holds. */
static int copy_tree(const char *src, const char *dst)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (lstat(src, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode))
		return copy_file(src, dst, &st);
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(src, target, sizeof(target) - 1);

		if (n < 0)
			return -errno;
		target[n] = 0;
		return symlink(target, dst) < 0 ? -errno : 0;
	}
	if (!S_ISDIR(st.st_mode))
		return -ENOTSUP;
	if (mkdir(dst, st.st_mode & 07777) < 0 && errno != EEXIST)
		return -errno;
	d = opendir(src);
	if (!d)
		return -errno;
	while (rc == 0 && (de = readdir(d))) {
		char *s, *t;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (asprintf(&s, "%s/%s", src, de->d_name) < 0)
			rc = -ENOMEM;
		else if (asprintf(&t, "%s/%s", dst, de->d_name) < 0)
			rc = -ENOMEM, free(s);
		else {
			rc = copy_tree(s, t);
			free(s);
			free(t);
		}
	}
	closedir(d);
	return rc;
}

/* Converts a path field; replies and returns NULL when it cannot be used. */
static char *take_path(struct agent *a, uint32_t id, struct span s, const char *what)
{
	char *path = span_strdup(s);

	if (!path || !*path) {
		reply_error(a, id, EINVAL, "%s is %s", what, path ? "empty" : "not a valid path (NUL byte)");
		free(path);
		return NULL;
	}
	return path;
}

/* O_NONBLOCK: opening a fifo must not block the agent, which serves every
 * session from one thread. Reads of such files then fail (ESPIPE) instead
 * of waiting. */
static int open_flags(const struct fs_open_options *o)
{
	int flags = O_CLOEXEC | O_NONBLOCK;

	if (o->write || o->append)
		flags |= o->read ? O_RDWR : O_WRONLY;
	else
		flags |= O_RDONLY;
	if (o->append)
		flags |= O_APPEND;
	if (o->truncate)
		flags |= O_TRUNC;
	if (o->create)
		flags |= O_CREAT;
	if (o->create_new)
		flags |= O_CREAT | O_EXCL;
	return flags;
}

static void op_on_path(struct agent *a, uint32_t id, const struct msg_fs_request *q)
{
	char *path = take_path(a, id, q->path, "path");
	char resolved[PATH_MAX];
	struct stat st;
	int rc, fd;

	if (!path)
		return;
	switch (q->op) {
	case FS_OP_REALPATH:
		if (!realpath(path, resolved))
			reply_error(a, id, errno, "resolve %s", path);
		else
			reply_path(a, id, resolved);
		break;
	case FS_OP_STAT:
		if ((q->follow_symlink ? stat(path, &st) : lstat(path, &st)) < 0)
			reply_error(a, id, errno, "stat %s", path);
		else
			reply_stat(a, id, path, &st);
		break;
	case FS_OP_SETSTAT:
		rc = apply_attrs(-1, path, q->follow_symlink, &q->attrs, false);
		if (rc < 0)
			reply_error(a, id, -rc, "set attributes of %s", path);
		else
			reply_ok(a, id);
		break;
	case FS_OP_LIST: {
		struct fs_entry *entries;
		char **names;
		size_t n;
		DIR *d = opendir(path);

		if (!d) {
			reply_error(a, id, errno, "list %s", path);
			break;
		}
		rc = list_dir(d, path, UINT32_MAX, &entries, &names, &n);
		closedir(d);
		if (rc < 0)
			reply_error(a, id, -rc, "list %s", path);
		else
			reply_list(a, id, entries, names, n);
		break;
	}
	case FS_OP_READLINK: {
		ssize_t n = readlink(path, resolved, sizeof(resolved) - 1);

		if (n < 0) {
			reply_error(a, id, errno, "read link %s", path);
		} else {
			resolved[n] = 0;
			reply_path(a, id, resolved);
		}
		break;
	}
	case FS_OP_MKDIR:
		rc = mkdir_parents(path, q->mode.set ? q->mode.v & 07777 : 0755);
		if (rc < 0)
			reply_error(a, id, -rc, "create directory %s", path);
		else
			reply_ok(a, id);
		break;
	case FS_OP_REMOVE:
		if (unlink(path) < 0)
			reply_error(a, id, errno, "remove %s", path);
		else
			reply_ok(a, id);
		break;
	case FS_OP_REMOVEDIR:
		if (q->recursive)
			rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
		else
			rc = rmdir(path) < 0 ? -errno : 0;
		if (rc < 0)
			reply_error(a, id, -rc, "remove directory %s", path);
		else
			reply_ok(a, id);
		break;
	case FS_OP_OPENFILE:
		fd = open(path, open_flags(&q->options), q->options.mode.set ? q->options.mode.v & 07777 : 0644);
		if (fd < 0)
			reply_error(a, id, errno, "open %s", path);
		else
			add_handle(a, id, fd, NULL, path);
		break;
	case FS_OP_OPENDIR: {
		DIR *d = opendir(path);

		if (!d)
			reply_error(a, id, errno, "open directory %s", path);
		else
			add_handle(a, id, dirfd(d), d, path);
		break;
	}
	default:
		break;
	}
	free(path);
}

static void op_two_paths(struct agent *a, uint32_t id, const struct msg_fs_request *q)
{
	bool is_symlink = q->op == FS_OP_SYMLINK;
	char *first = take_path(a, id, is_symlink ? q->target : q->src, is_symlink ? "target" : "src");
	char *second = first ? take_path(a, id, is_symlink ? q->link_path : q->dst, is_symlink ? "link_path" : "dst")
			     : NULL;
	int rc;

	if (!second) {
		free(first);
		return;
	}
	switch (q->op) {
	case FS_OP_SYMLINK:
		rc = symlink(first, second) < 0 ? -errno : 0;
		if (rc < 0)
			reply_error(a, id, -rc, "create symlink %s", second);
		break;
	case FS_OP_RENAME:
		rc = rename(first, second) < 0 ? -errno : 0;
		if (rc < 0)
			reply_error(a, id, -rc, "rename %s to %s", first, second);
		break;
	default:
		rc = copy_tree(first, second);
		if (rc < 0)
			reply_error(a, id, -rc, "copy %s to %s", first, second);
		break;
	}
	if (rc == 0)
		reply_ok(a, id);
	free(first);
	free(second);
}

/* ---- Operations on handles ---- */

static void start_read(struct agent *a, uint32_t id, struct fs_handle *h, const struct msg_fs_request *q)
{
	struct fs_state *fs = state(a);
	struct fs_read_job *job;

	if (h->dir) {
		reply_error(a, id, EISDIR, "read %s", h->path);
		return;
	}
	job = calloc(1, sizeof(*job));
	if (!job || (job->fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		free(job);
		reply_error(a, id, job ? errno : ENOMEM, "read %s", h->path);
		return;
	}
	job->id = id;
	job->offset = q->offset;
	job->remaining = q->len.set ? q->len.v : UINT64_MAX;
	job->next = fs->reads;
	fs->reads = job;
}

static void start_write(struct agent *a, uint32_t id, struct fs_handle *h, const struct msg_fs_request *q)
{
	struct fs_state *fs = state(a);
	struct fs_write_job *job;

	if (h->dir) {
		reply_error(a, id, EISDIR, "write %s", h->path);
		return;
	}
	job = calloc(1, sizeof(*job));
	if (!job || !(job->path = strdup(h->path)) || (job->fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		if (job)
			free(job->path);
		free(job);
		reply_error(a, id, ENOMEM, "write %s", h->path);
		return;
	}
	job->id = id;
	job->offset = q->offset;
	job->remaining = q->len.set ? q->len.v : UINT64_MAX;
	job->next = fs->writes;
	fs->writes = job;
	if (job->remaining == 0) {
		/* Nothing to wait for. */
		fs_handle_data(a, &(struct msg){ .type = MSG_FS_DATA, .id = id });
	}
}

static void op_on_handle(struct agent *a, uint32_t id, const struct msg_fs_request *q)
{
	struct fs_handle *h = find_handle(a, id, q->handle);
	struct stat st;
	int rc;

	if (!h) {
		reply_error(a, id, EBADF, "handle %llu is not open for this client", (unsigned long long)q->handle);
		return;
	}
	switch (q->op) {
	case FS_OP_CLOSEHANDLE:
		close_handle(a, h);
		reply_ok(a, id);
		break;
	case FS_OP_READ:
		start_read(a, id, h, q);
		break;
	case FS_OP_WRITE:
		start_write(a, id, h, q);
		break;
	case FS_OP_READDIR: {
		unsigned limit = q->limit.set ? q->limit.v : FS_DEFAULT_READDIR_LIMIT;
		struct fs_entry *entries;
		char **names;
		size_t n;

		if (!h->dir) {
			reply_error(a, id, ENOTDIR, "read directory %s", h->path);
			break;
		}
		if (limit == 0 || limit > FS_MAX_READDIR_LIMIT)
			limit = FS_MAX_READDIR_LIMIT;
		rc = list_dir(h->dir, h->path, limit, &entries, &names, &n);
		if (rc < 0)
			reply_error(a, id, -rc, "read directory %s", h->path);
		else
			reply_list(a, id, entries, names, n);
		break;
	}
	case FS_OP_FSTAT:
		if (fstat(h->fd, &st) < 0)
			reply_error(a, id, errno, "stat %s", h->path);
		else
			reply_stat(a, id, h->path, &st);
		break;
	case FS_OP_FSETSTAT:
		rc = apply_attrs(h->fd, h->path, true, &q->attrs, true);
		if (rc < 0)
			reply_error(a, id, -rc, "set attributes of %s", h->path);
		else
			reply_ok(a, id);
		break;
	default:
		break;
	}
}

void fs_handle_request(struct agent *a, const struct msg *m)
{
	const struct msg_fs_request *q = &m->u.fs_request;

	if (!state(a)) {
		agent_error("out of memory for file operations");
		return;
	}
	switch (q->op) {
	case FS_OP_SYMLINK:
	case FS_OP_COPY:
	case FS_OP_RENAME:
		op_two_paths(a, m->id, q);
		break;
	case FS_OP_CLOSEHANDLE:
	case FS_OP_READ:
	case FS_OP_WRITE:
	case FS_OP_READDIR:
	case FS_OP_FSTAT:
	case FS_OP_FSETSTAT:
		op_on_handle(a, m->id, q);
		break;
	default:
		op_on_path(a, m->id, q);
		break;
	}
}

/* ---- Streams ---- */

static void free_write_job(struct agent *a, struct fs_write_job *job)
{
	for (struct fs_write_job **p = &state(a)->writes; *p; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			break;
		}
	}
	close(job->fd);
	free(job->path);
	free(job);
}

void fs_handle_data(struct agent *a, const struct msg *m)
{
	struct fs_write_job *job = NULL;
	struct span data = m->u.data.data;

	if (!state(a))
		return;
	for (struct fs_write_job *j = a->fs->writes; j; j = j->next)
		if (j->id == m->id)
			job = j;
	if (!job)
		return;

	if (data.len > 0) {
		size_t len = data.len;
		const uint8_t *p = data.ptr;

		if (job->remaining != UINT64_MAX && len > job->remaining)
			len = (size_t)job->remaining;
		while (len > 0) {
			ssize_t n = pwrite(job->fd, p, len, (off_t)job->offset);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				job->error = n < 0 ? errno : EIO;
				break;
			}
			p += n;
			len -= (size_t)n;
			job->offset += (uint64_t)n;
			if (job->remaining != UINT64_MAX)
				job->remaining -= (uint64_t)n;
		}
	}
	/* A failure (a full disk) gets its response at once; the job goes, so the
	 * data still on its way finds none and is dropped. Otherwise the
	 * empty frame ends the stream, and so does reaching len. */
	if (job->error) {
		reply_error(a, job->id, job->error, "write %s at offset %llu", job->path,
			    (unsigned long long)job->offset);
		free_write_job(a, job);
	} else if (data.len == 0 || job->remaining == 0) {
		reply_ok(a, job->id);
		free_write_job(a, job);
	}
}

static void free_read_job(struct agent *a, struct fs_read_job *job)
{
	for (struct fs_read_job **p = &state(a)->reads; *p; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			break;
		}
	}
	close(job->fd);
	free(job);
}

bool fs_pending_work(struct agent *a)
{
	if (!a->fs || buf_pending(&a->out) > AGENT_OUT_HIGH_BYTES)
		return false;
	for (struct fs_read_job *job = a->fs->reads; job; job = job->next)
		if (!exec_id_paused(a, job->id))
			return true;
	return false;
}

/* Sends one chunk of every read that may go on, while the channel has
 * room. */
void fs_pump(struct agent *a)
{
	static uint8_t chunk[FS_CHUNK_BYTES];
	struct fs_read_job *job, *next;

	if (!a->fs)
		return;
	for (job = a->fs->reads; job; job = next) {
		size_t want = FS_CHUNK_BYTES;
		ssize_t n;

		next = job->next;
		if (buf_pending(&a->out) > AGENT_OUT_HIGH_BYTES)
			return;
		if (exec_id_paused(a, job->id))
			continue;
		if (job->remaining < want)
			want = (size_t)job->remaining;
		do
			n = want ? pread(job->fd, chunk, want, (off_t)job->offset) : 0;
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			reply_error(a, job->id, errno, "read at offset %llu", (unsigned long long)job->offset);
			free_read_job(a, job);
			continue;
		}
		if (n > 0) {
			agent_send_data(a, MSG_FS_DATA, job->id, chunk, (size_t)n);
			job->offset += (uint64_t)n;
			if (job->remaining != UINT64_MAX)
				job->remaining -= (uint64_t)n;
		}
		if (n == 0 || job->remaining == 0) {
			reply_ok(a, job->id);
			free_read_job(a, job);
		}
	}
}

void fs_detach_range(struct agent *a, uint32_t id_start, uint32_t id_end)
{
	struct fs_handle **hp;
	struct fs_read_job *r, *rnext;
	struct fs_write_job *w, *wnext;

	if (!a->fs)
		return;
	for (hp = &a->fs->handles; *hp;) {
		struct fs_handle *h = *hp;

		if (h->owner_start >= id_start && h->owner_start < id_end) {
			*hp = h->next;
			free_handle(h);
		} else {
			hp = &h->next;
		}
	}
	for (r = a->fs->reads; r; r = rnext) {
		rnext = r->next;
		if (r->id >= id_start && r->id < id_end)
			free_read_job(a, r);
	}
	for (w = a->fs->writes; w; w = wnext) {
		wnext = w->next;
		if (w->id >= id_start && w->id < id_end)
			free_write_job(a, w);
	}
}
