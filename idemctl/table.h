/* table.h — rows of text cells printed on stdout with aligned columns;
 * the last column is not padded, and empty cells at a row's end are left
 * out. Cells are copies owned by the table. A line row (table_line) is
 * printed as it is, outside the columns. */
#ifndef IDEMCTL_TABLE_H
#define IDEMCTL_TABLE_H

#define TABLE_COLS 10

struct table {
	int ncols;
	int nrows;
	int cap;
	char **cells;
	int width[TABLE_COLS];
};

/* ncols <= TABLE_COLS; heads may be NULL: no heading row. */
void table_init(struct table *t, int ncols, const char *const *heads);
/* Adds a row of ncols cells (a NULL cell is empty). */
void table_add(struct table *t, const char *const *row);
/* Adds a line printed as it is, across the columns. */
void table_line(struct table *t, const char *text);
/* Prints every row, then frees the cells. */
void table_print(struct table *t);

#endif
