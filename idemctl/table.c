/* table.c — see table.h: rows of text printed with aligned columns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"
#include "xalloc.h"

void table_add(struct table *t, const char *const *row)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = xrealloc(t->cells, (size_t)t->cap * (size_t)t->ncols * sizeof(char *));
	}
	for (int i = 0; i < t->ncols; i++) {
		char *cell = xstrdup(row[i] ? row[i] : "");
		int w = (int)strlen(cell);

		t->cells[t->nrows * t->ncols + i] = cell;
		if (w > t->width[i])
			t->width[i] = w;
	}
	t->nrows++;
}

void table_line(struct table *t, const char *text)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = xrealloc(t->cells, (size_t)t->cap * (size_t)t->ncols * sizeof(char *));
	}
	t->cells[t->nrows * t->ncols] = xstrdup(text);
	for (int i = 1; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = NULL;
	t->nrows++;
}

void table_init(struct table *t, int ncols, const char *const *heads)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	if (heads != NULL)
		table_add(t, heads);
}

void table_print(struct table *t)
{
	for (int r = 0; r < t->nrows; r++) {
		char **row = t->cells + r * t->ncols;
		int last = t->ncols - 1;

		if (t->ncols > 1 && row[1] == NULL) {
			printf("%s\n", row[0]);
			free(row[0]);
			continue;
		}
		while (last > 0 && row[last][0] == '\0')
			last--;
		for (int i = 0; i <= last; i++)
			printf("%-*s%s", i < last ? t->width[i] : 0, row[i],
			       i < last ? "  " : "\n");
		for (int i = 0; i < t->ncols; i++)
			free(row[i]);
	}
	free(t->cells);
	t->cells = NULL;
}
