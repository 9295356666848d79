package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mcpguard/mcpguard/secrets"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

var (
	testKey    = bytes.Repeat([]byte{7}, 32)
	testSigner = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	testPub    = testSigner.Public().(ed25519.PublicKey)
	testKeys   = map[string][]byte{KeyID(testKey): testKey}
)

func openLog(t testing.TB, path string, o Options) *Logger {
	t.Helper()
	l, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func closeLog(t testing.TB, l *Logger) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		return nil
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte{'\n'}), []byte{'\n'})
}

func writeLines(t testing.TB, path string, lines [][]byte) {
	t.Helper()
	data := append(bytes.Join(lines, []byte{'\n'}), '\n')
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// header decodes a line's chain members.
func header(t testing.TB, line []byte) lineHeader {
	t.Helper()
	h, err := parseHeader(line)
	if err != nil {
		t.Fatalf("line %s: %v", line, err)
	}
	return h
}

// keyedLog writes n records with the test keys, a checkpoint every
// cpEvery lines, and returns the log's path.
func keyedLog(t testing.TB, n, cpEvery int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path, Options{HMACKey: testKey, SigningKey: testSigner, CheckpointEvery: cpEvery, WaitForSync: true})
	for i := range n {
		record(t, l, rec(i, guard.Allowed, "alice", "read"))
	}
	closeLog(t, l)
	return path
}

func TestChainFormat(t *testing.T) {
	t.Parallel()
	path := keyedLog(t, 5, 3)
	lines := readLines(t, path)
	// 3 records, checkpoint, 2 records, final checkpoint at Close.
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7:\n%s", len(lines), bytes.Join(lines, []byte{'\n'}))
	}
	prev := strings.Repeat("0", 64)
	for i, line := range lines {
		// Recompute everything from the documented format alone.
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		if m["seq"] != float64(i+1) || m["prev"] != prev || m["kid"] != KeyID(testKey) {
			t.Fatalf("line %d: seq %v prev %v kid %v", i+1, m["seq"], m["prev"], m["kid"])
		}
		if !bytes.HasPrefix(line, []byte(`{"ts":"`)) {
			t.Errorf("line %d does not start with ts: %s", i+1, line)
		}
		mac := hmac.New(sha256.New, testKey)
		mac.Write(line[:len(line)-74])
		mac.Write([]byte("}"))
		wantSuffix := `,"mac":"` + hex.EncodeToString(mac.Sum(nil)) + `"}`
		if !bytes.HasSuffix(line, []byte(wantSuffix)) {
			t.Fatalf("line %d: mac is not HMAC of the documented canonical bytes: %s", i+1, line)
		}
		sum := sha256.Sum256(line)
		prev = hex.EncodeToString(sum[:])
	}
	for _, i := range []int{3, 6} {
		var cp struct {
			TS, Type, Head, Prev, Sig, SigKid string
			Count                             uint64
		}
		if err := json.Unmarshal(lines[i], &cp); err != nil {
			t.Fatal(err)
		}
		var sk struct {
			SigKid string `json:"sig_kid"`
		}
		_ = json.Unmarshal(lines[i], &sk)
		sig, _ := hex.DecodeString(cp.Sig)
		if cp.Type != TypeCheckpoint || cp.Count != uint64(i) || cp.Head != cp.Prev || sk.SigKid != PublicKeyID(testPub) ||
			!ed25519.Verify(testPub, CheckpointMessage(cp.TS, cp.Count, cp.Head), sig) {
			t.Fatalf("line %d is not a valid checkpoint: %s", i+1, lines[i])
		}
	}
	rep, err := Verify([]string{path}, testKeys, testPub)
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Files: 1, Lines: 7, Records: 5, Checkpoints: 2, FirstSeq: 1, LastSeq: 7, LastCheckpointSeq: 7, MACsChecked: true, SignaturesChecked: true}
	if rep != want {
		t.Fatalf("report %+v\nwant   %+v", rep, want)
	}
	// Readers see only the records.
	recs, skipped, err := ReadLastSkipped(path, 100, Filter{})
	if err != nil || len(recs) != 5 || skipped != 0 {
		t.Fatalf("ReadLast: %d records, %d skipped, %v", len(recs), skipped, err)
	}
}

// reseal rewrites lines into a new chain starting at seq first, with key
// (nil: no mac), as a forger who knows the format would.
func reseal(t *testing.T, lines [][]byte, first uint64, prevLine []byte, key []byte) [][]byte {
	t.Helper()
	c := newChain(key)
	c.seq = first - 1
	if prevLine != nil {
		c.prev = sha256.Sum256(prevLine)
	}
	var out [][]byte
	for _, line := range lines {
		i := bytes.Index(line, []byte(`,"seq":`))
		sealed := c.seal(nil, line[:i])
		out = append(out, bytes.TrimSuffix(sealed, []byte{'\n'}))
	}
	return out
}

func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	otherKey := bytes.Repeat([]byte{8}, 32)
	otherSigner := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{10}, 32))
	// 10 records with a checkpoint after every 4 lines: lines 1-4 records
	// (seq 1-4), 5 checkpoint, 6-9 records, 10 checkpoint, 11-12 records,
	// 13 final checkpoint.
	type verdict struct {
		kind ProblemKind
		line int
		seq  uint64
	}
	tests := []struct {
		name   string
		keys   map[string][]byte
		pub    ed25519.PublicKey
		mutate func(t *testing.T, lines [][]byte) [][]byte
		want   verdict
	}{
		{
			name: "tampered field",
			keys: testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				l[2] = bytes.Replace(l[2], []byte(`"user":"alice"`), []byte(`"user":"bobby"`), 1)
				return l
			},
			want: verdict{ProblemMAC, 3, 3},
		},
		{
			name: "tampered decision, public key only: caught by the next checkpoint",
			pub:  testPub,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				l[2] = bytes.Replace(l[2], []byte(`"ALLOWED"`), []byte(`"DENIED"`), 1)
				return l
			},
			want: verdict{ProblemPrev, 4, 4},
		},
		{
			name:   "deleted record",
			keys:   testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte { return append(l[:5], l[6:]...) },
			want:   verdict{ProblemSeqGap, 6, 7},
		},
		{
			name:   "deleted record after a checkpoint",
			keys:   testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte { return append(l[:10:10], l[11:]...) },
			want:   verdict{ProblemSeqGap, 11, 12},
		},
		{
			name: "swapped records",
			keys: testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				l[6], l[7] = l[7], l[6]
				return l
			},
			want: verdict{ProblemSeqOrder, 7, 8},
		},
		{
			name: "duplicated record",
			keys: testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				return append(l[:3:3], append([][]byte{l[1]}, l[3:]...)...)
			},
			want: verdict{ProblemSeqOrder, 4, 2},
		},
		{
			name: "forged record, mac not recomputed",
			keys: testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				forged := bytes.Replace(l[1], []byte(`"request_id":"1"`), []byte(`"request_id":"X"`), 1)
				return append(l[:2:2], append([][]byte{forged}, l[2:]...)...)
			},
			want: verdict{ProblemMAC, 3, 2},
		},
		{
			name: "forged record with a mac by another key under the real kid",
			keys: testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				f := reseal(t, [][]byte{l[1]}, 3, l[1], otherKey)[0]
				f = bytes.Replace(f, []byte(`"kid":"`+KeyID(otherKey)), []byte(`"kid":"`+KeyID(testKey)), 1)
				mac := hmac.New(sha256.New, otherKey)
				mac.Write(f[:len(f)-74])
				mac.Write([]byte("}"))
				f = append(f[:len(f)-66], hex.EncodeToString(mac.Sum(nil))+`"}`...)
				return append(l[:2:2], append([][]byte{f}, l[2:]...)...)
			},
			want: verdict{ProblemMAC, 3, 3},
		},
		{
			name: "forged record with a mac by another key under its own kid",
			keys: testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				f := reseal(t, [][]byte{l[1]}, 3, l[1], otherKey)[0]
				return append(l[:2:2], append([][]byte{f}, l[2:]...)...)
			},
			want: verdict{ProblemUnknownKey, 3, 3},
		},
		{
			name: "forged record and rechained tail, public key only",
			pub:  testPub,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				forged := bytes.Replace(l[1], []byte(`"request_id":"1"`), []byte(`"request_id":"X"`), 1)
				tail := reseal(t, append([][]byte{forged}, l[2:]...), 3, l[1], nil)
				return append(l[:2:2], tail...)
			},
			want: verdict{ProblemCheckpoint, 6, 6}, // the checkpoint's count and head no longer match
		},
		{
			name: "checkpoint re-signed by another key",
			pub:  testPub,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				var h lineHeader
				_ = json.Unmarshal(l[4], &h)
				sig := ed25519.Sign(otherSigner, CheckpointMessage(h.TS, *h.Count, h.Head))
				l[4] = bytes.Replace(l[4], []byte(h.Sig), []byte(hex.EncodeToString(sig)), 1)
				return l
			},
			want: verdict{ProblemSignature, 5, 5},
		},
		{
			name: "checkpoint checked with another public key",
			pub:  otherSigner.Public().(ed25519.PublicKey),
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				return l
			},
			want: verdict{ProblemUnknownKey, 5, 5},
		},
		{
			name: "whole log rewritten with another key",
			keys: testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				return reseal(t, l, 1, nil, otherKey)
			},
			want: verdict{ProblemUnknownKey, 1, 1},
		},
		{
			name: "mac stripped",
			keys: testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				return reseal(t, l, 1, nil, nil)
			},
			want: verdict{ProblemMissingMAC, 1, 1},
		},
		{
			name: "garbage line",
			keys: testKeys,
			mutate: func(t *testing.T, l [][]byte) [][]byte {
				l[8] = []byte(`{"ts":"x", not json`)
				return l
			},
			want: verdict{ProblemMalformed, 9, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := keyedLog(t, 10, 4)
			lines := readLines(t, path)
			if len(lines) != 13 {
				t.Fatalf("%d lines, want 13", len(lines))
			}
			if _, err := Verify([]string{path}, tt.keys, tt.pub); err != nil && tt.name != "checkpoint checked with another public key" {
				t.Fatalf("untouched log: %v", err)
			}
			writeLines(t, path, tt.mutate(t, lines))
			rep, err := Verify([]string{path}, tt.keys, tt.pub)
			var p *Problem
			if !errors.As(err, &p) || rep.Problem != p {
				t.Fatalf("Verify = %+v, %v; want a *Problem", rep, err)
			}
			got := verdict{p.Kind, p.Line, p.Seq}
			if got != tt.want || p.File != path {
				t.Fatalf("problem %v (%v)\nwant %+v", got, err, tt.want)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%s:%d", path, tt.want.line)) {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
}

func TestVerifyTruncated(t *testing.T) {
	t.Parallel()
	path := keyedLog(t, 4, 1000)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := len(data) - 40
	if err := os.WriteFile(path, data[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Verify([]string{path}, testKeys, testPub)
	var p *Problem
	if !errors.As(err, &p) || p.Kind != ProblemTruncated || p.Line != 5 {
		t.Fatalf("err = %v, want truncated line 5", err)
	}
	// Cutting a whole line at the end is not detectable from the file
	// alone: what remains verifies, and LastSeq says where it ends.
	if _, err := Verify([]string{filepath.Join(t.TempDir(), "missing")}, nil, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Verify(nil, nil, nil); err == nil {
		t.Error("no files: want error")
	}
}

func TestOpenRepairsTornLine(t *testing.T) {
	t.Parallel()
	path := keyedLog(t, 3, 1000)
	before := readLines(t, path)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := `{"ts":"2025-06-01T12:00:00.000000000Z","user":"eve","deci`
	if _, err := f.WriteString(torn); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	l := openLog(t, path, Options{HMACKey: testKey, SigningKey: testSigner, WaitForSync: true})
	record(t, l, rec(99, guard.Denied, "bob", "write"))
	closeLog(t, l)

	lines := readLines(t, path)
	if len(lines) != len(before)+3 { // recovery, record, checkpoint
		t.Fatalf("%d lines, want %d", len(lines), len(before)+3)
	}
	if !bytes.Equal(bytes.Join(lines[:len(before)], nil), bytes.Join(before, nil)) {
		t.Fatal("lines before the torn one changed")
	}
	h := header(t, lines[len(before)])
	var rc struct {
		Dropped int `json:"dropped_bytes"`
	}
	_ = json.Unmarshal(lines[len(before)], &rc)
	if h.Type != TypeRecovery || rc.Dropped != len(torn) || h.Seq != uint64(len(before)+1) {
		t.Fatalf("recovery line: %s", lines[len(before)])
	}
	rep, err := Verify([]string{path}, testKeys, testPub)
	if err != nil || rep.Records != 4 || rep.Recoveries != 1 {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
}

func TestOpenTornFirstLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(`{"ts":"2025`), 0o600); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, path, Options{HMACKey: testKey, WaitForSync: true})
	record(t, l, rec(1, guard.Allowed, "a", "b"))
	closeLog(t, l)
	rep, err := Verify([]string{path}, testKeys, nil)
	if err != nil || rep.Recoveries != 1 || rep.Records != 1 || rep.FirstSeq != 1 {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
}

func TestOpenSetsAsideBrokenLog(t *testing.T) {
	t.Parallel()
	otherKey := bytes.Repeat([]byte{8}, 32)
	tests := []struct {
		name   string
		mutate func(path string) error
		opts   Options
		reason string
	}{
		{"tampered last line", func(path string) error {
			data, _ := os.ReadFile(path)
			i := bytes.LastIndex(data, []byte(`{"ts":"2`))
			data[i+len(`{"ts":"`)] = '1'
			return os.WriteFile(path, data, 0o600)
		}, Options{HMACKey: testKey}, "mac mismatch"},
		{"other key", nil, Options{HMACKey: otherKey}, "unknown key id"},
		{"no key for an authenticated log", nil, Options{}, "no key was given"},
		{"log from before the chain", func(path string) error {
			return os.WriteFile(path, []byte(`{"ts":"2025-01-01T00:00:00Z","decision":"ALLOWED"}`+"\n"), 0o600)
		}, Options{HMACKey: testKey}, "not a chain line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := keyedLog(t, 3, 1000) // the last line is the checkpoint of Close
			if tt.mutate != nil {
				if err := tt.mutate(path); err != nil {
					t.Fatal(err)
				}
			}
			old, _ := os.ReadFile(path)
			tt.opts.WaitForSync = true
			l := openLog(t, path, tt.opts)
			record(t, l, rec(50, guard.Allowed, "carol", "x"))
			closeLog(t, l)

			broken, _ := filepath.Glob(path + ".broken-*")
			if len(broken) != 1 {
				t.Fatalf("broken files: %v", broken)
			}
			if kept, _ := os.ReadFile(broken[0]); !bytes.Equal(kept, old) {
				t.Fatal("the broken log was changed")
			}
			lines := readLines(t, path)
			var cs struct {
				Type, Reason string
				Previous     string `json:"previous_file"`
			}
			_ = json.Unmarshal(lines[0], &cs)
			if h := header(t, lines[0]); cs.Type != TypeChainStart || h.Seq != 1 || cs.Previous != broken[0] || !strings.Contains(cs.Reason, tt.reason) {
				t.Fatalf("first line %s, want a chain_start naming %s for %q", lines[0], broken[0], tt.reason)
			}
			keys := map[string][]byte{}
			if tt.opts.HMACKey != nil {
				keys[KeyID(tt.opts.HMACKey)] = tt.opts.HMACKey
			}
			rep, err := Verify([]string{path}, keys, nil)
			if err != nil || rep.Records != 1 || rep.ChainStarts != 1 {
				t.Fatalf("Verify new chain: %+v, %v", rep, err)
			}
			if got, _ := Files(path); len(got) != 1 || got[0] != path {
				t.Errorf("Files = %v: broken files must not be listed", got)
			}
		})
	}
}

func TestOpenKeyRotation(t *testing.T) {
	t.Parallel()
	newKey := bytes.Repeat([]byte{8}, 32)
	path := keyedLog(t, 3, 1000)
	l := openLog(t, path, Options{HMACKey: newKey, PreviousHMACKeys: []secrets.Value{testKey}, WaitForSync: true})
	record(t, l, rec(3, guard.Allowed, "a", "b"))
	closeLog(t, l)
	if broken, _ := filepath.Glob(path + ".broken-*"); len(broken) != 0 {
		t.Fatalf("chain broken on key rotation: %v", broken)
	}
	both := map[string][]byte{KeyID(testKey): testKey, KeyID(newKey): newKey}
	rep, err := Verify([]string{path}, both, nil)
	if err != nil || rep.Records != 4 || rep.LastSeq != 5 { // 3 records, checkpoint, record
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
	if _, err := Verify([]string{path}, testKeys, nil); err == nil {
		t.Fatal("verified lines of the new key without it")
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	clock := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); clock = clock.Add(time.Millisecond); return clock }
	o := Options{HMACKey: testKey, SigningKey: testSigner, CheckpointEvery: 7, WaitForSync: true, MaxBytes: 2000, Now: now}
	l := openLog(t, path, o)
	for i := range 40 {
		record(t, l, rec(i, guard.Allowed, "alice", "read"))
	}
	closeLog(t, l)
	// Reopen: the chain continues (from a rotated file if the current one
	// is empty).
	l = openLog(t, path, o)
	for i := 40; i < 50; i++ {
		record(t, l, rec(i, guard.Allowed, "alice", "read"))
	}
	closeLog(t, l)

	files, err := Files(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("only %d files: %v", len(files), files)
	}
	for _, f := range files[:len(files)-1] {
		if !strings.HasPrefix(filepath.Base(f), "audit-2025010") || !strings.HasSuffix(f, "Z.log") {
			t.Errorf("rotated name %s", f)
		}
		if st, _ := os.Stat(f); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, st.Mode())
		}
	}
	rep, err := Verify(files, testKeys, testPub)
	if err != nil || rep.Records != 50 || rep.FirstSeq != 1 || rep.Files != len(files) {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
	// Removing a middle file is a gap.
	missing := append(append([]string{}, files[:2]...), files[3:]...)
	_, err = Verify(missing, testKeys, testPub)
	var p *Problem
	if !errors.As(err, &p) || p.Kind != ProblemSeqGap || p.File != files[3] || p.Line != 1 {
		t.Fatalf("without %s: %v, want a seq gap at the start of %s", files[2], err, files[3])
	}
	// Readers still read the current file.
	if _, err := ReadLast(path, 5, Filter{}); err != nil {
		t.Fatal(err)
	}
}

func TestRotationByAge(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit")
	clock := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); clock = clock.Add(time.Minute); return clock }
	l := openLog(t, path, Options{HMACKey: testKey, WaitForSync: true, MaxAge: 150 * time.Second, Now: now})
	for i := range 9 {
		record(t, l, rec(i, guard.Allowed, "a", "b"))
	}
	closeLog(t, l)
	files, _ := Files(path)
	if len(files) < 3 || !strings.HasPrefix(filepath.Base(files[0]), "audit-20250102T03") {
		t.Fatalf("files %v", files)
	}
	if rep, err := Verify(files, testKeys, nil); err != nil || rep.Records != 9 {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
}

func TestGroupCommitConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	var batches, lines int
	var mu sync.Mutex
	l := openLog(t, path, Options{HMACKey: testKey, SigningKey: testSigner, WaitForSync: true, OnBatch: func(n int, _ time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			batches++
			lines += n
		}
	}})
	const goroutines, each = 32, 100
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r := rec(i, guard.Allowed, fmt.Sprint("u", g), "t")
				if err := l.Record(context.Background(), r); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := l.Stats()
	closeLog(t, l)
	if st.Written != goroutines*each+st.Checkpoints || st.QueueDepth != 0 {
		t.Fatalf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if batches >= goroutines*each/2 {
		t.Errorf("%d batches for %d records: no group commit", batches, goroutines*each)
	}
	rep, err := Verify([]string{path}, testKeys, testPub)
	if err != nil || rep.Records != goroutines*each || rep.Lines != lines {
		t.Fatalf("Verify: %+v, %v (OnBatch saw %d lines)", rep, err, lines)
	}
}

func TestAsyncMode(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path, Options{HMACKey: testKey, FlushInterval: time.Millisecond, MaxBatch: 64})
	for i := range 1000 {
		record(t, l, rec(i, guard.Allowed, "a", "b"))
	}
	closeLog(t, l) // writes what is queued
	rep, err := Verify([]string{path}, testKeys, nil)
	if err != nil || rep.Records != 1000 {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
	if err := l.Record(context.Background(), rec(1, guard.Allowed, "a", "b")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if err := l.Ready(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ready after Close: %v", err)
	}
}

func TestCheckpointInterval(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path, Options{HMACKey: testKey, SigningKey: testSigner, CheckpointInterval: 20 * time.Millisecond, WaitForSync: true})
	defer closeLog(t, l)
	record(t, l, rec(1, guard.Allowed, "a", "b"))
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().Checkpoints == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint after the interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := l.Stats().Checkpoints; n != 1 {
		t.Fatalf("%d checkpoints without new records, want 1", n)
	}
}

// faultyFile fails writes (after writing half) or syncs while told to, and
// can make Sync wait.
type faultyFile struct {
	*os.File
	mu        sync.Mutex
	failWrite bool
	failSync  bool
	hold      chan struct{} // Sync waits for it to be closed, when set
}

func (f *faultyFile) set(fn func(f *faultyFile)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *faultyFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	fail := f.failWrite
	f.mu.Unlock()
	if fail {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, errors.New("no space left on device")
	}
	return f.File.Write(p)
}

func (f *faultyFile) Sync() error {
	f.mu.Lock()
	fail, hold := f.failSync, f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if fail {
		return errors.New("input/output error")
	}
	return f.File.Sync()
}

func openFaulty(t *testing.T, o Options) (*Logger, *faultyFile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	ff := &faultyFile{}
	o.wrapFile = func(f *os.File) logFile { ff.File = f; return ff }
	return openLog(t, path, o), ff, path
}

func TestWriteFailureFailsClosed(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"write", "sync"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			l, ff, path := openFaulty(t, Options{HMACKey: testKey, WaitForSync: true})
			ctx := context.Background()
			record(t, l, rec(1, guard.Allowed, "a", "b"))
			if err := l.Ready(); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			ff.set(func(f *faultyFile) { f.failWrite, f.failSync = mode == "write", mode == "sync" })
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := range 8 {
				wg.Go(func() { errs <- l.Record(ctx, rec(10+i, guard.Allowed, "a", "b")) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err == nil {
					t.Fatal("Record succeeded while the disk fails")
				}
			}
			if err := l.Ready(); err == nil {
				t.Fatal("Ready = nil while the disk fails")
			}
			if st := l.Stats(); st.Failed != 8 {
				t.Errorf("Failed = %d, want 8", st.Failed)
			}
			// The disk recovers: the writer's own retry clears Ready.
			ff.set(func(f *faultyFile) { f.failWrite, f.failSync = false, false })
			deadline := time.Now().Add(5 * time.Second)
			for l.Ready() != nil {
				if time.Now().After(deadline) {
					t.Fatalf("Ready still %v", l.Ready())
				}
				time.Sleep(20 * time.Millisecond)
			}
			record(t, l, rec(2, guard.Allowed, "a", "b"))
			closeLog(t, l)
			rep, err := Verify([]string{path}, testKeys, nil)
			if err != nil || rep.Records != 2 || rep.Resumed != 1 {
				t.Fatalf("Verify: %+v, %v", rep, err)
			}
			var resumed struct {
				Failed int `json:"failed_records"`
				Error  string
			}
			_ = json.Unmarshal(readLines(t, path)[1], &resumed)
			if resumed.Failed != 8 || resumed.Error == "" {
				t.Errorf("resumed line: %+v", resumed)
			}
		})
	}
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	for _, block := range []bool{false, true} {
		t.Run(fmt.Sprint("block=", block), func(t *testing.T) {
			t.Parallel()
			l, ff, path := openFaulty(t, Options{HMACKey: testKey, QueueSize: 4, MaxBatch: 2, BlockWhenFull: block})
			hold := make(chan struct{})
			ff.set(func(f *faultyFile) { f.hold = hold })
			ctx := context.Background()
			// The writer takes the first batch and waits in Sync; four
			// more records fill the queue.
			record(t, l, rec(0, guard.Allowed, "a", "b"))
			deadline := time.Now().Add(5 * time.Second)
			for l.Stats().QueueDepth != 0 {
				if time.Now().After(deadline) {
					t.Fatal("writer did not take the first batch")
				}
				time.Sleep(time.Millisecond)
			}
			for i := range 4 {
				record(t, l, rec(1+i, guard.Allowed, "a", "b"))
			}
			if d := l.Stats().QueueDepth; d != 4 {
				t.Fatalf("QueueDepth = %d, want 4", d)
			}
			if !block {
				if err := l.Record(ctx, rec(9, guard.Allowed, "a", "b")); !errors.Is(err, ErrQueueFull) {
					t.Fatalf("full queue: %v, want ErrQueueFull", err)
				}
			} else {
				short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
				defer cancel()
				if err := l.Record(short, rec(9, guard.Allowed, "a", "b")); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("full queue: %v, want to wait until the deadline", err)
				}
				done := make(chan error, 1)
				go func() { done <- l.Record(ctx, rec(5, guard.Allowed, "a", "b")) }()
				time.Sleep(20 * time.Millisecond)
				close(hold)
				if err := <-done; err != nil {
					t.Fatalf("blocked Record: %v", err)
				}
			}
			ff.set(func(f *faultyFile) { f.hold = nil })
			if !block {
				close(hold)
			}
			closeLog(t, l)
			want := 5
			if block {
				want = 6
			}
			if rep, err := Verify([]string{path}, testKeys, nil); err != nil || rep.Records != want {
				t.Fatalf("Verify: %+v, %v", rep, err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "a.log"), Options{HMACKey: []byte("short")}); err == nil {
		t.Error("short key: want error")
	}
	if _, err := Open(filepath.Join(dir, "a.log"), Options{SigningKey: ed25519.PrivateKey{1, 2}}); err == nil {
		t.Error("bad signing key: want error")
	}
	if _, err := Open(dir, Options{}); err == nil {
		t.Error("directory: want error")
	}
}

// TestLowSpaceStopsRequestsFirst checks the free-space reserve: below
// MinFreeBytes the logger is not ready (so the pipeline stops running
// requests) while records still get written into the reserve, and it is
// ready again once space is freed.
func TestLowSpaceStopsRequestsFirst(t *testing.T) {
	t.Parallel()
	var free atomic.Int64
	free.Store(10 << 20)
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path, Options{HMACKey: testKey, WaitForSync: true, MinFreeBytes: 1 << 20,
		freeBytes: func(string) (int64, error) { return free.Load(), nil }})
	record(t, l, rec(1, guard.Allowed, "a", "b"))
	if err := l.Ready(); err != nil {
		t.Fatalf("Ready with 10 MiB free: %v", err)
	}
	free.Store(512 << 10)
	record(t, l, rec(2, guard.Denied, "a", "b")) // written into the reserve
	if err := l.Ready(); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("Ready with 512 KiB free = %v, want ErrLowSpace", err)
	}
	free.Store(5 << 20)
	deadline := time.Now().Add(5 * time.Second) // rechecked every second
	for l.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ready still %v after space was freed", l.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	closeLog(t, l)
	if rep, err := Verify([]string{path}, testKeys, nil); err != nil || rep.Records != 2 {
		t.Fatalf("Verify: %+v %v", rep, err)
	}
}
