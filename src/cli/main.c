/* msb: command-line entry point. */
#include <limits.h>
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
	"  run [OPTIONS] -- CMD [ARGS...]   run a command in a new sandbox, then remove it\n"
	"  doctor                           show the accelerator msb would use and check the guest assets\n"
	"  version                          print the version\n"
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

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, cmd ? stdout : stderr);
		return cmd ? 0 : CLI_EXIT_USAGE;
	}
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "doctor") == 0)
		return cmd_doctor(argc - 1, argv + 1);
	if (strcmp(cmd, "sandbox") == 0)
		return sandbox_main(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("msb %s\n", MSB_VERSION);
		return 0;
	}
	cli_error("unknown command \"%s\"; run `msb --help` for the list", cmd);
	return CLI_EXIT_USAGE;
}
