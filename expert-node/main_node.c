/* main_node.c — flashpool-node: an expert node. Parses the command line,
 * installs SIGTERM/SIGINT handling (finish the frame in hand, close the
 * sockets, exit 0) and runs node_server. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "node_server.h"

static volatile sig_atomic_t g_stop, g_drain;

static void on_signal(int sig) {
    if (sig == SIGUSR1) g_drain = 1;
    else if (sig == SIGUSR2) g_drain = 0;
    else g_stop = 1;
}

static void log_stderr(void *ud, const char *msg) {
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld flashpool-node: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, msg);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: flashpool-node -m MODEL.gguf [--listen ENDPOINT]... [options]\n"
            "\n"
            "An expert node: holds the routed experts a coordinator assigns to it (in its own\n"
            "RAM, read from its copy of the model file) and computes them on request.\n"
            "The coordinator must run the same model file (checked by fingerprint at HELLO).\n"
            "\n"
            "  -m, --model PATH        the GGUF model file (required)\n"
            "  -l, --listen ENDPOINT   where to listen (repeatable, up to %d);\n"
            "                          default tcp://127.0.0.1:5601.\n"
            "                          tcp://HOST:PORT, ipc:///PATH, shm://NAME (same host)\n"
            "  -t, --threads N         compute threads (default: all CPUs)\n"
            "  -n, --name NAME         name reported to the coordinator (default: hostname)\n"
            "      --ram-mb N          refuse assignments over N MiB of experts (default: no limit)\n"
            "      --crc               CRC32C-protect COMBINE payloads\n"
            "      --curve-secret KEY  CurveZMQ: this node's secret key (Z85, 40 chars); enables\n"
            "                          encryption; coordinators need the matching public key\n"
            "      --allow-client KEY  CurveZMQ: accept only this coordinator public key\n"
            "                          (repeatable; default with --curve-secret: any key)\n"
            "      --plain             no CurveZMQ (trusted networks and tests only; without\n"
            "                          --curve-secret links are plain anyway, with a warning)\n"
            "      --peer-timeout-s N  a coordinator silent this long is taken for dead and must\n"
            "                          HELLO again (default 60; 0 = never; coordinators\n"
            "                          heartbeat idle links every second)\n"
            "  -q, --quiet             no log lines (fatal errors are still printed)\n"
            "  -h, --help              this help\n"
            "\n"
            "SIGUSR1 drains the node (coordinators route around it; the dispatch in hand\n"
            "finishes), SIGUSR2 ends the drain (coordinators rejoin at their next probe).\n"
            "Stops cleanly on SIGTERM/SIGINT or a SHUTDOWN message from a coordinator.\n",
            NODE_MAX_LISTEN);
}

int main(int argc, char **argv) {
    node_server_opts o;
    node_server_opts_default(&o);
    const char *allowed[64];
    int n_allowed = 0, quiet = 0, plain = 0;
    enum { OPT_RAM = 256, OPT_CRC, OPT_CURVE_SECRET, OPT_ALLOW, OPT_PLAIN, OPT_PEER_TIMEOUT };
    o.peer_timeout_s = 60;
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'},   {"listen", required_argument, 0, 'l'},
        {"threads", required_argument, 0, 't'}, {"name", required_argument, 0, 'n'},
        {"ram-mb", required_argument, 0, OPT_RAM}, {"crc", no_argument, 0, OPT_CRC},
        {"curve-secret", required_argument, 0, OPT_CURVE_SECRET},
        {"allow-client", required_argument, 0, OPT_ALLOW},
        {"plain", no_argument, 0, OPT_PLAIN},
        {"peer-timeout-s", required_argument, 0, OPT_PEER_TIMEOUT},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "m:l:t:n:qh", lo, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'm': o.model_path = optarg; break;
        case 'l':
            if (o.n_listen == NODE_MAX_LISTEN) {
                fprintf(stderr, "flashpool-node: at most %d --listen endpoints\n", NODE_MAX_LISTEN);
                return 2;
            }
            o.listen[o.n_listen++] = optarg;
            break;
        case 't':
            o.threads = (int)strtol(optarg, &end, 10);
            if (*end || o.threads < 1 || o.threads > 1024) {
                fprintf(stderr, "flashpool-node: --threads wants 1..1024, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'n': o.name = optarg; break;
        case OPT_RAM: {
            unsigned long long mb = strtoull(optarg, &end, 10);
            if (*end || mb == 0 || mb > (1ull << 40)) {
                fprintf(stderr, "flashpool-node: --ram-mb wants a positive number of MiB, got '%s'\n", optarg);
                return 2;
            }
            o.ram_limit = (uint64_t)mb << 20;
            break;
        }
        case OPT_CRC: o.with_crc = 1; break;
        case OPT_CURVE_SECRET: o.tp.curve_secret = optarg; break;
        case OPT_ALLOW:
            if (n_allowed == 64) {
                fprintf(stderr, "flashpool-node: at most 64 --allow-client keys\n");
                return 2;
            }
            allowed[n_allowed++] = optarg;
            break;
        case OPT_PLAIN: plain = 1; break;
        case OPT_PEER_TIMEOUT:
            o.peer_timeout_s = strtod(optarg, &end);
            if (*end || !(o.peer_timeout_s >= 0) || o.peer_timeout_s > 86400) {
                fprintf(stderr, "flashpool-node: --peer-timeout-s wants 0..86400 seconds, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "flashpool-node: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!o.model_path) {
        fprintf(stderr, "flashpool-node: no model given: pass -m MODEL.gguf (the coordinator's model file)\n");
        return 2;
    }
    if (n_allowed && !o.tp.curve_secret) {
        fprintf(stderr, "flashpool-node: --allow-client needs --curve-secret\n");
        return 2;
    }
    if (plain && o.tp.curve_secret) {
        fprintf(stderr, "flashpool-node: --plain and --curve-secret contradict each other\n");
        return 2;
    }
    /* Plain links carry model activations unauthenticated: say so loudly
     * unless the operator asked for it (then once, quietly suppressible). */
    if (!o.tp.curve_secret && !plain)
        fprintf(stderr, "flashpool-node: WARNING: no --curve-secret: links are plain (no authentication, no "
                        "encryption; any host that reaches the port can use this node). Give --curve-secret "
                        "(flashpool-keygen) or pass --plain to confirm a trusted network.\n");
    else if (plain && !quiet)
        fprintf(stderr, "flashpool-node: warning: --plain: links are not authenticated or encrypted\n");
    else if (o.tp.curve_secret && !n_allowed && !quiet)
        fprintf(stderr, "flashpool-node: warning: no --allow-client: any coordinator with a CURVE key pair may "
                        "connect (links are still encrypted)\n");
    o.tp.allowed_clients = allowed;
    o.tp.n_allowed_clients = n_allowed;
    if (o.n_listen == 0) o.listen[o.n_listen++] = "tcp://127.0.0.1:5601";
    o.log = quiet ? NULL : log_stderr;
    o.stop = &g_stop;
    o.drain = &g_drain;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    node_server *s = node_server_open(&o, err, sizeof err);
    if (!s) {
        fprintf(stderr, "flashpool-node: %s\n", err);
        return 1;
    }
    int rc = node_server_run(s, err, sizeof err);
    if (rc) fprintf(stderr, "flashpool-node: %s\n", err);
    node_server_close(s);
    return rc ? 1 : 0;
}
