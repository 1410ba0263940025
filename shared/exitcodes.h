/* exitcodes.h — the exit codes of every idem program: a contract with
 * scripts, supervisors and CI. Documented in README.md ("Exit codes"). */
#ifndef IDEM_EXITCODES_H
#define IDEM_EXITCODES_H

enum idem_exit {
	IDEM_EXIT_OK = 0,            /* success; for idemctl: what was asked holds */
	IDEM_EXIT_FAIL = 1,          /* runtime failure; for idemctl: a workflow failed
	                                or a check found a violation */
	IDEM_EXIT_USAGE = 2,         /* bad command line or configuration; for idemctl
	                                also: the supervisor cannot be reached */
	IDEM_EXIT_TIMEOUT = 3,       /* idemctl wait: the timeout passed first */
	IDEM_EXIT_DB = 4,            /* a database could not be opened or migrated */
	IDEM_EXIT_FAULT = 5,         /* idem-supplier died on purpose: a planned fault
	                                (record the order, then die before answering);
	                                the supervisor respawns it at once */
	IDEM_EXIT_NOT_QUIESCENT = 6, /* idemctl check: no violation, but workflows
	                                still run (a later check may differ) */
};

#endif
