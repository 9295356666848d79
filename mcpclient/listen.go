package mcpclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// maxEvent bounds one server-sent event on the standalone stream.
const maxEvent = 4 << 20

// listen holds the standalone SSE stream open (an HTTP GET on the MCP
// endpoint, streamable HTTP §2.2.3), through which a server sends what is
// not the answer to a request — list_changed notifications, log messages,
// requests of its own — and relays its messages to the local client. The
// go-sdk connection below the bridge opens this stream only for its own
// sessions, so the bridge does it. It reconnects with Last-Event-ID after a
// break, a few times, and gives up quietly on a server that offers no
// stream (405, or anything that is not text/event-stream).
func (b *bridge) listen(ctx context.Context, client *http.Client, serverURL string) {
	lastID := ""
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, serverURL, nil)
		if err != nil {
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		if sid := b.remote.SessionID(); sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			drain(resp)
			return // no standalone stream here
		}
		got, id, err := b.readEvents(ctx, resp.Body)
		resp.Body.Close()
		if id != "" {
			lastID = id
		}
		if got {
			attempt = 0
		}
		if ctx.Err() != nil || errors.Is(err, errLocalClosed) {
			return
		}
	}
	fmt.Fprintln(b.opts.Log, "mcpguard connect: the server's notification stream keeps breaking; notifications outside requests are no longer relayed")
}

var errLocalClosed = errors.New("local connection closed")

// readEvents relays the messages of one SSE response. It reports whether
// any message came, the last event ID, and why it stopped.
func (b *bridge) readEvents(ctx context.Context, body io.Reader) (got bool, lastID string, err error) {
	r := bufio.NewReaderSize(body, 64<<10)
	var data bytes.Buffer
	for {
		line, err := readLine(r, maxEvent)
		if err != nil {
			return got, lastID, err
		}
		switch {
		case line == "":
			if data.Len() == 0 {
				continue
			}
			msg, derr := jsonrpc.DecodeMessage(data.Bytes())
			data.Reset()
			if derr != nil {
				fmt.Fprintf(b.opts.Log, "mcpguard connect: ignoring a malformed message on the notification stream: %v\n", derr)
				continue
			}
			if werr := b.local.Write(ctx, msg); werr != nil {
				return got, lastID, errLocalClosed
			}
			got = true
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			if data.Len() > maxEvent {
				return got, lastID, errors.New("event too large")
			}
		case strings.HasPrefix(line, "id:"):
			lastID = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		}
	}
}

// readLine reads one line without its line ending, at most max bytes.
func readLine(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > max {
			return "", errors.New("line too long")
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}
