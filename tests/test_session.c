/* test_session.c — the dashboard's sign-ins (supervisor/session.c): a
 * session is valid until its end and no longer, ended by logout, made
 * room for when the table is full, and never confused with another. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "session.h"

static struct sessions table;

static int setup(void **state)
{
	(void)state;
	memset(&table, 0, sizeof(table));
	return 0;
}

static void test_valid_until_its_end(void **state)
{
	char id[TOKEN_RANDOM_LEN + 1], other[TOKEN_RANDOM_LEN + 1];

	(void)state;
	assert_int_equal(session_new(&table, 1000, id), 0);
	assert_int_equal(strlen(id), TOKEN_RANDOM_LEN);
	assert_true(session_valid(&table, id, 1000));
	assert_true(session_valid(&table, id, 1000 + SESSION_TTL_MS - 1));
	assert_false(session_valid(&table, id, 1000 + SESSION_TTL_MS));
	/* Another id, one a character off, a prefix, the empty one: no. */
	assert_int_equal(session_new(&table, 1000, other), 0);
	assert_string_not_equal(id, other);
	memcpy(other, id, sizeof(id));
	other[TOKEN_RANDOM_LEN - 1] = other[TOKEN_RANDOM_LEN - 1] == 'a' ? 'b' : 'a';
	assert_false(session_valid(&table, other, 1000));
	other[TOKEN_RANDOM_LEN - 1] = '\0';
	assert_false(session_valid(&table, other, 1000));
	assert_false(session_valid(&table, "", 1000));
}

static void test_logout_ends_it_alone(void **state)
{
	char a[TOKEN_RANDOM_LEN + 1], b[TOKEN_RANDOM_LEN + 1];

	(void)state;
	assert_int_equal(session_new(&table, 0, a), 0);
	assert_int_equal(session_new(&table, 0, b), 0);
	session_end(&table, a);
	assert_false(session_valid(&table, a, 1));
	assert_true(session_valid(&table, b, 1));
	session_end(&table, "no such session");
	assert_true(session_valid(&table, b, 1));
}

/* Full: the session nearest its end gives way; ended ones first. */
static void test_full_table_makes_room(void **state)
{
	char ids[SESSION_MAX + 1][TOKEN_RANDOM_LEN + 1];

	(void)state;
	for (int i = 0; i < SESSION_MAX; i++)
		assert_int_equal(session_new(&table, 100 + i, ids[i]), 0);
	assert_int_equal(session_new(&table, 100 + SESSION_MAX, ids[SESSION_MAX]), 0);
	assert_false(session_valid(&table, ids[0], 100 + SESSION_MAX));
	for (int i = 1; i <= SESSION_MAX; i++)
		assert_true(session_valid(&table, ids[i], 100 + SESSION_MAX));
	/* Once session 1 has ended, a new one takes its place, not 2's. */
	assert_int_equal(session_new(&table, 101 + SESSION_TTL_MS, ids[0]), 0);
	assert_true(session_valid(&table, ids[0], 101 + SESSION_TTL_MS));
	assert_true(session_valid(&table, ids[2], 101 + SESSION_TTL_MS));
}

/* A slot freed by logout is the next one taken: every other session,
 * however near its end, stays. */
static void test_logout_frees_its_slot(void **state)
{
	char ids[SESSION_MAX][TOKEN_RANDOM_LEN + 1], id[TOKEN_RANDOM_LEN + 1];

	(void)state;
	for (int i = 0; i < SESSION_MAX; i++)
		assert_int_equal(session_new(&table, 100 + i, ids[i]), 0);
	session_end(&table, ids[SESSION_MAX / 2]);
	assert_int_equal(session_new(&table, 200, id), 0);
	assert_true(session_valid(&table, id, 200));
	assert_false(session_valid(&table, ids[SESSION_MAX / 2], 200));
	for (int i = 0; i < SESSION_MAX; i++)
		if (i != SESSION_MAX / 2)
			assert_true(session_valid(&table, ids[i], 200));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_valid_until_its_end, setup),
	    cmocka_unit_test_setup(test_logout_ends_it_alone, setup),
	    cmocka_unit_test_setup(test_full_table_makes_room, setup),
	    cmocka_unit_test_setup(test_logout_frees_its_slot, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
