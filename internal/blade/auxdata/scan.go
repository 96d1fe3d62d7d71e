package auxdata

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// scanPickle walks the opcodes of a pickle without building anything and
// checks that every length-prefixed argument fits in the remaining bytes.
// gopickle allocates a declared length before reading it, so an unchecked
// 4 GiB BINUNICODE in a 100-byte file would exhaust memory.
func scanPickle(b []byte) error {
	i := 0
	need := func(n uint64) error {
		if n > uint64(len(b)-i) {
			return fmt.Errorf("malformed pickle: argument of %d bytes at offset %d runs past the end", n, i)
		}
		return nil
	}
	line := func() error {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return fmt.Errorf("malformed pickle: unterminated line at offset %d", i)
		}
		i += j + 1
		return nil
	}
	for i < len(b) {
		op := b[i]
		i++
		var n uint64
		switch op {
		case '.': // STOP
			return nil
		case '(', '0', '1', '2', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 'R', 's', 't', ')', 'u', 'Q', 'N',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
			continue
		case 'K', 'h', 'q', 0x80, 0x82:
			n = 1
		case 'M', 0x83:
			n = 2
		case 'J', 'j', 'r', 0x84:
			n = 4
		case 'G', 0x95:
			n = 8
		case 'I', 'L', 'F', 'S', 'V', 'P', 'g', 'p':
			if err := line(); err != nil {
				return err
			}
			continue
		case 'c', 'i':
			if err := line(); err != nil {
				return err
			}
			if err := line(); err != nil {
				return err
			}
			continue
		case 'U', 'C', 0x8c, 0x8a:
			if err := need(1); err != nil {
				return err
			}
			n = 1 + uint64(b[i])
		case 'T', 'B', 'X', 0x8b:
			if err := need(4); err != nil {
				return err
			}
			n = 4 + uint64(binary.LittleEndian.Uint32(b[i:]))
		case 0x8d, 0x8e, 0x96:
			if err := need(8); err != nil {
				return err
			}
			l := binary.LittleEndian.Uint64(b[i:])
			if l > uint64(len(b)) {
				return fmt.Errorf("malformed pickle: argument of %d bytes at offset %d runs past the end", l, i)
			}
			n = 8 + l
		default:
			return fmt.Errorf("malformed pickle: unknown opcode 0x%02x at offset %d", op, i-1)
		}
		if err := need(n); err != nil {
			return err
		}
		i += int(n)
	}
	return fmt.Errorf("malformed pickle: no STOP opcode")
}
