#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every measured figure the given documents quote is in the table they
cite for it (TAP).

A benchmark script writes its table between markers
  <!-- BEGIN NAME RELEASE (written by SCRIPT) --> ... <!-- END NAME RELEASE -->
in bench/README.md (docs/guest-io.md for bench/guest_io.py); the table's
name is NAME RELEASE in lower case, words joined by '-', e.g.
guest-lifecycle-debian12. A document quotes a figure in a paragraph, list
item or table row that cites the table: "(bench/README.md, table
guest-lifecycle-debian12)". Each figure there (a number with s, ms, µs,
MiB/s, × or %) must be in one of the tables that scope cites, so a
benchmark run that changes a figure fails this test until the text
follows. A figure in a scope citing nothing fails too, unless the scope
says it holds no measurement with <!-- figures: not measured --> (a
deadline, a timeout).

usage: test_readme_figures.py TOP DOC...
"""
import os
import re
import sys

SOURCES = ('bench/README.md', 'docs/guest-io.md')
BLOCK = re.compile(r'<!-- BEGIN ([A-Z][A-Z ]*?) (debian\d+) \(written by [^)]*\) -->'
                   r'(.*?)<!-- END \1 \2 -->', re.S)
CITE = re.compile(r'\((bench/README\.md|docs/guest-io\.md), tables? ([a-z0-9-]+(?:(?:, | and )[a-z0-9-]+)*)\)')
FIGURE = re.compile(r'(?<![\w.,/-])(\d+(?:\.\d+)?)\s?(ms|µs|MiB/s|s|×|%)(?![\w/])')
EXEMPT = '<!-- figures: not measured -->'


def tables(top):
    """{(file, name): the table rows' text}"""
    found = {}
    for src in SOURCES:
        with open(os.path.join(top, src)) as f:
            text = f.read()
        for m in BLOCK.finditer(text):
            name = '-'.join(m.group(1).lower().split() + [m.group(2)])
            rows = [line for line in m.group(3).splitlines() if line.startswith('|')]
            found[(src, name)] = '\n'.join(rows)
    return found


def scopes(text):
    """(line number, text) of each paragraph, list item and table row,
    code blocks left out."""
    out, cur, start, fence = [], [], 0, False

    def flush():
        if cur:
            out.append((start, ' '.join(cur)))
        cur.clear()

    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith('```'):
            flush()
            fence = not fence
            continue
        if fence:
            continue
        s = line.strip()
        if not s or s.startswith('#'):
            flush()
        elif s.startswith('|'):
            flush()
            out.append((i, s))
        else:
            if re.match(r'([-*]|\d+\.) ', s):
                flush()
            if not cur:
                start = i
            cur.append(s)
    flush()
    return out


def holds(rows, number, unit):
    """The table's rows hold this number: with its unit, or, for MiB/s
    (which the tables put in the column heading), as a bare number."""
    n = re.escape(number)
    if re.search(r'(?<![\d.])' + n + r'\s?' + re.escape(unit) + r'(?![\w/])', rows):
        return True
    return unit == 'MiB/s' and re.search(r'(?<![\d.])' + n + r'(?![\d.])', rows) is not None


def main():
    top, docs = sys.argv[1], sys.argv[2:]
    known = tables(top)
    n = fails = 0

    def report(ok, what):
        nonlocal n, fails
        n += 1
        fails += not ok
        print('%s %d - %s' % ('ok' if ok else 'not ok', n, what))

    # bench/README.md, "Tables by name"
    for src, name in [('bench/README.md', '%s-%s' % (t, r))
                      for t in ('management-results', 'data-results', 'guest-lifecycle')
                      for r in ('debian12', 'debian13')] + \
                     [('docs/guest-io.md', 'guest-io-results-' + r) for r in ('debian12', 'debian13')]:
        report((src, name) in known, '%s has table %s' % (src, name))
    for doc in docs:
        with open(os.path.join(top, doc)) as f:
            text = f.read()
        for line, scope in scopes(text):
            figures = FIGURE.findall(re.sub(r'`[^`]*`', '', CITE.sub('', scope)))
            cited = [(src, t) for src, names in CITE.findall(scope)
                     for t in re.split(r', | and ', names)]
            for key in cited:
                report(key in known, '%s:%d cites %s, table %s: it exists' % (doc, line, *key))
            if not figures:
                continue
            if not cited:
                if EXEMPT not in scope:
                    report(False, '%s:%d quotes %s citing no table' % (
                        doc, line, ', '.join(' '.join(f) for f in figures)))
                continue
            for number, unit in figures:
                where = [k for k in cited if k in known and holds(known[k], number, unit)]
                report(bool(where), '%s:%d: %s %s in %s' % (
                    doc, line, number, unit, ' or '.join(t for _, t in cited)))
    print('1..%d' % n)
    return 1 if fails else 0


if __name__ == '__main__':
    sys.exit(main())
