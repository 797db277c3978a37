/* The index of sandboxes: $MSB_HOME/index.db, an SQLite database with one
 * row per sandbox (its configuration, state and why it stopped).
 *
 * The CLI, libmsb and sandbox processes all write it; every write is one
 * transaction, and SQLite's locking serialises writers across processes,
 * so two commands racing on one name get a clear error instead of a
 * corrupt index.
 *
 * A row that says "running" is only as true as the process behind it: a
 * sandbox process killed with SIGKILL, or a host reboot, leaves no chance
 * to update it. index_reconcile() checks the recorded pid, its start time
 * and the host's boot id, and records what really happened.
 */
#ifndef MSB_BASE_INDEX_H
#define MSB_BASE_INDEX_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "home.h"
#include "msb/msb.h"

/* How long a writer waits for another one to finish. */
#define INDEX_BUSY_TIMEOUT_MS 10000
/* A row still "creating" with no sandbox process after this long lost its
 * starter before the process started. */
#define INDEX_UNCLAIMED_MAX_S 600

#define STATE_CREATING "creating"
#define STATE_RUNNING "running"
#define STATE_DRAINING "draining"
#define STATE_STOPPED "stopped"
#define STATE_CRASHED "crashed"

/* Reasons a sandbox stopped. */
#define REASON_EXIT "exit"
#define REASON_IDLE_TIMEOUT "idle timeout"
#define REASON_MAX_DURATION "max duration"
#define REASON_STOP "stop"
#define REASON_KILL "kill"
#define REASON_CRASH "crash"
#define REASON_BOOT_FAILURE "boot failure"
#define REASON_HOST_REBOOT "host reboot"

struct sandbox_record {
	char name[HOME_NAME_MAX + 1];
	char state[16];
	char stop_reason[32];
	char image[PATH_MAX]; /* empty: the default image */
	unsigned cpus;
	unsigned memory_mib;
	unsigned disk_mib; /* size of the writable upper; 0: in memory */
	/* Environment of every exec: "KEY=VALUE" entries, each ending in NUL. */
	char *env;
	size_t env_len;
	char workdir[PATH_MAX];
	char *mounts; /* mounts_serialize() text; NULL or "" for none */
	unsigned idle_timeout_s; /* 0: none */
	unsigned max_duration_s; /* 0: none */
	bool ephemeral;
	int64_t created_at; /* Unix seconds */
	int64_t started_at;
	int64_t stopped_at;
	int pid;
	uint64_t pid_start_time; /* clock ticks since boot, from /proc/PID/stat */
	char boot_id[40];
	char accel[8];
};

struct index;

int index_open(struct index **out, msb_error *err);
void index_close(struct index *idx);

/* Adds a new sandbox in state "creating"; -EEXIST when the name is taken. */
int index_insert(struct index *idx, const struct sandbox_record *rec, msb_error *err);
/* -ENOENT when there is no such sandbox. */
int index_get(struct index *idx, const char *name, struct sandbox_record *rec, msb_error *err);
/* All sandboxes, by name; free with index_free_records(). */
int index_list(struct index *idx, struct sandbox_record **recs, size_t *count, msb_error *err);
void index_free_records(struct sandbox_record *recs, size_t count);
void index_record_free(struct sandbox_record *rec);

/* Moves a stopped or crashed sandbox to "creating"; -EBUSY (with a
 * message naming its state) when it is in any other state. */
int index_claim_start(struct index *idx, const char *name, msb_error *err);
/* Records the sandbox process, as soon as it starts. */
int index_set_process(struct index *idx, const char *name, int pid, uint64_t pid_start_time, const char *boot_id,
		      msb_error *err);
int index_set_running(struct index *idx, const char *name, const char *accel, msb_error *err);
/* Sets state and reason; stopped and crashed also record the time. */
int index_set_state(struct index *idx, const char *name, const char *state, const char *reason, msb_error *err);
int index_delete(struct index *idx, const char *name, msb_error *err);

/* Brings a record in line with reality when its process is gone, and
 * stores the correction. Returns true when the record changed. */
bool index_reconcile(struct index *idx, struct sandbox_record *rec);

/* Process identity helpers, also used by the sandbox process itself. */
uint64_t index_process_start_time(int pid);
void index_boot_id(char *out, size_t len);
bool index_process_alive(int pid, uint64_t start_time);

#endif
