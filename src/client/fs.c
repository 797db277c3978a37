/* File operations of the client library, over core.fs.request. */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"

/* Chunks of a write stream; well below the frame limit. */
#define WRITE_CHUNK_BYTES (1024 * 1024)

/* One request and what its frames brought. */
struct fs_call {
	struct client_call call;
	struct msg_fs_response response;
	char error[1024];
	char path[4096];
	msb_file_info *entries;
	size_t n_entries;
	bool entries_failed;
	msb_fs_sink sink;
	void *sink_data;
	int sink_error;
};

static void copy_span(char *out, size_t len, struct span s)
{
	size_t n = s.len < len - 1 ? s.len : len - 1;

	if (s.ptr)
		memcpy(out, s.ptr, n);
	out[s.ptr ? n : 0] = 0;
}

static void fill_info(msb_file_info *info, const struct fs_entry *e)
{
	static const char *const kinds[] = { "file", "dir", "symlink", "other" };

	memset(info, 0, sizeof(*info));
	copy_span(info->path, sizeof(info->path), e->path);
	snprintf(info->kind, sizeof(info->kind), "%s", kinds[e->kind]);
	info->size = e->size;
	info->mode = e->mode;
	info->uid = e->uid;
	info->gid = e->gid;
	if (e->mtime.set)
		info->mtime = e->mtime.v;
	else if (e->modified.set)
		info->mtime = e->modified.v;
	info->atime = e->atime.set ? e->atime.v : 0;
}

static void on_fs_frame(struct client_call *call, const struct msg *m)
{
	struct fs_call *fc = (struct fs_call *)call;

	if (m->type == MSG_FS_DATA) {
		if (fc->sink && fc->sink_error == 0 && m->u.data.data.len)
			fc->sink_error = fc->sink(fc->sink_data, m->u.data.data.ptr, m->u.data.data.len);
		return;
	}
	if (m->type != MSG_FS_RESPONSE)
		return;

	/* The frame goes away after this call: keep copies. */
	fc->response = m->u.fs_response;
	copy_span(fc->error, sizeof(fc->error), m->u.fs_response.error);
	fc->response.error = SPAN_NONE;
	fc->response.list = NULL;
	if (m->u.fs_response.data_kind == FS_DATA_PATH)
		copy_span(fc->path, sizeof(fc->path), m->u.fs_response.path);
	if (m->u.fs_response.data_kind == FS_DATA_STAT) {
		fc->entries = calloc(1, sizeof(*fc->entries));
		if (fc->entries) {
			fill_info(fc->entries, &m->u.fs_response.stat);
			fc->n_entries = 1;
		}
		fc->entries_failed = !fc->entries;
	}
	if (m->u.fs_response.data_kind == FS_DATA_LIST) {
		fc->entries = calloc(m->u.fs_response.n_list ? m->u.fs_response.n_list : 1, sizeof(*fc->entries));
		for (size_t i = 0; fc->entries && i < m->u.fs_response.n_list; i++)
			fill_info(&fc->entries[i], &m->u.fs_response.list[i]);
		fc->n_entries = fc->entries ? m->u.fs_response.n_list : 0;
		fc->entries_failed = !fc->entries;
	}
	call->done = true;
}

/* Sends the request and waits for its response; turns a failure reported
 * by the guest into -errno with the guest's message. */
static int call(msb_client *c, struct fs_call *fc, const struct msg_fs_request *q, msb_error *err)
{
	struct msg m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.type = MSG_FS_REQUEST;
	m.id = fc->call.id = client_next_id(c);
	m.u.fs_request = *q;
	fc->call.on_frame = on_fs_frame;
	client_call_add(c, &fc->call);
	rc = client_send(c, &m, err);
	if (rc == 0)
		rc = client_call_wait(c, &fc->call, err);
	client_call_remove(c, &fc->call);
	if (rc < 0)
		return rc;
	if (!fc->response.ok) {
		int code = fc->response.err.set ? -fc->response.err.v : -EIO;

		return err_set(err, code, "%s", fc->error[0] ? fc->error : "the guest reported a failure");
	}
	if (fc->entries_failed)
		return err_set(err, -ENOMEM, "out of memory");
	return 0;
}

static void fs_call_init(struct fs_call *fc)
{
	memset(fc, 0, sizeof(*fc));
}

static int simple(msb_client *c, const struct msg_fs_request *q, msb_error *err)
{
	struct fs_call fc;
	int rc;

	fs_call_init(&fc);
	rc = call(c, &fc, q, err);
	free(fc.entries);
	return rc;
}

int msb_fs_stat(msb_client *c, const char *path, bool follow_symlink, msb_file_info *out, msb_error *err)
{
	struct msg_fs_request q = { .op = FS_OP_STAT, .path = span_cstr(path), .follow_symlink = follow_symlink };
	struct fs_call fc;
	int rc;

	fs_call_init(&fc);
	rc = call(c, &fc, &q, err);
	if (rc == 0 && fc.n_entries == 1)
		*out = fc.entries[0];
	else if (rc == 0)
		rc = err_set(err, -EPROTO, "stat %s: the guest sent no entry", path);
	free(fc.entries);
	return rc;
}

static void close_handle(msb_client *c, uint64_t handle);

/* Entries of a directory are read in pages of this many (OpenDir and
 * ReadDir), so that no response nears the frame size limit whatever the
 * directory holds. */
#define LIST_PAGE_ENTRIES 512

static int read_dir_page(msb_client *c, uint64_t handle, msb_file_info **list, size_t *count, size_t *cap,
			 size_t *got, msb_error *err)
{
	struct msg_fs_request q = { .op = FS_OP_READDIR, .handle = handle, .limit = { true, LIST_PAGE_ENTRIES } };
	struct fs_call fc;
	int rc;

	fs_call_init(&fc);
	rc = call(c, &fc, &q, err);
	*got = fc.n_entries;
	if (rc == 0 && *count + fc.n_entries > *cap) {
		size_t new_cap = (*cap ? *cap * 2 : LIST_PAGE_ENTRIES) + fc.n_entries;
		msb_file_info *bigger = realloc(*list, new_cap * sizeof(**list));

		if (!bigger)
			rc = err_set(err, -ENOMEM, "out of memory");
		else {
			*list = bigger;
			*cap = new_cap;
		}
	}
	if (rc == 0 && fc.n_entries)
		memcpy(*list + *count, fc.entries, fc.n_entries * sizeof(**list));
	if (rc == 0)
		*count += fc.n_entries;
	free(fc.entries);
	return rc;
}

int msb_fs_list(msb_client *c, const char *path, msb_file_info **out, size_t *count, msb_error *err)
{
	struct msg_fs_request q = { .op = FS_OP_OPENDIR, .path = span_cstr(path) };
	msb_file_info *list = NULL;
	size_t n = 0, cap = 0, got;
	struct fs_call fc;
	uint64_t handle;
	int rc;

	fs_call_init(&fc);
	rc = call(c, &fc, &q, err);
	free(fc.entries);
	if (rc == 0 && fc.response.data_kind != FS_DATA_HANDLE)
		rc = err_set(err, -EPROTO, "list %s: the guest sent no handle", path);
	if (rc < 0)
		return rc;
	handle = fc.response.handle;

	do
		rc = read_dir_page(c, handle, &list, &n, &cap, &got, err);
	while (rc == 0 && got > 0);
	close_handle(c, handle);
	if (rc < 0) {
		free(list);
		return rc;
	}
	*out = list ? list : calloc(1, sizeof(*list));
	*count = n;
	return *out ? 0 : err_set(err, -ENOMEM, "out of memory");
}

int msb_fs_mkdir(msb_client *c, const char *path, uint32_t mode, msb_error *err)
{
	struct msg_fs_request q = { .op = FS_OP_MKDIR, .path = span_cstr(path), .mode = { true, mode } };

	return simple(c, &q, err);
}

int msb_fs_remove(msb_client *c, const char *path, bool recursive, msb_error *err)
{
	struct msg_fs_request q = { .op = FS_OP_REMOVE, .path = span_cstr(path) };
	msb_file_info info;
	int rc = msb_fs_stat(c, path, false, &info, err);

	if (rc < 0)
		return rc;
	if (strcmp(info.kind, "dir") == 0) {
		q.op = FS_OP_REMOVEDIR;
		q.recursive = recursive;
	}
	return simple(c, &q, err);
}

int msb_fs_rename(msb_client *c, const char *from, const char *to, msb_error *err)
{
	struct msg_fs_request q = { .op = FS_OP_RENAME, .src = span_cstr(from), .dst = span_cstr(to) };

	return simple(c, &q, err);
}

int msb_fs_symlink(msb_client *c, const char *target, const char *link_path, msb_error *err)
{
	struct msg_fs_request q = { .op = FS_OP_SYMLINK, .target = span_cstr(target), .link_path = span_cstr(link_path) };

	return simple(c, &q, err);
}

int msb_fs_readlink(msb_client *c, const char *path, char **target, msb_error *err)
{
	struct msg_fs_request q = { .op = FS_OP_READLINK, .path = span_cstr(path) };
	struct fs_call fc;
	int rc;

	fs_call_init(&fc);
	rc = call(c, &fc, &q, err);
	free(fc.entries);
	if (rc < 0)
		return rc;
	*target = strdup(fc.path);
	return *target ? 0 : err_set(err, -ENOMEM, "out of memory");
}

int msb_fs_set_times_mode(msb_client *c, const char *path, bool follow_symlink, int64_t mode, int64_t atime,
			  int64_t mtime, msb_error *err)
{
	struct msg_fs_request q = { .op = FS_OP_SETSTAT, .path = span_cstr(path), .follow_symlink = follow_symlink };

	if (mode >= 0)
		q.attrs.mode = (struct opt_u32){ true, (uint32_t)mode };
	if (atime != MSB_FS_TIME_KEEP)
		q.attrs.atime = (struct opt_i64){ true, atime };
	if (mtime != MSB_FS_TIME_KEEP)
		q.attrs.mtime = (struct opt_i64){ true, mtime };
	return simple(c, &q, err);
}

/* ---- Streams ---- */

static int open_handle(msb_client *c, const char *path, const struct fs_open_options *o, uint64_t *handle,
		       msb_error *err)
{
	struct msg_fs_request q = { .op = FS_OP_OPENFILE, .path = span_cstr(path), .options = *o };
	struct fs_call fc;
	int rc;

	fs_call_init(&fc);
	rc = call(c, &fc, &q, err);
	free(fc.entries);
	if (rc == 0 && fc.response.data_kind != FS_DATA_HANDLE)
		rc = err_set(err, -EPROTO, "open %s: the guest sent no handle", path);
	if (rc == 0)
		*handle = fc.response.handle;
	return rc;
}

static void close_handle(msb_client *c, uint64_t handle)
{
	struct msg_fs_request q = { .op = FS_OP_CLOSEHANDLE, .handle = handle };

	simple(c, &q, NULL);
}

int msb_fs_read_stream(msb_client *c, const char *path, msb_fs_sink sink, void *user_data, msb_error *err)
{
	struct fs_open_options o = { .read = true };
	struct msg_fs_request q = { .op = FS_OP_READ };
	struct fs_call fc;
	uint64_t handle;
	int rc = open_handle(c, path, &o, &handle, err);

	if (rc < 0)
		return rc;
	fs_call_init(&fc);
	fc.sink = sink;
	fc.sink_data = user_data;
	q.handle = handle;
	rc = call(c, &fc, &q, err);
	close_handle(c, handle);
	if (rc == 0 && fc.sink_error < 0)
		rc = err_sys(err, fc.sink_error, "read %s", path);
	return rc;
}

struct buffer_sink {
	char *data;
	size_t len, cap, max;
};

static int buffer_sink(void *user_data, const void *data, size_t len)
{
	struct buffer_sink *b = user_data;

	if (b->len + len > b->max)
		return -EFBIG;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 65536;
		char *bigger;

		while (cap < b->len + len)
			cap *= 2;
		bigger = realloc(b->data, cap + 1);
		if (!bigger)
			return -ENOMEM;
		b->data = bigger;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

int msb_fs_read_file(msb_client *c, const char *path, size_t max_len, void **data, size_t *len, msb_error *err)
{
	struct buffer_sink b = { .max = max_len };
	int rc = msb_fs_read_stream(c, path, buffer_sink, &b, err);

	if (rc < 0) {
		free(b.data);
		return rc;
	}
	if (!b.data)
		b.data = malloc(1);
	if (!b.data)
		return err_set(err, -ENOMEM, "out of memory");
	b.data[b.len] = 0;
	*data = b.data;
	*len = b.len;
	return 0;
}

/* The guest responds to a Write request only after its data, so the
 * response arrives while (or after) the chunks go out. */
int msb_fs_write_stream(msb_client *c, const char *path, uint32_t mode, msb_fs_source source, void *user_data,
			msb_error *err)
{
	struct fs_open_options o = { .write = true, .create = true, .truncate = true, .mode = { true, mode } };
	struct msg_fs_request q = { .op = FS_OP_WRITE };
	struct fs_call fc;
	struct msg m;
	uint64_t handle;
	char *chunk;
	int rc = open_handle(c, path, &o, &handle, err);

	if (rc < 0)
		return rc;
	chunk = malloc(WRITE_CHUNK_BYTES);
	if (!chunk) {
		close_handle(c, handle);
		return err_set(err, -ENOMEM, "out of memory");
	}

	fs_call_init(&fc);
	fc.call.id = client_next_id(c);
	fc.call.on_frame = on_fs_frame;
	q.handle = handle;
	memset(&m, 0, sizeof(m));
	m.type = MSG_FS_REQUEST;
	m.id = fc.call.id;
	m.u.fs_request = q;
	client_call_add(c, &fc.call);
	rc = client_send(c, &m, err);

	/* Stream until the source ends, or until an early response (an
	 * error such as a full disk) arrives. */
	while (rc == 0 && !fc.call.done) {
		long n = source(user_data, chunk, WRITE_CHUNK_BYTES);

		if (n < 0) {
			/* End the stream so the guest closes it, then report. */
			client_send_data(c, MSG_FS_DATA, fc.call.id, "", 0, NULL);
			client_call_wait(c, &fc.call, NULL);
			rc = err_sys(err, (int)n, "read the data for %s", path);
			break;
		}
		rc = client_send_data(c, MSG_FS_DATA, fc.call.id, chunk, (size_t)n, err);
		if (n == 0)
			break;
	}
	if (rc == 0 || !fc.call.done) {
		int wait_rc = client_call_wait(c, &fc.call, rc == 0 ? err : NULL);

		if (rc == 0)
			rc = wait_rc;
	}
	client_call_remove(c, &fc.call);
	free(chunk);
	free(fc.entries);
	if (rc == 0 && !fc.response.ok)
		rc = err_set(err, fc.response.err.set ? -fc.response.err.v : -EIO, "%s",
			     fc.error[0] ? fc.error : "the guest reported a failure");
	close_handle(c, handle);
	return rc;
}

struct buffer_source {
	const char *data;
	size_t len, pos;
};

static long buffer_source(void *user_data, void *buf, size_t cap)
{
	struct buffer_source *b = user_data;
	size_t n = b->len - b->pos < cap ? b->len - b->pos : cap;

	memcpy(buf, b->data + b->pos, n);
	b->pos += n;
	return (long)n;
}

int msb_fs_write_file(msb_client *c, const char *path, const void *data, size_t len, uint32_t mode,
		      msb_error *err)
{
	struct buffer_source b = { .data = data, .len = len };

	return msb_fs_write_stream(c, path, mode, buffer_source, &b, err);
}
