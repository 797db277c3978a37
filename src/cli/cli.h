/* The msb command: subcommands and what they share. */
#ifndef MSB_CLI_CLI_H
#define MSB_CLI_CLI_H

#include <stdbool.h>

#include "msb/msb.h"

#define MSB_VERSION "0.1.0"

/* Exit status for errors of msb itself (not of the command it ran). */
#define CLI_EXIT_ERROR 125
#define CLI_EXIT_USAGE 2
/* Exit status after an interrupt, as a shell gives after SIGINT. */
#define CLI_EXIT_INTERRUPTED 130

/* Most --env and --rlimit options one command takes. */
#define CLI_MAX_ENV 1024
#define CLI_MAX_RLIMITS 16
#define CLI_MAX_MOUNTS 32

int cmd_run(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_shell(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_volume(int argc, char **argv);
int cmd_cp(int argc, char **argv);

/* Prints "msb: " and the message to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The path of this executable, used to start sandbox processes. */
const char *cli_self_path(void);

/* Option values shared by several commands; each prints its own error. */
int cli_parse_unsigned(const char *text, const char *option, unsigned min, unsigned max, unsigned *out);
/* --env KEY=VALUE, or KEY alone for the value in this process's
 * environment. Appends to env (NULL-terminated) and counts in *n. */
int cli_add_env(const char **env, size_t *n, const char *arg);
/* Appends arg to a NULL-terminated list of at most max strings. */
int cli_add_string(const char **list, size_t *n, size_t max, const char *arg, const char *option);
/* --rlimit NAME=SOFT[:HARD], with "unlimited" for no limit. */
int cli_add_rlimit(msb_rlimit *rlimits, size_t *n, const char *arg);

/* Turns SIGINT, SIGTERM and SIGHUP during a boot into msb_cancel(), so
 * that an interrupted create, start or run stops what it started. */
void cli_cancel_on_signals(void);

/* The options of one exec that run and exec share: -e, -w, -u, -t and
 * --rlimit, collected into an msb_exec_options. */
struct cli_exec_args {
	const char *env[CLI_MAX_ENV + 1];
	size_t n_env;
	msb_rlimit rlimits[CLI_MAX_RLIMITS];
	size_t n_rlimits;
	msb_exec_options options;
};

void cli_exec_args_init(struct cli_exec_args *a);
/* Takes getopt's option c with argument arg: returns 1 when it was an exec
 * option, 0 when it was not, a negative errno (after printing why) when
 * its value is invalid. */
int cli_exec_option(struct cli_exec_args *a, int c, const char *arg);

/* Runs a command on client with stdio connected: output to stdout and
 * stderr, stdin forwarded when forward_stdin, a terminal in raw mode for
 * options->tty, signals forwarded. Returns the exit status for msb. */
int cli_session_run(msb_client *client, const char *cmd, char *const *args, const msb_exec_options *options,
		    bool forward_stdin);

#endif
