/* main_keygen.c — flashpool-keygen: writes a CurveZMQ key pair (Z85) for a
 * coordinator or an expert node. The secret goes to --curve-secret of its
 * own process; the public key goes to the other side (--allow-client on
 * nodes, --node-key / server_key in the cluster file on the coordinator). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: flashpool-keygen [-o PREFIX] [--force]\n"
            "\n"
            "Writes a new CurveZMQ key pair (Z85 text, 40 characters each).\n"
            "  without -o      prints two lines: 'public KEY' and 'secret KEY'\n"
            "  -o PREFIX       writes PREFIX.key (secret, mode 0600) and PREFIX.pub\n"
            "      --force     overwrite existing files\n"
            "  -h, --help      this help\n"
            "\n"
            "Use: node:         flashpool-node --curve-secret $(cat node.key) --allow-client $(cat coord.pub)\n"
            "     coordinator:  flashpool --curve-secret $(cat coord.key) --node ENDPOINT --node-key $(cat node.pub)\n");
}

/* Write text to path with mode; refuse to clobber unless force. */
static int write_file(const char *path, const char *text, mode_t mode, int force) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | (force ? 0 : O_EXCL), mode);
    if (fd < 0) {
        fprintf(stderr, "flashpool-keygen: %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (use --force to overwrite)" : "");
        return -1;
    }
    const size_t n = strlen(text);
    const int ok = write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    if (fchmod(fd, mode) != 0 || close(fd) != 0 || !ok) {
        fprintf(stderr, "flashpool-keygen: %s: write failed: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *prefix = NULL;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--force")) {
            force = 1;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            prefix = argv[++i];
        } else {
            fprintf(stderr, "flashpool-keygen: unknown argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec) != 0) {
        fprintf(stderr, "flashpool-keygen: zmq_curve_keypair: %s (libzmq built without CURVE/libsodium?)\n",
                zmq_strerror(zmq_errno()));
        return 1;
    }
    if (!prefix) {
        printf("public %s\nsecret %s\n", pub, sec);
        return 0;
    }
    char kp[4096], pp[4096];
    if ((size_t)snprintf(kp, sizeof kp, "%s.key", prefix) >= sizeof kp ||
        (size_t)snprintf(pp, sizeof pp, "%s.pub", prefix) >= sizeof pp) {
        fprintf(stderr, "flashpool-keygen: prefix too long\n");
        return 2;
    }
    if (write_file(kp, sec, 0600, force) || write_file(pp, pub, 0644, force)) return 1;
    fprintf(stderr, "flashpool-keygen: wrote %s (secret, keep private) and %s (public)\n", kp, pp);
    return 0;
}
