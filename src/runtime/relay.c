/* The relay between the guest agent and local clients. */
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define READ_CHUNK_BYTES (256 * 1024)

struct relay_client {
	struct relay *relay;
	int fd;
	unsigned slot;
	struct loop_watch *watch;
	struct buf in;
	struct buf out;
	/* Exec sessions this client opened that have not ended. */
	uint32_t *exec_ids;
	size_t n_exec_ids, cap_exec_ids;
	bool flow_paused; /* the guest was asked to pause this client's output */
};

struct relay {
	struct loop *loop;
	int guest_fd;
	struct loop_watch *guest_watch;
	struct buf guest_in;
	struct buf guest_out;
	bool guest_closed;
	bool clients_paused;
	int listen_fd;
	struct loop_watch *listen_watch;
	uint8_t *ready_frame;
	size_t ready_len;
	struct relay_client *clients[RELAY_MAX_CLIENTS];
	unsigned n_clients;
	const struct relay_hooks *hooks;
	void *hooks_data;
};

static void client_disconnect(struct relay *r, struct relay_client *c, const char *reason);

/* ---- Guest side ---- */

static void guest_update_events(struct relay *r)
{
	uint32_t events = EPOLLIN | (buf_pending(&r->guest_out) ? EPOLLOUT : 0);

	if (!r->guest_closed)
		loop_set_events(r->loop, r->guest_watch, events);
}

static void clients_set_paused(struct relay *r, bool paused)
{
	r->clients_paused = paused;
	for (unsigned s = 0; s < RELAY_MAX_CLIENTS; s++) {
		struct relay_client *c = r->clients[s];

		if (!c)
			continue;
		loop_set_events(r->loop, c->watch, (paused ? 0 : EPOLLIN) | (buf_pending(&c->out) ? EPOLLOUT : 0));
	}
}

static void guest_flush(struct relay *r)
{
	while (buf_pending(&r->guest_out) > 0 && !r->guest_closed) {
		ssize_t n = write(r->guest_fd, buf_peek(&r->guest_out), buf_pending(&r->guest_out));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_error("relay", "write to guest: %s", strerror(errno));
			break;
		}
		buf_consume(&r->guest_out, (size_t)n);
	}
	buf_shrink(&r->guest_out);
	guest_update_events(r);

	if (!r->clients_paused && buf_pending(&r->guest_out) > RELAY_GUEST_QUEUE_HIGH_BYTES)
		clients_set_paused(r, true);
	else if (r->clients_paused && buf_pending(&r->guest_out) < RELAY_GUEST_QUEUE_LOW_BYTES)
		clients_set_paused(r, false);
}

static int guest_queue(struct relay *r, const void *frame, size_t len)
{
	int rc;

	if (r->guest_closed)
		return -EPIPE;
	rc = buf_append(&r->guest_out, frame, len);
	if (rc < 0)
		return rc;
	guest_flush(r);
	return 0;
}

int relay_send_msg(struct relay *r, const struct msg *m)
{
	struct buf frame;
	int rc;

	buf_init(&frame);
	rc = msg_encode(&frame, m);
	if (rc == 0)
		rc = guest_queue(r, buf_peek(&frame), buf_pending(&frame));
	buf_free(&frame);
	return rc;
}

static void guest_close(struct relay *r, const char *reason)
{
	if (r->guest_closed)
		return;
	r->guest_closed = true;
	loop_remove(r->loop, r->guest_watch);
	r->guest_watch = NULL;
	if (r->hooks->on_guest_closed)
		r->hooks->on_guest_closed(r->hooks_data, reason);
}

static struct relay_client *client_for_id(struct relay *r, uint32_t id)
{
	unsigned slot = id / RELAY_ID_STEP;

	if (slot >= RELAY_MAX_CLIENTS || id < relay_slot_start(slot) || id >= relay_slot_end(slot))
		return NULL;
	return r->clients[slot];
}

static ssize_t client_find_exec(const struct relay_client *c, uint32_t id)
{
	for (size_t i = 0; i < c->n_exec_ids; i++)
		if (c->exec_ids[i] == id)
			return (ssize_t)i;
	return -1;
}

static bool client_flush(struct relay *r, struct relay_client *c);

static void client_set_flow(struct relay *r, struct relay_client *c, bool paused)
{
	struct msg m;

	c->flow_paused = paused;
	memset(&m, 0, sizeof(m));
	m.type = paused ? MSG_FLOW_PAUSE : MSG_FLOW_RESUME;
	m.u.client_disconnected.id_start = relay_slot_start(c->slot);
	m.u.client_disconnected.id_end_exclusive = relay_slot_end(c->slot);
	relay_send_msg(r, &m);
	log_debug("relay", "client slot=%u output %s queued=%zu", c->slot, paused ? "paused" : "resumed",
		  buf_pending(&c->out));
}

static void guest_route_frame(struct relay *r, const uint8_t *frame, size_t len, const struct frame_header *h)
{
	struct relay_client *c;

	if (h->id == 0) {
		if (r->hooks->on_guest_control)
			r->hooks->on_guest_control(r->hooks_data, frame, len);
		return;
	}
	c = client_for_id(r, h->id);
	if (!c)
		return; /* its client is gone */
	if (r->hooks->on_activity)
		r->hooks->on_activity(r->hooks_data);

	ssize_t exec_index = client_find_exec(c, h->id);

	if (exec_index >= 0) {
		if (r->hooks->on_exec_frame)
			r->hooks->on_exec_frame(r->hooks_data, frame, len);
		if (h->flags & FRAME_FLAG_TERMINAL)
			c->exec_ids[exec_index] = c->exec_ids[--c->n_exec_ids];
	}
	if (buf_append(&c->out, frame, len) < 0) {
		client_disconnect(r, c, "out of memory for its output");
		return;
	}
	if (buf_pending(&c->out) > RELAY_CLIENT_QUEUE_MAX_BYTES) {
		client_disconnect(r, c, "it stopped reading and its output queue is full");
		return;
	}
	if (client_flush(r, c) && !c->flow_paused && buf_pending(&c->out) > RELAY_CLIENT_PAUSE_BYTES)
		client_set_flow(r, c, true);
}

static void guest_read(struct relay *r)
{
	for (;;) {
		ssize_t n;

		if (buf_reserve(&r->guest_in, READ_CHUNK_BYTES) < 0) {
			guest_close(r, "out of memory reading from the guest");
			return;
		}
		n = read(r->guest_fd, r->guest_in.data + r->guest_in.len, READ_CHUNK_BYTES);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			guest_close(r, n == 0 ? "the guest closed the agent channel" : strerror(errno));
			return;
		}
		r->guest_in.len += (size_t)n;

		for (;;) {
			struct frame_header h;
			long total = frame_scan(buf_peek(&r->guest_in), buf_pending(&r->guest_in), &h);

			if (total == 0)
				break;
			if (total < 0) {
				guest_close(r, total == -EMSGSIZE ? "the guest sent a frame above the size limit"
								  : "the guest sent a malformed frame");
				return;
			}
			guest_route_frame(r, buf_peek(&r->guest_in), (size_t)total, &h);
			if (r->guest_closed)
				return;
			buf_consume(&r->guest_in, (size_t)total);
		}
	}
	buf_shrink(&r->guest_in);
}

static void on_guest_event(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct relay *r = data;

	if (events & EPOLLOUT)
		guest_flush(r);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		guest_read(r);
}

/* ---- Client side ---- */

static void client_update_events(struct relay *r, struct relay_client *c)
{
	uint32_t events = (r->clients_paused ? 0 : EPOLLIN) | (buf_pending(&c->out) ? EPOLLOUT : 0);

	loop_set_events(r->loop, c->watch, events);
}

/* Writes what the client's socket takes. Returns false when the client
 * was disconnected (and c freed). */
static bool client_flush(struct relay *r, struct relay_client *c)
{
	while (buf_pending(&c->out) > 0) {
		ssize_t n = send(c->fd, buf_peek(&c->out), buf_pending(&c->out), MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			client_disconnect(r, c, strerror(errno));
			return false;
		}
		buf_consume(&c->out, (size_t)n);
	}
	buf_shrink(&c->out);
	client_update_events(r, c);
	if (c->flow_paused && buf_pending(&c->out) < RELAY_CLIENT_RESUME_BYTES)
		client_set_flow(r, c, false);
	return true;
}

static int client_track_exec(struct relay_client *c, uint32_t id)
{
	if (c->n_exec_ids == c->cap_exec_ids) {
		size_t cap = c->cap_exec_ids ? c->cap_exec_ids * 2 : 16;
		uint32_t *ids = realloc(c->exec_ids, cap * sizeof(*ids));

		if (!ids)
			return -ENOMEM;
		c->exec_ids = ids;
		c->cap_exec_ids = cap;
	}
	c->exec_ids[c->n_exec_ids++] = id;
	return 0;
}

/* Handles one whole frame from a client; returns false when the client
 * was disconnected. */
static bool client_route_frame(struct relay *r, struct relay_client *c, const uint8_t *frame, size_t len,
			       const struct frame_header *h)
{
	if (h->id == 0 && (h->flags & FRAME_FLAG_SHUTDOWN)) {
		log_info("relay", "client slot=%u requested shutdown", c->slot);
		if (guest_queue(r, frame, len) < 0)
			return true;
		if (r->hooks->on_client_shutdown)
			r->hooks->on_client_shutdown(r->hooks_data);
		return true;
	}
	if (h->id < relay_slot_start(c->slot) || h->id >= relay_slot_end(c->slot)) {
		log_warn("relay", "client slot=%u sent id=%u outside its range; frame dropped", c->slot, h->id);
		return true;
	}
	if (r->hooks->on_activity)
		r->hooks->on_activity(r->hooks_data);
	if ((h->flags & FRAME_FLAG_SESSION_START) && msg_peek_type(frame, len) == MSG_EXEC_REQUEST &&
	    client_find_exec(c, h->id) < 0) {
		if (client_track_exec(c, h->id) < 0) {
			client_disconnect(r, c, "out of memory tracking its sessions");
			return false;
		}
		if (r->hooks->on_exec_request)
			r->hooks->on_exec_request(r->hooks_data, frame, len);
	}
	if (guest_queue(r, frame, len) < 0) {
		client_disconnect(r, c, "the guest channel is closed");
		return false;
	}
	return true;
}

static void client_read(struct relay *r, struct relay_client *c)
{
	for (;;) {
		ssize_t n;

		if (buf_reserve(&c->in, READ_CHUNK_BYTES) < 0) {
			client_disconnect(r, c, "out of memory for its input");
			return;
		}
		n = recv(c->fd, c->in.data + c->in.len, READ_CHUNK_BYTES, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			client_disconnect(r, c, n == 0 ? "closed the connection" : strerror(errno));
			return;
		}
		c->in.len += (size_t)n;

		for (;;) {
			struct frame_header h;
			long total = frame_scan(buf_peek(&c->in), buf_pending(&c->in), &h);

			if (total == 0)
				break;
			if (total < 0) {
				client_disconnect(r, c,
						  total == -EMSGSIZE ? "sent a frame above the 4 MiB limit"
								     : "sent a malformed frame (length below 5)");
				return;
			}
			if (!client_route_frame(r, c, buf_peek(&c->in), (size_t)total, &h))
				return;
			buf_consume(&c->in, (size_t)total);
		}
		/* Stop reading while the guest queue is over its mark. */
		if (r->clients_paused)
			break;
	}
	buf_shrink(&c->in);
}

static void on_client_event(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct relay_client *c = data;
	struct relay *r = c->relay;

	if ((events & EPOLLOUT) && !client_flush(r, c))
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_read(r, c);
}

static void client_disconnect(struct relay *r, struct relay_client *c, const char *reason)
{
	struct msg m;

	log_info("relay", "client slot=%u disconnected: %s", c->slot, reason);
	loop_remove(r->loop, c->watch);
	close(c->fd);
	r->clients[c->slot] = NULL;
	r->n_clients--;

	/* The guest kills what the client left running and frees its
	 * handles. */
	for (size_t i = 0; i < c->n_exec_ids; i++) {
		memset(&m, 0, sizeof(m));
		m.type = MSG_EXEC_SIGNAL;
		m.id = c->exec_ids[i];
		m.u.exec_signal.signal = 9;
		relay_send_msg(r, &m);
		if (r->hooks->on_exec_abandoned)
			r->hooks->on_exec_abandoned(r->hooks_data, c->exec_ids[i]);
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_CLIENT_DISCONNECTED;
	m.u.client_disconnected.id_start = relay_slot_start(c->slot);
	m.u.client_disconnected.id_end_exclusive = relay_slot_end(c->slot);
	relay_send_msg(r, &m);

	buf_free(&c->in);
	buf_free(&c->out);
	free(c->exec_ids);
	free(c);
	if (r->hooks->on_clients_changed)
		r->hooks->on_clients_changed(r->hooks_data, r->n_clients);
}

static void write_handshake(struct relay *r, struct relay_client *c)
{
	uint8_t range[8];

	frame_put_be32(range, relay_slot_start(c->slot));
	frame_put_be32(range + 4, relay_slot_end(c->slot));
	if (buf_append(&c->out, range, sizeof(range)) < 0 || buf_append(&c->out, r->ready_frame, r->ready_len) < 0) {
		client_disconnect(r, c, "out of memory for the handshake");
		return;
	}
	client_flush(r, c);
}

/* Accepts one waiting connection; returns false when none was waiting. */
static bool accept_client(struct relay *r)
{
	struct relay_client *c;
	unsigned slot;
	int fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno == EINTR)
			return true;
		if (errno != EAGAIN)
			log_error("relay", "accept: %s", strerror(errno));
		return false;
	}
	for (slot = 0; slot < RELAY_MAX_CLIENTS && r->clients[slot]; slot++)
		;
	if (slot == RELAY_MAX_CLIENTS) {
		log_warn("relay", "connection refused: all %d client slots are in use", RELAY_MAX_CLIENTS);
		close(fd);
		return true;
	}

	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return true;
	}
	c->relay = r;
	c->fd = fd;
	c->slot = slot;
	buf_init(&c->in);
	buf_init(&c->out);
	c->watch = loop_add_fd(r->loop, fd, EPOLLIN, on_client_event, c);
	if (!c->watch) {
		log_error("relay", "watch client: %s", strerror(errno));
		close(fd);
		free(c);
		return true;
	}
	r->clients[slot] = c;
	r->n_clients++;
	log_info("relay", "client connected slot=%u clients=%u", slot, r->n_clients);
	if (r->clients_paused)
		client_update_events(r, c);
	write_handshake(r, c);
	if (r->clients[slot] == c && r->hooks->on_clients_changed)
		r->hooks->on_clients_changed(r->hooks_data, r->n_clients);
	return true;
}

static void on_listen_event(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct relay *r = data;

	/* Several may wait; accept them all, in bounded rounds. */
	for (int i = 0; i < RELAY_MAX_CLIENTS + 1; i++)
		if (!accept_client(r))
			break;
}

struct relay *relay_new(struct loop *loop, int guest_fd, const struct relay_hooks *hooks, void *hooks_data)
{
	struct relay *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->loop = loop;
	r->guest_fd = guest_fd;
	r->listen_fd = -1;
	r->hooks = hooks;
	r->hooks_data = hooks_data;
	buf_init(&r->guest_in);
	buf_init(&r->guest_out);
	r->guest_watch = loop_add_fd(loop, guest_fd, EPOLLIN, on_guest_event, r);
	if (!r->guest_watch) {
		free(r);
		return NULL;
	}
	return r;
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	for (unsigned s = 0; s < RELAY_MAX_CLIENTS; s++) {
		struct relay_client *c = r->clients[s];

		if (!c)
			continue;
		loop_remove(r->loop, c->watch);
		close(c->fd);
		buf_free(&c->in);
		buf_free(&c->out);
		free(c->exec_ids);
		free(c);
	}
	if (r->listen_watch)
		loop_remove(r->loop, r->listen_watch);
	if (r->guest_watch)
		loop_remove(r->loop, r->guest_watch);
	buf_free(&r->guest_in);
	buf_free(&r->guest_out);
	free(r->ready_frame);
	free(r);
}

int relay_set_ready_frame(struct relay *r, const uint8_t *frame, size_t len)
{
	uint8_t *copy = malloc(len);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, frame, len);
	free(r->ready_frame);
	r->ready_frame = copy;
	r->ready_len = len;
	return 0;
}

int relay_serve(struct relay *r, int listen_fd)
{
	if (!r->ready_frame)
		return -EINVAL;
	r->listen_fd = listen_fd;
	r->listen_watch = loop_add_fd(r->loop, listen_fd, EPOLLIN, on_listen_event, r);
	return r->listen_watch ? 0 : -errno;
}

unsigned relay_client_count(const struct relay *r)
{
	return r->n_clients;
}

size_t relay_open_exec_sessions(const struct relay *r)
{
	size_t n = 0;

	for (unsigned s = 0; s < RELAY_MAX_CLIENTS; s++)
		if (r->clients[s])
			n += r->clients[s]->n_exec_ids;
	return n;
}

size_t relay_guest_pending(const struct relay *r)
{
	return buf_pending(&r->guest_out);
}
