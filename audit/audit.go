// Package audit writes, reads and verifies mcpguard's audit log.
//
// # Lines
//
// The log is JSON Lines: one [guard.Record] per line, in the format that
// log/slog's JSON handler produces for the record's fields, so that every
// string is escaped as in the rest of the program's structured logs; the
// lines are now appended directly, byte for byte as slog wrote them, for
// speed. A record's keys are the json tags of guard.Record, in field order,
// with empty fields omitted and no slog "level" or "msg" keys, followed by
// the members of the hash chain:
//
//	{"ts":"2025-01-02T03:04:05.000000000Z","user":"alice",...,"decision":"ALLOWED",...,"seq":7,"prev":"<64 hex>","kid":"<16 hex>","mac":"<64 hex>"}
//
// so that json.Unmarshal of a line into a guard.Record restores it (the chain
// members are ignored). Control characters in any field are escaped (\n, \r,
// \u001b, and also DEL, C1 controls, U+2028/U+2029 and bidirectional
// overrides), so no field value can end a line early, forge a second record,
// or reach a terminal raw.
//
// # Tamper evidence
//
// Every line, whatever its type, is a link of one hash chain:
//
//   - "seq" numbers the lines of the chain 1, 2, 3…, without gaps, across
//     rotated files;
//   - "prev" is the lowercase hex SHA-256 of the previous line's bytes (the
//     whole line, mac included, without its terminating newline), or 64
//     zeros for the first line of a chain;
//   - "kid" is [KeyID] of the HMAC key, and "mac" the lowercase hex
//     HMAC-SHA256 with that key over the line's canonical bytes.
//
// The canonical bytes are simple to recompute because the logger always
// writes "mac" as the last member: they are the line without its newline
// and without its final `,"mac":"<64 hex>"` member. That is, for a line L
// (newline removed), the MAC input is L[:len(L)-74] + "}", 74 being the
// length of `,"mac":"` + 64 hex digits + `"}`. A logger without an HMAC key
// (see [New]) writes "seq" and "prev" but neither "kid" nor "mac".
//
// Lines other than records carry a "type" member right after "ts":
// [TypeCheckpoint] lines, written every Options.CheckpointEvery lines or
// Options.CheckpointInterval when a signing key is configured, hold an
// Ed25519 signature over the chain head that a holder of the public key
// alone can check; [TypeRecovery], [TypeChainStart] and [TypeResumed] lines
// record repairs and failures. [ReadLast] and [Follow] skip typed lines;
// [Verify] checks them all.
//
// # Durability
//
// A file logger ([Open]) appends through one writer goroutine that writes
// each batch of queued lines with one write and makes it durable with one
// fsync (group commit); see [Options].
package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"github.com/mcpguard/mcpguard/secrets"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// TimeLayout is the format of the "ts" key: RFC 3339 in UTC with a fixed
// nine-digit fraction, so that lines sort lexically by time.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Errors returned by [Logger.Record].
var (
	// ErrClosed is returned after [Logger.Close].
	ErrClosed = errors.New("audit: logger closed")
	// ErrQueueFull is returned, without waiting, when the file logger's
	// queue holds Options.QueueSize records and Options.BlockWhenFull is
	// false: the request fails closed rather than wait for a slow disk.
	ErrQueueFull = errors.New("audit: queue full")
)

// Defaults of [Options].
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = time.Minute
	DefaultFlushInterval      = 5 * time.Millisecond
	DefaultMaxBatch           = 1024
	DefaultQueueSize          = 16384
)

// Options configures a file logger opened by [Open]. The zero value is
// usable, without authentication: set HMACKey (and SigningKey) for a
// tamper-evident log.
type Options struct {
	// HMACKey authenticates every line (at least [MinKeyLen] bytes; see
	// [LoadOrCreateKey]). Without it lines carry seq and prev but no kid or
	// mac, which detects accidents but not a forger.
	HMACKey secrets.Value
	// PreviousHMACKeys are older keys. When the existing log's last line
	// was authenticated by one of them, Open continues its chain instead of
	// starting a new one, so the HMAC key can be rotated by restarting with
	// the new key in HMACKey and the old one here.
	PreviousHMACKeys []secrets.Value
	// SigningKey, when set, signs a checkpoint line every CheckpointEvery
	// lines, CheckpointInterval after the last checkpoint if records were
	// written since, and at Close (see [LoadOrCreateSigningKey]).
	SigningKey ed25519.PrivateKey
	// CheckpointEvery is the number of lines between checkpoints
	// (default [DefaultCheckpointEvery]).
	CheckpointEvery int
	// CheckpointInterval is the longest time between a record and the
	// checkpoint covering it (default [DefaultCheckpointInterval]).
	CheckpointInterval time.Duration

	// WaitForSync makes Record return only once its record is written and
	// fsynced, so that an acknowledged record survives a crash; concurrent
	// callers share one fsync. With WaitForSync false (asynchronous mode),
	// Record returns once the record is queued, and a crash loses what was
	// queued but not yet written: at most FlushInterval plus one batch.
	// [OpenFile] sets it; callers of [Open] must set it explicitly, since
	// false is the zero value.
	WaitForSync bool
	// FlushInterval is how long the writer gathers records before writing
	// a batch, in the asynchronous mode (default [DefaultFlushInterval]). In
	// the WaitForSync mode the writer never lingers, since every queued
	// record has a caller waiting: it writes as soon as it is free, so a
	// batch holds what arrived during the previous write and fsync.
	FlushInterval time.Duration
	// MaxBatch bounds the records written by one write and fsync
	// (default [DefaultMaxBatch]); a batch that reaches it is written at
	// once.
	MaxBatch int
	// QueueSize bounds the records queued and not yet written (default
	// [DefaultQueueSize]).
	QueueSize int
	// BlockWhenFull makes Record wait for room in a full queue (until its
	// context is done) instead of failing at once with [ErrQueueFull].
	BlockWhenFull bool

	// MaxBytes, when positive, rotates the file once it holds MaxBytes
	// bytes or more (see [Files] for the rotated names).
	MaxBytes int64
	// MaxAge, when positive, rotates the file once it was started MaxAge
	// ago. Rotation is checked after each batch.
	MaxAge time.Duration

	// MinFreeBytes, when positive, is a reserve of free space on the log's
	// file system: below it the logger reports itself not ready (see
	// [Logger.Ready]), so the pipeline stops running requests while their
	// records, and those of the refusals, can still be written. Free space
	// is checked after every batch and every second.
	MinFreeBytes int64

	// Now returns the current time (default time.Now).
	Now func() time.Time
	// OnBatch, when set, is called by the writer goroutine after each
	// batch with the number of lines in it, the time taken by its write
	// and fsync, and the write's error. It must not block; use it to feed
	// metrics.
	OnBatch func(lines int, latency time.Duration, err error)

	// wrapFile, in tests, wraps the log file to inject failures.
	wrapFile func(*os.File) logFile
	// freeBytes, in tests, replaces the file system's free space.
	freeBytes func(path string) (int64, error)
}

// withDefaults returns o with zero fields replaced by their defaults.
func (o Options) withDefaults() Options {
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Stats is a snapshot of a file logger's activity, for metrics.
type Stats struct {
	// QueueDepth is the number of records queued and not yet written.
	QueueDepth int
	// Written counts lines written and fsynced (records, checkpoints and
	// notices).
	Written uint64
	// Failed counts records whose write or fsync failed.
	Failed uint64
	// Checkpoints counts checkpoint lines written.
	Checkpoints uint64
	// Batches counts successful batches (one write and one fsync each).
	Batches uint64
	// RotateFailures counts rotations that failed (the file then keeps
	// growing; rotation is tried again after the next batch).
	RotateFailures uint64
	// LastBatch is the number of lines in the last batch.
	LastBatch int
	// LastWriteLatency is the time the last batch's write and fsync took.
	LastWriteLatency time.Duration
}

// Logger writes audit records as hash-chained JSON lines. It implements
// [guard.AuditSink] and guard.ReadyChecker, and is safe for concurrent use.
//
// A Logger made by [New] writes each line to its writer with a single Write
// call under a mutex. A Logger made by [Open] queues lines to a writer
// goroutine that appends them to a file with group commit.
type Logger struct {
	opts Options
	enc  sync.Pool // of *encoder

	// Stream mode ([New]).
	mu     sync.Mutex
	w      io.Writer
	chain  chain // guarded by mu in stream mode; owned by the writer goroutine in file mode
	closed bool

	// File mode ([Open]).
	fw *fileWriter
}

var _ guard.AuditSink = (*Logger)(nil)
var _ guard.ReadyChecker = (*Logger)(nil)

// New returns a Logger writing JSON lines to w, such as os.Stdout. Lines
// carry seq and prev but no mac (there is no key), nothing is fsynced, and
// Close does not close w.
func New(w io.Writer) *Logger {
	l := &Logger{opts: Options{}.withDefaults(), w: w, chain: newChain(nil)}
	l.enc.New = func() any { return newEncoder() }
	return l
}

// OpenFile returns a Logger appending to the file at path as [Open] does,
// with Options{WaitForSync: true} and no keys: lines are hash-chained but
// not authenticated. Prefer Open with an HMAC key. The path "-" means
// standard error, written as by [New] and left open by Close.
func OpenFile(path string) (*Logger, error) {
	if path == "-" {
		return New(os.Stderr), nil
	}
	return Open(path, Options{WaitForSync: true})
}

// Open returns a Logger appending to the file at path (created with mode
// 0600 if needed) with group commit, and starts its writer goroutine; call
// Close to stop it.
//
// Before appending, Open repairs and checks the end of the log:
//
//   - a torn last line (no newline: the previous writer was killed in the
//     middle of a write) is cut off and fsynced, and a [TypeRecovery] line
//     saying how many bytes were dropped is appended;
//   - the last complete line must be a chain line that authenticates with
//     HMACKey or one of PreviousHMACKeys (or carries no mac, when there is
//     no key). If it does not — the log was tampered with, was written with
//     another key, or predates the chain — Open does not append to it: it
//     renames the file to path + ".broken-" + UTC timestamp and starts a new
//     chain in a new file, whose first line, of type [TypeChainStart],
//     names the renamed file and the reason.
//
// Otherwise the chain continues from the last line's seq and hash; when
// the file is empty or missing, from the newest rotated file (see [Files]).
// Open checks only the last line: use [Verify] to check a whole log.
func Open(path string, opts Options) (*Logger, error) {
	opts = opts.withDefaults()
	if opts.HMACKey != nil && len(opts.HMACKey) < MinKeyLen {
		return nil, fmt.Errorf("audit: HMAC key is %d bytes, want at least %d", len(opts.HMACKey), MinKeyLen)
	}
	if opts.SigningKey != nil && len(opts.SigningKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit: signing key is %d bytes, want %d", len(opts.SigningKey), ed25519.PrivateKeySize)
	}
	l := &Logger{opts: opts, chain: newChain(opts.HMACKey)}
	l.enc.New = func() any { return newEncoder() }
	fw, err := openFileWriter(l, path)
	if err != nil {
		return nil, err
	}
	l.fw = fw
	fw.checkSpace()
	go fw.run()
	return l, nil
}

// Record writes r as one JSON line. It returns an error when the line could
// not be written (for example after Close, with a full queue, or when the
// disk is full); the pipeline then refuses the request. A zero r.Time is
// recorded as the current time. r is not modified.
//
// For a file logger in the WaitForSync mode, a nil error means the record
// is on disk. If ctx is done first, Record returns ctx's error, and the
// record may or may not be written.
func (l *Logger) Record(ctx context.Context, r *guard.Record) error {
	if r == nil {
		return errors.New("audit: nil record")
	}
	e := l.enc.Get().(*encoder)
	if err := e.encode(r, l.opts.Now); err != nil {
		l.enc.Put(e)
		return err
	}
	if l.fw != nil {
		return l.fw.enqueue(ctx, e)
	}
	defer l.enc.Put(e)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	saved := l.chain
	e.line = l.chain.seal(e.line[:0], e.body())
	if _, err := l.w.Write(e.line); err != nil {
		l.chain = saved
		return fmt.Errorf("audit: write record: %w", err)
	}
	return nil
}

// Ready reports whether the Logger can write: it returns the last write or
// fsync error of a file logger until a later write succeeds (the writer
// retries by itself every second), [ErrLowSpace] while the file system has
// less than Options.MinFreeBytes free, and [ErrClosed] after Close. The
// pipeline refuses to execute requests while Ready fails.
func (l *Logger) Ready() error {
	if l.fw != nil {
		return l.fw.ready()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return nil
}

// ErrLowSpace is reported by [Logger.Ready] while the log's file system
// has less free space than Options.MinFreeBytes.
var ErrLowSpace = errors.New("audit: the log's disk is almost full")

// Stats returns a snapshot of the file logger's queue and writes. For a
// Logger made by [New] it is zero.
func (l *Logger) Stats() Stats {
	if l.fw == nil {
		return Stats{}
	}
	return l.fw.stats()
}

// Close stops the Logger; later calls to Record fail with [ErrClosed]. A
// file logger first writes what is queued and, with a signing key, a final
// checkpoint, then closes its file. Close does not close a writer given to
// [New]. Close is idempotent.
func (l *Logger) Close() error {
	if l.fw != nil {
		return l.fw.close()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}
