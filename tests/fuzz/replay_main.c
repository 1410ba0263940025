/* replay_main.c — runs a harness's LLVMFuzzerTestOneInput on every file
 * of its corpus, without libFuzzer, so that any compiler (gcc in CI)
 * replays the corpus under ASan + UBSan or valgrind.
 *
 *   test_fuzz_replay_<name> [FILE|DIR]...
 *
 * With no argument it replays FUZZ_CORPUS_DIR, the harness's checked-in
 * corpus (scripts/test's valgrind pass runs the program bare). Each input
 * is a malloc'd copy of exactly its size, so that a read past its end is
 * caught. Exit 0 when every input ran; a failed check aborts. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_CORPUS_DIR
#error "FUZZ_CORPUS_DIR must name the harness's corpus directory"
#endif

/* Reads the whole file path into a malloc'd buffer of exactly its size
 * (1 byte for an empty file, *len 0). Returns NULL on error. */
static uint8_t *read_whole(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n = 0;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto fail;
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
		goto fail;
	fclose(f);
	*len = (size_t)n;
	return buf;
fail:
	free(buf);
	fclose(f);
	return NULL;
}

static int replay_file(const char *path)
{
	size_t len = 0;
	uint8_t *buf = read_whole(path, &len);

	if (buf == NULL) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	printf("replay: %s (%zu bytes)\n", path, len);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of dir, sorted so that a replay is always the same. */
static char **list_dir(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL, **grown;
	size_t cap = 0;

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			grown = realloc(names, cap * sizeof(*names));
			if (grown == NULL)
				break;
			names = grown;
		}
		names[(*n)++] = strdup(e->d_name);
	}
	closedir(d);
	if (names != NULL)
		qsort(names, *n, sizeof(*names), by_name);
	return names;
}

/* Replays every file of dir; returns how many, or -1. */
static long replay_dir(const char *dir)
{
	size_t n = 0, i;
	char **names = list_dir(dir, &n);
	char path[4096];
	long count = 0;

	if (names == NULL && n == 0) {
		fprintf(stderr, "replay: cannot list %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (count >= 0 && replay_file(path) == 0)
			count++;
		else
			count = -1;
		free(names[i]);
	}
	free(names);
	return count;
}

static long replay_path(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return replay_dir(path);
	return replay_file(path) == 0 ? 1 : -1;
}

int main(int argc, char **argv)
{
	long total = 0, n;
	int i;

	if (argc < 2)
		total = replay_path(FUZZ_CORPUS_DIR);
	for (i = 1; i < argc && total >= 0; i++) {
		n = replay_path(argv[i]);
		total = n < 0 ? -1 : total + n;
	}
	if (total <= 0) {
		fprintf(stderr, "replay: %s\n", total < 0 ? "failed" : "no input found");
		return 1;
	}
	printf("replay: %ld inputs, no failure\n", total);
	return 0;
}
