/* A set of strings: a hash table with chaining that grows as it fills. */
#ifndef MSB_CLI_STRSET_H
#define MSB_CLI_STRSET_H

#include <stdbool.h>
#include <stddef.h>

struct strset_node;

struct strset {
	struct strset_node **buckets;
	size_t n_buckets, count;
};

/* Adds a copy of key; returns 0 or -ENOMEM. */
int strset_add(struct strset *s, const char *key);
/* Whether the len bytes at key are in the set. */
bool strset_contains(const struct strset *s, const char *key, size_t len);
void strset_free(struct strset *s);

#endif
