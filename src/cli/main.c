/* msb: command-line entry point. */
#include <limits.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/sandbox.h"
#include "cli.h"

static const char usage[] =
	"usage: msb COMMAND [OPTIONS]\n"
	"\n"
	"Hardware-isolated sandboxes: each runs in a microVM with its own Linux kernel.\n"
	"\n"
	"commands:\n"
	"  run [OPTIONS] -- CMD [ARGS...]        run a command in a new sandbox, then remove it\n"
	"  create [OPTIONS] NAME                 create a sandbox and boot it\n"
	"  exec [OPTIONS] NAME -- CMD [ARGS...]  run a command in a running sandbox\n"
	"  shell NAME                            open a login shell in a running sandbox\n"
	"  start NAME                            boot a stopped sandbox again\n"
	"  stop [--timeout SECS] NAME            shut a sandbox down\n"
	"  kill NAME                             stop a sandbox's VM at once\n"
	"  rm [--force] NAME                     delete a sandbox\n"
	"  ls                                    list sandboxes\n"
	"  inspect NAME                          show a sandbox as JSON\n"
	"  logs [--source S] [-f] NAME           show a sandbox's runtime, kernel or exec log\n"
	"  cp SRC DST                            copy files between the host and a sandbox\n"
	"  volume create|ls|rm [NAME]            manage named volumes\n"
	"  doctor                                show the accelerator and check the guest assets\n"
	"  version                               print the version\n"
	"\n"
	"Run `msb COMMAND --help` for the options of a command.\n";

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("msb: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *cli_self_path(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

	if (n <= 0)
		return "msb";
	path[n] = 0;
	return path;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "run", cmd_run },       { "create", cmd_create },   { "exec", cmd_exec },   { "shell", cmd_shell },
	{ "start", cmd_start },   { "stop", cmd_stop },       { "kill", cmd_kill },   { "rm", cmd_rm },
	{ "ls", cmd_ls },         { "inspect", cmd_inspect }, { "logs", cmd_logs },   { "doctor", cmd_doctor },
	{ "cp", cmd_cp },         { "volume", cmd_volume },	  { "sandbox", sandbox_main },
};

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	/* `msb help COMMAND` is `msb COMMAND --help`. */
	if (cmd && strcmp(cmd, "help") == 0 && argc > 2) {
		char *help_argv[] = { argv[2], "--help", NULL };

		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (strcmp(argv[2], commands[i].name) == 0)
				return commands[i].run(2, help_argv);
	}
	if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, cmd ? stdout : stderr);
		return cmd ? 0 : CLI_EXIT_USAGE;
	}
	if (getenv("MSB_ACCEL") && *getenv("MSB_ACCEL") && strcmp(getenv("MSB_ACCEL"), "kvm") != 0 &&
	    strcmp(getenv("MSB_ACCEL"), "tcg") != 0)
		cli_error("warning: MSB_ACCEL=%s is ignored; use kvm or tcg", getenv("MSB_ACCEL"));
	msb_set_runtime_path(cli_self_path());
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		if (argc > 2 && strcmp(argv[2], "--help") == 0) {
			puts("usage: msb version\n\nPrints the version of msb.");
			return 0;
		}
		printf("msb %s\n", MSB_VERSION);
		return 0;
	}
	cli_error("unknown command \"%s\"; run `msb --help` for the list", cmd);
	return CLI_EXIT_USAGE;
}
