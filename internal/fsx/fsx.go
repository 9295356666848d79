// Package fsx reads files that come from configuration: regular files
// only, through a size limit, checked on the file actually opened.
package fsx

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrNotRegular is returned for a directory, device, pipe or socket.
var ErrNotRegular = errors.New("not a regular file")

// ReadRegular reads the regular file name, at most max bytes: a larger
// file is an error, whatever its size said when it was opened. check, when
// not nil, sees the opened file's information before anything is read
// (to refuse loose permissions, say). Errors do not repeat the name.
func ReadRegular(name string, max int64, check func(fs.FileInfo) error) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, ErrNotRegular
	}
	if check != nil {
		if err := check(fi); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return data, nil
}
