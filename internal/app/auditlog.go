package app

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/mcpguard/mcpguard/audit"
	"github.com/mcpguard/mcpguard/auditstore"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/metrics"
	"github.com/mcpguard/mcpguard/secrets"
)

// Audit key files in the data directory, used when the configuration names
// no key.
const (
	AuditHMACKeyFile    = "audit-hmac.key"
	AuditSigningKeyFile = "audit-signing.pem"
)

// SigningKeyPath is where the checkpoint signing key of cfg lives.
func SigningKeyPath(cfg *config.Config) string {
	if cfg.Audit.SigningKey != "" {
		return cfg.Audit.SigningKey
	}
	return filepath.Join(cfg.DataDir, AuditSigningKeyFile)
}

// openAuditLog opens the configured audit log: hash-chained and HMAC'd,
// with signed checkpoints, keys created on first start when not configured.
func openAuditLog(cfg *config.Config, res config.Resolver, m *metrics.Metrics) (*audit.Logger, error) {
	switch cfg.Audit.Log {
	case "-", "stderr":
		return audit.New(os.Stderr), nil
	case "stdout":
		return audit.New(os.Stdout), nil
	}
	var key []byte
	var err error
	if cfg.Audit.HMACKey != "" {
		key, err = cfg.Audit.HMACKey.ResolveWith(res)
	} else {
		key, err = audit.LoadOrCreateKey(filepath.Join(cfg.DataDir, AuditHMACKeyFile))
	}
	if err != nil {
		return nil, fmt.Errorf("audit.hmac_key: %w", err)
	}
	previous, err := resolveKeys(cfg.Audit.PreviousHMACKeys, res)
	if err != nil {
		return nil, err
	}
	signer, err := audit.LoadOrCreateSigningKey(SigningKeyPath(cfg))
	if err != nil {
		return nil, fmt.Errorf("audit.signing_key: %w", err)
	}
	l, err := audit.Open(cfg.Audit.Log, audit.Options{
		HMACKey:          key,
		PreviousHMACKeys: previous,
		SigningKey:       signer,
		CheckpointEvery:  cfg.Audit.CheckpointEvery,
		WaitForSync:      cfg.Audit.Durable,
		FlushInterval:    cfg.Audit.FlushInterval,
		BlockWhenFull:    cfg.Audit.BlockWhenFull,
		MaxBytes:         cfg.Audit.MaxBytes,
		MaxAge:           cfg.Audit.MaxAge,
		MinFreeBytes:     cfg.Audit.MinFreeBytes,
		OnBatch: func(_ int, latency time.Duration, err error) {
			m.ObserveAuditWrite(latency)
		},
	})
	if err != nil {
		return nil, err
	}
	m.SetAuditQueue(func() int { return l.Stats().QueueDepth })
	return l, nil
}

// resolveKeys reads the previous HMAC keys.
func resolveKeys(refs []config.SecretRef, res config.Resolver) ([]secrets.Value, error) {
	var keys []secrets.Value
	for i, ref := range refs {
		k, err := ref.ResolveWith(res)
		if err != nil {
			return nil, fmt.Errorf("audit.previous_hmac_keys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// AuditVerifyOptions are the inputs of `mcpguard audit verify`.
type AuditVerifyOptions struct {
	// Files to verify, in order; a single path also takes its rotated
	// predecessors.
	Files []string
	// HMACKeys check every line's mac (the current key and any previous
	// ones); none checks only the hash chain and (with PublicKeyFile) the
	// checkpoint signatures.
	HMACKeys [][]byte
	// PublicKeyFile holds the checkpoint signing key's public half.
	PublicKeyFile string
}

// ErrAuditBroken is returned by AuditVerify when the log does not verify.
var ErrAuditBroken = errors.New("audit log does not verify")

// AuditVerify verifies the audit chain and prints a one-line report.
func AuditVerify(out io.Writer, o AuditVerifyOptions) error {
	files := o.Files
	if len(files) == 1 {
		all, err := audit.Files(files[0])
		if err != nil {
			return err
		}
		files = all
	}
	var keys map[string][]byte
	for _, k := range o.HMACKeys {
		if keys == nil {
			keys = map[string][]byte{}
		}
		keys[audit.KeyID(k)] = k
	}
	var pub ed25519.PublicKey
	if o.PublicKeyFile != "" {
		var err error
		if pub, err = audit.LoadPublicKey(o.PublicKeyFile); err != nil {
			return err
		}
	}
	if keys == nil && pub == nil {
		return errors.New("give an HMAC key or a public key: without either a forger could rewrite the whole chain")
	}
	rep, err := audit.Verify(files, keys, pub)
	if rep.Problem != nil {
		fmt.Fprintf(out, "FAILED: %v\n", rep.Problem)
		return ErrAuditBroken
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d records verified (%d checkpoints, %d files, seq %d-%d; macs checked: %v, signatures checked: %v)\n",
		rep.Records, rep.Checkpoints, rep.Files, rep.FirstSeq, rep.LastSeq, rep.MACsChecked, rep.SignaturesChecked)
	return nil
}

// AuditExport writes the last n matching records of the log at path in a
// SIEM format: "cef" (ArcSight Common Event Format) or "jsonl".
func AuditExport(out io.Writer, path string, n int, f audit.Filter, format string) error {
	recs, err := audit.ReadLast(path, n, f)
	if err != nil {
		return err
	}
	switch format {
	case "cef":
		return audit.CEF{Version: Version}.Export(out, recs)
	case "jsonl", "json":
		return auditstore.WriteJSONLines(out, recs)
	}
	return fmt.Errorf("unknown format %q: use cef or jsonl", format)
}
