//go:build !unix

package audit

// freeSpace is not measured on this platform: the reserve never applies.
func freeSpace(string) (int64, error) { return 1 << 62, nil }
