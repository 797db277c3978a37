/* msb run: a command in a new sandbox that is removed when it ends. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "msb/msb.h"
#include "cli.h"

#define MAX_ENV 1024
#define STDIN_CHUNK_BYTES (64 * 1024)
/* How long the guest gets to power off once the command ended. */
#define RUN_STOP_TIMEOUT_S 10

static const char run_usage[] =
	"usage: msb run [OPTIONS] -- CMD [ARGS...]\n"
	"\n"
	"Starts a sandbox, runs CMD in it with stdin, stdout and stderr connected,\n"
	"removes the sandbox, and exits with CMD's exit status.\n"
	"\n"
	"options:\n"
	"  --name NAME          name of the sandbox (default: generated)\n"
	"  --image FILE         root image (default: the Debian image from `make setup`)\n"
	"  --cpus N             virtual CPUs (default: 1)\n"
	"  --memory MIB         guest memory in MiB (default: 512)\n"
	"  -e, --env KEY=VALUE  set an environment variable; KEY alone copies it from here\n"
	"  -w, --workdir DIR    working directory in the guest (default: the user's home)\n"
	"  --boot-timeout SECS  how long the guest may take to boot (default: 60)\n";

struct run_state {
	msb_exec *exec;
	bool stdout_broken;
	bool stdin_open;
	int signals_forwarded;
};

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void on_stdout(void *data, const void *bytes, size_t len)
{
	struct run_state *st = data;

	if (st->stdout_broken)
		return;
	if (write_all(STDOUT_FILENO, bytes, len) == -EPIPE) {
		/* Like a shell pipeline: the reader went away, so the writer
		 * gets SIGPIPE. */
		st->stdout_broken = true;
		msb_exec_signal(st->exec, SIGPIPE, NULL);
	}
}

static void on_stderr(void *data, const void *bytes, size_t len)
{
	write_all(STDERR_FILENO, bytes, len);
}

static void on_stdin_error(void *data, const char *message)
{
	struct run_state *st = data;

	/* The command closed its stdin; stop sending it. */
	st->stdin_open = false;
}

static int parse_unsigned(const char *text, const char *option, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || end == text || v == 0 || v > 1u << 20) {
		cli_error("invalid %s \"%s\": expected a positive number", option, text);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

/* An --env value: KEY=VALUE as given, or KEY with the value from this
 * process's environment. */
static const char *env_entry(const char *arg)
{
	const char *value;
	char *entry;

	if (strchr(arg, '='))
		return arg;
	value = getenv(arg);
	if (!value)
		return NULL;
	entry = malloc(strlen(arg) + strlen(value) + 2);
	if (entry)
		sprintf(entry, "%s=%s", arg, value);
	return entry;
}

/* Sends typed-ahead stdin; returns false once stdin is done. */
static bool forward_stdin(struct run_state *st)
{
	char chunk[STDIN_CHUNK_BYTES];
	msb_error err;
	ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0) {
		msb_exec_close_stdin(st->exec, NULL);
		return false;
	}
	if (msb_exec_write_stdin(st->exec, chunk, (size_t)n, &err) < 0 && !msb_exec_done(st->exec)) {
		cli_error("%s", err.message);
		return false;
	}
	return true;
}

static void forward_signal(struct run_state *st, int sig)
{
	/* The first signal goes to the command, as a terminal would send it;
	 * a second SIGINT means the user insists. */
	st->signals_forwarded++;
	if (sig == SIGINT && st->signals_forwarded > 1)
		sig = SIGKILL;
	msb_exec_signal(st->exec, sig, NULL);
}

static int pump(msb_client *client, struct run_state *st, int signal_fd, msb_error *err)
{
	st->stdin_open = true;
	while (!msb_exec_done(st->exec)) {
		struct pollfd fds[3] = {
			{ .fd = msb_client_fd(client), .events = POLLIN },
			{ .fd = signal_fd, .events = POLLIN },
			{ .fd = st->stdin_open ? STDIN_FILENO : -1, .events = POLLIN },
		};

		if (poll(fds, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				forward_signal(st, (int)si.ssi_signo);
		}
		if (fds[2].revents & (POLLIN | POLLHUP | POLLERR))
			st->stdin_open = forward_stdin(st);
		if (fds[0].revents) {
			int rc = msb_client_dispatch(client, 0, err);

			if (rc < 0 && !msb_exec_done(st->exec))
				return rc;
		}
	}
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "name", required_argument, NULL, 'n' },   { "image", required_argument, NULL, 'i' },
		{ "cpus", required_argument, NULL, 'c' },   { "memory", required_argument, NULL, 'm' },
		{ "env", required_argument, NULL, 'e' },    { "workdir", required_argument, NULL, 'w' },
		{ "boot-timeout", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *env[MAX_ENV + 1];
	size_t n_env = 0;
	msb_sandbox_options sopt;
	msb_exec_options eopt;
	msb_exec_callbacks callbacks = { .on_stdout = on_stdout, .on_stderr = on_stderr, .on_stdin_error = on_stdin_error };
	struct run_state st;
	msb_exec_status status;
	msb_sandbox *sb = NULL;
	msb_client *client = NULL;
	msb_error err;
	sigset_t mask;
	int c, rc, signal_fd, exit_code = CLI_EXIT_ERROR;

	memset(&sopt, 0, sizeof(sopt));
	memset(&eopt, 0, sizeof(eopt));
	memset(&st, 0, sizeof(st));
	sopt.ephemeral = true;
	sopt.runtime_path = cli_self_path();

	optind = 1;
	while ((c = getopt_long(argc, argv, "+e:w:h", long_options, NULL)) != -1) {
		switch (c) {
		case 'n':
			sopt.name = optarg;
			break;
		case 'i':
			sopt.image = optarg;
			break;
		case 'c':
			if (parse_unsigned(optarg, "--cpus", &sopt.cpus) < 0)
				return CLI_EXIT_USAGE;
			break;
		case 'm':
			if (parse_unsigned(optarg, "--memory", &sopt.memory_mib) < 0)
				return CLI_EXIT_USAGE;
			break;
		case 't':
			if (parse_unsigned(optarg, "--boot-timeout", &sopt.boot_timeout_s) < 0)
				return CLI_EXIT_USAGE;
			break;
		case 'e':
			if (n_env == MAX_ENV) {
				cli_error("too many --env options (at most %d)", MAX_ENV);
				return CLI_EXIT_USAGE;
			}
			env[n_env] = env_entry(optarg);
			if (!env[n_env]) {
				cli_error("--env %s: no such variable in this environment; use KEY=VALUE", optarg);
				return CLI_EXIT_USAGE;
			}
			n_env++;
			break;
		case 'w':
			eopt.cwd = optarg;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			fputs(run_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cli_error("no command given; usage: msb run [OPTIONS] -- CMD [ARGS...]");
		return CLI_EXIT_USAGE;
	}
	env[n_env] = NULL;
	eopt.env = env;

	/* Refuse what cannot be sent before paying for a boot. */
	if (msb_exec_validate(argv[optind], (const char *const *)argv + optind + 1, &eopt, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_USAGE;
	}

	if (msb_sandbox_start(&sopt, &sb, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_ERROR;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	signal(SIGPIPE, SIG_IGN);

	rc = msb_connect(msb_sandbox_name(sb), &client, &err);
	if (rc == 0)
		rc = msb_exec_start(client, argv[optind], (const char *const *)argv + optind + 1, &eopt, &callbacks, &st,
				    &st.exec, &err);
	if (rc == 0)
		rc = pump(client, &st, signal_fd, &err);
	if (rc == 0)
		rc = msb_exec_wait(st.exec, &status, &err);

	if (rc < 0) {
		cli_error("%s", err.message);
	} else {
		exit_code = msb_exec_status_code(&status);
		if (!status.started)
			cli_error("%s", status.message);
	}

	msb_exec_free(st.exec);
	msb_disconnect(client);
	if (msb_sandbox_stop(sb, RUN_STOP_TIMEOUT_S, &err) < 0)
		cli_error("%s", err.message);
	msb_sandbox_free(sb);
	return exit_code;
}
