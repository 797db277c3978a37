/* Idle timeout and maximum duration. */
#include "policy.h"

#include "../base/index.h"

#define NS_PER_S 1000000000ull

void policy_init(struct policy *p, unsigned idle_timeout_s, unsigned max_duration_s, uint64_t now_ns)
{
	p->idle_timeout_ns = (uint64_t)idle_timeout_s * NS_PER_S;
	p->max_duration_ns = (uint64_t)max_duration_s * NS_PER_S;
	p->started_ns = now_ns;
	p->last_activity_ns = now_ns;
}

void policy_note_activity(struct policy *p, uint64_t now_ns)
{
	p->last_activity_ns = now_ns;
}

const char *policy_check(struct policy *p, uint64_t now_ns, size_t open_sessions)
{
	if (p->max_duration_ns && now_ns - p->started_ns >= p->max_duration_ns)
		return REASON_MAX_DURATION;
	if (open_sessions > 0) {
		/* A long-running command keeps the sandbox in use; its end
		 * starts the idle clock. */
		p->last_activity_ns = now_ns;
		return NULL;
	}
	if (p->idle_timeout_ns && now_ns - p->last_activity_ns >= p->idle_timeout_ns)
		return REASON_IDLE_TIMEOUT;
	return NULL;
}
