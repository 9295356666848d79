package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// rotatedTimeLayout is the timestamp in rotated and broken file names: UTC,
// fixed width, so that names sort lexically in time order.
const rotatedTimeLayout = "20060102T150405.000000000Z"

// retryInterval is how often an unhealthy file logger tries to write again
// by itself.
const retryInterval = time.Second

// logFile is what the writer needs of an *os.File; tests substitute one
// that fails.
type logFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// batch is a group of queued records written with one write and one fsync.
type batch struct {
	ents    []*encoder
	created time.Time     // when its first record was queued (asynchronous mode)
	done    chan struct{} // closed once written or failed
	err     error         // set before done is closed
}

// fileWriter is the file backend of a Logger: a bounded queue drained by
// one writer goroutine.
type fileWriter struct {
	l    *Logger
	opts *Options
	path string

	// Owned by the writer goroutine (and by openFileWriter before it).
	f           logFile
	size        int64 // bytes of complete, fsynced lines in f
	dirty       bool  // f may hold bytes past size from a failed write
	started     time.Time
	lastRotated string // newest rotated file name
	buf         []byte

	qmu      sync.Mutex
	queue    []*batch // oldest first; only the last one grows
	depth    int
	space    chan struct{} // closed and replaced each time a batch is taken
	closing  bool
	kick     chan struct{}
	done     chan struct{}
	closeErr error

	hmu           sync.Mutex
	lastErr       error // non-nil while unhealthy
	failedRecords uint64

	written, failed, checkpoints, batches, rotateFailures atomic.Uint64
	lastBatch, lastLatency                                atomic.Int64

	// lowSpace is set while the file system has less than MinFreeBytes
	// free (see checkSpace).
	lowSpace atomic.Bool
}

// checkSpace updates lowSpace from the file system's free space. An error
// reading it counts as no space: the reserve exists to fail closed.
func (w *fileWriter) checkSpace() {
	min := w.opts.MinFreeBytes
	if min <= 0 {
		return
	}
	free := w.opts.freeBytes
	if free == nil {
		free = freeSpace
	}
	n, err := free(w.path)
	w.lowSpace.Store(err != nil || n < min)
}

// openFileWriter opens the log at path, repairs or sets aside its tail (see
// [Open]) and restores the chain state of l.
func openFileWriter(l *Logger, path string) (*fileWriter, error) {
	w := &fileWriter{
		l:     l,
		opts:  &l.opts,
		path:  path,
		space: make(chan struct{}),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	if err := w.openAndRepair(); err != nil {
		if w.f != nil {
			_ = w.f.Close()
		}
		return nil, err
	}
	return w, nil
}

func (w *fileWriter) wrap(f *os.File) logFile {
	if w.opts.wrapFile != nil {
		return w.opts.wrapFile(f)
	}
	return f
}

func (w *fileWriter) openAndRepair() error {
	now := w.opts.Now()
	existing, err := Files(w.path)
	if err != nil {
		return err
	}
	for _, name := range existing {
		if name != w.path {
			w.lastRotated = name
		}
	}
	f, err := os.OpenFile(w.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("audit: stat log: %w", err)
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return fmt.Errorf("audit: open log: %s is not a regular file (use New for streams)", w.path)
	}
	if len(existing) == 0 || existing[len(existing)-1] != w.path {
		// We created the file: make its directory entry durable.
		if err := syncDir(filepath.Dir(w.path)); err != nil {
			_ = f.Close()
			return err
		}
	}
	w.f, w.size, w.started = w.wrap(f), st.Size(), now

	keys := map[string][]byte{}
	if w.opts.HMACKey != nil {
		keys[KeyID(w.opts.HMACKey)] = w.opts.HMACKey
		for _, k := range w.opts.PreviousHMACKeys {
			keys[KeyID(k)] = k
		}
	}

	var torn int64
	if st.Size() > 0 {
		if ts, ok := firstLineTime(f); ok {
			w.started = ts
		}
		var last []byte
		var reason string
		last, torn, reason, err = readTail(w.path, keys)
		if err != nil {
			return err
		}
		if reason != "" {
			return w.setAside(now, reason)
		}
		if torn > 0 {
			w.size -= torn
			if err := w.f.Truncate(w.size); err != nil {
				return fmt.Errorf("audit: cut torn line: %w", err)
			}
			if err := w.f.Sync(); err != nil {
				return fmt.Errorf("audit: cut torn line: %w", err)
			}
		}
		if last != nil {
			w.resume(last)
			if torn == 0 {
				return nil
			}
			return w.writeNotices(w.l.chain.seal(nil, noticeBody(now, TypeRecovery, "dropped_bytes", torn)))
		}
		// The file held only a torn line: continue as if it were empty.
		w.started = now
	}

	// An empty file continues the chain of the newest rotated file.
	var lines []byte
	if w.lastRotated != "" {
		last, rtorn, reason, err := readTail(w.lastRotated, keys)
		if err != nil {
			return err
		}
		if reason == "" && rtorn > 0 {
			reason = "it ends with a torn line"
		}
		if reason == "" && last == nil {
			reason = "it holds no complete line"
		}
		if reason != "" {
			lines = w.startChain(now, w.lastRotated, "the newest rotated file does not verify: "+reason)
		} else {
			w.resume(last)
		}
	}
	if torn > 0 {
		lines = w.l.chain.seal(lines, noticeBody(now, TypeRecovery, "dropped_bytes", torn))
	}
	if len(lines) == 0 {
		return nil
	}
	return w.writeNotices(lines)
}

// setAside renames the log, which must not be continued for reason, to a
// ".broken-<time>" name and starts a new chain in a new file.
func (w *fileWriter) setAside(now time.Time, reason string) error {
	broken := w.path + ".broken-" + uniqueTime(now)
	if err := w.f.Close(); err != nil {
		w.f = nil
		return fmt.Errorf("audit: close broken log: %w", err)
	}
	w.f = nil
	if err := os.Rename(w.path, broken); err != nil {
		return fmt.Errorf("audit: set aside broken log: %w", err)
	}
	nf, err := os.OpenFile(w.path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open log: %w", err)
	}
	w.f, w.size, w.started = w.wrap(nf), 0, now
	if err := syncDir(filepath.Dir(w.path)); err != nil {
		return err
	}
	return w.writeNotices(w.startChain(now, broken, reason))
}

// uniqueTime formats t for a file name.
func uniqueTime(t time.Time) string { return t.UTC().Format(rotatedTimeLayout) }

// resume continues the chain after line.
func (w *fileWriter) resume(line []byte) {
	h, _ := parseHeader(line) // readTail checked it
	w.l.chain.seq = h.Seq
	w.l.chain.prev = sha256.Sum256(line)
}

// startChain returns the chain_start line of a new chain.
func (w *fileWriter) startChain(now time.Time, previous, reason string) []byte {
	w.l.chain.seq, w.l.chain.prev = 0, zeroHash
	return w.l.chain.seal(nil, noticeBody(now, TypeChainStart, "previous_file", previous, "reason", reason))
}

// writeNotices writes and fsyncs lines during Open.
func (w *fileWriter) writeNotices(lines []byte) error {
	if _, err := w.f.Write(lines); err != nil {
		return fmt.Errorf("audit: write log: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync log: %w", err)
	}
	w.size += int64(len(lines))
	w.written.Add(uint64(bytes.Count(lines, []byte{'\n'})))
	return nil
}

// readTail returns the last complete line of the log at path (without its
// newline) and the length of the torn, unterminated bytes after it. When
// the last complete line is not a chain line that authenticates with keys
// (or, without keys, that carries a mac), reason says why, and the log must
// not be continued.
func readTail(path string, keys map[string][]byte) (last []byte, torn int64, reason string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, "", fmt.Errorf("audit: open log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, "", fmt.Errorf("audit: stat log: %w", err)
	}
	size := st.Size()
	window := min(size, MaxLineBytes+2)
	data := make([]byte, window)
	if _, err := f.ReadAt(data, size-window); err != nil {
		return nil, 0, "", fmt.Errorf("audit: read log tail: %w", err)
	}
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		if window < size {
			return nil, 0, "its last line is longer than MaxLineBytes", nil
		}
		return nil, size, "", nil
	}
	torn = int64(len(data) - end - 1)
	start := bytes.LastIndexByte(data[:end], '\n') + 1
	if start == 0 && window < size {
		return nil, torn, "its last line is longer than MaxLineBytes", nil
	}
	last = data[start:end]
	h, err := parseHeader(last)
	if err != nil {
		return nil, torn, "its last line is not a chain line: " + err.Error(), nil
	}
	if len(keys) == 0 {
		if h.Mac != "" {
			return nil, torn, "its last line is authenticated by key " + h.Kid + " and no key was given", nil
		}
		return last, torn, "", nil
	}
	if err := checkMAC(last, &h, keys); err != nil {
		return nil, torn, fmt.Sprintf("its last line (seq %d) does not verify: %v", h.Seq, err), nil
	}
	return last, torn, "", nil
}

// firstLineTime returns the "ts" of the first line of f.
func firstLineTime(f *os.File) (time.Time, bool) {
	var b [256]byte
	n, _ := f.ReadAt(b[:], 0)
	line := b[:n]
	if !bytes.HasPrefix(line, []byte(`{"ts":"`)) {
		return time.Time{}, false
	}
	ts, _, ok := bytes.Cut(line[len(`{"ts":"`):], []byte{'"'})
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(TimeLayout, string(ts))
	return t, err == nil
}

// syncDir fsyncs a directory so that entries created or renamed in it
// survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: sync log directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("audit: sync log directory: %w", err)
	}
	return nil
}

// Files returns the files of the log at path, oldest first, in the order
// [Verify] needs them: the rotated files, named after path with the UTC
// time of rotation inserted before the extension —
//
//	audit.log → audit-20250102T030405.000000000Z.log
//
// (a path without extension gets the "-<time>" suffix) — followed by path
// itself when it exists. Files set aside by [Open] because they did not
// verify (path + ".broken-<time>") are not part of the chain and not listed.
func Files(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext) + "-"
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("audit: list log files: %w", err)
	}
	var out []string
	haveCurrent := false
	for _, e := range entries {
		name := e.Name()
		if name == base {
			haveCurrent = true
			continue
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(name, stem) || !strings.HasSuffix(name, ext) {
			continue
		}
		ts := name[len(stem) : len(name)-len(ext)]
		if _, err := time.Parse(rotatedTimeLayout, ts); err != nil {
			continue
		}
		out = append(out, filepath.Join(filepath.Dir(path), name))
	}
	slices.Sort(out)
	if haveCurrent {
		out = append(out, path)
	}
	return out, nil
}

// rotatedName returns a new, unused rotated file name later than every
// earlier one.
func (w *fileWriter) rotatedName(now time.Time) string {
	dir, base := filepath.Split(w.path)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	for {
		name := filepath.Join(dir, stem+"-"+uniqueTime(now)+ext)
		if name > w.lastRotated {
			if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
				return name
			}
		}
		now = now.Add(time.Nanosecond)
		if last := w.lastRotated; name < last {
			// The clock went back: continue from the last name.
			ts := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(last), stem+"-"), ext)
			if t, err := time.Parse(rotatedTimeLayout, ts); err == nil {
				now = t.Add(time.Nanosecond)
			}
		}
	}
}

// rotateIfDue renames the full or old file aside and continues the chain in
// a new one.
func (w *fileWriter) rotateIfDue(now time.Time) {
	o := w.opts
	if !(o.MaxBytes > 0 && w.size >= o.MaxBytes) && !(o.MaxAge > 0 && now.Sub(w.started) >= o.MaxAge) {
		return
	}
	if w.size == 0 {
		return
	}
	name := w.rotatedName(now)
	if err := os.Rename(w.path, name); err != nil {
		w.rotateFailures.Add(1)
		return
	}
	nf, err := os.OpenFile(w.path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		// Keep writing to the open file, under its old name again.
		_ = os.Rename(name, w.path)
		w.rotateFailures.Add(1)
		return
	}
	_ = w.f.Close() // fsynced by the last batch
	w.f, w.size, w.started, w.lastRotated, w.dirty = w.wrap(nf), 0, now, name, false
	if err := syncDir(filepath.Dir(w.path)); err != nil {
		w.rotateFailures.Add(1)
	}
}

// enqueue queues e for the writer and, in the WaitForSync mode, waits until
// it is written.
func (w *fileWriter) enqueue(ctx context.Context, e *encoder) error {
	o := w.opts
	w.qmu.Lock()
	for {
		if w.closing {
			w.qmu.Unlock()
			w.l.enc.Put(e)
			return ErrClosed
		}
		if w.depth < o.QueueSize {
			break
		}
		if !o.BlockWhenFull {
			w.qmu.Unlock()
			w.l.enc.Put(e)
			return ErrQueueFull
		}
		space := w.space
		w.qmu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			w.l.enc.Put(e)
			return fmt.Errorf("audit: waiting for room in the queue: %w", ctx.Err())
		}
		w.qmu.Lock()
	}
	var b *batch
	if n := len(w.queue); n > 0 && len(w.queue[n-1].ents) < o.MaxBatch {
		b = w.queue[n-1]
	} else {
		b = &batch{done: make(chan struct{}), ents: make([]*encoder, 0, min(o.MaxBatch, 64))}
		if !o.WaitForSync {
			b.created = time.Now()
		}
		w.queue = append(w.queue, b)
	}
	b.ents = append(b.ents, e)
	w.depth++
	signal := len(b.ents) == 1 || len(b.ents) == o.MaxBatch
	w.qmu.Unlock()
	if signal {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	if !o.WaitForSync {
		return nil
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return fmt.Errorf("audit: waiting for the record to be written: %w", ctx.Err())
	}
}

// run is the writer goroutine.
func (w *fileWriter) run() {
	defer close(w.done)
	o := w.opts
	cpTicker := time.NewTicker(o.CheckpointInterval)
	defer cpTicker.Stop()
	retry := time.NewTicker(retryInterval)
	defer retry.Stop()
	linger := time.NewTimer(time.Hour)
	defer linger.Stop()
	for {
		w.qmu.Lock()
		var b *batch
		wait := time.Duration(-1)
		if len(w.queue) > 0 {
			first := w.queue[0]
			if o.WaitForSync || w.closing || len(w.queue) > 1 || len(first.ents) >= o.MaxBatch {
				b = first
			} else if rem := o.FlushInterval - time.Since(first.created); rem <= 0 {
				b = first
			} else {
				wait = rem
			}
		}
		closing := w.closing
		if b != nil {
			w.queue[0] = nil
			w.queue = w.queue[1:]
			w.depth -= len(b.ents)
			close(w.space)
			w.space = make(chan struct{})
		}
		w.qmu.Unlock()

		if b != nil {
			w.writeBatch(b)
			continue
		}
		if closing {
			w.finish()
			return
		}
		var lingerC <-chan time.Time
		if wait >= 0 {
			linger.Reset(wait)
			lingerC = linger.C
		}
		select {
		case <-w.kick:
		case <-lingerC:
		case <-cpTicker.C:
			if o.SigningKey != nil && w.l.chain.sinceCheckpoint > 0 {
				w.writeBatch(nil)
			}
		case <-retry.C:
			if w.health() != nil {
				w.writeBatch(nil) // a resumed notice
			}
			w.checkSpace()
		}
	}
}

// writeBatch seals b's records (none when b is nil) into lines, with a
// resumed notice first after failures and checkpoints as due, writes them
// with one write and one fsync, and tells b's callers the outcome.
func (w *fileWriter) writeBatch(b *batch) {
	o := w.opts
	c := &w.l.chain
	saved := *c
	buf := w.buf[:0]
	now := o.Now()

	w.hmu.Lock()
	lastErr, failed := w.lastErr, w.failedRecords
	w.hmu.Unlock()
	if lastErr != nil {
		buf = c.seal(buf, noticeBody(now, TypeResumed, "failed_records", failed, "error", lastErr.Error()))
	}
	records := 0
	checkpoints := 0
	if b != nil {
		records = len(b.ents)
		for i, e := range b.ents {
			buf = c.seal(buf, e.body())
			w.l.enc.Put(e)
			b.ents[i] = nil
			if o.SigningKey != nil && c.sinceCheckpoint >= o.CheckpointEvery {
				buf = c.appendCheckpoint(buf, now, o.SigningKey)
				checkpoints++
			}
		}
	}
	if b == nil && o.SigningKey != nil && c.sinceCheckpoint > 0 {
		buf = c.appendCheckpoint(buf, now, o.SigningKey)
		checkpoints++
	}
	if len(buf) == 0 {
		return
	}
	lines := bytes.Count(buf, []byte{'\n'})

	start := time.Now()
	err := w.commit(buf)
	latency := time.Since(start)
	if cap(buf) <= 4<<20 {
		w.buf = buf
	}
	if o.OnBatch != nil {
		o.OnBatch(lines, latency, err)
	}
	if err != nil {
		*c = saved
		w.failed.Add(uint64(records))
		w.hmu.Lock()
		w.lastErr = err
		w.failedRecords += uint64(records)
		w.hmu.Unlock()
	} else {
		w.written.Add(uint64(lines))
		w.checkpoints.Add(uint64(checkpoints))
		w.batches.Add(1)
		w.lastBatch.Store(int64(lines))
		w.lastLatency.Store(int64(latency))
		if lastErr != nil {
			w.hmu.Lock()
			w.lastErr, w.failedRecords = nil, 0
			w.hmu.Unlock()
		}
		w.rotateIfDue(now)
	}
	w.checkSpace()
	if b != nil {
		b.err = err
		close(b.done)
	}
}

// commit appends buf to the file and fsyncs it. On failure it cuts the
// file back to its last good size, so that no partial batch stays in it.
func (w *fileWriter) commit(buf []byte) error {
	if w.dirty {
		if err := w.f.Truncate(w.size); err != nil {
			return fmt.Errorf("audit: cut failed write: %w", err)
		}
		w.dirty = false
	}
	_, err := w.f.Write(buf)
	if err == nil {
		if err = w.f.Sync(); err != nil {
			err = fmt.Errorf("audit: sync log: %w", err)
		}
	} else {
		err = fmt.Errorf("audit: write log: %w", err)
	}
	if err != nil {
		w.dirty = true
		if w.f.Truncate(w.size) == nil {
			w.dirty = false
		}
		return err
	}
	w.size += int64(len(buf))
	return nil
}

// finish writes a last checkpoint and closes the file.
func (w *fileWriter) finish() {
	if w.opts.SigningKey != nil && w.l.chain.sinceCheckpoint > 0 && w.health() == nil {
		w.writeBatch(nil)
	}
	if err := w.f.Close(); err != nil {
		w.closeErr = fmt.Errorf("audit: close log: %w", err)
	}
	if err := w.health(); err != nil && w.closeErr == nil {
		w.closeErr = err
	}
}

func (w *fileWriter) close() error {
	w.qmu.Lock()
	if !w.closing {
		w.closing = true
		close(w.space)
		w.space = make(chan struct{})
	}
	w.qmu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	<-w.done
	return w.closeErr
}

// health returns the last write error while writes fail.
func (w *fileWriter) health() error {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	return w.lastErr
}

func (w *fileWriter) ready() error {
	if err := w.health(); err != nil {
		return err
	}
	if w.lowSpace.Load() {
		return ErrLowSpace
	}
	w.qmu.Lock()
	defer w.qmu.Unlock()
	if w.closing {
		return ErrClosed
	}
	return nil
}

func (w *fileWriter) stats() Stats {
	w.qmu.Lock()
	depth := w.depth
	w.qmu.Unlock()
	return Stats{
		QueueDepth:       depth,
		Written:          w.written.Load(),
		Failed:           w.failed.Load(),
		Checkpoints:      w.checkpoints.Load(),
		Batches:          w.batches.Load(),
		RotateFailures:   w.rotateFailures.Load(),
		LastBatch:        int(w.lastBatch.Load()),
		LastWriteLatency: time.Duration(w.lastLatency.Load()),
	}
}

// hexHash returns the lowercase hex SHA-256 of b.
func hexHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
