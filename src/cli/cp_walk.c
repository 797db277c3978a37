/* msb cp: walks a guest tree for a visitor and checks every name the
 * guest sends before passing it on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../base/pathcheck.h"
#include "cli.h"
#include "cp.h"

/* Guest paths are at most PATH_MAX (4096) bytes, so a real tree has at
 * most about 2048 levels. The cap stops a lying agent's endless nesting. */
#define CP_MAX_DEPTH 2048

struct walk {
	msb_client *c;
	const char *sandbox;
	const struct cp_walk_ops *ops;
	void *data;
	msb_error *err;
};

/* A listing entry without msb_file_info's 4 KiB path buffer, so that the
 * listings held along a deep path stay small. */
struct node {
	char *name;
	enum cp_kind kind;
	uint32_t mode, uid, gid;
	uint64_t size;
	int64_t mtime, atime;
};

static enum cp_kind kind_of(const char *kind)
{
	if (strcmp(kind, "file") == 0)
		return CP_FILE;
	if (strcmp(kind, "dir") == 0)
		return CP_DIR;
	if (strcmp(kind, "symlink") == 0)
		return CP_SYMLINK;
	return CP_OTHER;
}

static void fill_node(struct node *n, const msb_file_info *info)
{
	n->kind = kind_of(info->kind);
	n->mode = info->mode & 07777;
	n->uid = info->uid;
	n->gid = info->gid;
	n->size = info->size;
	n->mtime = info->mtime;
	n->atime = info->atime;
}

static void free_nodes(struct node *nodes, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(nodes[i].name);
	free(nodes);
}

static int compare_nodes(const void *a, const void *b)
{
	return strcmp(((const struct node *)a)->name, ((const struct node *)b)->name);
}

/* Lists dir into nodes sorted by name; every entry must be a valid name
 * directly in dir.
 * NOTE: msb_fs_list returns the whole directory in one frame of at most
 * 4 MiB. With a larger listing (tens of thousands of entries) the agent
 * drops the response and the call never returns. */
static int list_nodes(struct walk *w, const char *dir, struct node **out, size_t *count)
{
	msb_file_info *infos;
	struct node *nodes;
	size_t n;
	int rc = msb_fs_list(w->c, dir, &infos, &n, w->err);

	if (rc < 0)
		return rc;
	nodes = calloc(n ? n : 1, sizeof(*nodes));
	for (size_t i = 0; nodes && i < n; i++) {
		const char *name, *reason = pathcheck_child(dir, infos[i].path, &name);

		if (reason) {
			rc = cp_reject(w->err, "the guest", infos[i].path, reason);
			break;
		}
		nodes[i].name = strdup(name);
		if (!nodes[i].name) {
			rc = err_set(w->err, -ENOMEM, "out of memory");
			break;
		}
		fill_node(&nodes[i], &infos[i]);
	}
	free(infos);
	if (!nodes)
		return err_set(w->err, -ENOMEM, "out of memory");
	if (rc < 0) {
		free_nodes(nodes, n);
		return rc;
	}
	qsort(nodes, n, sizeof(*nodes), compare_nodes);
	*out = nodes;
	*count = n;
	return 0;
}

static int walk_entry(struct walk *w, struct cp_entry *e);

static int walk_child(struct walk *w, const struct cp_entry *parent, const struct node *n)
{
	struct cp_entry child = {
		.name = n->name, .depth = parent->depth + 1, .kind = n->kind, .mode = n->mode, .uid = n->uid,
		.gid = n->gid, .size = n->size, .mtime = n->mtime, .atime = n->atime,
	};
	char *guest_path = cp_join(parent->guest_path, n->name);
	char *rel_path = cp_join(parent->rel_path, n->name);
	int rc;

	if (guest_path && rel_path) {
		child.guest_path = guest_path;
		child.rel_path = rel_path;
		rc = walk_entry(w, &child);
	} else {
		rc = err_set(w->err, -ENOMEM, "out of memory");
	}
	free(guest_path);
	free(rel_path);
	return rc;
}

static int walk_dir(struct walk *w, struct cp_entry *e)
{
	struct node *nodes = NULL;
	size_t count = 0;
	int rc;

	if (e->depth >= CP_MAX_DEPTH)
		return err_set(w->err, -ELOOP, "%s:%s is nested deeper than %d levels", w->sandbox, e->guest_path,
			       CP_MAX_DEPTH);
	rc = w->ops->dir_enter(w->data, e, w->err);
	if (rc < 0)
		return rc;
	rc = list_nodes(w, e->guest_path, &nodes, &count);
	if (rc < 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < count; i++)
		rc = walk_child(w, e, &nodes[i]);
	free_nodes(nodes, count);
	if (rc < 0)
		return rc;
	return w->ops->dir_leave(w->data, e, w->err);
}

static int walk_symlink(struct walk *w, struct cp_entry *e)
{
	char *target;
	int rc = msb_fs_readlink(w->c, e->guest_path, &target, w->err);

	if (rc < 0)
		return rc;
	e->link_target = target;
	rc = w->ops->symlink(w->data, e, w->err);
	e->link_target = NULL;
	free(target);
	return rc;
}

static int walk_entry(struct walk *w, struct cp_entry *e)
{
	char quoted[256];

	switch (e->kind) {
	case CP_FILE:
		return w->ops->file(w->data, e, w->err);
	case CP_DIR:
		return walk_dir(w, e);
	case CP_SYMLINK:
		return walk_symlink(w, e);
	default:
		pathcheck_quote(e->guest_path, quoted, sizeof(quoted));
		fprintf(stderr, "msb: warning: skipping %s:%s: not a file, directory or symlink\n", w->sandbox, quoted);
		return 0;
	}
}

int cp_walk_guest(msb_client *c, const char *sandbox, const char *src, const char *top_name,
		  const struct cp_walk_ops *ops, void *data, msb_error *err)
{
	struct walk w = { .c = c, .sandbox = sandbox, .ops = ops, .data = data, .err = err };
	struct cp_entry top = { .guest_path = src, .rel_path = top_name, .name = top_name };
	msb_file_info info;
	struct node n;
	int rc = msb_fs_stat(c, src, true, &info, err);

	if (rc < 0)
		return rc;
	fill_node(&n, &info);
	top.kind = n.kind;
	top.mode = n.mode;
	top.uid = n.uid;
	top.gid = n.gid;
	top.size = n.size;
	top.mtime = n.mtime;
	top.atime = n.atime;
	if (top.kind == CP_OTHER)
		return err_set(err, -EINVAL, "%s:%s is not a file, directory or symlink; msb cp copies only those",
			       sandbox, src);
	return walk_entry(&w, &top);
}
