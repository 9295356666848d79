package audit

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ProblemKind names what [Verify] found wrong with a line.
type ProblemKind string

// Problem kinds, with the tampering each one usually means.
const (
	// ProblemMAC: the line's mac does not match its content — a field was
	// changed, or the line was forged with another key under a known kid.
	ProblemMAC ProblemKind = "mac mismatch"
	// ProblemMissingMAC: keys were given but the line has no kid or mac.
	ProblemMissingMAC ProblemKind = "missing mac"
	// ProblemUnknownKey: the line's kid (or a checkpoint's sig_kid) names
	// no key given to Verify.
	ProblemUnknownKey ProblemKind = "unknown key id"
	// ProblemSeqGap: seq jumps forward — lines were deleted.
	ProblemSeqGap ProblemKind = "seq gap"
	// ProblemSeqOrder: seq goes back or two lines are swapped — lines were
	// reordered or duplicated.
	ProblemSeqOrder ProblemKind = "seq out of order"
	// ProblemPrev: prev is not the hash of the line before — a line was
	// inserted, replaced or reordered.
	ProblemPrev ProblemKind = "prev mismatch"
	// ProblemTruncated: the file ends in the middle of a line.
	ProblemTruncated ProblemKind = "truncated line"
	// ProblemMalformed: the line is not a JSON chain line.
	ProblemMalformed ProblemKind = "malformed line"
	// ProblemCheckpoint: a checkpoint's count or head disagree with the
	// chain.
	ProblemCheckpoint ProblemKind = "bad checkpoint"
	// ProblemSignature: a checkpoint's Ed25519 signature does not verify.
	ProblemSignature ProblemKind = "bad checkpoint signature"
)

// Problem is the first thing [Verify] found wrong. It is also the error
// Verify returns; use errors.As to get it.
type Problem struct {
	// Kind says what is wrong.
	Kind ProblemKind
	// File is the path of the file holding the line.
	File string
	// Line is the 1-based line number in File.
	Line int
	// Seq is the line's seq, when it could be read; 0 otherwise.
	Seq uint64
	// Detail explains the problem.
	Detail string
}

// Error implements error.
func (p *Problem) Error() string {
	s := fmt.Sprintf("audit: verify: %s:%d", p.File, p.Line)
	if p.Seq != 0 {
		s += fmt.Sprintf(" (seq %d)", p.Seq)
	}
	s += ": " + string(p.Kind)
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// Report summarizes a verification by [Verify].
type Report struct {
	// Files is the number of files read.
	Files int
	// Lines counts the chain lines that verified, of every type.
	Lines int
	// Records counts the audit records among them.
	Records int
	// Checkpoints, Recoveries, ChainStarts and Resumed count the lines of
	// the other types.
	Checkpoints, Recoveries, ChainStarts, Resumed int
	// FirstSeq and LastSeq are the seq of the first and last lines that
	// verified. A FirstSeq other than 1 means the log begins with a file
	// whose predecessors were not given (for example, removed by
	// retention); Verify cannot tell whether they existed.
	FirstSeq, LastSeq uint64
	// LastCheckpointSeq is the seq of the last checkpoint. Without HMAC
	// keys, lines after it are protected by nothing but the hash chain,
	// which a forger can recompute.
	LastCheckpointSeq uint64
	// MACsChecked reports whether HMAC keys were given, and so every line's
	// mac checked; SignaturesChecked whether a public key was given, and so
	// every checkpoint's signature checked.
	MACsChecked, SignaturesChecked bool
	// Problem is the first problem found, or nil when the log verified.
	Problem *Problem
}

// Verify checks the hash chain through the files at paths, in order (see
// [Files] for a log's files), and returns what it found. It checks that
// seq increases by one from line to line, across files; that each prev is
// the hash of the line before (the first line given is taken on trust,
// unless its seq is 1, when its prev must be zeros; a [TypeChainStart] line
// starts a new chain); that the last line of every file is complete; that
// every checkpoint's count and head match the chain.
//
// With keys, a map from [KeyID] to HMAC key, every line must carry a mac by
// one of them: this detects any change to any line. With pub, every
// checkpoint's signature must verify with it: this lets a verifier without
// the HMAC key detect changes to lines before the last checkpoint. Either
// may be nil.
//
// Verify stops at the first problem and returns it both in the Report and
// as its error, a *[Problem]. Other errors mean a file could not be read.
func Verify(paths []string, keys map[string][]byte, pub ed25519.PublicKey) (Report, error) {
	if len(paths) == 0 {
		return Report{}, errors.New("audit: verify: no files given")
	}
	if pub != nil && len(pub) != ed25519.PublicKeySize {
		return Report{}, fmt.Errorf("audit: verify: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	v := &verifier{keys: keys, pub: pub}
	v.rep.MACsChecked = len(keys) > 0
	v.rep.SignaturesChecked = pub != nil
	if pub != nil {
		v.pubKid = PublicKeyID(pub)
	}
	for _, path := range paths {
		if err := v.file(path); err != nil {
			var p *Problem
			if errors.As(err, &p) {
				v.rep.Problem = p
			}
			return v.rep, err
		}
		v.rep.Files++
	}
	return v.rep, nil
}

// zeroHex is the prev of the first line of a chain.
var zeroHex = strings.Repeat("0", 2*sha256.Size)

type verifier struct {
	keys   map[string][]byte
	pub    ed25519.PublicKey
	pubKid string
	rep    Report

	started bool   // a line has verified
	seq     uint64 // seq of the last line
	prev    string // hex hash of the last line
}

// lineReader reads lines with one line of lookahead.
type lineReader struct {
	r      *bufio.Reader
	no     int
	peeked *rawLine
}

type rawLine struct {
	b          []byte
	no         int
	terminated bool
	overlong   bool
}

func (lr *lineReader) next() (*rawLine, error) {
	if lr.peeked != nil {
		l := lr.peeked
		lr.peeked = nil
		return l, nil
	}
	var l rawLine
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(l.b)+len(chunk) > MaxLineBytes+1 {
			l.overlong = true
		} else {
			l.b = append(l.b, chunk...)
		}
		if err == nil {
			l.terminated = true
			l.b = l.b[:len(l.b)-1]
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(l.b) == 0 && !l.overlong {
				return nil, nil
			}
			break
		}
		return nil, fmt.Errorf("audit: verify: read log: %w", err)
	}
	lr.no++
	l.no = lr.no
	if l.terminated && len(l.b) > MaxLineBytes {
		l.overlong = true
	}
	return &l, nil
}

func (lr *lineReader) peek() (*rawLine, error) {
	if lr.peeked == nil {
		l, err := lr.next()
		if err != nil {
			return nil, err
		}
		lr.peeked = l
	}
	return lr.peeked, nil
}

func (v *verifier) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	lr := &lineReader{r: bufio.NewReaderSize(f, 256<<10)}
	for {
		l, err := lr.next()
		if err != nil {
			return err
		}
		if l == nil {
			return nil
		}
		if err := v.line(path, lr, l); err != nil {
			return err
		}
	}
}

func (v *verifier) line(path string, lr *lineReader, l *rawLine) error {
	problem := func(kind ProblemKind, seq uint64, format string, args ...any) error {
		return &Problem{Kind: kind, File: path, Line: l.no, Seq: seq, Detail: fmt.Sprintf(format, args...)}
	}
	switch {
	case l.overlong:
		return problem(ProblemMalformed, 0, "longer than %d bytes", MaxLineBytes)
	case !l.terminated:
		return problem(ProblemTruncated, 0, "the file ends inside a line of %d bytes", len(l.b))
	}
	h, err := parseHeader(l.b)
	if err != nil {
		return problem(ProblemMalformed, h.Seq, "%v", err)
	}
	if len(v.keys) > 0 {
		switch err := checkMAC(l.b, &h, v.keys); {
		case errors.Is(err, errNoMAC):
			return problem(ProblemMissingMAC, h.Seq, "")
		case errors.Is(err, errUnknownKid):
			return problem(ProblemUnknownKey, h.Seq, "kid %q", h.Kid)
		case err != nil:
			return problem(ProblemMAC, h.Seq, "the line was changed or forged")
		}
	}

	zero := zeroHex
	switch {
	case h.Type == TypeChainStart:
		if h.Seq != 1 || h.Prev != zero {
			return problem(ProblemMalformed, h.Seq, "a chain_start line must have seq 1 and a zero prev")
		}
		v.rep.ChainStarts++
	case !v.started:
		if h.Seq == 1 && h.Prev != zero {
			return problem(ProblemPrev, h.Seq, "the first line of a chain must have a zero prev")
		}
	case h.Seq == v.seq+1:
		if h.Prev != v.prev {
			return problem(ProblemPrev, h.Seq, "prev is not the hash of the line before (inserted or replaced line)")
		}
	case h.Seq > v.seq+1:
		next, err := lr.peek()
		if err != nil {
			return err
		}
		if next != nil {
			if nh, err := parseHeader(next.b); err == nil && nh.Seq == v.seq+1 {
				return problem(ProblemSeqOrder, h.Seq, "seq %d comes before seq %d (swapped lines)", h.Seq, nh.Seq)
			}
		}
		return problem(ProblemSeqGap, h.Seq, "expected seq %d: %d line(s) missing (deleted)", v.seq+1, h.Seq-v.seq-1)
	default:
		return problem(ProblemSeqOrder, h.Seq, "expected seq %d (reordered or duplicated line)", v.seq+1)
	}

	switch h.Type {
	case "":
		v.rep.Records++
	case TypeCheckpoint:
		if h.Count == nil || *h.Count != h.Seq-1 || h.Head != h.Prev {
			return problem(ProblemCheckpoint, h.Seq, "count or head do not match the chain")
		}
		if v.pub != nil {
			if h.SigKid != v.pubKid {
				return problem(ProblemUnknownKey, h.Seq, "checkpoint signed by key %q, want %q", h.SigKid, v.pubKid)
			}
			sig, err := hex.DecodeString(h.Sig)
			// The lowercase hex written, exactly: decoding ignores case.
			if err != nil || hex.EncodeToString(sig) != h.Sig || !ed25519.Verify(v.pub, CheckpointMessage(h.TS, *h.Count, h.Head), sig) {
				return problem(ProblemSignature, h.Seq, "")
			}
		}
		v.rep.Checkpoints++
		v.rep.LastCheckpointSeq = h.Seq
	case TypeRecovery:
		v.rep.Recoveries++
	case TypeChainStart:
	case TypeResumed:
		v.rep.Resumed++
	default:
		return problem(ProblemMalformed, h.Seq, "unknown line type %q", h.Type)
	}

	if !v.started {
		v.rep.FirstSeq = h.Seq
	}
	v.started = true
	v.seq = h.Seq
	v.prev = hexHash(l.b)
	v.rep.Lines++
	v.rep.LastSeq = h.Seq
	return nil
}
