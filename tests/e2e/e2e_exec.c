/* End-to-end tests of running commands through the C API.
 *
 * One sandbox is booted for the whole suite, because a boot under TCG takes
 * seconds. Every case runs its commands on one shared connection and prints
 * "ok NAME" or "FAIL NAME: detail", and the last line is "N passed, N
 * failed".
 * Every exec has a 30 s watchdog, so a hang fails its case and the suite
 * goes on.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msb/msb.h"

#define EXEC_TIMEOUT_MS 30000
#define ONE_MIB 1048576
#define EXIT_AT_ONCE_RUNS 1000
#define ZOMBIE_RUNS 200
#define CONCURRENT_EXECS 64
#define BIG_ENV_BYTES (100 * 1024)
/* More than the 16 MiB of unread stdin that an agent without stdin flow
 * control queued before it dropped the rest. */
#define BIG_STDIN_BYTES (24 * ONE_MIB)

/* ---- Results and reporting ---- */

static msb_client *client;
static bool client_broken;
static char sandbox_name[64];
static int passed_count, failed_count;
static char detail[2048];

/* Records why the current case failed; returns false so that a case can
 * write `return fail(...)`. Only the first detail of a case is kept. */
static bool fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static bool fail(const char *fmt, ...)
{
	va_list ap;

	if (detail[0])
		return false;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return false;
}

/* Prefixes the recorded detail with context such as a run number. */
static bool fail_with_context(const char *context)
{
	char previous[sizeof(detail)];

	snprintf(previous, sizeof(previous), "%s", detail);
	detail[0] = 0;
	return fail("%s: %s", context, previous);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reconnects after a case left the connection closed or in an unknown
 * state, so that one broken case does not fail all the ones after it. */
static void reconnect_if_broken(void)
{
	msb_error err;

	if (!client_broken && client)
		return;
	msb_disconnect(client);
	client = NULL;
	if (msb_connect(sandbox_name, &client, &err) < 0) {
		fprintf(stderr, "reconnect to sandbox %s failed: %s\n", sandbox_name, err.message);
		client = NULL;
		return;
	}
	client_broken = false;
}

static void run_case(const char *name, bool (*fn)(void))
{
	bool ok;

	reconnect_if_broken();
	detail[0] = 0;
	if (!client)
		ok = fail("no connection to the sandbox");
	else
		ok = fn();
	if (ok && detail[0] == 0) {
		printf("ok %s\n", name);
		passed_count++;
	} else {
		printf("FAIL %s: %s\n", name, detail[0] ? detail : "failed without a detail");
		failed_count++;
	}
	fflush(stdout);
}

/* Writes the first bytes of data as a C string literal, for messages. */
static const char *quote(const void *data, size_t len)
{
	static char text[4][200];
	static int next;
	char *out = text[next++ % 4];
	const unsigned char *p = data;
	size_t o = 0;

	out[o++] = '"';
	for (size_t i = 0; i < len && o < sizeof(text[0]) - 12; i++) {
		if (p[i] == '\n')
			o += (size_t)sprintf(out + o, "\\n");
		else if (p[i] == '"' || p[i] == '\\')
			o += (size_t)sprintf(out + o, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			o += (size_t)sprintf(out + o, "\\x%02x", p[i]);
		else
			out[o++] = (char)p[i];
	}
	out[o++] = '"';
	if (len > 0 && o >= sizeof(text[0]) - 12)
		o += (size_t)sprintf(out + o, "...");
	out[o] = 0;
	return out;
}

/* ---- SHA-256 (FIPS 180-4), for comparing a file's bytes with sha256sum ---- */

struct sha256 {
	uint32_t h[8];
	uint8_t block[64];
	size_t block_len;
	uint64_t total_len;
};

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n)
{
	return (x >> n) | (x << (32 - n));
}

static void sha256_compress(struct sha256 *s, const uint8_t *block)
{
	uint32_t w[64], v[8];

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
		       (uint32_t)block[4 * i + 2] << 8 | (uint32_t)block[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	memcpy(v, s->h, sizeof(v));
	for (int i = 0; i < 64; i++) {
		uint32_t s1 = rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25);
		uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
		uint32_t t1 = v[7] + s1 + ch + sha256_k[i] + w[i];
		uint32_t s0 = rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22);
		uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
		uint32_t t2 = s0 + maj;

		v[7] = v[6];
		v[6] = v[5];
		v[5] = v[4];
		v[4] = v[3] + t1;
		v[3] = v[2];
		v[2] = v[1];
		v[1] = v[0];
		v[0] = t1 + t2;
	}
	for (int i = 0; i < 8; i++)
		s->h[i] += v[i];
}

static void sha256_init(struct sha256 *s)
{
	static const uint32_t initial[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
					     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };

	memcpy(s->h, initial, sizeof(initial));
	s->block_len = 0;
	s->total_len = 0;
}

static void sha256_update(struct sha256 *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	s->total_len += len;
	while (len > 0) {
		size_t n = 64 - s->block_len < len ? 64 - s->block_len : len;

		memcpy(s->block + s->block_len, p, n);
		s->block_len += n;
		p += n;
		len -= n;
		if (s->block_len == 64) {
			sha256_compress(s, s->block);
			s->block_len = 0;
		}
	}
}

/* Writes the digest as 64 lowercase hex digits and a NUL. */
static void sha256_final_hex(struct sha256 *s, char hex[65])
{
	uint64_t bits = s->total_len * 8;
	uint8_t pad = 0x80, zero = 0, length[8];

	sha256_update(s, &pad, 1);
	while (s->block_len != 56)
		sha256_update(s, &zero, 1);
	for (int i = 0; i < 8; i++)
		length[i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_update(s, length, 8);
	for (int i = 0; i < 8; i++)
		sprintf(hex + 8 * i, "%08" PRIx32, s->h[i]);
}

static void sha256_hex(const void *data, size_t len, char hex[65])
{
	struct sha256 s;

	sha256_init(&s);
	sha256_update(&s, data, len);
	sha256_final_hex(&s, hex);
}

/* ---- Running commands ---- */

struct capture {
	char *data;
	size_t len;
	size_t cap;
};

struct exec_result {
	struct capture out;
	struct capture err;
	msb_exec_status status;
	bool exited;
	/* Output bytes received when the exit callback ran. The library drops
	 * output that arrives after the exit frame, so these must equal the
	 * totals the command wrote. */
	size_t stdout_at_exit;
	size_t stderr_at_exit;
	char stdin_error[256];
};

static void capture_append(struct capture *c, const void *data, size_t len)
{
	if (c->len + len + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;

		while (cap < c->len + len + 1)
			cap *= 2;
		c->data = realloc(c->data, cap);
		if (!c->data) {
			fprintf(stderr, "out of memory capturing output\n");
			abort();
		}
		c->cap = cap;
	}
	memcpy(c->data + c->len, data, len);
	c->len += len;
	c->data[c->len] = 0;
}

static void result_free(struct exec_result *r)
{
	free(r->out.data);
	free(r->err.data);
	memset(r, 0, sizeof(*r));
}

static void on_stdout(void *user_data, const void *data, size_t len)
{
	capture_append(&((struct exec_result *)user_data)->out, data, len);
}

static void on_stderr(void *user_data, const void *data, size_t len)
{
	capture_append(&((struct exec_result *)user_data)->err, data, len);
}

static void on_stdin_error(void *user_data, const char *message)
{
	struct exec_result *r = user_data;

	snprintf(r->stdin_error, sizeof(r->stdin_error), "%s", message);
}

static void on_exit_status(void *user_data, const msb_exec_status *status)
{
	struct exec_result *r = user_data;

	r->status = *status;
	r->exited = true;
	r->stdout_at_exit = r->out.len;
	r->stderr_at_exit = r->err.len;
}

static const msb_exec_callbacks capture_callbacks = {
	.on_stdout = on_stdout,
	.on_stderr = on_stderr,
	.on_stdin_error = on_stdin_error,
	.on_exit = on_exit_status,
};

/* Dispatches until every exec in execs is done or timeout_ms passes. On a
 * timeout the unfinished commands are killed. */
static bool wait_all(msb_exec **execs, size_t n, int timeout_ms)
{
	double deadline = now_s() + timeout_ms / 1000.0;

	for (;;) {
		size_t pending = 0;
		double left;
		msb_error err;
		int rc;

		for (size_t i = 0; i < n; i++)
			pending += !msb_exec_done(execs[i]);
		if (pending == 0)
			return true;
		left = deadline - now_s();
		if (left <= 0) {
			for (size_t i = 0; i < n; i++)
				if (!msb_exec_done(execs[i]))
					msb_exec_signal(execs[i], SIGKILL, NULL);
			return fail("%zu of %zu commands did not finish within %d s", pending, n, timeout_ms / 1000);
		}
		rc = msb_client_dispatch(client, left < 1.0 ? (int)(left * 1000) + 1 : 1000, &err);
		if (rc < 0) {
			/* The frames read before the error were still delivered. */
			client_broken = true;
			pending = 0;
			for (size_t i = 0; i < n; i++)
				pending += !msb_exec_done(execs[i]);
			if (pending == 0)
				return true;
			return fail("connection failed with %zu of %zu commands unfinished: %s", pending, n,
				    err.message);
		}
	}
}

/* Runs cmd with args to its end, writing input to its stdin first. */
static bool run_exec(const char *cmd, const char *const *args, const msb_exec_options *options, const void *input,
		     size_t input_len, struct exec_result *r)
{
	msb_exec *e = NULL;
	msb_error err;
	bool ok;

	memset(r, 0, sizeof(*r));
	if (msb_exec_start(client, cmd, args, options, &capture_callbacks, r, &e, &err) < 0) {
		client_broken = true;
		return fail("msb_exec_start %s failed: %s", cmd, err.message);
	}
	if (input_len > 0 && msb_exec_write_stdin(e, input, input_len, &err) < 0 && !msb_exec_done(e)) {
		msb_exec_free(e);
		client_broken = true;
		return fail("msb_exec_write_stdin failed: %s", err.message);
	}
	if (!msb_exec_done(e) && msb_exec_close_stdin(e, &err) < 0 && !msb_exec_done(e)) {
		msb_exec_free(e);
		client_broken = true;
		return fail("msb_exec_close_stdin failed: %s", err.message);
	}
	ok = wait_all(&e, 1, EXEC_TIMEOUT_MS);
	msb_exec_free(e);
	return ok;
}

static bool run_sh(const char *script, struct exec_result *r)
{
	const char *args[] = { "-c", script, NULL };

	return run_exec("sh", args, NULL, NULL, 0, r);
}

/* Runs a preparation script that must exit 0. */
static bool prepare(const char *script)
{
	struct exec_result r;
	bool ok = run_sh(script, &r);

	if (ok && !(r.status.started && r.status.exit_code == 0))
		ok = fail("preparation `%s` exited with code %d (stderr %s)", script,
			  msb_exec_status_code(&r.status), quote(r.err.data, r.err.len));
	result_free(&r);
	return ok;
}

static bool bytes_equal(const struct capture *c, const void *expected, size_t len)
{
	return c->len == len && (len == 0 || memcmp(c->data, expected, len) == 0);
}

static bool contains(const char *text, const char *part)
{
	return strstr(text, part) != NULL;
}

/* ---- Output streams and exit status ---- */

static bool test_stdout_stderr_separate(void)
{
	struct exec_result r;
	bool ok = run_sh("echo out; echo err >&2", &r);

	if (ok && !bytes_equal(&r.out, "out\n", 4))
		ok = fail("stdout is %s, expected \"out\\n\"", quote(r.out.data, r.out.len));
	if (ok && !bytes_equal(&r.err, "err\n", 4))
		ok = fail("stderr is %s, expected \"err\\n\"", quote(r.err.data, r.err.len));
	if (ok && msb_exec_status_code(&r.status) != 0)
		ok = fail("exit code is %d, expected 0", msb_exec_status_code(&r.status));
	result_free(&r);
	return ok;
}

/* Checks that a script exits normally with the given code. */
static bool expect_exit_code(const char *script, int code)
{
	struct exec_result r;
	bool ok = run_sh(script, &r);

	if (ok && !r.status.started)
		ok = fail("not started: %s", r.status.message);
	if (ok && r.status.signal != 0)
		ok = fail("killed by signal %d, expected exit code %d", r.status.signal, code);
	if (ok && r.status.exit_code != code)
		ok = fail("status.exit_code is %d, expected %d", r.status.exit_code, code);
	if (ok && msb_exec_status_code(&r.status) != code)
		ok = fail("msb_exec_status_code is %d, expected %d", msb_exec_status_code(&r.status), code);
	result_free(&r);
	return ok;
}

static bool test_exit_0(void)
{
	return expect_exit_code("exit 0", 0);
}

static bool test_exit_3(void)
{
	return expect_exit_code("exit 3", 3);
}

static bool test_exit_255(void)
{
	return expect_exit_code("exit 255", 255);
}

/* Checks that a script dies of the given signal. */
static bool expect_signal(const char *script, int sig)
{
	struct exec_result r;
	bool ok = run_sh(script, &r);

	if (ok && !r.status.started)
		ok = fail("not started: %s", r.status.message);
	if (ok && r.status.signal != sig)
		ok = fail("status.signal is %d (exit_code %d), expected %d", r.status.signal, r.status.exit_code, sig);
	if (ok && msb_exec_status_code(&r.status) != 128 + sig)
		ok = fail("msb_exec_status_code is %d, expected %d", msb_exec_status_code(&r.status), 128 + sig);
	result_free(&r);
	return ok;
}

static bool test_sigkill_137(void)
{
	return expect_signal("kill -9 $$", SIGKILL);
}

static bool test_sigterm_143(void)
{
	return expect_signal("kill -TERM $$", SIGTERM);
}

static bool test_stdin_reaches_command(void)
{
	static const char input[] = "hello stdin\nsecond line\n";
	static const char expected[] = "HELLO STDIN\nSECOND LINE\n";
	const char *args[] = { "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())", NULL };
	struct exec_result r;
	bool ok = run_exec("python3", args, NULL, input, strlen(input), &r);

	if (ok && !bytes_equal(&r.out, expected, strlen(expected)))
		ok = fail("stdout is %s, expected %s (stderr %s)", quote(r.out.data, r.out.len),
			  quote(expected, strlen(expected)), quote(r.err.data, r.err.len));
	if (ok && msb_exec_status_code(&r.status) != 0)
		ok = fail("exit code is %d, expected 0", msb_exec_status_code(&r.status));
	if (ok && r.stdin_error[0])
		ok = fail("unexpected stdin error: %s", r.stdin_error);
	result_free(&r);
	return ok;
}

/* Sends 24 MiB to a command that sleeps before it reads, as the room that
 * msb_exec_stdin_room() reports allows, so that the watchdog keeps running
 * while the writer waits. Every byte must arrive, then end of input. */
static bool test_stdin_24mib_slow_reader(void)
{
	const char *args[] = { "-c", "sleep 3; sha256sum", NULL };
	char *input = malloc(BIG_STDIN_BYTES);
	char host_hex[65], expected[80];
	struct exec_result r;
	uint64_t state = 0x9e3779b97f4a7c15ull;
	double deadline = now_s() + EXEC_TIMEOUT_MS / 1000.0;
	size_t sent = 0;
	msb_exec *e = NULL;
	msb_error err;
	bool ok = true;

	for (size_t i = 0; i < BIG_STDIN_BYTES; i++) {
		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		input[i] = (char)state;
	}
	sha256_hex(input, BIG_STDIN_BYTES, host_hex);
	snprintf(expected, sizeof(expected), "%s  -\n", host_hex);

	memset(&r, 0, sizeof(r));
	if (msb_exec_start(client, "sh", args, NULL, &capture_callbacks, &r, &e, &err) < 0) {
		client_broken = true;
		free(input);
		return fail("msb_exec_start failed: %s", err.message);
	}
	while (ok && sent < BIG_STDIN_BYTES && !msb_exec_done(e)) {
		size_t room = msb_exec_stdin_room(e);
		size_t chunk = BIG_STDIN_BYTES - sent;

		if (now_s() > deadline) {
			msb_exec_signal(e, SIGKILL, NULL);
			ok = fail("only %zu of %d stdin bytes were taken within %d s", sent, BIG_STDIN_BYTES,
				  EXEC_TIMEOUT_MS / 1000);
		} else if (room == 0) {
			if (msb_client_dispatch(client, 1000, &err) < 0) {
				client_broken = true;
				ok = fail("connection failed after %zu stdin bytes: %s", sent, err.message);
			}
		} else {
			if (chunk > room)
				chunk = room;
			if (chunk > ONE_MIB)
				chunk = ONE_MIB;
			if (msb_exec_write_stdin(e, input + sent, chunk, &err) < 0) {
				client_broken = true;
				ok = fail("msb_exec_write_stdin failed after %zu bytes: %s", sent, err.message);
			}
			sent += chunk;
		}
	}
	if (ok && msb_exec_done(e))
		ok = fail("the command ended after %zu of %d stdin bytes", sent, BIG_STDIN_BYTES);
	if (ok && msb_exec_close_stdin(e, &err) < 0 && !msb_exec_done(e)) {
		client_broken = true;
		ok = fail("msb_exec_close_stdin failed: %s", err.message);
	}
	if (ok)
		ok = wait_all(&e, 1, (int)((deadline - now_s()) * 1000) + 1);
	if (ok && r.stdin_error[0])
		ok = fail("stdin error: %s", r.stdin_error);
	if (ok && !bytes_equal(&r.out, expected, strlen(expected)))
		ok = fail("sha256sum in the guest printed %s, expected %s (exit code %d)",
			  quote(r.out.data, r.out.len), quote(expected, strlen(expected)),
			  msb_exec_status_code(&r.status));
	if (ok && msb_exec_status_code(&r.status) != 0)
		ok = fail("exit code is %d, expected 0", msb_exec_status_code(&r.status));
	msb_exec_free(e);
	result_free(&r);
	free(input);
	return ok;
}

/* ---- Commands that cannot start ---- */

/* Checks a command that must fail to start with the given kind (NULL: any
 * kind), shell-style code, and a message that contains mention. */
static bool expect_not_started(const char *cmd, const char *kind, int code, const char *mention)
{
	struct exec_result r;
	bool ok = run_exec(cmd, NULL, NULL, NULL, 0, &r);

	if (ok && r.status.started)
		ok = fail("%s started (exit code %d), expected a failure to start", cmd, r.status.exit_code);
	if (ok && kind && strcmp(r.status.failure_kind, kind) != 0)
		ok = fail("failure_kind is \"%s\", expected \"%s\" (message \"%s\")", r.status.failure_kind, kind,
			  r.status.message);
	if (ok && msb_exec_status_code(&r.status) != code)
		ok = fail("msb_exec_status_code is %d, expected %d (failure_kind \"%s\")",
			  msb_exec_status_code(&r.status), code, r.status.failure_kind);
	if (ok && !contains(r.status.message, mention))
		ok = fail("message \"%s\" does not mention %s", r.status.message, mention);
	result_free(&r);
	return ok;
}

static bool test_missing_path_127(void)
{
	return expect_not_started("/nonexistent", "not_found", 127, "/nonexistent");
}

static bool test_missing_name_127(void)
{
	return expect_not_started("e2e-no-such-program", "not_found", 127, "e2e-no-such-program");
}

static bool test_directory_126(void)
{
	return expect_not_started("/etc", NULL, 126, "/etc");
}

/* A script without "#!" runs with /bin/sh when given by path, as execvp()
 * does. */
static bool test_script_without_shebang(void)
{
	struct exec_result r;
	bool ok;

	if (!prepare("printf 'echo hi\\n' > /tmp/nosb; chmod 755 /tmp/nosb"))
		return false;
	ok = run_exec("/tmp/nosb", NULL, NULL, NULL, 0, &r);
	if (ok && !r.status.started)
		ok = fail("not started: %s", r.status.message);
	if (ok && !bytes_equal(&r.out, "hi\n", 3))
		ok = fail("stdout is %s, expected \"hi\\n\"", quote(r.out.data, r.out.len));
	result_free(&r);
	return ok;
}

static bool test_mode_000_file_126(void)
{
	if (!prepare("printf '#!/bin/sh\\necho hi\\n' > /tmp/m0; chmod 000 /tmp/m0"))
		return false;
	return expect_not_started("/tmp/m0", NULL, 126, "/tmp/m0");
}

/* ---- Output delivery ---- */

static bool test_exit_at_once_1000(void)
{
	static const char expected[] = "tail-without-newline";
	double start = now_s();
	int wrong = 0;

	for (int i = 0; i < EXIT_AT_ONCE_RUNS; i++) {
		struct exec_result r;

		if (!run_sh("printf tail-without-newline; exit 3", &r)) {
			char context[32];

			result_free(&r);
			snprintf(context, sizeof(context), "run %d", i + 1);
			return fail_with_context(context);
		}
		if (!bytes_equal(&r.out, expected, strlen(expected)) || msb_exec_status_code(&r.status) != 3) {
			if (wrong == 0)
				fail("run %d: stdout %s, exit code %d", i + 1, quote(r.out.data, r.out.len),
				     msb_exec_status_code(&r.status));
			wrong++;
		}
		result_free(&r);
	}
	printf("# %d runs of a command that exits at once took %.2f s\n", EXIT_AT_ONCE_RUNS, now_s() - start);
	if (wrong > 0) {
		char context[64];

		snprintf(context, sizeof(context), "%d of %d runs were wrong, the first", wrong, EXIT_AT_ONCE_RUNS);
		return fail_with_context(context);
	}
	return true;
}

/* Checks one run of a command that must print expected (len bytes) on
 * stdout and exit 0, with all of it delivered before the exit status. */
static bool expect_big_output(const char *cmd, const char *const *args, const char *expected, size_t len)
{
	struct exec_result r;
	bool ok = run_exec(cmd, args, NULL, NULL, 0, &r);

	if (ok && r.out.len != len)
		ok = fail("got %zu stdout bytes, expected %zu (exit code %d, stderr %s)", r.out.len, len,
			  msb_exec_status_code(&r.status), quote(r.err.data, r.err.len));
	if (ok && r.stdout_at_exit != len)
		ok = fail("only %zu of %zu stdout bytes had arrived when the exit status did", r.stdout_at_exit, len);
	if (ok && memcmp(r.out.data, expected, len) != 0) {
		size_t at = 0;

		while (r.out.data[at] == expected[at])
			at++;
		ok = fail("stdout differs from the expected bytes at offset %zu", at);
	}
	if (ok && msb_exec_status_code(&r.status) != 0)
		ok = fail("exit code is %d, expected 0", msb_exec_status_code(&r.status));
	result_free(&r);
	return ok;
}

static bool test_1mib_zeros_head(void)
{
	const char *args[] = { "-c", "1048576", "/dev/zero", NULL };
	char *zeros = calloc(1, ONE_MIB);
	bool ok = true;

	/* Several runs, because output overtaken by the exit status is a race. */
	for (int i = 0; ok && i < 3; i++)
		ok = expect_big_output("head", args, zeros, ONE_MIB);
	free(zeros);
	return ok;
}

static bool test_1mib_pattern_python(void)
{
	const char *args[] = { "-c", "import sys; sys.stdout.buffer.write(bytes(i % 251 for i in range(1048576)))",
			       NULL };
	char *pattern = malloc(ONE_MIB);
	bool ok = true;

	for (size_t i = 0; i < ONE_MIB; i++)
		pattern[i] = (char)(i % 251);
	for (int i = 0; ok && i < 3; i++)
		ok = expect_big_output("python3", args, pattern, ONE_MIB);
	free(pattern);
	return ok;
}

static bool test_utf8_split_stdout(void)
{
	static const char expected[] = "\xe2\x98\x95\n";
	struct exec_result r;
	bool ok = run_sh("printf '\\342\\230'; sleep 0.3; printf '\\225\\n'", &r);

	if (ok && !bytes_equal(&r.out, expected, 4))
		ok = fail("stdout is %s, expected \"\\xe2\\x98\\x95\\n\"", quote(r.out.data, r.out.len));
	if (ok && r.err.len != 0)
		ok = fail("stderr is %s, expected nothing", quote(r.err.data, r.err.len));
	result_free(&r);
	return ok;
}

static bool test_utf8_split_stderr(void)
{
	static const char expected[] = "\xe2\x98\x95\n";
	struct exec_result r;
	bool ok = run_sh("{ printf '\\342\\230'; sleep 0.3; printf '\\225\\n'; } >&2", &r);

	if (ok && !bytes_equal(&r.err, expected, 4))
		ok = fail("stderr is %s, expected \"\\xe2\\x98\\x95\\n\"", quote(r.err.data, r.err.len));
	if (ok && r.out.len != 0)
		ok = fail("stdout is %s, expected nothing", quote(r.out.data, r.out.len));
	result_free(&r);
	return ok;
}

static bool test_nul_bytes(void)
{
	static const char expected[] = { 'a', 0, 'b', 0, '\n' };
	struct exec_result r;
	bool ok = run_sh("printf 'a\\0b\\0\\n'", &r);

	if (ok && r.out.len != sizeof(expected))
		ok = fail("got %zu bytes %s, expected 5", r.out.len, quote(r.out.data, r.out.len));
	if (ok && memcmp(r.out.data, expected, sizeof(expected)) != 0)
		ok = fail("stdout is %s, expected \"a\\x00b\\x00\\n\"", quote(r.out.data, r.out.len));
	result_free(&r);
	return ok;
}

static bool test_random_1mib_sha256(void)
{
	struct exec_result r;
	char guest_hex[65], host_hex[65];
	const char *args[] = { "/tmp/e2e-random.bin", NULL };
	bool ok = run_sh("head -c 1048576 /dev/urandom > /tmp/e2e-random.bin && sha256sum /tmp/e2e-random.bin", &r);

	if (ok && (msb_exec_status_code(&r.status) != 0 || r.out.len < 64))
		ok = fail("creating the file failed: exit code %d, stdout %s, stderr %s",
			  msb_exec_status_code(&r.status), quote(r.out.data, r.out.len), quote(r.err.data, r.err.len));
	if (ok) {
		memcpy(guest_hex, r.out.data, 64);
		guest_hex[64] = 0;
	}
	result_free(&r);
	if (!ok)
		return false;

	ok = run_exec("cat", args, NULL, NULL, 0, &r);
	if (ok && r.out.len != ONE_MIB)
		ok = fail("cat returned %zu bytes, expected %d", r.out.len, ONE_MIB);
	if (ok) {
		sha256_hex(r.out.data, r.out.len, host_hex);
		if (strcmp(host_hex, guest_hex) != 0)
			ok = fail("sha256 of the received bytes is %s, the guest's sha256sum is %s", host_hex,
				  guest_hex);
	}
	result_free(&r);
	return ok;
}

/* ---- Processes ---- */

static bool test_no_zombies(void)
{
	static const char list_zombies[] =
		"import os, sys\n"
		"found = []\n"
		"for pid in os.listdir('/proc'):\n"
		"    if not pid.isdigit():\n"
		"        continue\n"
		"    try:\n"
		"        stat = open('/proc/%s/stat' % pid).read()\n"
		"    except OSError:\n"
		"        continue\n"
		"    if stat.rsplit(')', 1)[1].split()[0] == 'Z':\n"
		"        found.append(stat[:stat.rindex(')') + 1])\n"
		"sys.stdout.write(' '.join(found))\n";
	const char *args[] = { "-c", list_zombies, NULL };
	struct timespec one_second = { 1, 0 };
	struct exec_result r;
	bool ok = true;

	for (int i = 0; ok && i < ZOMBIE_RUNS; i++) {
		ok = run_sh("sleep 0.05 &", &r);
		if (ok && msb_exec_status_code(&r.status) != 0)
			ok = fail("run %d: exit code %d, expected 0", i + 1, msb_exec_status_code(&r.status));
		result_free(&r);
	}
	if (!ok)
		return false;
	nanosleep(&one_second, NULL);

	ok = run_exec("python3", args, NULL, NULL, 0, &r);
	if (ok && msb_exec_status_code(&r.status) != 0)
		ok = fail("listing processes failed: exit code %d, stderr %s", msb_exec_status_code(&r.status),
			  quote(r.err.data, r.err.len));
	if (ok && r.out.len != 0)
		ok = fail("zombie processes in the guest: %s", quote(r.out.data, r.out.len));
	result_free(&r);
	return ok;
}

static bool test_64_concurrent_execs(void)
{
	struct exec_result results[CONCURRENT_EXECS];
	msb_exec *execs[CONCURRENT_EXECS];
	char scripts[CONCURRENT_EXECS][32];
	size_t started = 0;
	msb_error err;
	bool ok = true;

	memset(results, 0, sizeof(results));
	for (int i = 0; ok && i < CONCURRENT_EXECS; i++) {
		const char *args[] = { "-c", scripts[i], NULL };

		snprintf(scripts[i], sizeof(scripts[i]), "exit %d", i);
		if (msb_exec_start(client, "sh", args, NULL, &capture_callbacks, &results[i], &execs[i], &err) < 0) {
			client_broken = true;
			ok = fail("msb_exec_start %d failed: %s", i, err.message);
			break;
		}
		started++;
		if (msb_exec_close_stdin(execs[i], &err) < 0 && !msb_exec_done(execs[i])) {
			client_broken = true;
			ok = fail("msb_exec_close_stdin %d failed: %s", i, err.message);
		}
	}
	if (ok)
		ok = wait_all(execs, started, EXEC_TIMEOUT_MS);
	for (size_t i = 0; ok && i < started; i++) {
		const msb_exec_status *s = &results[i].status;

		if (!s->started)
			ok = fail("exec %zu did not start: %s", i, s->message);
		else if (s->exit_code != (int)i)
			ok = fail("exec %zu (exit %zu) got exit code %d", i, i, s->exit_code);
	}
	for (size_t i = 0; i < started; i++) {
		msb_exec_free(execs[i]);
		result_free(&results[i]);
	}
	return ok;
}

/* ---- Environment ---- */

/* Runs python3 printing the value of key with env set to entry, and checks
 * that the value arrives byte for byte. */
static bool expect_env_value(const char *entry, const char *key, const char *value)
{
	const char *env[] = { entry, NULL };
	const char *args[] = { "-c", "import os, sys; sys.stdout.write(os.environ[sys.argv[1]])", key, NULL };
	msb_exec_options options = { .env = env };
	struct exec_result r;
	bool ok = run_exec("python3", args, &options, NULL, 0, &r);

	if (ok && msb_exec_status_code(&r.status) != 0)
		ok = fail("python3 exited with code %d, stderr %s", msb_exec_status_code(&r.status),
			  quote(r.err.data, r.err.len));
	if (ok && r.out.len != strlen(value))
		ok = fail("$%s is %zu bytes long (%s), expected %zu (%s)", key, r.out.len,
			  quote(r.out.data, r.out.len), strlen(value), quote(value, strlen(value)));
	if (ok && memcmp(r.out.data, value, r.out.len) != 0)
		ok = fail("$%s is %s, expected %s", key, quote(r.out.data, r.out.len), quote(value, strlen(value)));
	result_free(&r);
	return ok;
}

static bool test_env_equals_signs(void)
{
	return expect_env_value("A=x=y==", "A", "x=y==");
}

static bool test_env_newline(void)
{
	return expect_env_value("NL=line one\nline two", "NL", "line one\nline two");
}

static bool test_env_quotes_spaces(void)
{
	return expect_env_value("Q={\"k\":\"v w\"}", "Q", "{\"k\":\"v w\"}");
}

static bool test_env_empty_value(void)
{
	return expect_env_value("E=", "E", "");
}

static bool test_env_100kb_value(void)
{
	char *entry = malloc(BIG_ENV_BYTES + 5);
	bool ok;

	memcpy(entry, "BIG=", 4);
	for (size_t i = 0; i < BIG_ENV_BYTES; i++)
		entry[4 + i] = (char)('a' + i % 26);
	entry[4 + BIG_ENV_BYTES] = 0;
	ok = expect_env_value(entry, "BIG", entry + 4);
	free(entry);
	return ok;
}

/* ---- Working directory ---- */

/* Checks that running pwd in cwd as user fails with bad_cwd and a message
 * that names cwd. */
static bool expect_bad_cwd(const char *cwd, const char *user)
{
	const msb_exec_options options = { .cwd = cwd, .user = user };
	struct exec_result r;
	bool ok = run_exec("pwd", NULL, &options, NULL, 0, &r);

	if (ok && r.status.started)
		ok = fail("pwd started in %s (stdout %s), expected bad_cwd", cwd, quote(r.out.data, r.out.len));
	if (ok && strcmp(r.status.failure_kind, "bad_cwd") != 0)
		ok = fail("failure_kind is \"%s\", expected \"bad_cwd\" (message \"%s\")", r.status.failure_kind,
			  r.status.message);
	if (ok && !contains(r.status.message, cwd))
		ok = fail("message \"%s\" does not name %s", r.status.message, cwd);
	result_free(&r);
	return ok;
}

static bool test_cwd_missing(void)
{
	return expect_bad_cwd("/nope", NULL);
}

static bool test_cwd_regular_file(void)
{
	if (!prepare("printf x > /tmp/e2e-cwd-file"))
		return false;
	return expect_bad_cwd("/tmp/e2e-cwd-file", NULL);
}

static bool test_cwd_no_permission(void)
{
	if (!prepare("mkdir -p /tmp/locked && chmod 700 /tmp/locked"))
		return false;
	return expect_bad_cwd("/tmp/locked", "nobody");
}

/* ---- Main ---- */

/* Finds build/msb next to build/tests/, where this program is built. */
static bool find_runtime(char *path, size_t len)
{
	const char *from_env = getenv("MSB_RUNTIME");
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (from_env && *from_env) {
		snprintf(path, len, "%s", from_env);
		return true;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return false;
	self[n] = 0;
	for (int i = 0; i < 2; i++) {
		slash = strrchr(self, '/');
		if (!slash)
			return false;
		*slash = 0;
	}
	snprintf(path, len, "%s/msb", self);
	return access(path, X_OK) == 0;
}

int main(void)
{
	static const struct {
		const char *name;
		bool (*fn)(void);
	} cases[] = {
		{ "stdout_stderr_separate", test_stdout_stderr_separate },
		{ "exit_0", test_exit_0 },
		{ "exit_3", test_exit_3 },
		{ "exit_255", test_exit_255 },
		{ "sigkill_137", test_sigkill_137 },
		{ "sigterm_143", test_sigterm_143 },
		{ "stdin_reaches_command", test_stdin_reaches_command },
		{ "stdin_24mib_slow_reader", test_stdin_24mib_slow_reader },
		{ "missing_path_127", test_missing_path_127 },
		{ "missing_name_127", test_missing_name_127 },
		{ "directory_126", test_directory_126 },
		{ "mode_000_file_126", test_mode_000_file_126 },
		{ "script_without_shebang", test_script_without_shebang },
		{ "exit_at_once_1000", test_exit_at_once_1000 },
		{ "1mib_zeros_head", test_1mib_zeros_head },
		{ "1mib_pattern_python", test_1mib_pattern_python },
		{ "utf8_split_stdout", test_utf8_split_stdout },
		{ "utf8_split_stderr", test_utf8_split_stderr },
		{ "nul_bytes", test_nul_bytes },
		{ "random_1mib_sha256", test_random_1mib_sha256 },
		{ "no_zombies", test_no_zombies },
		{ "64_concurrent_execs", test_64_concurrent_execs },
		{ "env_equals_signs", test_env_equals_signs },
		{ "env_newline", test_env_newline },
		{ "env_quotes_spaces", test_env_quotes_spaces },
		{ "env_empty_value", test_env_empty_value },
		{ "env_100kb_value", test_env_100kb_value },
		{ "cwd_missing", test_cwd_missing },
		{ "cwd_regular_file", test_cwd_regular_file },
		{ "cwd_no_permission", test_cwd_no_permission },
	};
	char runtime[PATH_MAX];
	msb_sandbox_options options;
	msb_sandbox *sb = NULL;
	msb_error err;
	double start;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!find_runtime(runtime, sizeof(runtime))) {
		printf("FAIL sandbox_create: build/msb not found next to this program; set MSB_RUNTIME\n");
		printf("0 passed, 1 failed\n");
		return 1;
	}

	snprintf(sandbox_name, sizeof(sandbox_name), "e2e-exec-%d", (int)getpid());
	memset(&options, 0, sizeof(options));
	options.name = sandbox_name;
	options.runtime_path = runtime;
	options.ephemeral = true;
	start = now_s();
	if (msb_sandbox_create(&options, &sb, &err) < 0) {
		printf("FAIL sandbox_create: %s\n", err.message);
		printf("0 passed, 1 failed\n");
		return 1;
	}
	printf("# sandbox %s booted in %.2f s\n", sandbox_name, now_s() - start);

	start = now_s();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(cases[i].name, cases[i].fn);
	printf("# cases took %.2f s\n", now_s() - start);

	msb_disconnect(client);
	client = NULL;
	if (msb_sandbox_stop(sb, 10, &err) < 0) {
		printf("FAIL sandbox_stop: %s\n", err.message);
		failed_count++;
	}
	msb_sandbox_free(sb);

	printf("%d passed, %d failed\n", passed_count, failed_count);
	return failed_count == 0 ? 0 : 1;
}
