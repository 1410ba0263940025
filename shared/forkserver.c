/* forkserver.c — the two ends of a fork request (forkserver.h). */
#include "forkserver.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A message of one struct fork_request, with room for one descriptor. */
struct request_msg {
	struct fork_request req;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov;
	struct msghdr m;
};

static void request_msg_init(struct request_msg *r)
{
	memset(r, 0, sizeof(*r));
	r->iov = (struct iovec){&r->req, sizeof(r->req)};
	r->m = (struct msghdr){.msg_iov = &r->iov,
	                       .msg_iovlen = 1,
	                       .msg_control = r->cbuf,
	                       .msg_controllen = sizeof(r->cbuf)};
}

int fork_request_send(int fd, uint64_t token, int channel)
{
	struct request_msg r;
	struct cmsghdr *c;

	request_msg_init(&r);
	r.req.token = token;
	c = CMSG_FIRSTHDR(&r.m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &channel, sizeof(int));
	return sendmsg(fd, &r.m, MSG_NOSIGNAL) == (ssize_t)sizeof(r.req) ? 0 : -1;
}

int fork_request_recv(int fd, uint64_t *token)
{
	struct request_msg r;
	struct cmsghdr *c;
	int channel = -1;
	ssize_t n;

	request_msg_init(&r);
	do
		n = recvmsg(fd, &r.m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&r.m); c != NULL; c = CMSG_NXTHDR(&r.m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&channel, CMSG_DATA(c), sizeof(channel));
	if (n != (ssize_t)sizeof(r.req) || channel < 0) {
		if (channel >= 0)
			close(channel);
		return -2;
	}
	*token = r.req.token;
	return channel;
}
