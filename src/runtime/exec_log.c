/* exec.log writer. */
#include "exec_log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/json.h"
#include "../proto/msg.h"
#include "log.h"

/* The longest UTF-8 sequence is 4 bytes, so at most 3 can be left over
 * from a chunk. */
#define UTF8_CARRY_MAX 3

struct exec_log_session {
	uint32_t id;
	uint64_t seq;
	bool tty;
	uint8_t carry[2][UTF8_CARRY_MAX]; /* per stream: stdout, stderr */
	size_t carry_len[2];
	size_t logged[2];
	struct exec_log_session *next;
};

struct exec_log {
	struct log_file file;
	struct exec_log_session *sessions;
	uint64_t next_seq;
};

struct exec_log *exec_log_open(const char *path)
{
	struct exec_log *el = calloc(1, sizeof(*el));

	if (!el)
		return NULL;
	el->file.fd = -1;
	if (log_file_open(&el->file, path) < 0) {
		free(el);
		return NULL;
	}
	return el;
}

void exec_log_close(struct exec_log *el)
{
	if (!el)
		return;
	while (el->sessions) {
		struct exec_log_session *s = el->sessions;

		el->sessions = s->next;
		free(s);
	}
	log_file_close(&el->file);
	free(el);
}

static struct exec_log_session *find(struct exec_log *el, uint32_t id, struct exec_log_session ***link)
{
	for (struct exec_log_session **p = &el->sessions; *p; p = &(*p)->next) {
		if ((*p)->id == id) {
			if (link)
				*link = p;
			return *p;
		}
	}
	return NULL;
}

static void write_line(struct exec_log *el, const struct exec_log_session *s, const char *stream, const char *text,
		       size_t len)
{
	struct buf line;
	char stamp[40], id_text[64];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (int)strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof(stamp) - (size_t)n, ".%03ldZ", ts.tv_nsec / 1000000);
	snprintf(id_text, sizeof(id_text), "%u, \"seq\": %llu", s->id, (unsigned long long)s->seq);

	buf_init(&line);
	json_append_raw(&line, "{\"t\": ");
	json_append_cstr(&line, stamp);
	json_append_raw(&line, ", \"s\": ");
	json_append_cstr(&line, stream);
	json_append_raw(&line, ", \"d\": ");
	json_append_string(&line, text, len);
	json_append_raw(&line, ", \"id\": ");
	json_append_raw(&line, id_text);
	json_append_raw(&line, "}\n");
	log_file_write(&el->file, buf_peek(&line), buf_pending(&line));
	buf_free(&line);
}

/* How many bytes at the end of data start a UTF-8 sequence that the chunk
 * cuts short. */
static size_t incomplete_tail(const uint8_t *data, size_t len)
{
	for (size_t back = 1; back <= UTF8_CARRY_MAX && back <= len; back++) {
		uint8_t c = data[len - back];
		size_t need;

		if ((c & 0xc0) == 0x80)
			continue; /* a continuation byte: look further back */
		if ((c & 0xe0) == 0xc0)
			need = 2;
		else if ((c & 0xf0) == 0xe0)
			need = 3;
		else if ((c & 0xf8) == 0xf0)
			need = 4;
		else
			return 0;
		return need > back ? back : 0;
	}
	return 0;
}

static void log_output(struct exec_log *el, struct exec_log_session *s, int stream, struct span data)
{
	const char *name = s->tty ? "output" : stream == 0 ? "stdout" : "stderr";
	size_t carried = s->carry_len[stream];
	size_t total, keep;
	uint8_t *joined;

	if (s->logged[stream] >= EXEC_LOG_STREAM_MAX_BYTES)
		return;
	s->logged[stream] += data.len;
	if (s->logged[stream] >= EXEC_LOG_STREAM_MAX_BYTES) {
		char note[128];

		snprintf(note, sizeof(note), "%s beyond %d bytes is not logged", name, EXEC_LOG_STREAM_MAX_BYTES);
		write_line(el, s, "system", note, strlen(note));
		return;
	}
	total = carried + data.len;
	joined = malloc(total ? total : 1);
	if (!joined)
		return;
	memcpy(joined, s->carry[stream], carried);
	if (data.len)
		memcpy(joined + carried, data.ptr, data.len);

	keep = incomplete_tail(joined, total);
	if (total > keep)
		write_line(el, s, name, (const char *)joined, total - keep);
	memcpy(s->carry[stream], joined + total - keep, keep);
	s->carry_len[stream] = keep;
	free(joined);
}

/* Appends " word", single-quoted as a shell would need it when it contains
 * anything but plain characters, so that arguments stay distinct. */
static void append_quoted(struct buf *b, struct span word)
{
	bool plain = word.len > 0;

	for (size_t i = 0; i < word.len && plain; i++) {
		uint8_t c = word.ptr[i];

		plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			strchr("/._-=+:,@%", c) != NULL;
	}
	buf_append(b, " ", 1);
	if (plain) {
		buf_append(b, word.ptr, word.len);
		return;
	}
	buf_append(b, "'", 1);
	for (size_t i = 0; i < word.len; i++) {
		if (word.ptr[i] == '\'')
			buf_append(b, "'\\''", 4);
		else
			buf_append(b, &word.ptr[i], 1);
	}
	buf_append(b, "'", 1);
}

void exec_log_request(struct exec_log *el, const uint8_t *frame, size_t len)
{
	struct exec_log_session *s;
	struct buf text;
	struct msg m;

	if (!el || msg_decode(frame, len, &m) < 0 || m.type != MSG_EXEC_REQUEST) {
		if (el)
			msg_free(&m);
		return;
	}
	s = find(el, m.id, NULL);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			msg_free(&m);
			return;
		}
		s->id = m.id;
		s->seq = ++el->next_seq;
		s->next = el->sessions;
		el->sessions = s;
	}
	s->tty = m.u.exec_request.tty;

	buf_init(&text);
	buf_append(&text, "exec started:", 13);
	append_quoted(&text, m.u.exec_request.cmd);
	for (size_t i = 0; i < m.u.exec_request.n_args; i++)
		append_quoted(&text, m.u.exec_request.args[i]);
	write_line(el, s, "system", (const char *)buf_peek(&text), buf_pending(&text));
	buf_free(&text);
	msg_free(&m);
}

static void end_session(struct exec_log *el, struct exec_log_session *s, struct exec_log_session **link,
			const char *text)
{
	/* Bytes left in a carry never completed a character. */
	for (int stream = 0; stream < 2; stream++) {
		if (s->carry_len[stream]) {
			const char *name = s->tty ? "output" : stream == 0 ? "stdout" : "stderr";

			write_line(el, s, name, (const char *)s->carry[stream], s->carry_len[stream]);
		}
	}
	if (text)
		write_line(el, s, "system", text, strlen(text));
	*link = s->next;
	free(s);
}

void exec_log_guest_frame(struct exec_log *el, const uint8_t *frame, size_t len)
{
	struct exec_log_session *s, **link;
	char text[700];
	struct msg m;

	if (!el || msg_decode(frame, len, &m) < 0)
		return;
	s = find(el, m.id, &link);
	if (!s) {
		msg_free(&m);
		return;
	}
	switch (m.type) {
	case MSG_EXEC_STDOUT:
		log_output(el, s, 0, m.u.data.data);
		break;
	case MSG_EXEC_STDERR:
		log_output(el, s, 1, m.u.data.data);
		break;
	case MSG_EXEC_EXITED:
		if (m.u.exec_exited.signal.set)
			snprintf(text, sizeof(text), "exec exited: killed by signal %d", m.u.exec_exited.signal.v);
		else
			snprintf(text, sizeof(text), "exec exited: code %d", m.u.exec_exited.code);
		end_session(el, s, link, text);
		break;
	case MSG_EXEC_FAILED:
		snprintf(text, sizeof(text), "exec failed: %.*s: %.*s", (int)m.u.exec_failed.kind.len,
			 (const char *)m.u.exec_failed.kind.ptr, (int)m.u.exec_failed.message.len,
			 (const char *)m.u.exec_failed.message.ptr);
		end_session(el, s, link, text);
		break;
	default:
		break;
	}
	msg_free(&m);
}

void exec_log_forget(struct exec_log *el, uint32_t id)
{
	struct exec_log_session *s, **link;

	if (!el)
		return;
	s = find(el, id, &link);
	if (s)
		end_session(el, s, link, "exec ended: its client disconnected");
}
