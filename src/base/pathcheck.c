/* Checks of untrusted names, paths and symlink targets. */
#include "pathcheck.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *pathcheck_name(const char *name)
{
	if (!name[0])
		return "the name is empty";
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return "the name is \".\" or \"..\"";
	if (strchr(name, '/'))
		return "the name contains '/'";
	return NULL;
}

const char *pathcheck_child(const char *dir, const char *path, const char **name)
{
	size_t len = strlen(dir);

	if (strncmp(path, dir, len) != 0)
		return "the entry is not in the listed directory";
	if (len == 0 || dir[len - 1] != '/') {
		if (path[len] != '/')
			return "the entry is not in the listed directory";
		len++;
	}
	*name = path + len;
	return pathcheck_name(*name);
}

/* Appends one component to clean; false when it does not fit. */
static bool append_component(char *clean, size_t clean_len, size_t *used, const char *start, size_t n)
{
	size_t sep = *used ? 1 : 0;

	if (*used + sep + n + 1 > clean_len)
		return false;
	if (sep)
		clean[(*used)++] = '/';
	memcpy(clean + *used, start, n);
	*used += n;
	clean[*used] = 0;
	return true;
}

const char *pathcheck_relative(const char *path, size_t len, char *clean, size_t clean_len, unsigned *depth)
{
	size_t used = 0, i = 0;

	if (clean_len == 0)
		return "the path is too long";
	clean[0] = 0;
	*depth = 0;
	if (len == 0)
		return "the path is empty";
	if (memchr(path, 0, len))
		return "the path contains a NUL byte";
	if (path[0] == '/')
		return "the path is absolute";
	while (i < len) {
		size_t start = i;

		while (i < len && path[i] != '/')
			i++;
		if (i - start == 2 && path[start] == '.' && path[start + 1] == '.')
			return "the path contains a \"..\" component";
		if (i > start && !(i - start == 1 && path[start] == '.')) {
			if (!append_component(clean, clean_len, &used, path + start, i - start))
				return "the path is too long";
			(*depth)++;
		}
		i++; /* the '/' */
	}
	return NULL;
}

const char *pathcheck_link_target(const char *target, unsigned max_up)
{
	unsigned up = 0;
	bool after_name = false;
	const char *p = target;

	if (!target[0])
		return "the symlink target is empty";
	if (target[0] == '/')
		return "the symlink target is an absolute path";
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (after_name)
				return "the symlink target has \"..\" after a name, which may itself be a symlink";
			if (++up > max_up)
				return "the symlink target points outside the copied tree";
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			after_name = true;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	return NULL;
}

void pathcheck_quote(const char *s, char *out, size_t out_len)
{
	size_t used = 0;

	if (out_len == 0)
		return;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
		size_t need = plain ? 1 : 4;

		if (used + need + 1 > out_len)
			break;
		if (plain)
			out[used++] = (char)c;
		else
			used += (size_t)snprintf(out + used, out_len - used, "\\x%02x", c);
	}
	out[used] = 0;
}
