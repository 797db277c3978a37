/* End-to-end tests of many clients on one sandbox through the C API.
 *
 * 16 connections each start 4 exec sessions at once, and one poll loop
 * drives all connections with msb_client_dispatch(). Every session prints
 * 2000 numbered lines to stdout and 20 to stderr and exits with its own
 * code, and the checks compare each stream byte for byte. Meanwhile a 17th
 * connection that runs `sleep 30` disconnects, and the test checks that
 * its process is gone from the guest while the other sessions finish.
 *
 * Each case prints "ok NAME" or "FAIL NAME: detail"; the last line is
 * "N passed, N failed". Every wait has a deadline, so a hang fails a case.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
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

#define CLIENTS 16
#define SESSIONS_PER_CLIENT 4
#define SESSIONS (CLIENTS * SESSIONS_PER_CLIENT)
#define STDOUT_LINES 2000
/* Each session writes one stderr line after every this many stdout lines. */
#define STDERR_EVERY 100
#define STDERR_LINES (STDOUT_LINES / STDERR_EVERY)
#define SANDBOX_MEMORY_MIB 1536
#define SANDBOX_CPUS 2
#define RUN_DEADLINE_S 240.0
#define CHECK_DEADLINE_S 30.0
/* The disconnect happens once the sessions have sent this many bytes. */
#define DISCONNECT_AFTER_BYTES (256 * 1024)

/* Prints STDOUT_LINES lines "TAG N" to stdout and, after every
 * STDERR_EVERY of them, "TAG err M" to stderr, with small sleeps. Then it
 * exits with the code given. argv: TAG CODE. */
static const char session_script[] =
	"import sys, time\n"
	"tag, code = sys.argv[1], int(sys.argv[2])\n"
	"for i in range(2000):\n"
	"    sys.stdout.write(f'{tag} {i}\\n')\n"
	"    if i % 100 == 99:\n"
	"        sys.stdout.flush()\n"
	"        sys.stderr.write(f'{tag} err {i // 100}\\n')\n"
	"        sys.stderr.flush()\n"
	"        time.sleep(0.005)\n"
	"sys.exit(code)\n";

/* Prints how many processes in the guest run exactly `sleep 30`. */
static const char count_sleep_script[] =
	"import glob\n"
	"n = 0\n"
	"for p in glob.glob('/proc/[0-9]*/cmdline'):\n"
	"    try:\n"
	"        n += open(p, 'rb').read() == b'sleep\\x0030\\x00'\n"
	"    except OSError:\n"
	"        pass\n"
	"print(n)\n";

struct growbuf {
	char *data;
	size_t len, cap;
};

struct session {
	int client;
	int expected_code;
	char tag[16];
	msb_exec *exec;
	struct growbuf out, err;
	bool exited;
	msb_exec_status status;
};

static int passed_count, failed_count;
static volatile sig_atomic_t interrupted;

static void report(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "ok NAME" when fmt is NULL, else "FAIL NAME: detail". */
static void report(const char *name, const char *fmt, ...)
{
	va_list ap;

	if (!fmt) {
		printf("ok %s\n", name);
		passed_count++;
		return;
	}
	printf("FAIL %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	failed_count++;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void growbuf_append(struct growbuf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (b->len + len + 1 > cap)
			cap *= 2;
		b->data = realloc(b->data, cap);
		if (!b->data) {
			fprintf(stderr, "out of memory\n");
			exit(2);
		}
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = 0;
}

static void growbuf_free(struct growbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* Writes up to 60 bytes of data from offset as a C string literal, for
 * messages. */
static const char *quote(const char *data, size_t len, size_t offset)
{
	static char text[4][300];
	static int next;
	char *out = text[next++ % 4];
	size_t o = 0;

	out[o++] = '"';
	for (size_t i = offset; i < len && i < offset + 60; i++) {
		unsigned char ch = (unsigned char)data[i];

		if (ch == '\n')
			o += (size_t)sprintf(out + o, "\\n");
		else if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			o += (size_t)sprintf(out + o, "\\x%02x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o++] = '"';
	out[o] = 0;
	return out;
}

static void session_stdout(void *user_data, const void *data, size_t len)
{
	growbuf_append(&((struct session *)user_data)->out, data, len);
}

static void session_stderr(void *user_data, const void *data, size_t len)
{
	growbuf_append(&((struct session *)user_data)->err, data, len);
}

static void session_exit(void *user_data, const msb_exec_status *status)
{
	struct session *s = user_data;

	s->status = *status;
	s->exited = true;
}

static const msb_exec_callbacks session_callbacks = {
	.on_stdout = session_stdout,
	.on_stderr = session_stderr,
	.on_exit = session_exit,
};

/* Finds build/msb next to this program (build/tests/NAME), or takes
 * $MSB_RUNTIME. */
static bool find_runtime(char *out, size_t len)
{
	const char *env = getenv("MSB_RUNTIME");
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, X_OK) == 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return false;
	self[n] = 0;
	slash = strrchr(self, '/');
	if (!slash)
		return false;
	*slash = 0;
	snprintf(out, len, "%s/../msb", self);
	return access(out, X_OK) == 0;
}

/* Runs a python3 script on client c to its end, with a deadline, and
 * fills s. Returns false with a message in detail when it did not finish. */
static bool run_python(msb_client *c, const char *script, struct session *s, char *detail, size_t detail_len)
{
	const char *args[] = { "-c", script, NULL };
	msb_error err;
	double deadline = now_s() + CHECK_DEADLINE_S;

	memset(s, 0, sizeof(*s));
	if (msb_exec_start(c, "python3", args, NULL, &session_callbacks, s, &s->exec, &err) < 0) {
		snprintf(detail, detail_len, "msb_exec_start: %s", err.message);
		return false;
	}
	while (!s->exited && now_s() < deadline && !interrupted) {
		if (msb_client_dispatch(c, 100, &err) < 0) {
			snprintf(detail, detail_len, "msb_client_dispatch: %s", err.message);
			break;
		}
	}
	msb_exec_free(s->exec);
	s->exec = NULL;
	if (!s->exited) {
		if (!detail[0])
			snprintf(detail, detail_len, "the script did not finish within %.0f s", CHECK_DEADLINE_S);
		return false;
	}
	return true;
}

/* Counts the `sleep 30` processes in the guest through client c. Returns
 * -1 on failure, with the reason in detail. */
static int count_sleep_30(msb_client *c, char *detail, size_t detail_len)
{
	struct session s;
	int count = -1;

	detail[0] = 0;
	if (run_python(c, count_sleep_script, &s, detail, detail_len)) {
		if (!s.status.started || s.status.exit_code != 0 || sscanf(s.out.data ? s.out.data : "", "%d", &count) != 1) {
			snprintf(detail, detail_len, "the count script exited with %d, stdout %s, stderr %s",
				 msb_exec_status_code(&s.status), quote(s.out.data, s.out.len, 0),
				 quote(s.err.data, s.err.len, 0));
			count = -1;
		}
	}
	growbuf_free(&s.out);
	growbuf_free(&s.err);
	return count;
}

/* Waits up to timeout_s for the count of `sleep 30` processes to reach
 * want. Returns the last count, or -1 with the reason in detail. */
static int wait_sleep_30_count(msb_client *c, int want, double timeout_s, char *detail, size_t detail_len)
{
	double deadline = now_s() + timeout_s;
	int count;

	for (;;) {
		count = count_sleep_30(c, detail, detail_len);
		if (count < 0 || count == want || now_s() >= deadline || interrupted)
			return count;
		usleep(200 * 1000);
	}
}

/* Builds the output that session tag should write to stdout (stream 1)
 * or stderr (stream 2). */
static void expected_output(const char *tag, int stream, struct growbuf *b)
{
	char line[64];
	int n;

	if (stream == 1) {
		for (int i = 0; i < STDOUT_LINES; i++) {
			n = snprintf(line, sizeof(line), "%s %d\n", tag, i);
			growbuf_append(b, line, (size_t)n);
		}
	} else {
		for (int i = 0; i < STDERR_LINES; i++) {
			n = snprintf(line, sizeof(line), "%s err %d\n", tag, i);
			growbuf_append(b, line, (size_t)n);
		}
	}
}

/* Compares a received stream with the expected one. On a difference, it
 * writes where it is into detail and returns false. */
static bool same_stream(const char *tag, const char *stream_name, const struct growbuf *got,
			const struct growbuf *want, char *detail, size_t detail_len)
{
	size_t i = 0;
	size_t line_start = 0;
	unsigned line = 0;

	while (i < got->len && i < want->len && got->data[i] == want->data[i]) {
		if (got->data[i] == '\n') {
			line++;
			line_start = i + 1;
		}
		i++;
	}
	if (i == got->len && i == want->len)
		return true;
	snprintf(detail, detail_len, "session %s %s: %zu bytes, expected %zu; line %u differs: got %s, expected %s",
		 tag, stream_name, got->len, want->len, line, quote(got->data, got->len, line_start),
		 quote(want->data, want->len, line_start));
	return false;
}

int main(void)
{
	static struct session sessions[SESSIONS];
	char runtime[PATH_MAX];
	char name[64];
	char detail[1024];
	msb_sandbox_options options;
	msb_sandbox *sb = NULL;
	msb_client *clients[CLIENTS] = { 0 };
	msb_client *leaver = NULL;
	msb_exec *leaver_exec = NULL;
	bool client_broken[CLIENTS] = { false };
	msb_error err;
	struct sigaction sa;
	double start, suite_start = now_s();
	int connected = 0, started = 0, done = 0, count;
	size_t received = 0;
	bool disconnected = false;
	int running_at_disconnect = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (!find_runtime(runtime, sizeof(runtime))) {
		report("sandbox_create", "build/msb not found next to this program; set MSB_RUNTIME");
		printf("%d passed, %d failed\n", passed_count, failed_count);
		return 1;
	}

	snprintf(name, sizeof(name), "e2e-clients-%d", (int)getpid());
	memset(&options, 0, sizeof(options));
	options.name = name;
	options.runtime_path = runtime;
	options.ephemeral = false;
	options.cpus = SANDBOX_CPUS;
	options.memory_mib = SANDBOX_MEMORY_MIB;
	start = now_s();
	if (msb_sandbox_create(&options, &sb, &err) < 0) {
		report("sandbox_create", "%s", err.message);
		printf("%d passed, %d failed\n", passed_count, failed_count);
		return 1;
	}
	printf("# sandbox %s booted in %.2f s\n", name, now_s() - start);

	/* ---- Connect ---- */
	detail[0] = 0;
	for (int i = 0; i < CLIENTS; i++) {
		if (msb_connect(name, &clients[i], &err) < 0) {
			clients[i] = NULL;
			if (!detail[0])
				snprintf(detail, sizeof(detail), "client %d: %s", i, err.message);
		} else {
			connected++;
		}
	}
	if (msb_connect(name, &leaver, &err) < 0) {
		leaver = NULL;
		if (!detail[0])
			snprintf(detail, sizeof(detail), "the client that disconnects: %s", err.message);
	}
	if (detail[0])
		report("connect_17_clients", "%s", detail);
	else
		report("connect_17_clients", NULL);

	/* ---- The session that is cut off ---- */
	if (leaver && clients[0]) {
		const char *sleep_args[] = { "30", NULL };

		if (msb_exec_start(leaver, "sleep", sleep_args, NULL, NULL, NULL, &leaver_exec, &err) < 0) {
			report("leaver_sleep_running", "msb_exec_start: %s", err.message);
		} else {
			count = wait_sleep_30_count(clients[0], 1, 10, detail, sizeof(detail));
			if (count < 0)
				report("leaver_sleep_running", "%s", detail);
			else if (count != 1)
				report("leaver_sleep_running", "%d `sleep 30` processes in the guest, expected 1", count);
			else
				report("leaver_sleep_running", NULL);
		}
	}

	/* ---- Start all sessions at once ---- */
	detail[0] = 0;
	for (int i = 0; i < SESSIONS; i++) {
		struct session *s = &sessions[i];
		char code[8];
		const char *args[5];

		s->client = i / SESSIONS_PER_CLIENT;
		s->expected_code = i;
		snprintf(s->tag, sizeof(s->tag), "c%ds%d", s->client, i % SESSIONS_PER_CLIENT);
		snprintf(code, sizeof(code), "%d", s->expected_code);
		args[0] = "-c";
		args[1] = session_script;
		args[2] = s->tag;
		args[3] = code;
		args[4] = NULL;
		if (!clients[s->client])
			continue;
		if (msb_exec_start(clients[s->client], "python3", args, NULL, &session_callbacks, s, &s->exec, &err) < 0) {
			s->exec = NULL;
			if (!detail[0])
				snprintf(detail, sizeof(detail), "session %s: %s", s->tag, err.message);
			continue;
		}
		started++;
	}
	if (started != SESSIONS)
		report("start_64_sessions", "%d of %d sessions started; first error: %s", started, SESSIONS,
		       detail[0] ? detail : "(client not connected)");
	else
		report("start_64_sessions", NULL);

	/* ---- One poll loop drives every connection ---- */
	start = now_s();
	detail[0] = 0;
	while (done < started && now_s() - start < RUN_DEADLINE_S && !interrupted) {
		struct pollfd fds[CLIENTS];
		int nfds = 0;

		for (int i = 0; i < CLIENTS; i++) {
			if (!clients[i] || client_broken[i])
				continue;
			fds[nfds].fd = msb_client_fd(clients[i]);
			fds[nfds].events = POLLIN;
			nfds++;
		}
		if (nfds == 0)
			break;
		if (poll(fds, (nfds_t)nfds, 50) < 0 && errno != EINTR) {
			snprintf(detail, sizeof(detail), "poll: %s", strerror(errno));
			break;
		}
		/* Every connection gets a dispatch call, readable or not, so
		 * that requests still queued in a client are sent too. */
		for (int i = 0; i < CLIENTS; i++) {
			if (!clients[i] || client_broken[i])
				continue;
			if (msb_client_dispatch(clients[i], 0, &err) < 0) {
				client_broken[i] = true;
				if (!detail[0])
					snprintf(detail, sizeof(detail), "client %d: msb_client_dispatch: %s", i,
						 err.message);
			}
		}

		done = 0;
		received = 0;
		for (int i = 0; i < SESSIONS; i++) {
			done += sessions[i].exec && sessions[i].exited;
			received += sessions[i].out.len;
		}
		if (!disconnected && leaver && received >= DISCONNECT_AFTER_BYTES) {
			running_at_disconnect = started - done;
			msb_disconnect(leaver);
			leaver = NULL;
			disconnected = true;
			printf("# disconnected after %.2f s, %zu bytes received, %d sessions running\n", now_s() - start,
			       received, running_at_disconnect);
		}
	}
	printf("# %d sessions ended in %.2f s\n", done, now_s() - start);
	if (interrupted)
		report("sessions_finish", "interrupted by a signal");
	else if (detail[0])
		report("sessions_finish", "%s", detail);
	else if (done < started)
		report("sessions_finish", "%d of %d sessions did not end within %.0f s", started - done, started,
		       RUN_DEADLINE_S);
	else
		report("sessions_finish", NULL);

	/* ---- Per-session checks ---- */
	{
		struct growbuf want = { 0 };
		char out_detail[1024] = "", err_detail[1024] = "", code_detail[512] = "";
		int out_bad = 0, err_bad = 0, code_bad = 0, checked = 0;

		for (int i = 0; i < SESSIONS; i++) {
			struct session *s = &sessions[i];
			int code;

			if (!s->exec || !s->exited)
				continue;
			checked++;
			want.len = 0;
			expected_output(s->tag, 1, &want);
			if (!same_stream(s->tag, "stdout", &s->out, &want, detail, sizeof(detail))) {
				if (!out_bad++)
					snprintf(out_detail, sizeof(out_detail), "%s", detail);
			}
			want.len = 0;
			expected_output(s->tag, 2, &want);
			if (!same_stream(s->tag, "stderr", &s->err, &want, detail, sizeof(detail))) {
				if (!err_bad++)
					snprintf(err_detail, sizeof(err_detail), "%s", detail);
			}
			code = msb_exec_status_code(&s->status);
			if (!s->status.started || code != s->expected_code) {
				if (!code_bad++)
					snprintf(code_detail, sizeof(code_detail),
						 "session %s: exit code %d (started %d, signal %d, %s), expected %d", s->tag,
						 code, s->status.started, s->status.signal, s->status.message,
						 s->expected_code);
			}
		}
		growbuf_free(&want);

		if (checked == 0)
			report("stdout_whole_in_order", "no session ended");
		else if (out_bad)
			report("stdout_whole_in_order", "%d of %d sessions; first: %s", out_bad, checked, out_detail);
		else
			report("stdout_whole_in_order", NULL);
		if (checked == 0)
			report("stderr_separate", "no session ended");
		else if (err_bad)
			report("stderr_separate", "%d of %d sessions; first: %s", err_bad, checked, err_detail);
		else
			report("stderr_separate", NULL);
		if (checked == 0)
			report("exit_codes", "no session ended");
		else if (code_bad)
			report("exit_codes", "%d of %d sessions; first: %s", code_bad, checked, code_detail);
		else
			report("exit_codes", NULL);
	}

	/* ---- The disconnected client's session ---- */
	if (!disconnected)
		report("disconnect_kills_session", "the client never disconnected: only %zu bytes of output arrived",
		       received);
	else if (running_at_disconnect == 0)
		report("disconnect_kills_session",
		       "every other session had ended before the disconnect, so it did not happen mid-run");
	else if (!clients[0] || client_broken[0])
		report("disconnect_kills_session", "client 0, which checks the guest, is not connected");
	else {
		count = wait_sleep_30_count(clients[0], 0, 5, detail, sizeof(detail));
		if (count < 0)
			report("disconnect_kills_session", "%s", detail);
		else if (count != 0)
			report("disconnect_kills_session", "%d `sleep 30` processes remain in the guest after the disconnect",
			       count);
		else
			report("disconnect_kills_session", NULL);
	}

	/* ---- Clean up ---- */
	msb_exec_free(leaver_exec);
	msb_disconnect(leaver);
	for (int i = 0; i < SESSIONS; i++) {
		msb_exec_free(sessions[i].exec);
		growbuf_free(&sessions[i].out);
		growbuf_free(&sessions[i].err);
	}
	for (int i = 0; i < CLIENTS; i++)
		msb_disconnect(clients[i]);
	if (msb_sandbox_stop(sb, 10, &err) < 0)
		report("sandbox_stop_remove", "msb_sandbox_stop: %s", err.message);
	else if (msb_sandbox_remove(sb, false, &err) < 0)
		report("sandbox_stop_remove", "msb_sandbox_remove after the stop: %s", err.message);
	else
		report("sandbox_stop_remove", NULL);
	/* Removes the sandbox whatever failed above. This does nothing once it
	 * is gone. */
	msb_sandbox_remove(sb, true, NULL);
	msb_sandbox_free(sb);

	printf("# suite took %.1f s\n", now_s() - suite_start);
	printf("%d passed, %d failed\n", passed_count, failed_count);
	return failed_count == 0 ? 0 : 1;
}
