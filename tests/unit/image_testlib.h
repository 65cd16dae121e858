/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * image_testlib.h: what the image unit tests (test_image_probe.c,
 * test_qcow2_*.c) share. Links gfpool_image alone, like the tests: the image
 * layer needs no gfapi.
 */
#pragma once

#include "gfpool_image.h"

#define KiB (G_GUINT64_CONSTANT(1024))
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define TiB (1024 * GiB)

/* g_test_init() plus a scratch directory; run the tests, then remove it. */
void image_testlib_init(int *argc, char ***argv);
int image_testlib_run(void);
/* name inside the scratch directory */
char *tmp_path(const char *name);

/* ---- local files: the fd is the opaque pointer ---- */
gboolean fd_write(void *opaque, guint64 off, const void *buf, gsize len, GError **error);
gssize fd_read(void *opaque, guint64 off, void *buf, gsize len, GError **error);
guint64 div_round_up_test(guint64 a, guint64 b);
gboolean create_qcow2(const char *path, const GfpoolQcow2Params *params, GError **error);
void probe_file(const char *path, GfpoolProbe *p);
guint64 file_size_of(const char *path);

/* ---- qemu-img, run in the scratch directory ---- */
gboolean run(const char *const *argv, char **out, GError **error);
void qemu_img(const char *const *argv, char **out);
guint64 json_uint(const char *json, const char *key);
char *json_str(const char *json, const char *key);
char *qemu_info(const char *path, const char *fmt);
void qemu_check(const char *path);
void qemu_io(const char *path, const char *cmd);
void qemu_compare(const char *a, const char *fmt_a, const char *b, const char *fmt_b);

/* ---- images in memory ---- */
typedef struct {
    guint8 *data;
    gsize len;
} MemFile;

gboolean mem_write(void *opaque, guint64 off, const void *buf, gsize len, GError **error);
gssize mem_read(void *opaque, guint64 off, void *buf, gsize len, GError **error);
/* fails every read with G_FILE_ERROR_IO "disk on fire" */
gssize broken_read(void *opaque, guint64 off, void *buf, gsize len, GError **error);
/* a small valid qcow2 (1 GiB, 4 KiB clusters, backing "base.img", raw) */
MemFile *mem_qcow2(void);
void mem_free(MemFile *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MemFile, mem_free)
void put_be32(guint8 *b, guint32 v);
void put_be64(guint8 *b, guint64 v);

/* ---- maps ---- */
gboolean collect_extent(void *opaque, const GfpoolExtent *e, GError **error);
gboolean map_file(const char *path, GArray **out, GError **error);
gboolean same_extents(GArray *a, GArray *b);
GArray *canon(GArray *in);
GArray *qemu_map(const char *path);
/* our map of path: tiles the image, coalesced, the same as qemu-img map */
GArray *check_map(const char *path);
