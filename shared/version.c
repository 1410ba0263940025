/* version.c — see version.h. */
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idem_commit.h"

const char *idem_version(void)
{
	return IDEM_COMMIT[0] != '\0' ? IDEM_VERSION " (commit " IDEM_COMMIT ")" : IDEM_VERSION;
}

void idem_version_exit(int argc, char **argv, const char *prog)
{
	if (argc < 2 || strcmp(argv[1], "--version") != 0)
		return;
	printf("%s %s\n", prog, idem_version());
	exit(0);
}
