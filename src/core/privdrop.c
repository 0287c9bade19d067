/* privdrop: drop root after binding (see privdrop.h). The order is the
 * classic one: supplementary groups, then the group, then the user (once
 * the uid is no longer 0, the groups can no longer be changed). */
#include "core/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/util.h"

/* getpwnam_r/getgrnam_r with a buffer that grows (NSS entries may be
 * large). */
int privdrop_find_user(const char *name, uid_t *uid, gid_t *gid)
{
    struct passwd pw, *res = NULL;
    size_t cap = 1024;
    int rc;
    for (;;) {
        char *b = xmalloc(cap);
        rc = getpwnam_r(name, &pw, b, cap, &res);
        if (rc == 0 && res != NULL) {
            *uid = res->pw_uid;
            *gid = res->pw_gid;
        }
        free(b);
        if (rc != ERANGE || cap >= (1u << 20))
            break;
        cap *= 4;
    }
    /* "not found" is reported as 0 and no entry, or by some NSS modules as
     * one of these */
    if ((rc == 0 && res == NULL) || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
        return ENOENT;
    return rc;
}

int privdrop_find_group(const char *name, gid_t *gid)
{
    struct group gr, *res = NULL;
    size_t cap = 1024;
    int rc;
    for (;;) {
        char *b = xmalloc(cap);
        rc = getgrnam_r(name, &gr, b, cap, &res);
        if (rc == 0 && res != NULL)
            *gid = res->gr_gid;
        free(b);
        if (rc != ERANGE || cap >= (1u << 20))
            break;
        cap *= 4;
    }
    if ((rc == 0 && res == NULL) || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
        return ENOENT;
    return rc;
}

int privdrop_apply(const char *user, const char *group, char *err, size_t errlen)
{
    uid_t uid;
    gid_t gid;
    int rc;

    if (user == NULL)
        return 0;
    rc = privdrop_find_user(user, &uid, &gid);
    if (rc != 0) {
        snprintf(err, errlen, "server.user: %s \"%s\"",
                 rc == ENOENT ? "no such user" : strerror(rc), user);
        return -1;
    }
    rc = group != NULL ? privdrop_find_group(group, &gid) : 0;
    if (rc != 0) {
        snprintf(err, errlen, "server.group: %s \"%s\"",
                 rc == ENOENT ? "no such group" : strerror(rc), group);
        return -1;
    }
    if (geteuid() != 0) {
        /* nothing to drop: fine if we already are that user, else say why */
        if (geteuid() == uid && getuid() == uid && getegid() == gid && getgid() == gid)
            return 0;
        snprintf(err, errlen,
                 "server.user is \"%s\" (uid %u, gid %u) but llmrouter runs as uid %u, gid %u, "
                 "not as root: only root can switch users; start it as root, or as that user "
                 "and without server.user",
                 user, (unsigned)uid, (unsigned)gid, (unsigned)geteuid(), (unsigned)getegid());
        return -1;
    }
    if (initgroups(user, gid) != 0) {
        snprintf(err, errlen, "server.user: initgroups(\"%s\") failed: %s", user, strerror(errno));
        return -1;
    }
    if (setgid(gid) != 0) {
        snprintf(err, errlen, "server.user: setgid(%u) failed: %s", (unsigned)gid,
                 strerror(errno));
        return -1;
    }
    if (setuid(uid) != 0) {
        snprintf(err, errlen, "server.user: setuid(%u) failed: %s", (unsigned)uid,
                 strerror(errno));
        return -1;
    }
    /* the proof: no way back (unless the target is root itself) */
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        snprintf(err, errlen, "server.user: the process could regain root after switching to "
                              "\"%s\"; refusing to run",
                 user);
        return -1;
    }
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
        snprintf(err, errlen, "server.user: the process is not uid %u / gid %u after switching",
                 (unsigned)uid, (unsigned)gid);
        return -1;
    }
    return 0;
}
