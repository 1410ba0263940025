/* pdeath.c — a process the supervisor starts dies with it (pdeath.h). */
#include "pdeath.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

int pdeath_arm(int sig, const char *prog)
{
	const char *sup = getenv(PDEATH_ENV);
	int gone;

	prctl(PR_SET_PDEATHSIG, sig);
	/* Asked after the parent died, the request is on the new parent
	 * (init, or a subreaper), which may never die. */
	gone = sup != NULL && strtol(sup, NULL, 10) != (long)getppid();
	if (gone) {
		fprintf(stderr, "%s: its supervisor (pid %s) is gone; not starting\n", prog, sup);
		return -1;
	}
	unsetenv(PDEATH_ENV);
	return 0;
}
