/* test_token.c — the control API's token file (shared/token.c): made
 * once, 0600, 64 hex characters, the same for every supervisor that
 * starts at the same moment; refused when others may read it, when it is
 * a symbolic link, when it holds no token; and the comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "token.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = tu_tmpdir("token");
	return dir == NULL;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(dir);
	free(dir);
	return 0;
}

static void test_made_once(void **state)
{
	char *path = tu_fmt("%s/sub/api-token", dir), t1[TOKEN_MAX + 1], t2[TOKEN_MAX + 1];
	char err[512] = "";
	struct stat st;
	int made = 0;

	(void)state;
	assert_int_equal(token_load(path, 1, t1, &made, err, sizeof(err)), 0);
	assert_int_equal(made, 1);
	assert_int_equal(strlen(t1), 64);
	assert_int_equal(strspn(t1, "0123456789abcdef"), 64);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(token_load(path, 1, t2, &made, err, sizeof(err)), 0);
	assert_int_equal(made, 0);
	assert_string_equal(t1, t2);
	/* A client reads it too (make = 0). */
	assert_int_equal(token_load(path, 0, t2, NULL, err, sizeof(err)), 0);
	assert_string_equal(t1, t2);
	free(path);
}

/* Four supervisors making it at once: one token, read by all. */
static void test_made_once_by_many(void **state)
{
	char *path = tu_fmt("%s/race-token", dir), got[4][TOKEN_MAX + 1];
	int fds[4][2];
	pid_t pids[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pipe(fds[i]), 0);
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char t[TOKEN_MAX + 1] = "", err[512];
			int rc = token_load(path, 1, t, NULL, err, sizeof(err));

			if (rc != 0)
				snprintf(t, sizeof(t), "error: %.200s", err);
			_exit(write(fds[i][1], t, strlen(t) + 1) > 0 ? 0 : 1);
		}
		close(fds[i][1]);
	}
	for (int i = 0; i < 4; i++) {
		int status;
		ssize_t n = read(fds[i][0], got[i], sizeof(got[i]) - 1);

		assert_true(n > 0);
		got[i][n] = '\0';
		close(fds[i][0]);
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_string_equal(got[i], got[0]);
	}
	assert_int_equal(strlen(got[0]), 64);
	free(path);
}

static void expect_refused(const char *path, const char *text)
{
	char t[TOKEN_MAX + 1], err[512] = "";

	assert_int_equal(token_load(path, 1, t, NULL, err, sizeof(err)), -1);
	if (strstr(err, text) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, text);
	assert_non_null(strstr(err, path));
}

static void test_refused(void **state)
{
	char *open_ = tu_fmt("%s/open-token", dir), *empty = tu_fmt("%s/empty-token", dir);
	char *bad = tu_fmt("%s/bad-token", dir), *link_ = tu_fmt("%s/link-token", dir);
	char *shortt = tu_fmt("%s/short-token", dir);

	(void)state;
	assert_int_equal(tu_write_file(open_, "0123456789abcdef0123\n"), 0);
	assert_int_equal(chmod(open_, 0640), 0);
	expect_refused(open_, "readable by others (mode 0640)");
	expect_refused(open_, "chmod 600");
	assert_int_equal(tu_write_file(empty, ""), 0);
	assert_int_equal(chmod(empty, 0600), 0);
	expect_refused(empty, "holds no token");
	assert_int_equal(tu_write_file(bad, "0123456789abcdef;0123\n"), 0);
	assert_int_equal(chmod(bad, 0600), 0);
	expect_refused(bad, "holds no token");
	assert_int_equal(tu_write_file(shortt, "0123456789\n"), 0);
	assert_int_equal(chmod(shortt, 0600), 0);
	expect_refused(shortt, "holds no token");
	/* A link could point the supervisor at a file another chose. */
	assert_int_equal(symlink(open_, link_), 0);
	expect_refused(link_, "cannot read API_TOKEN_FILE");
	free(open_);
	free(empty);
	free(bad);
	free(link_);
	free(shortt);
}

static void test_missing_for_a_client(void **state)
{
	char *path = tu_fmt("%s/none-here", dir), t[TOKEN_MAX + 1], err[512] = "";

	(void)state;
	assert_int_equal(token_load(path, 0, t, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(access(path, F_OK), -1); /* a client makes none */
	free(path);
}

static void test_equal(void **state)
{
	(void)state;
	assert_true(token_equal("0123456789abcdef", "0123456789abcdef"));
	assert_false(token_equal("0123456789abcdef", "0123456789abcdeF"));
	assert_false(token_equal("0123456789abcdef", "0123456789abcde"));
	assert_false(token_equal("0123456789abcde", "0123456789abcdef"));
	assert_false(token_equal("", "0123456789abcdef"));
	assert_false(token_equal("0123456789abcdef", ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_made_once), cmocka_unit_test(test_made_once_by_many),
	    cmocka_unit_test(test_refused),   cmocka_unit_test(test_missing_for_a_client),
	    cmocka_unit_test(test_equal),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
