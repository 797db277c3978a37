/* Log files rotate at LOG_ROTATE_BYTES and keep LOG_KEEP_FILES old ones. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/base/files.h"
#include "../../src/runtime/log.h"
#include "test.h"

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

TEST(log_rotation_keeps_three)
{
	char dir[64] = "/tmp/msb-log-test-XXXXXX", path[128], old[160];
	struct log_file lf = { .fd = -1 };
	char line[4096];
	long written = 0;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/runtime.log", dir);
	CHECK_INT_EQ(log_file_open(&lf, path), 0);
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';

	/* Enough for five rotations. */
	while (written < 5 * LOG_ROTATE_BYTES + 1) {
		log_file_write(&lf, line, sizeof(line));
		written += (long)sizeof(line);
	}
	log_file_close(&lf);

	CHECK(file_size(path) >= 0);
	CHECK(file_size(path) < LOG_ROTATE_BYTES);
	for (int i = 1; i <= LOG_KEEP_FILES; i++) {
		snprintf(old, sizeof(old), "%s.%d", path, i);
		CHECK(file_size(old) >= LOG_ROTATE_BYTES);
		CHECK(file_size(old) < LOG_ROTATE_BYTES + (long)sizeof(line));
	}
	snprintf(old, sizeof(old), "%s.%d", path, LOG_KEEP_FILES + 1);
	CHECK_INT_EQ(file_size(old), -1);
	files_remove_tree(dir);
}
