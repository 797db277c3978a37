/* A command's session at the terminal: stdio forwarding, signals, and for
 * a pseudo-terminal session the host terminal in raw mode and its window
 * size kept in step. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../base/files.h"
#include "../base/monotonic.h"
#include "cli.h"

#define STDIN_CHUNK_BYTES (64 * 1024)
/* After forwarding a SIGTERM, SIGHUP or SIGQUIT, msb waits this long for
 * the command to end, then gives up on it; so does a third SIGINT. This
 * keeps msb stoppable when the guest does not answer. */
#define SIGNAL_GRACE_MS 10000
#define SIGINT_GIVE_UP_COUNT 3

struct session {
	msb_exec *exec;
	bool stdout_broken;
	bool stdin_open;
	int signals_forwarded;
	bool tty;
	int64_t give_up_at_ms; /* 0: wait for the command as long as it runs */
	int give_up_signal;
};

static struct termios saved_termios;
static bool termios_saved;

static void restore_terminal(void)
{
	if (termios_saved)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_termios);
	termios_saved = false;
}

/* Raw mode: every key, Ctrl-C included, goes to the guest's terminal,
 * whose line discipline turns it into a signal there. */
static void enter_raw_mode(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_termios) < 0)
		return;
	termios_saved = true;
	atexit(restore_terminal);
	raw = saved_termios;
	cfmakeraw(&raw);
	tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
}

static void window_size(uint16_t *rows, uint16_t *cols)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

static void on_stdout(void *data, const void *bytes, size_t len)
{
	struct session *s = data;

	if (s->stdout_broken)
		return;
	if (files_write_full(STDOUT_FILENO, bytes, len) == -EPIPE) {
		/* Like a shell pipeline: the reader went away, so the writer
		 * gets SIGPIPE. */
		s->stdout_broken = true;
		msb_exec_signal(s->exec, SIGPIPE, NULL);
	}
}

static void on_stderr(void *data, const void *bytes, size_t len)
{
	files_write_full(STDERR_FILENO, bytes, len);
}

static void on_stdin_error(void *data, const char *message)
{
	struct session *s = data;

	/* The command closed its stdin; stop sending it. */
	s->stdin_open = false;
}

/* Sends what stdin has, no more than the command can take now; returns
 * false once stdin is done. */
static bool forward_stdin(struct session *s)
{
	char chunk[STDIN_CHUNK_BYTES];
	size_t room = msb_exec_stdin_room(s->exec);
	msb_error err;
	ssize_t n = read(STDIN_FILENO, chunk, room < sizeof(chunk) ? room : sizeof(chunk));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0) {
		msb_exec_close_stdin(s->exec, NULL);
		return false;
	}
	if (msb_exec_write_stdin(s->exec, chunk, (size_t)n, &err) < 0 && !msb_exec_done(s->exec)) {
		cli_error("%s", err.message);
		return false;
	}
	return true;
}

static void on_signal(struct session *s, int sig)
{
	uint16_t rows = 0, cols = 0;

	if (sig == SIGWINCH) {
		window_size(&rows, &cols);
		if (rows && cols)
			msb_exec_resize(s->exec, rows, cols, NULL);
		return;
	}
	/* The first signal goes to the command, as a terminal would send it;
	 * a second SIGINT means the user insists, a third gives up. */
	s->signals_forwarded++;
	if (sig != SIGINT && !s->give_up_at_ms) {
		s->give_up_at_ms = monotonic_ms() + SIGNAL_GRACE_MS;
		s->give_up_signal = sig;
	}
	if (sig == SIGINT && s->signals_forwarded >= SIGINT_GIVE_UP_COUNT) {
		s->give_up_at_ms = monotonic_ms();
		s->give_up_signal = sig;
	}
	if (sig == SIGINT && s->signals_forwarded > 1)
		sig = SIGKILL;
	msb_exec_signal(s->exec, sig, NULL);
}

static int pump(msb_client *client, struct session *s, int signal_fd, msb_error *err)
{
	while (!msb_exec_done(s->exec)) {
		int timeout_ms = -1;
		struct pollfd fds[3] = {
			{ .fd = msb_client_fd(client), .events = POLLIN },
			{ .fd = signal_fd, .events = POLLIN },
			/* stdin waits while the command has not taken what
			 * was sent. */
			{ .fd = s->stdin_open && msb_exec_stdin_room(s->exec) > 0 ? STDIN_FILENO : -1,
			  .events = POLLIN },
		};

		if (s->give_up_at_ms) {
			int64_t left = s->give_up_at_ms - monotonic_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			timeout_ms = (int)left;
		}
		if (poll(fds, 3, timeout_ms) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				on_signal(s, (int)si.ssi_signo);
		}
		if (fds[2].revents & (POLLIN | POLLHUP | POLLERR))
			s->stdin_open = forward_stdin(s);
		if (fds[0].revents) {
			int rc = msb_client_dispatch(client, 0, err);

			if (rc < 0 && !msb_exec_done(s->exec))
				return rc;
		}
	}
	return 0;
}

int cli_session_run(msb_client *client, const char *cmd, char *const *args, const msb_exec_options *options,
		    bool forward_stdin_flag)
{
	msb_exec_callbacks callbacks = { .on_stdout = on_stdout, .on_stderr = on_stderr, .on_stdin_error = on_stdin_error };
	msb_exec_options o = *options;
	msb_exec_status status;
	struct session s;
	msb_error err;
	sigset_t mask, old_mask;
	int rc, signal_fd, exit_code = CLI_EXIT_ERROR;

	memset(&s, 0, sizeof(s));
	s.tty = o.tty;
	if (o.tty)
		window_size(&o.rows, &o.cols);

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, &old_mask);
	signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	signal(SIGPIPE, SIG_IGN);

	rc = msb_exec_start(client, cmd, (const char *const *)args, &o, &callbacks, &s, &s.exec, &err);
	if (rc == 0 && !forward_stdin_flag) {
		rc = msb_exec_close_stdin(s.exec, &err);
		if (rc == -ESRCH)
			rc = 0;
	}
	s.stdin_open = forward_stdin_flag;
	if (rc == 0 && o.tty && forward_stdin_flag)
		enter_raw_mode();
	if (rc == 0)
		rc = pump(client, &s, signal_fd, &err);
	if (rc == 0)
		rc = msb_exec_wait(s.exec, &status, &err);
	restore_terminal();

	if (rc == -ETIMEDOUT && s.give_up_signal) {
		cli_error("the command did not end within %d s of SIG%s; no longer waiting for it (it may still run "
			  "in the sandbox)",
			  SIGNAL_GRACE_MS / 1000, sigabbrev_np(s.give_up_signal));
		exit_code = 128 + s.give_up_signal;
	} else if (rc < 0) {
		cli_error("%s", err.message);
	} else {
		exit_code = msb_exec_status_code(&status);
		if (!status.started)
			cli_error("%s", status.message);
	}
	msb_exec_free(s.exec);
	close(signal_fd);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return exit_code;
}
