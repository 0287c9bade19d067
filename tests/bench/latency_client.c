/* latency_client: sequential requests on one keep-alive connection, each
 * timed from the first byte sent to the last byte of the answer received.
 * Prints the median, p90, p99 and max in microseconds, and the status of the
 * first answer. A closed-loop client: for latency of single requests (cache
 * hits, misses), not for load.
 *
 *   latency_client PORT PATH BODY_FILE N [WARMUP] ["Header: value"]...
 *
 * The answer must carry Content-Length (llmrouter's non-streamed answers
 * do). Not part of `make test`; tests/bench/bench_cache.py drives it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Reads one answer; returns its status or -1. */
static int read_answer(int fd, char *buf, size_t cap)
{
    size_t have = 0, need = 0, head = 0;
    int status = -1;
    for (;;) {
        ssize_t n = read(fd, buf + have, cap - have - 1);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        if (head == 0) {
            char *end = strstr(buf, "\r\n\r\n"), *cl;
            if (end == NULL)
                continue;
            head = (size_t)(end - buf) + 4;
            status = atoi(buf + 9);
            cl = strcasestr(buf, "\r\ncontent-length:");
            if (cl == NULL || cl > end)
                return -1;
            need = head + strtoul(cl + 17, NULL, 10);
        }
        if (have >= need) {
            if (have > need) /* pipelining is not used: nothing may follow */
                return -1;
            return status;
        }
    }
}

int main(int argc, char **argv)
{
    static char req[1 << 20], buf[8 << 20];
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd, one = 1, n, warm, status = 0;
    size_t len, blen;
    double *lat;
    FILE *f;
    char body[1 << 19];

    if (argc < 5) {
        fprintf(stderr, "usage: latency_client PORT PATH BODY_FILE N [WARMUP] [HEADER]...\n");
        return 2;
    }
    f = fopen(argv[3], "rb");
    if (f == NULL) {
        perror(argv[3]);
        return 2;
    }
    blen = fread(body, 1, sizeof body, f);
    fclose(f);
    n = atoi(argv[4]);
    warm = argc > 5 ? atoi(argv[5]) : 10;
    len = (size_t)snprintf(req, sizeof req,
                           "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           "Content-Length: %zu\r\n",
                           argv[2], blen);
    for (int i = 6; i < argc; i++)
        len += (size_t)snprintf(req + len, sizeof req - len, "%s\r\n", argv[i]);
    len += (size_t)snprintf(req + len, sizeof req - len, "\r\n");
    memcpy(req + len, body, blen);
    len += blen;

    sa.sin_port = htons((unsigned short)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("connect");
        return 1;
    }
    lat = calloc((size_t)n, sizeof *lat);
    for (int i = -warm; i < n; i++) {
        double t0 = now_us();
        if (write(fd, req, len) != (ssize_t)len) {
            perror("write");
            return 1;
        }
        status = read_answer(fd, buf, sizeof buf);
        if (status < 0) {
            fprintf(stderr, "bad answer\n");
            return 1;
        }
        if (i >= 0)
            lat[i] = now_us() - t0;
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    printf("status %d  n %d  p50 %.1f us  p90 %.1f us  p99 %.1f us  max %.1f us\n", status, n,
           lat[n / 2], lat[n * 9 / 10], lat[n * 99 / 100], lat[n - 1]);
    free(lat);
    close(fd);
    return 0;
}
