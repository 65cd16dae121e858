/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfapi-seq: the limits the benchmarks compare our verbs with: a plain
 * single-stream sequential read or write through gfapi, 4 MiB per call (the
 * chunk our verbs use), and a bare listing of a directory, nothing else.
 *
 *   gfapi-seq write HOST[:PORT][,HOST...] VOLUME PATH FILE
 *   gfapi-seq read  HOST[:PORT][,HOST...] VOLUME PATH
 *   gfapi-seq list  HOST[:PORT][,HOST...] VOLUME DIR
 *
 * write creates PATH (it must not exist) from a local FILE, fsyncs and
 * closes; read reads PATH to its end; list reads DIR with readdirplus (the
 * names and their stat, what a refresh of the pool needs at the least).
 * Prints one line of JSON with the bytes moved or the entries listed and
 * the seconds it took (open to close; connecting is not counted). Exits
 * without glfs_fini: its 10 s tail is not part of the data path and would
 * only slow the benchmark down.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glusterfs/api/glfs.h>

#define CHUNK (4 * 1024 * 1024)

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static glfs_t *
connect_volume(char *hosts, const char *volume)
{
    glfs_t *fs = glfs_new(volume);
    char *save = NULL;
    char *h;

    if (!fs) {
        fprintf(stderr, "gfapi-seq: glfs_new(%s): %s\n", volume, strerror(errno));
        return NULL;
    }
    for (h = strtok_r(hosts, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(h, ':');
        int port = 24007;

        if (colon) {
            *colon = '\0';
            port = atoi(colon + 1);
        }
        if (glfs_set_volfile_server(fs, "tcp", h, port) < 0) {
            fprintf(stderr, "gfapi-seq: server %s:%d: %s\n", h, port, strerror(errno));
            return NULL;
        }
    }
    glfs_set_logging(fs, "/dev/null", 0);
    if (glfs_init(fs) < 0) {
        fprintf(stderr, "gfapi-seq: cannot connect to volume %s: %s\n", volume, strerror(errno));
        return NULL;
    }
    return fs;
}

static int
do_write(glfs_t *fs, const char *path, const char *file, char *buf)
{
    int in = open(file, O_RDONLY);
    long long total = 0;
    glfs_fd_t *fd;
    double t0;
    ssize_t n;

    if (in < 0) {
        fprintf(stderr, "gfapi-seq: %s: %s\n", file, strerror(errno));
        return 1;
    }
    t0 = now();
    if (!(fd = glfs_creat(fs, path, O_WRONLY | O_EXCL, 0644))) {
        fprintf(stderr, "gfapi-seq: create %s: %s\n", path, strerror(errno));
        return 1;
    }
    while ((n = read(in, buf, CHUNK)) > 0) {
        ssize_t done = 0;
        while (done < n) {
            ssize_t w = glfs_write(fd, buf + done, (size_t)(n - done), 0);
            if (w < 0) {
                fprintf(stderr, "gfapi-seq: write %s: %s\n", path, strerror(errno));
                return 1;
            }
            done += w;
        }
        total += n;
    }
    if (n < 0 || glfs_fsync(fd, NULL, NULL) < 0 || glfs_close(fd) < 0) {
        fprintf(stderr, "gfapi-seq: %s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("{\"op\": \"write\", \"bytes\": %lld, \"seconds\": %.6f}\n", total, now() - t0);
    close(in);
    return 0;
}

static int
do_read(glfs_t *fs, const char *path, char *buf)
{
    long long total = 0;
    glfs_fd_t *fd;
    double t0 = now();
    ssize_t n;

    if (!(fd = glfs_open(fs, path, O_RDONLY))) {
        fprintf(stderr, "gfapi-seq: open %s: %s\n", path, strerror(errno));
        return 1;
    }
    while ((n = glfs_read(fd, buf, CHUNK, 0)) > 0)
        total += n;
    if (n < 0) {
        fprintf(stderr, "gfapi-seq: read %s: %s\n", path, strerror(errno));
        return 1;
    }
    glfs_close(fd);
    printf("{\"op\": \"read\", \"bytes\": %lld, \"seconds\": %.6f}\n", total, now() - t0);
    return 0;
}

static int
do_list(glfs_t *fs, const char *dir)
{
    long long entries = 0;
    struct dirent ent;
    struct dirent *res;
    struct stat st;
    glfs_fd_t *fd;
    double t0 = now();

    if (!(fd = glfs_opendir(fs, dir))) {
        fprintf(stderr, "gfapi-seq: opendir %s: %s\n", dir, strerror(errno));
        return 1;
    }
    for (;;) {
        if (glfs_readdirplus_r(fd, &st, &ent, &res) != 0) {
            fprintf(stderr, "gfapi-seq: readdirplus %s: %s\n", dir, strerror(errno));
            return 1;
        }
        if (!res)
            break;
        if (strcmp(ent.d_name, ".") != 0 && strcmp(ent.d_name, "..") != 0)
            entries++;
    }
    glfs_closedir(fd);
    printf("{\"op\": \"list\", \"entries\": %lld, \"seconds\": %.6f}\n", entries, now() - t0);
    return 0;
}

int
main(int argc, char **argv)
{
    glfs_t *fs;
    char *buf;
    int rc;

    if (argc < 5 || (strcmp(argv[1], "write") == 0 && argc != 6) ||
        ((strcmp(argv[1], "read") == 0 || strcmp(argv[1], "list") == 0) && argc != 5) ||
        (strcmp(argv[1], "read") != 0 && strcmp(argv[1], "write") != 0 &&
         strcmp(argv[1], "list") != 0)) {
        fprintf(stderr, "usage: gfapi-seq write HOSTS VOLUME PATH FILE\n"
                        "       gfapi-seq read HOSTS VOLUME PATH\n"
                        "       gfapi-seq list HOSTS VOLUME DIR\n");
        return 2;
    }
    if (strcmp(argv[1], "list") == 0) {
        if (!(fs = connect_volume(argv[2], argv[3])))
            return 1;
        rc = do_list(fs, argv[4]);
        fflush(stdout);
        _exit(rc);
    }
    if (!(fs = connect_volume(argv[2], argv[3])))
        return 1;
    if (!(buf = malloc(CHUNK)))
        return 1;
    rc = strcmp(argv[1], "write") == 0 ? do_write(fs, argv[4], argv[5], buf)
                                       : do_read(fs, argv[4], buf);
    fflush(stdout);
    _exit(rc);
}
