/* A set of strings: a hash table with chaining. */
#include "strset.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strset_node {
	struct strset_node *next;
	size_t len;
	char key[];
};

/* FNV-1a, 64 bits. */
static uint64_t hash_bytes(const char *key, size_t len)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* Doubles the table when it contains more keys than buckets. */
static int grow(struct strset *s)
{
	size_t n = s->n_buckets ? s->n_buckets * 2 : 64;
	struct strset_node **buckets = calloc(n, sizeof(*buckets));

	if (!buckets)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct strset_node *node = s->buckets[i], *next;

		for (; node; node = next) {
			size_t b = hash_bytes(node->key, node->len) % n;

			next = node->next;
			node->next = buckets[b];
			buckets[b] = node;
		}
	}
	free(s->buckets);
	s->buckets = buckets;
	s->n_buckets = n;
	return 0;
}

int strset_add(struct strset *s, const char *key)
{
	size_t len = strlen(key);
	struct strset_node *node;
	size_t b;

	if (strset_contains(s, key, len))
		return 0;
	if (s->count >= s->n_buckets && grow(s) < 0)
		return -ENOMEM;
	node = malloc(sizeof(*node) + len + 1);
	if (!node)
		return -ENOMEM;
	node->len = len;
	memcpy(node->key, key, len + 1);
	b = hash_bytes(key, len) % s->n_buckets;
	node->next = s->buckets[b];
	s->buckets[b] = node;
	s->count++;
	return 0;
}

bool strset_contains(const struct strset *s, const char *key, size_t len)
{
	if (!s->n_buckets)
		return false;
	for (struct strset_node *node = s->buckets[hash_bytes(key, len) % s->n_buckets]; node; node = node->next)
		if (node->len == len && memcmp(node->key, key, len) == 0)
			return true;
	return false;
}

void strset_free(struct strset *s)
{
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct strset_node *node = s->buckets[i], *next;

		for (; node; node = next) {
			next = node->next;
			free(node);
		}
	}
	free(s->buckets);
	memset(s, 0, sizeof(*s));
}
