/* Tests the relay through its event loop, with a fake agent on the other end
 * of a socketpair and real clients on a Unix socket. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/proto/frame.h"
#include "../../src/proto/msg.h"
#include "../../src/runtime/log.h"
#include "../../src/runtime/loop.h"
#include "../../src/runtime/relay.h"
#include "test.h"

/* A wait gives up after WAIT_ROUNDS loop rounds of at most WAIT_STEP_MS
 * each, so a missing event fails the test in about 2 s. */
#define WAIT_ROUNDS 200
#define WAIT_STEP_MS 10
/* Rounds for waits that move tens of MiB through socket buffers of a few
 * hundred KiB each. */
#define WAIT_ROUNDS_BULK 5000

#define MAX_PEERS (RELAY_MAX_CLIENTS + 2)
#define HANDSHAKE_RANGE_BYTES 8

/* A stream end that the test drives: the fake agent or a client. */
struct peer {
	int fd;
	struct buf in;
	struct buf out;
	bool eof;
	/* Stops reading from the socket, so that the relay's queue for this
	 * peer grows. */
	bool paused;
};

struct fixture {
	struct loop *loop;
	struct relay *relay;
	struct relay_hooks hooks;
	int guest_fd;
	int listen_fd;
	char dir[64];
	char path[128];
	struct buf ready;
	struct peer agent;
	struct peer clients[MAX_PEERS];
	unsigned n_clients;

	/* Hook calls, and the id-0 frames that on_guest_control received. */
	unsigned control_calls;
	struct buf control;
	unsigned shutdown_calls;
	unsigned guest_closed_calls;
};

static void on_guest_control(void *data, const uint8_t *frame, size_t len)
{
	struct fixture *f = data;

	f->control_calls++;
	buf_append(&f->control, frame, len);
}

static void on_guest_closed(void *data, const char *reason)
{
	struct fixture *f = data;

	f->guest_closed_calls++;
}

static void on_client_shutdown(void *data)
{
	struct fixture *f = data;

	f->shutdown_calls++;
}

static void peer_init(struct peer *p, int fd)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	buf_init(&p->in);
	buf_init(&p->out);
}

static void peer_close(struct peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	buf_free(&p->in);
	buf_free(&p->out);
}

/* Writes what the socket accepts now. The rest waits for the next poll. */
static void peer_flush(struct peer *p)
{
	while (p->fd >= 0 && buf_pending(&p->out) > 0) {
		ssize_t n = send(p->fd, buf_peek(&p->out), buf_pending(&p->out), MSG_NOSIGNAL);

		if (n < 0)
			break;
		buf_consume(&p->out, (size_t)n);
	}
}

/* Reads everything available now. */
static void peer_read(struct peer *p)
{
	while (p->fd >= 0 && !p->eof && !p->paused) {
		ssize_t n;

		if (buf_reserve(&p->in, 64 * 1024) < 0)
			return;
		n = recv(p->fd, p->in.data + p->in.len, 64 * 1024, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			p->eof = true;
			return;
		}
		p->in.len += (size_t)n;
	}
}

static void peer_queue(struct peer *p, const void *data, size_t len)
{
	CHECK_INT_EQ(buf_append(&p->out, data, len), 0);
}

static void peer_queue_msg(struct peer *p, const struct msg *m)
{
	CHECK_INT_EQ(msg_encode(&p->out, m), 0);
}

static void peers_poll(struct fixture *f)
{
	peer_flush(&f->agent);
	peer_read(&f->agent);
	for (unsigned i = 0; i < f->n_clients; i++) {
		peer_flush(&f->clients[i]);
		peer_read(&f->clients[i]);
	}
}

typedef bool (*wait_cond_fn)(struct fixture *f, struct peer *p, size_t n);

/* Runs the loop, moving the peers' bytes between rounds, until cond is true
 * or rounds run out. Returns the last value of cond. */
static bool wait_rounds(struct fixture *f, wait_cond_fn cond, struct peer *p, size_t n, int rounds)
{
	for (int round = 0; round < rounds; round++) {
		peers_poll(f);
		if (cond(f, p, n))
			return true;
		loop_run_once(f->loop, WAIT_STEP_MS);
	}
	peers_poll(f);
	return cond(f, p, n);
}

static bool has_bytes(struct fixture *f, struct peer *p, size_t n)
{
	return buf_pending(&p->in) >= n;
}

static bool has_frame(struct fixture *f, struct peer *p, size_t n)
{
	struct frame_header h;

	return frame_scan(buf_peek(&p->in), buf_pending(&p->in), &h) > 0;
}

static bool has_eof(struct fixture *f, struct peer *p, size_t n)
{
	return p->eof;
}

static bool is_flushed(struct fixture *f, struct peer *p, size_t n)
{
	return buf_pending(&p->out) == 0;
}

static bool wait_bytes(struct fixture *f, struct peer *p, size_t n)
{
	return wait_rounds(f, has_bytes, p, n, WAIT_ROUNDS);
}

static bool wait_eof(struct fixture *f, struct peer *p)
{
	return wait_rounds(f, has_eof, p, 0, WAIT_ROUNDS);
}

/* Waits for a whole frame at the head of p's input and moves it to frame.
 * Returns false when none arrived. */
static bool take_frame(struct fixture *f, struct peer *p, struct buf *frame)
{
	struct frame_header h;
	long total;

	buf_reset(frame);
	if (!wait_rounds(f, has_frame, p, 0, WAIT_ROUNDS))
		return false;
	total = frame_scan(buf_peek(&p->in), buf_pending(&p->in), &h);
	buf_append(frame, buf_peek(&p->in), (size_t)total);
	buf_consume(&p->in, (size_t)total);
	return true;
}

/* Takes the next frame of p and decodes it into m, whose spans point into
 * frame. */
static bool take_msg(struct fixture *f, struct peer *p, struct buf *frame, struct msg *m)
{
	memset(m, 0, sizeof(*m));
	if (!take_frame(f, p, frame))
		return false;
	return msg_decode(buf_peek(frame), buf_pending(frame), m) == 0;
}

static bool bytes_eq_buf(const uint8_t *data, size_t len, const struct buf *b)
{
	return len == buf_pending(b) && memcmp(data, buf_peek(b), len) == 0;
}

static void fixture_init(struct fixture *f)
{
	struct sockaddr_un addr;
	struct msg ready;
	int sv[2];

	memset(f, 0, sizeof(*f));
	f->listen_fd = -1;
	buf_init(&f->ready);
	buf_init(&f->control);
	/* Each of the 128 connects would log an info line, so log only warnings
	 * and errors. */
	log_set_level(LOG_WARN);

	CHECK_INT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	f->guest_fd = sv[0];
	peer_init(&f->agent, sv[1]);

	snprintf(f->dir, sizeof(f->dir), "/tmp/msb-relay-test-XXXXXX");
	CHECK(mkdtemp(f->dir) != NULL);
	snprintf(f->path, sizeof(f->path), "%s/relay.sock", f->dir);
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", f->path);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(f->listen_fd >= 0);
	CHECK_INT_EQ(bind(f->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	CHECK_INT_EQ(listen(f->listen_fd, RELAY_MAX_CLIENTS * 2), 0);

	memset(&ready, 0, sizeof(ready));
	ready.type = MSG_READY;
	ready.u.ready.boot_time_ns = 1000;
	ready.u.ready.init_time_ns = 250000000;
	ready.u.ready.ready_time_ns = 300000000;
	ready.u.ready.agent_version = span_cstr("relay-test");
	CHECK_INT_EQ(msg_encode(&f->ready, &ready), 0);

	f->hooks.on_guest_control = on_guest_control;
	f->hooks.on_guest_closed = on_guest_closed;
	f->hooks.on_client_shutdown = on_client_shutdown;
	f->loop = loop_new();
	CHECK(f->loop != NULL);
	f->relay = relay_new(f->loop, f->guest_fd, &f->hooks, f);
	CHECK(f->relay != NULL);
	CHECK_INT_EQ(relay_set_ready_frame(f->relay, buf_peek(&f->ready), buf_pending(&f->ready)), 0);
	CHECK_INT_EQ(relay_serve(f->relay, f->listen_fd), 0);
}

static void fixture_free(struct fixture *f)
{
	/* No test expects the agent channel to end. */
	CHECK_INT_EQ(f->guest_closed_calls, 0);

	relay_free(f->relay);
	loop_free(f->loop);
	for (unsigned i = 0; i < f->n_clients; i++)
		peer_close(&f->clients[i]);
	peer_close(&f->agent);
	close(f->guest_fd);
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	unlink(f->path);
	rmdir(f->dir);
	buf_free(&f->ready);
	buf_free(&f->control);
	log_set_level(LOG_INFO);
}

/* Connects a new client. The relay accepts it on a later loop round. */
static struct peer *client_connect(struct fixture *f)
{
	struct sockaddr_un addr;
	struct peer *p;
	int fd;

	if (f->n_clients == MAX_PEERS)
		return NULL;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", f->path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return NULL;
	}
	p = &f->clients[f->n_clients++];
	peer_init(p, fd);
	return p;
}

/* Reads a client's handshake: its id range, then the ready frame, which
 * must be the one the fixture set. */
static bool client_handshake(struct fixture *f, struct peer *p, uint32_t *start, uint32_t *end)
{
	size_t want = HANDSHAKE_RANGE_BYTES + buf_pending(&f->ready);

	if (!CHECK(wait_bytes(f, p, want)))
		return false;
	*start = frame_get_be32(buf_peek(&p->in));
	*end = frame_get_be32(buf_peek(&p->in) + 4);
	if (!CHECK(bytes_eq_buf(buf_peek(&p->in) + HANDSHAKE_RANGE_BYTES, buf_pending(&f->ready), &f->ready)))
		return false;
	buf_consume(&p->in, want);
	return true;
}

/* Connects a client and reads its handshake. Returns NULL on failure. */
static struct peer *client_join(struct fixture *f, uint32_t *start, uint32_t *end)
{
	struct peer *p = client_connect(f);

	if (!CHECK(p != NULL))
		return NULL;
	if (!client_handshake(f, p, start, end))
		return NULL;
	return p;
}

/* Encodes a data frame (stdin, stdout, ...) into out, replacing its
 * contents. */
static void encode_data(struct buf *out, enum msg_type type, uint32_t id, const char *text)
{
	buf_reset(out);
	CHECK_INT_EQ(msg_encode_data(out, type, id, text, strlen(text)), 0);
}

/* Waits for p's next frame and checks that it is exactly expected. */
static void expect_frame(struct fixture *f, struct peer *p, const struct buf *expected)
{
	struct buf got;

	buf_init(&got);
	if (CHECK(take_frame(f, p, &got)))
		CHECK(bytes_eq_buf(buf_peek(&got), buf_pending(&got), expected));
	buf_free(&got);
}

/* Waits for the agent's next frame and checks that it is a range message
 * of the given type (client disconnected, flow pause or resume) for
 * [start, end). */
static void expect_range_msg(struct fixture *f, enum msg_type type, uint32_t start, uint32_t end)
{
	struct buf frame;
	struct msg m;

	buf_init(&frame);
	if (CHECK(take_msg(f, &f->agent, &frame, &m))) {
		CHECK_INT_EQ(m.type, type);
		CHECK_INT_EQ(m.id, 0);
		CHECK_INT_EQ(m.u.client_disconnected.id_start, start);
		CHECK_INT_EQ(m.u.client_disconnected.id_end_exclusive, end);
	}
	msg_free(&m);
	buf_free(&frame);
}

static void expect_disconnected(struct fixture *f, uint32_t start, uint32_t end)
{
	expect_range_msg(f, MSG_CLIENT_DISCONNECTED, start, end);
}

/* Waits for the agent's next frame and checks that it is
 * core.exec.signal {signal: 9} for session id. */
static void expect_kill(struct fixture *f, uint32_t id)
{
	struct buf frame;
	struct msg m;

	buf_init(&frame);
	if (CHECK(take_msg(f, &f->agent, &frame, &m))) {
		CHECK_INT_EQ(m.type, MSG_EXEC_SIGNAL);
		CHECK_INT_EQ(m.id, id);
		CHECK_INT_EQ(m.u.exec_signal.signal, 9);
	}
	msg_free(&m);
	buf_free(&frame);
}

/* Sends a frame both ways between the agent and client p, whose range
 * starts at start. */
static void check_exchange(struct fixture *f, struct peer *p, uint32_t start)
{
	struct buf frame;

	buf_init(&frame);
	encode_data(&frame, MSG_EXEC_STDIN, start + 1, "to agent");
	peer_queue(p, buf_peek(&frame), buf_pending(&frame));
	expect_frame(f, &f->agent, &frame);

	encode_data(&frame, MSG_EXEC_STDOUT, start + 1, "to client");
	peer_queue(&f->agent, buf_peek(&frame), buf_pending(&frame));
	expect_frame(f, p, &frame);
	buf_free(&frame);
}

static void exec_request(struct msg *m, uint32_t id)
{
	memset(m, 0, sizeof(*m));
	m->type = MSG_EXEC_REQUEST;
	m->id = id;
	m->u.exec_request.cmd = span_cstr("/bin/sh");
	m->u.exec_request.rows = MSG_DEFAULT_ROWS;
	m->u.exec_request.cols = MSG_DEFAULT_COLS;
}

TEST(relay_handshake_bytes)
{
	static const uint8_t slot0[HANDSHAKE_RANGE_BYTES] = { 0x00, 0x00, 0x00, 0x01, 0x01, 0xff, 0xff, 0xff };
	static const uint8_t slot1[HANDSHAKE_RANGE_BYTES] = { 0x02, 0x00, 0x00, 0x01, 0x03, 0xff, 0xff, 0xff };
	size_t want;
	struct fixture f;
	struct peer *a, *b;

	fixture_init(&f);
	want = HANDSHAKE_RANGE_BYTES + buf_pending(&f.ready);

	a = client_connect(&f);
	if (!CHECK(a != NULL) || !CHECK(wait_bytes(&f, a, want)))
		goto out;
	CHECK_INT_EQ(buf_pending(&a->in), want);
	CHECK(memcmp(buf_peek(&a->in), slot0, sizeof(slot0)) == 0);
	CHECK(bytes_eq_buf(buf_peek(&a->in) + HANDSHAKE_RANGE_BYTES, buf_pending(&f.ready), &f.ready));

	/* The first client stays connected, so the second gets slot 1. */
	b = client_connect(&f);
	if (!CHECK(b != NULL) || !CHECK(wait_bytes(&f, b, want)))
		goto out;
	CHECK_INT_EQ(buf_pending(&b->in), want);
	CHECK(memcmp(buf_peek(&b->in), slot1, sizeof(slot1)) == 0);
	CHECK(bytes_eq_buf(buf_peek(&b->in) + HANDSHAKE_RANGE_BYTES, buf_pending(&f.ready), &f.ready));
	CHECK_INT_EQ(relay_client_count(f.relay), 2);
out:
	fixture_free(&f);
}

TEST(relay_routing_by_id)
{
	struct fixture f;
	struct peer *a, *b;
	uint32_t a_start, a_end, b_start, b_end;
	struct buf from_a, from_b, to_a, to_b, control;
	struct msg pong;

	fixture_init(&f);
	buf_init(&from_a);
	buf_init(&from_b);
	buf_init(&to_a);
	buf_init(&to_b);
	buf_init(&control);
	a = client_join(&f, &a_start, &a_end);
	b = client_join(&f, &b_start, &b_end);
	if (!a || !b)
		goto out;

	/* Clients to the agent: each frame arrives unchanged. */
	encode_data(&from_a, MSG_EXEC_STDIN, a_start + 7, "from a");
	encode_data(&from_b, MSG_EXEC_STDIN, b_end - 1, "from b");
	peer_queue(a, buf_peek(&from_a), buf_pending(&from_a));
	expect_frame(&f, &f.agent, &from_a);
	peer_queue(b, buf_peek(&from_b), buf_pending(&from_b));
	expect_frame(&f, &f.agent, &from_b);

	/* The agent to the clients: an id-0 frame goes to the hook, and each
	 * client gets the frame with an id in its range. */
	memset(&pong, 0, sizeof(pong));
	pong.type = MSG_PONG;
	CHECK_INT_EQ(msg_encode(&control, &pong), 0);
	peer_queue(&f.agent, buf_peek(&control), buf_pending(&control));
	encode_data(&to_b, MSG_EXEC_STDOUT, b_end - 1, "to b");
	peer_queue(&f.agent, buf_peek(&to_b), buf_pending(&to_b));
	encode_data(&to_a, MSG_EXEC_STDOUT, a_start + 7, "to a");
	peer_queue(&f.agent, buf_peek(&to_a), buf_pending(&to_a));

	/* The relay reads the guest stream in order, so once the last frame
	 * arrived the earlier ones were routed too. */
	CHECK(wait_bytes(&f, a, buf_pending(&to_a)));
	CHECK(wait_bytes(&f, b, buf_pending(&to_b)));
	CHECK(bytes_eq_buf(buf_peek(&a->in), buf_pending(&a->in), &to_a));
	CHECK(bytes_eq_buf(buf_peek(&b->in), buf_pending(&b->in), &to_b));
	CHECK_INT_EQ(f.control_calls, 1);
	CHECK(bytes_eq_buf(buf_peek(&f.control), buf_pending(&f.control), &control));
out:
	buf_free(&from_a);
	buf_free(&from_b);
	buf_free(&to_a);
	buf_free(&to_b);
	buf_free(&control);
	fixture_free(&f);
}

TEST(relay_drops_out_of_range_id)
{
	struct fixture f;
	struct peer *a, *b;
	uint32_t a_start, a_end, b_start, b_end;
	struct buf foreign, past_end, own, got;

	fixture_init(&f);
	buf_init(&foreign);
	buf_init(&past_end);
	buf_init(&own);
	buf_init(&got);
	a = client_join(&f, &a_start, &a_end);
	b = client_join(&f, &b_start, &b_end);
	if (!a || !b)
		goto out;

	/* Client b sends an id of client a's range, then the first id past
	 * its own range, then one of its own. */
	encode_data(&foreign, MSG_EXEC_STDIN, a_start, "foreign");
	encode_data(&past_end, MSG_EXEC_STDIN, b_end, "past the end");
	encode_data(&own, MSG_EXEC_STDIN, b_start, "own");
	peer_queue(b, buf_peek(&foreign), buf_pending(&foreign));
	peer_queue(b, buf_peek(&past_end), buf_pending(&past_end));
	peer_queue(b, buf_peek(&own), buf_pending(&own));

	/* Frames from one client reach the agent in order, so the first frame
	 * the agent gets shows whether the others were dropped. */
	if (CHECK(take_frame(&f, &f.agent, &got)))
		CHECK(bytes_eq_buf(buf_peek(&got), buf_pending(&got), &own));
	CHECK_INT_EQ(buf_pending(&f.agent.in), 0);

	CHECK(!b->eof);
	CHECK_INT_EQ(relay_client_count(f.relay), 2);
	check_exchange(&f, b, b_start);
out:
	buf_free(&foreign);
	buf_free(&past_end);
	buf_free(&own);
	buf_free(&got);
	fixture_free(&f);
}

TEST(relay_client_limit)
{
	struct fixture f;
	struct peer *extra, *again;
	uint32_t start, end;
	uint32_t starts[RELAY_MAX_CLIENTS];
	bool seen[RELAY_MAX_CLIENTS];
	unsigned freed = 37;

	fixture_init(&f);
	memset(seen, 0, sizeof(seen));

	/* Each client gets a distinct slot: [s*2^25 + 1, s*2^25 + 2^25 - 1). */
	for (unsigned i = 0; i < RELAY_MAX_CLIENTS; i++) {
		unsigned slot;

		if (!client_join(&f, &start, &end))
			goto out;
		slot = start >> 25;
		CHECK_INT_EQ(start, ((uint64_t)slot << 25) + 1);
		CHECK_INT_EQ(end, ((uint64_t)slot << 25) + (1u << 25) - 1);
		CHECK(!seen[slot]);
		seen[slot] = true;
		starts[i] = start;
	}
	CHECK_INT_EQ(relay_client_count(f.relay), RELAY_MAX_CLIENTS);

	/* The 129th is closed before it gets any byte. */
	extra = client_connect(&f);
	if (!CHECK(extra != NULL) || !CHECK(wait_eof(&f, extra)))
		goto out;
	CHECK_INT_EQ(buf_pending(&extra->in), 0);
	CHECK_INT_EQ(relay_client_count(f.relay), RELAY_MAX_CLIENTS);

	/* Once a client leaves, the next one gets its slot. */
	peer_close(&f.clients[freed]);
	expect_disconnected(&f, starts[freed], starts[freed] + (1u << 25) - 2);
	CHECK_INT_EQ(relay_client_count(f.relay), RELAY_MAX_CLIENTS - 1);
	again = client_join(&f, &start, &end);
	if (!again)
		goto out;
	CHECK_INT_EQ(start, starts[freed]);
	CHECK_INT_EQ(relay_client_count(f.relay), RELAY_MAX_CLIENTS);
out:
	fixture_free(&f);
}

TEST(relay_disconnect_kills_exec)
{
	struct fixture f;
	struct peer *a;
	uint32_t start, end, id;
	struct buf request;
	struct msg m;

	fixture_init(&f);
	buf_init(&request);
	a = client_join(&f, &start, &end);
	if (!a)
		goto out;
	id = start + 41;

	exec_request(&m, id);
	CHECK_INT_EQ(msg_encode(&request, &m), 0);
	peer_queue(a, buf_peek(&request), buf_pending(&request));
	expect_frame(&f, &f.agent, &request);

	peer_close(a);
	expect_kill(&f, id);
	expect_disconnected(&f, start, end);
	CHECK_INT_EQ(relay_client_count(f.relay), 0);
out:
	buf_free(&request);
	fixture_free(&f);
}

TEST(relay_disconnect_skips_ended_exec)
{
	struct fixture f;
	struct peer *a;
	uint32_t start, end, ended, open;
	struct buf frame;
	struct msg m;

	fixture_init(&f);
	buf_init(&frame);
	a = client_join(&f, &start, &end);
	if (!a)
		goto out;
	ended = start + 1;
	open = start + 2;

	exec_request(&m, ended);
	peer_queue_msg(a, &m);
	exec_request(&m, open);
	peer_queue_msg(a, &m);
	CHECK(take_frame(&f, &f.agent, &frame));
	CHECK(take_frame(&f, &f.agent, &frame));

	/* The agent ends the first session. Once the client got the exit frame,
	 * the relay has seen it too. */
	memset(&m, 0, sizeof(m));
	m.type = MSG_EXEC_EXITED;
	m.id = ended;
	m.u.exec_exited.code = 0;
	buf_reset(&frame);
	CHECK_INT_EQ(msg_encode(&frame, &m), 0);
	peer_queue(&f.agent, buf_peek(&frame), buf_pending(&frame));
	expect_frame(&f, a, &frame);

	/* Only the open session is killed. */
	peer_close(a);
	expect_kill(&f, open);
	expect_disconnected(&f, start, end);
out:
	buf_free(&frame);
	fixture_free(&f);
}

/* A client sends a frame header whose len field is len: it alone is
 * disconnected, and another client still exchanges frames with the agent. */
static void check_malformed_len(uint32_t len)
{
	struct fixture f;
	struct peer *bad, *good;
	uint32_t bad_start, bad_end, good_start, good_end;
	uint8_t header[FRAME_HEADER_BYTES];

	fixture_init(&f);
	bad = client_join(&f, &bad_start, &bad_end);
	good = client_join(&f, &good_start, &good_end);
	if (!bad || !good)
		goto out;

	frame_put_be32(header, len);
	frame_put_be32(header + 4, bad_start);
	header[8] = 0;
	peer_queue(bad, header, sizeof(header));

	CHECK(wait_eof(&f, bad));
	expect_disconnected(&f, bad_start, bad_end);
	CHECK_INT_EQ(relay_client_count(f.relay), 1);
	CHECK(!good->eof);
	check_exchange(&f, good, good_start);
out:
	fixture_free(&f);
}

TEST(relay_malformed_len_3)
{
	check_malformed_len(3);
}

TEST(relay_malformed_len_huge)
{
	check_malformed_len(0x7fffffff);
}

TEST(relay_client_shutdown)
{
	struct fixture f;
	struct peer *a;
	uint32_t start, end;
	struct buf frame;
	struct msg m;

	fixture_init(&f);
	buf_init(&frame);
	a = client_join(&f, &start, &end);
	if (!a)
		goto out;

	memset(&m, 0, sizeof(m));
	m.type = MSG_SHUTDOWN;
	CHECK_INT_EQ(msg_encode(&frame, &m), 0);
	CHECK_INT_EQ(frame_get_be32(buf_peek(&frame) + 4), 0);
	peer_queue(a, buf_peek(&frame), buf_pending(&frame));

	expect_frame(&f, &f.agent, &frame);
	CHECK_INT_EQ(f.shutdown_calls, 1);
	CHECK_INT_EQ(relay_client_count(f.relay), 1);
out:
	buf_free(&frame);
	fixture_free(&f);
}

TEST(relay_slow_reader)
{
	enum { CHUNK_BYTES = 1024 * 1024 };
	/* 8 MiB more than the limit, because part of the output goes into the
	 * slow client's socket buffer instead of the relay's queue. */
	const unsigned chunks = RELAY_CLIENT_QUEUE_MAX_BYTES / CHUNK_BYTES + 8;
	struct fixture f;
	struct peer *slow, *fast;
	uint32_t slow_start, slow_end, fast_start, fast_end;
	struct buf chunk, small, got;
	uint8_t *data;
	unsigned received = 0;

	fixture_init(&f);
	buf_init(&chunk);
	buf_init(&small);
	buf_init(&got);
	data = calloc(1, CHUNK_BYTES);
	slow = client_join(&f, &slow_start, &slow_end);
	fast = client_join(&f, &fast_start, &fast_end);
	if (!CHECK(data != NULL) || !slow || !fast)
		goto out;
	slow->paused = true;

	/* A small frame for the fast client after each chunk for the slow one. */
	CHECK_INT_EQ(msg_encode_data(&chunk, MSG_EXEC_STDOUT, slow_start, data, CHUNK_BYTES), 0);
	encode_data(&small, MSG_EXEC_STDOUT, fast_start, "still here");
	for (unsigned i = 0; i < chunks; i++) {
		peer_queue(&f.agent, buf_peek(&chunk), buf_pending(&chunk));
		peer_queue(&f.agent, buf_peek(&small), buf_pending(&small));
	}
	CHECK(wait_rounds(&f, is_flushed, &f.agent, 0, WAIT_ROUNDS_BULK));

	/* The fast client gets every small frame, including those sent after
	 * the relay dropped the slow client. */
	for (unsigned i = 0; i < chunks; i++) {
		if (!CHECK(take_frame(&f, fast, &got)))
			break;
		if (!CHECK(bytes_eq_buf(buf_peek(&got), buf_pending(&got), &small)))
			break;
		received++;
	}
	CHECK_INT_EQ(received, chunks);
	CHECK(!fast->eof);

	/* This fake agent ignores the request to pause and keeps sending, as
	 * an agent without the extension would; the relay then drops the
	 * client. */
	expect_range_msg(&f, MSG_FLOW_PAUSE, slow_start, slow_end);
	expect_disconnected(&f, slow_start, slow_end);
	CHECK_INT_EQ(relay_client_count(f.relay), 1);
	slow->paused = false;
	CHECK(wait_rounds(&f, has_eof, slow, 0, WAIT_ROUNDS_BULK));
	/* The slow client received only part of its output. */
	CHECK(buf_pending(&slow->in) < (size_t)chunks * buf_pending(&chunk));
	check_exchange(&f, fast, fast_start);
out:
	free(data);
	buf_free(&chunk);
	buf_free(&small);
	buf_free(&got);
	fixture_free(&f);
}

TEST(relay_slow_reader_paused)
{
	enum { CHUNK_BYTES = 1024 * 1024 };
	/* Past the pause mark even after the client's socket buffer took its
	 * share, and far below the disconnect limit. */
	const unsigned chunks = RELAY_CLIENT_PAUSE_BYTES / CHUNK_BYTES + 4;
	struct fixture f;
	struct peer *slow;
	uint32_t start, end;
	struct buf chunk;
	uint8_t *data;

	fixture_init(&f);
	buf_init(&chunk);
	data = calloc(1, CHUNK_BYTES);
	slow = client_join(&f, &start, &end);
	if (!CHECK(data != NULL) || !slow)
		goto out;
	slow->paused = true;

	CHECK_INT_EQ(msg_encode_data(&chunk, MSG_EXEC_STDOUT, start, data, CHUNK_BYTES), 0);
	for (unsigned i = 0; i < chunks; i++)
		peer_queue(&f.agent, buf_peek(&chunk), buf_pending(&chunk));
	CHECK(wait_rounds(&f, is_flushed, &f.agent, 0, WAIT_ROUNDS_BULK));
	expect_range_msg(&f, MSG_FLOW_PAUSE, start, end);

	/* Once the client reads again and the queue drains, output resumes,
	 * and the client got every byte. */
	slow->paused = false;
	CHECK(wait_bytes(&f, slow, (size_t)chunks * buf_pending(&chunk)));
	expect_range_msg(&f, MSG_FLOW_RESUME, start, end);
	CHECK(!slow->eof);
	CHECK_INT_EQ(relay_client_count(f.relay), 1);
out:
	free(data);
	buf_free(&chunk);
	fixture_free(&f);
}
