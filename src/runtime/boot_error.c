/* boot-error.json and the reading of kernel logs. */
#include "boot_error.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/files.h"
#include "../base/json.h"
#include "../proto/errname.h"

#define KERNEL_LOG_READ_MAX (64 * 1024 * 1024)

int boot_error_write(const char *dir, const char *kernel_log, const char *stage, int err, const char *message)
{
	char path[PATH_MAX + 32], now[64], num[16];
	struct buf json;
	time_t t = time(NULL);
	struct tm tm;
	int rc;

	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	buf_init(&json);
	json_append_raw(&json, "{\"stage\": ");
	json_append_cstr(&json, stage);
	json_append_raw(&json, ", \"errno\": ");
	if (err) {
		snprintf(num, sizeof(num), "%d", err);
		json_append_raw(&json, num);
		json_append_raw(&json, ", \"errno_name\": ");
		json_append_cstr(&json, errno_name(err) ? errno_name(err) : "");
	} else {
		json_append_raw(&json, "null");
	}
	json_append_raw(&json, ", \"message\": ");
	json_append_cstr(&json, message);
	json_append_raw(&json, ", \"time\": ");
	json_append_cstr(&json, now);
	json_append_raw(&json, ", \"kernel_log\": ");
	json_append_cstr(&json, kernel_log);
	json_append_raw(&json, "}\n");

	snprintf(path, sizeof(path), "%s/boot-error.json", dir);
	rc = files_write_atomic(path, buf_peek(&json), buf_pending(&json), 0644);
	buf_free(&json);
	return rc;
}

bool boot_error_kernel_reason(const char *kernel_log, char *out, size_t out_len, const char **stage)
{
	char *log, *line, *best = NULL, *save = NULL;
	bool found = false;

	if (files_read_all(kernel_log, KERNEL_LOG_READ_MAX, &log, NULL) < 0)
		return false;
	for (line = strtok_r(log, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
		if (strstr(line, "Kernel panic")) {
			best = line;
			*stage = "kernel";
			break;
		}
		/* The agent's first error is the cause; the later ones
		 * ("boot failed: ...") only repeat it. */
		if (strstr(line, "msb-agentd:") && !best) {
			best = line;
			*stage = "agent";
		}
	}
	if (best) {
		snprintf(out, out_len, "%s", best);
		found = true;
	}
	free(log);
	return found;
}
