/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_volume.c: the pure rules of gfpool_volume.c (volume names).
 */
#include <string.h>

#include "gfpool_volume.h"

static void
test_name_rules(void)
{
    static const struct {
        const char *name;
        const char *why;        /* NULL: a valid name */
    } cases[] = {
        { "vm1.qcow2", NULL },
        { "spaces and 'quotes' & <xml>.img", NULL },
        { "\xc3\xa9t\xc3\xa9.img", NULL },
        { "", "it is empty" },
        { ".", "'.' and '..'" },
        { "..", "'.' and '..'" },
        { "a/b", "'/'" },
        { ".gfpool-tmp-0123456789abcdef", "reserved" },
        { "bad-\xff.img", "UTF-8" },
        /* XML attribute normalisation turns these three into spaces */
        { "a\nb", "control character" },
        { "a\tb", "control character" },
        { "a\rb", "control character" },
        { "esc\x1b[31m", "control character" },
        { "del\x7f", "control character" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        gboolean ok = gfpool_vol_name_validate(cases[i].name, strlen(cases[i].name), &err);

        g_test_message("name %zu", i);
        if (!cases[i].why) {
            g_assert_true(ok);
            g_assert_no_error(err);
            continue;
        }
        g_assert_false(ok);
        g_assert_nonnull(err);
        if (!strstr(err->message, cases[i].why))
            g_error("'%s' lacks '%s'", err->message, cases[i].why);
        /* the name is shown escaped: no control character reaches a terminal */
        for (const char *c = err->message; *c; c++)
            g_assert_true((unsigned char)*c >= 0x20 && *c != 0x7f);
    }
    {
        /* a NUL inside the given length, and 256 bytes */
        g_autoptr(GError) err = NULL;
        char longname[257];
        g_assert_false(gfpool_vol_name_validate("a\0b", 3, &err));
        g_assert_nonnull(strstr(err->message, "NUL"));
        g_clear_error(&err);
        memset(longname, 'x', 256);
        longname[256] = '\0';
        g_assert_false(gfpool_vol_name_validate(longname, 256, &err));
        g_assert_nonnull(strstr(err->message, "255"));
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/volume/name-rules", test_name_rules);
    return g_test_run();
}
