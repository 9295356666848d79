package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// Reading limits.
const (
	// MaxLineBytes bounds one line of the log. Longer lines are skipped as
	// malformed without being held in memory.
	MaxLineBytes = 1 << 20
	// MaxReadLast bounds the n of [ReadLast].
	MaxReadLast = 1_000_000
	// readChunk is how much of the file is read at a time.
	readChunk = 64 << 10
	// followPoll is how often [Follow] looks for new lines.
	followPoll = 250 * time.Millisecond
)

// Filter selects audit records. Its zero value matches every record.
type Filter struct {
	// Decision, when set, matches the record's decision, ignoring case
	// ("denied" matches DENIED).
	Decision string
	// User, when set, matches the record's user (principal subject) exactly.
	User string
	// Tool, when set, matches records of calls of that tool: the target
	// exactly, for records whose method is tools/call or unknown.
	Tool string
	// Since, when set, matches records at or after it.
	Since time.Time
}

// Match reports whether r passes every condition of f.
func (f Filter) Match(r *guard.Record) bool {
	switch {
	case r == nil:
		return false
	case f.Decision != "" && !strings.EqualFold(f.Decision, string(r.Decision)):
		return false
	case f.User != "" && f.User != r.Subject:
		return false
	case f.Tool != "" && (f.Tool != r.Target || (r.Method != "" && r.Method != "tools/call")):
		return false
	case !f.Since.IsZero() && r.Time.Before(f.Since):
		return false
	}
	return true
}

// ReadLast returns the last n records of the log at path that match f,
// oldest first. It reads the file backwards in chunks and stops once it has
// n matches, so its cost depends on n and on how far back they are, not on
// the size of the log. Lines of the chain that are not records
// (checkpoints, notices) are skipped, and so are malformed lines, which
// [ReadLastSkipped] also counts.
func ReadLast(path string, n int, f Filter) ([]guard.Record, error) {
	recs, _, err := ReadLastSkipped(path, n, f)
	return recs, err
}

// ReadLastSkipped is [ReadLast], also returning the number of malformed
// lines (not JSON, not an audit record, or longer than [MaxLineBytes]) it
// skipped on its way back through the file.
func ReadLastSkipped(path string, n int, f Filter) (recs []guard.Record, skipped int, err error) {
	if n < 0 || n > MaxReadLast {
		return nil, 0, fmt.Errorf("audit: record count %d out of range [0, %d]", n, MaxReadLast)
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("audit: open log: %w", err)
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("audit: stat log: %w", err)
	}
	recs = make([]guard.Record, 0, min(n, 1024))
	handle := func(line []byte, overlong bool) {
		rec, ok, bad := parseLine(line, overlong)
		switch {
		case bad:
			skipped++
		case ok && f.Match(&rec):
			recs = append(recs, rec)
		}
	}

	var (
		buf      = make([]byte, readChunk)
		carry    []byte // the end of a line whose start is in an earlier chunk
		overlong bool   // the line in carry exceeded MaxLineBytes and was dropped
		pos      = st.Size()
	)
	for pos > 0 && len(recs) < n {
		size := int(min(int64(readChunk), pos))
		pos -= int64(size)
		chunk := buf[:size]
		if _, err := file.ReadAt(chunk, pos); err != nil {
			return nil, skipped, fmt.Errorf("audit: read log: %w", err)
		}
		end := len(chunk)
		for len(recs) < n {
			i := bytes.LastIndexByte(chunk[:end], '\n')
			if i < 0 {
				// The line continues in the previous chunk.
				if !overlong && len(carry)+end > MaxLineBytes {
					overlong, carry = true, nil
				}
				if !overlong && end > 0 {
					// Copy: chunk's buffer is reused.
					carry = append(append(make([]byte, 0, end+len(carry)), chunk[:end]...), carry...)
				}
				break
			}
			line := chunk[i+1 : end]
			if len(carry) > 0 {
				line = append(slices.Clone(line), carry...)
			}
			handle(line, overlong || len(line) > MaxLineBytes)
			carry, overlong = nil, false
			end = i
		}
	}
	if pos == 0 && len(recs) < n && (len(carry) > 0 || overlong) {
		handle(carry, overlong) // the file's first line
	}
	slices.Reverse(recs)
	return recs, skipped, nil
}

// parseLine decodes one log line. Blank lines and typed lines (checkpoints,
// notices) are neither records nor malformed.
func parseLine(line []byte, overlong bool) (rec guard.Record, ok, malformed bool) {
	if overlong {
		return rec, false, true
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return rec, false, false
	}
	// A line with a "type" member is a checkpoint or notice of the chain,
	// not a record.
	var l struct {
		guard.Record
		Type string `json:"type"`
	}
	if err := json.Unmarshal(line, &l); err != nil || l.Time.IsZero() {
		return guard.Record{}, false, true
	}
	if l.Type != "" {
		return guard.Record{}, false, false
	}
	return l.Record, true, false
}

// Follow calls fn for each record matching f that is appended to the log at
// path after Follow starts, in order, like tail -f: it polls the file for new
// lines until ctx is done, and then returns nil. (To show recent history
// first, call [ReadLast] before Follow.) A log that is truncated is read
// again from its start; a log that is replaced (rotated) is reopened and read
// from the start of the new file. Malformed lines, checkpoints and notices
// are skipped. Follow returns
// fn's error if fn fails, and an error if the log cannot be opened or read.
func Follow(ctx context.Context, path string, f Filter, fn func(guard.Record) error) error {
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: open log: %w", err)
	}
	defer func() { _ = file.Close() }()
	offset, err := file.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("audit: seek log: %w", err)
	}
	t := &tailer{f: f, fn: fn, buf: make([]byte, readChunk)}
	ticker := time.NewTicker(followPoll)
	defer ticker.Stop()
	for {
		n, err := t.drain(file)
		offset += n
		if err != nil {
			return err
		}
		st, err := file.Stat()
		if err != nil {
			return fmt.Errorf("audit: stat log: %w", err)
		}
		if st.Size() < offset { // truncated
			if _, err := file.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("audit: seek log: %w", err)
			}
			offset = 0
			t.reset()
			continue
		}
		if cur, err := os.Stat(path); err == nil && !os.SameFile(st, cur) {
			// Rotated: finish the old file, then switch.
			nf, err := os.Open(path)
			if err == nil {
				if _, err := t.drain(file); err != nil {
					_ = nf.Close()
					return err
				}
				_ = file.Close()
				file, offset = nf, 0
				t.reset()
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// tailer splits appended bytes into lines and hands matching records to fn.
type tailer struct {
	f        Filter
	fn       func(guard.Record) error
	buf      []byte
	partial  []byte // the start of a line not yet terminated
	overlong bool   // the current line exceeded MaxLineBytes and is dropped
}

// drain reads r to its current end, returning the bytes read.
func (t *tailer) drain(r io.Reader) (int64, error) {
	var total int64
	for {
		n, err := r.Read(t.buf)
		total += int64(n)
		if n > 0 {
			if err := t.feed(t.buf[:n]); err != nil {
				return total, err
			}
		}
		if errors.Is(err, io.EOF) || (n == 0 && err == nil) {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("audit: read log: %w", err)
		}
	}
}

// feed processes newly read bytes.
func (t *tailer) feed(b []byte) error {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if !t.overlong && len(t.partial)+len(b) > MaxLineBytes {
				t.overlong, t.partial = true, nil
			}
			if !t.overlong {
				t.partial = append(t.partial, b...)
			}
			return nil
		}
		line := b[:i]
		if len(t.partial) > 0 {
			line = append(t.partial, line...)
		}
		overlong := t.overlong || len(line) > MaxLineBytes
		t.partial, t.overlong = t.partial[:0], false
		b = b[i+1:]
		rec, ok, _ := parseLine(line, overlong)
		if ok && t.f.Match(&rec) {
			if err := t.fn(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tailer) reset() { t.partial, t.overlong = t.partial[:0], false }
