/* Checks of the names and symlink targets that msb cp takes from a guest
 * listing or a tar stream, with the values a lying agent or a hostile
 * archive could send. */
#include "../../src/base/pathcheck.h"
#include "test.h"

TEST(cp_name_accepts_plain)
{
	CHECK(pathcheck_name("file.txt") == NULL);
	CHECK(pathcheck_name("...") == NULL);
	CHECK(pathcheck_name(".hidden") == NULL);
	CHECK(pathcheck_name("a b\tc") == NULL);
}

TEST(cp_name_rejects_bad)
{
	CHECK(pathcheck_name("") != NULL);
	CHECK(pathcheck_name(".") != NULL);
	CHECK(pathcheck_name("..") != NULL);
	CHECK(pathcheck_name("a/b") != NULL);
	CHECK(pathcheck_name("/") != NULL);
	CHECK(pathcheck_name("../x") != NULL);
}

TEST(cp_child_accepts_entry)
{
	const char *name = NULL;

	CHECK(pathcheck_child("/tmp/t", "/tmp/t/a", &name) == NULL);
	CHECK_STR_EQ(name, "a");
	CHECK(pathcheck_child("/", "/etc", &name) == NULL);
	CHECK_STR_EQ(name, "etc");
	CHECK(pathcheck_child("/tmp/t/", "/tmp/t/b", &name) == NULL);
	CHECK_STR_EQ(name, "b");
}

TEST(cp_child_rejects_lying_entry)
{
	const char *name;

	/* Outside the listed directory. */
	CHECK(pathcheck_child("/tmp/t", "/etc/passwd", &name) != NULL);
	CHECK(pathcheck_child("/tmp/t", "/tmp/tx", &name) != NULL);
	CHECK(pathcheck_child("/tmp/t", "/tmp", &name) != NULL);
	/* Not a single name. */
	CHECK(pathcheck_child("/tmp/t", "/tmp/t/../x", &name) != NULL);
	CHECK(pathcheck_child("/tmp/t", "/tmp/t/..", &name) != NULL);
	CHECK(pathcheck_child("/tmp/t", "/tmp/t/.", &name) != NULL);
	CHECK(pathcheck_child("/tmp/t", "/tmp/t/", &name) != NULL);
	CHECK(pathcheck_child("/tmp/t", "/tmp/t/a/b", &name) != NULL);
	CHECK(pathcheck_child("/tmp/t", "/tmp/t//a", &name) != NULL);
	CHECK(pathcheck_child("/", "/", &name) != NULL);
	CHECK(pathcheck_child("/", "//x", &name) != NULL);
}

TEST(cp_relative_cleans_path)
{
	char clean[64];
	unsigned depth;

	CHECK(pathcheck_relative("a/b/c", 5, clean, sizeof(clean), &depth) == NULL);
	CHECK_STR_EQ(clean, "a/b/c");
	CHECK_INT_EQ(depth, 3);
	CHECK(pathcheck_relative("./a//b/./", 9, clean, sizeof(clean), &depth) == NULL);
	CHECK_STR_EQ(clean, "a/b");
	CHECK_INT_EQ(depth, 2);
	CHECK(pathcheck_relative("./", 2, clean, sizeof(clean), &depth) == NULL);
	CHECK_STR_EQ(clean, "");
	CHECK_INT_EQ(depth, 0);
	CHECK(pathcheck_relative("a..b/..c", 8, clean, sizeof(clean), &depth) == NULL);
	CHECK_STR_EQ(clean, "a..b/..c");
}

TEST(cp_relative_rejects_escape)
{
	char clean[64];
	unsigned depth;

	CHECK(pathcheck_relative("../evil", 7, clean, sizeof(clean), &depth) != NULL);
	CHECK(pathcheck_relative("a/../../evil", 12, clean, sizeof(clean), &depth) != NULL);
	CHECK(pathcheck_relative("a/..", 4, clean, sizeof(clean), &depth) != NULL);
	CHECK(pathcheck_relative("..", 2, clean, sizeof(clean), &depth) != NULL);
	CHECK(pathcheck_relative("/abs", 4, clean, sizeof(clean), &depth) != NULL);
	CHECK(pathcheck_relative("/", 1, clean, sizeof(clean), &depth) != NULL);
	CHECK(pathcheck_relative("", 0, clean, sizeof(clean), &depth) != NULL);
}

TEST(cp_relative_rejects_nul)
{
	char clean[64];
	unsigned depth;

	/* A pax path record can carry a NUL byte; C would see only "ok". */
	CHECK(pathcheck_relative("ok\0/../../x", 11, clean, sizeof(clean), &depth) != NULL);
}

TEST(cp_relative_rejects_too_long)
{
	char clean[8];
	unsigned depth;

	CHECK(pathcheck_relative("abcd/efgh", 9, clean, sizeof(clean), &depth) != NULL);
	CHECK(pathcheck_relative("abc/efg", 7, clean, sizeof(clean), &depth) == NULL);
}

TEST(cp_link_target_inside)
{
	CHECK(pathcheck_link_target("a.txt", 0) == NULL);
	CHECK(pathcheck_link_target("./sub/a.txt", 0) == NULL);
	CHECK(pathcheck_link_target("../a.txt", 1) == NULL);
	CHECK(pathcheck_link_target("../../x/y", 2) == NULL);
	CHECK(pathcheck_link_target(".", 0) == NULL);
	CHECK(pathcheck_link_target("..", 1) == NULL);
}

TEST(cp_link_target_outside)
{
	CHECK(pathcheck_link_target("/etc", 5) != NULL);
	CHECK(pathcheck_link_target("/", 0) != NULL);
	CHECK(pathcheck_link_target("", 0) != NULL);
	CHECK(pathcheck_link_target("..", 0) != NULL);
	CHECK(pathcheck_link_target("../a.txt", 0) != NULL);
	CHECK(pathcheck_link_target("../../x", 1) != NULL);
	CHECK(pathcheck_link_target("./../..//x", 1) != NULL);
}

TEST(cp_link_target_dotdot_after_name)
{
	/* "b/.." is "." only if b is a directory; if b is a symlink to "..",
	 * it is the parent's parent. */
	CHECK(pathcheck_link_target("b/..", 3) != NULL);
	CHECK(pathcheck_link_target("../b/../c", 3) != NULL);
	CHECK(pathcheck_link_target("a/./b", 0) == NULL);
}

TEST(cp_quote_escapes_control)
{
	char out[64];

	pathcheck_quote("a\x1b[31mb", out, sizeof(out));
	CHECK_STR_EQ(out, "a\\x1b[31mb");
	pathcheck_quote("q\"\\", out, sizeof(out));
	CHECK_STR_EQ(out, "q\\x22\\x5c");
	pathcheck_quote("\xff", out, sizeof(out));
	CHECK_STR_EQ(out, "\\xff");
}

TEST(cp_quote_truncates)
{
	char out[6];

	pathcheck_quote("abcdefgh", out, sizeof(out));
	CHECK_STR_EQ(out, "abcde");
	pathcheck_quote("ab\x01", out, sizeof(out));
	CHECK_STR_EQ(out, "ab");
}
