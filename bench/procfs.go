package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// cpuTicks is a process's user plus system CPU time in clock ticks.
type cpuTicks uint64

// parseStatCPU returns utime+stime (fields 14 and 15) from the contents of
// /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStatCPU(stat []byte) (cpuTicks, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("proc stat: no ')' after the command name")
	}
	// After ") " come field 3 (state), 4, ...; utime is field 14, stime 15.
	fields := strings.Fields(string(stat[end+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want more than %d", len(fields), stime)
	}
	u, err := strconv.ParseUint(fields[utime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat: utime: %w", err)
	}
	s, err := strconv.ParseUint(fields[stime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat: stime: %w", err)
	}
	return cpuTicks(u + s), nil
}

// readCPU reads the CPU ticks consumed so far by process pid.
func readCPU(pid int) (cpuTicks, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of pid %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

// parseStatusKiB returns the value of field (e.g. "VmHWM", "VmRSS") in the
// contents of /proc/<pid>/status, in KiB.
func parseStatusKiB(status []byte, field string) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	prefix := field + ":"
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: malformed %s line %q", field, line)
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc status: %s: %w", field, err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("proc status: %w", err)
	}
	return 0, fmt.Errorf("proc status: no %s line", field)
}

// readStatusKiB reads one memory field of process pid, in KiB.
func readStatusKiB(pid int, field string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	return parseStatusKiB(b, field)
}

// clockTicks returns the kernel's clock ticks per second (CLK_TCK), read
// with getconf, or 100 (Linux's near-universal value) if that fails.
func clockTicks(ctx context.Context) (float64, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v, "getconf CLK_TCK"
		}
	}
	return 100, "assumed (getconf CLK_TCK failed)"
}

// cpuModel returns the first "model name" of cpuinfo, or "unknown".
func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
