/* Connections to a sandbox's relay socket. */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/home.h"
#include "../base/monotonic.h"
#include "../base/index.h"
#include "../proto/frame.h"

#define READ_CHUNK_BYTES (256 * 1024)

/* Why the sandbox closed the connection, from its state in the index: a
 * stop records "draining" with its reason before the guest goes. */
static int closed_error(msb_client *c, msb_error *err)
{
	struct sandbox_record rec;
	struct index *idx;
	int rc = -1;

	if (c->name[0] && index_open(&idx, NULL) == 0) {
		rc = index_get(idx, c->name, &rec, NULL);
		index_close(idx);
	}
	if (rc == 0) {
		bool stopping = strcmp(rec.state, STATE_RUNNING) != 0 && strcmp(rec.state, STATE_CREATING) != 0;

		if (stopping && rec.stop_reason[0])
			err_set(err, -EPIPE, "sandbox %s stopped (%s)", c->name, rec.stop_reason);
		else
			err_set(err, -EPIPE, "sandbox %s closed the connection; `msb logs %s` may say why", c->name,
				c->name);
		index_record_free(&rec);
		return -EPIPE;
	}
	return err_set(err, -EPIPE, "the sandbox closed the connection (it stopped, or refused a client)");
}

static int read_some(msb_client *c, msb_error *err)
{
	ssize_t n;

	if (buf_reserve(&c->in, READ_CHUNK_BYTES) < 0)
		return err_set(err, -ENOMEM, "out of memory reading from the sandbox");
	do
		n = recv(c->fd, c->in.data + c->in.len, READ_CHUNK_BYTES, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN)
			return 0;
		return err_sys(err, -errno, "read from the sandbox");
	}
	if (n == 0) {
		c->closed = true;
		return closed_error(c, err);
	}
	c->in.len += (size_t)n;
	return (int)n;
}

/* Waits up to the deadline until the buffered input contains want bytes. */
static int read_until(msb_client *c, size_t want, int64_t deadline, msb_error *err)
{
	while (buf_pending(&c->in) < want) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int64_t left = deadline - monotonic_ms();
		int rc;

		if (left <= 0)
			return err_set(err, -ETIMEDOUT, "the sandbox did not answer within %d ms",
				       CLIENT_HANDSHAKE_TIMEOUT_MS);
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return err_sys(err, -errno, "wait for the sandbox");
		rc = read_some(c, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int handshake(msb_client *c, msb_error *err)
{
	int64_t deadline = monotonic_ms() + CLIENT_HANDSHAKE_TIMEOUT_MS;
	struct frame_header h;
	long total;
	int rc;

	rc = read_until(c, 8, deadline, err);
	if (rc < 0)
		return rc == -EPIPE ? err_set(err, rc,
					      "the sandbox closed the connection before its handshake: it is stopping, "
					      "or all of its client slots are in use")
				    : rc;
	c->id_start = frame_get_be32(buf_peek(&c->in));
	c->id_end = frame_get_be32(buf_peek(&c->in) + 4);
	buf_consume(&c->in, 8);
	if (c->id_start == 0 || c->id_end <= c->id_start)
		return err_set(err, -EPROTO, "the sandbox sent an invalid id range [%u, %u)", c->id_start, c->id_end);
	c->next_id = c->id_start;

	/* Then the cached core.ready frame. */
	for (;;) {
		total = frame_scan(buf_peek(&c->in), buf_pending(&c->in), &h);
		if (total < 0)
			return err_set(err, -EPROTO, "the sandbox sent a malformed ready frame");
		if (total > 0)
			break;
		rc = read_until(c, buf_pending(&c->in) + 1, deadline, err);
		if (rc < 0)
			return rc;
	}
	/* msb's own agent reports consumed stdin; others do not. */
	{
		struct msg ready;

		if (msg_decode(buf_peek(&c->in), (size_t)total, &ready) == 0) {
			c->stdin_flow_control = ready.type == MSG_READY && ready.u.ready.agent_version.ptr &&
						ready.u.ready.agent_version.len >= 10 &&
						memcmp(ready.u.ready.agent_version.ptr, "msb-agentd", 10) == 0;
			msg_free(&ready);
		}
	}
	buf_consume(&c->in, (size_t)total);
	return 0;
}

int msb_connect_path(const char *socket_path, msb_client **out, msb_error *err)
{
	struct sockaddr_un addr;
	msb_client *c;
	int rc;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(socket_path) >= sizeof(addr.sun_path))
		return err_set(err, -ENAMETOOLONG, "socket path too long: %s", socket_path);
	strcpy(addr.sun_path, socket_path);

	c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(err, -ENOMEM, "out of memory");
	buf_init(&c->in);
	buf_init(&c->out);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		free(c);
		return err_sys(err, -errno, "create socket");
	}
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		rc = err_sys(err, -errno, "connect to %s", socket_path);
		msb_disconnect(c);
		return rc;
	}
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	rc = handshake(c, err);
	if (rc < 0) {
		msb_disconnect(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* Says why there is no socket: no such sandbox, or its state. */
static int not_running(const char *name, msb_error *err)
{
	struct sandbox_record rec;
	struct index *idx;
	int rc;

	if (index_open(&idx, NULL) < 0)
		return err_set(err, -ENOENT, "sandbox %s is not running", name);
	rc = index_get(idx, name, &rec, NULL);
	if (rc == 0)
		index_reconcile(idx, &rec);
	index_close(idx);
	if (rc < 0)
		return err_set(err, -ENOENT, "no sandbox named %s; `msb ls` lists them", name);
	if (strcmp(rec.state, STATE_STOPPED) == 0 || strcmp(rec.state, STATE_CRASHED) == 0)
		rc = err_set(err, -ENOTCONN, "sandbox %s is %s%s%s%s; start it with `msb start %s`", name, rec.state,
			     rec.stop_reason[0] ? " (" : "", rec.stop_reason, rec.stop_reason[0] ? ")" : "", name);
	else
		rc = err_set(err, -ENOTCONN, "sandbox %s is %s, not running", name, rec.state);
	index_record_free(&rec);
	return rc;
}

/* The sandbox's environment and working directory apply to every exec. */
static void load_defaults(msb_client *c, const char *name)
{
	struct sandbox_record rec;
	struct index *idx;

	if (index_open(&idx, NULL) < 0)
		return;
	if (index_get(idx, name, &rec, NULL) == 0) {
		c->default_env = rec.env;
		c->default_env_len = rec.env_len;
		rec.env = NULL;
		if (rec.workdir[0])
			c->default_workdir = strdup(rec.workdir);
		index_record_free(&rec);
	}
	index_close(idx);
}

int msb_connect(const char *name, msb_client **out, msb_error *err)
{
	char path[PATH_MAX];
	int rc = home_check_name(name, err);

	if (rc < 0)
		return rc;
	home_path(path, sizeof(path), "sandboxes/%s/agent.sock", name);
	if (access(path, F_OK) < 0)
		return not_running(name, err);
	rc = msb_connect_path(path, out, err);
	if (rc == 0) {
		snprintf((*out)->name, sizeof((*out)->name), "%s", name);
		load_defaults(*out, name);
	}
	return rc;
}

void msb_disconnect(msb_client *c)
{
	if (!c)
		return;
	for (msb_exec *e = c->sessions; e; e = e->next)
		e->client = NULL;
	if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c->default_env);
	free(c->default_workdir);
	free(c);
}

int msb_client_fd(const msb_client *c)
{
	return c->fd;
}

uint32_t client_next_id(msb_client *c)
{
	for (;;) {
		uint32_t id = c->next_id;
		bool used = false;

		c->next_id = c->next_id + 1 >= c->id_end ? c->id_start : c->next_id + 1;
		for (msb_exec *e = c->sessions; e; e = e->next)
			used |= e->id == id;
		for (struct client_call *call = c->calls; call; call = call->next)
			used |= call->id == id;
		if (!used)
			return id;
	}
}

static int flush_out(msb_client *c, msb_error *err)
{
	while (buf_pending(&c->out) > 0) {
		ssize_t n = send(c->fd, buf_peek(&c->out), buf_pending(&c->out), MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			c->closed = true;
			return err_sys(err, -errno, "write to the sandbox");
		}
		buf_consume(&c->out, (size_t)n);
	}
	buf_shrink(&c->out);
	return 0;
}

static void process_frames(msb_client *c)
{
	for (;;) {
		struct frame_header h;
		struct msg m;
		long total = frame_scan(buf_peek(&c->in), buf_pending(&c->in), &h);

		if (total <= 0) {
			if (total < 0) {
				/* The stream cannot be resynchronised. */
				c->closed = true;
				buf_reset(&c->in);
			}
			break;
		}
		if (msg_decode(buf_peek(&c->in), (size_t)total, &m) == 0) {
			for (msb_exec *e = c->sessions; e; e = e->next) {
				if (e->id == m.id && !e->done) {
					exec_handle_frame(e, &m);
					break;
				}
			}
			for (struct client_call *call = c->calls; call; call = call->next) {
				if (call->id == m.id && !call->done) {
					call->on_frame(call, &m);
					break;
				}
			}
			msg_free(&m);
		}
		buf_consume(&c->in, (size_t)total);
	}
	buf_shrink(&c->in);
}

int msb_client_dispatch(msb_client *c, int timeout_ms, msb_error *err)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	int rc;

	if (c->closed)
		return err_set(err, -EPIPE, "the connection to the sandbox is closed");
	if (buf_pending(&c->out))
		p.events |= POLLOUT;
	rc = poll(&p, 1, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : err_sys(err, -errno, "wait for the sandbox");
	if (rc == 0)
		return 0;
	if (p.revents & POLLOUT) {
		rc = flush_out(c, err);
		if (rc < 0)
			return rc;
	}
	if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
		rc = read_some(c, err);
		process_frames(c);
		if (rc < 0)
			return rc;
	}
	return 1;
}

/* Writes queued frames; above the high mark, waits for the socket while
 * still reading, so that a full queue on both sides cannot deadlock. */
static int flush_or_wait(msb_client *c, msb_error *err)
{
	int rc = flush_out(c, err);

	while (rc == 0 && buf_pending(&c->out) > CLIENT_OUT_HIGH_BYTES)
		rc = msb_client_dispatch(c, -1, err) < 0 ? -EPIPE : 0;
	return rc < 0 ? rc : 0;
}

int client_send(msb_client *c, const struct msg *m, msb_error *err)
{
	int rc;

	if (c->closed)
		return err_set(err, -EPIPE, "the connection to the sandbox is closed");
	rc = msg_encode(&c->out, m);
	if (rc == -EMSGSIZE)
		return err_set(err, rc, "%s message is larger than the 4 MiB frame limit", msg_type_name(m->type));
	if (rc < 0)
		return err_sys(err, rc, "encode %s", msg_type_name(m->type));
	return flush_or_wait(c, err);
}

int client_send_data(msb_client *c, enum msg_type type, uint32_t id, const void *data, size_t len, msb_error *err)
{
	int rc;

	if (c->closed)
		return err_set(err, -EPIPE, "the connection to the sandbox is closed");
	rc = msg_encode_data(&c->out, type, id, data, len);
	if (rc < 0)
		return err_sys(err, rc, "encode %s", msg_type_name(type));
	return flush_or_wait(c, err);
}

int msb_request_shutdown(msb_client *c, msb_error *err)
{
	struct msg m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.type = MSG_SHUTDOWN;
	rc = client_send(c, &m, err);
	while (rc == 0 && buf_pending(&c->out) > 0)
		rc = msb_client_dispatch(c, 1000, err) < 0 ? -EPIPE : 0;
	return rc;
}

void client_call_add(msb_client *c, struct client_call *call)
{
	call->done = false;
	call->next = c->calls;
	c->calls = call;
}

void client_call_remove(msb_client *c, struct client_call *call)
{
	for (struct client_call **p = &c->calls; *p; p = &(*p)->next) {
		if (*p == call) {
			*p = call->next;
			return;
		}
	}
}

int client_call_wait(msb_client *c, struct client_call *call, msb_error *err)
{
	while (!call->done) {
		int rc = msb_client_dispatch(c, -1, err);

		if (rc < 0 && !call->done)
			return rc;
	}
	return 0;
}
