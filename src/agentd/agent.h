/* msb-agentd: the guest agent.
 *
 * As PID 1 of the guest it mounts the root, then serves the agent protocol
 * on the virtio-console port "agent": exec sessions, clock sync, shutdown.
 * Run as an ordinary process with MSB_AGENT_FD=N it serves the protocol on
 * that descriptor instead, which lets tests drive it on the host.
 */
#ifndef MSB_AGENTD_AGENT_H
#define MSB_AGENTD_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../proto/buf.h"
#include "../proto/msg.h"

#define AGENT_VERSION "msb-agentd 0.1.0"

/* Output to the host above this many bytes pauses reading session output,
 * so that a fast producer waits for the channel instead of filling memory. */
#define AGENT_OUT_HIGH_BYTES (1024 * 1024)
#define AGENT_OUT_LOW_BYTES (256 * 1024)
/* One range per relay client at most. */
#define AGENT_MAX_PAUSED_RANGES 128

/* The object an epoll event refers to. */
enum watch_kind {
	WATCH_PORT,
	WATCH_SIGNAL,
	WATCH_SESSION_STDOUT,
	WATCH_SESSION_STDERR,
	WATCH_SESSION_STDIN,
};

struct fs_state;

struct watch {
	enum watch_kind kind;
	struct session *session;
};

struct session {
	uint32_t id;
	pid_t pid;
	bool tty;
	bool detached; /* its client went away: nothing more is sent for it */
	int stdin_fd;  /* the pty master for a terminal session */
	int stdout_fd; /* the pty master for a terminal session */
	int stderr_fd; /* -1 for a terminal session */
	struct buf stdin_queue;
	bool stdin_closing;      /* close stdin once the queue drains */
	uint64_t stdin_consumed; /* bytes the process has taken */
	uint64_t stdin_reported; /* the last count sent to the host */
	bool stdin_error_sent;
	bool stdin_watched;
	bool finished; /* reaped and reported; freed after the epoll batch */
	bool flow_paused; /* its client reads slowly: output waits */
	struct watch w_stdout, w_stderr, w_stdin;
	struct session *next;
};

struct agent {
	int port_fd;
	int epoll_fd;
	int signal_fd;
	bool pid1;
	struct buf in;  /* bytes read from the host, not yet a whole frame */
	struct buf out; /* frames waiting to be written to the host */
	bool out_watched;
	bool output_paused;
	struct watch w_port, w_signal;
	struct session *sessions;
	struct session *finished_sessions;
	uint32_t default_uid, default_gid;
	/* Id ranges whose output the host asked to pause (msb.flow.pause). */
	struct {
		uint32_t start, end;
	} paused_ranges[AGENT_MAX_PAUSED_RANGES];
	unsigned n_paused_ranges;
	struct fs_state *fs; /* file operations; allocated on first use */
	bool shutting_down;
};

/* Logging: to the kernel log as PID 1, to stderr otherwise. Errors reach
 * the serial console (kernel.log on the host) even on a quiet kernel. */
void agent_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void agent_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Queues one message to the host. A failure to encode is logged, the
 * message dropped and the error returned; the agent keeps serving. */
int agent_send(struct agent *a, const struct msg *m);
void agent_send_data(struct agent *a, enum msg_type type, uint32_t id, const void *data, size_t len);
/* Writes what the channel takes of the queued frames. */
void agent_flush(struct agent *a);

/* Watches fd for the given epoll events (0 to stop watching, -1 to remove). */
int agent_watch(struct agent *a, int fd, struct watch *w, int events);

/* exec.c */
void exec_handle_request(struct agent *a, const struct msg *m);
void exec_handle_stdin(struct agent *a, const struct msg *m);
void exec_handle_resize(struct agent *a, const struct msg *m);
void exec_handle_signal(struct agent *a, const struct msg *m);
void exec_handle_event(struct agent *a, struct watch *w, uint32_t events);
void exec_reap_children(struct agent *a);
void exec_detach_range(struct agent *a, uint32_t id_start, uint32_t id_end_exclusive);
void exec_kill_all(struct agent *a);
void exec_free_finished(struct agent *a);
/* Records the open file limit and umask the agent started with, which
 * every process gets back. */
void exec_save_default_limits(void);
void exec_set_output_paused(struct agent *a, bool paused);
/* Whether the host paused the output of the client that owns id. */
bool exec_id_paused(const struct agent *a, uint32_t id);
/* Pauses or resumes the output of the sessions in [start, end). */
void exec_set_flow(struct agent *a, uint32_t start, uint32_t end, bool paused);

/* fs.c */
void fs_handle_request(struct agent *a, const struct msg *m);
void fs_handle_data(struct agent *a, const struct msg *m);
/* Whether reads wait to be sent while the channel has room. */
bool fs_pending_work(struct agent *a);
/* Sends the next chunk of each read that may go on. */
void fs_pump(struct agent *a);
/* Closes the handles and ends the streams of a client that left. */
void fs_detach_range(struct agent *a, uint32_t id_start, uint32_t id_end_exclusive);

/* clock.c */
void clock_handle_sync(const struct msg *m);

/* init.c: PID 1 duties before the protocol starts. Each returns 0 or -errno
 * and logs what failed. */
int init_early_mounts(void);
int init_load_modules(const char *group);
int init_mount_root(const char *block_root_spec);
int init_finish_root(const char *hostname);
/* Mounts the virtio-fs shares (MSB_SHARES) and tmpfs (MSB_TMPFS). */
int init_mount_shares(const char *spec);
int init_mount_tmpfs(const char *spec);
/* Opens the virtio-console port named name, waiting for it to appear. */
int init_open_port(const char *name);
void init_power_off(void) __attribute__((noreturn));

#endif
