/* Paths under $MSB_HOME. */
#include "home.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

static const char *home_root(char *buf, size_t len)
{
	const char *env = getenv("MSB_HOME");
	const char *user_home = getenv("HOME");

	if (env && *env)
		return env;
	if (!user_home || !*user_home) {
		struct passwd *pw = getpwuid(getuid());

		user_home = pw ? pw->pw_dir : "/tmp";
	}
	snprintf(buf, len, "%s/.msb", user_home);
	return buf;
}

int home_path(char *out, size_t out_len, const char *fmt, ...)
{
	char root[4096];
	const char *base = home_root(root, sizeof(root));
	va_list ap;
	int n;

	n = snprintf(out, out_len, "%s/", base);
	if (n < 0 || (size_t)n >= out_len)
		return -ENAMETOOLONG;
	va_start(ap, fmt);
	n += vsnprintf(out + n, out_len - (size_t)n, fmt, ap);
	va_end(ap);
	if ((size_t)n >= out_len)
		return -ENAMETOOLONG;
	return 0;
}

int home_check_name(const char *name, msb_error *err)
{
	size_t len = strlen(name);

	if (len == 0 || len > HOME_NAME_MAX)
		return err_set(err, -EINVAL, "invalid sandbox name \"%s\": use 1 to %d characters", name,
			       HOME_NAME_MAX);
	if (name[0] == '.' || name[0] == '-')
		return err_set(err, -EINVAL, "invalid sandbox name \"%s\": it must not start with '.' or '-'", name);
	for (const char *p = name; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		    *p == '-' || *p == '.')
			continue;
		return err_set(err, -EINVAL, "invalid sandbox name \"%s\": use letters, digits, '_', '-' and '.'",
			       name);
	}
	return 0;
}
