/* The sandbox index: rows, name races, and the correction of rows whose
 * process is gone (a crash, a host reboot). Each test uses its own
 * MSB_HOME in a temporary directory. */
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/base/files.h"
#include "../../src/base/index.h"
#include "test.h"

struct temp_home {
	char dir[64];
	char *saved;
};

static void home_enter(struct temp_home *h)
{
	const char *old = getenv("MSB_HOME");

	h->saved = old ? strdup(old) : NULL;
	snprintf(h->dir, sizeof(h->dir), "/tmp/msb-index-test-XXXXXX");
	CHECK(mkdtemp(h->dir) != NULL);
	setenv("MSB_HOME", h->dir, 1);
}

static void home_leave(struct temp_home *h)
{
	files_remove_tree(h->dir);
	if (h->saved)
		setenv("MSB_HOME", h->saved, 1);
	else
		unsetenv("MSB_HOME");
	free(h->saved);
}

static void record_init(struct sandbox_record *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->cpus = 1;
	r->memory_mib = 512;
}

/* Inserts name and marks it running as process pid with boot id boot_id. */
static void insert_running(struct index *idx, const char *name, int pid, uint64_t start_time, const char *boot_id)
{
	struct sandbox_record r;

	record_init(&r, name);
	CHECK_INT_EQ(index_insert(idx, &r, NULL), 0);
	CHECK_INT_EQ(index_set_process(idx, name, pid, start_time, boot_id, NULL), 0);
	CHECK_INT_EQ(index_set_running(idx, name, "tcg", NULL), 0);
}

TEST(index_insert_twice_rejected)
{
	struct temp_home h;
	struct sandbox_record r;
	struct index *idx;
	msb_error err;

	home_enter(&h);
	CHECK_INT_EQ(index_open(&idx, NULL), 0);
	record_init(&r, "dup");
	CHECK_INT_EQ(index_insert(idx, &r, NULL), 0);
	CHECK_INT_EQ(index_insert(idx, &r, &err), -EEXIST);
	CHECK(strstr(err.message, "already exists") != NULL);
	index_close(idx);
	home_leave(&h);
}

TEST(index_reconcile_live_process_kept)
{
	struct temp_home h;
	struct sandbox_record r;
	struct index *idx;
	char boot_id[40];

	home_enter(&h);
	index_boot_id(boot_id, sizeof(boot_id));
	CHECK_INT_EQ(index_open(&idx, NULL), 0);
	/* This test process serves as a live sandbox process. */
	insert_running(idx, "live", (int)getpid(), index_process_start_time((int)getpid()), boot_id);
	CHECK_INT_EQ(index_get(idx, "live", &r, NULL), 0);
	CHECK(!index_reconcile(idx, &r));
	CHECK_STR_EQ(r.state, STATE_RUNNING);
	index_record_free(&r);
	index_close(idx);
	home_leave(&h);
}

TEST(index_reconcile_dead_process_crashed)
{
	struct temp_home h;
	struct sandbox_record r;
	struct index *idx;
	char boot_id[40];
	pid_t child = fork();

	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0);

	home_enter(&h);
	index_boot_id(boot_id, sizeof(boot_id));
	CHECK_INT_EQ(index_open(&idx, NULL), 0);
	insert_running(idx, "gone", (int)child, 12345, boot_id);
	CHECK_INT_EQ(index_get(idx, "gone", &r, NULL), 0);
	CHECK(index_reconcile(idx, &r));
	index_record_free(&r);
	/* The correction is stored, not only returned. */
	CHECK_INT_EQ(index_get(idx, "gone", &r, NULL), 0);
	CHECK_STR_EQ(r.state, STATE_CRASHED);
	CHECK_STR_EQ(r.stop_reason, REASON_CRASH);
	CHECK_INT_EQ(r.pid, 0);
	index_record_free(&r);
	index_close(idx);
	home_leave(&h);
}

TEST(index_reconcile_after_host_reboot)
{
	struct temp_home h;
	struct sandbox_record r;
	struct index *idx;

	home_enter(&h);
	CHECK_INT_EQ(index_open(&idx, NULL), 0);
	/* A boot id other than this host's: the row is from before a
	 * reboot, whatever process now has that pid. */
	insert_running(idx, "rebooted", (int)getpid(), index_process_start_time((int)getpid()),
		       "00000000-0000-0000-0000-000000000000");
	CHECK_INT_EQ(index_get(idx, "rebooted", &r, NULL), 0);
	CHECK(index_reconcile(idx, &r));
	index_record_free(&r);
	CHECK_INT_EQ(index_get(idx, "rebooted", &r, NULL), 0);
	CHECK_STR_EQ(r.state, STATE_STOPPED);
	CHECK_STR_EQ(r.stop_reason, REASON_HOST_REBOOT);
	index_record_free(&r);
	index_close(idx);
	home_leave(&h);
}

TEST(index_reused_pid_not_alive)
{
	/* A pid that now belongs to another process (a different start
	 * time) is not the sandbox process. */
	CHECK(!index_process_alive((int)getpid(), index_process_start_time((int)getpid()) + 1));
	CHECK(index_process_alive((int)getpid(), index_process_start_time((int)getpid())));
}

TEST(index_claim_start_only_stopped)
{
	struct temp_home h;
	struct sandbox_record r;
	struct index *idx;
	msb_error err;

	home_enter(&h);
	CHECK_INT_EQ(index_open(&idx, NULL), 0);
	record_init(&r, "claim");
	CHECK_INT_EQ(index_insert(idx, &r, NULL), 0);
	/* Still creating: a second start must not claim it too. */
	CHECK_INT_EQ(index_claim_start(idx, "claim", &err), -EBUSY);
	CHECK(strstr(err.message, "creating") != NULL);
	CHECK_INT_EQ(index_set_state(idx, "claim", STATE_STOPPED, REASON_STOP, NULL), 0);
	CHECK_INT_EQ(index_claim_start(idx, "claim", NULL), 0);
	CHECK_INT_EQ(index_claim_start(idx, "claim", NULL), -EBUSY);
	index_close(idx);
	home_leave(&h);
}
