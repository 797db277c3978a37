/* Minimal JSON writing and flat-object reading. */
#include "json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_sequence_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* Reject overlong forms, surrogates and values above U+10FFFF. */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int json_append_string(struct buf *b, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	int rc = buf_append(b, "\"", 1);

	while (rc == 0 && i < len) {
		size_t seq = utf8_sequence_len(p + i, len - i);
		char esc[8];

		if (seq == 0) {
			rc = buf_append(b, "\xef\xbf\xbd", 3);
			i++;
			continue;
		}
		if (seq > 1) {
			rc = buf_append(b, p + i, seq);
		} else if (p[i] == '"' || p[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)p[i];
			rc = buf_append(b, esc, 2);
		} else if (p[i] == '\n') {
			rc = buf_append(b, "\\n", 2);
		} else if (p[i] == '\r') {
			rc = buf_append(b, "\\r", 2);
		} else if (p[i] == '\t') {
			rc = buf_append(b, "\\t", 2);
		} else if (p[i] < 0x20 || p[i] == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
			rc = buf_append(b, esc, 6);
		} else {
			rc = buf_append(b, p + i, 1);
		}
		i += seq;
	}
	if (rc == 0)
		rc = buf_append(b, "\"", 1);
	return rc;
}

int json_append_cstr(struct buf *b, const char *s)
{
	return json_append_string(b, s, strlen(s));
}

int json_append_raw(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

/* Points just past `"key":` and any spaces, or NULL. */
static const char *find_value(const char *json, const char *key)
{
	char pattern[128];
	const char *p;

	snprintf(pattern, sizeof(pattern), "\"%s\"", key);
	for (p = strstr(json, pattern); p; p = strstr(p + 1, pattern)) {
		const char *q = p + strlen(pattern);

		while (*q == ' ' || *q == '\t' || *q == '\n')
			q++;
		if (*q != ':')
			continue;
		q++;
		while (*q == ' ' || *q == '\t' || *q == '\n')
			q++;
		return q;
	}
	return NULL;
}

bool json_get_string(const char *json, const char *key, char *out, size_t out_len)
{
	const char *p = find_value(json, key);
	size_t n = 0;

	if (!p || *p != '"' || out_len == 0)
		return false;
	for (p++; *p && *p != '"'; p++) {
		char c = *p;

		if (c == '\\') {
			p++;
			switch (*p) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'u':
				/* Only the escapes this project writes: control
				 * characters, so one byte. */
				if (strnlen(p + 1, 4) < 4)
					return false;
				c = (char)strtol((char[]){ p[1], p[2], p[3], p[4], 0 }, NULL, 16);
				p += 4;
				break;
			case 0:
				return false;
			default:
				c = *p;
				break;
			}
		}
		if (n + 1 < out_len)
			out[n++] = c;
	}
	out[n] = 0;
	return *p == '"';
}

bool json_get_long(const char *json, const char *key, long *out)
{
	const char *p = find_value(json, key);
	char *end;

	if (!p)
		return false;
	*out = strtol(p, &end, 10);
	return end != p;
}
