/* Stop policies of a sandbox: an idle timeout (no exec session open and
 * no traffic for that long) and a maximum duration (regardless of use).
 * The decision is a pure function of the times given, so tests can feed
 * any clock; the runtime checks every POLICY_CHECK_MS. */
#ifndef MSB_RUNTIME_POLICY_H
#define MSB_RUNTIME_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define POLICY_CHECK_MS 1000

struct policy {
	uint64_t idle_timeout_ns;  /* 0: none */
	uint64_t max_duration_ns;  /* 0: none */
	uint64_t started_ns;       /* when the sandbox became ready */
	uint64_t last_activity_ns;
};

void policy_init(struct policy *p, unsigned idle_timeout_s, unsigned max_duration_s, uint64_t now_ns);
void policy_note_activity(struct policy *p, uint64_t now_ns);
/* Returns the reason to stop now (REASON_IDLE_TIMEOUT or
 * REASON_MAX_DURATION from index.h), or NULL. A sandbox with an open exec
 * session is never idle, however quiet the session is. */
const char *policy_check(struct policy *p, uint64_t now_ns, size_t open_sessions);

#endif
