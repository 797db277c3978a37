/* Option values shared by several commands. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_parse_unsigned(const char *text, const char *option, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || end == text || text[0] == '-' || v < min || v > max) {
		cli_error("invalid %s \"%s\": expected a number from %u to %u", option, text, min, max);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

int cli_add_env(const char **env, size_t *n, const char *arg)
{
	const char *value;
	char *entry;

	if (*n >= CLI_MAX_ENV) {
		cli_error("too many --env options (at most %d)", CLI_MAX_ENV);
		return -E2BIG;
	}
	if (arg[0] == '=') {
		cli_error("invalid --env \"%s\": the name is empty", arg);
		return -EINVAL;
	}
	if (strchr(arg, '=')) {
		env[(*n)++] = arg;
		env[*n] = NULL;
		return 0;
	}
	value = getenv(arg);
	if (!value) {
		cli_error("--env %s: no such variable in this environment; use KEY=VALUE", arg);
		return -ENOENT;
	}
	entry = malloc(strlen(arg) + strlen(value) + 2);
	if (!entry)
		return -ENOMEM;
	sprintf(entry, "%s=%s", arg, value);
	env[(*n)++] = entry;
	env[*n] = NULL;
	return 0;
}

static int parse_limit(const char *text, uint64_t *out)
{
	char *end;

	if (strcmp(text, "unlimited") == 0 || strcmp(text, "infinity") == 0) {
		*out = UINT64_MAX;
		return 0;
	}
	errno = 0;
	*out = strtoull(text, &end, 10);
	return errno || *end || end == text || text[0] == '-' ? -EINVAL : 0;
}

int cli_add_rlimit(msb_rlimit *rlimits, size_t *n, const char *arg)
{
	char name[32], soft[32], hard[32];
	const char *eq = strchr(arg, '='), *colon;

	if (*n >= CLI_MAX_RLIMITS) {
		cli_error("too many --rlimit options (at most %d)", CLI_MAX_RLIMITS);
		return -E2BIG;
	}
	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(name))
		goto invalid;
	snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
	colon = strchr(eq + 1, ':');
	snprintf(soft, sizeof(soft), "%.*s", colon ? (int)(colon - eq - 1) : (int)strlen(eq + 1), eq + 1);
	snprintf(hard, sizeof(hard), "%s", colon ? colon + 1 : soft);
	rlimits[*n].resource = strdup(name);
	if (!rlimits[*n].resource || parse_limit(soft, &rlimits[*n].soft) < 0 ||
	    parse_limit(hard, &rlimits[*n].hard) < 0)
		goto invalid;
	(*n)++;
	return 0;

invalid:
	cli_error("invalid --rlimit \"%s\": expected NAME=SOFT[:HARD], e.g. nofile=1024:4096", arg);
	return -EINVAL;
}

int cli_add_string(const char **list, size_t *n, size_t max, const char *arg, const char *option)
{
	if (*n >= max) {
		cli_error("too many %s options (at most %zu)", option, max);
		return -E2BIG;
	}
	list[(*n)++] = arg;
	list[*n] = NULL;
	return 0;
}

void cli_exec_args_init(struct cli_exec_args *a)
{
	memset(a, 0, sizeof(*a));
	a->options.env = a->env;
	a->options.rlimits = a->rlimits;
}

int cli_exec_option(struct cli_exec_args *a, int c, const char *arg)
{
	int rc = 0;

	switch (c) {
	case 'e':
		rc = cli_add_env(a->env, &a->n_env, arg);
		break;
	case 'r':
		rc = cli_add_rlimit(a->rlimits, &a->n_rlimits, arg);
		a->options.n_rlimits = a->n_rlimits;
		break;
	case 'w':
		a->options.cwd = arg;
		break;
	case 'u':
		a->options.user = arg;
		break;
	case 't':
		a->options.tty = true;
		break;
	default:
		return 0;
	}
	return rc < 0 ? rc : 1;
}

static void on_cancel_signal(int sig)
{
	msb_cancel();
}

void cli_cancel_on_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	/* No SA_RESTART: the wait for a boot must see EINTR. */
	sa.sa_handler = on_cancel_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}
