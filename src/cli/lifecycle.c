/* msb create, start, stop, kill and rm. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define DEFAULT_STOP_TIMEOUT_S 10

static const char create_usage[] =
	"usage: msb create [OPTIONS] NAME\n"
	"\n"
	"Creates the sandbox NAME and boots it; it runs until stopped, and keeps\n"
	"its files across `msb stop` and `msb start`.\n"
	"\n"
	"options:\n"
	"  --image FILE           root image (default: the Debian image from `make setup`)\n"
	"  --cpus N               virtual CPUs (default: 1)\n"
	"  --memory MIB           guest memory in MiB (default: 512)\n"
	"  --disk MIB             size of the writable layer in MiB (default: 4096, sparse)\n"
	"  -e, --env KEY=VALUE    environment of every exec; KEY alone copies it from here\n"
	"  -w, --workdir DIR      working directory of every exec\n"
	"  -v, --volume SRC:DIR[:ro]  share a host directory or file (SRC contains '/'),\n"
	"                         or a named volume, at DIR in the guest\n"
	"  --tmpfs DIR[:size=MIB] mount a tmpfs at DIR (default size: 64 MiB)\n"
	"  --idle-timeout SECS    stop after SECS without an exec session or traffic\n"
	"  --max-duration SECS    stop SECS after boot, busy or not\n"
	"  --boot-timeout SECS    how long the guest may take to boot (default: 60)\n";

/* The workdir is checked only in the guest, when an exec starts; warn at
 * once when every exec would fail. */
static void warn_missing_workdir(const char *name, const char *workdir)
{
	msb_file_info info;
	msb_client *c;
	msb_error err;

	if (!workdir || msb_connect(name, &c, NULL) < 0)
		return;
	if (msb_fs_stat(c, workdir, true, &info, &err) < 0)
		fprintf(stderr, "msb: warning: workdir %s: %s; execs fail until it exists\n", workdir, err.message);
	else if (strcmp(info.kind, "dir") != 0)
		fprintf(stderr, "msb: warning: workdir %s is not a directory; execs fail until it is\n", workdir);
	msb_disconnect(c);
}

int cmd_create(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "image", required_argument, NULL, 'i' },        { "cpus", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },       { "disk", required_argument, NULL, 'd' },
		{ "env", required_argument, NULL, 'e' },          { "workdir", required_argument, NULL, 'w' },
		{ "idle-timeout", required_argument, NULL, 'I' }, { "max-duration", required_argument, NULL, 'M' },
		{ "boot-timeout", required_argument, NULL, 'b' }, { "volume", required_argument, NULL, 'v' },
		{ "tmpfs", required_argument, NULL, 'T' },        { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *env[CLI_MAX_ENV + 1] = { NULL };
	const char *mounts[CLI_MAX_MOUNTS + 1] = { NULL }, *tmpfs[CLI_MAX_MOUNTS + 1] = { NULL };
	size_t n_mounts = 0, n_tmpfs = 0;
	size_t n_env = 0;
	msb_sandbox_options o;
	msb_sandbox *sb;
	msb_error err;
	int c;

	memset(&o, 0, sizeof(o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "e:w:v:h", long_options, NULL)) != -1) {
		int rc = 0;

		switch (c) {
		case 'i':
			o.image = optarg;
			break;
		case 'c':
			rc = cli_parse_unsigned(optarg, "--cpus", 1, 64, &o.cpus);
			break;
		case 'm':
			rc = cli_parse_unsigned(optarg, "--memory", 128, 1u << 20, &o.memory_mib);
			break;
		case 'd':
			rc = cli_parse_unsigned(optarg, "--disk", 64, 1u << 24, &o.disk_mib);
			break;
		case 'e':
			rc = cli_add_env(env, &n_env, optarg);
			break;
		case 'w':
			o.workdir = optarg;
			break;
		case 'v':
			rc = cli_add_string(mounts, &n_mounts, CLI_MAX_MOUNTS, optarg, "--volume");
			break;
		case 'T':
			rc = cli_add_string(tmpfs, &n_tmpfs, CLI_MAX_MOUNTS, optarg, "--tmpfs");
			break;
		case 'I':
			rc = cli_parse_unsigned(optarg, "--idle-timeout", 1, 1u << 30, &o.idle_timeout_s);
			break;
		case 'M':
			rc = cli_parse_unsigned(optarg, "--max-duration", 1, 1u << 30, &o.max_duration_s);
			break;
		case 'b':
			rc = cli_parse_unsigned(optarg, "--boot-timeout", 1, 3600, &o.boot_timeout_s);
			break;
		case 'h':
			fputs(create_usage, stdout);
			return 0;
		default:
			fputs(create_usage, stderr);
			return CLI_EXIT_USAGE;
		}
		if (rc < 0)
			return CLI_EXIT_USAGE;
	}
	if (optind != argc - 1) {
		fputs(create_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	o.name = argv[optind];
	o.env = env;
	o.mounts = mounts;
	o.tmpfs = tmpfs;
	if (msb_exec_validate("true", NULL, &(msb_exec_options){ .env = env }, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_USAGE;
	}
	cli_cancel_on_signals();
	if (msb_sandbox_create(&o, &sb, &err) < 0) {
		cli_error("%s", err.message);
		return err.code == -ECANCELED ? CLI_EXIT_INTERRUPTED : CLI_EXIT_ERROR;
	}
	warn_missing_workdir(msb_sandbox_name(sb), o.workdir);
	printf("%s\n", msb_sandbox_name(sb));
	msb_sandbox_free(sb);
	return 0;
}

/* Parses "[OPTIONS] NAME" for start, stop, kill and rm. */
static const char *single_name(int argc, char **argv, const char *usage, const struct option *options,
			       unsigned *timeout_s, bool *force)
{
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "fh", options, NULL)) != -1) {
		switch (c) {
		case 't':
			if (cli_parse_unsigned(optarg, "--timeout", 1, 86400, timeout_s) < 0)
				return NULL;
			break;
		case 'f':
			*force = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return "";
		default:
			fputs(usage, stderr);
			return NULL;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return NULL;
	}
	return argv[optind];
}

static const struct option timeout_options[] = {
	{ "timeout", required_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const struct option force_options[] = {
	{ "force", no_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const struct option plain_options[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

enum lifecycle_action {
	ACTION_START,
	ACTION_STOP,
	ACTION_KILL,
	ACTION_REMOVE,
};

static int act(const char *name, enum lifecycle_action action, unsigned timeout_s, bool force)
{
	msb_sandbox *sb;
	msb_error err;
	int rc = msb_sandbox_open(name, &sb, &err);

	if (rc == 0) {
		switch (action) {
		case ACTION_START:
			cli_cancel_on_signals();
			rc = msb_sandbox_start(sb, timeout_s, &err);
			break;
		case ACTION_STOP:
			rc = msb_sandbox_stop(sb, timeout_s, &err);
			break;
		case ACTION_KILL:
			rc = msb_sandbox_kill(sb, &err);
			break;
		case ACTION_REMOVE:
			rc = msb_sandbox_remove(sb, force, &err);
			break;
		}
		msb_sandbox_free(sb);
	}
	if (rc < 0) {
		cli_error("%s", err.message);
		return rc == -ECANCELED ? CLI_EXIT_INTERRUPTED : CLI_EXIT_ERROR;
	}
	return 0;
}

int cmd_start(int argc, char **argv)
{
	unsigned timeout_s = 0;
	bool force = false;
	const char *name = single_name(argc, argv,
				       "usage: msb start [--timeout SECS] NAME\n\nBoots the stopped sandbox NAME "
				       "again, with its files as they were.\n--timeout sets how long the boot may "
				       "take (default: 60).\n",
				       timeout_options, &timeout_s, &force);

	if (!name)
		return CLI_EXIT_USAGE;
	return *name ? act(name, ACTION_START, timeout_s, false) : 0;
}

int cmd_stop(int argc, char **argv)
{
	unsigned timeout_s = DEFAULT_STOP_TIMEOUT_S;
	bool force = false;
	const char *name = single_name(argc, argv,
				       "usage: msb stop [--timeout SECS] NAME\n\nAsks the guest of NAME to shut down, "
				       "waits up to SECS (default: 10),\nthen stops the VM hard.\n",
				       timeout_options, &timeout_s, &force);

	if (!name)
		return CLI_EXIT_USAGE;
	return *name ? act(name, ACTION_STOP, timeout_s, false) : 0;
}

int cmd_kill(int argc, char **argv)
{
	unsigned timeout_s = 0;
	bool force = false;
	const char *name = single_name(argc, argv, "usage: msb kill NAME\n\nStops the VM of NAME at once.\n",
				       plain_options, &timeout_s, &force);

	if (!name)
		return CLI_EXIT_USAGE;
	return *name ? act(name, ACTION_KILL, 0, false) : 0;
}

int cmd_rm(int argc, char **argv)
{
	unsigned timeout_s = 0;
	bool force = false;
	const char *name = single_name(argc, argv,
				       "usage: msb rm [--force] NAME\n\nDeletes the stopped sandbox NAME and its "
				       "files; --force kills it first if it runs.\n",
				       force_options, &timeout_s, &force);

	if (!name)
		return CLI_EXIT_USAGE;
	return *name ? act(name, ACTION_REMOVE, 0, force) : 0;
}
