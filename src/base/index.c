/* The SQLite index of sandboxes. */
#include "index.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "files.h"

struct index {
	sqlite3 *db;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS sandboxes ("
	" name TEXT PRIMARY KEY,"
	" state TEXT NOT NULL,"
	" stop_reason TEXT NOT NULL DEFAULT '',"
	" image TEXT NOT NULL DEFAULT '',"
	" cpus INTEGER NOT NULL,"
	" memory_mib INTEGER NOT NULL,"
	" disk_mib INTEGER NOT NULL DEFAULT 0,"
	" env BLOB NOT NULL DEFAULT x'',"
	" workdir TEXT NOT NULL DEFAULT '',"
	" idle_timeout_s INTEGER NOT NULL DEFAULT 0,"
	" max_duration_s INTEGER NOT NULL DEFAULT 0,"
	" ephemeral INTEGER NOT NULL DEFAULT 0,"
	" created_at INTEGER NOT NULL DEFAULT 0,"
	" started_at INTEGER NOT NULL DEFAULT 0,"
	" stopped_at INTEGER NOT NULL DEFAULT 0,"
	" pid INTEGER NOT NULL DEFAULT 0,"
	" pid_start_time INTEGER NOT NULL DEFAULT 0,"
	" boot_id TEXT NOT NULL DEFAULT '',"
	" accel TEXT NOT NULL DEFAULT '',"
	" mounts TEXT NOT NULL DEFAULT '')";

#define COLUMNS                                                                                              \
	"name, state, stop_reason, image, cpus, memory_mib, disk_mib, env, workdir, idle_timeout_s, "       \
	"max_duration_s, ephemeral, created_at, started_at, stopped_at, pid, pid_start_time, boot_id, accel, mounts"

static int db_error(struct index *idx, msb_error *err, const char *what)
{
	return err_set(err, -EIO, "%s in the sandbox index: %s", what, sqlite3_errmsg(idx->db));
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

int index_open(struct index **out, msb_error *err)
{
	char path[PATH_MAX], dir[PATH_MAX];
	struct index *idx;
	int rc;

	home_path(dir, sizeof(dir), "%s", "");
	rc = files_mkdir_p(dir, 0700);
	if (rc < 0)
		return err_sys(err, rc, "create %s", dir);
	home_path(path, sizeof(path), "index.db");

	idx = calloc(1, sizeof(*idx));
	if (!idx)
		return err_set(err, -ENOMEM, "out of memory");
	if (sqlite3_open_v2(path, &idx->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		rc = err_set(err, -EIO, "open the sandbox index %s: %s", path,
			     idx->db ? sqlite3_errmsg(idx->db) : "out of memory");
		index_close(idx);
		return rc;
	}
	sqlite3_busy_timeout(idx->db, INDEX_BUSY_TIMEOUT_MS);
	/* WAL lets readers (msb ls) run while a sandbox process writes. With
	 * synchronous=NORMAL a commit waits for no fsync; a host crash may
	 * lose the last state changes but never corrupts the index, and a
	 * lost "running" is corrected by index_reconcile(). */
	sqlite3_exec(idx->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	sqlite3_exec(idx->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	if (sqlite3_exec(idx->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_error(idx, err, "create the schema");
		index_close(idx);
		return rc;
	}
	/* Indexes made before mounts existed get the column; the error for
	 * one that has it already is expected. */
	sqlite3_exec(idx->db, "ALTER TABLE sandboxes ADD COLUMN mounts TEXT NOT NULL DEFAULT ''", NULL, NULL, NULL);
	*out = idx;
	return 0;
}

void index_close(struct index *idx)
{
	if (!idx)
		return;
	sqlite3_close(idx->db);
	free(idx);
}

static void copy_text(char *out, size_t len, const unsigned char *text)
{
	snprintf(out, len, "%s", text ? (const char *)text : "");
}

static int read_row(sqlite3_stmt *st, struct sandbox_record *r)
{
	const void *env = sqlite3_column_blob(st, 7);
	int env_len = sqlite3_column_bytes(st, 7);

	memset(r, 0, sizeof(*r));
	copy_text(r->name, sizeof(r->name), sqlite3_column_text(st, 0));
	copy_text(r->state, sizeof(r->state), sqlite3_column_text(st, 1));
	copy_text(r->stop_reason, sizeof(r->stop_reason), sqlite3_column_text(st, 2));
	copy_text(r->image, sizeof(r->image), sqlite3_column_text(st, 3));
	r->cpus = (unsigned)sqlite3_column_int(st, 4);
	r->memory_mib = (unsigned)sqlite3_column_int(st, 5);
	r->disk_mib = (unsigned)sqlite3_column_int(st, 6);
	if (env_len > 0) {
		r->env = malloc((size_t)env_len);
		if (!r->env)
			return -ENOMEM;
		memcpy(r->env, env, (size_t)env_len);
		r->env_len = (size_t)env_len;
	}
	copy_text(r->workdir, sizeof(r->workdir), sqlite3_column_text(st, 8));
	r->idle_timeout_s = (unsigned)sqlite3_column_int(st, 9);
	r->max_duration_s = (unsigned)sqlite3_column_int(st, 10);
	r->ephemeral = sqlite3_column_int(st, 11) != 0;
	r->created_at = sqlite3_column_int64(st, 12);
	r->started_at = sqlite3_column_int64(st, 13);
	r->stopped_at = sqlite3_column_int64(st, 14);
	r->pid = sqlite3_column_int(st, 15);
	r->pid_start_time = (uint64_t)sqlite3_column_int64(st, 16);
	copy_text(r->boot_id, sizeof(r->boot_id), sqlite3_column_text(st, 17));
	copy_text(r->accel, sizeof(r->accel), sqlite3_column_text(st, 18));
	if (sqlite3_column_text(st, 19)) {
		r->mounts = strdup((const char *)sqlite3_column_text(st, 19));
		if (!r->mounts)
			return -ENOMEM;
	}
	return 0;
}

int index_insert(struct index *idx, const struct sandbox_record *r, msb_error *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(idx->db,
			       "INSERT INTO sandboxes (name, state, image, cpus, memory_mib, disk_mib, env, workdir, "
			       "idle_timeout_s, max_duration_s, ephemeral, created_at, mounts) "
			       "VALUES (?, 'creating', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return db_error(idx, err, "prepare insert");
	sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->image, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)r->cpus);
	sqlite3_bind_int(st, 4, (int)r->memory_mib);
	sqlite3_bind_int(st, 5, (int)r->disk_mib);
	sqlite3_bind_blob(st, 6, r->env ? r->env : "", (int)r->env_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, r->workdir, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 8, (int)r->idle_timeout_s);
	sqlite3_bind_int(st, 9, (int)r->max_duration_s);
	sqlite3_bind_int(st, 10, r->ephemeral);
	sqlite3_bind_int64(st, 11, now_s());
	sqlite3_bind_text(st, 12, r->mounts ? r->mounts : "", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT)
		return err_set(err, -EEXIST, "sandbox %s already exists; remove it with `msb rm %s` or pick another name",
			       r->name, r->name);
	if (rc != SQLITE_DONE)
		return db_error(idx, err, "insert");
	return 0;
}

int index_get(struct index *idx, const char *name, struct sandbox_record *rec, msb_error *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(idx->db, "SELECT " COLUMNS " FROM sandboxes WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
		return db_error(idx, err, "prepare lookup");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		rc = read_row(st, rec) < 0 ? err_set(err, -ENOMEM, "out of memory") : 0;
	} else if (rc == SQLITE_DONE) {
		rc = err_set(err, -ENOENT, "no sandbox named %s; `msb ls` lists them", name);
	} else {
		rc = db_error(idx, err, "look up");
	}
	sqlite3_finalize(st);
	return rc;
}

int index_list(struct index *idx, struct sandbox_record **recs, size_t *count, msb_error *err)
{
	struct sandbox_record *list = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(idx->db, "SELECT " COLUMNS " FROM sandboxes ORDER BY name", -1, &st, NULL) != SQLITE_OK)
		return db_error(idx, err, "prepare list");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			struct sandbox_record *bigger = realloc(list, (cap = cap ? cap * 2 : 16) * sizeof(*list));

			if (!bigger) {
				rc = SQLITE_NOMEM;
				break;
			}
			list = bigger;
		}
		if (read_row(st, &list[n]) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		index_free_records(list, n);
		return rc == SQLITE_NOMEM ? err_set(err, -ENOMEM, "out of memory") : db_error(idx, err, "list");
	}
	*recs = list;
	*count = n;
	return 0;
}

void index_record_free(struct sandbox_record *rec)
{
	free(rec->env);
	free(rec->mounts);
	rec->env = NULL;
	rec->mounts = NULL;
	rec->env_len = 0;
}

void index_free_records(struct sandbox_record *recs, size_t count)
{
	for (size_t i = 0; i < count; i++)
		index_record_free(&recs[i]);
	free(recs);
}

/* Runs one statement whose only parameter is a sandbox name; returns the
 * number of rows changed or a negative errno. */
static int update_by_name(struct index *idx, msb_error *err, const char *sql, const char *name)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_error(idx, err, "prepare update");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(idx, err, "update");
	return sqlite3_changes(idx->db);
}

int index_claim_start(struct index *idx, const char *name, msb_error *err)
{
	struct sandbox_record rec;
	int rc;

	rc = update_by_name(idx, err,
			    "UPDATE sandboxes SET state = 'creating', stop_reason = '' WHERE name = ? AND state IN "
			    "('stopped', 'crashed')",
			    name);
	if (rc != 0)
		return rc < 0 ? rc : 0;

	/* Nothing changed: report why. */
	rc = index_get(idx, name, &rec, err);
	if (rc < 0)
		return rc;
	index_record_free(&rec);
	return err_set(err, -EBUSY, "sandbox %s is %s; only a stopped sandbox can be started", name, rec.state);
}

int index_set_process(struct index *idx, const char *name, int pid, uint64_t pid_start_time, const char *boot_id,
		      msb_error *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(idx->db,
			       "UPDATE sandboxes SET pid = ?, pid_start_time = ?, boot_id = ? WHERE name = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return db_error(idx, err, "prepare update");
	sqlite3_bind_int(st, 1, pid);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)pid_start_time);
	sqlite3_bind_text(st, 3, boot_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_error(idx, err, "update");
}

int index_set_running(struct index *idx, const char *name, const char *accel, msb_error *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(idx->db,
			       "UPDATE sandboxes SET state = 'running', stop_reason = '', accel = ?, started_at = ? "
			       "WHERE name = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return db_error(idx, err, "prepare update");
	sqlite3_bind_text(st, 1, accel, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_s());
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_error(idx, err, "update");
}

int index_set_state(struct index *idx, const char *name, const char *state, const char *reason, msb_error *err)
{
	bool ended = strcmp(state, STATE_STOPPED) == 0 || strcmp(state, STATE_CRASHED) == 0;
	sqlite3_stmt *st;
	int rc;

	/* An ended sandbox has no process; its stop time is recorded. */
	if (sqlite3_prepare_v2(idx->db,
			       ended ? "UPDATE sandboxes SET state = ?1, stop_reason = ?2, pid = 0, stopped_at = ?3 "
				       "WHERE name = ?4"
				     : "UPDATE sandboxes SET state = ?1, stop_reason = ?2 WHERE name = ?4",
			       -1, &st, NULL) != SQLITE_OK)
		return db_error(idx, err, "prepare update");
	sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, reason ? reason : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_s());
	sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_error(idx, err, "update");
}

int index_delete(struct index *idx, const char *name, msb_error *err)
{
	int rc = update_by_name(idx, err, "DELETE FROM sandboxes WHERE name = ?", name);

	return rc < 0 ? rc : 0;
}

uint64_t index_process_start_time(int pid)
{
	char path[64], *stat, *p;
	uint64_t start = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (files_read_all(path, 4096, &stat, NULL) < 0)
		return 0;
	/* Fields count from the one after the command name, which may itself
	 * hold spaces and parentheses. Field 3 is the state: a zombie has
	 * ended, though its entry stays until its parent (often init, which
	 * may be slow to) reaps it. Field 22 is the start time. */
	p = strrchr(stat, ')');
	if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')) {
		free(stat);
		return 0;
	}
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		start = strtoull(p + 1, NULL, 10);
	free(stat);
	return start;
}

void index_boot_id(char *out, size_t len)
{
	char *data;

	out[0] = 0;
	if (files_read_all("/proc/sys/kernel/random/boot_id", 128, &data, NULL) == 0) {
		data[strcspn(data, "\n")] = 0;
		snprintf(out, len, "%s", data);
		free(data);
	}
}

bool index_process_alive(int pid, uint64_t start_time)
{
	return pid > 0 && index_process_start_time(pid) == start_time && start_time != 0;
}

bool index_reconcile(struct index *idx, struct sandbox_record *rec)
{
	char boot_id[40];
	const char *reason;
	const char *state;

	if (strcmp(rec->state, STATE_STOPPED) == 0 || strcmp(rec->state, STATE_CRASHED) == 0)
		return false;
	index_boot_id(boot_id, sizeof(boot_id));
	if (rec->boot_id[0] && strcmp(rec->boot_id, boot_id) != 0) {
		/* The host rebooted under it: stopped, not crashed. */
		state = STATE_STOPPED;
		reason = REASON_HOST_REBOOT;
	} else if (rec->pid > 0 && index_process_alive(rec->pid, rec->pid_start_time)) {
		return false;
	} else if (strcmp(rec->state, STATE_CREATING) == 0 && rec->pid == 0 &&
		   time(NULL) - rec->created_at < INDEX_UNCLAIMED_MAX_S) {
		/* Its starter has not started the sandbox process yet. */
		return false;
	} else if (strcmp(rec->state, STATE_CREATING) == 0 && rec->pid == 0) {
		/* No sandbox process ever claimed it: its starter died. */
		state = STATE_CRASHED;
		reason = REASON_BOOT_FAILURE;
	} else {
		state = STATE_CRASHED;
		reason = REASON_CRASH;
	}
	if (index_set_state(idx, rec->name, state, reason, NULL) == 0) {
		snprintf(rec->state, sizeof(rec->state), "%s", state);
		snprintf(rec->stop_reason, sizeof(rec->stop_reason), "%s", reason);
		rec->pid = 0;
	}
	return true;
}
