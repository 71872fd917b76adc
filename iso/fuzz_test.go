package iso

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"testing"
)

func seedMessages(f *testing.F) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "messages", "*.hex"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds under testdata/messages: %v", err)
	}
	var out [][]byte
	for _, name := range files {
		out = append(out, mustHex(f, name))
	}
	return out
}

// FuzzReadFrame feeds arbitrary streams to the frame reader: it must never
// panic, never return more than MaxFrameBytes, and give back exactly the
// frames a writer put in.
func FuzzReadFrame(f *testing.F) {
	for _, m := range seedMessages(f) {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, m); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 1})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bytes.NewReader(stream)
		for i := 0; i < 100; i++ {
			p, err := ReadFrame(r)
			if err != nil {
				if !errors.Is(err, ErrFrame) && !errors.Is(err, io.EOF) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if len(p) > MaxFrameBytes {
				t.Fatalf("frame of %d bytes", len(p))
			}
			if len(p) > 0 {
				var again bytes.Buffer
				if err := WriteFrame(&again, p); err != nil || binary.BigEndian.Uint16(again.Bytes()) != uint16(len(p)) {
					t.Fatalf("re-framing %d bytes: %v", len(p), err)
				}
			}
		}
	})
}

// FuzzUnpack feeds arbitrary payloads to Unpack: it must never panic, and
// whatever it accepts must pack and unpack again to the same message.
func FuzzUnpack(f *testing.F) {
	for _, m := range seedMessages(f) {
		f.Add(m)
	}
	f.Add([]byte("0800"))
	f.Add([]byte("08008000000000000000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unpack(b)
		if err != nil {
			return
		}
		packed, err := Pack(m)
		if err != nil {
			t.Fatalf("accepted %q but cannot pack it: %v", b, err)
		}
		again, err := Unpack(packed)
		if err != nil {
			t.Fatalf("cannot unpack our own packing %q: %v", packed, err)
		}
		if *again != *m {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", *m, *again)
		}
	})
}
