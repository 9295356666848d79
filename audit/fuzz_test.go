package audit

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzVerifyDetectsChange changes one byte of a verified log (or cuts it
// short) and asks Verify again: every change must be reported, or, for a
// cut at a line boundary, show as fewer verified lines, since records
// after the last checkpoint can be cut without trace. Verify must never
// panic on what the change leaves.
func FuzzVerifyDetectsChange(f *testing.F) {
	orig, err := os.ReadFile(keyedLog(f, 7, 3))
	if err != nil {
		f.Fatal(err)
	}
	want, err := Verify([]string{writeTemp(f, f.TempDir(), orig)}, testKeys, testPub)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint16(0), byte(1), false)
	f.Add(uint16(len(orig)-1), byte('\n'), false)
	f.Add(uint16(len(orig)/2), byte(0x20), false)
	f.Add(uint16(len(orig)/3), byte(0), true)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, pos uint16, xor byte, cut bool) {
		data := append([]byte(nil), orig...)
		i := int(pos) % len(data)
		switch {
		case cut:
			data = data[:i]
		case xor == 0:
			return // no change
		default:
			data[i] ^= xor
		}
		path := writeTemp(t, dir, data)
		defer os.Remove(path)
		rep, err := Verify([]string{path}, testKeys, testPub)
		if err == nil && rep.Lines >= want.Lines {
			t.Fatalf("change at byte %d (xor %#x, cut %v) not detected: %+v", i, xor, cut, rep)
		}
	})
}

func writeTemp(t testing.TB, dir string, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "audit-*.log")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(f.Name())
}
