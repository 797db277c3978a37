/* Runner of the unit tests. */
#include <stdarg.h>
#include <stdlib.h>

#include "test.h"

static struct test_case *tests;
static struct test_case **tests_tail = &tests;
static int current_failures;

void test_register(struct test_case *tc)
{
	*tests_tail = tc;
	tests_tail = &tc->next;
}

bool test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "  %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	current_failures++;
	return false;
}

static bool selected(const char *name, int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (strstr(name, argv[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;

	for (struct test_case *tc = tests; tc; tc = tc->next) {
		if (!selected(tc->name, argc, argv))
			continue;
		current_failures = 0;
		tc->fn();
		if (current_failures) {
			fprintf(stderr, "FAIL %s\n", tc->name);
			failed++;
		} else {
			printf("ok   %s\n", tc->name);
			passed++;
		}
		fflush(stdout);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
