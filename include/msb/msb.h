/* libmsb: the C API of msb, hardware-isolated sandboxes for untrusted code.
 *
 * Each sandbox is a microVM with its own Linux kernel, owned by one sandbox
 * process on the host. A program starts sandboxes, connects to them by name
 * and runs commands in them. The msb command-line tool is built on this API
 * alone.
 *
 * Conventions: functions that can fail return 0 or a negative errno value
 * and fill the msb_error they are given (which may be NULL) with a message
 * that names what failed. Objects are not thread-safe; use one per thread
 * or serialise access.
 *
 * A minimal program:
 *
 *     msb_client *c;
 *     msb_output out;
 *     msb_error err;
 *     const char *args[] = { "-c", "print(6*7)", NULL };
 *
 *     if (msb_connect("dev", &c, &err) < 0 ||
 *         msb_exec_collect(c, "python3", args, NULL, &out, &err) < 0) {
 *             fprintf(stderr, "%s\n", err.message);
 *             return 1;
 *     }
 *     fwrite(out.stdout_data, 1, out.stdout_len, stdout);
 *     msb_output_free(&out);
 *     msb_disconnect(c);
 */
#ifndef MSB_MSB_H
#define MSB_MSB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MSB_ERROR_MESSAGE_MAX 512

typedef struct msb_error {
	int code; /* negative errno value; 0 when no error */
	char message[MSB_ERROR_MESSAGE_MAX];
} msb_error;

/* ---- Sandboxes ---------------------------------------------------------- */

typedef struct msb_sandbox_options {
	const char *name;        /* NULL: a generated name */
	const char *image;       /* root image file; NULL: the default image */
	unsigned cpus;           /* 0: 1 vCPU */
	unsigned memory_mib;     /* 0: 512 MiB */
	/* Size of the writable layer, a sparse disk image that survives
	 * restarts; 0: 4096 MiB. An ephemeral sandbox keeps its writable
	 * layer in guest memory instead. */
	unsigned disk_mib;
	const char *const *env;  /* "KEY=VALUE" for every exec, NULL-terminated */
	const char *workdir;     /* working directory of every exec */
	/* Host directories, files and named volumes shared into the guest
	 * through virtio-fs: "HOST_PATH:GUEST_PATH[:ro]" (a path contains '/')
	 * or "VOLUME:GUEST_PATH[:ro]"; NULL-terminated. */
	const char *const *mounts;
	/* tmpfs mounts: "GUEST_PATH[:size=MIB]" (default 64 MiB). */
	const char *const *tmpfs;
	unsigned idle_timeout_s; /* stop after this long without exec or traffic; 0: never */
	unsigned max_duration_s; /* stop this long after boot, busy or not; 0: never */
	unsigned boot_timeout_s; /* 0: 60 s */
	/* Remove the sandbox when it stops, and stop it when the process that
	 * created it exits (what `msb run` uses). */
	bool ephemeral;
	/* The msb executable that runs sandbox processes; NULL: the path set
	 * with msb_set_runtime_path(), else $MSB_RUNTIME, else "msb" in PATH. */
	const char *runtime_path;
} msb_sandbox_options;

typedef struct msb_sandbox msb_sandbox;

/* A sandbox as the index records it. */
typedef struct msb_sandbox_info {
	char name[64];
	char state[16];        /* creating, running, draining, stopped, crashed */
	char stop_reason[32];  /* exit, idle timeout, max duration, stop, kill,
				  crash, boot failure, host reboot */
	char image[4096];      /* empty: the default image */
	char dir[4096];        /* its directory: logs, sockets, upper image */
	char accel[8];         /* kvm or tcg, once it ran */
	unsigned cpus, memory_mib, disk_mib;
	unsigned idle_timeout_s, max_duration_s;
	bool ephemeral;
	int pid;               /* the sandbox process while it runs, else 0 */
	int64_t created_at, started_at, stopped_at; /* Unix seconds; 0: never */
} msb_sandbox_info;

/* Sets the msb executable used to start sandbox processes. */
void msb_set_runtime_path(const char *path);

/* Makes a msb_sandbox_create() or msb_sandbox_start() that waits for a
 * boot give up: it stops the half-booted sandbox (a new one is removed
 * too) and returns -ECANCELED. Async-signal-safe: call it from a SIGINT
 * handler installed without SA_RESTART. */
void msb_cancel(void);

/* Records a new sandbox and boots it; returns once the guest is ready. On
 * a boot failure the message names what failed and where the logs are. */
int msb_sandbox_create(const msb_sandbox_options *options, msb_sandbox **out, msb_error *err);
/* A handle on an existing sandbox, running or not. */
int msb_sandbox_open(const char *name, msb_sandbox **out, msb_error *err);
/* Boots a stopped sandbox again, with its writable layer as it was. */
int msb_sandbox_start(msb_sandbox *sb, unsigned boot_timeout_s, msb_error *err);
const char *msb_sandbox_name(const msb_sandbox *sb);
/* Shuts the guest down and waits up to timeout_s, then stops the VM hard. */
int msb_sandbox_stop(msb_sandbox *sb, unsigned timeout_s, msb_error *err);
/* Stops the VM at once, without asking the guest. */
int msb_sandbox_kill(msb_sandbox *sb, msb_error *err);
/* Deletes a stopped sandbox: its directory and its index entry. With
 * force, a running one is killed first. */
int msb_sandbox_remove(msb_sandbox *sb, bool force, msb_error *err);
int msb_sandbox_get_info(msb_sandbox *sb, msb_sandbox_info *info, msb_error *err);
void msb_sandbox_free(msb_sandbox *sb);

/* All sandboxes, by name; free the array with free(). */
int msb_list(msb_sandbox_info **out, size_t *count, msb_error *err);

/* Named volumes: directories under $MSB_HOME/volumes that outlive the
 * sandboxes that mount them. */
int msb_volume_create(const char *name, msb_error *err);
int msb_volume_remove(const char *name, msb_error *err);
/* Names of all volumes; free each and the array with free(). */
int msb_volume_list(char ***names, size_t *count, msb_error *err);

/* ---- Connections -------------------------------------------------------- */

typedef struct msb_client msb_client;

/* Connects to the running sandbox called name. Its sandbox-wide
 * environment and working directory apply to every exec of the
 * connection. */
int msb_connect(const char *name, msb_client **out, msb_error *err);
/* Connects to a relay socket by path. */
int msb_connect_path(const char *socket_path, msb_client **out, msb_error *err);
/* Closes the connection; exec sessions still running are killed. */
void msb_disconnect(msb_client *c);
/* Asks the guest to power off; the connection ends when it does. */
int msb_request_shutdown(msb_client *c, msb_error *err);

/* For event loops: the descriptor to poll for input, and the call that
 * processes what arrived (waiting at most timeout_ms, -1 for no limit),
 * running the callbacks of the sessions concerned. */
int msb_client_fd(const msb_client *c);
int msb_client_dispatch(msb_client *c, int timeout_ms, msb_error *err);

/* ---- Exec --------------------------------------------------------------- */

typedef struct msb_rlimit {
	const char *resource; /* "nofile", "nproc", "cpu", ... */
	uint64_t soft;
	uint64_t hard;
} msb_rlimit;

typedef struct msb_exec_options {
	const char *const *env; /* "KEY=VALUE" entries, NULL-terminated; these
				   override the sandbox-wide ones */
	const char *cwd;        /* NULL: the sandbox's workdir, else the user's home */
	const char *user;       /* "name", "uid", "name:group" or "uid:gid" */
	bool tty;               /* run in a pseudo-terminal */
	uint16_t rows, cols;    /* terminal size; 0: 24x80 */
	const msb_rlimit *rlimits;
	size_t n_rlimits;
} msb_exec_options;

/* How a command ended. */
typedef struct msb_exec_status {
	bool started;     /* false: it never ran; see failure_kind and message */
	int exit_code;    /* exit status; -1 when a signal killed it */
	int signal;       /* the signal that killed it, else 0 */
	char failure_kind[32]; /* "not_found", "bad_cwd", ... when !started */
	int failure_errno;
	char message[MSB_ERROR_MESSAGE_MAX];
} msb_exec_status;

/* Maps a status to a shell-style exit code: the exit status, 128+N for a
 * signal, 127 for a missing program, 126 for one that cannot run, 125 for
 * other failures to start. */
int msb_exec_status_code(const msb_exec_status *status);

typedef struct msb_exec_callbacks {
	void (*on_stdout)(void *user_data, const void *data, size_t len);
	void (*on_stderr)(void *user_data, const void *data, size_t len);
	/* stdin could not be delivered (the process closed it, say). */
	void (*on_stdin_error)(void *user_data, const char *message);
	/* Called once, when the command exits or fails to start. */
	void (*on_exit)(void *user_data, const msb_exec_status *status);
} msb_exec_callbacks;

typedef struct msb_exec msb_exec;

/* Checks, without a sandbox, that a command with these options can be
 * sent: environment entries are KEY=VALUE and the whole request fits in
 * one protocol frame (4 MiB). The message names the entry at fault. */
int msb_exec_validate(const char *cmd, const char *const *args, const msb_exec_options *options, msb_error *err);

/* Starts cmd with args (NULL-terminated, argv[0] excluded). Output goes to
 * the callbacks while msb_client_dispatch() or msb_exec_wait() runs. */
int msb_exec_start(msb_client *c, const char *cmd, const char *const *args, const msb_exec_options *options,
		   const msb_exec_callbacks *callbacks, void *user_data, msb_exec **out, msb_error *err);
/* Sends stdin. With an msb agent at most a window of stdin is in flight:
 * when the process reads slower than data comes, this call waits (running
 * the connection, so output keeps flowing) until the process has taken
 * enough. msb_exec_stdin_room() returns how much can be written without
 * waiting (SIZE_MAX with agents that do not report consumption). */
int msb_exec_write_stdin(msb_exec *e, const void *data, size_t len, msb_error *err);
size_t msb_exec_stdin_room(const msb_exec *e);
int msb_exec_close_stdin(msb_exec *e, msb_error *err);
int msb_exec_resize(msb_exec *e, uint16_t rows, uint16_t cols, msb_error *err);
int msb_exec_signal(msb_exec *e, int signal, msb_error *err);
/* Runs the connection until the command ends; fills status. */
int msb_exec_wait(msb_exec *e, msb_exec_status *status, msb_error *err);
bool msb_exec_done(const msb_exec *e);
void msb_exec_free(msb_exec *e);

typedef struct msb_output {
	char *stdout_data;
	size_t stdout_len;
	char *stderr_data;
	size_t stderr_len;
	msb_exec_status status;
} msb_output;

/* Runs a command to its end and collects its output. */
int msb_exec_collect(msb_client *c, const char *cmd, const char *const *args, const msb_exec_options *options,
		     msb_output *out, msb_error *err);
void msb_output_free(msb_output *out);

/* ---- Files -------------------------------------------------------------- */

/* Errors of file operations carry the guest's errno (negated) in
 * err->code and a message naming the path. */

typedef struct msb_file_info {
	char path[4096];
	char kind[8];          /* "file", "dir", "symlink" or "other" */
	uint64_t size;
	uint32_t mode;         /* permission bits, 07777 */
	uint32_t uid, gid;
	int64_t mtime, atime;  /* Unix seconds */
} msb_file_info;

int msb_fs_stat(msb_client *c, const char *path, bool follow_symlink, msb_file_info *out, msb_error *err);
/* Entries of a directory; free the array with free(). */
int msb_fs_list(msb_client *c, const char *path, msb_file_info **out, size_t *count, msb_error *err);
/* Creates a directory and its missing parents. */
int msb_fs_mkdir(msb_client *c, const char *path, uint32_t mode, msb_error *err);
/* Removes a file or symlink, or a directory (with recursive, and all it
 * holds; without, it must be empty). */
int msb_fs_remove(msb_client *c, const char *path, bool recursive, msb_error *err);
int msb_fs_rename(msb_client *c, const char *from, const char *to, msb_error *err);
int msb_fs_symlink(msb_client *c, const char *target, const char *link_path, msb_error *err);
/* The target of a symlink; free it with free(). */
int msb_fs_readlink(msb_client *c, const char *path, char **target, msb_error *err);
/* Pass for a time that msb_fs_set_times_mode() should leave as it is;
 * times before 1970 are negative and valid. */
#define MSB_FS_TIME_KEEP INT64_MIN

/* Sets the mode (when >= 0) and the times (unless MSB_FS_TIME_KEEP), in
 * Unix seconds; with follow_symlink false, the times of a symlink itself. */
int msb_fs_set_times_mode(msb_client *c, const char *path, bool follow_symlink, int64_t mode, int64_t atime,
			  int64_t mtime, msb_error *err);

/* Reads a whole file of at most max_len bytes; free *data with free(). */
int msb_fs_read_file(msb_client *c, const char *path, size_t max_len, void **data, size_t *len, msb_error *err);
/* Creates or replaces a file with data. */
int msb_fs_write_file(msb_client *c, const char *path, const void *data, size_t len, uint32_t mode,
		      msb_error *err);

/* Streams a file to sink, chunk by chunk (memory stays bounded whatever
 * the size). sink returns 0 to go on or a negative errno to stop. */
typedef int (*msb_fs_sink)(void *user_data, const void *data, size_t len);
int msb_fs_read_stream(msb_client *c, const char *path, msb_fs_sink sink, void *user_data, msb_error *err);
/* Creates or replaces a file with what source produces: it fills buf with
 * up to cap bytes and returns the count, 0 at the end, or a negative
 * errno. */
typedef long (*msb_fs_source)(void *user_data, void *buf, size_t cap);
int msb_fs_write_stream(msb_client *c, const char *path, uint32_t mode, msb_fs_source source, void *user_data,
			msb_error *err);

#ifdef __cplusplus
}
#endif

#endif
