/* msb cp: copies files and directories between the host and a sandbox. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cp.h"

static const char cp_usage[] =
	"usage: msb cp [OPTIONS] SRC DST\n"
	"\n"
	"Copies between the host and the running sandbox NAME; exactly one of SRC and\n"
	"DST is NAME:PATH, with PATH absolute in the guest.\n"
	"\n"
	"  msb cp HOST_PATH NAME:PATH   copy a host file or directory into the guest\n"
	"  msb cp NAME:PATH HOST_PATH   copy a guest file or directory to the host\n"
	"  msb cp - NAME:DIR            extract a tar stream from stdin into the guest\n"
	"                               directory DIR, which must exist\n"
	"  msb cp NAME:PATH -           write PATH as a tar stream to stdout\n"
	"\n"
	"Directories are copied recursively, with modes and modification times;\n"
	"symlinks are copied as symlinks, except a SRC that is one, which is followed.\n"
	"When DST is an existing directory, SRC is copied into it under its own name;\n"
	"otherwise DST names the copy. Entries other than files, directories and\n"
	"symlinks are skipped with a warning.\n"
	"\n"
	"Guests and tar streams are untrusted: names with \"..\" components, absolute\n"
	"names, guest symlinks that point outside the copied tree, hard links and\n"
	"device nodes in a tar stream are rejected, and host symlinks are never\n"
	"written through. Set-user-ID and set-group-ID bits of guest files are\n"
	"dropped on the host.\n"
	"\n"
	"options:\n"
	"  -h, --help   show this help\n";

struct cp_side {
	char *sandbox; /* NULL for the host */
	char *path;    /* "-" for stdin or stdout */
};

/* "NAME:PATH" names a sandbox when NAME is not empty and has no '/', so
 * that "./a:b" stays a host path. */
static int parse_side(const char *arg, struct cp_side *side)
{
	const char *colon = strchr(arg, ':');

	side->sandbox = NULL;
	side->path = NULL;
	if (!colon || colon == arg || memchr(arg, '/', (size_t)(colon - arg))) {
		side->path = strdup(arg);
		return side->path ? 0 : -1;
	}
	side->sandbox = strndup(arg, (size_t)(colon - arg));
	side->path = cp_strip_slashes(colon + 1);
	if (!side->sandbox || !side->path)
		return -1;
	if (side->path[0] != '/') {
		cli_error("the guest path in \"%s\" must be absolute, e.g. %s:/tmp/file", arg, side->sandbox);
		return -1;
	}
	return 0;
}

static void free_side(struct cp_side *side)
{
	free(side->sandbox);
	free(side->path);
}

/* Connects to the sandbox and runs the copy; returns the exit status. */
static int run_copy(const struct cp_side *src, const struct cp_side *dst)
{
	const struct cp_side *guest = src->sandbox ? src : dst;
	msb_client *client;
	msb_error err;
	int rc;

	if (msb_connect(guest->sandbox, &client, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_ERROR;
	}
	if (strcmp(src->path, "-") == 0)
		rc = cp_tar_in(client, STDIN_FILENO, dst->path, &err);
	else if (strcmp(dst->path, "-") == 0)
		rc = cp_tar_out(client, src->sandbox, src->path, STDOUT_FILENO, &err);
	else if (src->sandbox)
		rc = cp_to_host(client, src->sandbox, src->path, dst->path, &err);
	else
		rc = cp_to_guest(client, src->path, dst->path, &err);
	msb_disconnect(client);
	if (rc < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_ERROR;
	}
	return 0;
}

/* Checks that exactly one side is a sandbox and "-" is on the host side. */
static int check_sides(const struct cp_side *src, const struct cp_side *dst)
{
	if (!src->sandbox == !dst->sandbox) {
		cli_error("exactly one of SRC and DST must be NAME:PATH; run `msb cp --help` for the forms");
		return -1;
	}
	if (strcmp(src->path, "-") == 0 && !dst->sandbox) {
		cli_error("msb cp - NAME:DIR extracts stdin into a sandbox; DST must be NAME:DIR");
		return -1;
	}
	if (strcmp(dst->path, "-") == 0 && isatty(STDOUT_FILENO)) {
		cli_error("stdout is a terminal; redirect the tar stream to a file or a pipe");
		return -1;
	}
	return 0;
}

int cmd_cp(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cp_side src = { 0 }, dst = { 0 };
	int c, status = CLI_EXIT_USAGE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", long_options, NULL)) != -1) {
		if (c == 'h') {
			fputs(cp_usage, stdout);
			return 0;
		}
		fputs(cp_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (argc - optind != 2) {
		cli_error("usage: msb cp SRC DST; run `msb cp --help` for the forms");
		return CLI_EXIT_USAGE;
	}
	if (parse_side(argv[optind], &src) == 0 && parse_side(argv[optind + 1], &dst) == 0 &&
	    check_sides(&src, &dst) == 0)
		status = run_copy(&src, &dst);
	free_side(&src);
	free_side(&dst);
	return status;
}
