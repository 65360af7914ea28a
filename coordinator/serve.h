/* serve.h — `flashpool serve`: the HTTP API server on the real engine,
 * optionally with its routed experts on a pool of flashpool-node processes,
 * and the KV session cache (RAM + disk). serve.c owns option parsing, setup
 * in dependency order, the run loop (until SIGINT/SIGTERM) and shutdown. */
#ifndef FP_SERVE_H
#define FP_SERVE_H

/* argv[0] is "serve". Returns the process exit code (0 after a clean
 * shutdown, 1 on a setup failure, 2 on a usage error). */
int serve_main(int argc, char **argv);

#endif
