/* client.c: a minimal HTTP/1.1 GET for the CLI (server/client.h): one
 * request, Connection: close, the body read to the end. */
#include "server/client.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "load/config.h"
#include "server/serve.h"

int srv_http_get(const char *url, const char *path, int *status, char **body, char *err, size_t errlen)
{
    *body = NULL;
    const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    char hostport[256];
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof hostport) {
        snprintf(err, errlen, "'%s' is not http://HOST:PORT[/PATH]", url);
        return SRV_ERR;
    }
    memcpy(hostport, p, hl);
    hostport[hl] = '\0';
    if (slash && slash[1])
        path = slash;
    char *host;
    int port;
    if (ld_parse_listen(hostport, &host, &port) != LD_OK) {
        snprintf(err, errlen, "'%s' is not http://HOST:PORT[/PATH]", url);
        return SRV_ERR;
    }
    char ports[8];
    snprintf(ports, sizeof ports, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, ports, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
        free(host);
        return SRV_ERR;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            snprintf(err, errlen, "%s: %s", hostport, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        free(host);
        return SRV_ERR;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, hostport);
    free(host);
    if (n < 0 || (size_t)n >= sizeof req) {
        snprintf(err, errlen, "the URL is too long");
        close(fd);
        return SRV_ERR;
    }
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        snprintf(err, errlen, "%s: cannot send the request", hostport);
        close(fd);
        return SRV_ERR;
    }
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    for (ssize_t got; buf && (got = recv(fd, buf + len, cap - len - 1, 0)) > 0;) {
        len += (size_t)got;
        if (len + 1 == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    close(fd);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return SRV_ERR;
    }
    buf[len] = '\0';
    char *hdr_end = strstr(buf, "\r\n\r\n");
    if (!hdr_end || sscanf(buf, "HTTP/1.%*d %d", status) != 1) {
        snprintf(err, errlen, "%s: not an HTTP response", hostport);
        free(buf);
        return SRV_ERR;
    }
    *body = strdup(hdr_end + 4);
    free(buf);
    if (!*body) {
        snprintf(err, errlen, "out of memory");
        return SRV_ERR;
    }
    return SRV_OK;
}
