#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# gfpool(1) and the bash completion against the CLI itself (TAP). The verb
# table is what "gfpool --list-verbs" prints (src/tools/gfpool.c); the man
# page renders without warnings, has one VERBS entry per verb of the table,
# in its order, with the table's synopsis as its tag and the table's summary
# as its first sentence, and lists every option the CLI prints; the
# completion loads in plain bash (no bash-completion package), reads the
# table from the CLI, completes verbs, options, enumerated values, and
# volume names from "gfpool vol-list" (a stub here: no gluster server
# needed).
#
# Usage: test_man_completion.sh GFPOOL.1 GFPOOL.BASH-COMPLETION GFPOOL-BINARY
set -u
# Absolute, as the completion runs in another directory; a bare command
# name that is no file here stays as it is (found on PATH).
abspath() {
    case $1 in
        /*) printf '%s' "$1" ;;
        *) if [ -e "$1" ]; then printf '%s/%s' "$PWD" "$1"; else printf '%s' "$1"; fi ;;
    esac
}
man_page=$(abspath "$1")
completion=$(abspath "$2")
gfpool=$(abspath "$3")

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
n=0

ok() { # STATUS DESCRIPTION [DIAGNOSTICS]
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        [ -n "${3-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
    fi
}
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }

# ---- what the CLI says --------------------------------------------------

# The verb table: NAME TAB SYNOPSIS TAB SUMMARY TAB OPTIONS, one a line.
"$gfpool" --list-verbs > "$t/verbs.tsv"
verbs=$(cut -f1 "$t/verbs.tsv")
nverbs=$(printf '%s\n' "$verbs" | grep -c .)
verb_field() { awk -F '\t' -v verb="$1" -v f="$2" '$1 == verb { print $f }' "$t/verbs.tsv"; }
# "gfpool --help": the lines between "Verbs:" and a blank line, NAME SUMMARY.
help_verbs=$("$gfpool" --help | awk '/^Verbs:/ { on = 1; next } on && /^$/ { exit } on')

# "gfpool VERB --help-all" (uri-parse has only --help): one line per option,
# SECTION LONG [SHORT], SECTION being help, pool or own.
cli_options() {
    local out
    out=$("$gfpool" "$1" --help-all 2>/dev/null) || out=$("$gfpool" "$1" --help)
    printf '%s\n' "$out" | awk '
        /^Help Options:/ { s = "help"; next }
        /^Pool options:/ { s = "pool"; next }
        /^Application Options:/ { s = "own"; next }
        /^[^ ]/ { s = "" }
        s != "" && /^  +-/ {
            short = ""; long = ""
            for (i = 1; i <= NF; i++) {
                w = $i; sub(/,$/, "", w); sub(/=.*/, "", w)
                if (w ~ /^--[a-z]/) { long = w; break }
                if (w ~ /^-[a-zA-Z]$/) short = w
            }
            if (long != "") print s, long, short
        }'
}

# The man page as text: font escapes dropped, \- as -, one line per source
# line, with the section (.SH) it is in and its .RS depth, and a mark on
# the line that follows a .TP (a tag).
man_text() {
    awk '
        /^\.SH / { sec = $0; sub(/^\.SH +/, "", sec); gsub(/"/, "", sec); next }
        /^\.RS/ { depth++; next }
        /^\.RE/ { depth--; next }
        /^\.TP/ { tag = 1; next }
        /^\.\\"/ { next }
        {
            line = $0
            gsub(/\\-/, "-", line)
            gsub(/\\f[BIRP]/, "", line)
            gsub(/\\f\(..|\\f\[[^]]*\]/, "", line)
            gsub(/\\&/, "", line)
            if (match(line, /^\.(B|I) /)) {
                line = substr(line, RLENGTH + 1)
                gsub(/"/, "", line)
            } else if (match(line, /^\.(BR|RB|BI|IB|IR|RI) /)) {
                # Alternating fonts: the arguments, "quoted" or not, are
                # joined without a blank.
                rest = substr(line, RLENGTH + 1); line = ""; q = 0
                for (i = 1; i <= length(rest); i++) {
                    c = substr(rest, i, 1)
                    if (c == "\"") q = !q
                    else if (c == " " && !q) continue
                    else line = line c
                }
            }
            print sec "\t" depth + 0 "\t" tag + 0 "\t" line
            tag = 0
        }' "$man_page"
}
man_text > "$t/man.txt"

# The tag lines of the VERBS section at top level (the verb entries), and
# the text of the entry of VERB: from its tag to the next top-level tag.
man_verb_tags() { awk -F '\t' '$1 == "VERBS" && $2 == 0 && $3 == 1 { print $4 }' "$t/man.txt"; }
man_verb_entry() {
    awk -F '\t' -v verb="$1" '
        $1 == "VERBS" && $2 == 0 && $3 == 1 { split($4, w, " "); on = (w[1] == verb) }
        $1 != "VERBS" { on = 0 }
        on { print $4 }' "$t/man.txt"
}
# The text of VERB's entry before its options (.RS), joined into one line.
man_verb_body() {
    awk -F '\t' -v verb="$1" '
        $1 == "VERBS" && $2 == 0 && $3 == 1 { split($4, w, " "); on = (w[1] == verb); next }
        $1 != "VERBS" || $2 > 0 { if (on) exit }
        on { printf "%s%s", sep, $4; sep = " " }' "$t/man.txt"
}
man_section() { awk -F '\t' -v s="$1" '$1 == s { print $4 }' "$t/man.txt"; }
# An option as a word of the text ("--format" and not "--format-x").
has_option() { grep -Eq -- "(^|[^[:alnum:]-])$1([^[:alnum:]-]|\$)"; }

# ---- the plan -----------------------------------------------------------
echo "1..$((14 + 5 * nverbs))"

# ---- the man page -------------------------------------------------------
if command -v man >/dev/null 2>&1; then
    warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
               man --warnings -E UTF-8 -l "$man_page" 2>&1 >/dev/null)
    [ -z "$warnings" ]; ok $? "man page renders without warnings" "$warnings"
else
    skip "man page renders without warnings: man is not installed"
fi

if command -v lexgrog >/dev/null 2>&1; then
    whatis=$(lexgrog "$man_page" 2>&1)
    printf '%s\n' "$whatis" | grep -q '"gfpool - '; ok $? "lexgrog reads the NAME section" "$whatis"
else
    skip "lexgrog reads the NAME section: lexgrog is not installed"
fi

[ "$nverbs" -ge 10 ]; ok $? "gfpool --list-verbs lists the verbs ($nverbs)" "$verbs"

want=$(awk -F '\t' '{ print $1, $3 }' "$t/verbs.tsv")
got=$(printf '%s\n' "$help_verbs" | sed -E 's/^ +//; s/ +/ /')
[ "$want" = "$got" ]; ok $? "gfpool --help lists the table's verbs and summaries" \
    "$(diff <(echo "$want") <(echo "$got"))"

missing=""
while read -r sec long short; do
    [ "$sec" = help ] || continue
    man_section "POOL OPTIONS" | has_option "$long" || missing+="$long "
done < <(for v in $verbs; do cli_options "$v"; done | sort -u)
[ -z "$missing" ]; ok $? "man page describes the help options" "missing: $missing"

missing=""
while read -r sec long short; do
    [ "$sec" = pool ] || continue
    text=$(man_section "POOL OPTIONS")
    printf '%s\n' "$text" | has_option "$long" || missing+="$long "
    if [ -n "$short" ]; then
        printf '%s\n' "$text" | grep -Eq -- "(^|[^[:alnum:]-])$short, $long([^[:alnum:]-]|\$)" ||
            missing+="$short "
    fi
done < <(for v in $verbs; do cli_options "$v"; done | sort -u)
[ -z "$missing" ]; ok $? "man page describes the pool options in POOL OPTIONS" "missing: $missing"

tags=$(man_verb_tags)
got=$(printf '%s\n' "$tags" | awk '{ print $1 }')
[ "$got" = "$verbs" ]; ok $? "man page's VERBS entries are the table's verbs, in its order" \
    "$(diff <(echo "$verbs") <(echo "$got"))"
for v in $verbs; do
    printf '%s\n' "$tags" | awk -v verb="$v" '$1 == verb { found = 1 } END { exit !found }'
    ok $? "man page has a VERBS entry for $v"

    synopsis=$(verb_field "$v" 2)
    want="$v${synopsis:+ $synopsis}"
    got=$(printf '%s\n' "$tags" | awk -v verb="$v" '$1 == verb')
    [ "$want" = "$got" ]; ok $? "man page entry of $v has the table's synopsis" \
        "table: $want
man:   $got"

    summary=$(verb_field "$v" 3)
    summary=${summary%.}
    body=$(man_verb_body "$v")
    [[ $body == "$summary"* ]]; ok $? "man page entry of $v begins with the table's summary" \
        "table: $summary
man:   $body"

    missing=""
    entry=$(man_verb_entry "$v")
    while read -r sec long short; do
        [ "$sec" = own ] || continue
        printf '%s\n' "$entry" | has_option "$long" || missing+="$long "
        if [ -n "$short" ]; then
            printf '%s\n' "$entry" | has_option "$short" || missing+="$short "
        fi
    done < <(cli_options "$v")
    [ -z "$missing" ]; ok $? "man page entry of $v lists its options" "missing: $missing"
done

# ---- the completion -----------------------------------------------------

# A gfpool stub for the completion: --list-verbs is the real one's,
# vol-list prints the table the real one prints, with two volumes, and
# every call is logged.
mkdir -p "$t/bin" "$t/cwd"
cat > "$t/bin/gfpool" <<STUB
#!/bin/sh
printf '%s\n' "\$*" >> "$t/calls"
[ "\$1" = --list-verbs ] && exec "$gfpool" --list-verbs
[ "\$1" = vol-list ] || exit 2
printf ' %-30s %s\n' Name Path
echo '---------------------------------------------------------------------------------'
printf ' %-30s %s\n' base.img gluster://gluster1/rep3/images/base.img
printf ' %-30s %s\n' vm1.qcow2 gluster://gluster1/rep3/images/vm1.qcow2
STUB
chmod +x "$t/bin/gfpool"
: > "$t/cwd/pool.xml"

# complete LINE: what the completion offers for LINE (cursor at its end),
# one a line, in a plain bash with no startup file.
complete_line() {
    (cd "$t/cwd" && PATH="$t/bin:$PATH" bash --norc --noprofile -c '
        source "$1" || exit 1
        COMP_LINE=$2 COMP_POINT=${#2}
        read -ra COMP_WORDS <<< "$2"
        [[ $2 == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMPREPLY=()
        _gfpool gfpool "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" "$1")
}
lines() { printf '%s\n' "$@"; }

loaded=$(bash --norc --noprofile -c 'source "$1" && complete -p gfpool' _ "$completion" 2>&1)
printf '%s\n' "$loaded" | grep -q -- '-F _gfpool gfpool'; ok $? "completion loads in plain bash" "$loaded"

for v in $verbs; do
    want=$(cli_options "$v" | awk '{ print $2 }' | sort -u)
    got=$(bash --norc --noprofile -c 'source "$1" && _gfpool_load "$3" && _gfpool_verb_opts "$2"' \
              _ "$completion" "$v" "$gfpool" | sort -u)
    [ "$want" = "$got" ]; ok $? "completion offers the options $v --help-all prints" \
        "$(diff <(echo "$want") <(echo "$got"))"
done

got=$(complete_line "gfpool ")
want=$(lines $verbs help)
[ "$(sort <<< "$got")" = "$(sort <<< "$want")" ]; ok $? "'gfpool ' offers every verb" \
    "$(diff <(sort <<< "$want") <(sort <<< "$got"))"

got=$(complete_line "gfpool vo")
want=$(printf '%s\n' $verbs | grep '^vo')
printf '%s\n' "$got" | grep -qx vol-create-as && [ "$(sort <<< "$got")" = "$(sort <<< "$want")" ]
ok $? "'gfpool vo' offers vol-create-as and the other vol- verbs" "got: $(echo $got)"

got=$(complete_line "gfpool vol-create-as --format ")
[ "$got" = "$(lines raw qcow2)" ]; ok $? "'gfpool vol-create-as --format ' offers raw and qcow2" "got: $(echo $got)"

got=$(complete_line "gfpool vol-list --transport ")
[ "$got" = "$(lines tcp unix rdma)" ]; ok $? "'--transport ' offers tcp, unix and rdma" "got: $(echo $got)"

got=$(complete_line "gfpool vol-info --pool-xml po")
[ "$got" = "pool.xml" ]; ok $? "'--pool-xml po' completes the file name" "got: $(echo $got)"

if command -v timeout >/dev/null 2>&1; then
    rm -f "$t/calls"
    got=$(complete_line "gfpool vol-delete --pool-xml pool.xml ")
    calls=$(cat "$t/calls" 2>/dev/null)
    [ "$got" = "$(lines base.img vm1.qcow2)" ] &&
        printf '%s\n' "$calls" | grep -q '^vol-list .*--pool-xml pool.xml'
    ok $? "'gfpool vol-delete --pool-xml FILE ' offers the volumes of gfpool vol-list" \
        "got: $(echo $got)
calls: $calls"
else
    skip "'gfpool vol-delete --pool-xml FILE ' offers volumes: timeout(1) is missing"
fi
