//go:build unix

package audit

import (
	"path/filepath"
	"syscall"
)

// freeSpace returns the bytes available to unprivileged users on the file
// system that holds path.
func freeSpace(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
