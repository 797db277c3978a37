/* Internals of the client library shared by its files. */
#ifndef MSB_CLIENT_CLIENT_H
#define MSB_CLIENT_CLIENT_H

#include <stdint.h>

#include "../proto/buf.h"
#include "../proto/msg.h"
#include "msb/msb.h"

/* Frames queued for the relay beyond this make writers wait for the
 * socket, reading meanwhile so that output keeps flowing. */
#define CLIENT_OUT_HIGH_BYTES (1024 * 1024)
/* stdin in flight per exec session, sent but not yet taken by the
 * process, when the agent reports consumption. */
#define CLIENT_STDIN_WINDOW_BYTES (4 * 1024 * 1024)
/* How long connecting may wait for the relay's handshake. */
#define CLIENT_HANDSHAKE_TIMEOUT_MS 10000

struct msb_exec {
	msb_client *client;
	uint32_t id;
	uint32_t pid;
	bool done;
	msb_exec_status status;
	msb_exec_callbacks callbacks;
	uint64_t stdin_sent;
	uint64_t stdin_consumed;
	bool stdin_failed;
	void *user_data;
	struct msb_exec *next;
};

/* A request other than exec that waits for its frames (file operations). */
struct client_call {
	uint32_t id;
	bool done;
	void (*on_frame)(struct client_call *call, const struct msg *m);
	struct client_call *next;
};

struct msb_client {
	int fd;
	uint32_t id_start;
	uint32_t id_end;
	uint32_t next_id;
	struct buf in;
	struct buf out;
	bool closed;
	/* The agent reports consumed stdin (msb-agentd does). */
	bool stdin_flow_control;
	struct msb_exec *sessions;
	struct client_call *calls;
	/* The sandbox's name when connected by name, for messages. */
	char name[64];
	/* Sandbox-wide defaults of every exec, from the index. */
	char *default_env; /* "KEY=VALUE" entries, each ending in NUL */
	size_t default_env_len;
	char *default_workdir;
};

/* Queues a frame and writes what the socket takes. */
int client_send(msb_client *c, const struct msg *m, msb_error *err);
int client_send_data(msb_client *c, enum msg_type type, uint32_t id, const void *data, size_t len, msb_error *err);
/* Allocates an unused id from the client's range. */
uint32_t client_next_id(msb_client *c);

/* Registers and removes a call; its frames go to call->on_frame. */
void client_call_add(msb_client *c, struct client_call *call);
void client_call_remove(msb_client *c, struct client_call *call);
/* Runs the connection until call->done; fails when the connection ends. */
int client_call_wait(msb_client *c, struct client_call *call, msb_error *err);

/* exec.c: handles a frame addressed to an exec session. */
void exec_handle_frame(msb_exec *e, const struct msg *m);

#endif
