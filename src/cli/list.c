/* msb ls and msb inspect. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/json.h"
#include "cli.h"

static void format_uptime(const msb_sandbox_info *s, char *out, size_t len)
{
	long secs;

	if (strcmp(s->state, "running") != 0 && strcmp(s->state, "draining") != 0) {
		snprintf(out, len, "-");
		return;
	}
	secs = (long)(time(NULL) - s->started_at);
	if (secs < 0 || !s->started_at)
		snprintf(out, len, "-");
	else if (secs < 120)
		snprintf(out, len, "%lds", secs);
	else if (secs < 7200)
		snprintf(out, len, "%ldm", secs / 60);
	else
		snprintf(out, len, "%ldh%02ldm", secs / 3600, secs / 60 % 60);
}

int cmd_ls(int argc, char **argv)
{
	msb_sandbox_info *list;
	size_t n;
	msb_error err;

	if (argc > 1) {
		bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;

		fputs("usage: msb ls\n\nLists sandboxes: name, state (and why a stopped one stopped), image,\n"
		      "cpus, memory, uptime and accelerator.\n",
		      help ? stdout : stderr);
		return help ? 0 : CLI_EXIT_USAGE;
	}
	if (msb_list(&list, &n, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_ERROR;
	}
	printf("%-24s %-28s %-16s %4s %7s %8s %s\n", "NAME", "STATE", "IMAGE", "CPUS", "MEMORY", "UPTIME", "ACCEL");
	for (size_t i = 0; i < n; i++) {
		char state[64], uptime[32], memory[16];
		const char *image = list[i].image[0] ? strrchr(list[i].image, '/') + 1 : "default";

		if (list[i].stop_reason[0] && strcmp(list[i].state, "running") != 0)
			snprintf(state, sizeof(state), "%s (%s)", list[i].state, list[i].stop_reason);
		else
			snprintf(state, sizeof(state), "%s", list[i].state);
		format_uptime(&list[i], uptime, sizeof(uptime));
		snprintf(memory, sizeof(memory), "%uM", list[i].memory_mib);
		printf("%-24s %-28s %-16s %4u %7s %8s %s\n", list[i].name, state, image, list[i].cpus, memory, uptime,
		       list[i].accel[0] ? list[i].accel : "-");
	}
	free(list);
	return 0;
}

static void add_field(struct buf *b, const char *key, const char *value, bool *first)
{
	json_append_raw(b, *first ? "{\n  " : ",\n  ");
	*first = false;
	json_append_cstr(b, key);
	json_append_raw(b, ": ");
	json_append_cstr(b, value);
}

static void add_number(struct buf *b, const char *key, long long value, bool *first)
{
	char num[32];

	json_append_raw(b, *first ? "{\n  " : ",\n  ");
	*first = false;
	json_append_cstr(b, key);
	snprintf(num, sizeof(num), ": %lld", value);
	json_append_raw(b, num);
}

int cmd_inspect(int argc, char **argv)
{
	msb_sandbox_info info;
	msb_sandbox *sb;
	msb_error err;
	struct buf json;
	char path[4200];
	bool first = true;

	if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		puts("usage: msb inspect NAME\n\nPrints what msb knows of the sandbox NAME as JSON.");
		return argc == 2 ? 0 : CLI_EXIT_USAGE;
	}
	if (msb_sandbox_open(argv[1], &sb, &err) < 0 || msb_sandbox_get_info(sb, &info, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_ERROR;
	}
	msb_sandbox_free(sb);

	buf_init(&json);
	add_field(&json, "name", info.name, &first);
	add_field(&json, "state", info.state, &first);
	add_field(&json, "stop_reason", info.stop_reason, &first);
	add_field(&json, "image", info.image[0] ? info.image : "default", &first);
	add_number(&json, "cpus", info.cpus, &first);
	add_number(&json, "memory_mib", info.memory_mib, &first);
	add_number(&json, "disk_mib", info.disk_mib, &first);
	add_number(&json, "idle_timeout_s", info.idle_timeout_s, &first);
	add_number(&json, "max_duration_s", info.max_duration_s, &first);
	json_append_raw(&json, ",\n  \"ephemeral\": ");
	json_append_raw(&json, info.ephemeral ? "true" : "false");
	add_field(&json, "accelerator", info.accel, &first);
	add_number(&json, "pid", info.pid, &first);
	add_number(&json, "created_at", info.created_at, &first);
	add_number(&json, "started_at", info.started_at, &first);
	add_number(&json, "stopped_at", info.stopped_at, &first);
	add_field(&json, "dir", info.dir, &first);
	snprintf(path, sizeof(path), "%s/agent.sock", info.dir);
	add_field(&json, "socket", path, &first);
	snprintf(path, sizeof(path), "%s/runtime.log", info.dir);
	add_field(&json, "runtime_log", path, &first);
	snprintf(path, sizeof(path), "%s/kernel.log", info.dir);
	add_field(&json, "kernel_log", path, &first);
	snprintf(path, sizeof(path), "%s/exec.log", info.dir);
	add_field(&json, "exec_log", path, &first);
	json_append_raw(&json, "\n}\n");
	fwrite(buf_peek(&json), 1, buf_pending(&json), stdout);
	buf_free(&json);
	return 0;
}
