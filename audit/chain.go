package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"
)

// Line types. An audit record's line has no "type" key; every other line of
// the chain names its type.
const (
	// TypeCheckpoint marks a signed checkpoint line: "count" is the number
	// of chain lines before it (its seq minus one), "head" is the hex
	// SHA-256 of the line just before it, and "sig" is the hex Ed25519
	// signature of [CheckpointMessage] by the key named by "sig_kid".
	TypeCheckpoint = "checkpoint"
	// TypeRecovery marks a line written by [Open] after it cut a torn,
	// unterminated last line (a writer killed mid-write) from the log;
	// "dropped_bytes" says how many bytes were cut.
	TypeRecovery = "recovery"
	// TypeChainStart marks the first line of a new chain (seq 1), started
	// because the previous log did not verify; "previous_file" names where
	// that log was moved and "reason" says what was wrong with it.
	TypeChainStart = "chain_start"
	// TypeResumed marks the first line written after writes had failed
	// (for example on a full disk); "failed_records" counts the records
	// refused meanwhile and "error" is the last write error.
	TypeResumed = "resumed"
)

// MinKeyLen is the shortest HMAC key accepted, in bytes.
const MinKeyLen = 32

// macSuffixLen is the length of `,"mac":"<64 hex>"}`.
const macSuffixLen = len(`,"mac":"`) + 64 + len(`"}`)

// zeroHash is the "prev" of the first line of a chain.
var zeroHash = [sha256.Size]byte{}

// KeyID returns the id under which an HMAC key is named in the "kid" key of
// the lines it authenticates: the first 16 hex digits of the key's SHA-256.
// Pass a map from KeyID to key to [Verify].
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// PublicKeyID returns the id under which a checkpoint names the Ed25519 key
// that signed it, in its "sig_kid" key: the first 16 hex digits of the
// SHA-256 of the 32-byte public key.
func PublicKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// CheckpointMessage returns the bytes a checkpoint's Ed25519 signature
// covers, for a checkpoint with the given "ts", "count" and "head" values:
//
//	"mcpguard-audit-checkpoint-v1\n" + ts + "\n" + decimal count + "\n" + head + "\n"
//
// Because head is the hash of the previous line, which holds the hash of the
// line before it, and so on, the signature commits to every line of the
// chain before the checkpoint.
func CheckpointMessage(ts string, count uint64, head string) []byte {
	b := make([]byte, 0, 64+len(ts)+len(head))
	b = append(b, "mcpguard-audit-checkpoint-v1\n"...)
	b = append(b, ts...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, count, 10)
	b = append(b, '\n')
	b = append(b, head...)
	return append(b, '\n')
}

// chain is the state of a hash chain: the seq and hash of its last line, and
// the key that authenticates the next one. It is not safe for concurrent use.
type chain struct {
	seq  uint64
	prev [sha256.Size]byte
	kid  string
	mac  hash.Hash // HMAC-SHA256 with the key; nil without a key
	// sinceCheckpoint counts the lines since the last checkpoint.
	sinceCheckpoint int
}

func newChain(key []byte) chain {
	c := chain{}
	if key != nil {
		c.kid = KeyID(key)
		c.mac = hmac.New(sha256.New, key)
	}
	return c
}

// seal appends to dst the complete line (with its newline) for body, a JSON
// object without its closing brace, and advances the chain. The line is
//
//	body + `,"seq":N,"prev":"<hex>","kid":"<kid>"` + `}`
//
// with `,"mac":"<hex HMAC>"` inserted before the closing brace when the chain
// has a key: the HMAC covers every byte of the line as it is before that
// insertion.
func (c *chain) seal(dst, body []byte) []byte {
	start := len(dst)
	dst = append(dst, body...)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, c.seq+1, 10)
	dst = append(dst, `,"prev":"`...)
	dst = hex.AppendEncode(dst, c.prev[:])
	dst = append(dst, '"')
	if c.mac != nil {
		dst = append(dst, `,"kid":"`...)
		dst = append(dst, c.kid...)
		dst = append(dst, `"}`...)
		c.mac.Reset()
		c.mac.Write(dst[start:])
		var sum [sha256.Size]byte
		dst = dst[:len(dst)-1] // drop the brace again
		dst = append(dst, `,"mac":"`...)
		dst = hex.AppendEncode(dst, c.mac.Sum(sum[:0]))
		dst = append(dst, '"')
	}
	dst = append(dst, '}')
	c.prev = sha256.Sum256(dst[start:])
	c.seq++
	c.sinceCheckpoint++
	return append(dst, '\n')
}

// appendCheckpoint appends a signed checkpoint line to dst.
func (c *chain) appendCheckpoint(dst []byte, now time.Time, key ed25519.PrivateKey) []byte {
	ts := now.UTC().Format(TimeLayout)
	head := hex.EncodeToString(c.prev[:])
	sig := ed25519.Sign(key, CheckpointMessage(ts, c.seq, head))
	body := make([]byte, 0, 320)
	body = append(body, `{"ts":"`...)
	body = append(body, ts...)
	body = append(body, `","type":"checkpoint","count":`...)
	body = strconv.AppendUint(body, c.seq, 10)
	body = append(body, `,"head":"`...)
	body = append(body, head...)
	body = append(body, `","sig_kid":"`...)
	body = append(body, PublicKeyID(key.Public().(ed25519.PublicKey))...)
	body = append(body, `","sig":"`...)
	body = hex.AppendEncode(body, sig)
	body = append(body, '"')
	dst = c.seal(dst, body)
	c.sinceCheckpoint = 0
	return dst
}

// noticeBody returns the body of a typed line (recovery, chain_start,
// resumed) with the given members, each value a string or an integer.
func noticeBody(now time.Time, typ string, kv ...any) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"ts":"`...)
	b = append(b, now.UTC().Format(TimeLayout)...)
	b = append(b, `","type":`...)
	b = appendJSONString(b, typ)
	for i := 0; i+1 < len(kv); i += 2 {
		b = append(b, ',')
		b = appendJSONString(b, kv[i].(string))
		b = append(b, ':')
		switch v := kv[i+1].(type) {
		case string:
			b = appendJSONString(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case uint64:
			b = strconv.AppendUint(b, v, 10)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		}
	}
	return b
}

// appendJSONString appends s as a JSON string, escaped like every other
// string of the log (see [appendString]).
func appendJSONString(dst []byte, s string) []byte { return appendString(dst, s, true) }

// lineHeader holds the chain members of a line.
type lineHeader struct {
	TS           string  `json:"ts"`
	Type         string  `json:"type"`
	Seq          uint64  `json:"seq"`
	Prev         string  `json:"prev"`
	Kid          string  `json:"kid"`
	Mac          string  `json:"mac"`
	Count        *uint64 `json:"count"`
	Head         string  `json:"head"`
	SigKid       string  `json:"sig_kid"`
	Sig          string  `json:"sig"`
	PreviousFile string  `json:"previous_file"`
}

// errNoMAC and friends describe why a line does not authenticate.
var (
	errNoMAC      = errors.New("line has no mac")
	errUnknownKid = errors.New("unknown key id")
	errBadMAC     = errors.New("mac mismatch")
)

// parseHeader decodes the chain members of line (without its newline).
func parseHeader(line []byte) (lineHeader, error) {
	var h lineHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return h, fmt.Errorf("malformed JSON: %w", err)
	}
	if h.Seq == 0 || len(h.Prev) != 2*sha256.Size {
		return h, errors.New("no chain fields (seq, prev)")
	}
	return h, nil
}

// checkMAC checks line's mac with the key named by its kid. It returns
// errNoMAC, errUnknownKid or errBadMAC.
func checkMAC(line []byte, h *lineHeader, keys map[string][]byte) error {
	if h.Mac == "" || h.Kid == "" || len(line) < macSuffixLen || !bytes.HasPrefix(line[len(line)-macSuffixLen:], []byte(`,"mac":"`)) {
		return errNoMAC
	}
	key, ok := keys[h.Kid]
	if !ok {
		return fmt.Errorf("%w %q", errUnknownKid, h.Kid)
	}
	got := line[len(line)-macSuffixLen+len(`,"mac":"`) : len(line)-2]
	if h.Mac != string(got) { // ct:public: two copies of the MAC from the line itself; the MAC is checked below
		return errBadMAC
	}
	m := hmac.New(sha256.New, key)
	m.Write(line[:len(line)-macSuffixLen])
	m.Write([]byte{'}'})
	// Compared as the lowercase hex the logger writes, not as decoded
	// bytes: hex decoding ignores case, which would let a changed byte
	// (an 'a' made 'A') pass unnoticed.
	if !hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), got) {
		return errBadMAC
	}
	return nil
}
