/* msb run: a command in a new sandbox that is removed when it ends. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* How long the guest gets to power off once the command ended. */
#define RUN_STOP_TIMEOUT_S 10

static const char run_usage[] =
	"usage: msb run [OPTIONS] -- CMD [ARGS...]\n"
	"\n"
	"Starts a sandbox, runs CMD in it with stdin, stdout and stderr connected,\n"
	"removes the sandbox, and exits with CMD's exit status.\n"
	"\n"
	"options:\n"
	"  --name NAME            name of the sandbox (default: generated)\n"
	"  --image FILE           root image (default: the Debian image from `make setup`)\n"
	"  --cpus N               virtual CPUs (default: 1)\n"
	"  --memory MIB           guest memory in MiB (default: 512)\n"
	"  -e, --env KEY=VALUE    set an environment variable; KEY alone copies it from here\n"
	"  -w, --workdir DIR      working directory in the guest (default: the user's home)\n"
	"  -u, --user USER        run as USER (name, uid, name:group or uid:gid)\n"
	"  -t, --tty              run in a pseudo-terminal (stdout and stderr merged)\n"
	"  --rlimit NAME=SOFT[:HARD]  resource limit, e.g. nofile=1024:4096\n"
	"  -v, --volume SRC:DIR[:ro]  share a host directory or file (SRC contains '/'),\n"
	"                         or a named volume, at DIR in the guest\n"
	"  --tmpfs DIR[:size=MIB] mount a tmpfs at DIR (default size: 64 MiB)\n"
	"  --boot-timeout SECS    how long the guest may take to boot (default: 60)\n";

int cmd_run(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "name", required_argument, NULL, 'n' },   { "image", required_argument, NULL, 'i' },
		{ "cpus", required_argument, NULL, 'c' },   { "memory", required_argument, NULL, 'm' },
		{ "env", required_argument, NULL, 'e' },    { "workdir", required_argument, NULL, 'w' },
		{ "user", required_argument, NULL, 'u' },   { "tty", no_argument, NULL, 't' },
		{ "rlimit", required_argument, NULL, 'r' }, { "boot-timeout", required_argument, NULL, 'b' },
		{ "volume", required_argument, NULL, 'v' },       { "tmpfs", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
	};
	const char *mounts[CLI_MAX_MOUNTS + 1] = { NULL }, *tmpfs[CLI_MAX_MOUNTS + 1] = { NULL };
	size_t n_mounts = 0, n_tmpfs = 0;
	msb_sandbox_options sopt;
	struct cli_exec_args exec_args;
	msb_sandbox *sb = NULL;
	msb_client *client = NULL;
	msb_error err;
	int c, exit_code;

	memset(&sopt, 0, sizeof(sopt));
	cli_exec_args_init(&exec_args);
	sopt.ephemeral = true;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+e:w:u:v:th", long_options, NULL)) != -1) {
		int handled = cli_exec_option(&exec_args, c, optarg);

		if (handled < 0)
			return CLI_EXIT_USAGE;
		if (handled)
			continue;
		switch (c) {
		case 'n':
			sopt.name = optarg;
			break;
		case 'i':
			sopt.image = optarg;
			break;
		case 'c':
			if (cli_parse_unsigned(optarg, "--cpus", 1, 64, &sopt.cpus) < 0)
				return CLI_EXIT_USAGE;
			break;
		case 'm':
			if (cli_parse_unsigned(optarg, "--memory", 128, 1u << 20, &sopt.memory_mib) < 0)
				return CLI_EXIT_USAGE;
			break;
		case 'b':
			if (cli_parse_unsigned(optarg, "--boot-timeout", 1, 3600, &sopt.boot_timeout_s) < 0)
				return CLI_EXIT_USAGE;
			break;
		case 'v':
			if (cli_add_string(mounts, &n_mounts, CLI_MAX_MOUNTS, optarg, "--volume") < 0)
				return CLI_EXIT_USAGE;
			break;
		case 'T':
			if (cli_add_string(tmpfs, &n_tmpfs, CLI_MAX_MOUNTS, optarg, "--tmpfs") < 0)
				return CLI_EXIT_USAGE;
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
	sopt.mounts = mounts;
	sopt.tmpfs = tmpfs;

	/* Refuse what cannot be sent before paying for a boot. */
	if (msb_exec_validate(argv[optind], (const char *const *)argv + optind + 1, &exec_args.options, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_USAGE;
	}

	cli_cancel_on_signals();
	if (msb_sandbox_create(&sopt, &sb, &err) < 0) {
		cli_error("%s", err.message);
		return err.code == -ECANCELED ? CLI_EXIT_INTERRUPTED : CLI_EXIT_ERROR;
	}
	if (msb_connect(msb_sandbox_name(sb), &client, &err) == 0) {
		/* With -t and no terminal to read keys from, the command gets
		 * no stdin, as with `docker run -t`. */
		bool forward = !exec_args.options.tty || isatty(STDIN_FILENO);

		exit_code = cli_session_run(client, argv[optind], argv + optind + 1, &exec_args.options, forward);
	} else {
		cli_error("%s", err.message);
		exit_code = CLI_EXIT_ERROR;
	}
	msb_disconnect(client);
	if (msb_sandbox_stop(sb, RUN_STOP_TIMEOUT_S, &err) < 0)
		cli_error("%s", err.message);
	msb_sandbox_free(sb);
	return exit_code;
}
