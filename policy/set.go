package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/fsx"
	"github.com/mcpguard/mcpguard/internal/tick"
)

// maxPolicyBytes bounds one policy file.
const maxPolicyBytes = 16 << 20

// ReadDir reads every *.cedar file of dir, sorted by name. A missing
// directory is an error wrapping fs.ErrNotExist; so is anything that is
// not a regular file, or a file larger than 16 MiB (read through a limit,
// whatever its size says).
func ReadDir(dir string) ([]File, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("policy directory: %w", err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.cedar"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	files := make([]File, 0, len(names))
	for _, name := range names {
		data, err := readPolicyFile(name)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Name: name, Data: data})
	}
	return files, nil
}

func readPolicyFile(name string) ([]byte, error) {
	data, err := fsx.ReadRegular(name, maxPolicyBytes, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, nil
}

// Set is the policy set in force: an Engine that Reload replaces
// atomically, so that a decision always sees one whole set, old or new. It
// implements guard.Authorizer.
type Set struct {
	opts    Options
	dir     string
	cur     atomic.Pointer[Engine]
	mu      sync.Mutex // serializes reloads
	digest  [32]byte
	loaded  atomic.Int64 // unix nanos of the last successful load
	Logger  *slog.Logger
	OnError func(error) // called when a reload fails; may be nil
}

// NewSet compiles opts plus the *.cedar files of dir ("" for none). A dir
// that does not exist is an error unless optional is true.
func NewSet(opts Options, dir string, optional bool) (*Set, error) {
	s := &Set{opts: opts, dir: dir}
	if dir != "" && optional {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			s.dir = ""
		}
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Engine returns the Engine in force.
func (s *Set) Engine() *Engine { return s.cur.Load() }

// Authorize implements guard.Authorizer with the Engine in force.
func (s *Set) Authorize(ctx context.Context, p *guard.Principal, a guard.Action) guard.Decision {
	return s.cur.Load().Authorize(ctx, p, a)
}

// Reload reads the directory again and, if every file compiles, puts the
// new set in force. On any error the set in force stays, and the error
// names the file and line at fault.
func (s *Set) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	opts, digest, err := s.scan()
	if err != nil {
		return err
	}
	return s.apply(opts, digest)
}

// scan reads the files and returns the options with them, and a digest of
// names and contents.
func (s *Set) scan() (Options, [32]byte, error) {
	opts := s.opts
	if s.dir != "" {
		files, err := ReadDir(s.dir)
		if err != nil {
			return opts, [32]byte{}, err
		}
		opts.Files = append(append([]File(nil), opts.Files...), files...)
	}
	h := sha256.New()
	for _, f := range opts.Files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.Name, len(f.Data))
		h.Write(f.Data)
	}
	var digest [32]byte
	h.Sum(digest[:0])
	return opts, digest, nil
}

// apply compiles opts and puts them in force, unless they are the set in
// force already.
func (s *Set) apply(opts Options, digest [32]byte) error {
	if s.cur.Load() != nil && digest == s.digest { // ct:public: digests of the policy files
		return nil
	}
	e, err := New(opts)
	if err != nil {
		return err
	}
	s.cur.Store(e)
	s.digest = digest
	s.loaded.Store(time.Now().UnixNano())
	return nil
}

// Watch reloads the set when its files changed, until ctx ends. A change
// is put in force once two scans an interval apart read the same files,
// so that a file caught half-written, or one of several files changed
// together, is never in force alone. A set that does not compile is
// logged and the set in force kept. SIGHUP handling is the program's:
// call Reload.
func (s *Set) Watch(ctx context.Context, interval time.Duration) {
	if s.dir == "" || interval <= 0 {
		return
	}
	var lastErr string
	var pending [32]byte
	report := func(err error) {
		if err.Error() == lastErr {
			return
		}
		lastErr = err.Error()
		s.logger().Error("policies not reloaded; the previous set stays in force", "err", err)
		if s.OnError != nil {
			s.OnError(err)
		}
	}
	tick.Every(ctx, interval, func() {
		s.mu.Lock()
		opts, digest, err := s.scan()
		switch {
		case err != nil:
			s.mu.Unlock()
			report(err)
			return
		case digest == s.digest: // ct:public: digests of the policy files
			s.mu.Unlock()
			lastErr, pending = "", digest
			return
		case digest != pending: // ct:public: digests of the policy files
			s.mu.Unlock()
			pending = digest // changed: wait until the files hold still
			return
		}
		err = s.apply(opts, digest)
		s.mu.Unlock()
		if err != nil {
			report(err)
			return
		}
		lastErr = ""
		s.logger().Info("policies reloaded", "policies", s.Engine().Len())
	})
}

func (s *Set) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Roles returns the roles p holds before inheritance (guard.RoleResolver).
func (s *Set) Roles(p *guard.Principal) []string { return s.cur.Load().Roles(p) }
