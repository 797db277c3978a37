/* Golden frames: each typed value below must encode to exactly the bytes of
 * its vector in tests/data/vectors.tsv, and each vector must decode back to
 * a value that re-encodes to the same bytes. */
#include <errno.h>
#include <stdlib.h>

#include "../../src/proto/frame.h"
#include "../../src/proto/msg.h"
#include "test.h"

#ifndef VECTORS_PATH
#define VECTORS_PATH "tests/data/vectors.tsv"
#endif

/* The value of one vector, built as a caller of the codec would. */
typedef void (*vector_build_fn)(struct msg *m);

static void build_ready(struct msg *m)
{
	m->type = MSG_READY;
	m->u.ready.boot_time_ns = 1000;
	m->u.ready.init_time_ns = 250000000;
	m->u.ready.ready_time_ns = 300000000;
}

static void build_init_resolved(struct msg *m)
{
	m->type = MSG_INIT_RESOLVED;
}

static void build_init_ack(struct msg *m)
{
	m->type = MSG_INIT_ACK;
}

static void build_shutdown(struct msg *m)
{
	m->type = MSG_SHUTDOWN;
}

static void build_clock_sync(struct msg *m)
{
	m->type = MSG_CLOCK_SYNC;
	m->u.clock_sync.unix_time_nanos = 1764806400123456789ull;
}

static struct span pipes_args[] = { { (const uint8_t *)"-c", 2 }, { (const uint8_t *)"print(6*7)", 10 } };
static struct span pipes_env[] = { { (const uint8_t *)"LANG=C.UTF-8", 12 } };

static void build_exec_request_pipes(struct msg *m)
{
	m->type = MSG_EXEC_REQUEST;
	m->id = 0x02000001;
	m->u.exec_request.cmd = span_cstr("python3");
	m->u.exec_request.args = pipes_args;
	m->u.exec_request.n_args = 2;
	m->u.exec_request.env = pipes_env;
	m->u.exec_request.n_env = 1;
	m->u.exec_request.rows = 24;
	m->u.exec_request.cols = 80;
}

static struct msg_rlimit tty_rlimits[] = { { { (const uint8_t *)"nofile", 6 }, 1024, 4096 } };

static void build_exec_request_tty(struct msg *m)
{
	m->type = MSG_EXEC_REQUEST;
	m->id = 7;
	m->u.exec_request.cmd = span_cstr("/bin/sh");
	m->u.exec_request.cwd = span_cstr("/root");
	m->u.exec_request.user = span_cstr("1000:1000");
	m->u.exec_request.tty = true;
	m->u.exec_request.rows = 50;
	m->u.exec_request.cols = 132;
	m->u.exec_request.rlimits = tty_rlimits;
	m->u.exec_request.n_rlimits = 1;
}

static void build_exec_started(struct msg *m)
{
	m->type = MSG_EXEC_STARTED;
	m->id = 7;
	m->u.exec_started.pid = 42;
}

static void build_exec_stdin(struct msg *m)
{
	m->type = MSG_EXEC_STDIN;
	m->id = 7;
	m->u.data.data = span_of("hello\n", 6);
}

static void build_exec_stdin_eof(struct msg *m)
{
	m->type = MSG_EXEC_STDIN;
	m->id = 7;
	m->u.data.data = span_of("", 0);
}

static void build_exec_stdout(struct msg *m)
{
	m->type = MSG_EXEC_STDOUT;
	m->id = 7;
	m->u.data.data = span_of("42\n", 3);
}

static void build_exec_stderr(struct msg *m)
{
	m->type = MSG_EXEC_STDERR;
	m->id = 7;
	m->u.data.data = span_of("\xff\0oops", 6);
}

static void build_exec_exited(struct msg *m)
{
	m->type = MSG_EXEC_EXITED;
	m->id = 7;
	m->u.exec_exited.code = 42;
}

static void build_exec_exited_signal(struct msg *m)
{
	m->type = MSG_EXEC_EXITED;
	m->id = 7;
	m->u.exec_exited.code = -1;
}

static void build_exec_failed(struct msg *m)
{
	m->type = MSG_EXEC_FAILED;
	m->id = 7;
	m->u.exec_failed.kind = span_cstr("not_found");
	m->u.exec_failed.err = (struct opt_i32){ true, 2 };
	m->u.exec_failed.errno_name = span_cstr("ENOENT");
	m->u.exec_failed.message = span_cstr("no such file: /usr/bin/nope");
	m->u.exec_failed.stage = span_cstr("exec");
}

static void build_exec_resize(struct msg *m)
{
	m->type = MSG_EXEC_RESIZE;
	m->id = 7;
	m->u.exec_resize.rows = 40;
	m->u.exec_resize.cols = 100;
}

static void build_exec_signal(struct msg *m)
{
	m->type = MSG_EXEC_SIGNAL;
	m->id = 7;
	m->u.exec_signal.signal = 15;
}

static void build_client_disconnected(struct msg *m)
{
	m->type = MSG_CLIENT_DISCONNECTED;
	m->u.client_disconnected.id_start = 33554433;
	m->u.client_disconnected.id_end_exclusive = 67108863;
}

static void build_fs_stat(struct msg *m)
{
	m->type = MSG_FS_REQUEST;
	m->id = 9;
	m->u.fs_request.op = FS_OP_STAT;
	m->u.fs_request.path = span_cstr("/etc/hostname");
	m->u.fs_request.follow_symlink = true;
}

static void build_fs_response_handle(struct msg *m)
{
	m->type = MSG_FS_RESPONSE;
	m->id = 9;
	m->u.fs_response.ok = true;
	m->u.fs_response.data_kind = FS_DATA_HANDLE;
	m->u.fs_response.handle = 5;
}

static char fs_data_bytes[300];

static void build_fs_data(struct msg *m)
{
	memset(fs_data_bytes, 'x', sizeof(fs_data_bytes));
	m->type = MSG_FS_DATA;
	m->id = 9;
	m->u.data.data = span_of(fs_data_bytes, sizeof(fs_data_bytes));
}

static const struct {
	const char *name;
	vector_build_fn build;
} vector_builders[] = {
	{ "ready", build_ready },
	{ "init_resolved", build_init_resolved },
	{ "init_ack", build_init_ack },
	{ "shutdown", build_shutdown },
	{ "clock_sync", build_clock_sync },
	{ "exec_request_pipes", build_exec_request_pipes },
	{ "exec_request_tty", build_exec_request_tty },
	{ "exec_started", build_exec_started },
	{ "exec_stdin", build_exec_stdin },
	{ "exec_stdin_eof", build_exec_stdin_eof },
	{ "exec_stdout", build_exec_stdout },
	{ "exec_stderr", build_exec_stderr },
	{ "exec_exited", build_exec_exited },
	{ "exec_exited_signal", build_exec_exited_signal },
	{ "exec_failed", build_exec_failed },
	{ "exec_resize", build_exec_resize },
	{ "exec_signal", build_exec_signal },
	{ "client_disconnected", build_client_disconnected },
	{ "fs_stat", build_fs_stat },
	{ "fs_response_handle", build_fs_response_handle },
	{ "fs_data", build_fs_data },
};

#define N_BUILDERS (sizeof(vector_builders) / sizeof(vector_builders[0]))

struct vector {
	char name[64];
	uint8_t *bytes;
	size_t len;
};

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads "name<TAB>hex" lines; returns the number read or -1. */
static int load_vectors(struct vector *out, int max)
{
	FILE *f = fopen(VECTORS_PATH, "r");
	char line[8192];
	int n = 0;

	if (!f) {
		test_fail(__FILE__, __LINE__, "open %s: %s", VECTORS_PATH, strerror(errno));
		return -1;
	}
	while (n < max && fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t');
		char *hex;
		size_t hex_len;

		if (!tab)
			continue;
		*tab = 0;
		hex = tab + 1;
		hex_len = strcspn(hex, "\r\n");
		snprintf(out[n].name, sizeof(out[n].name), "%.63s", line);
		out[n].len = hex_len / 2;
		out[n].bytes = malloc(out[n].len);
		for (size_t i = 0; i < out[n].len; i++)
			out[n].bytes[i] = (uint8_t)(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
		n++;
	}
	fclose(f);
	return n;
}

static vector_build_fn find_builder(const char *name)
{
	for (size_t i = 0; i < N_BUILDERS; i++)
		if (strcmp(vector_builders[i].name, name) == 0)
			return vector_builders[i].build;
	return NULL;
}

static void check_same_bytes(const char *what, const char *name, const uint8_t *got, size_t got_len,
			     const uint8_t *want, size_t want_len)
{
	size_t i;

	if (got_len == want_len && memcmp(got, want, want_len) == 0)
		return;
	for (i = 0; i < got_len && i < want_len && got[i] == want[i]; i++)
		;
	test_fail(__FILE__, __LINE__, "%s %s: %zu bytes, expected %zu; first difference at byte %zu", what, name,
		  got_len, want_len, i);
}

TEST(vectors_encode_byte_for_byte)
{
	struct vector v[64];
	int n = load_vectors(v, 64);

	CHECK(n == (int)N_BUILDERS);
	for (int i = 0; i < n; i++) {
		vector_build_fn build = find_builder(v[i].name);
		struct msg m;
		struct buf out;

		if (!CHECK(build != NULL))
			continue;
		memset(&m, 0, sizeof(m));
		build(&m);
		buf_init(&out);
		CHECK_INT_EQ(msg_encode(&out, &m), 0);
		check_same_bytes("encode", v[i].name, buf_peek(&out), buf_pending(&out), v[i].bytes, v[i].len);
		buf_free(&out);
		free(v[i].bytes);
	}
}

TEST(vectors_decode_and_reencode)
{
	struct vector v[64];
	int n = load_vectors(v, 64);

	for (int i = 0; i < n; i++) {
		vector_build_fn build = find_builder(v[i].name);
		struct msg decoded, expected;
		struct buf out;

		memset(&expected, 0, sizeof(expected));
		if (build)
			build(&expected);
		CHECK_INT_EQ(msg_decode(v[i].bytes, v[i].len, &decoded), 0);
		CHECK_INT_EQ(decoded.type, expected.type);
		CHECK_INT_EQ(decoded.id, expected.id);
		CHECK_INT_EQ(decoded.flags, v[i].bytes[8]);
		CHECK_INT_EQ(decoded.version, 3);

		buf_init(&out);
		CHECK_INT_EQ(msg_encode(&out, &decoded), 0);
		check_same_bytes("re-encode", v[i].name, buf_peek(&out), buf_pending(&out), v[i].bytes, v[i].len);
		buf_free(&out);
		msg_free(&decoded);
		free(v[i].bytes);
	}
}

/* Field by field, for the vectors with the most structure. */
TEST(vectors_decode_fields)
{
	struct vector v[64];
	int n = load_vectors(v, 64);

	for (int i = 0; i < n; i++) {
		struct msg m;

		if (msg_decode(v[i].bytes, v[i].len, &m) != 0) {
			test_fail(__FILE__, __LINE__, "decode %s", v[i].name);
			continue;
		}
		if (strcmp(v[i].name, "exec_request_tty") == 0) {
			CHECK_SPAN_EQ(m.u.exec_request.cmd, "/bin/sh");
			CHECK_INT_EQ(m.u.exec_request.n_args, 0);
			CHECK_SPAN_EQ(m.u.exec_request.cwd, "/root");
			CHECK_SPAN_EQ(m.u.exec_request.user, "1000:1000");
			CHECK(m.u.exec_request.tty);
			CHECK_INT_EQ(m.u.exec_request.rows, 50);
			CHECK_INT_EQ(m.u.exec_request.cols, 132);
			CHECK_INT_EQ(m.u.exec_request.n_rlimits, 1);
			if (m.u.exec_request.n_rlimits == 1) {
				CHECK_SPAN_EQ(m.u.exec_request.rlimits[0].resource, "nofile");
				CHECK_INT_EQ(m.u.exec_request.rlimits[0].soft, 1024);
				CHECK_INT_EQ(m.u.exec_request.rlimits[0].hard, 4096);
			}
		} else if (strcmp(v[i].name, "exec_request_pipes") == 0) {
			CHECK_INT_EQ(m.u.exec_request.n_args, 2);
			if (m.u.exec_request.n_args == 2)
				CHECK_SPAN_EQ(m.u.exec_request.args[1], "print(6*7)");
			CHECK_INT_EQ(m.u.exec_request.n_env, 1);
			CHECK(m.u.exec_request.cwd.ptr == NULL);
			CHECK(!m.u.exec_request.tty);
		} else if (strcmp(v[i].name, "exec_failed") == 0) {
			CHECK_SPAN_EQ(m.u.exec_failed.kind, "not_found");
			CHECK(m.u.exec_failed.err.set);
			CHECK_INT_EQ(m.u.exec_failed.err.v, 2);
			CHECK_SPAN_EQ(m.u.exec_failed.stage, "exec");
		} else if (strcmp(v[i].name, "exec_exited_signal") == 0) {
			CHECK_INT_EQ(m.u.exec_exited.code, -1);
			CHECK(!m.u.exec_exited.signal.set);
		} else if (strcmp(v[i].name, "exec_stderr") == 0) {
			CHECK_INT_EQ(m.u.data.data.len, 6);
			CHECK(memcmp(m.u.data.data.ptr, "\xff\0oops", 6) == 0);
		} else if (strcmp(v[i].name, "clock_sync") == 0) {
			CHECK(m.u.clock_sync.unix_time_nanos == 1764806400123456789ull);
		} else if (strcmp(v[i].name, "fs_stat") == 0) {
			CHECK_INT_EQ(m.u.fs_request.op, FS_OP_STAT);
			CHECK_SPAN_EQ(m.u.fs_request.path, "/etc/hostname");
			CHECK(m.u.fs_request.follow_symlink);
		} else if (strcmp(v[i].name, "fs_response_handle") == 0) {
			CHECK(m.u.fs_response.ok);
			CHECK_INT_EQ(m.u.fs_response.data_kind, FS_DATA_HANDLE);
			CHECK_INT_EQ(m.u.fs_response.handle, 5);
		} else if (strcmp(v[i].name, "ready") == 0) {
			CHECK_INT_EQ(m.u.ready.init_time_ns, 250000000);
			CHECK(m.u.ready.agent_version.ptr == NULL);
		} else if (strcmp(v[i].name, "client_disconnected") == 0) {
			CHECK_INT_EQ(m.u.client_disconnected.id_start, 33554433);
			CHECK_INT_EQ(m.u.client_disconnected.id_end_exclusive, 67108863);
		}
		msg_free(&m);
		free(v[i].bytes);
	}
}

TEST(data_frame_fast_path_matches_msg_encode)
{
	struct buf a, b;
	struct msg m;

	memset(&m, 0, sizeof(m));
	m.type = MSG_EXEC_STDOUT;
	m.id = 77;
	m.u.data.data = span_of("abc", 3);
	buf_init(&a);
	buf_init(&b);
	CHECK_INT_EQ(msg_encode(&a, &m), 0);
	CHECK_INT_EQ(msg_encode_data(&b, MSG_EXEC_STDOUT, 77, "abc", 3), 0);
	CHECK_INT_EQ(buf_pending(&a), buf_pending(&b));
	CHECK(memcmp(buf_peek(&a), buf_peek(&b), buf_pending(&a)) == 0);
	buf_free(&a);
	buf_free(&b);
}
