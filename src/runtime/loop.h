/* The event loop of the sandbox process: epoll over descriptors and
 * timerfd timers, each with a callback.
 *
 * A callback may remove any watch, its own included; the memory of a
 * removed watch is released after the current batch of events, and events
 * still queued for it are skipped.
 */
#ifndef MSB_RUNTIME_LOOP_H
#define MSB_RUNTIME_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_watch;

typedef void (*loop_fd_fn)(struct loop *loop, int fd, uint32_t events, void *data);
typedef void (*loop_timer_fn)(struct loop *loop, void *data);

struct loop *loop_new(void);
void loop_free(struct loop *loop);

struct loop_watch *loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *data);
int loop_set_events(struct loop *loop, struct loop_watch *w, uint32_t events);
/* Stops watching; the descriptor itself stays open. */
void loop_remove(struct loop *loop, struct loop_watch *w);

/* Calls fn after first_ms, then every interval_ms (0: once). */
struct loop_watch *loop_add_timer(struct loop *loop, uint64_t first_ms, uint64_t interval_ms, loop_timer_fn fn,
				  void *data);

/* Waits up to timeout_ms (-1: no limit) and runs the callbacks of one batch
 * of events. Returns the number of events, or -errno. */
int loop_run_once(struct loop *loop, int timeout_ms);
/* Runs batches until loop_stop() is called. */
void loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

#endif
