/* version.h — the one version every idem program reports: the project's
 * (CMakeLists.txt) and the git commit it was built from (cmake/commit.cmake). */
#ifndef IDEM_VERSION_H
#define IDEM_VERSION_H

/* "0.1.0 (commit 1a2b3c4d5e6f)", or "0.1.0" built outside a checkout. */
const char *idem_version(void);
/* When argv[1] is --version: prints "PROG VERSION" on stdout and exits 0. */
void idem_version_exit(int argc, char **argv, const char *prog);

#endif
