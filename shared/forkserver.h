/* forkserver.h — what the supervisor (supervisor/spawn.c) and the fork
 * server (idem-worker --fork-server, worker/main.c) say to each other
 * over their SOCK_SEQPACKET pair. The fork server says hello once; then
 * each request carries a worker's channel (SCM_RIGHTS) and a token, and
 * each reply gives the token back with the new worker's pid (the worker
 * sends it, or the fork server when the fork failed), so that the
 * supervisor need not wait for the fork: it goes on with its loop and
 * matches the reply when it comes. */
#ifndef IDEM_FORKSERVER_H
#define IDEM_FORKSERVER_H

#include <stdint.h>

#define FORK_SERVER_HELLO "idem-fork-server 2"

struct fork_request {
	uint64_t token; /* the supervisor's, given back as is */
};

struct fork_reply {
	uint64_t token;
	int64_t pid; /* the worker, or -1 when the fork failed */
};

/* Sends a request: token and, as SCM_RIGHTS, channel. 0, or -1 with
 * errno. */
int fork_request_send(int fd, uint64_t token, int channel);

/* Receives a request: returns its channel (close-on-exec) with *token;
 * -1 at EOF or on an error; -2 for a request without a channel or of the
 * wrong size (skip it). */
int fork_request_recv(int fd, uint64_t *token);

#endif
