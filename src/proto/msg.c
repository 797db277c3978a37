/* Typed messages: frame bodies to and from struct msg. */
#include "msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cbor.h"
#include "frame.h"

struct msg_type_info {
	const char *name;
	uint8_t flags;
};

static const struct msg_type_info msg_types[MSG_TYPE_COUNT] = {
	[MSG_UNKNOWN] = { NULL, 0 },
	[MSG_INIT_RESOLVED] = { "core.init.resolved", 0 },
	[MSG_INIT_ACK] = { "core.init.ack", 0 },
	[MSG_READY] = { "core.ready", 0 },
	[MSG_SHUTDOWN] = { "core.shutdown", FRAME_FLAG_SHUTDOWN },
	[MSG_CLOCK_SYNC] = { "core.clock.sync", 0 },
	[MSG_CLIENT_DISCONNECTED] = { "core.relay.client.disconnected", 0 },
	[MSG_PING] = { "core.ping", 0 },
	[MSG_PONG] = { "core.pong", FRAME_FLAG_TERMINAL },
	[MSG_TOUCH] = { "core.touch", 0 },
	[MSG_TOUCHED] = { "core.touched", FRAME_FLAG_TERMINAL },
	[MSG_ERROR] = { "core.error", FRAME_FLAG_TERMINAL },
	[MSG_EXEC_REQUEST] = { "core.exec.request", FRAME_FLAG_SESSION_START },
	[MSG_EXEC_STARTED] = { "core.exec.started", 0 },
	[MSG_EXEC_STDIN] = { "core.exec.stdin", 0 },
	[MSG_EXEC_STDIN_ERROR] = { "core.exec.stdin.error", 0 },
	[MSG_EXEC_STDOUT] = { "core.exec.stdout", 0 },
	[MSG_EXEC_STDERR] = { "core.exec.stderr", 0 },
	[MSG_EXEC_EXITED] = { "core.exec.exited", FRAME_FLAG_TERMINAL },
	[MSG_EXEC_FAILED] = { "core.exec.failed", FRAME_FLAG_TERMINAL },
	[MSG_EXEC_RESIZE] = { "core.exec.resize", 0 },
	[MSG_EXEC_SIGNAL] = { "core.exec.signal", 0 },
	[MSG_FS_REQUEST] = { "core.fs.request", FRAME_FLAG_SESSION_START },
	[MSG_FS_DATA] = { "core.fs.data", 0 },
	[MSG_FS_RESPONSE] = { "core.fs.response", FRAME_FLAG_TERMINAL },
	[MSG_FLOW_PAUSE] = { "msb.flow.pause", 0 },
	[MSG_FLOW_RESUME] = { "msb.flow.resume", 0 },
	[MSG_EXEC_STDIN_CONSUMED] = { "msb.exec.stdin.consumed", 0 },
};

/* Variant names of FsOp, as the externally tagged enum spells them. */
static const char *const fs_op_names[FS_OP_COUNT] = {
	[FS_OP_REALPATH] = "RealPath",
	[FS_OP_STAT] = "Stat",
	[FS_OP_SETSTAT] = "SetStat",
	[FS_OP_LIST] = "List",
	[FS_OP_READLINK] = "ReadLink",
	[FS_OP_SYMLINK] = "Symlink",
	[FS_OP_MKDIR] = "Mkdir",
	[FS_OP_REMOVE] = "Remove",
	[FS_OP_REMOVEDIR] = "RemoveDir",
	[FS_OP_COPY] = "Copy",
	[FS_OP_RENAME] = "Rename",
	[FS_OP_OPENFILE] = "OpenFile",
	[FS_OP_OPENDIR] = "OpenDir",
	[FS_OP_CLOSEHANDLE] = "CloseHandle",
	[FS_OP_READ] = "Read",
	[FS_OP_WRITE] = "Write",
	[FS_OP_READDIR] = "ReadDir",
	[FS_OP_FSTAT] = "FStat",
	[FS_OP_FSETSTAT] = "FSetStat",
};

static const char *const fs_kind_names[] = {
	[FS_KIND_FILE] = "file",
	[FS_KIND_DIR] = "dir",
	[FS_KIND_SYMLINK] = "symlink",
	[FS_KIND_OTHER] = "other",
};

static const char *const fs_data_names[] = {
	[FS_DATA_NONE] = NULL,
	[FS_DATA_STAT] = "Stat",
	[FS_DATA_LIST] = "List",
	[FS_DATA_HANDLE] = "Handle",
	[FS_DATA_PATH] = "Path",
};

const char *msg_type_name(enum msg_type type)
{
	if ((unsigned)type >= MSG_TYPE_COUNT)
		return NULL;
	return msg_types[type].name;
}

enum msg_type msg_type_from_name(struct span name)
{
	for (int t = 1; t < MSG_TYPE_COUNT; t++)
		if (span_eq_cstr(name, msg_types[t].name))
			return (enum msg_type)t;
	return MSG_UNKNOWN;
}

uint8_t msg_type_flags(enum msg_type type)
{
	if ((unsigned)type >= MSG_TYPE_COUNT)
		return 0;
	return msg_types[type].flags;
}

const char *fs_op_name(enum fs_op op)
{
	return (unsigned)op < FS_OP_COUNT ? fs_op_names[op] : NULL;
}

const char *fs_kind_name(enum fs_kind kind)
{
	return (unsigned)kind <= FS_KIND_OTHER ? fs_kind_names[kind] : NULL;
}

/* ---- Encoding ---------------------------------------------------------- */

/* Accumulates the first error so that encoders read as straight lists of
 * fields; one check at the end reports it. */
struct enc {
	struct buf *out;
	int rc;
};

static void enc_key(struct enc *e, const char *key)
{
	if (e->rc == 0)
		e->rc = cbor_put_cstr(e->out, key);
}

static void enc_map(struct enc *e, uint64_t n)
{
	if (e->rc == 0)
		e->rc = cbor_put_map(e->out, n);
}

static void enc_array(struct enc *e, uint64_t n)
{
	if (e->rc == 0)
		e->rc = cbor_put_array(e->out, n);
}

static void enc_uint(struct enc *e, const char *key, uint64_t v)
{
	enc_key(e, key);
	if (e->rc == 0)
		e->rc = cbor_put_uint(e->out, v);
}

static void enc_int(struct enc *e, const char *key, int64_t v)
{
	enc_key(e, key);
	if (e->rc == 0)
		e->rc = cbor_put_int(e->out, v);
}

static void enc_bool(struct enc *e, const char *key, bool v)
{
	enc_key(e, key);
	if (e->rc == 0)
		e->rc = cbor_put_bool(e->out, v);
}

static void enc_null(struct enc *e)
{
	if (e->rc == 0)
		e->rc = cbor_put_null(e->out);
}

static void enc_span_text(struct enc *e, struct span s)
{
	if (e->rc == 0)
		e->rc = cbor_put_text(e->out, (const char *)s.ptr, s.len);
}

/* A required text field; an absent span encodes as the empty string. */
static void enc_text(struct enc *e, const char *key, struct span s)
{
	enc_key(e, key);
	if (!s.ptr)
		s = span_of("", 0);
	enc_span_text(e, s);
}

static void enc_opt_text(struct enc *e, const char *key, struct span s)
{
	enc_key(e, key);
	if (s.ptr)
		enc_span_text(e, s);
	else
		enc_null(e);
}

static void enc_bytes(struct enc *e, const char *key, struct span s)
{
	enc_key(e, key);
	if (e->rc == 0)
		e->rc = cbor_put_bytes(e->out, s.ptr, s.len);
}

static void enc_opt_u32(struct enc *e, const char *key, struct opt_u32 v)
{
	if (v.set)
		return enc_uint(e, key, v.v);
	enc_key(e, key);
	enc_null(e);
}

static void enc_opt_u64(struct enc *e, const char *key, struct opt_u64 v)
{
	if (v.set)
		return enc_uint(e, key, v.v);
	enc_key(e, key);
	enc_null(e);
}

static void enc_opt_i32(struct enc *e, const char *key, struct opt_i32 v)
{
	if (v.set)
		return enc_int(e, key, v.v);
	enc_key(e, key);
	enc_null(e);
}

static void enc_opt_i64(struct enc *e, const char *key, struct opt_i64 v)
{
	if (v.set)
		return enc_int(e, key, v.v);
	enc_key(e, key);
	enc_null(e);
}

static void enc_text_array(struct enc *e, const char *key, const struct span *items, size_t n)
{
	enc_key(e, key);
	enc_array(e, n);
	for (size_t i = 0; i < n; i++)
		enc_span_text(e, items[i]);
}

static void enc_exec_request(struct enc *e, const struct msg_exec_request *x)
{
	enc_map(e, 9);
	enc_text(e, "cmd", x->cmd);
	enc_text_array(e, "args", x->args, x->n_args);
	enc_text_array(e, "env", x->env, x->n_env);
	enc_opt_text(e, "cwd", x->cwd);
	enc_opt_text(e, "user", x->user);
	enc_bool(e, "tty", x->tty);
	enc_uint(e, "rows", x->rows);
	enc_uint(e, "cols", x->cols);
	enc_key(e, "rlimits");
	enc_array(e, x->n_rlimits);
	for (size_t i = 0; i < x->n_rlimits; i++) {
		enc_map(e, 3);
		enc_text(e, "resource", x->rlimits[i].resource);
		enc_uint(e, "soft", x->rlimits[i].soft);
		enc_uint(e, "hard", x->rlimits[i].hard);
	}
}

static void enc_attrs(struct enc *e, const struct fs_attrs *a)
{
	enc_key(e, "attrs");
	enc_map(e, 6);
	enc_opt_u32(e, "mode", a->mode);
	enc_opt_u32(e, "uid", a->uid);
	enc_opt_u32(e, "gid", a->gid);
	enc_opt_u64(e, "size", a->size);
	enc_opt_i64(e, "atime", a->atime);
	enc_opt_i64(e, "mtime", a->mtime);
}

static void enc_open_options(struct enc *e, const struct fs_open_options *o)
{
	enc_key(e, "options");
	enc_map(e, 7);
	enc_bool(e, "read", o->read);
	enc_bool(e, "write", o->write);
	enc_bool(e, "append", o->append);
	enc_bool(e, "create", o->create);
	enc_bool(e, "truncate", o->truncate);
	enc_bool(e, "create_new", o->create_new);
	enc_opt_u32(e, "mode", o->mode);
}

static void enc_fs_request(struct enc *e, const struct msg_fs_request *x)
{
	const char *variant = fs_op_name(x->op);

	if (!variant) {
		e->rc = -EINVAL;
		return;
	}
	enc_map(e, 1);
	enc_key(e, "op");
	enc_map(e, 1);
	enc_key(e, variant);

	switch (x->op) {
	case FS_OP_REALPATH:
	case FS_OP_LIST:
	case FS_OP_READLINK:
	case FS_OP_REMOVE:
	case FS_OP_OPENDIR:
		enc_map(e, 1);
		enc_text(e, "path", x->path);
		break;
	case FS_OP_STAT:
		enc_map(e, 2);
		enc_text(e, "path", x->path);
		enc_bool(e, "follow_symlink", x->follow_symlink);
		break;
	case FS_OP_SETSTAT:
		enc_map(e, 3);
		enc_text(e, "path", x->path);
		enc_bool(e, "follow_symlink", x->follow_symlink);
		enc_attrs(e, &x->attrs);
		break;
	case FS_OP_SYMLINK:
		enc_map(e, 2);
		enc_text(e, "target", x->target);
		enc_text(e, "link_path", x->link_path);
		break;
	case FS_OP_MKDIR:
		enc_map(e, 2);
		enc_text(e, "path", x->path);
		enc_opt_u32(e, "mode", x->mode);
		break;
	case FS_OP_REMOVEDIR:
		enc_map(e, 2);
		enc_text(e, "path", x->path);
		enc_bool(e, "recursive", x->recursive);
		break;
	case FS_OP_COPY:
	case FS_OP_RENAME:
		enc_map(e, 2);
		enc_text(e, "src", x->src);
		enc_text(e, "dst", x->dst);
		break;
	case FS_OP_OPENFILE:
		enc_map(e, 2);
		enc_text(e, "path", x->path);
		enc_open_options(e, &x->options);
		break;
	case FS_OP_CLOSEHANDLE:
	case FS_OP_FSTAT:
		enc_map(e, 1);
		enc_uint(e, "handle", x->handle);
		break;
	case FS_OP_READ:
	case FS_OP_WRITE:
		enc_map(e, 3);
		enc_uint(e, "handle", x->handle);
		enc_uint(e, "offset", x->offset);
		enc_opt_u64(e, "len", x->len);
		break;
	case FS_OP_READDIR:
		enc_map(e, 2);
		enc_uint(e, "handle", x->handle);
		enc_opt_u32(e, "limit", x->limit);
		break;
	case FS_OP_FSETSTAT:
		enc_map(e, 2);
		enc_uint(e, "handle", x->handle);
		enc_attrs(e, &x->attrs);
		break;
	case FS_OP_COUNT:
		e->rc = -EINVAL;
		break;
	}
}

static void enc_fs_entry(struct enc *e, const struct fs_entry *x)
{
	const char *kind = fs_kind_name(x->kind);

	if (!kind) {
		e->rc = -EINVAL;
		return;
	}
	enc_map(e, 9);
	enc_text(e, "path", x->path);
	enc_text(e, "kind", span_cstr(kind));
	enc_uint(e, "size", x->size);
	enc_uint(e, "mode", x->mode);
	enc_opt_i64(e, "modified", x->modified);
	enc_uint(e, "uid", x->uid);
	enc_uint(e, "gid", x->gid);
	enc_opt_i64(e, "atime", x->atime);
	enc_opt_i64(e, "mtime", x->mtime);
}

static void enc_fs_response(struct enc *e, const struct msg_fs_response *x)
{
	enc_map(e, x->err.set ? 5 : 3);
	enc_bool(e, "ok", x->ok);
	enc_opt_text(e, "error", x->error);
	enc_key(e, "data");

	if (x->data_kind == FS_DATA_NONE) {
		enc_null(e);
	} else if ((unsigned)x->data_kind > FS_DATA_PATH) {
		e->rc = -EINVAL;
	} else {
		enc_map(e, 1);
		enc_key(e, fs_data_names[x->data_kind]);
		switch (x->data_kind) {
		case FS_DATA_STAT:
			enc_fs_entry(e, &x->stat);
			break;
		case FS_DATA_LIST:
			enc_array(e, x->n_list);
			for (size_t i = 0; i < x->n_list; i++)
				enc_fs_entry(e, &x->list[i]);
			break;
		case FS_DATA_HANDLE:
			if (e->rc == 0)
				e->rc = cbor_put_uint(e->out, x->handle);
			break;
		case FS_DATA_PATH:
			enc_span_text(e, x->path);
			break;
		case FS_DATA_NONE:
			break;
		}
	}

	if (x->err.set) {
		enc_int(e, "errno", x->err.v);
		enc_opt_text(e, "errno_name", x->errno_name);
	}
}

static void enc_payload(struct enc *e, const struct msg *m)
{
	switch (m->type) {
	case MSG_INIT_RESOLVED:
		enc_map(e, 1);
		enc_key(e, "default_user");
		enc_map(e, 2);
		enc_uint(e, "uid", m->u.init_resolved.uid);
		enc_uint(e, "gid", m->u.init_resolved.gid);
		break;
	case MSG_INIT_ACK:
	case MSG_PING:
	case MSG_PONG:
	case MSG_TOUCH:
		enc_map(e, 0);
		break;
	case MSG_READY:
		enc_map(e, 4);
		enc_uint(e, "boot_time_ns", m->u.ready.boot_time_ns);
		enc_uint(e, "init_time_ns", m->u.ready.init_time_ns);
		enc_uint(e, "ready_time_ns", m->u.ready.ready_time_ns);
		enc_opt_text(e, "agent_version", m->u.ready.agent_version);
		break;
	case MSG_SHUTDOWN:
		enc_null(e);
		break;
	case MSG_CLOCK_SYNC:
		enc_map(e, 1);
		enc_uint(e, "unix_time_nanos", m->u.clock_sync.unix_time_nanos);
		break;
	case MSG_CLIENT_DISCONNECTED:
	case MSG_FLOW_PAUSE:
	case MSG_FLOW_RESUME:
		enc_map(e, 2);
		enc_uint(e, "id_start", m->u.client_disconnected.id_start);
		enc_uint(e, "id_end_exclusive", m->u.client_disconnected.id_end_exclusive);
		break;
	case MSG_TOUCHED:
		enc_map(e, 1);
		enc_uint(e, "activity_seq", m->u.touched.activity_seq);
		break;
	case MSG_ERROR:
		enc_map(e, 3);
		enc_text(e, "kind", m->u.error.kind);
		enc_text(e, "message", m->u.error.message);
		enc_opt_text(e, "offending_type", m->u.error.offending_type);
		break;
	case MSG_EXEC_REQUEST:
		enc_exec_request(e, &m->u.exec_request);
		break;
	case MSG_EXEC_STARTED:
		enc_map(e, 1);
		enc_uint(e, "pid", m->u.exec_started.pid);
		break;
	case MSG_EXEC_STDIN_CONSUMED:
		enc_map(e, 1);
		enc_uint(e, "bytes", m->u.exec_stdin_consumed.bytes);
		break;
	case MSG_EXEC_STDIN:
	case MSG_EXEC_STDOUT:
	case MSG_EXEC_STDERR:
	case MSG_FS_DATA:
		enc_map(e, 1);
		enc_bytes(e, "data", m->u.data.data);
		break;
	case MSG_EXEC_STDIN_ERROR:
		enc_map(e, 3);
		enc_opt_i32(e, "errno", m->u.exec_stdin_error.err);
		enc_opt_text(e, "errno_name", m->u.exec_stdin_error.errno_name);
		enc_text(e, "message", m->u.exec_stdin_error.message);
		break;
	case MSG_EXEC_EXITED:
		enc_map(e, m->u.exec_exited.signal.set ? 2 : 1);
		enc_int(e, "code", m->u.exec_exited.code);
		if (m->u.exec_exited.signal.set)
			enc_int(e, "signal", m->u.exec_exited.signal.v);
		break;
	case MSG_EXEC_FAILED:
		enc_map(e, 5);
		enc_text(e, "kind", m->u.exec_failed.kind);
		enc_opt_i32(e, "errno", m->u.exec_failed.err);
		enc_opt_text(e, "errno_name", m->u.exec_failed.errno_name);
		enc_text(e, "message", m->u.exec_failed.message);
		enc_opt_text(e, "stage", m->u.exec_failed.stage);
		break;
	case MSG_EXEC_RESIZE:
		enc_map(e, 2);
		enc_uint(e, "rows", m->u.exec_resize.rows);
		enc_uint(e, "cols", m->u.exec_resize.cols);
		break;
	case MSG_EXEC_SIGNAL:
		enc_map(e, 1);
		enc_int(e, "signal", m->u.exec_signal.signal);
		break;
	case MSG_FS_REQUEST:
		enc_fs_request(e, &m->u.fs_request);
		break;
	case MSG_FS_RESPONSE:
		enc_fs_response(e, &m->u.fs_response);
		break;
	case MSG_UNKNOWN:
	case MSG_TYPE_COUNT:
		e->rc = -EINVAL;
		break;
	}
}

/* Appends header and body around a payload of payload_len bytes; the caller
 * appends the payload itself right after. */
static int put_frame_prefix(struct buf *out, uint32_t id, enum msg_type type, uint32_t version,
			    size_t payload_len)
{
	const char *name = msg_type_name(type);
	uint8_t header[FRAME_HEADER_BYTES];
	size_t start = out->len;
	size_t body_len;
	int rc;

	rc = buf_reserve(out, FRAME_HEADER_BYTES + 64);
	if (rc < 0)
		return rc;
	out->len += FRAME_HEADER_BYTES;

	rc = cbor_put_map(out, 3);
	if (rc == 0)
		rc = cbor_put_cstr(out, "v");
	if (rc == 0)
		rc = cbor_put_uint(out, version ? version : MSG_GENERATION);
	if (rc == 0)
		rc = cbor_put_cstr(out, "t");
	if (rc == 0)
		rc = cbor_put_cstr(out, name);
	if (rc == 0)
		rc = cbor_put_cstr(out, "p");
	if (rc == 0)
		rc = cbor_put_bytes_head(out, payload_len);
	if (rc < 0) {
		out->len = start;
		return rc;
	}

	body_len = out->len - start - FRAME_HEADER_BYTES + payload_len;
	if (body_len > FRAME_MAX_BODY_BYTES) {
		out->len = start;
		return -EMSGSIZE;
	}
	frame_put_header(header, id, msg_type_flags(type), body_len);
	memcpy(out->data + start, header, FRAME_HEADER_BYTES);
	return 0;
}

int msg_encode(struct buf *out, const struct msg *m)
{
	struct buf payload;
	struct enc e;
	size_t start = out->len;
	int rc;

	if (!msg_type_name(m->type))
		return -EINVAL;

	buf_init(&payload);
	e.out = &payload;
	e.rc = 0;
	enc_payload(&e, m);
	rc = e.rc;

	if (rc == 0)
		rc = put_frame_prefix(out, m->id, m->type, m->version, payload.len);
	if (rc == 0) {
		rc = buf_append(out, payload.data, payload.len);
		if (rc < 0)
			out->len = start;
	}
	buf_free(&payload);
	return rc;
}

/* put_frame_prefix() reserves this much; the prefix buffer below must
 * hold it, or buf_reserve() would try to reallocate a stack array. */
_Static_assert(MSG_DATA_PREFIX_MAX >= FRAME_HEADER_BYTES + 64 + 16, "data prefix room");

int msg_put_data_prefix(uint8_t *out, enum msg_type type, uint32_t id, size_t len)
{
	/* {"data": h'...'}: map head, key "data", byte string head. */
	uint8_t head_bytes[16], prefix_bytes[MSG_DATA_PREFIX_MAX];
	struct buf head = { head_bytes, 0, 0, sizeof(head_bytes) };
	struct buf prefix = { prefix_bytes, 0, 0, sizeof(prefix_bytes) };
	int rc;

	if (type != MSG_EXEC_STDIN && type != MSG_EXEC_STDOUT && type != MSG_EXEC_STDERR && type != MSG_FS_DATA)
		return -EINVAL;

	/* Both buffers are big enough for the longest heads, so the appends
	 * below never try to grow them. */
	rc = cbor_put_map(&head, 1);
	if (rc == 0)
		rc = cbor_put_cstr(&head, "data");
	if (rc == 0)
		rc = cbor_put_bytes_head(&head, len);
	if (rc == 0)
		rc = put_frame_prefix(&prefix, id, type, 0, head.len + len);
	if (rc == 0)
		rc = buf_append(&prefix, head.data, head.len);
	if (rc < 0)
		return rc;
	memcpy(out, prefix.data, prefix.len);
	return (int)prefix.len;
}

int msg_encode_data(struct buf *out, enum msg_type type, uint32_t id, const void *data, size_t len)
{
	int n, rc;

	rc = buf_reserve(out, MSG_DATA_PREFIX_MAX + len);
	if (rc < 0)
		return rc;
	n = msg_put_data_prefix(out->data + out->len, type, id, len);
	if (n < 0)
		return n;
	if (len)
		memcpy(out->data + out->len + n, data, len);
	out->len += (size_t)n + len;
	return 0;
}

/* ---- Decoding ---------------------------------------------------------- */

typedef int (*field_get_fn)(struct cbor_reader *r, void *dst);

struct field {
	const char *name;
	field_get_fn get;
	size_t offset;
	bool required;
};

#define FIELD(type, member, fn, req) { #member, fn, offsetof(type, member), req }
#define FIELD_NAMED(name, type, member, fn, req) { name, fn, offsetof(type, member), req }

/* Decodes a map into the struct at base through a table of fields. Unknown
 * keys (and keys that are not text) are skipped; a duplicate known key or a
 * missing required one is an invalid payload. */
static int decode_struct(struct cbor_reader *r, const struct field *fields, size_t n_fields, void *base)
{
	uint64_t count;
	uint32_t seen = 0;
	int rc;

	rc = cbor_get_map(r, &count);
	if (rc < 0)
		return rc;

	for (uint64_t i = 0; i < count; i++) {
		struct span key;
		size_t f;

		if (cbor_peek_major(r) != CBOR_TEXT) {
			rc = cbor_skip(r);
			if (rc == 0)
				rc = cbor_skip(r);
			if (rc < 0)
				return rc;
			continue;
		}
		rc = cbor_get_text(r, &key);
		if (rc < 0)
			return rc;

		for (f = 0; f < n_fields; f++)
			if (span_eq_cstr(key, fields[f].name))
				break;
		if (f == n_fields) {
			rc = cbor_skip(r);
			if (rc < 0)
				return rc;
			continue;
		}
		if (seen & (1u << f))
			return -EPROTO;
		seen |= 1u << f;
		rc = fields[f].get(r, (char *)base + fields[f].offset);
		if (rc < 0)
			return rc;
	}

	for (size_t f = 0; f < n_fields; f++)
		if (fields[f].required && !(seen & (1u << f)))
			return -EPROTO;
	return 0;
}

static int get_text_f(struct cbor_reader *r, void *dst)
{
	return cbor_get_text(r, dst);
}

static int get_opt_text_f(struct cbor_reader *r, void *dst)
{
	return cbor_get_opt_text(r, dst);
}

static int get_bytes_f(struct cbor_reader *r, void *dst)
{
	return cbor_get_bytes(r, dst);
}

static int get_u64_f(struct cbor_reader *r, void *dst)
{
	return cbor_get_uint(r, dst);
}

static int get_u32_f(struct cbor_reader *r, void *dst)
{
	return cbor_get_u32(r, dst);
}

static int get_u16_f(struct cbor_reader *r, void *dst)
{
	return cbor_get_u16(r, dst);
}

static int get_i32_f(struct cbor_reader *r, void *dst)
{
	return cbor_get_i32(r, dst);
}

static int get_bool_f(struct cbor_reader *r, void *dst)
{
	return cbor_get_bool(r, dst);
}

static int get_opt_u32_f(struct cbor_reader *r, void *dst)
{
	struct opt_u32 *o = dst;

	return cbor_get_opt_u32(r, &o->set, &o->v);
}

static int get_opt_u64_f(struct cbor_reader *r, void *dst)
{
	struct opt_u64 *o = dst;

	return cbor_get_opt_u64(r, &o->set, &o->v);
}

static int get_opt_i32_f(struct cbor_reader *r, void *dst)
{
	struct opt_i32 *o = dst;

	return cbor_get_opt_i32(r, &o->set, &o->v);
}

static int get_opt_i64_f(struct cbor_reader *r, void *dst)
{
	struct opt_i64 *o = dst;

	return cbor_get_opt_i64(r, &o->set, &o->v);
}

/* A null for an optional struct leaves it zeroed. */
static int get_null_or(struct cbor_reader *r, const struct field *fields, size_t n, void *dst)
{
	if (cbor_peek_null(r))
		return cbor_get_null(r);
	return decode_struct(r, fields, n, dst);
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* An array of text, allocated. The destination is a struct text_array laid
 * out as the (items, count) pair of the owning struct. */
struct text_array {
	struct span *items;
	size_t count;
};

static int get_text_array_f(struct cbor_reader *r, void *dst)
{
	struct text_array *out = dst;
	uint64_t count;
	int rc;

	if (cbor_peek_null(r))
		return cbor_get_null(r);
	rc = cbor_get_array(r, &count);
	if (rc < 0)
		return rc;
	if (count == 0)
		return 0;
	out->items = calloc((size_t)count, sizeof(*out->items));
	if (!out->items)
		return -ENOMEM;
	out->count = (size_t)count;
	for (size_t i = 0; i < out->count; i++) {
		rc = cbor_get_text(r, &out->items[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static const struct field rlimit_fields[] = {
	FIELD(struct msg_rlimit, resource, get_text_f, true),
	FIELD(struct msg_rlimit, soft, get_u64_f, true),
	FIELD(struct msg_rlimit, hard, get_u64_f, true),
};

struct rlimit_array {
	struct msg_rlimit *items;
	size_t count;
};

static int get_rlimits_f(struct cbor_reader *r, void *dst)
{
	struct rlimit_array *out = dst;
	uint64_t count;
	int rc;

	if (cbor_peek_null(r))
		return cbor_get_null(r);
	rc = cbor_get_array(r, &count);
	if (rc < 0)
		return rc;
	if (count == 0)
		return 0;
	out->items = calloc((size_t)count, sizeof(*out->items));
	if (!out->items)
		return -ENOMEM;
	out->count = (size_t)count;
	for (size_t i = 0; i < out->count; i++) {
		rc = decode_struct(r, rlimit_fields, ARRAY_LEN(rlimit_fields), &out->items[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The (pointer, count) pairs of exec requests are decoded through the
 * array structs above; these checks keep the two layouts in step. */
_Static_assert(offsetof(struct msg_exec_request, n_args) - offsetof(struct msg_exec_request, args) ==
		       offsetof(struct text_array, count),
	       "args layout");
_Static_assert(offsetof(struct msg_exec_request, n_env) - offsetof(struct msg_exec_request, env) ==
		       offsetof(struct text_array, count),
	       "env layout");
_Static_assert(offsetof(struct msg_exec_request, n_rlimits) - offsetof(struct msg_exec_request, rlimits) ==
		       offsetof(struct rlimit_array, count),
	       "rlimits layout");

static const struct field init_resolved_user_fields[] = {
	FIELD(struct msg_init_resolved, uid, get_u32_f, true),
	FIELD(struct msg_init_resolved, gid, get_u32_f, true),
};

static int get_default_user_f(struct cbor_reader *r, void *dst)
{
	return decode_struct(r, init_resolved_user_fields, ARRAY_LEN(init_resolved_user_fields), dst);
}

static const struct field init_resolved_fields[] = {
	{ "default_user", get_default_user_f, 0, true },
};

static const struct field ready_fields[] = {
	FIELD(struct msg_ready, boot_time_ns, get_u64_f, true),
	FIELD(struct msg_ready, init_time_ns, get_u64_f, true),
	FIELD(struct msg_ready, ready_time_ns, get_u64_f, true),
	FIELD(struct msg_ready, agent_version, get_opt_text_f, false),
};

static const struct field clock_sync_fields[] = {
	FIELD(struct msg_clock_sync, unix_time_nanos, get_u64_f, true),
};

static const struct field client_disconnected_fields[] = {
	FIELD(struct msg_client_disconnected, id_start, get_u32_f, true),
	FIELD(struct msg_client_disconnected, id_end_exclusive, get_u32_f, true),
};

static const struct field touched_fields[] = {
	FIELD(struct msg_touched, activity_seq, get_u64_f, true),
};

static const struct field error_fields[] = {
	FIELD(struct msg_error, kind, get_text_f, true),
	FIELD(struct msg_error, message, get_text_f, true),
	FIELD(struct msg_error, offending_type, get_opt_text_f, false),
};

static const struct field exec_request_fields[] = {
	FIELD(struct msg_exec_request, cmd, get_text_f, true),
	FIELD(struct msg_exec_request, args, get_text_array_f, false),
	FIELD(struct msg_exec_request, env, get_text_array_f, false),
	FIELD(struct msg_exec_request, cwd, get_opt_text_f, false),
	FIELD(struct msg_exec_request, user, get_opt_text_f, false),
	FIELD(struct msg_exec_request, tty, get_bool_f, false),
	FIELD(struct msg_exec_request, rows, get_u16_f, false),
	FIELD(struct msg_exec_request, cols, get_u16_f, false),
	FIELD(struct msg_exec_request, rlimits, get_rlimits_f, false),
};

static const struct field exec_started_fields[] = {
	FIELD(struct msg_exec_started, pid, get_u32_f, true),
};

static const struct field data_fields[] = {
	FIELD(struct msg_data, data, get_bytes_f, true),
};

static const struct field exec_stdin_error_fields[] = {
	FIELD_NAMED("errno", struct msg_exec_stdin_error, err, get_opt_i32_f, false),
	FIELD(struct msg_exec_stdin_error, errno_name, get_opt_text_f, false),
	FIELD(struct msg_exec_stdin_error, message, get_text_f, true),
};

static const struct field exec_stdin_consumed_fields[] = {
	FIELD(struct msg_exec_stdin_consumed, bytes, get_u64_f, true),
};

static const struct field exec_exited_fields[] = {
	FIELD(struct msg_exec_exited, code, get_i32_f, true),
	FIELD(struct msg_exec_exited, signal, get_opt_i32_f, false),
};

static const struct field exec_failed_fields[] = {
	FIELD(struct msg_exec_failed, kind, get_text_f, true),
	FIELD_NAMED("errno", struct msg_exec_failed, err, get_opt_i32_f, false),
	FIELD(struct msg_exec_failed, errno_name, get_opt_text_f, false),
	FIELD(struct msg_exec_failed, message, get_text_f, true),
	FIELD(struct msg_exec_failed, stage, get_opt_text_f, false),
};

static const struct field exec_resize_fields[] = {
	FIELD(struct msg_exec_resize, rows, get_u16_f, true),
	FIELD(struct msg_exec_resize, cols, get_u16_f, true),
};

static const struct field exec_signal_fields[] = {
	FIELD(struct msg_exec_signal, signal, get_i32_f, true),
};

/* ---- File system payloads ---- */

static const struct field attrs_fields[] = {
	FIELD(struct fs_attrs, mode, get_opt_u32_f, false),
	FIELD(struct fs_attrs, uid, get_opt_u32_f, false),
	FIELD(struct fs_attrs, gid, get_opt_u32_f, false),
	FIELD(struct fs_attrs, size, get_opt_u64_f, false),
	FIELD(struct fs_attrs, atime, get_opt_i64_f, false),
	FIELD(struct fs_attrs, mtime, get_opt_i64_f, false),
};

static int get_attrs_f(struct cbor_reader *r, void *dst)
{
	return get_null_or(r, attrs_fields, ARRAY_LEN(attrs_fields), dst);
}

static const struct field open_options_fields[] = {
	FIELD(struct fs_open_options, read, get_bool_f, false),
	FIELD(struct fs_open_options, write, get_bool_f, false),
	FIELD(struct fs_open_options, append, get_bool_f, false),
	FIELD(struct fs_open_options, create, get_bool_f, false),
	FIELD(struct fs_open_options, truncate, get_bool_f, false),
	FIELD(struct fs_open_options, create_new, get_bool_f, false),
	FIELD(struct fs_open_options, mode, get_opt_u32_f, false),
};

static int get_open_options_f(struct cbor_reader *r, void *dst)
{
	return decode_struct(r, open_options_fields, ARRAY_LEN(open_options_fields), dst);
}

#define FS_FIELD(member, fn, req) FIELD(struct msg_fs_request, member, fn, req)

static const struct field fs_path_fields[] = {
	FS_FIELD(path, get_text_f, true),
};
static const struct field fs_stat_fields[] = {
	FS_FIELD(path, get_text_f, true),
	FS_FIELD(follow_symlink, get_bool_f, false),
};
static const struct field fs_setstat_fields[] = {
	FS_FIELD(path, get_text_f, true),
	FS_FIELD(follow_symlink, get_bool_f, false),
	FS_FIELD(attrs, get_attrs_f, true),
};
static const struct field fs_symlink_fields[] = {
	FS_FIELD(target, get_text_f, true),
	FS_FIELD(link_path, get_text_f, true),
};
static const struct field fs_mkdir_fields[] = {
	FS_FIELD(path, get_text_f, true),
	FS_FIELD(mode, get_opt_u32_f, false),
};
static const struct field fs_removedir_fields[] = {
	FS_FIELD(path, get_text_f, true),
	FS_FIELD(recursive, get_bool_f, false),
};
static const struct field fs_src_dst_fields[] = {
	FS_FIELD(src, get_text_f, true),
	FS_FIELD(dst, get_text_f, true),
};
static const struct field fs_openfile_fields[] = {
	FS_FIELD(path, get_text_f, true),
	FS_FIELD(options, get_open_options_f, true),
};
static const struct field fs_handle_fields[] = {
	FS_FIELD(handle, get_u64_f, true),
};
static const struct field fs_read_write_fields[] = {
	FS_FIELD(handle, get_u64_f, true),
	FS_FIELD(offset, get_u64_f, true),
	FS_FIELD(len, get_opt_u64_f, false),
};
static const struct field fs_readdir_fields[] = {
	FS_FIELD(handle, get_u64_f, true),
	FS_FIELD(limit, get_opt_u32_f, false),
};
static const struct field fs_fsetstat_fields[] = {
	FS_FIELD(handle, get_u64_f, true),
	FS_FIELD(attrs, get_attrs_f, true),
};

struct fs_op_fields {
	const struct field *fields;
	size_t n;
};

#define FS_OP_FIELDS(table) { table, ARRAY_LEN(table) }

static const struct fs_op_fields fs_op_tables[FS_OP_COUNT] = {
	[FS_OP_REALPATH] = FS_OP_FIELDS(fs_path_fields),
	[FS_OP_STAT] = FS_OP_FIELDS(fs_stat_fields),
	[FS_OP_SETSTAT] = FS_OP_FIELDS(fs_setstat_fields),
	[FS_OP_LIST] = FS_OP_FIELDS(fs_path_fields),
	[FS_OP_READLINK] = FS_OP_FIELDS(fs_path_fields),
	[FS_OP_SYMLINK] = FS_OP_FIELDS(fs_symlink_fields),
	[FS_OP_MKDIR] = FS_OP_FIELDS(fs_mkdir_fields),
	[FS_OP_REMOVE] = FS_OP_FIELDS(fs_path_fields),
	[FS_OP_REMOVEDIR] = FS_OP_FIELDS(fs_removedir_fields),
	[FS_OP_COPY] = FS_OP_FIELDS(fs_src_dst_fields),
	[FS_OP_RENAME] = FS_OP_FIELDS(fs_src_dst_fields),
	[FS_OP_OPENFILE] = FS_OP_FIELDS(fs_openfile_fields),
	[FS_OP_OPENDIR] = FS_OP_FIELDS(fs_path_fields),
	[FS_OP_CLOSEHANDLE] = FS_OP_FIELDS(fs_handle_fields),
	[FS_OP_READ] = FS_OP_FIELDS(fs_read_write_fields),
	[FS_OP_WRITE] = FS_OP_FIELDS(fs_read_write_fields),
	[FS_OP_READDIR] = FS_OP_FIELDS(fs_readdir_fields),
	[FS_OP_FSTAT] = FS_OP_FIELDS(fs_handle_fields),
	[FS_OP_FSETSTAT] = FS_OP_FIELDS(fs_fsetstat_fields),
};

/* A one-key map {"Variant": value}: reads the map head and the variant name. */
static int get_variant(struct cbor_reader *r, struct span *name)
{
	uint64_t count;
	int rc = cbor_get_map(r, &count);

	if (rc < 0)
		return rc;
	if (count != 1)
		return -EPROTO;
	return cbor_get_text(r, name);
}

static int get_fs_op_f(struct cbor_reader *r, void *dst)
{
	struct msg_fs_request *req = dst;
	struct span name;
	int rc = get_variant(r, &name);

	if (rc < 0)
		return rc;
	for (int op = 0; op < FS_OP_COUNT; op++) {
		if (span_eq_cstr(name, fs_op_names[op])) {
			req->op = (enum fs_op)op;
			return decode_struct(r, fs_op_tables[op].fields, fs_op_tables[op].n, req);
		}
	}
	return -EPROTO;
}

static const struct field fs_request_fields[] = {
	{ "op", get_fs_op_f, 0, true },
};

static int get_fs_kind_f(struct cbor_reader *r, void *dst)
{
	enum fs_kind *kind = dst;
	struct span name;
	int rc = cbor_get_text(r, &name);

	if (rc < 0)
		return rc;
	for (int k = FS_KIND_FILE; k <= FS_KIND_OTHER; k++) {
		if (span_eq_cstr(name, fs_kind_names[k])) {
			*kind = (enum fs_kind)k;
			return 0;
		}
	}
	return -EPROTO;
}

static const struct field fs_entry_fields[] = {
	FIELD(struct fs_entry, path, get_text_f, true),
	FIELD(struct fs_entry, kind, get_fs_kind_f, true),
	FIELD(struct fs_entry, size, get_u64_f, false),
	FIELD(struct fs_entry, mode, get_u32_f, false),
	FIELD(struct fs_entry, modified, get_opt_i64_f, false),
	FIELD(struct fs_entry, uid, get_u32_f, false),
	FIELD(struct fs_entry, gid, get_u32_f, false),
	FIELD(struct fs_entry, atime, get_opt_i64_f, false),
	FIELD(struct fs_entry, mtime, get_opt_i64_f, false),
};

static int get_fs_entry(struct cbor_reader *r, struct fs_entry *entry)
{
	return decode_struct(r, fs_entry_fields, ARRAY_LEN(fs_entry_fields), entry);
}

static int get_fs_entry_list(struct cbor_reader *r, struct msg_fs_response *resp)
{
	uint64_t count;
	int rc = cbor_get_array(r, &count);

	if (rc < 0)
		return rc;
	if (count == 0)
		return 0;
	resp->list = calloc((size_t)count, sizeof(*resp->list));
	if (!resp->list)
		return -ENOMEM;
	resp->n_list = (size_t)count;
	for (size_t i = 0; i < resp->n_list; i++) {
		rc = get_fs_entry(r, &resp->list[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int get_fs_data_f(struct cbor_reader *r, void *dst)
{
	struct msg_fs_response *resp = dst;
	struct span name;
	int rc;

	if (cbor_peek_null(r))
		return cbor_get_null(r);
	rc = get_variant(r, &name);
	if (rc < 0)
		return rc;

	if (span_eq_cstr(name, "Stat")) {
		resp->data_kind = FS_DATA_STAT;
		return get_fs_entry(r, &resp->stat);
	}
	if (span_eq_cstr(name, "List")) {
		resp->data_kind = FS_DATA_LIST;
		return get_fs_entry_list(r, resp);
	}
	if (span_eq_cstr(name, "Handle")) {
		resp->data_kind = FS_DATA_HANDLE;
		return cbor_get_uint(r, &resp->handle);
	}
	if (span_eq_cstr(name, "Path")) {
		resp->data_kind = FS_DATA_PATH;
		return cbor_get_text(r, &resp->path);
	}
	return -EPROTO;
}

static const struct field fs_response_fields[] = {
	FIELD(struct msg_fs_response, ok, get_bool_f, true),
	FIELD(struct msg_fs_response, error, get_opt_text_f, false),
	{ "data", get_fs_data_f, 0, false },
	FIELD_NAMED("errno", struct msg_fs_response, err, get_opt_i32_f, false),
	FIELD(struct msg_fs_response, errno_name, get_opt_text_f, false),
};

/* ---- Payload dispatch ---- */

struct payload_decoder {
	const struct field *fields;
	size_t n;
};

#define DECODER(table) { table, ARRAY_LEN(table) }

static const struct payload_decoder payload_decoders[MSG_TYPE_COUNT] = {
	[MSG_INIT_RESOLVED] = DECODER(init_resolved_fields),
	[MSG_READY] = DECODER(ready_fields),
	[MSG_CLOCK_SYNC] = DECODER(clock_sync_fields),
	[MSG_CLIENT_DISCONNECTED] = DECODER(client_disconnected_fields),
	[MSG_TOUCHED] = DECODER(touched_fields),
	[MSG_ERROR] = DECODER(error_fields),
	[MSG_EXEC_REQUEST] = DECODER(exec_request_fields),
	[MSG_EXEC_STARTED] = DECODER(exec_started_fields),
	[MSG_EXEC_STDIN] = DECODER(data_fields),
	[MSG_EXEC_STDIN_ERROR] = DECODER(exec_stdin_error_fields),
	[MSG_EXEC_STDOUT] = DECODER(data_fields),
	[MSG_EXEC_STDERR] = DECODER(data_fields),
	[MSG_EXEC_EXITED] = DECODER(exec_exited_fields),
	[MSG_EXEC_FAILED] = DECODER(exec_failed_fields),
	[MSG_EXEC_RESIZE] = DECODER(exec_resize_fields),
	[MSG_EXEC_SIGNAL] = DECODER(exec_signal_fields),
	[MSG_FS_REQUEST] = DECODER(fs_request_fields),
	[MSG_FS_DATA] = DECODER(data_fields),
	[MSG_FS_RESPONSE] = DECODER(fs_response_fields),
	[MSG_FLOW_PAUSE] = DECODER(client_disconnected_fields),
	[MSG_FLOW_RESUME] = DECODER(client_disconnected_fields),
	[MSG_EXEC_STDIN_CONSUMED] = DECODER(exec_stdin_consumed_fields),
};

static int decode_payload(struct msg *m, struct span payload)
{
	const struct payload_decoder *d = &payload_decoders[m->type];
	struct cbor_reader r;
	int rc;

	cbor_reader_init(&r, payload.ptr, payload.len);

	if (m->type == MSG_EXEC_REQUEST) {
		m->u.exec_request.rows = MSG_DEFAULT_ROWS;
		m->u.exec_request.cols = MSG_DEFAULT_COLS;
	}

	if (d->fields) {
		rc = decode_struct(&r, d->fields, d->n, &m->u);
	} else if (m->type == MSG_SHUTDOWN) {
		/* null, though a reader may meet an empty map too */
		rc = cbor_peek_null(&r) ? cbor_get_null(&r) : cbor_skip(&r);
	} else {
		/* Types without fields: {} or null; anything well formed is
		 * accepted since there is nothing to read from it. */
		rc = cbor_skip(&r);
	}
	if (rc < 0)
		return rc;
	if (!cbor_at_end(&r))
		return -EBADMSG;
	return 0;
}

int msg_decode(const uint8_t *frame, size_t frame_len, struct msg *m)
{
	struct frame_header h;
	struct cbor_reader r;
	struct span payload = SPAN_NONE;
	uint64_t count, version = 0;
	bool have_version = false;
	long total;
	int rc;

	memset(m, 0, sizeof(*m));
	total = frame_scan(frame, frame_len, &h);
	if (total < 0)
		return (int)total;
	if (total == 0 || (size_t)total != frame_len)
		return -EBADMSG;
	m->id = h.id;
	m->flags = h.flags;

	cbor_reader_init(&r, frame + FRAME_HEADER_BYTES, frame_len - FRAME_HEADER_BYTES);
	rc = cbor_get_map(&r, &count);
	if (rc < 0)
		return -EBADMSG;

	for (uint64_t i = 0; i < count; i++) {
		struct span key;

		if (cbor_get_text(&r, &key) < 0)
			return -EBADMSG;
		if (span_eq_cstr(key, "v")) {
			rc = cbor_get_uint(&r, &version);
			have_version = rc == 0;
		} else if (span_eq_cstr(key, "t")) {
			rc = cbor_get_text(&r, &m->type_name);
		} else if (span_eq_cstr(key, "p")) {
			rc = cbor_get_bytes(&r, &payload);
		} else {
			rc = cbor_skip(&r);
		}
		if (rc < 0)
			return -EBADMSG;
	}
	if (!cbor_at_end(&r) || !have_version || !m->type_name.ptr || !payload.ptr)
		return -EBADMSG;
	if (version > UINT32_MAX)
		return -EPROTO;
	m->version = (uint32_t)version;

	m->type = msg_type_from_name(m->type_name);
	if (m->type == MSG_UNKNOWN)
		return 0;

	rc = decode_payload(m, payload);
	if (rc < 0) {
		msg_free(m);
		return rc == -ENOMEM ? rc : (rc == -EBADMSG ? -EBADMSG : -EPROTO);
	}
	return 0;
}

enum msg_type msg_peek_type(const uint8_t *frame, size_t frame_len)
{
	struct cbor_reader r;
	uint64_t count;

	if (frame_len < FRAME_HEADER_BYTES)
		return MSG_UNKNOWN;
	cbor_reader_init(&r, frame + FRAME_HEADER_BYTES, frame_len - FRAME_HEADER_BYTES);
	if (cbor_get_map(&r, &count) < 0)
		return MSG_UNKNOWN;
	for (uint64_t i = 0; i < count; i++) {
		struct span key, name;

		if (cbor_get_text(&r, &key) < 0)
			return MSG_UNKNOWN;
		if (span_eq_cstr(key, "t"))
			return cbor_get_text(&r, &name) < 0 ? MSG_UNKNOWN : msg_type_from_name(name);
		if (cbor_skip(&r) < 0)
			return MSG_UNKNOWN;
	}
	return MSG_UNKNOWN;
}

void msg_free(struct msg *m)
{
	switch (m->type) {
	case MSG_EXEC_REQUEST:
		free(m->u.exec_request.args);
		free(m->u.exec_request.env);
		free(m->u.exec_request.rlimits);
		m->u.exec_request.args = NULL;
		m->u.exec_request.env = NULL;
		m->u.exec_request.rlimits = NULL;
		m->u.exec_request.n_args = 0;
		m->u.exec_request.n_env = 0;
		m->u.exec_request.n_rlimits = 0;
		break;
	case MSG_FS_RESPONSE:
		free(m->u.fs_response.list);
		m->u.fs_response.list = NULL;
		m->u.fs_response.n_list = 0;
		break;
	default:
		break;
	}
}
