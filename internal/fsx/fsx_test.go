package fsx

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadRegular(small, 5, nil); err != nil || string(b) != "hello" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := ReadRegular(small, 4, nil); err == nil || !strings.Contains(err.Error(), "larger than 4 bytes") {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := ReadRegular(dir, 10, nil); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("a directory: %v", err)
	}
	if _, err := ReadRegular("/dev/zero", 10, nil); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("a device: %v", err)
	}
	refuse := errors.New("refused")
	if _, err := ReadRegular(small, 10, func(fs.FileInfo) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("check: %v", err)
	}
}
