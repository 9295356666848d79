package audit

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// Environment of TestHelperProcess.
const (
	helperEnv     = "MCPGUARD_AUDIT_HELPER"
	helperPathEnv = "MCPGUARD_AUDIT_HELPER_PATH"
	helperSyncEnv = "MCPGUARD_AUDIT_HELPER_SYNC"
)

// TestHelperProcess is not a test: run by TestKillDuringGroupCommit, it
// writes records from many goroutines until killed, printing "ack <id>" for
// every record Record acknowledged.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process")
	}
	l, err := Open(os.Getenv(helperPathEnv), Options{
		HMACKey:         testKey,
		SigningKey:      testSigner,
		CheckpointEvery: 100,
		WaitForSync:     os.Getenv(helperSyncEnv) == "1",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	for g := range 16 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("%d-%d", g, i)
				r := &guard.Record{Time: time.Now(), RequestID: id, Subject: "load", Method: "tools/call", Target: "t", Decision: guard.Allowed, Reason: strings.Repeat("x", i%300)}
				if err := l.Record(context.Background(), r); err != nil {
					continue
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s\n", id)
				if i%8 == 0 {
					_ = out.Flush()
				}
				mu.Unlock()
			}
		}()
	}
	select {}
}

func TestKillDuringGroupCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	t.Parallel()
	for _, waitForSync := range []bool{true, false} {
		t.Run(fmt.Sprint("WaitForSync=", waitForSync), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			sync := "0"
			if waitForSync {
				sync = "1"
			}
			cmd.Env = append(os.Environ(), helperEnv+"=1", helperPathEnv+"="+path, helperSyncEnv+"="+sync)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// In the asynchronous mode a crash may lose everything queued
			// in the last FlushInterval, which can be more than 3000 fast
			// records: run long enough for batches to reach the disk.
			started := time.Now()
			acked := map[string]bool{}
			sc := bufio.NewScanner(stdout)
			killed := false
			for sc.Scan() {
				id, ok := strings.CutPrefix(sc.Text(), "ack ")
				if !ok {
					continue
				}
				acked[id] = true
				if len(acked) >= 3000 && !killed && (waitForSync || time.Since(started) >= 20*DefaultFlushInterval) {
					// SIGKILL in the middle of the burst.
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
					killed = true
				}
			}
			_ = cmd.Wait()
			if !killed {
				t.Fatalf("helper exited before being killed (%d acks): %s", len(acked), stderr.String())
			}

			// Reopen (repairing the tail if needed), then verify all.
			l := openLog(t, path, Options{HMACKey: testKey, SigningKey: testSigner, WaitForSync: true})
			closeLog(t, l)
			files, err := Files(path)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(files, testKeys, testPub)
			if err != nil {
				t.Fatalf("Verify after kill: %v", err)
			}
			if rep.ChainStarts != 0 || rep.Records == 0 || waitForSync && rep.Records < 3000 {
				t.Fatalf("report %+v", rep)
			}
			t.Logf("acked %d, on disk %d records, %d checkpoints, %d recoveries", len(acked), rep.Records, rep.Checkpoints, rep.Recoveries)
			if !waitForSync {
				return
			}
			recs, err := ReadLast(path, MaxReadLast, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			onDisk := make(map[string]bool, len(recs))
			for _, r := range recs {
				onDisk[r.RequestID] = true
			}
			lost := 0
			for id := range acked {
				if !onDisk[id] {
					lost++
				}
			}
			if lost > 0 {
				t.Fatalf("%d acknowledged records lost", lost)
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	t.Parallel()
	if got := KeyID(testKey); len(got) != 16 || got != hex.EncodeToString(sha256Sum(testKey)[:8]) {
		t.Fatalf("KeyID = %q", got)
	}
	if KeyID(testKey) == KeyID(testKey[1:]) {
		t.Fatal("different keys, same id")
	}
}
