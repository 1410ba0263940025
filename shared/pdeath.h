/* pdeath.h — a process the supervisor starts dies with it. */
#ifndef IDEM_PDEATH_H
#define IDEM_PDEATH_H

/* The variable the supervisor sets to its pid for the processes it starts. */
#define PDEATH_ENV "IDEM_SUPERVISOR_PID"

/* Asks the kernel for sig when this process's parent dies
 * (PR_SET_PDEATHSIG). Returns 0, or -1 when the supervisor named in
 * PDEATH_ENV is no longer the parent: it died before the request, which
 * then would never come, and this process should not start (stderr says
 * so, with prog's name). Otherwise removes the variable, so that this
 * process's own children are not judged by it. */
int pdeath_arm(int sig, const char *prog);

#endif
