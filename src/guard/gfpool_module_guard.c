/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_module_guard.c: what libvirtd loads under the name of Debian's
 * gluster module; it loads gfpool's real module only into the libvirt
 * gfpool was built for.
 *
 * A module built against libvirt's internal headers is only right for
 * that exact release: the structs it reads change layout between
 * releases, and its references to libvirt's internal functions carry the
 * release in their symbol version (LIBVIRT_PRIVATE_9.0.0). In any other
 * release the real module cannot even be dlopen()ed, and libvirtd exits
 * when a module fails to load. So the file libvirtd loads is this one,
 * which uses only libvirt's public API: in the release it was built for,
 * it loads the real module (GUARD_IMPL, next to this file in a build
 * tree, else in GFPOOL_IMPL_DIR) and calls its register function; in any
 * other, or when the real module is missing or does not load, it logs one
 * line at error level, registers nothing and returns success. libvirtd
 * lives; a gluster pool or disk then fails with libvirt's own "missing
 * backend" error.
 *
 * Built twice (meson.build): GUARD_REGISTER, GUARD_IMPL,
 * GUARD_IMPL_REGISTER and GUARD_DISABLED differ between the pool module
 * and the storage-file module. GFPOOL_LIBVIRT_VERSION is the release
 * built for, as virGetVersion() numbers it.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>

int GUARD_REGISTER(void);

/* libvirt's log source (src/util/virlog.h, unchanged from 9.0 to 11.3);
 * the spare room only guards against a later release growing it. */
typedef struct {
    const char *name;
    unsigned int priority;
    unsigned int serial;
    char spare[64];
} GuardLogSource;

typedef void (*GuardLogFunc)(GuardLogSource *source, int priority, const char *filename,
                             int linenr, const char *funcname, void *metadata,
                             const char *fmt, ...);

#define GUARD_LOG_ERROR 4   /* VIR_LOG_ERROR */

static GuardLogSource guard_log_source = { .name = "gfpool.guard", .priority = GUARD_LOG_ERROR };

/* Into libvirtd's own log outputs when it has them (virLogMessage is
 * internal but looked up by name, without a symbol version), else on
 * stderr, which systemd puts in the journal. */
static void __attribute__((format(printf, 1, 2)))
guard_log_error(const char *fmt, ...)
{
    GuardLogFunc log_message = (GuardLogFunc)dlsym(RTLD_DEFAULT, "virLogMessage");
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (log_message)
        log_message(&guard_log_source, GUARD_LOG_ERROR, __FILE__, __LINE__, __func__, NULL,
                    "%s", line);
    else
        fprintf(stderr, "%s\n", line);
}

static void
guard_version_string(unsigned long v, char *buf, size_t len)
{
    snprintf(buf, len, "%lu.%lu.%lu", v / 1000000, v / 1000 % 1000, v % 1000);
}

/* The real module: next to this file's real path (a build tree, or a
 * test bed that links this file into a module directory), else where
 * the package installs it. */
static void *
guard_open_impl(char *path, size_t len)
{
    Dl_info self;
    char real[PATH_MAX];
    void *handle;

    if (dladdr((void *)GUARD_REGISTER, &self) && self.dli_fname &&
        realpath(self.dli_fname, real)) {
        char *slash = strrchr(real, '/');
        if (slash) {
            *slash = '\0';
            snprintf(path, len, "%s/%s", real, GUARD_IMPL);
            if ((handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE)))
                return handle;
        }
    }
    snprintf(path, len, "%s/%s", GFPOOL_IMPL_DIR, GUARD_IMPL);
    return dlopen(path, RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE);
}

int
GUARD_REGISTER(void)
{
    unsigned long running = 0;
    char built_s[32];
    char running_s[32];
    char path[PATH_MAX + 64];
    void *impl;
    int (*impl_register)(void);

    guard_version_string(GFPOOL_LIBVIRT_VERSION, built_s, sizeof(built_s));
    if (virGetVersion(&running, NULL, NULL) < 0) {
        guard_log_error("gfpool: built for libvirt %s, cannot tell which libvirt this is: "
                        "%s disabled; rebuild or reinstall gfpool", built_s, GUARD_DISABLED);
        return 0;
    }
    guard_version_string(running, running_s, sizeof(running_s));
    if (running != GFPOOL_LIBVIRT_VERSION) {
        guard_log_error("gfpool: built for libvirt %s, running in %s: %s disabled; "
                        "rebuild or reinstall gfpool", built_s, running_s, GUARD_DISABLED);
        return 0;
    }
    if (!(impl = guard_open_impl(path, sizeof(path)))) {
        /* dlerror's text does not outlive the next dl call (the logger's
         * dlsym) */
        char why[512];
        const char *err = dlerror();

        snprintf(why, sizeof(why), "%s", err ? err : "unknown error");
        guard_log_error("gfpool: cannot load %s: %s: %s disabled; reinstall gfpool",
                        path, why, GUARD_DISABLED);
        return 0;
    }
    if (!(impl_register = (int (*)(void))dlsym(impl, GUARD_IMPL_REGISTER))) {
        guard_log_error("gfpool: %s has no %s: %s disabled; reinstall gfpool",
                        path, GUARD_IMPL_REGISTER, GUARD_DISABLED);
        return 0;
    }
    return impl_register();
}
