#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A tiny bootable disk image for gfpool's guest tests, assembled by hand.

The image is one 512-byte x86 real-mode boot sector (the BIOS loads it at
0000:7C00 and jumps there with DL = boot drive) followed by zero padding.
The code writes one line to COM1 (I/O port 0x3F8) and halts for ever:

    offset  bytes         instruction            note
    0x00    FA            cli                    no interrupts: hlt is final
    0x01    FC            cld                    lodsb counts upwards
    0x02    31 C0         xor  ax, ax
    0x04    8E D8         mov  ds, ax            DS = 0: msg is at 0:7Cxx
    0x06    BE lo hi      mov  si, MSG           absolute address 0x7C00+0x17
    0x09    BA F8 03      mov  dx, 0x03F8        COM1 data register (THR)
    0x0C    AC            lodsb                  AL = [DS:SI], SI += 1
    0x0D    84 C0         test al, al
    0x0F    74 03         jz   +3 (-> 0x14)      NUL ends the message
    0x11    EE            out  dx, al            one byte to the UART
    0x12    EB F8         jmp  -8 (-> 0x0C)
    0x14    F4            hlt
    0x15    EB FD         jmp  -3 (-> 0x14)      halt again if ever woken
    0x17    ...           MSG: ASCII text, NUL
    0x1FE   55 AA         boot signature

The UART is not initialised: QEMU's 16550 emulation sends whatever is
written to THR at any baud rate (a real one would need a divisor and LCR).
No LSR polling either: QEMU's THR is always ready.

With ticks=True (--ticks) the sector is a "ticking" guest instead: it prints
the message + CR LF once, then for ever, about twice a second, a line
"TICK xxxx" CR LF where xxxx is a 16-bit counter (BX, nowhere else) in four
upper-case hex digits, from 0000 upwards by one per line (0000 again after
FFFF, some 9 hours on).  A guest that was live-migrated keeps counting from
where it was; a restarted one would print the message and TICK 0000 again.
The pace comes from the BIOS timer (IRQ0, 18.2 Hz, whose handler counts in
the BIOS data area word 0:046C): each line waits for 9 changes of that word
with sti; hlt, so the vCPU is idle in between and the rate does not depend
on how fast TCG runs.  Interrupts stay enabled from the first sti on; the
BIOS handler preserves every register.

    offset  bytes         instruction            note
    0x00    FA            cli                    no IRQ before the stack
    0x01    FC            cld                    lodsb counts upwards
    0x02    31 C0         xor  ax, ax
    0x04    8E D8         mov  ds, ax            DS = 0: data at 0:7Cxx, BDA
    0x06    8E D0         mov  ss, ax
    0x08    BC 00 7C      mov  sp, 0x7C00        stack below the sector
    0x0B    BA F8 03      mov  dx, 0x03F8        COM1 THR, kept in DX
    0x0E    BE 5C 7C      mov  si, MSG           0x7C00+0x5C
    0x11    E8 36 00      call +0x36 (-> 0x4A)   puts: the message + CR LF
    0x14    31 DB         xor  bx, bx            BX = the TICK counter
    0x16    B9 09 00      mov  cx, 9             TICK: 9 timer ticks a line
    0x19    A1 6C 04      mov  ax, [0x046C]      WAIT: BIOS tick count (low)
    0x1C    FB            sti                    IDLE: sti's shadow makes
    0x1D    F4            hlt                      the pair atomic
    0x1E    3B 06 6C 04   cmp  ax, [0x046C]
    0x22    74 F8         je   -8 (-> 0x1C)      woken by another IRQ
    0x24    E2 F3         loop -13 (-> 0x19)     CX -= 1, again if not 0
    0x26    BE 53 7C      mov  si, TICKSTR       0x7C00+0x53
    0x29    E8 1E 00      call +0x1E (-> 0x4A)   puts "TICK "
    0x2C    B9 04 00      mov  cx, 4             four hex digits
    0x2F    C1 C3 04      rol  bx, 4             HEX: next nibble to the
    0x32    88 D8         mov  al, bl              bottom (4 x 4 = 16: BX is
    0x34    24 0F         and  al, 0x0F            itself again afterwards)
    0x36    04 30         add  al, '0'
    0x38    3C 39         cmp  al, '9'
    0x3A    76 02         jbe  +2 (-> 0x3E)
    0x3C    04 07         add  al, 7             'A'..'F' for 10..15
    0x3E    EE            out  dx, al
    0x3F    E2 EE         loop -18 (-> 0x2F)
    0x41    BE 59 7C      mov  si, CRLF          0x7C00+0x59
    0x44    E8 03 00      call +3 (-> 0x4A)      puts CR LF
    0x47    43            inc  bx
    0x48    EB CC         jmp  -52 (-> 0x16)     next line
    0x4A    AC            lodsb                  PUTS: AL = [DS:SI], SI += 1
    0x4B    84 C0         test al, al
    0x4D    74 03         jz   +3 (-> 0x52)      NUL ends the string
    0x4F    EE            out  dx, al
    0x50    EB F8         jmp  -8 (-> 0x4A)
    0x52    C3            ret
    0x53    54 49 43 4B   TICKSTR: "TICK ", NUL
            20 00
    0x59    0D 0A 00      CRLF: CR LF NUL
    0x5C    ...           MSG: ASCII text, CR LF, NUL
    0x1FE   55 AA         boot signature

(rol r16, imm8 is a 186 instruction; every CPU QEMU emulates has it.)

Usage: bootsector.py OUT [--size BYTES] [--message TEXT] [--ticks]
       (import: make_image(message) -> bytes, write_image(path, ...),
        parse_ticks(serial_text) -> the TICK counters)
"""

import argparse
import re
import struct
import sys

LOAD_ADDR = 0x7C00
MSG_OFFSET = 0x17
TICKS_TICKSTR_OFFSET = 0x53
TICKS_CRLF_OFFSET = 0x59
TICKS_MSG_OFFSET = 0x5C
DEFAULT_MESSAGE = 'GFPOOL-BOOT-OK'
DEFAULT_SIZE = 1 << 20


def _signed(code):
    """The sector: code padded with zeros to 510 bytes, then the boot
    signature."""
    if len(code) > 510:
        raise ValueError('message too long for one sector')
    return bytes(code) + b'\0' * (510 - len(code)) + b'\x55\xAA'


def boot_sector(message=DEFAULT_MESSAGE, ticks=False):
    """The 512-byte sector printing `message` + CR LF on COM1 (then, with
    `ticks`, a "TICK xxxx" CR LF line about twice a second for ever)."""
    text = (message + '\r\n').encode('ascii')
    if b'\0' in text:
        raise ValueError('message must not contain NUL')
    if ticks:
        return _ticks_sector(text)
    code = bytearray()
    code += b'\xFA'                                        # cli
    code += b'\xFC'                                        # cld
    code += b'\x31\xC0'                                    # xor ax, ax
    code += b'\x8E\xD8'                                    # mov ds, ax
    code += b'\xBE' + struct.pack('<H', LOAD_ADDR + MSG_OFFSET)  # mov si, MSG
    code += b'\xBA\xF8\x03'                                # mov dx, 0x3F8
    assert len(code) == 0x0C
    code += b'\xAC'                                        # 0x0C: lodsb
    code += b'\x84\xC0'                                    # test al, al
    code += b'\x74\x03'                                    # jz 0x14
    code += b'\xEE'                                        # out dx, al
    code += b'\xEB\xF8'                                    # jmp 0x0C
    assert len(code) == 0x14
    code += b'\xF4'                                        # 0x14: hlt
    code += b'\xEB\xFD'                                    # jmp 0x14
    assert len(code) == MSG_OFFSET
    code += text + b'\0'
    return _signed(code)


def _ticks_sector(text):
    """The ticking sector (see the second listing in the docstring);
    `text` is the message with CR LF, without NUL."""
    def addr(offset):
        return struct.pack('<H', LOAD_ADDR + offset)
    code = bytearray()
    code += b'\xFA'                                        # cli
    code += b'\xFC'                                        # cld
    code += b'\x31\xC0'                                    # xor ax, ax
    code += b'\x8E\xD8'                                    # mov ds, ax
    code += b'\x8E\xD0'                                    # mov ss, ax
    code += b'\xBC\x00\x7C'                                # mov sp, 0x7C00
    code += b'\xBA\xF8\x03'                                # mov dx, 0x3F8
    code += b'\xBE' + addr(TICKS_MSG_OFFSET)               # mov si, MSG
    code += b'\xE8\x36\x00'                                # call 0x4A (puts)
    code += b'\x31\xDB'                                    # xor bx, bx
    assert len(code) == 0x16
    code += b'\xB9\x09\x00'                                # 0x16: mov cx, 9
    assert len(code) == 0x19
    code += b'\xA1\x6C\x04'                                # 0x19: mov ax, [0x46C]
    assert len(code) == 0x1C
    code += b'\xFB'                                        # 0x1C: sti
    code += b'\xF4'                                        # hlt
    code += b'\x3B\x06\x6C\x04'                            # cmp ax, [0x46C]
    code += b'\x74\xF8'                                    # je 0x1C
    code += b'\xE2\xF3'                                    # loop 0x19
    code += b'\xBE' + addr(TICKS_TICKSTR_OFFSET)           # mov si, TICKSTR
    code += b'\xE8\x1E\x00'                                # call 0x4A (puts)
    code += b'\xB9\x04\x00'                                # mov cx, 4
    assert len(code) == 0x2F
    code += b'\xC1\xC3\x04'                                # 0x2F: rol bx, 4
    code += b'\x88\xD8'                                    # mov al, bl
    code += b'\x24\x0F'                                    # and al, 0x0F
    code += b'\x04\x30'                                    # add al, '0'
    code += b'\x3C\x39'                                    # cmp al, '9'
    code += b'\x76\x02'                                    # jbe 0x3E
    code += b'\x04\x07'                                    # add al, 7
    assert len(code) == 0x3E
    code += b'\xEE'                                        # 0x3E: out dx, al
    code += b'\xE2\xEE'                                    # loop 0x2F
    code += b'\xBE' + addr(TICKS_CRLF_OFFSET)              # mov si, CRLF
    code += b'\xE8\x03\x00'                                # call 0x4A (puts)
    code += b'\x43'                                        # inc bx
    code += b'\xEB\xCC'                                    # jmp 0x16
    assert len(code) == 0x4A
    code += b'\xAC'                                        # 0x4A: lodsb
    code += b'\x84\xC0'                                    # test al, al
    code += b'\x74\x03'                                    # jz 0x52
    code += b'\xEE'                                        # out dx, al
    code += b'\xEB\xF8'                                    # jmp 0x4A
    assert len(code) == 0x52
    code += b'\xC3'                                        # 0x52: ret
    assert len(code) == TICKS_TICKSTR_OFFSET
    code += b'TICK \0'
    assert len(code) == TICKS_CRLF_OFFSET
    code += b'\r\n\0'
    assert len(code) == TICKS_MSG_OFFSET
    code += text + b'\0'
    return _signed(code)


_TICK_LINE = re.compile(r'TICK ([0-9A-F]{4})')


def parse_ticks(text):
    """The counters of the "TICK xxxx" lines in serial output `text` (str
    or bytes), in order, as ints.  A last line without its LF (the guest
    was caught in the middle of it) is ignored, and so are other lines."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode('ascii', 'replace')
    lines = text.split('\n')[:-1]
    out = []
    for line in lines:
        m = _TICK_LINE.fullmatch(line.rstrip('\r'))
        if m:
            out.append(int(m.group(1), 16))
    return out


def make_image(message=DEFAULT_MESSAGE, size=DEFAULT_SIZE, ticks=False):
    """The boot sector padded with zeros to `size` bytes (a multiple of
    512 so that every disk model accepts it)."""
    if size < 512 or size % 512:
        raise ValueError('size must be a positive multiple of 512')
    return boot_sector(message, ticks) + b'\0' * (size - 512)


def write_image(path, message=DEFAULT_MESSAGE, size=DEFAULT_SIZE,
                ticks=False):
    with open(path, 'wb') as f:
        f.write(make_image(message, size, ticks))
    return path


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out')
    ap.add_argument('--size', type=int, default=DEFAULT_SIZE)
    ap.add_argument('--message', default=DEFAULT_MESSAGE)
    ap.add_argument('--ticks', action='store_true',
                    help='after the message, print "TICK xxxx" lines '
                    '(a 16-bit hex counter) about twice a second for ever')
    a = ap.parse_args(argv)
    write_image(a.out, a.message, a.size, a.ticks)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
