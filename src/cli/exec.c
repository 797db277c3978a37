/* msb exec and msb shell: commands in a running sandbox. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char exec_usage[] =
	"usage: msb exec [OPTIONS] NAME -- CMD [ARGS...]\n"
	"\n"
	"Runs CMD in the running sandbox NAME and exits with its status.\n"
	"\n"
	"options:\n"
	"  -i, --interactive      forward stdin (without it, CMD's stdin is empty)\n"
	"  -t, --tty              run in a pseudo-terminal: the host terminal goes raw,\n"
	"                         Ctrl-C reaches CMD, window size changes follow\n"
	"  -u, --user USER        run as USER (name, uid, name:group or uid:gid)\n"
	"  -w, --workdir DIR      working directory (default: the sandbox's, else home)\n"
	"  -e, --env KEY=VALUE    set an environment variable; KEY alone copies it from here\n"
	"  --rlimit NAME=SOFT[:HARD]  resource limit, e.g. nofile=1024:4096\n";

static const char shell_usage[] =
	"usage: msb shell [-u USER] NAME\n"
	"\n"
	"Opens an interactive login shell in the running sandbox NAME.\n";

int cmd_exec(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "interactive", no_argument, NULL, 'i' }, { "tty", no_argument, NULL, 't' },
		{ "user", required_argument, NULL, 'u' },  { "workdir", required_argument, NULL, 'w' },
		{ "env", required_argument, NULL, 'e' },   { "rlimit", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },        { NULL, 0, NULL, 0 },
	};
	struct cli_exec_args exec_args;
	msb_client *client;
	msb_error err;
	bool interactive = false;
	const char *name;
	int c, exit_code;

	cli_exec_args_init(&exec_args);
	optind = 1;
	while ((c = getopt_long(argc, argv, "+itu:w:e:h", long_options, NULL)) != -1) {
		int handled = cli_exec_option(&exec_args, c, optarg);

		if (handled < 0)
			return CLI_EXIT_USAGE;
		if (handled)
			continue;
		switch (c) {
		case 'i':
			interactive = true;
			break;
		case 'h':
			fputs(exec_usage, stdout);
			return 0;
		default:
			fputs(exec_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 < argc && strcmp(argv[optind + 1], "--") == 0) {
		/* getopt stops at NAME; the "--" after it is ours to skip. */
		name = argv[optind];
		optind += 2;
	} else if (optind < argc) {
		name = argv[optind++];
	} else {
		name = NULL;
	}
	if (!name || optind >= argc) {
		cli_error("usage: msb exec [OPTIONS] NAME -- CMD [ARGS...]");
		return CLI_EXIT_USAGE;
	}
	if (argv[optind - 1] != NULL && strcmp(argv[optind - 1], "--") != 0 && argv[optind][0] == '-') {
		/* `msb exec NAME -e A=1 -- cmd` would run "-e". */
		cli_error("\"%s\" after the sandbox name: options go before NAME, the command after \"--\"",
			  argv[optind]);
		return CLI_EXIT_USAGE;
	}
	if (msb_exec_validate(argv[optind], (const char *const *)argv + optind + 1, &exec_args.options, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_USAGE;
	}

	/* A terminal session reads keys; piped input would race the shell's
	 * switch to raw mode and lose its end (bash then waits forever). */
	if (exec_args.options.tty && interactive && !isatty(STDIN_FILENO)) {
		cli_error("the input is not a terminal, and -t with -i needs one; drop -t to pipe input");
		return CLI_EXIT_USAGE;
	}
	if (msb_connect(name, &client, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_ERROR;
	}
	exit_code = cli_session_run(client, argv[optind], argv + optind + 1, &exec_args.options, interactive);
	msb_disconnect(client);
	return exit_code;
}

int cmd_shell(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* A login shell reads the profile, as a shell over ssh would. */
	static char *const args[] = { "-l", NULL };
	msb_exec_options eopt;
	msb_client *client;
	msb_error err;
	int c, exit_code;

	memset(&eopt, 0, sizeof(eopt));
	optind = 1;
	while ((c = getopt_long(argc, argv, "+u:h", long_options, NULL)) != -1) {
		switch (c) {
		case 'u':
			eopt.user = optarg;
			break;
		case 'h':
			fputs(shell_usage, stdout);
			return 0;
		default:
			fputs(shell_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(shell_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	eopt.tty = isatty(STDIN_FILENO);
	if (msb_connect(argv[optind], &client, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_ERROR;
	}
	exit_code = cli_session_run(client, "/bin/bash", args, &eopt, true);
	msb_disconnect(client);
	return exit_code;
}
