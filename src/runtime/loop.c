/* epoll and timerfd event loop. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define LOOP_BATCH 64

struct loop_watch {
	int fd;
	bool is_timer;
	bool removed;
	loop_fd_fn fd_fn;
	loop_timer_fn timer_fn;
	void *data;
	struct loop_watch *next_removed;
};

struct loop {
	int epoll_fd;
	bool stopped;
	struct loop_watch *removed;
};

struct loop *loop_new(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epoll_fd < 0) {
		free(loop);
		return NULL;
	}
	return loop;
}

static void release_removed(struct loop *loop)
{
	while (loop->removed) {
		struct loop_watch *w = loop->removed;

		loop->removed = w->next_removed;
		free(w);
	}
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	release_removed(loop);
	close(loop->epoll_fd);
	free(loop);
}

struct loop_watch *loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *data)
{
	struct loop_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (!w)
		return NULL;
	w->fd = fd;
	w->fd_fn = fn;
	w->data = data;
	if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(w);
		return NULL;
	}
	return w;
}

int loop_set_events(struct loop *loop, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return -errno;
	return 0;
}

void loop_remove(struct loop *loop, struct loop_watch *w)
{
	if (!w || w->removed)
		return;
	epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
	if (w->is_timer)
		close(w->fd);
	w->removed = true;
	w->next_removed = loop->removed;
	loop->removed = w;
}

struct loop_watch *loop_add_timer(struct loop *loop, uint64_t first_ms, uint64_t interval_ms, loop_timer_fn fn,
				  void *data)
{
	struct itimerspec its;
	struct loop_watch *w;
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

	if (fd < 0)
		return NULL;
	memset(&its, 0, sizeof(its));
	/* A zero it_value disarms a timer; fire "now" as 1 ns instead. */
	its.it_value.tv_sec = (time_t)(first_ms / 1000);
	its.it_value.tv_nsec = (long)(first_ms % 1000) * 1000000L;
	if (first_ms == 0)
		its.it_value.tv_nsec = 1;
	its.it_interval.tv_sec = (time_t)(interval_ms / 1000);
	its.it_interval.tv_nsec = (long)(interval_ms % 1000) * 1000000L;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		close(fd);
		return NULL;
	}
	w = loop_add_fd(loop, fd, EPOLLIN, NULL, data);
	if (!w) {
		close(fd);
		return NULL;
	}
	w->is_timer = true;
	w->timer_fn = fn;
	return w;
}

int loop_run_once(struct loop *loop, int timeout_ms)
{
	struct epoll_event events[LOOP_BATCH];
	int n = epoll_wait(loop->epoll_fd, events, LOOP_BATCH, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct loop_watch *w = events[i].data.ptr;

		if (w->removed)
			continue;
		if (w->is_timer) {
			uint64_t expirations;

			if (read(w->fd, &expirations, sizeof(expirations)) < 0)
				continue;
			w->timer_fn(loop, w->data);
			/* A one-shot timer is done after it fired. */
		} else {
			w->fd_fn(loop, w->fd, events[i].events, w->data);
		}
	}
	release_removed(loop);
	return n;
}

void loop_run(struct loop *loop)
{
	loop->stopped = false;
	while (!loop->stopped)
		if (loop_run_once(loop, -1) < 0)
			break;
}

void loop_stop(struct loop *loop)
{
	loop->stopped = true;
}
