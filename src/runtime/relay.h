/* The relay: one byte stream to the guest agent, shared by up to
 * RELAY_MAX_CLIENTS local clients on a Unix socket.
 *
 * Each accepted client receives [id_start u32 BE][id_end_exclusive u32 BE]
 * and the cached core.ready frame; after that it speaks frames whose ids
 * lie in its range. The relay reads only frame headers, except the type of
 * session-opening frames, so that it can track which exec sessions a client
 * has open. A client whose stream is malformed is disconnected; the guest
 * and the other clients carry on.
 *
 * A client that reads slower than its sessions write: when more than
 * RELAY_CLIENT_PAUSE_BYTES wait for it, the relay asks the guest to pause
 * the output of that client's sessions (msb.flow.pause), and to resume it
 * (msb.flow.resume) once the queue is below RELAY_CLIENT_RESUME_BYTES. The
 * guest then stops reading those sessions' pipes, so the processes block
 * on their writes, as they would on a slow terminal. An agent without this
 * extension keeps sending; at RELAY_CLIENT_QUEUE_MAX_BYTES the client is
 * disconnected, so memory stays bounded either way.
 */
#ifndef MSB_RUNTIME_RELAY_H
#define MSB_RUNTIME_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto/frame.h"
#include "../proto/msg.h"
#include "loop.h"

#define RELAY_MAX_CLIENTS 128
/* Ids per client slot (see frame.h). */
#define RELAY_ID_STEP FRAME_CLIENT_ID_STEP
#define RELAY_CLIENT_PAUSE_BYTES (4u * 1024 * 1024)
#define RELAY_CLIENT_RESUME_BYTES (1u * 1024 * 1024)
/* Output waiting for one client beyond this size disconnects that client:
 * the guest and other clients never wait for a client that does not read. */
#define RELAY_CLIENT_QUEUE_MAX_BYTES (32u * 1024 * 1024)
/* Frames waiting for the guest beyond the high mark pause reading from
 * clients until the queue drains below the low mark. */
#define RELAY_GUEST_QUEUE_HIGH_BYTES (8u * 1024 * 1024)
#define RELAY_GUEST_QUEUE_LOW_BYTES (2u * 1024 * 1024)

struct relay;

struct relay_hooks {
	/* A frame from the guest with id 0 (handshake, ready, errors). */
	void (*on_guest_control)(void *data, const uint8_t *frame, size_t len);
	/* The guest stream ended or sent bytes that cannot be framed. */
	void (*on_guest_closed)(void *data, const char *reason);
	/* A client sent core.shutdown. */
	void (*on_client_shutdown)(void *data);
	/* A client connected or disconnected; count is the new total. */
	void (*on_clients_changed)(void *data, unsigned count);
	/* Traffic of a session: any frame from a client, any frame from the
	 * guest with a non-zero id. The runtime's own frames (clock sync)
	 * are not traffic. */
	void (*on_activity)(void *data);
	/* Taps for exec.log: a client's core.exec.request, the guest's
	 * frames for an open exec session, and the sessions a disconnecting
	 * client leaves behind. */
	void (*on_exec_request)(void *data, const uint8_t *frame, size_t len);
	void (*on_exec_frame)(void *data, const uint8_t *frame, size_t len);
	void (*on_exec_abandoned)(void *data, uint32_t id);
};

struct relay *relay_new(struct loop *loop, int guest_fd, const struct relay_hooks *hooks, void *hooks_data);
/* Disconnects every client and stops watching the guest; closes nothing
 * the relay did not open except client sockets. */
void relay_free(struct relay *r);

/* Starts accepting clients on a listening socket; the ready frame must be
 * set first. */
int relay_serve(struct relay *r, int listen_fd);
int relay_set_ready_frame(struct relay *r, const uint8_t *frame, size_t len);

/* Queues a frame of the runtime itself (id 0) to the guest. */
int relay_send_msg(struct relay *r, const struct msg *m);

unsigned relay_client_count(const struct relay *r);
/* Exec sessions open across all clients. */
size_t relay_open_exec_sessions(const struct relay *r);
/* Bytes waiting to be written to the guest. */
size_t relay_guest_pending(const struct relay *r);

/* The id range of slot s. */
static inline uint32_t relay_slot_start(unsigned slot)
{
	return frame_client_id_start(slot);
}

static inline uint32_t relay_slot_end(unsigned slot)
{
	return frame_client_id_end(slot);
}

#endif
