/* A small test harness: TEST() registers a function, CHECK*() record
 * failures with file and line, and the runner prints "N passed, N failed".
 * Test files link into one binary; `unit-tests NAME...` runs a subset. */
#ifndef MSB_TEST_H
#define MSB_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(void);
	struct test_case *next;
};

void test_register(struct test_case *tc);
/* Records a failure of the running test; returns false so CHECK can be used
 * in conditions. */
bool test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define TEST(name)                                                      \
	static void test_##name(void);                                  \
	static struct test_case test_case_##name = { #name, test_##name, NULL }; \
	__attribute__((constructor)) static void test_reg_##name(void) \
	{                                                               \
		test_register(&test_case_##name);                       \
	}                                                               \
	static void test_##name(void)

#define CHECK(cond) ((cond) ? true : test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond))

#define CHECK_INT_EQ(actual, expected)                                                              \
	do {                                                                                        \
		long long a_ = (long long)(actual), e_ = (long long)(expected);                     \
		if (a_ != e_)                                                                       \
			test_fail(__FILE__, __LINE__, "%s == %lld, expected %lld", #actual, a_, e_); \
	} while (0)

#define CHECK_STR_EQ(actual, expected)                                                            \
	do {                                                                                      \
		const char *a_ = (actual), *e_ = (expected);                                      \
		if (!a_ || strcmp(a_, e_) != 0)                                                   \
			test_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #actual,   \
				  a_ ? a_ : "(null)", e_);                                        \
	} while (0)

#define CHECK_SPAN_EQ(actual, expected)                                                            \
	do {                                                                                       \
		struct span a_ = (actual);                                                         \
		const char *e_ = (expected);                                                       \
		if (!span_eq_cstr(a_, e_))                                                         \
			test_fail(__FILE__, __LINE__, "%s == \"%.*s\", expected \"%s\"", #actual, \
				  (int)a_.len, a_.ptr ? (const char *)a_.ptr : "(none)", e_);      \
	} while (0)

#endif
