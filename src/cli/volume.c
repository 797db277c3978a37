/* msb volume: named volumes that outlive sandboxes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char volume_usage[] =
	"usage: msb volume create NAME | ls | rm NAME\n"
	"\n"
	"Named volumes are directories under $MSB_HOME/volumes that sandboxes mount\n"
	"with -v NAME:GUEST_DIR; their files outlive the sandboxes. -v creates a\n"
	"volume that does not exist yet.\n";

int cmd_volume(int argc, char **argv)
{
	const char *action = argc > 1 ? argv[1] : "";
	msb_error err;
	int rc;

	if (strcmp(action, "ls") == 0 && argc == 2) {
		char **names;
		size_t n;

		if (msb_volume_list(&names, &n, &err) < 0) {
			cli_error("%s", err.message);
			return CLI_EXIT_ERROR;
		}
		for (size_t i = 0; i < n; i++) {
			printf("%s\n", names[i]);
			free(names[i]);
		}
		free(names);
		return 0;
	}
	if ((strcmp(action, "create") == 0 || strcmp(action, "rm") == 0) && argc == 3) {
		rc = strcmp(action, "create") == 0 ? msb_volume_create(argv[2], &err) : msb_volume_remove(argv[2], &err);
		if (rc < 0) {
			cli_error("%s", err.message);
			return CLI_EXIT_ERROR;
		}
		return 0;
	}
	if (strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
		fputs(volume_usage, stdout);
		return 0;
	}
	fputs(volume_usage, stderr);
	return CLI_EXIT_USAGE;
}
