#!/usr/bin/python3
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

Usage: bootsector.py OUT [--size BYTES] [--message TEXT]
       (import: make_image(message) -> bytes, write_image(path, ...))
"""

import argparse
import struct
import sys

LOAD_ADDR = 0x7C00
MSG_OFFSET = 0x17
DEFAULT_MESSAGE = 'GFPOOL-BOOT-OK'
DEFAULT_SIZE = 1 << 20


def boot_sector(message=DEFAULT_MESSAGE):
    """The 512-byte sector printing `message` + CR LF on COM1."""
    text = (message + '\r\n').encode('ascii')
    if b'\0' in text:
        raise ValueError('message must not contain NUL')
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
    if len(code) > 510:
        raise ValueError('message too long for one sector')
    code += b'\0' * (510 - len(code))
    code += b'\x55\xAA'
    assert len(code) == 512
    return bytes(code)


def make_image(message=DEFAULT_MESSAGE, size=DEFAULT_SIZE):
    """The boot sector padded with zeros to `size` bytes (a multiple of
    512 so that every disk model accepts it)."""
    if size < 512 or size % 512:
        raise ValueError('size must be a positive multiple of 512')
    return boot_sector(message) + b'\0' * (size - 512)


def write_image(path, message=DEFAULT_MESSAGE, size=DEFAULT_SIZE):
    with open(path, 'wb') as f:
        f.write(make_image(message, size))
    return path


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out')
    ap.add_argument('--size', type=int, default=DEFAULT_SIZE)
    ap.add_argument('--message', default=DEFAULT_MESSAGE)
    a = ap.parse_args(argv)
    write_image(a.out, a.message, a.size)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
