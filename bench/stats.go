package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must be in ascending order; 0 when it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// loadResult is what one variant's load run measured.
type loadResult struct {
	Variant     variant
	Calls       int           // measured calls that completed, successfully or not
	Errors      int           // calls that failed or returned isError
	Wall        time.Duration // wall time of the measured phase
	P50         time.Duration
	P90         time.Duration
	P99         time.Duration
	ServerCPU   float64 // seconds of server CPU in the measured phase
	ClientCPU   float64 // seconds of this process's CPU in the measured phase
	PeakRSSKiB  uint64  // server VmHWM at the end of the measured phase
	ServerError string  // why the variant could not be measured, if it could not
	FirstError  error   // the first failed call's error, if any failed
}

// summarize fills the latency percentiles from the (unsorted) latencies;
// it sorts lat in place.
func (r *loadResult) summarize(lat []time.Duration) {
	slices.Sort(lat)
	r.P50, r.P90, r.P99 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
}

// throughput is measured calls per second of wall time.
func (r loadResult) throughput() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Calls) / r.Wall.Seconds()
}

// perThousand converts CPU seconds for the run into seconds per 1,000 calls.
func (r loadResult) perThousand(cpu float64) float64 {
	if r.Calls == 0 {
		return 0
	}
	return cpu / float64(r.Calls) * 1000
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// renderLoadTable writes results as a Markdown table. Ratios and added
// latency are relative to the first result whose variant is the baseline,
// when there is one.
func renderLoadTable(w io.Writer, results []loadResult) error {
	var base *loadResult
	for i := range results {
		if results[i].Variant.Baseline && results[i].ServerError == "" {
			base = &results[i]
			break
		}
	}
	var b strings.Builder
	b.WriteString("| variant | audit | calls | errors | calls/s | × (a) | p50 ms | p90 ms | p99 ms | +p50 µs vs (a) | server CPU s / 1k calls | client CPU s / 1k calls | server peak RSS MiB |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range results {
		if r.ServerError != "" {
			fmt.Fprintf(&b, "| %s | %s | failed: %s |||||||||||\n", r.Variant.Label, r.Variant.auditMode(), escapeCell(r.ServerError))
			continue
		}
		ratio, added := "–", "–"
		if base != nil && base.throughput() > 0 {
			ratio = fmt.Sprintf("%.2f", r.throughput()/base.throughput())
			added = fmt.Sprintf("%+.0f", float64(r.P50-base.P50)/float64(time.Microsecond))
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.0f | %s | %s | %s | %s | %s | %.3f | %.3f | %.1f |\n",
			r.Variant.Label, r.Variant.auditMode(), r.Calls, r.Errors, r.throughput(), ratio,
			ms(r.P50), ms(r.P90), ms(r.P99), added,
			r.perThousand(r.ServerCPU), r.perThousand(r.ClientCPU), float64(r.PeakRSSKiB)/1024)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// escapeCell makes s safe inside one Markdown table cell.
func escapeCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// idleResult is what the idle-session mode measured.
type idleResult struct {
	Variant      variant
	Requested    int
	Opened       int
	Failed       int
	FirstError   string
	OpenTime     time.Duration
	RSSBeforeKiB uint64
	RSSAfterKiB  uint64
	HWMKiB       uint64
	SSE          bool
}

// perSessionKiB is the retained RSS per opened session.
func (r idleResult) perSessionKiB() float64 {
	if r.Opened == 0 {
		return 0
	}
	return (float64(r.RSSAfterKiB) - float64(r.RSSBeforeKiB)) / float64(r.Opened)
}

// renderIdleTable writes the idle-session result as a Markdown table with
// the targets (≤ 8 KiB per idle session, < 200 MiB RSS at 10,000).
func renderIdleTable(w io.Writer, r idleResult) error {
	per := r.perSessionKiB()
	projected := float64(r.RSSBeforeKiB)/1024 + per*10000/1024
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "missed"
	}
	var b strings.Builder
	b.WriteString("| variant | standalone SSE | sessions open / asked | failed | open time s | RSS before MiB | RSS after MiB | peak RSS MiB | KiB per idle session (target ≤ 8) | projected RSS at 10,000 MiB (target < 200) |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	fmt.Fprintf(&b, "| %s | %t | %d / %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f (%s) | %.0f (%s) |\n",
		r.Variant.Label, r.SSE, r.Opened, r.Requested, r.Failed, r.OpenTime.Seconds(),
		float64(r.RSSBeforeKiB)/1024, float64(r.RSSAfterKiB)/1024, float64(r.HWMKiB)/1024,
		per, verdict(per <= 8), projected, verdict(projected < 200))
	if r.FirstError != "" {
		fmt.Fprintf(&b, "\nFirst error: %s\n", escapeCell(r.FirstError))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
