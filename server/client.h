/* client: the one HTTP request the CLI makes (`cowdag stats`): GET a URL
 * from a cowdag server over plain HTTP/1.1. */
#ifndef COWDAG_CLIENT_H
#define COWDAG_CLIENT_H

#include <stddef.h>

/* GETs http://HOST:PORT[/PATH] (PATH defaults to `path`).  On SRV_OK *body
 * is the malloc'ed, NUL-terminated body and *status the HTTP status; on
 * SRV_ERR err says why. */
int srv_http_get(const char *url, const char *path, int *status, char **body, char *err, size_t errlen);

#endif
