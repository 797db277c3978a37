/* Exec sessions of the client library. */
#include "client.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"

/* Shell conventions for commands that never ran. */
#define EXIT_NOT_FOUND 127
#define EXIT_CANNOT_RUN 126
#define EXIT_START_FAILED 125

static size_t count_strings(const char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static struct span *spans_of(const char *const *v, size_t n)
{
	struct span *spans = calloc(n ? n : 1, sizeof(*spans));

	for (size_t i = 0; spans && i < n; i++)
		spans[i] = span_cstr(v[i]);
	return spans;
}

static const msb_exec_options no_options;

/* Builds the request message; free_request() releases its arrays. */
/* The request for cmd; the defaults (sandbox-wide environment entries and
 * working directory, may be empty) come before the exec's own entries, so
 * that the agent, which lets a later entry win, applies the exec's. */
static int build_request(struct msg *m, uint32_t id, const char *cmd, const char *const *args,
			 const msb_exec_options *o, const char *default_env, size_t default_env_len,
			 const char *default_workdir, msb_error *err)
{
	size_t n_default = 0;
	struct msg_rlimit *rlimits = NULL;

	if (!cmd || !*cmd)
		return err_set(err, -EINVAL, "no command given");
	for (const char *const *env = o->env; env && *env; env++) {
		const char *eq = strchr(*env, '=');

		if (!eq || eq == *env)
			return err_set(err, -EINVAL, "invalid environment entry \"%.60s\": expected KEY=VALUE", *env);
	}

	memset(m, 0, sizeof(*m));
	m->type = MSG_EXEC_REQUEST;
	m->id = id;
	m->u.exec_request.cmd = span_cstr(cmd);
	m->u.exec_request.n_args = count_strings(args);
	m->u.exec_request.args = spans_of(args, m->u.exec_request.n_args);
	for (size_t i = 0; i < default_env_len; i++)
		n_default += default_env[i] == 0;
	m->u.exec_request.n_env = n_default + count_strings(o->env);
	m->u.exec_request.env = calloc(m->u.exec_request.n_env + 1, sizeof(struct span));
	if (m->u.exec_request.env) {
		const char *p = default_env;

		for (size_t i = 0; i < n_default; p += strlen(p) + 1, i++)
			m->u.exec_request.env[i] = span_cstr(p);
		for (size_t i = n_default; i < m->u.exec_request.n_env; i++)
			m->u.exec_request.env[i] = span_cstr(o->env[i - n_default]);
	}
	m->u.exec_request.cwd = span_cstr(o->cwd ? o->cwd : default_workdir);
	m->u.exec_request.user = span_cstr(o->user);
	m->u.exec_request.tty = o->tty;
	m->u.exec_request.rows = o->rows ? o->rows : MSG_DEFAULT_ROWS;
	m->u.exec_request.cols = o->cols ? o->cols : MSG_DEFAULT_COLS;
	if (o->n_rlimits) {
		rlimits = calloc(o->n_rlimits, sizeof(*rlimits));
		for (size_t i = 0; rlimits && i < o->n_rlimits; i++) {
			rlimits[i].resource = span_cstr(o->rlimits[i].resource);
			rlimits[i].soft = o->rlimits[i].soft;
			rlimits[i].hard = o->rlimits[i].hard;
		}
		m->u.exec_request.rlimits = rlimits;
		m->u.exec_request.n_rlimits = rlimits ? o->n_rlimits : 0;
	}
	if (!m->u.exec_request.args || !m->u.exec_request.env || (o->n_rlimits && !rlimits)) {
		free(m->u.exec_request.args);
		free(m->u.exec_request.env);
		free(rlimits);
		return err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static void free_request(struct msg *m)
{
	free(m->u.exec_request.args);
	free(m->u.exec_request.env);
	free(m->u.exec_request.rlimits);
}

/* Names the largest argument or environment entry, the likely reason a
 * request does not fit in a frame. */
static int explain_too_large(const char *const *args, const msb_exec_options *o, msb_error *err)
{
	const char *largest = NULL, *what = "argument";
	size_t largest_len = 0;

	for (const char *const *a = args; a && *a; a++) {
		if (strlen(*a) > largest_len) {
			largest = *a;
			largest_len = strlen(*a);
			what = "argument";
		}
	}
	for (const char *const *e = o->env; e && *e; e++) {
		if (strlen(*e) > largest_len) {
			largest = *e;
			largest_len = strlen(*e);
			what = "environment variable";
		}
	}
	if (!largest)
		return err_set(err, -EMSGSIZE, "the command does not fit in a 4 MiB protocol frame");
	return err_set(err, -EMSGSIZE,
		       "the command does not fit in a 4 MiB protocol frame: %s %.*s is %zu bytes long", what,
		       (int)strcspn(largest, "=") < 60 ? (int)strcspn(largest, "=") : 60, largest, largest_len);
}

int msb_exec_validate(const char *cmd, const char *const *args, const msb_exec_options *options, msb_error *err)
{
	const msb_exec_options *o = options ? options : &no_options;
	struct buf frame;
	struct msg m;
	int rc = build_request(&m, 1, cmd, args, o, NULL, 0, NULL, err);

	if (rc < 0)
		return rc;
	buf_init(&frame);
	rc = msg_encode(&frame, &m);
	buf_free(&frame);
	free_request(&m);
	if (rc == -EMSGSIZE)
		return explain_too_large(args, o, err);
	return rc < 0 ? err_sys(err, rc, "encode the exec request") : 0;
}

int msb_exec_start(msb_client *c, const char *cmd, const char *const *args, const msb_exec_options *options,
		   const msb_exec_callbacks *callbacks, void *user_data, msb_exec **out, msb_error *err)
{
	const msb_exec_options *o = options ? options : &no_options;
	struct msg m;
	msb_exec *e;
	int rc;

	e = calloc(1, sizeof(*e));
	if (!e)
		return err_set(err, -ENOMEM, "out of memory");
	e->client = c;
	e->id = client_next_id(c);
	e->user_data = user_data;
	if (callbacks)
		e->callbacks = *callbacks;

	rc = build_request(&m, e->id, cmd, args, o, c->default_env, c->default_env_len, c->default_workdir, err);
	if (rc == 0) {
		rc = client_send(c, &m, err);
		free_request(&m);
		if (rc == -EMSGSIZE)
			explain_too_large(args, o, err);
	}
	if (rc < 0) {
		free(e);
		return rc;
	}

	e->next = c->sessions;
	c->sessions = e;
	*out = e;
	return 0;
}

static void copy_span(char *out, size_t out_len, struct span s)
{
	size_t n = s.len < out_len - 1 ? s.len : out_len - 1;

	if (s.ptr)
		memcpy(out, s.ptr, n);
	out[s.ptr ? n : 0] = 0;
}

static void finish(msb_exec *e)
{
	e->done = true;
	if (e->callbacks.on_exit)
		e->callbacks.on_exit(e->user_data, &e->status);
}

void exec_handle_frame(msb_exec *e, const struct msg *m)
{
	char message[MSB_ERROR_MESSAGE_MAX];

	switch (m->type) {
	case MSG_EXEC_STARTED:
		e->pid = m->u.exec_started.pid;
		e->status.started = true;
		break;
	case MSG_EXEC_STDOUT:
		if (e->callbacks.on_stdout)
			e->callbacks.on_stdout(e->user_data, m->u.data.data.ptr, m->u.data.data.len);
		break;
	case MSG_EXEC_STDERR:
		if (e->callbacks.on_stderr)
			e->callbacks.on_stderr(e->user_data, m->u.data.data.ptr, m->u.data.data.len);
		break;
	case MSG_EXEC_STDIN_CONSUMED:
		if (m->u.exec_stdin_consumed.bytes <= e->stdin_sent)
			e->stdin_consumed = m->u.exec_stdin_consumed.bytes;
		break;
	case MSG_EXEC_STDIN_ERROR:
		e->stdin_failed = true;
		copy_span(message, sizeof(message), m->u.exec_stdin_error.message);
		if (e->callbacks.on_stdin_error)
			e->callbacks.on_stdin_error(e->user_data, message);
		break;
	case MSG_EXEC_EXITED:
		e->status.started = true;
		e->status.exit_code = m->u.exec_exited.code;
		if (m->u.exec_exited.signal.set)
			e->status.signal = m->u.exec_exited.signal.v;
		finish(e);
		break;
	case MSG_EXEC_FAILED:
		e->status.started = false;
		e->status.exit_code = -1;
		copy_span(e->status.failure_kind, sizeof(e->status.failure_kind), m->u.exec_failed.kind);
		copy_span(e->status.message, sizeof(e->status.message), m->u.exec_failed.message);
		e->status.failure_errno = m->u.exec_failed.err.set ? m->u.exec_failed.err.v : 0;
		finish(e);
		break;
	default:
		break;
	}
}

int msb_exec_status_code(const msb_exec_status *s)
{
	if (!s->started) {
		if (strcmp(s->failure_kind, "not_found") == 0)
			return EXIT_NOT_FOUND;
		if (strcmp(s->failure_kind, "permission_denied") == 0 || strcmp(s->failure_kind, "not_executable") == 0)
			return EXIT_CANNOT_RUN;
		return EXIT_START_FAILED;
	}
	if (s->signal > 0)
		return 128 + s->signal;
	if (s->exit_code < 0)
		return 128 + SIGKILL; /* a signal death from an agent that does not name the signal */
	return s->exit_code & 0xff;
}

static int check_live(msb_exec *e, msb_error *err)
{
	if (!e->client)
		return err_set(err, -ENOTCONN, "the connection of this exec session was closed");
	if (e->done)
		return err_set(err, -ESRCH, "the command has already ended");
	return 0;
}

size_t msb_exec_stdin_room(const msb_exec *e)
{
	uint64_t in_flight;

	if (!e->client || !e->client->stdin_flow_control)
		return SIZE_MAX;
	in_flight = e->stdin_sent - e->stdin_consumed;
	return in_flight >= CLIENT_STDIN_WINDOW_BYTES ? 0 : (size_t)(CLIENT_STDIN_WINDOW_BYTES - in_flight);
}

int msb_exec_write_stdin(msb_exec *e, const void *data, size_t len, msb_error *err)
{
	const char *p = data;
	int rc = check_live(e, err);

	/* Empty data would close stdin; sending nothing is the same as not
	 * calling. Big writes go out in frames well below the size limit. */
	while (rc == 0 && len > 0) {
		size_t room = msb_exec_stdin_room(e);
		size_t chunk = len < 1024 * 1024 ? len : 1024 * 1024;

		if (e->stdin_failed)
			return err_set(err, -EPIPE, "the command's stdin is closed");
		if (room == 0) {
			rc = msb_client_dispatch(e->client, -1, err);
			if (rc > 0)
				rc = 0;
			if (e->done)
				return err_set(err, -ESRCH, "the command ended before it read all of its stdin");
			continue;
		}
		if (chunk > room)
			chunk = room;
		rc = client_send_data(e->client, MSG_EXEC_STDIN, e->id, p, chunk, err);
		e->stdin_sent += chunk;
		p += chunk;
		len -= chunk;
	}
	return rc;
}

int msb_exec_close_stdin(msb_exec *e, msb_error *err)
{
	int rc = check_live(e, err);

	return rc < 0 ? rc : client_send_data(e->client, MSG_EXEC_STDIN, e->id, "", 0, err);
}

int msb_exec_resize(msb_exec *e, uint16_t rows, uint16_t cols, msb_error *err)
{
	struct msg m;
	int rc = check_live(e, err);

	if (rc < 0)
		return rc;
	memset(&m, 0, sizeof(m));
	m.type = MSG_EXEC_RESIZE;
	m.id = e->id;
	m.u.exec_resize.rows = rows;
	m.u.exec_resize.cols = cols;
	return client_send(e->client, &m, err);
}

int msb_exec_signal(msb_exec *e, int signal, msb_error *err)
{
	struct msg m;
	int rc = check_live(e, err);

	if (rc < 0)
		return rc;
	memset(&m, 0, sizeof(m));
	m.type = MSG_EXEC_SIGNAL;
	m.id = e->id;
	m.u.exec_signal.signal = signal;
	return client_send(e->client, &m, err);
}

bool msb_exec_done(const msb_exec *e)
{
	return e->done;
}

int msb_exec_wait(msb_exec *e, msb_exec_status *status, msb_error *err)
{
	while (!e->done) {
		int rc;

		if (!e->client)
			return err_set(err, -ENOTCONN, "the connection of this exec session was closed");
		rc = msb_client_dispatch(e->client, -1, err);
		if (rc < 0 && !e->done)
			return rc;
	}
	if (status)
		*status = e->status;
	return 0;
}

void msb_exec_free(msb_exec *e)
{
	if (!e)
		return;
	if (e->client) {
		for (msb_exec **p = &e->client->sessions; *p; p = &(*p)->next) {
			if (*p == e) {
				*p = e->next;
				break;
			}
		}
	}
	free(e);
}

struct collector {
	struct buf out;
	struct buf err;
};

static void collect_stdout(void *data, const void *bytes, size_t len)
{
	buf_append(&((struct collector *)data)->out, bytes, len);
}

static void collect_stderr(void *data, const void *bytes, size_t len)
{
	buf_append(&((struct collector *)data)->err, bytes, len);
}

/* Hands the collected bytes over as a NUL-terminated string. */
static char *take_text(struct buf *b, size_t *len)
{
	char *text;

	*len = buf_pending(b);
	text = malloc(*len + 1);
	if (text) {
		memcpy(text, buf_peek(b), *len);
		text[*len] = 0;
	}
	buf_free(b);
	return text;
}

int msb_exec_collect(msb_client *c, const char *cmd, const char *const *args, const msb_exec_options *options,
		     msb_output *out, msb_error *err)
{
	static const msb_exec_callbacks callbacks = { .on_stdout = collect_stdout, .on_stderr = collect_stderr };
	struct collector col;
	msb_exec *e = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_init(&col.out);
	buf_init(&col.err);
	rc = msb_exec_start(c, cmd, args, options, &callbacks, &col, &e, err);
	if (rc == 0) {
		rc = msb_exec_close_stdin(e, err);
		if (rc == -ESRCH)
			rc = 0;
	}
	if (rc == 0)
		rc = msb_exec_wait(e, &out->status, err);
	msb_exec_free(e);
	out->stdout_data = take_text(&col.out, &out->stdout_len);
	out->stderr_data = take_text(&col.err, &out->stderr_len);
	return rc;
}

void msb_output_free(msb_output *out)
{
	free(out->stdout_data);
	free(out->stderr_data);
	out->stdout_data = NULL;
	out->stderr_data = NULL;
}
