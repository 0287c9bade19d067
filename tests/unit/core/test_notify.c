/* Unit tests for src/notify.c against a real AF_UNIX datagram socket, the
 * way systemd listens: path and abstract names, $NOTIFY_SOCKET, the
 * sender's credentials, bad names, and a full queue that must not block. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/notify.h"

typedef struct listener {
    int fd;
    char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 1]; /* as $NOTIFY_SOCKET spells it */
    char dir[64];                                              /* temp dir of a path socket */
} listener_t;

/* Binds a datagram socket: a path in a fresh temp directory, or an abstract
 * name unique to this process. Credentials are passed like systemd asks. */
static void listen_on(listener_t *l, int abstract)
{
    struct sockaddr_un sa;
    socklen_t len;
    int one = 1;
    memset(l, 0, sizeof *l);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(l->fd >= 0);
    assert_int_equal(setsockopt(l->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one), 0);
    if (abstract) {
        int n = snprintf(l->name, sizeof l->name, "@llmrouter-test-notify-%ld", (long)getpid());
        memcpy(sa.sun_path, l->name, (size_t)n);
        sa.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n);
    } else {
        snprintf(l->dir, sizeof l->dir, "/tmp/llmrouter-notify-XXXXXX");
        assert_non_null(mkdtemp(l->dir));
        snprintf(l->name, sizeof l->name, "%s/notify.sock", l->dir);
        memcpy(sa.sun_path, l->name, strlen(l->name) + 1);
        len = (socklen_t)sizeof sa;
    }
    assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, len), 0);
}

static void listener_close(listener_t *l)
{
    close(l->fd);
    if (l->dir[0]) {
        unlink(l->name);
        rmdir(l->dir);
    }
}

/* Receives one datagram without waiting (notify sends synchronously, so it
 * is already queued) into buf as a string; returns the sender's pid. */
static pid_t receive(listener_t *l, char *buf, size_t size)
{
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    struct iovec iov = {buf, size - 1};
    struct msghdr msg = {0};
    struct cmsghdr *c;
    pid_t pid = -1;
    ssize_t n;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof control.space;
    n = recvmsg(l->fd, &msg, MSG_DONTWAIT);
    assert_true(n >= 0);
    buf[n] = '\0';
    for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof cred);
            pid = cred.pid;
        }
    }
    return pid;
}

static void nothing_queued(listener_t *l)
{
    char b[8];
    assert_true(recv(l->fd, b, sizeof b, MSG_DONTWAIT) < 0);
    assert_int_equal(errno, EAGAIN);
}

static void test_path_socket(void **state)
{
    listener_t l;
    char buf[256];
    (void)state;
    listen_on(&l, 0);
    assert_int_equal(notify_send_to(l.name, "READY=1\nSTATUS=listening on 127.0.0.1:8080"), 0);
    /* systemd trusts the message by the sender's pid: it must be ours */
    assert_int_equal(receive(&l, buf, sizeof buf), getpid());
    assert_string_equal(buf, "READY=1\nSTATUS=listening on 127.0.0.1:8080");
    nothing_queued(&l);
    listener_close(&l);
}

static void test_abstract_socket(void **state)
{
    listener_t l;
    char buf[256];
    (void)state;
    listen_on(&l, 1);
    assert_int_equal(l.name[0], '@');
    assert_int_equal(notify_send_to(l.name, "STOPPING=1"), 0);
    assert_int_equal(receive(&l, buf, sizeof buf), getpid());
    assert_string_equal(buf, "STOPPING=1");
    listener_close(&l);
}

/* The sequence main.c sends through $NOTIFY_SOCKET: one datagram each, in order. */
static void test_env_sequence(void **state)
{
    static const char *const msgs[] = {"READY=1", "RELOADING=1\nMONOTONIC_USEC=42", "READY=1",
                                       "STOPPING=1"};
    listener_t l;
    char buf[256];
    (void)state;
    listen_on(&l, 1);
    assert_int_equal(setenv("NOTIFY_SOCKET", l.name, 1), 0);
    assert_int_equal(notify_send(msgs[0]), 0);
    assert_int_equal(notify_sendf("RELOADING=1\nMONOTONIC_USEC=%d", 42), 0);
    assert_int_equal(notify_send(msgs[2]), 0);
    assert_int_equal(notify_send(msgs[3]), 0);
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        receive(&l, buf, sizeof buf);
        assert_string_equal(buf, msgs[i]);
    }
    nothing_queued(&l);
    unsetenv("NOTIFY_SOCKET");
    listener_close(&l);
}

static void test_unset_is_noop(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(notify_send("READY=1"), 1);
    assert_int_equal(notify_sendf("READY=1\nSTATUS=%s", "x"), 1);
    assert_int_equal(setenv("NOTIFY_SOCKET", "", 1), 0);
    assert_int_equal(notify_send("READY=1"), 1);
    unsetenv("NOTIFY_SOCKET");
}

static void test_bad_names(void **state)
{
    char longname[200];
    (void)state;
    assert_int_equal(notify_send_to("relative/notify.sock", "READY=1"), -EINVAL);
    assert_int_equal(notify_send_to("", "READY=1"), -EINVAL);
    assert_int_equal(notify_send_to("@", "READY=1"), -EINVAL);
    memset(longname, 'a', sizeof longname - 1);
    longname[0] = '/';
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(notify_send_to(longname, "READY=1"), -ENAMETOOLONG);
    longname[0] = '@';
    assert_int_equal(notify_send_to(longname, "READY=1"), -ENAMETOOLONG);
    /* nobody listening: an error, not a hang or a crash */
    assert_true(notify_send_to("/nonexistent-dir-llmrouter/notify.sock", "READY=1") < 0);
    assert_true(notify_send_to("@llmrouter-test-nobody-listens-here", "READY=1") < 0);
}

static void test_longest_names(void **state)
{
    struct sockaddr_un sa;
    char name[sizeof sa.sun_path + 2], buf[64];
    size_t max = sizeof sa.sun_path;
    int fd;
    (void)state;
    /* an abstract name may fill all of sun_path (no terminating NUL) */
    memset(name, 'n', sizeof name);
    snprintf(name, sizeof name, "@llmrouter-test-long-%ld-", (long)getpid());
    name[strlen(name)] = 'n';
    name[max] = '\0';
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, name, max);
    sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, (socklen_t)sizeof sa), 0);
    assert_int_equal(notify_send_to(name, "READY=1"), 0);
    assert_true(recv(fd, buf, sizeof buf, MSG_DONTWAIT) == 7);
    assert_memory_equal(buf, "READY=1", 7);
    /* one more byte does not fit */
    name[max] = 'n';
    name[max + 1] = '\0';
    assert_int_equal(notify_send_to(name, "READY=1"), -ENAMETOOLONG);
    /* a path needs its NUL: max - 1 characters at most */
    name[0] = '/';
    name[max] = '\0';
    assert_int_equal(notify_send_to(name, "READY=1"), -ENAMETOOLONG);
    close(fd);
}

static void test_message_too_long(void **state)
{
    listener_t l;
    char big[NOTIFY_MAX_MESSAGE + 16];
    (void)state;
    listen_on(&l, 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", l.name, 1), 0);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(notify_sendf("STATUS=%s", big), -EMSGSIZE);
    nothing_queued(&l);
    unsetenv("NOTIFY_SOCKET");
    listener_close(&l);
}

/* A receiver that never reads must not stall the daemon: once its queue is
 * full, sending fails with -EAGAIN at once. */
static void test_full_queue_does_not_block(void **state)
{
    listener_t l;
    int rc = 0, i;
    (void)state;
    listen_on(&l, 1);
    for (i = 0; i < 100000 && rc == 0; i++)
        rc = notify_send_to(l.name, "STATUS=filling the queue");
    assert_int_equal(rc, -EAGAIN);
    assert_true(i > 1);
    listener_close(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_env_sequence),
        cmocka_unit_test(test_unset_is_noop),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_longest_names),
        cmocka_unit_test(test_message_too_long),
        cmocka_unit_test(test_full_queue_does_not_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
