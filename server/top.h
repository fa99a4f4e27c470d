/* top: `cowdag top`, a live terminal view of a running server, as top and
 * uwsgitop are (README, "Watching sharing").  It reads GET /stats and GET
 * /metrics every interval and draws one line per worker with ncurses. */
#ifndef COWDAG_SERVER_TOP_H
#define COWDAG_SERVER_TOP_H

/* The command: `cowdag top [--url URL] [--interval S]`, argv[0] "top".
 * Returns the exit status (0 after q, 2 on bad arguments). */
int srv_top(int argc, char **argv);

#endif
